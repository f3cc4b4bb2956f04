/*
 * Executions from the embedder's side: the request the guest understands
 * (guest/abi.h), stepping, the eryx_result, and eryx_sandbox_run, the
 * blocking loop over the non-blocking core.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/exec.h"
#include "guest/abi.h"

void eryx_run_options_default(eryx_run_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

/* What a sandbox made from an image does on its first run: reseed random
 * (the image holds the template's state) and, unless it is a fork or a
 * loaded session, apply its environment. "" when nothing is to be done. */
static char *build_setup(const eryx_sandbox *sb)
{
    if (!sb->needs_setup && !sb->reseed_only)
        return strdup("");
    json_t *setup = json_pack("{s:b}", "seed", 1);
    json_t *env = json_object();
    for (size_t i = 0; sb->needs_setup && sb->cfg.env && sb->cfg.env[i]; i++) {
        const char *kv = sb->cfg.env[i], *eq = strchr(kv, '=');
        if (eq && eq != kv) {
            char *key = strndup(kv, (size_t)(eq - kv));
            if (key)
                json_object_set_new(env, key, json_string(eq + 1));
            free(key);
        }
    }
    if (sb->needs_setup && setup && env)
        json_object_set(setup, "env", env);
    if (sb->needs_setup && setup && sb->cfg.n_mounts)
        json_object_set_new(setup, "mounts", json_true());
    json_decref(env);
    char *text = setup ? json_dumps(setup, JSON_COMPACT) : NULL;
    json_decref(setup);
    return text;
}

/* mode \0 flags \0 filename \0 callbacks \0 setup \0 argc \0 argv[0] \0 ... \0 code */
static char *build_request(const eryx_sandbox *sb, const eryx_run_options *o, char mode,
                           const char *code, size_t len, size_t *req_len)
{
    static const char *const default_argv[] = {"", NULL};
    const char *filename = o->filename ? o->filename : "<string>";
    const char *const *argv = o->argv && o->argv[0] ? o->argv : default_argv;
    /* "t": trace; "s": this run has stdin bytes (without, the guest may
     * keep the previous run's unused stdin object: a few microseconds). */
    int has_stdin = o->stdin_len > 0;
    const char *flags = sb->on_trace ? (has_stdin ? "ts" : "t") : (has_stdin ? "s" : "");
    const char *cbs = sb->callbacks_json ? sb->callbacks_json : "[]";
    char *setup = build_setup(sb);
    if (!setup)
        return NULL;
    size_t argc = 0;
    char count[24];
    size_t n = 2 + strlen(flags) + 1 + strlen(filename) + 1 + strlen(cbs) + 1 +
               strlen(setup) + 1 + len;
    for (; argv[argc]; argc++)
        n += strlen(argv[argc]) + 1;
    n += (size_t)snprintf(count, sizeof count, "%zu", argc) + 1;
    char *req = malloc(n);
    if (!req) {
        free(setup);
        return NULL;
    }
    char *p = req;
    *p++ = mode ? mode
                : o->mode == ERYX_RUN_MODULE        ? 'm'
                : o->mode == ERYX_RUN_INTERACTIVE ? 'i'
                                                  : 'c';
    *p++ = '\0';
    p = stpcpy(p, flags) + 1;
    p = stpcpy(p, filename) + 1;
    p = stpcpy(p, cbs) + 1;
    p = stpcpy(p, setup) + 1;
    free(setup);
    p = stpcpy(p, count) + 1;
    for (size_t i = 0; i < argc; i++)
        p = stpcpy(p, argv[i]) + 1;
    memcpy(p, code, len);
    *req_len = n;
    return req;
}

