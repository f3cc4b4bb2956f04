/*
 * Executions and callback calls (the non-blocking core).
 *
 * An execution runs the guest on the sandbox's fiber. When the guest's event
 * loop has nothing to run, it calls the host import eryx.wait with the calls
 * its tasks await and its next timer; the import records them and suspends
 * the fiber, so a step returns ERYX_PENDING. A guest that sleeps
 * (time.sleep: WASI poll_oneoff) suspends the same way with a timer. Replies
 * arrive from any thread into the execution's hub; the next step hands the
 * guest every completed result and resumes the fiber.
 *
 * Locking: the hub's mutex guards every call's state and the hub's fields.
 * The execution itself is touched only by the thread stepping it. The
 * embedder's notify function is called with no lock of ours held.
 */
#ifndef ERYX_CORE_EXEC_H
#define ERYX_CORE_EXEC_H

#include <jansson.h>
#include <pthread.h>

#include "core/call_record.h"
#include "core/internal.h"
#include "core/journal.h"

/* Shared by an execution and its calls; freed with the last of them, so a
 * reply after the execution (or the sandbox) is gone is safe. */
typedef struct eryx__hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* broadcast on every reply and when a
                                   notify in flight returns */
    int refs;
    int closed;                 /* the execution is gone */
    int n_ready;                /* completions not yet handed to the guest */
    size_t n_waiting;           /* calls waiting for their outcome */
    int stopping;               /* a timeout or interrupt wants a step */
    int notifying;              /* notify calls in flight (outside mu) */
    void (*notify)(void *ud);
    void *notify_ud;
    eryx_journal *journal;      /* the execution's, which records the
                                   outcomes of its calls; NULL once closed */
    int deferring;              /* a replay has recorded batches left: the
                                   outcomes of live journaled calls wait
                                   (not counted in n_ready) */
    size_t args_held;           /* bytes of arguments its calls hold, at
                                   most ERYX_MAX_HELD_ARGS */
    size_t trees_held;          /* what their trees take to read
                                   (eryx__json_tree_bytes), at most
                                   ERYX_MAX_HELD_TREES */
    uint64_t calls_deadline_ns; /* no waiting call's deadline is earlier
                                   (it may have completed since); 0: none
                                   has one */
    struct eryx_call *done;     /* completed calls not yet delivered,
                                   latest first (done_next) */
} eryx__hub;

/* A notify to deliver once every lock is released (see exec.c). */
typedef struct eryx__notice {
    eryx__hub *hub;             /* NULL: nothing to deliver */
    void (*fn)(void *ud);
    void *ud;
} eryx__notice;

/* h->mu held: prepares a notice if the execution wants one; 1 if so. */
int eryx__hub_notice_locked(eryx__hub *h, eryx__notice *n);
/* No lock held: calls the notify and releases what the notice kept. */
void eryx__notice_deliver(eryx__notice *n);
/* No lock held: has the notifier thread deliver it (or delivers it here
 * when it cannot); the watchdog's way, which must not wait for a notify. */
void eryx__notice_post(eryx__notice *n);

enum eryx__call_state {
    ERYX__CALL_WAITING,         /* no reply yet */
    ERYX__CALL_COMPLETED,       /* result ready for the guest */
    ERYX__CALL_DELIVERED        /* the guest has the result */
};

/* A call owns copies of everything its handler needs: a handler may run on
 * a worker after its sandbox was freed. */
struct eryx_call {
    eryx__hub *hub;
    int refs;                   /* the execution's, and the embedder's once
                                   handed out; under hub->mu */
    enum eryx__call_state state;
    uint64_t id;                /* the guest's id */
    uint64_t deadline_ns;       /* the callback timeout */
    char *name;
    char *args;                 /* JSON object text */
    size_t args_held;           /* its share of hub->args_held */
    size_t tree_held;           /* its share of hub->trees_held */
    eryx__record record;        /* the guest's record of its outcome, once
                                   completed (core/call_record.h) */
    int for_embedder;           /* a registered callback (not failed at once) */
    eryx_callback_fn handler;
    void *user_data;
    unsigned flags;
    atomic_int queued;          /* in the workers' queue, not started yet */
    size_t jentry;              /* 1 + its journal entry, or 0; set before
                                   the call is shared, then read without
                                   the lock */
    size_t slot;                /* its index in its execution's calls */
    struct eryx_call *done_next; /* on hub->done once completed */
    uint32_t replay_batch;      /* a replayed call: waits until the
                                   replay delivers this batch, its outcome
                                   (record) prepared then; 0 for live
                                   calls */
};

