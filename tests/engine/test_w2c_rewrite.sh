#!/usr/bin/env bash
# guest/w2c_rewrite.sh on a small module (w2c_rewrite.wat): it rewrites what
# it should, and it fails, rather than leave a construct without its hook,
# on wasm2c output written differently and on modules whose table cannot be
# static.
# usage: test_w2c_rewrite.sh WAT2WASM WASM2C REWRITE_SH MODULE_WAT WORKDIR
set -euo pipefail
wat2wasm=$1 wasm2c=$2 rewrite=$3 wat=$4 dir=$5
rm -rf "$dir" && mkdir -p "$dir"
failures=0

# c_of NAME WAT_FILE: wasm2c's output for a module, as $dir/NAME.c.
c_of() {
    "$wat2wasm" "$2" -o "$dir/$1.wasm"
    "$wasm2c" "$dir/$1.wasm" -n r -o "$dir/$1.c"
}

# occurrences FILE FIXED_STRING
occurrences() { { grep -oF -- "$2" "$1" || true; } | wc -l; }

expect_count() {    # expect_count FILE STRING N
    local n
    n=$(occurrences "$1" "$2")
    if [ "$n" -ne "$3" ]; then
        echo "FAIL: $(basename "$1"): '$2' occurs $n times, expected $3" >&2
        failures=$((failures + 1))
    fi
}

# refuses WHAT C_FILE [OPTIONS]: the rewrite must fail on a copy of it.
refuses() {
    local what=$1 c=$2
    shift 2
    cp "$c" "$dir/refused.c"
    if "$rewrite" "$dir/refused.c" "$@" 2>"$dir/refused.err"; then
        echo "FAIL: accepted: $what" >&2
        failures=$((failures + 1))
    else
        echo "ok: refused: $what: $(tail -n 1 "$dir/refused.err")"
    fi
}

# mutate WHAT SED_EXPR [OPTIONS]: wasm2c's output edited, then refused.
mutate() {
    local what=$1 expr=$2
    shift 2
    sed -e "$expr" "$dir/good.c" >"$dir/mutated.c"
    if cmp -s "$dir/good.c" "$dir/mutated.c"; then
        echo "FAIL: the edit for '$what' changed nothing" >&2
        failures=$((failures + 1))
        return
    fi
    refuses "$what" "$dir/mutated.c" "$@"
}

c_of good "$wat"

# The module as it is: every hook in place, as many times as it has the
# construct.
cp "$dir/good.c" "$dir/full.c"
"$rewrite" "$dir/full.c" --fuel
expect_count "$dir/full.c" 'ERYX_MEM_LOAD(result, mem, addr, t1);' 1
expect_count "$dir/full.c" 'ERYX_MEM_STORE(mem, addr, wrapped, t1);' 1
expect_count "$dir/full.c" 'ERYX_MEM_BULK(' 4
expect_count "$dir/full.c" 'ERYX_MEM_LOADED(result);' 2
expect_count "$dir/full.c" 'wasm_asm(' 1
expect_count "$dir/full.c" '  ERYX_LOAD_DATA(instance->w2c_memory,' 2
expect_count "$dir/full.c" 'ERYX_ELEM(' 2
expect_count "$dir/full.c" '#define ERYX_ELEM_COUNT 2u' 1
expect_count "$dir/full.c" '  /* the table is static: guest/w2c_table.h */' 1
expect_count "$dir/full.c" 'funcref_table_init(&' 0
expect_count "$dir/full.c" 'module_instance' 2
expect_count "$dir/full.c" ', w2c_i0, instance);' 1
expect_count "$dir/full.c" '#define FUNC_PROLOGUE ERYX_FUEL_TICK()' 1
expect_count "$dir/full.c" 'w2c_L0: ERYX_FUEL_TICK();' 2
expect_count "$dir/full.c" 'w2c_L1: ERYX_FUEL_TICK();' 1
expect_count "$dir/full.c" '  ERYX_FUEL_BULK(w2c_i2); memory_fill(&instance->w2c_memory, ' 1
expect_count "$dir/full.c" '  ERYX_FUEL_BULK(w2c_i2); memory_copy(&instance->w2c_memory, ' 1
expect_count "$dir/full.c" 'goto *eryx_dispatch_' 1
expect_count "$dir/full.c" 'switch (' 0
cp "$dir/good.c" "$dir/memory.c"
"$rewrite" "$dir/memory.c" --memory-only
expect_count "$dir/memory.c" 'ERYX_MEM_' 8
expect_count "$dir/memory.c" 'ERYX_LOAD_DATA' 0
expect_count "$dir/memory.c" 'ERYX_ELEM' 0
expect_count "$dir/memory.c" 'eryx_dispatch_' 0
cp "$dir/good.c" "$dir/table.c"
"$rewrite" "$dir/table.c" --memory-only --table
expect_count "$dir/table.c" 'ERYX_MEM_' 8
expect_count "$dir/table.c" 'ERYX_LOAD_DATA' 0
expect_count "$dir/table.c" 'ERYX_ELEM(' 2

