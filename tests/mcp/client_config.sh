#!/usr/bin/env bash
# --mcp and --mcp-config: the servers that agents' and editors' MCP
# configuration files name (a HOME and a project directory made here) are
# started, their tools offered as mcp.NAME.TOOL, with their arguments and
# environment; the project's files win over the user's, a --mcp-server over
# both; remote (Streamable HTTP) servers are reached through `eryx
# mcp-proxy`; what cannot be used is said and left out.
# usage: client_config.sh ERYX_BINARY   (npm packages: scripts/install-npm.sh)
set -u
ERYX=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
npm_dir=$("$here/../../scripts/install-npm.sh" | tail -n 1) || exit 1
N=$npm_dir/node_modules/@modelcontextprotocol
EV="$N/server-everything/dist/index.js"
FS="$N/server-filesystem/dist/index.js"
BAD="$here/bad_server.mjs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
home=$tmp/home proj=$tmp/proj
mkdir -p "$home/.cursor" "$home/.config/zed" "$proj/.vscode" "$tmp/files"
echo hello >"$tmp/files/a.txt"
fails=0

# check NAME WANTED_STATUS STDOUT_WANTED STDERR_PATTERN -- eryx args...
# (run in $proj with HOME=$home; STDERR_PATTERN: an extended regexp or "")
check() {
    local name=$1 want_status=$2 want=$3 pattern=$4
    shift 5
    (cd "$proj" && HOME=$home ERYX_BASE=/base timeout 90 "$ERYX" "$@") >"$tmp/out" 2>"$tmp/err"
    local status=$?
    if [ "$status" != "$want_status" ] || [ "$(cat "$tmp/out")" != "$want" ] ||
       { [ -n "$pattern" ] && ! grep -Eq "$pattern" "$tmp/err"; }; then
        echo "FAIL $name: status $status (want $want_status)"
        diff <(echo "$want") "$tmp/out" | sed 's/^/  /'
        sed 's/^/  stderr: /' "$tmp/err" | grep -v 'Starting default\|running on stdio\|Roots' | head -20
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}

servers='print(sorted({c["name"].split(".")[1] for c in list_callbacks() if c["name"].startswith("mcp.")}))'

# User-wide: Claude Code's file (a server with env, one with a hyphen in its
# name, a remote, a disabled and a broken one; this directory's "local"
# servers under projects), Cursor's, Zed's (comments, trailing commas, the
# older command object).
cat >"$home/.claude.json" <<EOF
{"numStartups": 3,
 "mcpServers": {
   "ev": {"command": "node", "args": ["$EV", "stdio"],
          "env": {"ERYX_T1": "\${ERYX_BASE}/x", "ERYX_T2": "\${ERYX_UNSET:-dflt}", "ERYX_T3": "\$ERYX_BASE"}},
   "files-user": {"command": "node", "args": ["$FS", "$tmp"]},
   "remote": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
   "off": {"command": "/nonexistent", "disabled": true},
   "broken": {"command": "node", "args": "not a list"}},
 "projects": {"$proj": {"mcpServers": {"local": {"command": "node", "args": ["$BAD"]}}},
              "/elsewhere": {"mcpServers": {"other": {"command": "node", "args": ["$BAD"]}}}}}
EOF
cat >"$home/.cursor/mcp.json" <<EOF
{"mcpServers": {"cursor1": {"command": "node", "args": ["$BAD"], "enabled": false}}}
EOF
cat >"$home/.config/zed/settings.json" <<EOF
// Zed's settings
{
  /* a comment, "with": "a string", */ "theme": "One Dark",
  "context_servers": {
    "zed": {"command": {"path": "node", "args": ["$BAD"]}, "settings": {},},
  },
}
EOF
# The project's: Claude Code's .mcp.json replaces the user's "files-user";
# VS Code's file with comments.
cat >"$proj/.mcp.json" <<EOF
{"mcpServers": {"files-user": {"command": "node", "args": ["$FS", "$tmp/files"]}}}
EOF
cat >"$proj/.vscode/mcp.json" <<EOF
{
  // VS Code
  "servers": {"vscode": {"type": "stdio", "command": "node", "args": ["$BAD"]}},
  "inputs": []
}
EOF

