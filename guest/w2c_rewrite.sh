#!/usr/bin/env bash
# Rewrites wasm2c's output in place so that it reaches our hooks
# (guest/w2c_hooks.h, guest/w2c_segment.h), and fails if wasm2c's output no
# longer has a line a hook needs (a new wabt must be looked at, not guessed).
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

# One funcref table for every instance (src/engine/engine.h, "Shared
# tables"). Sound only if the table is never written after instantiation and
# holds only the module's own functions (whose instance is the caller's):
# checked here, on the generated code, or the build fails.
share_table() {
    local f=$1
    # No table instruction writes it: their helpers are defined, never called.
    if grep -E '(funcref_table_(set|fill|copy)|wasm_rt_grow_funcref_table)\(' "$f" |
            grep -qv 'static inline'; then
        echo "w2c_rewrite.sh: the guest writes its table: it cannot be shared" >&2
        exit 1
    fi
    # Every elem segment entry is a function of the module (offset 0 from
    # the instance): {type, (wasm_rt_function_ptr_t)&w2c_NAME, 0}.
    if grep -E '^  \{[0-9]+, \(wasm_rt_function_ptr_t\)&' "$f" |
            grep -qvE '^  \{[0-9]+, \(wasm_rt_function_ptr_t\)&w2c_[A-Za-z0-9_]+, 0\},$'; then
        echo "w2c_rewrite.sh: the table holds imported functions: it cannot be shared" >&2
        exit 1
    fi
    sed -i -e 's/instance->w2c_T0\.data\[\([A-Za-z0-9_]*\)\]\.module_instance/instance/g' \
           -e 's/^  funcref_table_init(&instance->w2c_T0,/  ERYX_FUNCREF_TABLE_INIT(\&instance->w2c_T0,/' "$f"
    # Nothing else reads an entry's instance.
    if grep 'module_instance' "$f" | grep -qvE '^ *void\* module_instance,$|\(char\*\)module_instance \+ src_expr->module_offset\};$'; then
        echo "w2c_rewrite.sh: wasm2c's output reads module_instance somewhere new" >&2
        exit 1
    fi
}

# Every load and store, and the bulk copies (memory.fill, memory.copy and
# the data segment copies of load_data), for the %gs segment.
sed -i -e 's/wasm_rt_memcpy(&result, &mem->data\[addr\], sizeof(t1));/ERYX_MEM_LOAD(result, mem, addr, t1);/' \
       -e 's/wasm_rt_memcpy(&mem->data\[addr\], &wrapped, sizeof(t1));/ERYX_MEM_STORE(mem, addr, wrapped, t1);/' \
       -e 's/^  \(memset(mem->data + d, val, n)\);$/  ERYX_MEM_BULK(\1);/' \
       -e 's/^  \(memmove(dest->data + dest_addr, src->data + src_addr, n)\);$/  ERYX_MEM_BULK(\1);/' \
       -e 's/^  \(memcpy(dest, src, n)\);$/  ERYX_MEM_BULK(\1);/' "$file"
hooks=('ERYX_MEM_LOAD(result, mem, addr, t1);' 'ERYX_MEM_STORE(mem, addr, wrapped, t1);'
       '^  ERYX_MEM_BULK(memset(' '^  ERYX_MEM_BULK(memmove(' '^  ERYX_MEM_BULK(memcpy(')
if [ "$memory_only" = 0 ]; then
    # Data segment copies, skipped when a sandbox maps an image instead.
    sed -i -e 's/^  LOAD_DATA(instance->w2c_memory,/  ERYX_LOAD_DATA(instance->w2c_memory,/' "$file"
    hooks+=('^  ERYX_LOAD_DATA(')
    share_table "$file"
    hooks+=('^  ERYX_FUNCREF_TABLE_INIT(&instance->w2c_T0,')
fi
if [ "$fuel" = 1 ]; then
    # Fuel at function entries (FUNC_PROLOGUE) and loop headers (w2c_L
    # labels): ~15-20 % (docs/limits.md).
    sed -i -e 's/^#define FUNC_PROLOGUE$/#define FUNC_PROLOGUE ERYX_FUEL_TICK()/' \
           -e 's/^\( *w2c_L[0-9]*:\) $/\1 ERYX_FUEL_TICK();/' "$file"
    hooks+=('^#define FUNC_PROLOGUE ERYX_FUEL_TICK()' 'w2c_L[0-9]*: ERYX_FUEL_TICK();')
fi
for hook in "${hooks[@]}"; do
    if ! grep -q "$hook" "$file"; then
        echo "w2c_rewrite.sh: wasm2c's output changed: no '$hook' in $file" >&2
        exit 1
    fi
done
