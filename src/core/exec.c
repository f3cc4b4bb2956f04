/*
 * The execution state machine: start, step, calls and replies. See exec.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/exec.h"
#include "guest/abi.h"

/* ---- hub and call lifetimes ------------------------------------------- */

static eryx__hub *hub_new(void)
{
    eryx__hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines are monotonic */
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, &attr);
    pthread_condattr_destroy(&attr);
    h->refs = 1;
    return h;
}

/* Drops one reference; called with h->mu held, which it releases. */
static void hub_unref_unlock(eryx__hub *h)
{
    int last = --h->refs == 0;
    pthread_mutex_unlock(&h->mu);
    if (last) {
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        free(h);
    }
}

static void call_free(eryx_call *c)
{
    free(c->name);
    free(c->args);
    json_decref(c->result);
    free(c);
}

/* Drops one reference to c; h->mu held. Returns 1 if c was freed. */
static int call_unref_locked(eryx_call *c)
{
    if (--c->refs > 0)
        return 0;
    c->hub->refs--; /* never the last: the caller holds a reference too */
    call_free(c);
    return 1;
}

/* ---- completing calls ---------------------------------------------------- */

static json_t *error_result(uint64_t id, const char *kind, const char *message)
{
    return json_pack("{s:I, s:b, s:s, s:s}", "id", (json_int_t)id, "ok", 0, "kind", kind,
                     "message", message ? message : "");
}

/* Stores the result of a waiting call and wakes whoever waits; h->mu held.
 * Takes the reference to result. */
static void complete_locked(eryx_call *c, json_t *result)
{
    eryx__hub *h = c->hub;
    c->result = result;
    c->state = ERYX__CALL_COMPLETED;
    h->n_ready++;
    pthread_cond_broadcast(&h->cv);
    if (h->notify)
        h->notify(h->notify_ud);
}

/* The embedder's side: completes the call if it still waits, then releases
 * the embedder's reference. */
static int finish_call(eryx_call *call, json_t *result)
{
    eryx__hub *h = call->hub;
    pthread_mutex_lock(&h->mu);
    int rc = ERYX_NOTFOUND;
    if (call->state == ERYX__CALL_WAITING && !h->closed) {
        complete_locked(call, result);
        result = NULL;
        rc = ERYX_OK;
    }
    json_decref(result);
    h->refs++; /* keep the hub while the call goes */
    call_unref_locked(call);
    hub_unref_unlock(h);
    return rc;
}

/* Largest reply accepted from a handler: the guest gets an error beyond. */
#define MAX_REPLY_BYTES (64u << 20)

int eryx_call_reply(eryx_call *call, const char *json, size_t len)
{
    if (!call)
        return ERYX_MISUSE;
    json_error_t err;
    json_t *value = NULL;
    if (json && len <= MAX_REPLY_BYTES)
        value = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!value) {
        char msg[200];
        snprintf(msg, sizeof msg, "the host function returned %s",
                 !json ? "no JSON" : len > MAX_REPLY_BYTES ? "more than 64 MiB of JSON"
                                                           : "malformed JSON");
        int rc = finish_call(call, error_result(call->id, "failed", msg));
        return rc == ERYX_OK ? ERYX_INVALID : rc;
    }
    json_t *result = json_pack("{s:I, s:b, s:o}", "id", (json_int_t)call->id, "ok", 1,
                               "value", value);
    return finish_call(call, result);
}

int eryx_call_fail(eryx_call *call, int kind, const char *message)
{
    static const char *const kinds[] = {"failed", "invalid_arguments", "timeout"};
    if (!call)
        return ERYX_MISUSE;
    const char *k = kind >= 0 && kind <= ERYX_CALL_TIMEOUT ? kinds[kind] : "failed";
    /* Bound what one failure can make the guest allocate. */
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", message ? message : "");
    return finish_call(call, error_result(call->id, k, buf));
}

const char *eryx_call_name(const eryx_call *call)
{
    return call ? call->name : NULL;
}

const char *eryx_call_args(const eryx_call *call)
{
    return call ? call->args : NULL;
}