cat >"$tmp/code.py" <<EOF
import json
$servers
env = json.loads(await mcp.ev.get_env())
print(env["ERYX_T1"], env["ERYX_T2"], env["ERYX_T3"], env["ERYX_BASE"])
print(await mcp.files_user.list_directory(path="$tmp/files"))
print(await mcp.local.ok(x=1), await mcp.zed.ok(x=2), await mcp.vscode.ok(x=3))
EOF
check discover 0 "['ev', 'files_user', 'local', 'vscode', 'zed']
/base/x dflt /base /base
{'content': '[FILE] a.txt'}
{'x': 1} {'x': 2} {'x': 3}" "'broken' is left out: its args are not a list" -- --mcp "$tmp/code.py"

# Without --mcp nothing is read.
check not_asked 0 "[]" "" -- -c "$servers"

# A --mcp-server keeps its name; --mcp-config files come last and win.
cat >"$tmp/extra.json" <<EOF
{"servers": {"ev": {"command": "node", "args": ["$BAD"]}, "extra": {"command": "node", "args": ["$BAD"]}}}
EOF
check precedence 0 "['ev', 'extra', 'mine']
True False" "" -- --mcp-config "$tmp/extra.json" --mcp-server mine="node $BAD" \
    --mcp-server ev="node $EV stdio" \
    -c "$servers
names = {c['name'] for c in list_callbacks()}
print('mcp.ev.get_env' in names, 'mcp.ev.ok' in names)"

# A configured server that cannot start or does not answer is left out;
# the rest runs.
cat >"$tmp/failing.json" <<EOF
{"mcpServers": {"gone": {"command": "/nonexistent/server"},
                "mute": {"command": "node", "args": ["$BAD", "no-init"]},
                "fine": {"command": "node", "args": ["$BAD"]}}}
EOF
check left_out 0 "['fine']" "MCP server mute \(.*failing.json\) is left out" -- \
    --mcp-timeout 2000 --mcp-config "$tmp/failing.json" -c "$servers"
grep -q "MCP server gone (.*failing.json): cannot start '/nonexistent/server'" "$tmp/err" ||
    { echo "FAIL left_out: no word of 'gone'"; fails=$((fails + 1)); }

# A --mcp-config file that cannot be read, or is not JSON, is an error; a
# default one that is not JSON is said and passed over.
check config_missing 71 "" "$tmp/none.json: No such file" -- --mcp-config "$tmp/none.json" -c 'print(1)'
echo '{"mcpServers": {' >"$tmp/bad.json"
check config_not_json 71 "" "bad.json:[0-9]+: not JSON" -- --mcp-config "$tmp/bad.json" -c 'print(1)'
check config_is_dir 71 "" "" -- --mcp-config "$tmp" -c 'print(1)'
mkfifo "$tmp/fifo.json"  # a planted FIFO must not hang eryx
check config_fifo 71 "" "fifo.json: not a regular file" -- --mcp-config "$tmp/fifo.json" -c 'print(1)'
mv "$proj/.mcp.json" "$tmp/mcp.json.saved" && mkfifo "$proj/.mcp.json"
check default_fifo 0 "['ev', 'files_user', 'local', 'vscode', 'zed']" \
    "\.mcp.json: not a regular file" -- --mcp -c "$servers"
rm "$proj/.mcp.json" && mv "$tmp/mcp.json.saved" "$proj/.mcp.json"
cp "$tmp/bad.json" "$home/.cursor/mcp.json"
check default_not_json 0 "['ev', 'files_user', 'local', 'vscode', 'zed']" \
    "\.cursor/mcp.json:[0-9]+: not JSON" -- --mcp -c "$servers"
check remote_refused 2 "" "" -- --remote ws://127.0.0.1:9 --mcp -c 'print(1)'

# Remote servers, through `eryx mcp-proxy`: the fake of http_server.py
# (configured headers with $VAR, the session id and revision on later
# requests, JSON and chunked event-stream answers, the session's DELETE at
# the end), server-everything's streamableHttp, and its older HTTP+SSE
# server, typed "sse" and untyped (the proxy falls back to it when
# initialize is refused); one that nobody serves is left out, a WebSocket
# one passed over.
python3 "$here/http_server.py" "$tmp/http.log" >"$tmp/http.port" &
http_pid=$!
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ev_port=$(free_port)
PORT=$ev_port node "$EV" streamableHttp >"$tmp/ev.log" 2>&1 &
ev_pid=$!
sse_port=$(free_port)
PORT=$sse_port node "$EV" sse >"$tmp/sse.log" 2>&1 &
sse_pid=$!
trap 'kill $http_pid $ev_pid $sse_pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
    [ -s "$tmp/http.port" ] && grep -q listening "$tmp/ev.log" &&
        grep -q 'running on port' "$tmp/sse.log" && break
    sleep 0.1