static int check_options(eryx_sandbox *sb, const eryx_run_options *o)
{
    if (o->filename && !o->filename[0]) {
        eryx__set_errmsg(sb, "filename must not be empty");
        return ERYX_INVALID;
    }
    if (o->mode != ERYX_RUN_CODE && o->mode != ERYX_RUN_MODULE &&
        o->mode != ERYX_RUN_INTERACTIVE) {
        eryx__set_errmsg(sb, "unknown run mode %d", (int)o->mode);
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

static int exec_start(eryx_sandbox *sb, char mode, const char *code, size_t len,
                      const eryx_run_options *opts, eryx_exec **out);

int eryx__exec_start(eryx_sandbox *sb, const char *code, size_t len,
                     const eryx_run_options *opts, eryx_exec **out)
{
    return exec_start(sb, 0, code, len, opts, out);
}

int eryx__exec_start_mode(eryx_sandbox *sb, char mode, const char *code, size_t len,
                          eryx_exec **out)
{
    return exec_start(sb, mode, code, len, NULL, out);
}

static int exec_start(eryx_sandbox *sb, char mode, const char *code, size_t len,
                      const eryx_run_options *opts, eryx_exec **out)
{
    eryx_run_options defaults;
    if (!opts) {
        eryx_run_options_default(&defaults);
        opts = &defaults;
    }
    int rc = check_options(sb, opts);
    if (rc != ERYX_OK)
        return rc;
    if (len > UINT32_MAX / 2) {
        eryx__set_errmsg(sb, "code too large");
        return ERYX_INVALID;
    }
    size_t req_len = 0;
    char *req = build_request(sb, opts, mode, code, len, &req_len);
    eryx_exec *ex = req ? eryx__exec_new(sb, req, req_len) : NULL;
    if (!ex || eryx__wasi_set_stdin(sb->wasi, opts->stdin_data, opts->stdin_len) != 0) {
        if (ex)
            eryx__exec_free(ex);
        else
            free(req);
        eryx__set_errmsg(sb, "out of memory preparing the run");
        return ERYX_NOMEM;
    }
    eryx__sandbox_prefault_pending(sb);
    eryx__wasi_begin_run(sb->wasi);
    rc = eryx__irq_run_begin(sb, opts->timeout_ns ? opts->timeout_ns : sb->timeout_ns, ex->hub);
    if (rc != ERYX_OK) {
        eryx__exec_free(ex);
        eryx__set_errmsg(sb, "cannot start the watchdog thread");
        return rc;
    }
    uint64_t fuel = opts && opts->fuel ? opts->fuel : sb->cfg.fuel;
    ex->fuel_start = fuel && fuel < (uint64_t)ERYX__FUEL_UNLIMITED ? (int64_t)fuel
                                                                    : ERYX__FUEL_UNLIMITED;
    sb->host.fuel = ex->fuel_start;
    ex->t0 = eryx__now_ns();
    sb->exec = ex;
    sb->needs_setup = sb->reseed_only = 0;
    sb->run_count++;
    *out = ex;
    return ERYX_OK;
}

static void do_exec(void *arg)
{
    eryx_exec *ex = arg;
    Z_python_instance_t *inst = &ex->sb->inst;
    ex->outcome_ptr = Z_pythonZ_eryx_exec(inst, ex->request_ptr, (u32)ex->request_len);
    Z_pythonZ_eryx_dealloc(inst, ex->request_ptr);
}

/* Copies the request into guest memory and starts eryx_exec on the fiber. */
static int begin(eryx_exec *ex)
{
    eryx_sandbox *sb = ex->sb;
    int rc;
    ex->request_ptr = eryx__guest_alloc(sb, (uint32_t)ex->request_len, &rc);
    if (rc != ERYX_OK)
        return rc;
    memcpy(eryx__guest_span(sb, ex->request_ptr, ex->request_len), ex->request,
           ex->request_len);
    free(ex->request);
    ex->request = NULL;
    return eryx__guest_call(sb, do_exec, ex, "the code");
}

static void take_output(eryx_sandbox *sb, eryx_result *r)
{
    int t;
    eryx__wasi_output(sb->wasi, 1, &r->out_len, &t);
    r->out_truncated = t;
    eryx__wasi_output(sb->wasi, 2, &r->err_len, &t);
    r->err_truncated = t;
    r->out = eryx__wasi_take_output(sb->wasi, 1, &r->out_len);
    r->err = eryx__wasi_take_output(sb->wasi, 2, &r->err_len);
}

/* Fills r from the guest's outcome; returns the run's status. */
static int apply_outcome(eryx_result *r, eryx__exec_outcome *o)
{
    int rc = ERYX_OK;
    r->exit_code = o->exit_code;
    r->exited = o->status == ERYX_GUEST_EXIT;
    if (o->status == ERYX_GUEST_EXCEPTION || o->status == ERYX_GUEST_INTERNAL) {
        r->exc_type = o->type;
        r->exc_message = o->message;
        r->traceback = o->traceback;
        o->type = o->message = o->traceback = NULL;
        rc = o->status == ERYX_GUEST_EXCEPTION ? ERYX_PYTHON_EXCEPTION : ERYX_INTERNAL;
    }
    eryx__exec_outcome_clear(o);
    return rc;
}

/* A timeout or interrupt was requested during the run: unless the code
 * finished anyway, the status says which stop ended it, the message how.
 * (A graceful stop shows in the result as the KeyboardInterrupt it raised.) */
static int stop_status(eryx_sandbox *sb, eryx_result *r, int rc, int cause, int hard)
{
    if (rc == ERYX_OK)
        return rc;
    r->hard_stopped = rc == ERYX_INTERRUPTED && hard;
    eryx__set_errmsg(sb, "%s%s", cause == ERYX_TIMEOUT ? "the run exceeded its time limit"
                                                       : "the run was interrupted",
                     r->hard_stopped ? "; it did not unwind in time and was stopped hard "
                                       "(the sandbox is dead)"
                                     : "");
    return cause;
}

/* The guest finished (or died) with status rc: build the result. */
static int conclude(eryx_exec *ex, int rc)
{
    eryx_sandbox *sb = ex->sb;
    eryx_result *r = calloc(1, sizeof *r);
    eryx__exec_outcome o = {0};
    int hard, cause = eryx__irq_run_end(sb, &hard);
    ex->state = EX_DONE;
    sb->exec = NULL;
    if (!r)
        return ex->final_rc = ERYX_NOMEM;
    r->duration_ns = eryx__now_ns() - ex->t0;
    /* Out of fuel leaves the counter at -1: the run used all of it. */
    r->fuel_used = ERYX_HAVE_FUEL ? (uint64_t)(ex->fuel_start - (sb->host.fuel < 0 ? 0 : sb->host.fuel))
                                  : 0;
    r->memory_bytes = sb->inst.w2c_memory.size;
    r->n_callbacks = ex->n_invocations;
    r->result_json = ex->result_json;
    r->result_error = ex->result_error;
    ex->result_json = ex->result_error = NULL;
    take_output(sb, r);
    if (!r->out || !r->err) {
        eryx_result_free(r);
        eryx__set_errmsg(sb, "out of memory collecting the output");
        return ex->final_rc = ERYX_NOMEM;
    }
    if (rc == ERYX_OK)
        rc = eryx__guest_read_outcome(sb, ex->outcome_ptr, &o);
    if (rc == ERYX_OK) {
        rc = apply_outcome(r, &o);
    } else if (rc == ERYX_DEAD) {
        /* os._exit(n): this run ends like a process; the sandbox is dead. */
        r->exited = 1;
        r->exit_code = sb->exit_code;
        rc = ERYX_OK;
    } else if (rc == ERYX_TRAP || rc == ERYX_INTERRUPTED || rc == ERYX_FUEL) {
        r->exit_code = 1;
    } else {
        eryx_result_free(r);
        return ex->final_rc = rc;
    }
    if (cause)
        rc = stop_status(sb, r, rc, cause, hard);
    ex->result = r;
    return ex->final_rc = rc;
}

int eryx__exec_step(eryx_exec *ex)
{
    int rc;
    if (ex->state == EX_DONE)
        return ex->final_rc;
    if (ex->state == EX_NEW) {
        rc = begin(ex);
    } else {
        if (!eryx__exec_has_news(ex))
            return ERYX_PENDING;
        if (eryx__exec_take_reply(ex, NULL) < 0) {
            eryx__set_errmsg(ex->sb, "out of memory building the reply");
            return ERYX_NOMEM; /* the execution stays pending: step again */
        }
        ex->timer_deadline_ns = 0;
        rc = eryx__guest_resume(ex->sb, "the code");
    }
    if (rc == ERYX_PENDING) {
        ex->state = EX_PENDING;
        return ERYX_PENDING;
    }
    return conclude(ex, rc);
}

int eryx__exec_finish(eryx_exec *ex, eryx_result **out)
{
    eryx_sandbox *sb = ex->sb;
    int rc = ex->final_rc;
    if (ex->state != EX_DONE) {
        /* Abandoned mid-way: the guest's stack is dropped, so the
         * interpreter is in an unknown state. */
        if (ex->state == EX_PENDING)
            eryx__fiber_abandon(sb->fiber);
        sb->exec = NULL;
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "the execution was abandoned before it finished");
        rc = ERYX_DEAD;
    }
    if (out) {
        *out = ex->result;
        ex->result = NULL;
    }
    eryx__exec_free(ex);
    return rc;
}

/* ---- eryx_sandbox_run: the blocking loop ---------------------------------- */

/* Handlers of one step, run several at once when the guest made several
 * calls: each worker takes the next call until none is left. */
typedef struct dispatch {
    pthread_mutex_t mu;
    eryx_call **calls;
    size_t n, next;
    int refs;
} dispatch;

static void run_handler(eryx_call *c)
{
    if (c->cb->handler)
        c->cb->handler(c->cb->user_data, c);
    else
        eryx_call_fail(c, ERYX_CALL_FAILED, "no handler is registered for this function");
}

static void dispatch_unref(dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    int last = --d->refs == 0;
    pthread_mutex_unlock(&d->mu);
    if (last) {
        pthread_mutex_destroy(&d->mu);
        free(d->calls);
        free(d);
    }
}

static void *dispatch_worker(void *arg)
{
    dispatch *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        eryx_call *c = d->next < d->n ? d->calls[d->next++] : NULL;
        pthread_mutex_unlock(&d->mu);
        if (!c)
            break;
        run_handler(c);
    }
    dispatch_unref(d);
    return NULL;
}

