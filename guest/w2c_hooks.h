/*
 * Included (-include) when compiling wasm2c's output: hooks the generated
 * code offers no other way to reach. guest/build.sh rewrites the data
 * segment copies of init_memories() into ERYX_LOAD_DATA.
 *
 * A sandbox made from a runtime's snapshot maps the snapshot over its memory
 * right after instantiation, so copying the 3 MB of data segments first would
 * only dirty pages that are thrown away. eryx__w2c_skip_data_segments
 * (src/core/snapshot.c) is set around such instantiations.
 */
#ifndef ERYX_W2C_HOOKS_H
#define ERYX_W2C_HOOKS_H

extern _Thread_local int eryx__w2c_skip_data_segments;

#define ERYX_LOAD_DATA(m, o, i, s)              \
    do {                                        \
        if (!eryx__w2c_skip_data_segments)      \
            LOAD_DATA(m, o, i, s);              \
    } while (0)

#endif