done
http_port=$(cat "$tmp/http.port")
dead_port=$(free_port)
cat >"$tmp/remote.json" <<EOF
{"mcpServers": {
   "fake": {"type": "http", "url": "http://127.0.0.1:$http_port/mcp",
            "headers": {"Authorization": "Bearer \${ERYX_TOKEN}", "X-Team": "eryx"}},
   "everything": {"url": "http://127.0.0.1:$ev_port/mcp"},
   "nobody": {"type": "http", "url": "http://127.0.0.1:$dead_port/mcp"},
   "legacy": {"type": "sse", "url": "http://127.0.0.1:$sse_port/sse"},
   "untyped": {"url": "http://127.0.0.1:$sse_port/sse"},
   "websocket": {"type": "ws", "url": "ws://127.0.0.1:$dead_port/"}}}
EOF
export ERYX_TOKEN=s3cret
check remote 0 "['everything', 'fake', 'legacy', 'untyped']
{'Mcp-Session-Id': 'test-session-1', 'MCP-Protocol-Version': '2025-11-25', 'Authorization': 'Bearer s3cret', 'X-Team': 'eryx'}
True True
The sum of 2 and 3 is 5.
['The sum of 1 and 2 is 3.', 'The sum of 3 and 4 is 7.', 'The sum of 5 and 6 is 11.']" \
    "MCP server nobody \(.*remote.json\) is left out" -- \
    --mcp-timeout 5000 --mcp-config "$tmp/remote.json" -c "$servers
print(await mcp.fake.seen())
print(await mcp.fake.seen() == await mcp.fake.seen(), await mcp.fake.port() == await mcp.fake.port())
print(await mcp.everything.get_sum(a=2, b=3))
import asyncio
print(list(await asyncio.gather(mcp.legacy.get_sum(a=1, b=2), mcp.untyped.get_sum(a=3, b=4),
                                mcp.legacy.get_sum(a=5, b=6))))"
grep -q "cannot connect to 127.0.0.1:$dead_port" "$tmp/err" ||
    { echo "FAIL remote: no word of why 'nobody' is left out"; fails=$((fails + 1)); }
grep -q "refused a Streamable HTTP initialize (404): trying the older HTTP+SSE" "$tmp/err" ||
    { echo "FAIL remote: 'untyped' did not fall back to HTTP+SSE"; fails=$((fails + 1)); }
for _ in $(seq 50); do grep -q DELETE "$tmp/http.log" 2>/dev/null && break; sleep 0.1; done
[ "$(cat "$tmp/http.log" 2>/dev/null)" = "DELETE test-session-1" ] ||
    { echo "FAIL remote: the session was not ended with DELETE"; fails=$((fails + 1)); }
# A header that would break the request: left out.
cat >"$tmp/bad_header.json" <<EOF
{"mcpServers": {"fake": {"url": "http://127.0.0.1:$http_port/mcp",
                         "headers": {"X-Evil": "\${ERYX_EVIL}"}}}}
EOF
export ERYX_EVIL=$'a\r\nX-Injected: 1'
check header_injection 0 "[]" "a header's value has a line break" -- \
    --mcp-config "$tmp/bad_header.json" -c "$servers"
# The proxy on its own: usage errors, and a request it cannot deliver is
# answered with an error (the client never waits for it).
check proxy_usage 2 "" "want an http:// or https:// URL" -- mcp-proxy ftp://x
check proxy_header 2 "" "'Name: value' on one line" -- mcp-proxy http://127.0.0.1:1/ --header bad
check proxy_transport 2 "" "transport is http .*, sse .* or auto" -- \
    mcp-proxy http://127.0.0.1:1/ --transport ws
check proxy_ca_plain 2 "" "ca-file is for an https:// URL" -- \
    mcp-proxy http://127.0.0.1:1/ --ca-file "$tmp/none.pem"