uint64_t eryx_call_id(const eryx_call *call)
{
    return call ? call->id : 0;
}

/* ---- the guest's side (called from host_imports.c) ------------------------ */

static int push_call(eryx_exec *ex, eryx_call *c)
{
    if (ex->n_calls == ex->cap_calls) {
        size_t cap = ex->cap_calls ? ex->cap_calls * 2 : 16;
        eryx_call **bigger = realloc(ex->calls, cap * sizeof *bigger);
        if (!bigger)
            return -1;
        ex->calls = bigger;
        ex->cap_calls = cap;
    }
    ex->calls[ex->n_calls++] = c;
    return 0;
}

static eryx_call *call_new(eryx_exec *ex, uint64_t id, const char *name)
{
    eryx_call *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return NULL;
    }
    c->hub = ex->hub;
    c->id = id;
    return c;
}

void eryx__exec_fail_now(eryx_exec *ex, uint64_t id, const char *kind, const char *msg)
{
    eryx_call *c = call_new(ex, id, "");
    json_t *r = error_result(id, kind, msg);
    if (!c || !r || push_call(ex, c) < 0) {
        free(c ? c->name : NULL);
        free(c);
        json_decref(r);
        return; /* the guest's future then waits; out of memory anyway */
    }
    pthread_mutex_lock(&ex->hub->mu);
    c->refs = 1;
    ex->hub->refs++;
    c->state = ERYX__CALL_WAITING;
    complete_locked(c, r);
    pthread_mutex_unlock(&ex->hub->mu);
    /* c->cb is NULL: eryx_exec_next_call never hands it to the embedder. */
}

int eryx__exec_add_call(eryx_exec *ex, uint64_t id, const char *name, const char *args)
{
    eryx_sandbox *sb = ex->sb;
    const eryx__callback *cb = eryx__callback_find(sb, name);
    char msg[300];
    if (!cb) {
        snprintf(msg, sizeof msg, "no host function named '%.200s'", name);
        eryx__exec_fail_now(ex, id, "invalid_arguments", msg);
        return 0;
    }
    if (ex->n_invocations >= sb->max_callbacks) {
        snprintf(msg, sizeof msg, "callback limit reached: at most %u calls per execution",
                 sb->max_callbacks);
        eryx__exec_fail_now(ex, id, "failed", msg);
        return 0;
    }
    eryx_call *c = call_new(ex, id, name);
    if (!c || !(c->args = strdup(args)) || push_call(ex, c) < 0) {
        if (c)
            call_free(c);
        return -1;
    }
    c->cb = cb;
    c->deadline_ns = eryx__now_ns() + sb->callback_timeout_ns;
    c->refs = 2; /* the execution's and the embedder's */
    pthread_mutex_lock(&ex->hub->mu);
    ex->hub->refs += 1;
    pthread_mutex_unlock(&ex->hub->mu);
    ex->n_invocations++;
    return 0;
}

int eryx__exec_has_completed(eryx_exec *ex)
{
    pthread_mutex_lock(&ex->hub->mu);
    int n = ex->hub->n_ready;
    pthread_mutex_unlock(&ex->hub->mu);
    return n > 0;
}

/* Times out calls past their deadline; h->mu held. */
static void expire_calls_locked(eryx_exec *ex, uint64_t now)
{
    for (size_t i = 0; i < ex->n_calls; i++) {
        eryx_call *c = ex->calls[i];
        if (c->state == ERYX__CALL_WAITING && c->deadline_ns && now >= c->deadline_ns)
            complete_locked(c, error_result(c->id, "timeout",
                                            "the host function did not answer in time"));
    }
}

/* Builds the reply for the guest from every completed call, which the
 * execution then forgets (the embedder may still hold its reference). */