enum eryx__exec_state { EX_NEW, EX_PENDING, EX_DONE };

struct eryx_exec {
    eryx_sandbox *sb;
    eryx__hub *hub;
    void *handle;               /* the embedder's, or NULL (internal runs) */
    enum eryx__exec_state state;
    int final_rc;
    eryx_result *result;
    char *request;              /* the run request, until the first step */
    size_t request_len;
    char mode;                  /* the request's: 0 for code, 'x' 'y' 'z'
                                   for the state's export, import, clear */
    uint32_t request_ptr;       /* the request's copy in guest memory */
    uint32_t outcome_ptr;       /* what eryx_exec returned */
    uint64_t t0;
    int took_setup, took_reseed, took_rebind; /* the sandbox's set-up flags it took */
    int64_t fuel_start;         /* the run's fuel budget */
    eryx_call **calls;          /* every call not yet delivered, in the
                                   order they were made, and NULL where
                                   one was delivered until the array is
                                   compacted (n_gone); changes under
                                   hub->mu */
    size_t n_calls, cap_calls, n_gone;
    eryx_call **picked;         /* room for cap_calls: the calls a reply
                                   delivers, sorted (take_completed) */
    size_t next_new;            /* first call not yet given by next_call */
    _Atomic uint64_t timer_deadline_ns; /* the guest's next timer, 0 = none */
    atomic_int sleeping;        /* suspended in a sleep, not in eryx.wait:
                                   replies wait for it to end (read by
                                   eryx_exec_ready on other threads) */
    char *reply;                /* the reply the guest reads next */
    size_t reply_len;
    eryx__record *taken;        /* delivered records not yet written into
                                   a reply (kept when writing one failed,
                                   for the next step to write again) */
    size_t n_taken, cap_taken;
    uint32_t n_invocations;
    char *result_json, *result_error;
    char *exported;             /* an exported session state (mode "x") */
    size_t exported_len;
    eryx_journal *journal;      /* recorded into and replayed, or NULL */
    size_t jnext;               /* the entry the guest's next call matches */
    int diverged;               /* a call differed from the journal's: the
                                   guest is suspended for good */
    uint32_t jbatch;            /* replies that delivered journaled outcomes */
    uint32_t rnext, rlast;      /* replay: the next recorded batch to
                                   deliver, and the last (rnext > rlast:
                                   none left) */
    uint32_t *rleft;            /* replay: per batch, its entries the guest
                                   has not issued again yet */
    size_t n_replayed;          /* answered entries the guest made again
                                   (eryx_exec_replayed) */
    size_t jrandom, jclock;     /* the guest's next random byte and
                                   realtime read in the journal's records */
    size_t reseed_left;         /* bytes of a reseed the recorded run did
                                   not make, still to draw from the host */
    eryx__jdraws_mark jmark;    /* the draw records before this execution */
};

/* request.c: the run request the guest decodes (guest/abi.h). seed: whether
 * the run reseeds random first, or -1 as the sandbox's first-run setup says.
 * NULL with the sandbox's message set when it cannot be built. */
char *eryx__request_build(eryx_sandbox *sb, const eryx_run_options *o, char mode,
                          const char *code, size_t len, int seed, size_t *req_len);

/* exec.c: executions */
int eryx__exec_start(eryx_sandbox *sb, char mode, const char *code, size_t len,
                     const eryx_run_options *opts, eryx_exec **out);
int eryx__exec_step(eryx_exec *ex);
int eryx__exec_finish(eryx_exec *ex, eryx_result **out);
eryx_call *eryx__exec_next_call(eryx_exec *ex);
uint64_t eryx__exec_deadline(eryx_exec *ex);
/* 1 if stepping now would make progress: a reply, a passed timer or
 * callback deadline, a stop request. */