check mcp_timeout_bounds 2 "" "mcp-timeout must be positive and at most 18446744073709 ms" -- \
    --mcp-server x='sleep 30' --mcp-timeout 18446744073709551615 -c 'print(1)'
check mcp_timeout_zero 2 "" "mcp-timeout must be positive" -- \
    --mcp-server x='sleep 30' --mcp-timeout 0 -c 'print(1)'
echo '{"jsonrpc":"2.0","id":7,"method":"tools/list"}' |
    timeout 30 "$ERYX" mcp-proxy "http://127.0.0.1:$dead_port/mcp" --timeout 2000 >"$tmp/out" 2>&1
grep -q '"id": *7.*"error".*cannot connect' "$tmp/out" ||
    { echo "FAIL proxy_refused: $(cat "$tmp/out")"; fails=$((fails + 1)); }

# The older HTTP+SSE transport, against the fake: answers come on the
# stream, the configured header reaches the posts; a request whose answer
# the stream never brings (the stream ends: `cut`) gets an error answer,
# and so does every later one; an endpoint of another origin (where the
# headers would go) is refused.
feed() { # the messages, a line each, 0.3 s apart, then 0.5 s; wait:PATTERN
          # waits until the output has PATTERN (a fixed pause can be too short)
    for m in "$@"; do
        case $m in
        wait:*) for _ in $(seq 200); do grep -q "${m#wait:}" "$tmp/out" && break; sleep 0.05; done ;;
        *) sleep 0.3; echo "$m" ;;
        esac
    done
    sleep 0.5
}
proxy_sse() { # PATH, then the messages after initialize, a line each
    local path=$1
    shift
    { echo '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
      feed "$@"; } |
        timeout 30 "$ERYX" mcp-proxy "http://127.0.0.1:$http_port$path" --transport sse \
            --header 'X-Team: sse' --max-message 16k >"$tmp/out" 2>&1
}
call() { echo "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"tools/call\",\"params\":{\"name\":\"$2\",\"arguments\":{}}}"; }
# (A request the client cancelled is not awaited any more: 5 gets no
# error answer when the stream ends.)
proxy_sse /sse "$(call 2 seen)" "$(call 5 hang)" \
    '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}' \
    "$(call 3 cut)" 'wait:"id": *3, *"error"' "$(call 4 seen)"
grep -q '"id": *1, *"result"' "$tmp/out" && grep -q '"id": *2, *"result".*"X-Team": *"sse"' "$tmp/out" &&
    grep -q '"id": *3, *"error".*the server ended its event stream' "$tmp/out" &&
    grep -q '"id": *4, *"error".*the server ended its event stream' "$tmp/out" &&
    [ "$(grep -c '"id"' "$tmp/out")" = 4 ] ||
    { echo "FAIL proxy_sse: $(cat "$tmp/out")"; fails=$((fails + 1)); }
# A message over --max-message is dropped; its id, at either end, says
# which request gets an error answer at once.
proxy_sse /sse "$(call 2 huge)" "$(call 3 huge_tail)" "$(call 4 seen)"
grep -q '"id": *2, *"error".*over --max-message (16384 bytes) and was dropped' "$tmp/out" &&
    grep -q '"id": *3, *"error".*over --max-message (16384 bytes) and was dropped' "$tmp/out" &&
    grep -q '"id": *4, *"result"' "$tmp/out" ||
    { echo "FAIL proxy_sse_too_large: $(cat "$tmp/out")"; fails=$((fails + 1)); }
# A message whose JSON would take more than 4 times --max-message to read
# is not read: when its ends show its id, the request gets an error answer
# at once; on the stream, where a message of no visible id could answer
# anything, that request waits for the stream's end like any other.
proxy_sse /sse "$(call 2 wide)" "$(call 3 seen)"
grep -q '"id": *2, *"error".*JSON would take more than 65536 bytes to read (4 times --max-message' "$tmp/out" &&
    grep -q '"id": *3, *"result"' "$tmp/out" &&
    grep -q 'a message whose JSON would take more than 65536 bytes to read (dropped)' "$tmp/out" ||
    { echo "FAIL proxy_sse_too_wide: $(cat "$tmp/out")"; fails=$((fails + 1)); }
proxy_sse /sse-foreign "$(call 2 seen)"
grep -q '"id": *1, *"error".*evil.invalid.*not a URL of the server.s own origin' "$tmp/out" &&
    grep -q '"id": *2, *"error"' "$tmp/out" ||
    { echo "FAIL proxy_sse_foreign: $(cat "$tmp/out")"; fails=$((fails + 1)); }
