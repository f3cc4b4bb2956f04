/*
 * Definitions shared by src/core/ and src/api/. The public API (src/api/)
 * checks arguments and handle states; src/core/ does the work and may assume
 * its arguments are valid.
 */
#ifndef ERYX_CORE_INTERNAL_H
#define ERYX_CORE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine/engine.h"
#include "eryx.h"
#include "guest.h" /* wasm2c's header for the guest module */
#include "wasi/wasi.h"

typedef struct json_t json_t;

/* A callback as registered (copied from eryx_callback). */
typedef struct eryx__callback {
    char *name;
    json_t *schema;             /* NULL or a JSON object */
    eryx_callback_fn handler;
    void *user_data;
    unsigned flags;
} eryx__callback;

/* The guest's "eryx" import module: its functions find the sandbox there,
 * and the generated code its fuel. */
#include "guest/host_instance.h"

/* eryx__engine_abort reasons. */
#define ERYX__ABORT_FUEL 1

/* Fuel of a run without a limit: never runs out, still counts. */
#define ERYX__FUEL_UNLIMITED INT64_MAX

/* Freed sandboxes a runtime keeps for reuse, at most. */
#define ERYX__PARKED_MAX 4

/* What a guest's linear memory does not hold: its two mutable globals and
 * the addresses the interrupt writes to. */
typedef struct eryx__snapshot_globals {
    uint32_t stack_pointer, memory_base;
    uint32_t breaker_addr, async_exc_addr, exc_value, breaker_bit;
} eryx__snapshot_globals;

/* A range of guest memory, in bytes. */
typedef struct eryx__page_run {
    uint64_t start, len;
} eryx__page_run;

struct eryx_runtime {
    atomic_long n_sandboxes;    /* live sandboxes: the runtime outlives them */
    const uint8_t *stdlib;      /* the embedded stdlib image */
    size_t stdlib_size;
    struct eryx_sandbox *template; /* booted and warmed up; never runs user code */
    eryx__mem_image *image;     /* its memory, which new sandboxes map */
    eryx__snapshot_globals globals;
    eryx__page_run *hot;        /* pages a first run writes: prefaulted */
    size_t n_hot, cap_hot;
    uint8_t *packages;          /* the packages' file image (packages.c),
                                   mounted by every sandbox, or NULL */
    size_t packages_size;
    struct eryx_sandbox *parked[ERYX__PARKED_MAX]; /* freed, kept for reuse */
    unsigned n_parked;          /* parked and n_parked: instance.c's
                                   park_mu (process-wide, for fork) */
};

struct eryx__hub;

/* Where the guest of a run is, for a graceful stop (interrupt.c). */
enum eryx__park {
    ERYX__RUNNING,              /* in guest code, or about to be */
    ERYX__PARKED,               /* waits for a step (exec API) */
    ERYX__PARKED_STOPPED        /* waits, and a graceful stop came: its
                                   grace starts at the next step */
};

/* Timeout and interrupt state of a sandbox (interrupt.c). mu guards all but
 * next/linked/wake_ns, which belong to the watchdog's lock, and the atomics:
 * the stepping thread parks and resumes without mu (two locks per step were
 * 40 ns of a 1.7 us callback round trip), and reads cause at every step. */
typedef struct eryx__irq {
    pthread_mutex_t mu;
    int running;                /* a run is in progress */
    _Atomic int cause;          /* 0, ERYX_TIMEOUT or ERYX_INTERRUPTED;
                                   written under mu */
    int hard;                   /* the hard stop was sent */
    uint64_t deadline_ns;       /* the run's time limit, 0 = none */
    uint64_t hard_at_ns;        /* when a graceful stop turns hard */
    uint64_t grace_ns;
    _Atomic int park;           /* enum eryx__park */
    int grace_at_resume;        /* the stop found the guest parked: its
                                   grace waits for the next step */
    struct eryx__hub *hub;      /* of the execution, to wake its waiter */
    uint32_t breaker_addr, async_exc_addr, exc_value, breaker_bit;
    struct eryx_sandbox *next;  /* the watchdog's list */
    int linked;
    uint64_t wake_ns;
} eryx__irq;

