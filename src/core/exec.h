/*
 * Executions and callback calls (the non-blocking core).
 *
 * An execution runs the guest on the sandbox's fiber. When the guest's event
 * loop has nothing to run, it calls the host import eryx.wait with the calls
 * its tasks await and its next timer; the import records them and suspends
 * the fiber, so eryx_exec_step returns ERYX_PENDING. Replies arrive from any
 * thread into the execution's hub; the next step hands the guest every
 * completed result and resumes the fiber.
 *
 * Locking: the hub's mutex guards every call's state and the hub's fields.
 * The execution itself is touched only by the thread stepping it.
 */
#ifndef ERYX_CORE_EXEC_H
#define ERYX_CORE_EXEC_H

#include <jansson.h>
#include <pthread.h>

#include "core/internal.h"

/* Shared by an execution and its calls; freed with the last of them, so a
 * reply after the execution (or the sandbox) is gone is safe. */
typedef struct eryx__hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* broadcast on every reply */
    int refs;
    int closed;                 /* the execution is gone */
    int n_ready;                /* completions not yet handed to the guest */
    int stopping;               /* a timeout or interrupt wants a step */
    void (*notify)(void *ud);
    void *notify_ud;
} eryx__hub;

enum eryx__call_state {
    ERYX__CALL_WAITING,         /* handed out, no reply yet */
    ERYX__CALL_COMPLETED,       /* result ready for the guest */
    ERYX__CALL_DELIVERED        /* the guest has the result */
};

struct eryx_call {
    eryx__hub *hub;
    int refs;                   /* execution's + embedder's, under hub->mu */
    enum eryx__call_state state;
    uint64_t id;                /* the guest's id */
    uint64_t deadline_ns;       /* the callback timeout */
    char *name;
    char *args;                 /* JSON object text */
    json_t *result;             /* {"id", "ok", "value" | "kind", "message"} */
    const eryx__callback *cb;   /* the registration, for the handler */
};

struct eryx_exec {
    eryx_sandbox *sb;
    eryx__hub *hub;
    enum { EX_NEW, EX_PENDING, EX_DONE } state;
    int final_rc;
    eryx_result *result;
    char *request;              /* the run request, until the first step */
    size_t request_len;
    uint32_t request_ptr;       /* the request's copy in guest memory */
    uint32_t outcome_ptr;       /* what eryx_exec returned */
    uint64_t t0;
    int64_t fuel_start;         /* the run's fuel budget */
    eryx_call **calls;          /* every call not yet delivered */
    size_t n_calls, cap_calls;
    size_t next_new;            /* first call not yet given by next_call */
    uint64_t timer_deadline_ns; /* the guest's next timer, 0 = none */
    char *reply;                /* the reply the guest reads next */
    size_t reply_len;
    uint32_t n_invocations;
    char *result_json, *result_error;
    char *exported;             /* an exported session state (mode "x") */
    size_t exported_len;
};

/* exec.c */
eryx_exec *eryx__exec_new(eryx_sandbox *sb, char *request, size_t len);
void eryx__exec_free(eryx_exec *ex);
int eryx__exec_has_news(eryx_exec *ex);

/* run.c */
int eryx__exec_start(eryx_sandbox *sb, const char *code, size_t len,
                     const eryx_run_options *opts, eryx_exec **out);
/* The same with an internal request mode (guest/abi.h: "x", "y"). */
int eryx__exec_start_mode(eryx_sandbox *sb, char mode, const char *code, size_t len,
                          eryx_exec **out);
int eryx__exec_step(eryx_exec *ex);
int eryx__exec_finish(eryx_exec *ex, eryx_result **out);

/* host_imports.c: the guest's eryx.wait records calls through these. args
 * is the call's arguments as JSON object text (src/core/wait_request.h). */
int eryx__exec_add_call(eryx_exec *ex, uint64_t id, const char *name, const char *args);
void eryx__exec_fail_now(eryx_exec *ex, uint64_t id, const char *kind, const char *msg);
int eryx__exec_has_completed(eryx_exec *ex);
int eryx__exec_take_reply(eryx_exec *ex, const char *error);

#endif