int eryx__exec_take_reply(eryx_exec *ex, const char *error)
{
    json_t *results = json_array();
    eryx__hub *h = ex->hub;
    size_t kept = 0, handed_out = ex->next_new, removed_before = 0;
    pthread_mutex_lock(&h->mu);
    expire_calls_locked(ex, eryx__now_ns());
    for (size_t i = 0; i < ex->n_calls; i++) {
        eryx_call *c = ex->calls[i];
        if (c->state == ERYX__CALL_COMPLETED && results) {
            json_array_append(results, c->result);
            c->state = ERYX__CALL_DELIVERED;
            removed_before += i < handed_out;
            call_unref_locked(c);
            continue;
        }
        ex->calls[kept++] = c;
    }
    ex->n_calls = kept;
    ex->next_new = handed_out - removed_before;
    h->n_ready = 0;
    pthread_mutex_unlock(&h->mu);
    json_t *reply = json_pack("{s:o}", "results", results);
    if (reply && error)
        json_object_set_new(reply, "error", json_string(error));
    free(ex->reply);
    ex->reply = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    ex->reply_len = ex->reply ? strlen(ex->reply) : 0;
    json_decref(reply);
    return ex->reply ? 0 : -1;
}

/* ---- the execution -------------------------------------------------------- */

uint64_t eryx_exec_deadline_ns(const eryx_exec *ex)
{
    if (!ex)
        return 0;
    uint64_t d = ex->timer_deadline_ns, limit = eryx__irq_deadline(ex->sb);
    if (limit && (!d || limit < d))
        d = limit;
    pthread_mutex_lock(&ex->hub->mu);
    for (size_t i = 0; i < ex->n_calls; i++) {
        const eryx_call *c = ex->calls[i];
        if (c->state == ERYX__CALL_WAITING && c->deadline_ns && (!d || c->deadline_ns < d))
            d = c->deadline_ns;
    }
    pthread_mutex_unlock(&ex->hub->mu);
    return d;
}

int eryx_exec_ready(const eryx_exec *ex)
{
    return ex ? eryx__exec_has_completed((eryx_exec *)ex) : 0;
}

void eryx_exec_set_notify(eryx_exec *ex, void (*notify)(void *ud), void *ud)
{
    if (!ex)
        return;
    pthread_mutex_lock(&ex->hub->mu);
    ex->hub->notify = notify;
    ex->hub->notify_ud = ud;
    pthread_mutex_unlock(&ex->hub->mu);
}

eryx_call *eryx_exec_next_call(eryx_exec *ex)
{
    if (!ex || ex->state != EX_PENDING)
        return NULL;
    while (ex->next_new < ex->n_calls) {
        eryx_call *c = ex->calls[ex->next_new++];
        if (c->cb)
            return c;
    }
    return NULL;
}

/* Whether the execution has anything for the guest: a completion, or a
 * passed timer or callback deadline. */
int eryx__exec_has_news(eryx_exec *ex)
{
    uint64_t now = eryx__now_ns();
    if (ex->timer_deadline_ns && now >= ex->timer_deadline_ns)
        return 1;
    if (eryx__irq_cause(ex->sb))
        return 1; /* resume: the stop takes effect in the guest */
    pthread_mutex_lock(&ex->hub->mu);
    expire_calls_locked(ex, now);
    int ready = ex->hub->n_ready > 0;
    pthread_mutex_unlock(&ex->hub->mu);
    return ready;
}

void eryx__exec_free(eryx_exec *ex)
{
    eryx__hub *h = ex->hub;
    pthread_mutex_lock(&h->mu);
    h->closed = 1;
    for (size_t i = 0; i < ex->n_calls; i++)
        call_unref_locked(ex->calls[i]);
    hub_unref_unlock(h);
    free(ex->calls);
    free(ex->request);
    free(ex->reply);
    free(ex->result_json);
    free(ex->result_error);
    free(ex->exported);
    eryx_result_free(ex->result);
    free(ex);
}

eryx_exec *eryx__exec_new(eryx_sandbox *sb, char *request, size_t len)
{
    eryx_exec *ex = calloc(1, sizeof *ex);
    if (!ex || !(ex->hub = hub_new())) {
        free(ex);
        return NULL;
    }
    ex->sb = sb;
    ex->request = request;
    ex->request_len = len;
    return ex;
}