# wasm2c writing a construct differently than the script expects.
mutate "a loop label without the trailing space" '0,/^  w2c_L0: $/s//  w2c_L0:/' --fuel
mutate "a loop label named otherwise" 's/w2c_L0\b/w2c_loop0/g' --fuel
mutate "one loop's label named otherwise" '/^static void w2c_fill(/,/^}/s/w2c_L0\b/w2c_loop0/g' --fuel
mutate "no FUNC_PROLOGUE macro" 's/^#define FUNC_PROLOGUE$/#define FUNC_PROLOGUE_/' --fuel
mutate "a memory.fill whose length is an expression" \
    's/^\(  memory_fill(&instance->w2c_memory, w2c_i0, w2c_i1, \)w2c_i2);$/\1(w2c_i2));/' --fuel
mutate "a memory.copy of another memory" \
    's/^  memory_copy(&instance->w2c_memory, &instance->w2c_memory, /  memory_copy(\&instance->w2c_memory, \&instance->w2c_memory1, /' --fuel
mutate "a second load helper" 's/^\( *\)\(wasm_rt_memcpy(&result, &mem->data\[addr\], sizeof(t1));\)/&\1\2/'
mutate "a store written otherwise" 's/wasm_rt_memcpy(&mem->data\[addr\], &wrapped, sizeof(t1));/wasm_rt_memcpy(\&mem->data[addr], \&wrapped, sizeof wrapped);/' --memory-only
mutate "a dispatch switch written otherwise" 's/^\( *\)case 7: goto \(w2c_B[0-9]*\);$/\1case 7: {goto \2;}/'
mutate "a dispatch of 199 cases (no interpreter's)" '/^ *case 199: goto w2c_B[0-9]*;$/d'
mutate "a dispatch with a backward target (hidden from the fuel check)" \
    's/^\( *\)case 3: goto w2c_B[0-9]*;$/\1case 3: goto w2c_L1;/'
mutate "a forced read written otherwise" 's/wasm_asm("" ::"r"(result));/wasm_asm("" : : "r"(result));/' --memory-only
mutate "memory.fill written otherwise" 's/^  memset(mem->data + d, val, n);$/  memset(\&mem->data[d], val, n);/' --memory-only
mutate "a data segment indented otherwise" '0,/^  LOAD_DATA(instance/s//    LOAD_DATA(instance/'
mutate "an elem segment indented otherwise" 's/^  funcref_table_init(&instance/   funcref_table_init(\&instance/'
mutate "a call_indirect reading the entry's instance otherwise" \
    's/instance->w2c_T0\.data\[w2c_i0\]\.module_instance/(instance->w2c_T0.data + w2c_i0)->module_instance/'
mutate "wasm2c's CALL_INDIRECT defined otherwise" \
    's/^#define CALL_INDIRECT(table, t, ft, x, \.\.\.)/#define CALL_INDIRECT(tbl, t, ft, x, ...)/'
mutate "an elem entry at an offset from the instance" \
    's/^\(  {[0-9]*, (wasm_rt_function_ptr_t)&w2c_[A-Za-z0-9_]*, \)0},$/\18},/'
mutate "the elem segment copied in part" \
    's/\(elem_segment_exprs_w2c_e0, 2, 0u, 0, \)2,/\11,/'

# Modules whose table an instance may write or read otherwise than through
# call_indirect, or that the static table does not describe: refused.
sed 's|^  (func (export "extra")))|  (func (export "extra") (param i32) local.get 0 i32.const 0 i32.const 1 table.init 0))|' \
    "$wat" >"$dir/table_init.wat"
c_of table_init "$dir/table_init.wat"
refuses "table.init" "$dir/table_init.c"
sed 's|^  (func (export "extra")))|  (func (export "extra") (param i32) local.get 0 ref.null func table.set 0))|' \
    "$wat" >"$dir/table_set.wat"
c_of table_set "$dir/table_set.wat"
refuses "table.set" "$dir/table_set.c"
sed 's|^  (func (export "extra")))|  (func (export "extra") (result i32) table.size 0))|' \
    "$wat" >"$dir/table_size.wat"
c_of table_size "$dir/table_size.wat"
refuses "table.size" "$dir/table_size.c"
sed 's|^  (elem (i32.const 0) $seven $eight)|&\n  (elem (i32.const 2) $seven)|' "$wat" >"$dir/two_elems.wat"
c_of two_elems "$dir/two_elems.wat"
refuses "two elem segments" "$dir/two_elems.c"
sed -e 's|^(module|&\n  (import "host" "nine" (func $nine (result i32)))|' \
    -e 's|^  (elem (i32.const 0) $seven $eight)|  (elem (i32.const 0) $seven $nine)|' "$wat" >"$dir/imported.wat"
c_of imported "$dir/imported.wat"
refuses "an imported function in the table" "$dir/imported.c"
# A module without loops cannot be checked for fuel.
sed -e 's/br_if $l/drop/' -e 's/br $next/nop/' "$wat" >"$dir/no_loop.wat"
c_of no_loop "$dir/no_loop.wat"
refuses "no loop to charge" "$dir/no_loop.c" --fuel

if [ "$failures" -ne 0 ]; then
    echo "$failures failures" >&2
    exit 1
fi
echo "all ok"
