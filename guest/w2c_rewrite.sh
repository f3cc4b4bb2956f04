#!/usr/bin/env bash
# Rewrites wasm2c's output in place so that it reaches our hooks
# (guest/w2c_hooks.h, guest/w2c_segment.h).
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
# usage: guest/w2c_rewrite.sh FILE.c [--memory-only] [--fuel]
#   --memory-only  only the memory accesses (w2c_segment.h), for modules
#                  other than the Python guest (the engine tests)
#   --fuel         also charge fuel at function entries and loop headers
set -euo pipefail
file=$1
shift
memory_only=0 fuel=0
for a in "$@"; do
    case $a in
        --memory-only) memory_only=1 ;;
        --fuel) fuel=1 ;;
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

# One funcref table for every instance (src/engine/engine.h, "Shared
# tables"). Sound only if the table is never written after instantiation and
# holds only the module's own functions (whose instance is the caller's):
# checked here, on the generated code, or the build fails.
share_table() {
    # No table instruction writes it: the helpers of table.set/fill/copy/
    # grow are defined, never called, and funcref_table_init (table.init as
    # well as the elem segments) is called only from init_tables.
    if grep -E '(funcref_table_(set|fill|copy)|wasm_rt_grow_funcref_table)\(' "$file" |
            grep -qv 'static inline'; then
        fail "the guest writes its table: it cannot be shared"
    fi
    local inits segs
    inits=$(grep -E 'funcref_table_init\(' "$file" | grep -cv '^static inline void funcref_table_init(' || true)
    segs=$(count_in init_tables '^  funcref_table_init\(&instance->w2c_T0, ')
    if [ "$inits" -ne "$segs" ]; then
        fail "the guest writes its table (table.init: $inits calls, $segs in init_tables): it cannot be shared"
    fi
    # Every elem segment entry is a function of the module (offset 0 from
    # the instance): {type, (wasm_rt_function_ptr_t)&w2c_NAME, 0}.
    if grep -E '^  \{[0-9]+, \(wasm_rt_function_ptr_t\)&' "$file" |
            grep -qvE '^  \{[0-9]+, \(wasm_rt_function_ptr_t\)&w2c_[A-Za-z0-9_]+, 0\},$'; then
        fail "the table holds imported functions: it cannot be shared"
    fi
    # call_indirect passes the caller's instance: one entry instance read
    # per call site.
    rewrite "call_indirect instance" "$(count 'CALL_INDIRECT\(instance->w2c_T0,')" \
        'instance->w2c_T0\.data\[([A-Za-z0-9_]*)\]\.module_instance' 'instance'
    # The elem segments are not copied into a table that is shared.
    rewrite "elem segment init" "$segs" \
        '^  funcref_table_init\(&instance->w2c_T0,' '  ERYX_FUNCREF_TABLE_INIT(\&instance->w2c_T0,'
    # Nothing else reads an entry's instance: module_instance is left only in
    # funcref_table_init's parameter and its one use.
    local reads
    reads=$(grep -c 'module_instance' "$file" || true)
    if [ "$reads" -ne 2 ] ||
       grep 'module_instance' "$file" | grep -qvE '^ *void\* module_instance,$|\(char\*\)module_instance \+ src_expr->module_offset\};$'; then
        fail "wasm2c's output reads module_instance somewhere new"
    fi
}

# Every load and store, and the bulk copies (memory.fill, memory.copy and
# the data segment copies of load_data), for the %gs segment. Each is one
# line of a helper or macro wasm2c defines once (load_data twice: the
# big-endian variant too, unused here).
rewrite "load" 1 'wasm_rt_memcpy\(&result, &mem->data\[addr\], sizeof\(t1\)\);' \
    'ERYX_MEM_LOAD(result, mem, addr, t1);'
rewrite "store" 1 'wasm_rt_memcpy\(&mem->data\[addr\], &wrapped, sizeof\(t1\)\);' \
    'ERYX_MEM_STORE(mem, addr, wrapped, t1);'
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
    share_table
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
fi
