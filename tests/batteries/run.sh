#!/usr/bin/env bash
# The guest's batteries against native CPython (compare.py): both sides run
# the same script on the same inputs through one directory (mounted
# read-write in the sandbox), each decodes what the other made, and their
# reports must be identical. Then the guest's time zone list must hold every
# zone the native one has (the host's tzdata may be older than the guest's).
# usage: run.sh ERYX_BINARY NATIVE_PYTHON
set -u
eryx=$1
native=$2
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/share" "$dir/out"
fail=0
step() {   # step WHO STEP
    if [ "$1" = native ]; then
        (cd "$dir" && "$native" "$here/compare.py" "$2" "$dir/share")
    else
        "$eryx" --timeout 0 --mount "$dir/share:/data:rw" "$here/compare.py" "$2" /data
    fi >"$dir/out/$1.$2" 2>"$dir/out/$1.$2.err"
    local status=$?
    if [ $status != 0 ]; then
        echo "FAIL $1 $2: exit status $status"
        tail -n 20 "$dir/out/$1.$2.err"
        fail=1
    fi
}
step native make
step guest make
step native check
step guest check
for s in make check; do
    if ! cmp -s "$dir/out/native.$s" "$dir/out/guest.$s"; then
        echo "FAIL: the reports of '$s' differ (native < > guest):"
        diff "$dir/out/native.$s" "$dir/out/guest.$s" | head -n 40
        fail=1
    fi
    # A report that says False anywhere failed on both sides alike.
    if grep -q ": False" "$dir/out/native.$s"; then
        echo "FAIL: a check said False:"
        grep ": False" "$dir/out/native.$s" | head
        fail=1
    fi
done
# "localtime" is the host's /etc/localtime, seen through a link in its tzdata.
missing=$(comm -23 <(grep -vx localtime "$dir/share/native.zones") "$dir/share/guest.zones")
if [ -n "$missing" ]; then
    echo "FAIL: zones the guest lacks:" $missing
    fail=1
fi
echo "batteries: $(wc -l <"$dir/out/guest.make") + $(wc -l <"$dir/out/guest.check") report lines" \
    "compared, $(wc -l <"$dir/share/guest.zones") zones in the guest" \
    "($(wc -l <"$dir/share/native.zones") native)"
[ $fail = 0 ] && echo "batteries: native and guest agree"
exit $fail