/* A sandbox's life. Whether an execution is in progress is sb->exec. */
enum eryx__sandbox_state {
    ERYX__SB_READY,             /* can run code */
    ERYX__SB_DEAD,              /* trapped, stopped hard or exited: only
                                   reset and free */
    ERYX__SB_PARKED             /* freed by its owner; its instance is kept
                                   by the runtime for the next one */
};

/* A guest instance: what instance.c owns (the guest module's instance,
 * its linear memory's mapping, the fiber, the fork base). The sandbox layer
 * above reads it, and only instance.c and guest.c change it. */
typedef struct eryx__instance {
    Z_python_instance_t inst;
    int instantiated;
    struct Z_eryx_instance_t host;  /* the "eryx" imports' instance */
    eryx__fiber *fiber;         /* the native stack guest code runs on */
    const eryx__mem_image *mapped_from; /* the image the memory maps (its
                                           copy-on-write base), or NULL */
    int pages_warm;             /* parked, mapping the runtime image with the
                                   pages a first run writes already private */
    int prefault_pending;       /* next run: prefault the runtime's hot pages
                                   first (a fork or a loaded session) */
    eryx__mem_image *fork_base; /* an image holding exactly what the memory
                                   holds, kept until guest code next runs
                                   (a reference), or NULL: forks map it */
} eryx__instance;

/* Handles (src/core/handle.h) name these objects: no pointer to one ever
 * reaches the embedder, so none carries a magic number. */
struct eryx_sandbox {
    _Atomic uintptr_t owner;    /* the thread inside a call (src/api/), 0 */
    unsigned depth;             /* its nested calls: eryx_sandbox_run holds
                                   the sandbox around the eryx_exec_* calls
                                   it makes (owner's only) */
    enum eryx__sandbox_state state;
    eryx_runtime *rt;
    eryx__instance in;          /* instance.c */
    eryx__wasi *wasi;
    eryx_exec *exec;            /* the execution in progress, or NULL */
    int exit_code;              /* os._exit's status, once dead by it */
    uint64_t timeout_ns;        /* default time limit of a run */
    eryx__irq irq;
    eryx_sandbox_config cfg;    /* as given, for resets and forks (below) */
    eryx_mount *mounts_copy;
    char **env_copy;
    int needs_setup;            /* next run: reseed random, apply env */
    int reseed_only;            /* next run: reseed random only */
    int rebind_imports;         /* next run (a loaded session's): put the
                                   runtime's site-packages on sys.path,
                                   clear the import system's caches */
    uint64_t run_count;
    eryx__callback *callbacks;
    size_t n_callbacks;
    char *callbacks_json;       /* their description for the guest */
    uint64_t callback_timeout_ns;
    uint32_t max_callbacks;
    void (*on_trace)(void *ud, const char *file, int line, const char *function);
    void *trace_user_data;
    struct eryx__net *net;      /* its network (src/net/), or NULL: none */
    const void *lender;         /* the pool that lent it (its handle), or
                                   NULL: only that pool's release takes it
                                   back, and eryx_sandbox_free refuses it */
    char errmsg[512];
};

/* A memory limit in bytes as 64 KiB wasm pages, capped at what a memory
 * can hold (src/engine/engine.h). */
static inline uint32_t eryx__limit_pages(uint64_t max_memory)
{
    uint64_t pages = max_memory / 65536u;
    return pages > 65535u ? 65535u : (uint32_t)pages;
}

