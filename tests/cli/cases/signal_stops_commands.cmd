# SIGTERM and SIGHUP end eryx as they end any program (it dies of the
# signal: 143 and 129 from a shell), and first kill the process groups of
# its --callback commands and MCP servers. They used to outlive it: the
# groups are their own (Ctrl-C at a terminal is eryx's), so nothing else
# signals them, and the kill at exit() does not run on death by a signal.
# SIGINT before the sandbox exists (an MCP server still starting) does the
# same; during a run it interrupts the code (status 130).
# Job control: a script's background job ignores SIGINT otherwise.
set -m
wait_for() { # a file the command writes once it runs
    for i in $(seq 200); do [ -s "$1" ] && return; sleep 0.1; done
    echo "$1 never came"
}
# A group still running (asked by group, not by name: any 'sleep 60' on
# the machine would match a name; a zombie is not running). Killed, a
# process still has to be scheduled to die: up to 20 s on a loaded box.
running() {
    for p in $(pgrep -g "$1"); do
        case $(ps -o stat= -p "$p") in ''|Z*) ;; *) echo "$p (group $1) still runs" ;; esac
    done
}
gone() {
    for i in $(seq 200); do [ -z "$(running "$1")" ] && break; sleep 0.1; done
    running "$1"
}
try() { # SIGNAL WHAT OPTION...
    sig=$1 what=$2
    shift 2
    rm -f pid
    "$ERYX" "$@" 2>/dev/null &
    eryx=$!
    wait_for pid
    kill -"$sig" "$eryx"
    wait "$eryx"
    echo "$what, SIG$sig: status $?"
    gone "$(cat pid)"
}
call='print(await x())'
for sig in TERM HUP; do
    try $sig callback --callback-timeout 60000 --callback 'x=echo $$ > pid; sleep 60' -c "$call"
    try $sig mcp-server --mcp-server 'x=echo $$ > pid; sleep 60' -c pass
done
try INT mcp-server --mcp-server 'x=echo $$ > pid; sleep 60' -c pass
# `eryx mcp` (the MCP server) too: its servers outlived it.
try TERM "eryx mcp's mcp-server" mcp --mcp-server 'x=echo $$ > pid; sleep 60' </dev/null
try INT "eryx mcp's mcp-server" mcp --mcp-server 'x=echo $$ > pid; sleep 60' </dev/null
try INT callback --callback-timeout 60000 --callback 'x=echo $$ > pid; sleep 60' -c "$call"
echo done
