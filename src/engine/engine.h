/*
 * The engine: our implementation of wasm2c's runtime interface (wasm-rt.h) and
 * the one guarded way into guest code.
 *
 * Everything wasm2c-generated code needs lives here: linear memories in 8 GiB
 * guard reservations, funcref/externref tables, the per-thread unwind state
 * (the stock wasm-rt-impl.c keeps it process-global, which is wrong with
 * sandboxes on several threads), and the SIGSEGV/SIGBUS handler that turns a
 * fault in guest code into a trap.
 *
 * Rules:
 * - eryx__engine_global_init() once per process (idempotent, thread-safe)
 *   before anything else here.
 * - Guest code runs only inside eryx__engine_call(). It returns how the call
 *   ended; longjmp never crosses any other frame of ours.
 * - Host imports called by guest code run inside that frame too: they may end
 *   the call with eryx__engine_exit() (WASI proc_exit) or eryx__engine_abort().
 * - Run the generated Z_<mod>_instantiate() inside eryx__engine_call() as
 *   well: it can trap (an out-of-range data or element segment) and it is
 *   where memories and tables are allocated (see "Allocation failure").
 *
 * Allocation failure: wasm_rt_allocate_memory() and the table allocators have
 * no error return. Inside a guarded call a failure ends the call with
 * ERYX__CALL_NOMEM. Outside one they return with data == NULL, size 0 and
 * pages/max_pages 0 (a zero-page memory still has non-NULL data, so
 * data == NULL always means failure); the caller must check. Growth failures
 * are ordinary: memory.grow / table.grow return -1 to the guest.
 *
 * Memory limits: wasm_rt_memory_t.size is 32 bits, so a memory is capped at
 * 65535 pages (4 GiB - 64 KiB), one page short of the wasm32 maximum.
 *
 * The generated code should be compiled with -fstack-clash-protection so that
 * no single frame can step over a thread's stack guard page.
 */
#ifndef ERYX_ENGINE_H
#define ERYX_ENGINE_H

#include <stdint.h>
#include <wasm-rt.h>

/* How a guarded call ended. Values below 100 are wasm_rt_trap_t values. */
enum {
    ERYX__CALL_OK = 0,              /* returned normally (WASM_RT_TRAP_NONE) */
    ERYX__CALL_EXIT = 100,          /* guest called proc_exit: see exit_code */
    ERYX__CALL_ABORTED = 101,       /* a host import called eryx__engine_abort */
    ERYX__CALL_NOMEM = 102          /* a memory or table could not be allocated */
};

typedef struct eryx__call_info {
    int exit_code;                  /* for ERYX__CALL_EXIT */
    int abort_reason;               /* for ERYX__CALL_ABORTED */
} eryx__call_info;

/* Installs the fault handler (chaining to any previous one) and wasm2c's
 * global state. Returns 0, or -1 with errno set. The handler stays installed
 * for the life of the process (wasm_rt_free() does not remove it). */
int eryx__engine_global_init(void);

/* Runs fn(arg) on this thread with trap recovery. `mem` is the linear memory
 * of the instance being run: a fault inside its reservation is an
 * out-of-bounds trap (`mem` may be NULL for a module without memory).
 * Returns ERYX__CALL_* or a wasm_rt_trap_t value; -1 for a reentrant call on
 * one thread (not allowed) or when this thread's first-call setup (stack
 * bounds, alternate signal stack) failed, with errno set. `info` may be NULL.
 * Thread-safe: any number of threads may run guest code at once. After the
 * first call on a thread it makes no system call. */
typedef void (*eryx__guest_fn)(void *arg);
int eryx__engine_call(wasm_rt_memory_t *mem, eryx__guest_fn fn, void *arg,
                      eryx__call_info *info);

/* Ends the current guarded call (only from code running inside it). */
_Noreturn void eryx__engine_exit(int exit_code);
_Noreturn void eryx__engine_abort(int reason);

/* Human-readable description of a call result (a trap or the codes above). */
const char *eryx__engine_strerror(int call_result);

/* Bytes of a memory's pages currently accessible (its size). */
static inline uint64_t eryx__memory_size(const wasm_rt_memory_t *m) { return m->size; }

/* Limits the memory to max_pages 64 KiB pages from now on (growth beyond is
 * refused and memory.grow returns -1 to the guest). Shrinking below the
 * current size is not possible: the limit is then the current size. */
void eryx__memory_set_limit(wasm_rt_memory_t *m, uint32_t max_pages);

/* Linear memory never shrinks, so its current size is also its peak. The
 * limit is kept in m->max_pages, which wasm_rt_grow_memory enforces. */

#endif