#define MAX_HANDLER_THREADS 16

/* Starts the handlers of the new calls: inline handlers (and a lone call) on
 * this thread, the others on up to MAX_HANDLER_THREADS detached workers. */
static void dispatch_calls(eryx_exec *ex)
{
    size_t n = 0, cap = 0;
    eryx_call **calls = NULL, *c;
    while ((c = eryx_exec_next_call(ex))) {
        if (c->cb->flags & ERYX_CALLBACK_INLINE) {
            run_handler(c);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            eryx_call **bigger = realloc(calls, cap * sizeof *bigger);
            if (!bigger) {
                eryx_call_fail(c, ERYX_CALL_FAILED, "out of memory on the host");
                continue;
            }
            calls = bigger;
        }
        calls[n++] = c;
    }
    if (n <= 1) {
        if (n == 1)
            run_handler(calls[0]);
        free(calls);
        return;
    }
    dispatch *d = calloc(1, sizeof *d);
    if (!d) {
        for (size_t i = 0; i < n; i++)
            run_handler(calls[i]);
        free(calls);
        return;
    }
    pthread_mutex_init(&d->mu, NULL);
    d->calls = calls;
    d->n = n;
    d->refs = 1;
    size_t workers = n < MAX_HANDLER_THREADS ? n : MAX_HANDLER_THREADS;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (size_t i = 1; i < workers; i++) {
        pthread_t t;
        pthread_mutex_lock(&d->mu);
        d->refs++;
        pthread_mutex_unlock(&d->mu);
        if (pthread_create(&t, &attr, dispatch_worker, d) != 0) {
            dispatch_unref(d);
            break;
        }
    }
    pthread_attr_destroy(&attr);
    d->refs++;
    dispatch_worker(d); /* this thread works too */
    dispatch_unref(d);
}