# An HTTP+SSE server spoken to as Streamable HTTP: the error says what to try.
echo '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' |
    timeout 30 "$ERYX" mcp-proxy "http://127.0.0.1:$http_port/sse" >"$tmp/out" 2>&1
grep -q '"id": *1, *"error".*HTTP status 405 (a server of the older HTTP+SSE transport? --transport sse or auto' "$tmp/out" ||
    { echo "FAIL proxy_sse_hint: $(cat "$tmp/out")"; fails=$((fails + 1)); }
echo '{"jsonrpc":"2.0","id":7,"method":"tools/list"}' |
    timeout 30 "$ERYX" mcp-proxy "http://127.0.0.1:$dead_port/sse" --transport sse \
        --timeout 2000 >"$tmp/out" 2>&1
grep -q '"id": *7.*"error".*cannot connect' "$tmp/out" ||
    { echo "FAIL proxy_sse_refused: $(cat "$tmp/out")"; fails=$((fails + 1)); }

# Kept-alive connections: a read-only request that a kept connection
# loses unread (the server closes it as the request comes: `drop` arms
# that) goes again on a new one; a tools/call does not (it may have run),
# it fails. A server whose Keep-Alive hint keeps idle connections a second
# gets a new one for each request (/mcp-brief: the port changes).
proxy_http() { # PATH, then the messages after initialize, a line each
    local path=$1
    shift
    { echo '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
      feed "$@"; } |
        timeout 30 "$ERYX" mcp-proxy "http://127.0.0.1:$http_port$path" ${proxy_args:-} \
            >"$tmp/out" 2>&1
}
proxy_http /mcp "$(call 2 drop)" '{"jsonrpc":"2.0","id":3,"method":"tools/list"}' \
    "$(call 4 drop)" "$(call 5 seen)" "$(call 6 seen)"
grep -q '"id": *3, *"result".*"tools"' "$tmp/out" &&
    grep -q '"id": *5, *"error".*closed a kept-alive connection without answering (not sent again: it may have acted)' "$tmp/out" &&
    grep -q '"id": *6, *"result"' "$tmp/out" ||
    { echo "FAIL proxy_stale_connection: $(cat "$tmp/out")"; fails=$((fails + 1)); }
ports() { grep -o '"port": *[0-9]*' "$tmp/out" | sort -u | wc -l; }
proxy_http /mcp "$(call 2 port)" "$(call 3 port)"
[ "$(ports)" = 1 ] || { echo "FAIL proxy_kept: $(cat "$tmp/out")"; fails=$((fails + 1)); }
proxy_http /mcp-brief "$(call 2 port)" "$(call 3 port)"
[ "$(ports)" = 2 ] || { echo "FAIL proxy_keep_alive_hint: $(cat "$tmp/out")"; fails=$((fails + 1)); }
# Messages too wide to read, on Streamable HTTP (as on the stream above):
# one whose ends hide its id fails its request when the exchange ends
# without an answer.
proxy_args="--max-message 16k" proxy_http /mcp "$(call 2 wide)" "$(call 3 wide_hidden)" \
    "$(call 4 seen)"
grep -q '"id": *2, *"error".*JSON would take more than 65536 bytes to read (4 times --max-message' "$tmp/out" &&
    grep -q '"id": *3, *"error".*a message whose JSON would take more than 65536 bytes to read (4 times --max-message) was dropped' "$tmp/out" &&
    grep -q '"id": *4, *"result"' "$tmp/out" ||
    { echo "FAIL proxy_too_wide: $(cat "$tmp/out")"; fails=$((fails + 1)); }

# Event streams that end before their answer (MCP 2025-11-25): resumed
# with a GET of the last event's id, after the server's retry time, as
# often as the server ends them (`poll`: three GETs, 300 ms apart, whose
# notifications are passed on), also after a cut connection (`break`); a
# server that cannot resume (405) fails the call with the reason; a
# request the client cancels is not resumed any more (`linger`: every GET
# served, empty).
: >"$tmp/http.log"
{ echo '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
  sleep 0.2; call 2 poll; call 3 break; call 4 noresume; call 5 linger
  # Cancelled once resumed twice (a fixed pause counted the GETs of a
  # slow start too), then watched for 2 s after 1 s to settle.
  for _ in $(seq 200); do [ "$(grep -c '^GET linger-0$' "$tmp/http.log")" -ge 2 ] && break; sleep 0.05; done
  echo '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}'
  sleep 1; grep -c '^GET linger-0$' "$tmp/http.log" >"$tmp/linger_settled"
  sleep 2; } | timeout 30 "$ERYX" mcp-proxy "http://127.0.0.1:$http_port/mcp" >"$tmp/out" 2>&1