/* Error messages: on a sandbox, or thread-local for calls without one. */
void eryx__set_errmsg(eryx_sandbox *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void eryx__clear_errmsg(eryx_sandbox *sb);
const char *eryx__errmsg(const eryx_sandbox *sb);
/* The first n bytes of text (or up to a NUL) as printable ASCII, the rest
 * as \xNN, into out (cap bytes, NUL-terminated, cut to fit): for bytes of
 * a file put in a message (a crafted one could put terminal escapes in
 * the user's stderr). Returns out. */
char *eryx__printable(const char *text, size_t n, char *out, size_t cap);
/* A malloc'ed, NUL-terminated copy of text[0..len) cut to max bytes (at
 * least 1 KiB; at a UTF-8 character's start), a line saying how much was
 * cut after it; *out_len its length. For the guest's texts that are not
 * stdout or stderr but output all the same (an exception's message and
 * traceback, result_error): max is max_output. NULL: no memory (guest.c). */
char *eryx__text_cut(const char *text, size_t len, uint64_t max, size_t *out_len);

/* callbacks.c */
/* Replaces sb's callbacks by cbs (checked and copied); on failure sb keeps
 * its own and the message goes to the thread. */
int eryx__callbacks_set(eryx_sandbox *sb, const eryx_callback *cbs, size_t n);
void eryx__callbacks_free(eryx__callback *cbs, size_t n);
int eryx__callbacks_copy(eryx_sandbox *dst, const eryx_sandbox *src);
const eryx__callback *eryx__callback_find(const eryx_sandbox *sb, const char *name);

/* interrupt.c */
void eryx__irq_init(eryx_sandbox *sb, uint64_t grace_ns);
void eryx__irq_destroy(eryx_sandbox *sb);
int eryx__irq_fetch_addresses(eryx_sandbox *sb);
int eryx__irq_run_begin(eryx_sandbox *sb, uint64_t timeout_ns, struct eryx__hub *hub);
int eryx__irq_run_end(eryx_sandbox *sb, int *hard);
int eryx__irq_cause(eryx_sandbox *sb);
void eryx__irq_park(eryx_sandbox *sb, int parked);
uint64_t eryx__irq_deadline(eryx_sandbox *sb);
void eryx__irq_fire_due(eryx_sandbox *sb);
int eryx__sandbox_interrupt(eryx_sandbox *sb);

/* image.c: the runtime image (with cfg's imports and setup code) */
int eryx__runtime_snapshot(eryx_runtime *rt, const eryx_runtime_config *cfg);
void eryx__runtime_drop_snapshot(eryx_runtime *rt);

/* image_file.c: the runtime image in a file (eryx_runtime_save_image). The
 * load fills rt's image, globals, template, packages and hot pages; the
 * message goes to the thread. */
int eryx__runtime_save_image(eryx_runtime *rt, const char *path);
/* trusted: ERYX_RUNTIME_IMAGE_TRUSTED (the memory is not hashed). */
int eryx__runtime_load_image(eryx_runtime *rt, const char *path, int trusted);
/* Checks an image file's header (bytes [0, len) of a file of file_size
 * bytes) without using it: ERYX_OK or ERYX_INVALID with the reason in the
 * thread's message. For the loader and the fuzzer. */
int eryx__image_file_check(const void *data, size_t len, uint64_t file_size, const char *path);

/* session_file.c: whether saved globals could come from a guest memory of
 * mem_size bytes. */
int eryx__globals_ok(const eryx__snapshot_globals *g, uint64_t mem_size);

/* instance.c: the guest instance (memory mapping, fiber, globals, fork
 * base, parking); calls only the engine and guest.c. */
void eryx__save_globals(const eryx_sandbox *sb, eryx__snapshot_globals *g);
void eryx__restore_globals(eryx_sandbox *sb, const eryx__snapshot_globals *g);
/* Instantiates without data segments, sharing the template's table. */
int eryx__instance_instantiate_bare(eryx_sandbox *sb);
/* Maps img copy-on-write as the memory, with globals g. */
int eryx__instance_map(eryx_sandbox *sb, const eryx__mem_image *img,
                       const eryx__snapshot_globals *g, uint64_t max_memory);
/* Back to the runtime image (in place when possible). */
int eryx__instance_restore_image(eryx_sandbox *sb, uint64_t max_memory);
/* The memory (img) is the state a fork would capture: keep a reference. */
void eryx__instance_set_fork_base(eryx_sandbox *sb, const eryx__mem_image *img);
/* The memory is about to change (guest code runs, the sandbox is retired or
 * freed): forget sb->fork_base. */
void eryx__sandbox_drop_fork_base(eryx_sandbox *sb);
/* Parking: prepare (0 if the instance can be kept: its memory is back to
 * the image), then park (0 if it found a place); unpark takes one,
 * preferably with pages_warm == want_warm (NULL if none); destroy frees the
 * instance (not the struct); free_parked frees every parked sandbox. */
int eryx__instance_park_prepare(eryx_sandbox *sb);
int eryx__instance_park(eryx_sandbox *sb);
eryx_sandbox *eryx__instance_unpark(eryx_runtime *rt, int want_warm);
void eryx__instance_destroy(eryx_sandbox *sb);
void eryx__runtime_free_parked(eryx_runtime *rt);
/* Copies in advance the pages a first run writes (learnt by the runtime). */
void eryx__prefault_hot_pages(eryx_sandbox *sb);
/* Before a run: the prefault a fork or a loaded session deferred. */
void eryx__sandbox_prefault_pending(eryx_sandbox *sb);

/* session_file.c */
/* session_file.c: to name relative to the directory dir (AT_FDCWD: the
 * working directory), or, when name is NULL, to fd from its current offset
 * (include/eryx.h, eryx_sandbox_save_at / _save_fd). */
int eryx__sandbox_save(eryx_sandbox *sb, int dir, const char *name, int fd);
int eryx__sandbox_load(eryx_runtime *rt, const eryx_sandbox_config *cfg, const char *path,
                       int fd, eryx_sandbox **out);

/* runtime.c */
int eryx__runtime_new(const eryx_runtime_config *cfg, eryx_runtime **out);
void eryx__runtime_free(eryx_runtime *rt);

/* sandbox.c: a sandbox's life (config, WASI state, callbacks over its
 * instance) */
int eryx__sandbox_new_bare(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                           eryx_sandbox **out);
int eryx__sandbox_new(eryx_runtime *rt, const eryx_sandbox_config *cfg, eryx_sandbox **out);
int eryx__sandbox_new_from_image(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                                 eryx_sandbox **out);
/* A sandbox in the state img + g, with parent's WASI state (cloned) or a
 * new one; frees what it made on failure (message to the thread). */
int eryx__sandbox_from_state(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                             const eryx__mem_image *img, const eryx__snapshot_globals *g,
                             const eryx_sandbox *parent, eryx_sandbox **out);
int eryx__sandbox_reset(eryx_sandbox *sb);
int eryx__sandbox_fork(eryx_sandbox *sb, eryx_sandbox **out);
void eryx__sandbox_free(eryx_sandbox *sb);
/* What belonged to the user (WASI state, callbacks, config, timers,
 * messages) goes; the sandbox is then parked. */
void eryx__sandbox_retire(eryx_sandbox *sb);
int eryx__sandbox_alloc(eryx_runtime *rt, const eryx_sandbox_config *cfg, eryx_sandbox **out);
/* A fresh WASI state for sb (the standard library, /tmp, cfg's mounts,
 * output settings), as a booting sandbox gets: sb->wasi. The message goes to
 * the thread. */
int eryx__sandbox_create_wasi(eryx_sandbox *sb, const eryx_sandbox_config *cfg);


/* guest.c: the guest's exports, each called under eryx__engine_call. They
 * return an eryx status and set sb's message on failure. */
int eryx__guest_instantiate(eryx_sandbox *sb);
int eryx__guest_start(eryx_sandbox *sb);
int eryx__guest_abi_version(eryx_sandbox *sb, int32_t *version);

/* Runs fn(arg) on the sandbox's fiber; a trap kills the sandbox. Returns an
 * eryx status, or ERYX_PENDING when the guest suspended. */
int eryx__guest_call(eryx_sandbox *sb, eryx__guest_fn fn, void *arg, const char *what);
int eryx__guest_resume(eryx_sandbox *sb, const char *what);
/* ERYX_MISUSE, with sb's message saying why, if this thread is inside
 * guest code (an on_output, or host code a guest called), where no other
 * sandbox can run; ERYX_OK otherwise. */
int eryx__guest_thread_free(eryx_sandbox *sb, const char *what);
/* Whether this thread is inside guest code, without a message. */
int eryx__in_guest_code(void);

/* Guest memory, checked: NULL unless [ptr, ptr + len) is inside it. */
uint8_t *eryx__guest_span(eryx_sandbox *sb, uint32_t ptr, uint64_t len);

/* The outcome of eryx_exec, copied out of guest memory. */
typedef struct eryx__exec_outcome {
    uint32_t status;            /* enum eryx_guest_status */
    int32_t exit_code;
    char *type, *message, *traceback;   /* malloc'd, NUL-terminated */
    size_t message_len, traceback_len;  /* without that NUL; either may
                                           hold NULs of the text's own */
} eryx__exec_outcome;

uint32_t eryx__guest_alloc(eryx_sandbox *sb, uint32_t size, int *rc);
int eryx__guest_read_outcome(eryx_sandbox *sb, uint32_t ptr, eryx__exec_outcome *o);
void eryx__exec_outcome_clear(eryx__exec_outcome *o);

/* src/api/: what the layers over the public API (run.c, pool.c) need
 * beyond it. The handler registered for a call (a handle); a sandbox handle
 * replaced by a new one for the same sandbox (the pool's release: the old
 * owner's handle dies; ERYX_MISUSE unless pool lent it), and its run count
 * set back to 0. */
void eryx__call_handler(const eryx_call *call, eryx_callback_fn *handler, void **user_data,
                        unsigned *flags);
int eryx__sandbox_rehandle(eryx_sandbox **handle, const void *pool);
/* Marks a sandbox just acquired from pool (a handle) as lent by it. */
void eryx__sandbox_lend(eryx_sandbox *handle, const void *pool);
/* The blocking run holds its sandbox for the whole run (another thread is
 * refused with ERYX_MISUSE even between steps). */
int eryx__sandbox_hold(eryx_sandbox *handle);
void eryx__sandbox_unhold(eryx_sandbox *handle);
void eryx__sandbox_forget_runs(eryx_sandbox *handle);
/* The held sandbox's network sockets a blocking run may poll itself
 * (src/net/net.h, eryx__net_pollfds / _poll_done). */
struct pollfd;
size_t eryx__sandbox_net_pollfds(eryx_sandbox *handle, struct pollfd *fds, size_t max);
void eryx__sandbox_net_poll_done(eryx_sandbox *handle, const struct pollfd *fds, size_t n);

/* A condition whose timed waits take CLOCK_MONOTONIC deadlines (every
 * deadline here is one: eryx__now_ns). */
void eryx__cond_init_monotonic(pthread_cond_t *cv);

/* fork.c: the pthread_atfork handlers, installed once (by the first
 * runtime). Each process-wide lock's owner takes it at PREPARE, lets it go
 * at PARENT, and at CHILD lets it go after resetting what names threads
 * that are not in the child. */
enum eryx__fork_phase { ERYX__FORK_PREPARE, ERYX__FORK_PARENT, ERYX__FORK_CHILD };
void eryx__fork_handlers_install(void);
void eryx__handles_fork(enum eryx__fork_phase phase);  /* handle.c */
void eryx__watchdog_fork(enum eryx__fork_phase phase); /* interrupt.c */
void eryx__workers_fork(enum eryx__fork_phase phase);  /* run.c */
void eryx__net_fork(enum eryx__fork_phase phase);      /* net/net.c */
void eryx__parking_fork(enum eryx__fork_phase phase); /* instance.c */
void eryx__notifier_fork(enum eryx__fork_phase phase); /* exec.c */

/* run.c's callback workers: handlers one sandbox may run at once (its
 * further calls wait in the queue). api.c: whether the call of a handle
 * waits there, its handler not started (only for the words of its
 * timeout); nothing for a dead handle. */
#define ERYX__HANDLERS_PER_SANDBOX 64
#define ERYX__HANDLERS_PER_PROCESS 512
void eryx__call_handle_set_queued(const eryx_call *handle, int queued);

/* Starts fn(arg) on a detached thread; 0 or pthread_create's error. */
int eryx__thread_start_detached(void *(*fn)(void *), void *arg);

/* Writes all n bytes (retrying short writes and EINTR); 0 or -1. Shared
 * by the session and image file writers. */
int eryx__write_all(int fd, const void *buf, size_t n);

/* Monotonic clock in nanoseconds. */
uint64_t eryx__now_ns(void);

/* The monotonic time `ns` from now; 0 (none) for 0, ERYX_NO_LIMIT, or a
 * span too long to be told from none. */
uint64_t eryx__deadline_after(uint64_t ns);

#endif
