#!/usr/bin/env bash
# Rewrites wasm2c's output in place so that it reaches our hooks
# (guest/w2c_hooks.h, guest/w2c_segment.h, guest/w2c_table.h).
#
# Every rewrite is checked, and the script fails (and with it the build)
# rather than produce code that silently lacks a hook: each replacement must
# apply exactly as many times as expected, and never zero times. Where the
# expected number is a property of the module (data segments, call_indirect
# sites, loops) it is counted independently, with a looser pattern for the
# same construct in any form, so that wasm2c writing it differently shows as
# a mismatch instead of a construct left alone. Fuel is checked on the result:
# every backward jump (a wasm loop) must land on a label that charges fuel.
# A new wabt must be looked at, not guessed (tests/engine/test_w2c_rewrite.sh
# shows each check failing on a modified input).
#
# usage: guest/w2c_rewrite.sh FILE.c [--memory-only] [--table] [--dispatch] [--fuel]
#   --memory-only  only the memory accesses (w2c_segment.h), for modules
#                  other than the Python guest (the engine tests)
#   --table        with --memory-only: the static table too (w2c_table.h)
#   --dispatch     with --memory-only: the dispatch tables too (below)
#   --fuel         also charge fuel at function entries, loop headers and
#                  bulk memory instructions (by their length)
set -euo pipefail
file=$1
shift
memory_only=0 fuel=0 table=0 dispatch=0
for a in "$@"; do
    case $a in
        --memory-only) memory_only=1 ;;
        --fuel) fuel=1 ;;
        --table) table=1 ;;
        --dispatch) dispatch=1 ;;
        *) echo "w2c_rewrite.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

fail() {
    echo "w2c_rewrite.sh: $file: $*" >&2
    exit 1
}

# Occurrences (not lines) of the extended regex $1 in the file.
count() {
    { grep -oE -- "$1" "$file" || true; } | wc -l
}

# Lines matching the extended regex $2 inside the body of the generated
# function $1 (from its "static void NAME(" line to the next "}" line).
count_in() {
    FN="$1" RE="$2" awk '
        index($0, "static void " ENVIRON["FN"] "(") == 1 { inside = 1; next }
        inside && /^}/ { inside = 0 }
        inside && $0 ~ ENVIRON["RE"] { n++ }
        END { print n + 0 }' "$file"
}

# rewrite WHAT WANT FROM TO: replaces every occurrence of the extended
# regex FROM by TO (sed -E syntax, \1 for groups); fails unless FROM
# occurred exactly WANT times (WANT > 0) and occurs no more afterwards.
rewrite() {
    local what=$1 want=$2 from=$3 to=$4 n
    [ "$want" -gt 0 ] || fail "$what: expected no occurrence; is this the module it is meant for?"
    n=$(count "$from")
    [ "$n" -eq "$want" ] || fail "$what: '$from' occurs $n times, expected $want: wasm2c's output changed"
    sed -E -i -e "s/$from/$to/g" "$file"
    n=$(count "$from")
    [ "$n" -eq 0 ] || fail "$what: '$from' still occurs $n times after the rewrite"
}

