# A --callback command nobody waits for any more is stopped with what it
# started (its process group): at the call's timeout, and when the run
# ends (here at its time limit) or eryx exits. They used to outlive eryx.
$ERYX --callback-timeout 500 --callback 'hang=echo $$ >> pids; sleep 30; echo late' -c '
try:
    await hang()
except CallbackError as e:
    print("failed:", e)'
echo "status $?"
$ERYX --timeout 1000 --callback 'hang=echo $$ >> pids; sleep 30' -c '
import asyncio
await asyncio.gather(*[hang() for _ in range(5)])' 2>/dev/null
echo "status $?"
# Killed, a process still has to be scheduled to die: on a loaded machine
# (the ASan tier) that took more than the 0.3 s this waited once, and once
# (the normal tier, ctest -j2) more than 5 s. Up to 20 s; a command left
# running would sleep its 30.
# Each command's group (its id is the shell's pid) holds what it started:
# asked by group, not by name, since any 'sleep 300' on the machine would
# match a name.
running() {
    # (a zombie left to an init that does not reap is not running)
    for g in $(cat pids); do
        for p in $(pgrep -g "$g"); do
            case $(ps -o stat= -p "$p") in
            ''|Z*) ;;
            *) echo "$p (group $g) still runs" ;;
            esac
        done
    done
}
for i in $(seq 200); do
    [ -z "$(running)" ] && break
    sleep 0.1
done
echo "$(wc -l < pids) commands started"
running
echo done
