/*
 * How wasm2c's output reaches linear memory. guest/w2c_rewrite.sh makes
 * every load and store go through ERYX_MEM_LOAD / ERYX_MEM_STORE and every
 * bulk copy (memory.fill, memory.copy, data segments) through ERYX_MEM_BULK,
 * and replaces wasm2c's forced read after each load by ERYX_MEM_LOADED.
 *
 * With ERYX_W2C_SEGMENT=1 (the default on x86-64) memory is addressed as
 * %gs:address, the engine keeping %gs's base at the running instance's
 * memory (src/engine/segment.c explains why, docs/performance.md measures
 * it); the code must then run under an engine told so with
 * eryx__engine_use_segment_base(). Otherwise the accesses are wasm2c's own:
 * memory.data + address.
 */
#ifndef ERYX_W2C_SEGMENT_H
#define ERYX_W2C_SEGMENT_H

#if ERYX_W2C_SEGMENT
#include <stdint.h>

/* GCC 12 crashes (internal compiler error in fold_const_aggregate_ref) when
 * it folds a __seg_gs access at an address it has computed; an empty asm
 * hides the address from it. Clang needs no such help. */
#if defined(__clang__)
#define ERYX_SEG_ADDR(addr) ((uintptr_t)(addr))
#else
#define ERYX_SEG_ADDR(addr)                     \
    __extension__({                             \
        uint64_t eryx_a_ = (addr);              \
        __asm__("" : "+r"(eryx_a_));            \
        (uintptr_t)eryx_a_;                     \
    })
#endif

/* Unaligned accesses are allowed in wasm, and its memory has no types: an
 * i64.store may be read back by an i32.load. The typedef says both, or the
 * compiler's type-based alias analysis would let it reorder a store of one
 * width past a load of another at the same address, or reuse a value loaded
 * before such a store. wasm2c's empty asm after each load used to stop both
 * by being a barrier; w2c_rewrite.sh drops it (ERYX_MEM_LOADED below), and
 * tests/engine/test_memory.c's test_mixed_widths fails without this
 * attribute (docs/performance.md). */
#define ERYX_MEM_LOAD(dst, mem, addr, t)                                    \
    do {                                                                    \
        typedef t __attribute__((aligned(1), may_alias)) eryx_unaligned_;  \
        (dst) = *(const __seg_gs eryx_unaligned_ *)ERYX_SEG_ADDR(addr);     \
    } while (0)
#define ERYX_MEM_STORE(mem, addr, val, t)                                   \
    do {                                                                    \
        typedef t __attribute__((aligned(1), may_alias)) eryx_unaligned_;  \
        *(__seg_gs eryx_unaligned_ *)ERYX_SEG_ADDR(addr) = (val);           \
    } while (0)
/* memset/memmove/memcpy reach the memory through ordinary pointers. clang-22
 * and gcc-12 already treat %gs accesses as possibly aliasing those
 * (docs/performance.md, "The segment on Intel"); the fences keep the order
 * whatever a later compiler concludes about the two address spaces, and
 * cost nothing measured. */
#define ERYX_MEM_BULK(call)                     \
    do {                                        \
        __asm__ volatile("" ::: "memory");      \
        call;                                   \
        __asm__ volatile("" ::: "memory");      \
    } while (0)

#else

#define ERYX_MEM_LOAD(dst, mem, addr, t) wasm_rt_memcpy(&(dst), &(mem)->data[addr], sizeof(t))
#define ERYX_MEM_STORE(mem, addr, val, t) wasm_rt_memcpy(&(mem)->data[addr], &(val), sizeof(t))
#define ERYX_MEM_BULK(call) call

#endif

/* Where wasm2c's load helpers had their forced read (an empty asm taking the
 * loaded value: a barrier to the compiler on every load). Nothing: the
 * accesses above are correct without it, and a load whose value is unused
 * may then go, as it would in C (guest/w2c_rewrite.sh says why). */
#define ERYX_MEM_LOADED(value) ((void)0)

#endif
