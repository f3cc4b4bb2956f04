#!/usr/bin/env bash
# guest/w2c_split.sh on a small module's rewritten C (eng_segment.c): the
# two units hold every line of it, each function once but for the small
# ones copied into both (the same text), the prelude and the prototypes in
# both; it refuses bad arguments and output it does not know.
# (The engine tests run the split module itself: engine_*_split.)
# usage: test_w2c_split.sh SPLIT_SH FILE.c WORKDIR
set -euo pipefail
split=$1 c=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# refuses WHAT STATUS ARGS...: the split must exit with STATUS.
refuses() {
    local what=$1 want=$2 status=0
    shift 2
    "$split" "$@" 2>"$dir/refused.err" || status=$?
    if [ "$status" -ne "$want" ]; then
        fail "$what: exit $status, expected $want"
    else
        echo "ok: refused: $what: $(tail -n 1 "$dir/refused.err")"
    fi
}

refuses "no arguments" 2
refuses "HOT_PERCENT 0" 2 "$c" "$dir/u" 0
refuses "HOT_PERCENT 100" 2 "$c" "$dir/u" 100
refuses "HOT_PERCENT x" 2 "$c" "$dir/u" x

# The split of the whole file.
"$split" "$c" "$dir/units" 50 2>"$dir/split.err"
cat "$dir/split.err"
u0=$dir/units/guest-0.c u1=$dir/units/guest-1.c
sig='^(static|ERYX_W2C_SHARED) [a-z0-9_]+ w2c_[A-Za-z0-9_]+\(.*\{$'
defs() { grep -cE "$sig" "$1" || true; }
# bodies FILE: each function definition as NAME<TAB>its lines joined by \001.
bodies() {
    awk '/^(static|ERYX_W2C_SHARED) [a-z0-9_]+ w2c_[A-Za-z0-9_]+\(.*\{$/ {
             name = $3; sub(/\(.*/, "", name); body = ""; inside = 1 }
         inside { body = body $0 "\001" }
         inside && /^}$/ { print name "\t" body; inside = 0 }' "$1" | sort
}
all=$(defs "$c")
[ "$all" -gt 2 ] || fail "the module has $all functions; the test needs more"
bodies "$u0" >"$dir/bodies0"
bodies "$u1" >"$dir/bodies1"
# A function in both units is a copy of a small one: the same text.
join -t "$(printf '\t')" "$dir/bodies0" "$dir/bodies1" >"$dir/copies"
copies=$(wc -l <"$dir/copies")
awk -F '\t' '$2 != $3 { print $1; bad = 1 } END { exit bad }' "$dir/copies" ||
    fail "copies that differ from their function"
grep -q 'ERYX_W2C_SHARED' "$dir/copies" && fail "a copied function is shared"
n0=$(defs "$u0") n1=$(defs "$u1")
if [ $((n0 - copies)) -le 0 ] || [ $((n1 - copies)) -le 0 ]; then
    fail "a unit holds no function of its own"
fi
[ $((n0 + n1 - copies)) -eq "$all" ] || fail "$n0 + $n1 - $copies functions in the units, $all in the file"
[ "$copies" -gt 0 ] || fail "no function copied: the module has small functions called across the units"
# Unit 1 up to its first function is unit 0's start: the prelude and the
# prototypes. Unit 0 and the rest of unit 1 without its copies are the
# file's lines, with only the shared functions' "static" changed and the
# line defining the macro added.
head1=$(grep -nE "$sig" "$u1" | head -n 1 | cut -d: -f1)
cmp -s <(head -n $((head1 - 1)) "$u1") <(head -n $((head1 - 1)) "$u0") ||
    fail "the units start differently"
cut -f1 "$dir/copies" >"$dir/copied.names"
{ cat "$u0"
  tail -n +"$head1" "$u1" | awk 'NR == FNR { copied[$1] = 1; next }
      /^(static|ERYX_W2C_SHARED) [a-z0-9_]+ w2c_[A-Za-z0-9_]+\(.*\{$/ {
          name = $3; sub(/\(.*/, "", name); skip = (name in copied) }
      !skip { print }
      skip && /^}$/ { skip = 0 }' "$dir/copied.names" -
} | grep -v '^#define ERYX_W2C_SHARED ' | sed -E 's/^ERYX_W2C_SHARED /static /' | sort >"$dir/units.sorted"
sort "$c" >"$dir/file.sorted"
cmp -s "$dir/units.sorted" "$dir/file.sorted" || fail "the units are not the file's lines"
shared=$(cat "$u0" "$u1" | grep -cE '^ERYX_W2C_SHARED [a-z0-9_]+ w2c_.*\{$' || true)
[ "$shared" -gt 0 ] || fail "no function is shared: the exports call across the units"
echo "ok: $n0 + $n1 functions, $copies of them copies, $shared shared"

# Output it does not know.
awk '/^static [a-z0-9_]+ w2c_[A-Za-z0-9_]+\(.*\{$/ { n++ } n == 2 && /^  / { print; exit } { print }' \
    "$c" >"$dir/cut.c"
refuses "a file ending inside a function" 1 "$dir/cut.c" "$dir/u" 50
awk '!done && /^static [a-z0-9_]+ w2c_[A-Za-z0-9_]+\(.*\);$/ { done = 1; next } { print }' \
    "$c" >"$dir/noproto.c"
refuses "a function without a prototype" 1 "$dir/noproto.c" "$dir/u" 50
sed -E 's/^static ([a-z0-9_]+) (w2c_[A-Za-z0-9_]+\(.*\{)$/static inline \1 \2/' "$c" >"$dir/inline.c"
refuses "definitions written otherwise" 1 "$dir/inline.c" "$dir/u" 50

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "w2c_split: all checks passed"
