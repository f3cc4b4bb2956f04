/*
 * Shared by the engine tests: the host side of eng.wat (its imports) and a
 * way to run one of its exports inside eryx__engine_call.
 */
#ifndef ERYX_TEST_HARNESS_H
#define ERYX_TEST_HARNESS_H

#include <stdint.h>

#include "check.h"
#include "eng.h"

/* The import instance of eng.wat: "host" "exit"/"abort"/"ping"/"wait".
 * ping and wait bracket themselves with eryx__engine_enter/leave_host, as
 * the core's imports do. */
struct Z_host_instance_t {
    int pings;
    /* If set, "ping" calls this instead of returning 2 * x. */
    uint32_t (*on_ping)(struct Z_host_instance_t *host, uint32_t x);
    int waits;                  /* "wait" calls */
    int suspend_failed;         /* of those, eryx__engine_suspend returned -1 */
    uint32_t reply;             /* what "wait" returns (set by the resumer) */
    /* If set, "wait" calls this before suspending. */
    void (*on_wait)(struct Z_host_instance_t *host);
};

typedef struct eng {
    Z_eng_instance_t inst;
    struct Z_host_instance_t host;
} eng;

enum op {
    OP_LOAD32, OP_STORE32, OP_LOAD_FAR, OP_STORE_FAR, OP_LOAD64_FAR, OP_PUN, OP_STORE8, OP_FILL,
    OP_UNREACHABLE, OP_DIV_S, OP_REM_U, OP_TRUNC, OP_CALL_IND, OP_RECURSE, OP_GROW, OP_SIZE,
    OP_THROW, OP_CATCH, OP_EXIT, OP_ABORT, OP_PING,
    OP_ROUNDTRIPS, OP_WAIT_THEN, OP_COUNT, OP_INTERP
};

/* What eng_job_run runs: one export with its arguments, and its result. */
typedef struct job {
    eng *e;
    enum op op;
    uint32_t a, b, c;
    double d;
    uint64_t r;
} job;

/* eryx__guest_fn running a job (for eryx__engine_call / _call_on). */
void eng_job_run(void *job);

/* Ways wait_then(n, what) ends after its n waits. */
enum wait_then {
    WT_RETURN, WT_UNREACHABLE, WT_OOB, WT_EXIT, WT_ABORT, WT_RECURSE, WT_SPIN, WT_PING_SPIN,
    WT_PING, WT_THROW, WT_GROW_SPIN
};

/* For a test function standing in for guest code (touching linear memory
 * directly): it goes into the section eng.wat's code is in, which
 * eng_global declares as the guest code, so its faults are traps. */
#define GUEST_CODE __attribute__((section("eryx_guest_code"), noinline))

/* eryx__engine_global_init, the guest code's bounds (the section
 * eryx_guest_code) and Z_eng_init_module, once. */
void eng_global(void);

/* Instantiates inside a guarded call (as the core must) and checks it. */
void eng_new(eng *e);
void eng_free(eng *e);

/* Runs one export in a guarded call; its result goes to *out (if not NULL).
 * `c` is the third i32 argument (fill, pun) and `d` the f64 one (trunc). */
int eng_run(eng *e, enum op op, uint32_t a, uint32_t b, uint64_t *out);
int eng_run3(eng *e, enum op op, uint32_t a, uint32_t b, uint32_t c, double d, uint64_t *out,
             eryx__call_info *info);

/* Number of lines in /proc/self/maps, and resident set size in KiB. */
int maps_count(void);
long rss_kib(void);

#endif