/* Sleeps until a reply arrives or the execution's deadline passes. */
static void wait_for_news(eryx_exec *ex)
{
    uint64_t deadline = eryx_exec_deadline_ns(ex);
    eryx__hub *h = ex->hub;
    pthread_mutex_lock(&h->mu);
    while (h->n_ready == 0 && !h->stopping) {
        if (!deadline) {
            pthread_cond_wait(&h->cv, &h->mu);
            continue;
        }
        if (eryx__now_ns() >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait = deadline - eryx__now_ns();
        ts.tv_sec += (time_t)(wait / 1000000000u);
        ts.tv_nsec += (long)(wait % 1000000000u);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
}

int eryx__sandbox_run(eryx_sandbox *sb, const char *code, size_t len,
                      const eryx_run_options *opts, eryx_result **out)
{
    eryx_exec *ex;
    int rc = eryx__exec_start(sb, code, len, opts, &ex);
    if (rc != ERYX_OK)
        return rc;
    while ((rc = eryx__exec_step(ex)) == ERYX_PENDING) {
        dispatch_calls(ex);
        wait_for_news(ex);
    }
    return eryx__exec_finish(ex, out);
}

void eryx_result_free(eryx_result *r)
{
    if (!r)
        return;
    free(r->out);
    free(r->err);
    free(r->exc_type);
    free(r->exc_message);
    free(r->traceback);
    free(r->result_json);
    free(r->result_error);
    free(r);
}

/* Runs an internal request to its end (no callbacks are made by it). */
static int run_mode(eryx_sandbox *sb, char mode, const char *data, size_t len,
                    eryx_exec **done)
{
    eryx_exec *ex;
    *done = NULL;
    int rc = eryx__exec_start_mode(sb, mode, data, len, &ex);
    if (rc != ERYX_OK)
        return rc;
    while ((rc = eryx__exec_step(ex)) == ERYX_PENDING)
        wait_for_news(ex);
    *done = ex;
    return rc;
}

/* Takes the JSON `result` of an internal run out of its result. */
static char *take_result_json(eryx_exec *ex)
{
    char *json = ex->result ? ex->result->result_json : NULL;
    if (ex->result)
        ex->result->result_json = NULL;
    return json ? json : strdup("[]");
}

int eryx__sandbox_export_state(eryx_sandbox *sb, void **data, size_t *len, char **skipped)
{
    eryx_exec *ex;
    int rc = run_mode(sb, 'x', "", 0, &ex);
    if (!ex)
        return rc;
    if (rc == ERYX_OK && !ex->exported) {
        eryx__set_errmsg(sb, "the sandbox exported no state");
        rc = ERYX_INTERNAL;
    }
    if (rc == ERYX_OK) {
        *data = ex->exported;
        *len = ex->exported_len;
        ex->exported = NULL;
        *skipped = take_result_json(ex);
    } else if (rc == ERYX_PYTHON_EXCEPTION && ex->result) {
        eryx__set_errmsg(sb, "exporting the state failed: %s", ex->result->exc_message);
        rc = ERYX_INTERNAL;
    }
    eryx__exec_finish(ex, NULL);
    return rc;
}

int eryx__sandbox_import_state(eryx_sandbox *sb, const void *data, size_t len, char **failed)
{
    eryx_exec *ex;
    int rc = run_mode(sb, 'y', data, len, &ex);
    if (!ex)
        return rc;
    if (rc == ERYX_OK) {
        *failed = take_result_json(ex);
    } else if (rc == ERYX_PYTHON_EXCEPTION && ex->result) {
        eryx__set_errmsg(sb, "%s", ex->result->exc_message);
        rc = ERYX_INVALID;
    }
    eryx__exec_finish(ex, NULL);
    return rc;
}

int eryx__sandbox_clear(eryx_sandbox *sb)
{
    eryx_exec *ex;
    int rc = run_mode(sb, 'z', "", 0, &ex);
    if (ex)
        eryx__exec_finish(ex, NULL);
    return rc;
}
