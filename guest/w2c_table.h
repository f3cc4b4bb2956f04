/*
 * The funcref table of a module whose table guest/w2c_rewrite.sh made
 * static: read-only data in the binary, not an array each instantiation
 * fills.
 *
 * The rewrite turns the module's one elem segment into eryx_emit_elems(), a
 * function never called whose ERYX_ELEM statements make the assembler lay
 * out the table in a section of its own: one entry per table slot from
 * ERYX_ELEM_FIRST on, {canonical type, the function's address minus the
 * table's}. A difference of two addresses in one binary is fixed when it is
 * linked, so the dynamic loader has nothing to relocate and the table's
 * pages stay the file's (wasm2c's segment of function pointers had one
 * relocation per entry: 39 pages written at every start of the Python
 * guest, docs/performance.md). call_indirect then checks the slot, compares
 * the entry's type with the call's (both canonical numbers written into the
 * code by the rewrite: one compare with a constant) and calls the function
 * with the caller's instance, as wasm2c's own macro would with a table
 * entry; slots outside the segment are null and trap.
 */
#ifndef ERYX_W2C_TABLE_H
#define ERYX_W2C_TABLE_H

#include <stdint.h>

typedef struct eryx_elem {
    uint32_t type;  /* canonical function type */
    int32_t to;     /* the function's address - eryx_elems */
} eryx_elem;

/* Defined by the assembler (ERYX_ELEMS_BEGIN) in the translation unit of
 * the table, a hidden global: guest/w2c_split.sh puts call_indirect sites
 * in another unit too. */
extern const eryx_elem eryx_elems[] __asm__("eryx_elems") __attribute__((visibility("hidden")));

#define ERYX_ELEMS_SECTION ".pushsection .rodata.eryx_elems,\"a\",@progbits\n"

#define ERYX_ELEMS_BEGIN() \
    __asm__(ERYX_ELEMS_SECTION ".balign 8\n.globl eryx_elems\n.hidden eryx_elems\neryx_elems:\n.popsection")

#define ERYX_ELEM(type, fn)                                                     \
    __asm__(ERYX_ELEMS_SECTION ".long %c0\n.long %c1 - eryx_elems\n.popsection" \
            : : "i"(type), "i"(&fn))

#define ERYX_ELEM_SLOT(x) ((uint32_t)(x) - ERYX_ELEM_FIRST)

#define ERYX_CALL_INDIRECT(t, ft, x, ...)                                        \
    ((LIKELY(ERYX_ELEM_SLOT(x) < ERYX_ELEM_COUNT &&                             \
             eryx_elems[ERYX_ELEM_SLOT(x)].type == (ft)) ||                     \
      TRAP(CALL_INDIRECT)),                                                      \
     ((t)(const void *)((const char *)eryx_elems + eryx_elems[ERYX_ELEM_SLOT(x)].to))(__VA_ARGS__))

#endif
