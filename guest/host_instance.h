/*
 * The instance of the guest's "eryx" import module, as both the host
 * (src/core) and the generated code (through guest/w2c_hooks.h) see it.
 * Every generated function can reach it through its `instance` argument,
 * which is why the fuel counter lives here: per sandbox, no thread-local
 * state, so it follows a fiber from thread to thread.
 */
#ifndef ERYX_GUEST_HOST_INSTANCE_H
#define ERYX_GUEST_HOST_INSTANCE_H

#include <stdint.h>

struct eryx_sandbox;

struct Z_eryx_instance_t {
    int64_t fuel;               /* decremented at every function entry and
                                   loop iteration; below 0: out of fuel */
    struct eryx_sandbox *sb;
};

/* Called by the generated code when fuel runs out: ends the guest call. */
_Noreturn void eryx__fuel_out(struct Z_eryx_instance_t *host);

#endif