grep -q '"id": *2, *"result"' "$tmp/out" && grep -q '"id": *3, *"result"' "$tmp/out" &&
    grep -q '"id": *4, *"error".*ended (closed by the server) and resuming it failed: HTTP status 405' "$tmp/out" &&
    ! grep -q '"id": *5' "$tmp/out" &&
    [ "$(grep -o '"data": *"poll [0-9]"' "$tmp/out" | tr -d ' ' | tr '\n' ,)" = '"data":"poll0","data":"poll1",' ] &&
    [ "$(grep '^GET poll' "$tmp/http.log" | tr '\n' ,)" = "GET poll-0,GET poll-1,GET poll-2," ] &&
    grep -q '^GET break-0$' "$tmp/http.log" && grep -q '^GET noresume-0$' "$tmp/http.log" &&
    [ "$(grep -c '^GET linger-0$' "$tmp/http.log")" -ge 2 ] &&
    [ "$(grep -c '^GET linger-0$' "$tmp/http.log")" = "$(cat "$tmp/linger_settled")" ] ||
    { echo "FAIL proxy_resume: $(cat "$tmp/out" "$tmp/http.log")"; fails=$((fails + 1)); }
# (`linger` served every 200 ms would be 10 more GETs in the last 2 s;
# cancelled, none.)

# A call whose stream only drips comments holds one of the proxy's 16
# parallel exchanges until its client cancels it. Cancelled, it let go only
# of a stream being resumed: 16 such calls held every exchange for good,
# and every later call timed out.
{ echo '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
  sleep 0.2
  for i in $(seq 2 17); do call "$i" drip; done
  sleep 0.5
  for i in $(seq 2 17); do
      echo "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":$i}}"
  done
  sleep 0.5; call 18 seen; sleep 2; } |
    timeout 30 "$ERYX" mcp-proxy "http://127.0.0.1:$http_port/mcp" >"$tmp/out" 2>&1
grep -q '"id": *18, *"result"' "$tmp/out" ||
    { echo "FAIL proxy_cancel_frees: $(head -c 3000 "$tmp/out")"; fails=$((fails + 1)); }

# HTTPS: the proxy verifies the server (a certificate for 127.0.0.1 signed
# by a CA made here): refused without the CA, served with --ca-file.
(cd "$tmp" && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=eryx test CA" && openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr \
    -subj "/CN=127.0.0.1" && echo "subjectAltName=IP:127.0.0.1" >ext &&
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
    -extfile ext) >/dev/null 2>&1
python3 "$here/http_server.py" "$tmp/https.log" "$tmp/srv.pem" "$tmp/srv.key" >"$tmp/https.port" &
https_pid=$!
trap 'kill $http_pid $ev_pid $sse_pid $https_pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/https.port" ] && break; sleep 0.1; done
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
echo "$init" | timeout 30 "$ERYX" mcp-proxy "https://127.0.0.1:$(cat "$tmp/https.port")/mcp" \
    >"$tmp/out" 2>&1
grep -q '"id": *1.*"error".*certificate' "$tmp/out" ||
    { echo "FAIL proxy_tls_unverified: $(cat "$tmp/out")"; fails=$((fails + 1)); }
echo "$init" | timeout 30 "$ERYX" mcp-proxy "https://127.0.0.1:$(cat "$tmp/https.port")/mcp" \
    --ca-file "$tmp/ca.pem" >"$tmp/out" 2>&1
grep -q '"id": *1.*"result".*"protocolVersion"' "$tmp/out" &&
    grep -q "DELETE test-session-1" "$tmp/https.log" ||
    { echo "FAIL proxy_tls: $(cat "$tmp/out")"; fails=$((fails + 1)); }

[ $fails = 0 ] && echo "client_config: all passed"
[ $fails = 0 ]
