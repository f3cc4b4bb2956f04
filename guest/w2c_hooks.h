/*
 * Included (-include) when compiling wasm2c's output: hooks the generated
 * code offers no other way to reach. guest/w2c_rewrite.sh rewrites four
 * things in that output to use them:
 *
 * - the funcref table is static, read-only data (guest/w2c_table.h):
 *   its elem segment is laid out by the assembler instead of copied into
 *   a table at instantiation, and call_indirect reads it, passing the
 *   caller's instance;
 * - the data segment copies of init_memories() go through ERYX_LOAD_DATA.
 *   A sandbox made from a runtime's image maps the image over its memory
 *   right after instantiation, so copying the 3 MB of data segments first
 *   would only dirty pages that are thrown away;
 *   eryx__w2c_skip_data_segments (src/core/snapshot.c) is set around such
 *   instantiations;
 * - FUNC_PROLOGUE (every function entry) and every loop header charge one
 *   unit of fuel (ERYX_FUEL_TICK), and memory.fill and memory.copy one per
 *   16 bytes (ERYX_FUEL_BULK): a deterministic count of guest work;
 * - every load and store of linear memory, and the bulk copies, go through
 *   the macros of w2c_segment.h, without wasm2c's forced read after each
 *   load (ERYX_MEM_LOADED, which w2c_segment.h explains).
 */
#ifndef ERYX_W2C_HOOKS_H
#define ERYX_W2C_HOOKS_H

#include <wasm-rt.h>

#include "host_instance.h"

extern _Thread_local int eryx__w2c_skip_data_segments;

#define ERYX_LOAD_DATA(m, o, i, s)              \
    do {                                        \
        if (!eryx__w2c_skip_data_segments)      \
            LOAD_DATA(m, o, i, s);              \
    } while (0)

#define ERYX_FUEL_TICK()                                                    \
    do {                                                                    \
        if (__builtin_expect(--instance->Z_eryx_instance->fuel < 0, 0))     \
            eryx__fuel_out(instance->Z_eryx_instance);                      \
    } while (0)

/* A bulk instruction of n bytes costs n / 16 units, as the host's scans do
 * (src/core/host_imports.c). memset and memmove take about a cycle for 16
 * bytes, less than a function entry or a loop's turn: the charge errs on
 * the dear side, and keeps what a unit buys within a small factor of
 * itself. Charged before the copy, so a run without the fuel for it stops
 * without doing it. n is a u32: no charge can wrap the counter. */
#define ERYX_FUEL_BULK(n)                                                   \
    do {                                                                    \
        instance->Z_eryx_instance->fuel -= (int64_t)((n) >> 4);             \
        if (__builtin_expect(instance->Z_eryx_instance->fuel < 0, 0))       \
            eryx__fuel_out(instance->Z_eryx_instance);                      \
    } while (0)

#include "w2c_segment.h"
#include "w2c_table.h"

#endif