# The funcref table as read-only data in the binary (guest/w2c_table.h).
# wasm2c fills a table at every instantiation from an elem segment, an
# array of function pointers that the dynamic loader relocates at every
# start of a position-independent binary (39 pages of the Python guest
# written before main, then 33 more for the table: docs/performance.md,
# "Start-up"). When the table is never written after instantiation, holds
# only the module's own functions and is filled by one elem segment, its
# contents are known when the module is compiled: the segment becomes a
# table of {type, offset of the function from the table} that the assembler
# resolves (no relocation left), and call_indirect reads it directly,
# comparing the entry's type, made canonical here (two indices of one
# signature get one number, as wasm_rt_register_func_type would), with the
# call's. All checked on the generated code, or the build fails.
static_table() {
    # No table instruction writes it: the helpers of table.set/fill/copy/
    # grow are defined, never called; funcref_table_init (table.init as
    # well as the elem segments) is called only from init_tables, once.
    if grep -E '(funcref_table_(set|fill|copy)|wasm_rt_grow_funcref_table)\(' "$file" |
            grep -qv 'static inline'; then
        fail "the module writes its table: it cannot be static"
    fi
    local inits segs init alloc n dest size
    inits=$(grep -E 'funcref_table_init\(' "$file" | grep -cv '^static inline void funcref_table_init(' || true)
    segs=$(count_in init_tables '^  funcref_table_init\(&instance->w2c_T0, ')
    [ "$inits" -eq "$segs" ] ||
        fail "the module writes its table (table.init: $inits calls, $segs in init_tables): it cannot be static"
    [ "$segs" -eq 1 ] || fail "$segs elem segments fill the table; the static table takes exactly one"
    # The one segment, whole: funcref_table_init(&T0, SEG, N, DEST, 0, N, ...).
    init=$(grep -E '^  funcref_table_init\(&instance->w2c_T0, ' "$file")
    [[ $init =~ ^\ \ funcref_table_init\(\&instance-\>w2c_T0,\ elem_segment_exprs_w2c_e0,\ ([0-9]+),\ ([0-9]+)u,\ 0,\ ([0-9]+),\ instance,\ func_types\)\;$ ]] ||
        fail "the elem segment is copied otherwise: $init"
    n=${BASH_REMATCH[1]} dest=${BASH_REMATCH[2]}
    [ "${BASH_REMATCH[3]}" = "$n" ] || fail "the elem segment is copied in part: $init"
    alloc=$(grep -E '^  wasm_rt_allocate_funcref_table\(' "$file")
    [[ $alloc =~ ^\ \ wasm_rt_allocate_funcref_table\(\&instance-\>w2c_T0,\ ([0-9]+),\ ([0-9]+)\)\;$ ]] ||
        fail "the module has other tables, or makes its table otherwise: $alloc"
    size=${BASH_REMATCH[1]}
    [ $((dest + n)) -le "$size" ] || fail "the elem segment does not fit the table"
    # Every entry is a function of the module (offset 0 from the instance):
    # {type, (wasm_rt_function_ptr_t)&w2c_NAME, 0}, and there are n of them.
    if grep -E '^  \{[0-9]+, \(wasm_rt_function_ptr_t\)' "$file" |
            grep -qvE '^  \{[0-9]+, \(wasm_rt_function_ptr_t\)&w2c_[A-Za-z0-9_]+, 0\},$'; then
        fail "the table holds imported functions: it cannot be static"
    fi
    [ "$(count '^  \{[0-9]+, \(wasm_rt_function_ptr_t\)&w2c_[A-Za-z0-9_]+, 0\},$')" -eq "$n" ] ||
        fail "the elem segment does not hold $n functions"
    # Nothing else reads the table or an entry's instance.
    local sites others
    sites=$(count 'CALL_INDIRECT\(instance->w2c_T0, ')
    [ "$sites" -gt 0 ] || fail "no call_indirect of the table"
    [ "$(count 'CALL_INDIRECT\(instance->w2c_T0, [^(;]*\(\*\)\([^)]*\), [0-9]+, [A-Za-z0-9_]+, instance->w2c_T0\.data\[[A-Za-z0-9_]+\]\.module_instance')" -eq "$sites" ] ||
        fail "a call_indirect is written otherwise"
    others=$(grep -oE 'w2c_T0\b[^ ,;)]*' "$file" | grep -cvE '^w2c_T0(\.data\[[A-Za-z0-9_]+\]\.module_instance)?$' || true)
    [ "$others" -eq 0 ] || fail "the table is used otherwise ($others times)"
    [ "$(count '^  wasm_rt_free_funcref_table\(&instance->w2c_T0\);$')" -eq 1 ] ||
        fail "the table is freed otherwise"
    [ "$(count '^#define CALL_INDIRECT\(table, t, ft, x, \.\.\.\)')" -eq 1 ] ||
        fail "wasm2c's CALL_INDIRECT is defined otherwise"

    # One pass: canonical types, the segment as a function emitting the
    # table (guest/w2c_table.h), the call sites with canonical types and the
    # caller's instance, no table made.
    local tmp="$file.table"
    awk -v n="$n" -v dest="$dest" '
        function fail(msg) { print "w2c_rewrite.sh: " msg > "/dev/stderr"; bad = 1; exit 1 }
        # func_types[I] = wasm_rt_register_func_type(SIGNATURE);
        match($0, /^  func_types\[[0-9]+\] = wasm_rt_register_func_type\(.*\);$/) {
            i = substr($0, 14, index($0, "]") - 14) + 0
            sig = substr($0, index($0, "("))
            if (!(sig in first)) first[sig] = i
            canon[i] = first[sig]
            ntypes++
        }
        macro && !/\\$/ {
            print
            print "#define ERYX_ELEM_FIRST " dest "u"
            print "#define ERYX_ELEM_COUNT " n "u"
            print "#define CALL_INDIRECT(table, t, ft, x, ...) ERYX_CALL_INDIRECT(t, ft, x, __VA_ARGS__)"
            macro = 0; done_macro++; next
        }
        /^#define CALL_INDIRECT\(table, t, ft, x, \.\.\.\)/ {
            sub(/^#define CALL_INDIRECT/, "#define WASM2C_CALL_INDIRECT"); print; macro = 1; next
        }
        /^static const wasm_elem_segment_expr_t elem_segment_exprs_w2c_e0\[\] = \{$/ {
            print "__attribute__((used)) static void eryx_emit_elems(void) {"
            print "  ERYX_ELEMS_BEGIN();"
            seg = 1; next
        }
        seg && /^\};$/ { print "}"; seg = 0; next }
        seg {
            if (!match($0, /^  \{[0-9]+, \(wasm_rt_function_ptr_t\)&w2c_[A-Za-z0-9_]+, 0\},$/))
                fail("line " NR ": not an elem entry: " $0)
            t = substr($0, 4, index($0, ",") - 4) + 0
            if (!(t in canon)) fail("line " NR ": elem entry of an unknown type " t)
            f = substr($0, index($0, "&") + 1); sub(/, 0\},$/, "", f)
            print "  ERYX_ELEM(" canon[t] ", " f ");"
            elems++; next
        }
        /^  wasm_rt_allocate_funcref_table\(&instance->w2c_T0, / {
            print "  /* the table is static: guest/w2c_table.h */"; made++; next
        }
        /^  funcref_table_init\(&instance->w2c_T0, / { inited++; next }
        /^  wasm_rt_free_funcref_table\(&instance->w2c_T0\);$/ { freed++; next }
        /CALL_INDIRECT\(instance->w2c_T0, / {
            out = ""; s = $0
            while (match(s, /CALL_INDIRECT\(instance->w2c_T0, [^(;]*\(\*\)\([^)]*\), [0-9]+, /)) {
                head = substr(s, RSTART, RLENGTH)
                pre = substr(head, 1, RLENGTH - 2); sub(/[0-9]+$/, "", pre)
                ft = substr(head, length(pre) + 1); sub(/, $/, "", ft); ft += 0
                if (!(ft in canon)) fail("line " NR ": call_indirect of an unknown type " ft)
                out = out substr(s, 1, RSTART - 1) pre canon[ft] ", "
                s = substr(s, RSTART + RLENGTH)
                calls++
            }
            $0 = out s
            gsub(/instance->w2c_T0\.data\[[A-Za-z0-9_]+\]\.module_instance/, "instance")
        }
        { print }
        END {
            if (bad) exit 1
            if (elems != n) fail("the segment has " elems " entries, not " n)
            if (done_macro != 1 || made != 1 || inited != 1 || freed != 1)
                fail("the table is made, filled or freed otherwise")
            if (ntypes == 0) fail("no function type registered")
            print calls > "/dev/stderr"
        }' "$file" >"$tmp" 2>"$tmp.calls" || { cat "$tmp.calls" >&2; rm -f "$tmp" "$tmp.calls"; fail "the static table"; }
    local calls
    calls=$(tail -n 1 "$tmp.calls")
    rm -f "$tmp.calls"
    [ "$calls" -eq "$sites" ] || { rm -f "$tmp"; fail "rewrote $calls call_indirect sites of $sites"; }
    mv "$tmp" "$file"
    [ "$(count 'w2c_T0\b')" -eq "$sites" ] || fail "the table is still used after the rewrite"
    [ "$(count 'module_instance')" -eq 2 ] || fail "wasm2c's output reads module_instance somewhere new"
}

# Every load and store, and the bulk copies (memory.fill, memory.copy and
# the data segment copies of load_data), for the %gs segment. Each is one
# line of a helper or macro wasm2c defines once (load_data twice: the
# big-endian variant too, unused here).
rewrite "load" 1 'wasm_rt_memcpy\(&result, &mem->data\[addr\], sizeof\(t1\)\);' \
    'ERYX_MEM_LOAD(result, mem, addr, t1);'
rewrite "store" 1 'wasm_rt_memcpy\(&mem->data\[addr\], &wrapped, sizeof\(t1\)\);' \
    'ERYX_MEM_STORE(mem, addr, wrapped, t1);'
# wasm2c's load helpers end with an empty asm that takes the loaded value
# (wasm_asm("" ::"r"(result))), so that a load whose value is never used
# still happens and traps when out of bounds. To the compiler that asm may
# read and write memory: every load is also a barrier, which no later load
# can reuse a value across or be hoisted over. Dropped (ERYX_MEM_LOADED is
# empty): a load the compiler removes reads nothing, so isolation is
# unchanged; only the trap of an unused out-of-bounds load goes.
# docs/performance.md ("Without wasm2c's forced read") measures it.
rewrite "forced read" 2 '^( *)wasm_asm\("" ::"r"\(result\)\);' '\1ERYX_MEM_LOADED(result);'
rewrite "memory.fill" 1 '^  (memset\(mem->data \+ d, val, n\));$' '  ERYX_MEM_BULK(\1);'
rewrite "memory.copy" 1 '^  (memmove\(dest->data \+ dest_addr, src->data \+ src_addr, n\));$' \
    '  ERYX_MEM_BULK(\1);'
rewrite "load_data" 2 '^  (memcpy\(dest, src, n\));$' '  ERYX_MEM_BULK(\1);'

if [ "$memory_only" = 0 ]; then
    # Data segment copies, skipped when a sandbox maps an image instead:
    # every LOAD_DATA of a memory (wherever and however written) must be one
    # of init_memories' lines rewritten here.
    rewrite "data segments" "$(count 'LOAD_DATA\(instance->')" \
        '^  LOAD_DATA\(instance->w2c_memory,' '  ERYX_LOAD_DATA(instance->w2c_memory,'
fi
if [ "$memory_only" = 0 ] || [ "$table" = 1 ]; then
    static_table
fi

# An interpreter's dispatch as a table of label addresses. wasm2c writes a
# br_table as a C switch, which clang compiles, in position-independent
# code, to a table of 32-bit offsets: load the offset, add the table's
# address, jump (three instructions on every bytecode of the Python eval
# loop). A switch of at least 200 cases at the head of a loop (an
# interpreter's dispatch; in the Python guest, _PyEval_EvalFrameDefault's)
# becomes a static table of label addresses and a computed goto, as native
# CPython's dispatch is: one indirect jump through the table. Only when
# every target is a label further down (a block's end, never a loop's
# head), so no backward jump is hidden from the fuel check below. Sets
# `dispatched` to how many switches it rewrote.
dispatch_tables() {
    local tmp=$file.dispatch
    awk '
        function flush(   i) { for (i = 1; i <= nbuf; i++) print buf[i]; nbuf = 0 }
        function label_of(line,   name) {
            name = line; sub(/^ */, "", name); sub(/:.*/, "", name); return name
        }
        state == 0 {
            if ($0 ~ /^}/) { split("", seen); loop_nr = -100 }
            if ($0 ~ /^ *w2c_L[0-9]+: *$/) loop_nr = NR
            if ($0 ~ /^ *w2c_[A-Za-z0-9_]+:/) seen[label_of($0)] = 1
            if ($0 ~ /^ *switch \(w2c_[a-z][0-9]+\) \{$/ && NR - loop_nr <= 6) {
                state = 1; nbuf = 1; buf[1] = $0
                var = $0; sub(/^ *switch \(/, "", var); sub(/\).*/, "", var)
                indent = $0; sub(/switch.*/, "", indent)
                ncase = 0; maxc = -1; dflt = ""; split("", target)
                next
            }
            print
            next
        }
        {
            buf[++nbuf] = $0
            if ($0 ~ /^ *case [0-9]+: goto w2c_[A-Za-z0-9_]+;$/) {
                c = $0; sub(/^ *case /, "", c); sub(/:.*/, "", c)
                t = $0; sub(/.*goto /, "", t); sub(/;$/, "", t)
                if ((c + 0) in target) { print "case " c " twice" > "/dev/stderr"; exit 1 }
                target[c + 0] = t; ncase++
                if (c + 0 > maxc) maxc = c + 0
                next
            }
            if ($0 ~ /^ *default: goto w2c_[A-Za-z0-9_]+;$/) {
                dflt = $0; sub(/.*goto /, "", dflt); sub(/;$/, "", dflt)
                next
            }
            if ($0 !~ /^ *}$/) {
                printf "line %d: a switch written otherwise: %s\n", NR, $0 > "/dev/stderr"
                exit 1
            }
            state = 0
            ok = ncase >= 200 && dflt != "" && !(dflt in seen)
            for (c in target) if (target[c] in seen) ok = 0
            if (!ok) { flush(); next }
            size = maxc + 1
            line = indent "{ static const void *const eryx_dispatch_" NR "[" size "] = {"
            for (c = 0; c < size; c++)
                line = line (c ? ", " : "") "&&" ((c in target) ? target[c] : dflt)
            print line "};"
            print indent "  if (" var " < " size "u) goto *eryx_dispatch_" NR "[" var "];"
            print indent "  goto " dflt "; }"
            nbuf = 0; rewritten++
        }
        END { if (state) { print "the file ends in a switch" > "/dev/stderr"; exit 1 }
              print rewritten + 0 > "/dev/stderr" }' "$file" >"$tmp" 2>"$tmp.n" || {
        local why
        why=$(head -n 1 "$tmp.n")
        rm -f "$tmp" "$tmp.n"
        fail "dispatch: $why"
    }
    dispatched=$(tail -n 1 "$tmp.n")
    rm -f "$tmp.n"
    mv "$tmp" "$file"
}

if [ "$memory_only" = 0 ] || [ "$dispatch" = 1 ]; then
    dispatch_tables
    [ "$dispatched" -ge 1 ] || fail "no interpreter dispatch (a switch of 200 cases at a loop head) found"
fi

# Fails unless every backward goto of every function (the only way wasm2c's
# output repeats code without a call: a wasm loop) targets a label that
# charges fuel. A label is "NAME:" at the start of a line; a function ends
# at a "}" line.
check_loop_fuel() {
    local backward
    backward=$(awk '
        /^}/ { split("", seen) }
        match($0, /^ *[A-Za-z_][A-Za-z0-9_]*:/) {
            name = substr($0, RSTART, RLENGTH - 1)
            sub(/^ */, "", name)
            seen[name] = ($0 ~ /: ERYX_FUEL_TICK\(\);$/) ? "tick" : "plain"
        }
        {
            s = $0
            while (match(s, /goto [A-Za-z_][A-Za-z0-9_]*;/)) {
                target = substr(s, RSTART + 5, RLENGTH - 6)
                s = substr(s, RSTART + RLENGTH)
                if (!(target in seen))
                    continue
                if (seen[target] != "tick") {
                    printf "line %d: backward goto %s without fuel\n", NR, target > "/dev/stderr"
                    bad = 1
                }
                n++
            }
        }
        END { print n + 0; exit bad }' "$file") || fail "a loop does not charge fuel"
    [ "$backward" -gt 0 ] || fail "no loop found: wasm2c's output changed"
}

if [ "$fuel" = 1 ]; then
    # Fuel at function entries (FUNC_PROLOGUE) and loop headers (wasm2c
    # writes "LABEL: " for a loop, "LABEL:;" for the end of a block): ~15-20 %
    # (docs/limits.md).
    rewrite "function entry fuel" 1 '^#define FUNC_PROLOGUE$' '#define FUNC_PROLOGUE ERYX_FUEL_TICK()'
    [ "$(count '^ *FUNC_PROLOGUE;$')" -gt 0 ] || fail "no function uses FUNC_PROLOGUE"
    rewrite "loop fuel" "$(count '^ *w2c_L[0-9]+:')" '^( *w2c_L[0-9]+:) $' '\1 ERYX_FUEL_TICK();'
    check_loop_fuel
    # And the bulk instructions by their length (ERYX_FUEL_BULK), charged
    # before the copy at each call site, where the instance is at hand (the
    # helpers get only the memory). Otherwise one unit bought a 100 MB
    # memset: `while True: c = b[1:]` ran 100 times longer than
    # `while True: pass` on the same fuel. Every call, however written,
    # must be a rewritten one (the helper's definition is the one other).
    local_arg='[^,;()]+'
    rewrite "memory.fill fuel" "$(( $(count '\bmemory_fill\(') - 1 ))" \
        "^( *)(memory_fill\(&instance->w2c_memory, $local_arg, $local_arg, ($local_arg)\);)\$" \
        '\1ERYX_FUEL_BULK(\3); \2'
    rewrite "memory.copy fuel" "$(( $(count '\bmemory_copy\(') - 1 ))" \
        "^( *)(memory_copy\(&instance->w2c_memory, &instance->w2c_memory, $local_arg, $local_arg, ($local_arg)\);)\$" \
        '\1ERYX_FUEL_BULK(\3); \2'
fi