int eryx__exec_has_news(eryx_exec *ex);
/* The cheap part of that, for any thread: a reply (unless the guest
 * sleeps) or a stop request. */
int eryx__exec_ready(eryx_exec *ex);
void eryx__exec_set_notify(eryx_exec *ex, void (*notify)(void *ud), void *ud);
/* Runs an internal request (no callbacks) to its end on this thread;
 * *done is the finished execution (eryx__exec_finish it) or NULL. */
int eryx__exec_run_internal(eryx_sandbox *sb, char mode, const char *data, size_t len,
                            const eryx_run_options *opts, eryx_exec **done);
/* The sandbox's WASI sleeper (eryx__wasi_set_sleeper; ud is the sandbox):
 * the guest sleeps until deadline by suspending the execution like a timer.
 * 0 when it slept, -1 when there is no execution to suspend. */
int eryx__exec_sleep(void *sandbox, uint64_t deadline_ns);
/* The guest's draws from the host (ud: the sandbox), recorded into and
 * replayed from a journaled execution's journal. */
extern const eryx__wasi_draws eryx__exec_draws;

/* exec.c: a journaled execution (eryx_exec_start_journaled): code may be
 * NULL to run the journal's; see include/eryx.h for the checks. */
int eryx__exec_start_journaled(eryx_sandbox *sb, const char *code, size_t len,
                               const eryx_run_options *opts, eryx_journal *j,
                               eryx_exec **out);
/* Ends a journaled execution that has not finished (eryx_exec_suspend). */
int eryx__exec_suspend(eryx_exec *ex);

/* exec.c: calls, for the API layer (eryx_call_*) */
int eryx__call_reply(eryx_call *call, const char *json, size_t len);
int eryx__call_fail(eryx_call *call, int kind, const char *message);
int eryx__call_pending(eryx_call *call);
/* For the network layer (src/net/), which holds a reference to its calls:
 * completes one with value (taken) or, when value is NULL, with the failure
 * kind/msg, and releases the reference; notifies like a reply. */
int eryx__call_complete(eryx_call *call, json_t *value, const char *kind, const char *msg);
/* Releases the network layer's reference without completing the call. */
void eryx__call_release(eryx_call *call);
void eryx__call_set_deadline(eryx_call *call, uint64_t deadline_ns);
/* Whether the call waits in the workers' queue (core/internal.h). */
void eryx__call_set_queued(eryx_call *call, int queued);


/* exec.c: the guest's eryx.wait records calls through these
 * (host_imports.c). args is the call's arguments as JSON object text
 * (src/core/wait_request.h). eryx__exec_add_call returns 1 when the call
 * went to the embedder, 0 when it did not (it failed at once, or the
 * network layer has it), -1 when out of memory. */
int eryx__exec_add_call(eryx_exec *ex, uint64_t id, const char *name, const char *args);
void eryx__exec_fail_now(eryx_exec *ex, uint64_t id, const char *kind, const char *msg);
int eryx__exec_has_completed(eryx_exec *ex);
/* 1 when no call waits for its outcome and none has one to deliver. One
 * look under the hub's lock: an embedder's or the network's thread may be
 * completing a call, and two looks (has_completed, then a waiting call)
 * could see it in neither state, which made a run fail with "deadlock"
 * (seen under TSan: a_resumed_journal_replays_asyncio_streams). */
int eryx__exec_awaits_nothing(eryx_exec *ex);
/* At each of the guest's waits of a replay: delivers the next recorded
 * batch of outcomes once the guest has issued all of its calls again, or
 * finds that the code diverged (it waits for nothing else). */
void eryx__exec_replay_wait(eryx_exec *ex);
int eryx__exec_take_reply(eryx_exec *ex, const char *error);

/* state.c: sessions as data */
int eryx__sandbox_export_state(eryx_sandbox *sb, void **data, size_t *len, char **skipped);
int eryx__sandbox_import_state(eryx_sandbox *sb, const void *data, size_t len, char **failed);
int eryx__sandbox_clear(eryx_sandbox *sb);

#endif
