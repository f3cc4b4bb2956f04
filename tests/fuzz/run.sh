#!/usr/bin/env bash
# Fuzzes each harness of an ERYX_FUZZ build for a bounded time, as many at
# once as there are cores, and prints a line per harness (runs, executions
# per second, corpus growth). Exits non-zero if any harness found something: libFuzzer then
# leaves the input in BUILD/fuzz-artifacts/ and its report in
# BUILD/fuzz-logs/<name>.log.
#   usage: tests/fuzz/run.sh BUILD SECONDS [NAME...]   (default: all)
# The scratch corpus (BUILD/fuzz-work/<name>) is kept between runs, so
# longer runs build on earlier ones; the committed seeds are read only.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
seconds=$2
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(wait_request vfs_path wasi session_load import_state call_reply net
                                  jsonrpc http image_load wheel ws journal
                                  store_manifest trace_event guest_scan net_ops json_wide
                                  json_write bytecode mcp_config http_resp serve mcp
                                  mcp_http)
mkdir -p "$build/fuzz-work" "$build/fuzz-artifacts" "$build/fuzz-logs"
# The guest's memory is guarded by SIGSEGV/SIGBUS handlers of the engine:
# neither ASan nor libFuzzer may take those signals over.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One harness: its line of the table goes to fuzz-logs/NAME.line, and
# NAME.rc holds libFuzzer's exit status.
fuzz_one() {
    local name=$1 bin=$build/tests/fuzz/fuzz_$1 max_len rc runs eps corpus result
    local work=$build/fuzz-work/$1 log=$build/fuzz-logs/$1.log
    case $name in
        session_load|image_load) max_len=65536 ;;
        import_state) max_len=16384 ;;
        *) max_len=4096 ;;
    esac
    mkdir -p "$work"
    "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len="$max_len" \
        -handle_segv=0 -handle_bus=0 -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-artifacts/$name-" \
        "$work" "$here/corpus/$name" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    corpus=$(find "$work" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        result=ok
    else
        result="FOUND (exit $rc): $(grep -m1 -E 'ERROR:|property failed|SUMMARY' "$log")"
    fi
    printf '%-14s %10s %10s %8s %s\n' "$name" "${runs:-?}" "${eps:-?}" "$corpus" "$result" \
        >"$build/fuzz-logs/$name.line"
    echo "$rc" >"$build/fuzz-logs/$name.rc"
}

# Each harness is one thread: as many run at once as there are cores
# (ERYX_FUZZ_JOBS), each for the whole of its time.
parallel=${ERYX_FUZZ_JOBS:-$(nproc)}
case $parallel in
    ''|*[!0-9]*) parallel=0 ;;
esac
if [ "$((10#$parallel))" -lt 1 ]; then
    echo "run.sh: ERYX_FUZZ_JOBS must be a whole number of at least 1, not '${ERYX_FUZZ_JOBS:-}'" >&2
    exit 2
fi
status=0
for name in "${names[@]}"; do
    rm -f "$build/fuzz-logs/$name.line" "$build/fuzz-logs/$name.rc"
    if [ ! -x "$build/tests/fuzz/fuzz_$name" ]; then
        echo "$name: $build/tests/fuzz/fuzz_$name is missing (configure with -DERYX_FUZZ=ON)" >&2
        status=1
        continue
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do
        wait -n || true
    done
    fuzz_one "$name" &
done
wait
printf '%-14s %10s %10s %8s %s\n' harness runs exec/s corpus result
for name in "${names[@]}"; do
    [ -f "$build/fuzz-logs/$name.rc" ] || continue
    cat "$build/fuzz-logs/$name.line"
    rc=$(cat "$build/fuzz-logs/$name.rc")
    if [ "$rc" != 0 ]; then
        status=1
        tail -n 60 "$build/fuzz-logs/$name.log" >&2
    fi
done
exit $status
