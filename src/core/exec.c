/*
 * The execution state machine: start, step, calls and replies, finish. See
 * exec.h. The public functions over it (handle checks) are in src/api/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "core/exec.h"
#include "core/call_record.h"
#include "core/handle.h"
#include "core/json_wide.h"
#include "core/json_write.h"
#include "guest/abi.h"
#include "net/net.h"

/* ---- hub and call lifetimes ------------------------------------------- */

static eryx__hub *hub_new(void)
{
    eryx__hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    eryx__cond_init_monotonic(&h->cv);
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

/* The embedder's notify is called with none of our locks held, so that it
 * may call eryx_exec_ready or eryx_exec_deadline_ns; the execution is not
 * freed while one is in flight (eryx__exec_finish waits for it). */
int eryx__hub_notice_locked(eryx__hub *h, eryx__notice *n)
{
    n->hub = NULL;
    if (h->closed || !h->notify)
        return 0;
    n->hub = h;
    n->fn = h->notify;
    n->ud = h->notify_ud;
    h->notifying++;
    h->refs++;
    return 1;
}

void eryx__notice_deliver(eryx__notice *n)
{
    eryx__hub *h = n->hub;
    if (!h)
        return;
    n->fn(n->ud);
    pthread_mutex_lock(&h->mu);
    if (--h->notifying == 0)
        pthread_cond_broadcast(&h->cv);
    hub_unref_unlock(h);
    n->hub = NULL;
}

/* ---- the notifier thread --------------------------------------------------
 * The watchdog's notices (a time limit passed) are delivered on a thread of
 * their own: delivered by the watchdog, an embedder's notify that blocked
 * held the time limit of every other running guest in the process with it.
 * Here it holds only the notices queued behind it, and an execution that
 * ends drops its own from the queue (notices_drop_locked) rather than wait
 * for them. nq_mu is taken last: after a hub's lock (eryx__notice_post,
 * notices_drop_locked), and nothing is locked while it is held. */

typedef struct posted {
    struct posted *next;
    eryx__notice notice;
} posted;

static pthread_mutex_t nq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nq_cv = PTHREAD_COND_INITIALIZER;
static posted *nq_head, **nq_tail = &nq_head;
static int nq_started;

static void *notifier(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&nq_mu);
    for (;;) {
        while (!nq_head)
            pthread_cond_wait(&nq_cv, &nq_mu);
        posted *p = nq_head;
        nq_head = p->next;
        if (!nq_head)
            nq_tail = &nq_head;
        pthread_mutex_unlock(&nq_mu);
        eryx__notice_deliver(&p->notice);
        free(p);
        pthread_mutex_lock(&nq_mu);
    }
    return NULL;
}

/* Queues n for the notifier. Under n's hub's lock, as exec_free drops the
 * queued ones under it: a notice is either queued before its execution
 * ends, and dropped then, or dropped here. (Checked outside it, an end in
 * between waited for the notifier, and so for a notify blocked ahead.) */
void eryx__notice_post(eryx__notice *n)
{
    eryx__hub *h = n->hub;
    if (!h)
        return;
    posted *p = malloc(sizeof *p);
    pthread_mutex_lock(&h->mu);
    if (h->closed) {
        free(p);
        n->hub = NULL;
        if (--h->notifying == 0)
            pthread_cond_broadcast(&h->cv);
        hub_unref_unlock(h);
        return;
    }
    pthread_mutex_lock(&nq_mu);
    if (p && !nq_started && eryx__thread_start_detached(notifier, NULL) == 0)
        nq_started = 1;
    if (!p || !nq_started) {
        /* Out of memory or threads: delivered here, as it was before. */
        pthread_mutex_unlock(&nq_mu);
        pthread_mutex_unlock(&h->mu);
        free(p);
        eryx__notice_deliver(n);
        return;
    }
    p->notice = *n;
    p->next = NULL;
    *nq_tail = p;
    nq_tail = &p->next;
    n->hub = NULL;
    pthread_cond_signal(&nq_cv);
    pthread_mutex_unlock(&nq_mu);
    pthread_mutex_unlock(&h->mu);
}

/* h->mu held, h closed: drops h's notices still queued; the execution
 * holds a reference, so h stays. */
static void notices_drop_locked(eryx__hub *h)
{
    pthread_mutex_lock(&nq_mu);
    posted **pp = &nq_head;
    while (*pp) {
        posted *p = *pp;
        if (p->notice.hub != h) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        h->notifying--;
        h->refs--;
        free(p);
    }
    nq_tail = pp;
    pthread_mutex_unlock(&nq_mu);
}

/* The queue's notices are kept in the child; the thread is not there, and
 * the next post starts one, which delivers them all. */
void eryx__notifier_fork(enum eryx__fork_phase phase)
{
    if (phase == ERYX__FORK_PREPARE) {
        pthread_mutex_lock(&nq_mu);
        return;
    }
    if (phase == ERYX__FORK_CHILD) {
        pthread_cond_t fresh_cv = PTHREAD_COND_INITIALIZER;
        nq_cv = fresh_cv; /* (its waiter, the notifier, is not here) */
        nq_started = 0;
    }
    pthread_mutex_unlock(&nq_mu);
}

static void call_free(eryx_call *c)
{
    free(c->name);
    free(c->args);
    json_decref(c->record.tree);
    free(c->record.text);
    free(c);
}

/* Drops one reference to c; h->mu held. Returns 1 if c was freed. */
static int call_unref_locked(eryx_call *c)
{
    if (--c->refs > 0)
        return 0;
    c->hub->args_held -= c->args_held;
    c->hub->trees_held -= c->tree_held;
    c->hub->refs--; /* never the last: the caller holds a reference too */
    call_free(c);
    return 1;
}

/* ---- completing calls ---------------------------------------------------- */

/* Whether a call's arguments were counted as held, or which bound they
 * would have passed. */
enum hold { HELD, OVER_HELD_ARGS, OVER_HELD_TREES };

/* Counts n more bytes of arguments, whose tree takes tree bytes to read,
 * held for h's calls, unless that passes ERYX_MAX_HELD_ARGS or
 * ERYX_MAX_HELD_TREES: then nothing is counted. */
static enum hold hold_args(eryx__hub *h, size_t n, size_t tree)
{
    pthread_mutex_lock(&h->mu);
    enum hold held = n > ERYX_MAX_HELD_ARGS - h->args_held        ? OVER_HELD_ARGS
                     : tree > ERYX_MAX_HELD_TREES - h->trees_held ? OVER_HELD_TREES
                                                                  : HELD;
    if (held == HELD) {
        h->args_held += n;
        h->trees_held += tree;
    }
    pthread_mutex_unlock(&h->mu);
    return held;
}

static void release_args(eryx__hub *h, size_t n, size_t tree)
{
    pthread_mutex_lock(&h->mu);
    h->args_held -= n;
    h->trees_held -= tree;
    pthread_mutex_unlock(&h->mu);
}


static json_t *error_result(uint64_t id, const char *kind, const char *message)
{
    json_t *r = eryx__call_error_record(id, kind, message ? message : "");
    /* jansson refuses text that is not UTF-8: the guest still gets its
     * failure (a NULL result would leave the call waiting forever). */
    if (!r)
        r = eryx__call_error_record(id, kind, "(the host function's message was not valid UTF-8)");
    return r;
}

static eryx__record tree_record(json_t *tree)
{
    return (eryx__record){tree, NULL, 0};
}

/* Records the outcome of a call that has a journal entry (h->mu held: a
 * reply records on its own thread); returns the record to deliver. A value
 * records its JSON text (*text, taken); one that does not fit becomes a
 * failure, so that the guest gets what the journal says it got. */
static eryx__record record_locked(eryx_call *c, eryx__record r, char **text, size_t len)
{
    eryx_journal *j = c->hub->journal;
    if ((!r.tree && !r.text) || !c->jentry || !j || j->e[c->jentry - 1].state != ERYX__JE_PENDING)
        return r; /* not journaled, or a replayed outcome */
    size_t i = c->jentry - 1;
    /* Only a value's record comes as text. */
    if (r.text || json_is_true(json_object_get(r.tree, "ok"))) {
        if (text && *text && eryx__journal_answer_ok(j, i, *text, len) == 0) {
            *text = NULL;
            return r;
        }
        char msg[200];
        snprintf(msg, sizeof msg, "the host function's reply (%zu bytes) could not be "
                                  "recorded: a journal holds at most %u MiB",
                 len, ERYX__JOURNAL_MAX_BYTES >> 20);
        json_t *failure = error_result(c->id, "failed", msg);
        if (!failure)
            return r; /* the entry stays pending: a replay asks again */
        json_decref(r.tree);
        free(r.text);
        r = tree_record(failure);
    }
    const char *kind = json_string_value(json_object_get(r.tree, "kind"));
    eryx__journal_answer_error(j, i, eryx__call_error_kind(kind),
                               json_string_value(json_object_get(r.tree, "message")));
    return r;
}

/* A live journaled call's outcome while a replay still has recorded
 * batches to deliver: it came after them the first time, so it waits for
 * them (h->mu held). */
static int deferred_locked(const eryx_call *c)
{
    return c->hub->deferring && c->jentry && !c->replay_batch;
}

/* Stores the record of a waiting call's outcome and wakes a waiting step;
 * h->mu held. Takes o (and *text, see record_locked). */
static void complete_locked(eryx_call *c, eryx__record o, char **text, size_t len)
{
    eryx__hub *h = c->hub;
    c->record = record_locked(c, o, text, len);
    c->state = ERYX__CALL_COMPLETED;
    h->n_waiting--;
    c->done_next = h->done;
    h->done = c;
    if (!deferred_locked(c))
        h->n_ready++;
    pthread_cond_broadcast(&h->cv);
}

/* Whether a waiting call's deadline has passed; h->mu held. */
static int overdue_locked(const eryx_call *c, uint64_t now)
{
    return c->state == ERYX__CALL_WAITING && c->deadline_ns && now >= c->deadline_ns;
}

/* Completes an overdue call with the timeout every caller sees; h->mu
 * held. A call still queued says why its handler never ran: every
 * handler it could have had was busy (most often with the sandbox's
 * earlier calls that block), or, under a timeout of a few milliseconds,
 * the thread that would run it had not started yet (the message blamed
 * busy handlers alone, which puzzled a user with one call in flight). */
static void expire_locked(eryx_call *c)
{
#define STR_(x) #x
#define STR(x) STR_(x)
    const char *msg = atomic_load(&c->queued)
                          ? "the host function did not answer in time: it never started, "
                            "waiting for a free handler (" STR(ERYX__HANDLERS_PER_SANDBOX)
                            " at once per sandbox, busy with its earlier calls, or the "
                            "process's " STR(ERYX__HANDLERS_PER_PROCESS) "; or a handler "
                            "thread still starting, under a timeout of a few ms)"
                          : "the host function did not answer in time";
#undef STR
#undef STR_
    complete_locked(c, tree_record(error_result(c->id, "timeout", msg)), NULL, 0);
}

void eryx__call_set_queued(eryx_call *call, int queued)
{
    atomic_store(&call->queued, queued);
}

/* The embedder's side: completes the call if it still waits, releases the
 * embedder's reference, then notifies with no lock held. text is the
 * reply's JSON for the journal (taken), or NULL. tree: bytes of o's tree
 * already counted in the hub's trees_held (hold_args), which the call
 * then holds until the guest has its outcome, or which are given back.
 * A reply that comes after
 * the deadline is dropped even when the guest has not looked yet, so the
 * guest always sees the same timeout, whichever thread gets there first. */
static int finish_call(eryx_call *call, eryx__record o, size_t tree, char *text, size_t len)
{
    eryx__hub *h = call->hub;
    eryx__notice notice = {0};
    pthread_mutex_lock(&h->mu);
    int rc = ERYX_NOTFOUND;
    if (!h->closed && overdue_locked(call, eryx__now_ns())) {
        expire_locked(call);
        eryx__hub_notice_locked(h, &notice);
    } else if (call->state == ERYX__CALL_WAITING && !h->closed && (o.tree || o.text)) {
        complete_locked(call, o, &text, len);
        o = tree_record(NULL);
        call->tree_held += tree; /* released with the call (call_unref_locked) */
        tree = 0;
        rc = ERYX_OK;
        eryx__hub_notice_locked(h, &notice);
    }
    h->trees_held -= tree;
    h->refs++; /* keep the hub while the call goes */
    call_unref_locked(call);
    hub_unref_unlock(h);
    json_decref(o.tree);
    free(o.text);
    free(text);
    eryx__notice_deliver(&notice);
    return rc;
}

/* 1 if jansson refused the text only for a NUL in an object's key (it
 * reads none; a refused reply's message says so). */
static int nul_in_key(const char *json, size_t len)
{
    json_error_t e;
    json_t *v = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    json_decref(v);
    return !v && json_error_code(&e) == json_error_null_byte_in_key;
}

/* Largest reply accepted from a handler: the guest gets an error beyond. */
#define MAX_REPLY_BYTES (64u << 20)

int eryx__call_reply(eryx_call *call, const char *json, size_t len)
{
    eryx__record o = tree_record(NULL);
    size_t tree = 0;
    enum hold held = HELD;
    if (json && len <= MAX_REPLY_BYTES) {
        /* Most values need no tree: read and copied in one pass. */
        o.text = eryx__call_ok_text(call->id, json, len, &o.len);
        /* The rest is read by jansson, whose tree counts with the
         * arguments' (ERYX_MAX_HELD_TREES) until the guest has it: 16 MiB
         * of [{},{},...] with one 19-digit integer took 1.3 GB. */
        if (!o.text) {
            held = eryx__json_tree_fits(json, len, ERYX_MAX_HELD_TREES, &tree)
                       ? hold_args(call->hub, 0, tree)
                       : OVER_HELD_TREES;
            if (held == HELD && !(o.tree = eryx__call_ok_record(call->id, json, len)))
                release_args(call->hub, 0, tree);
        }
    }
    if (!o.tree && !o.text) {
        char msg[400];
        /* Which function: a run that awaits several at once cannot tell. */
        int n = snprintf(msg, sizeof msg, "the host function '%.100s' returned ",
                         call->name ? call->name : "");
        char *rest = msg + n;
        size_t room = sizeof msg - (size_t)n;
        if (held == OVER_HELD_TREES && tree > ERYX_MAX_HELD_TREES)
            snprintf(rest, room, "JSON that would take more than %u MiB to read (too many "
                                 "objects, arrays and values): the host does not take it",
                     (unsigned)(ERYX_MAX_HELD_TREES >> 20));
        else if (held != HELD)
            snprintf(rest, room, "JSON that would take %zu MiB to read (too many objects, "
                                 "arrays and values): with the run's other calls not yet "
                                 "delivered, more than the %u MiB the host reads at once",
                     tree >> 20, (unsigned)(ERYX_MAX_HELD_TREES >> 20));
        else
            snprintf(rest, room, "%s",
                     !json                   ? "no JSON"
                     : len > MAX_REPLY_BYTES ? "more than 64 MiB of JSON"
                     : nul_in_key(json, len) ? "JSON with a NUL character (\\u0000) in an "
                                               "object key, which the host cannot read (in a "
                                               "value it can)"
                     : eryx__json_number_overflows(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL)
                         ? "JSON with a number beyond a double's range (about 1.8e308), which "
                           "the host cannot read: send it as a string"
                         : "malformed JSON");
        int rc = finish_call(call, tree_record(error_result(call->id, "failed", msg)), 0, NULL, 0);
        return rc == ERYX_OK ? ERYX_INVALID : rc;
    }
    /* Copied here, with no lock held; jentry never changes once the call
     * is shared. */
    char *text = call->jentry ? strndup(json, len) : NULL;
    return finish_call(call, o, o.tree ? tree : 0, text, text ? strlen(text) : 0);
}

int eryx__call_fail(eryx_call *call, int kind, const char *message)
{
    static const char *const kinds[] = {"failed", "invalid_arguments", "timeout"};
    const char *k = kind >= 0 && kind <= ERYX_CALL_TIMEOUT ? kinds[kind] : "failed";
    /* Bound what one failure can make the guest allocate. */
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", message ? message : "");
    return finish_call(call, tree_record(error_result(call->id, k, buf)), 0, NULL, 0);
}

int eryx__call_complete(eryx_call *call, json_t *value, const char *kind, const char *msg)
{
    /* A journaled call's value is recorded as text (record_locked); jentry
     * is set before the call is handed out and never changes. */
    char *text = value && call->jentry ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    size_t len = text ? strlen(text) : 0;
    json_t *result = value ? eryx__call_record(call->id, 1, "value", value)
                           : error_result(call->id, kind, msg);
    return finish_call(call, tree_record(result), 0, text, len);
}

void eryx__call_release(eryx_call *call)
{
    eryx__hub *h = call->hub;
    pthread_mutex_lock(&h->mu);
    h->refs++;
    call_unref_locked(call);
    hub_unref_unlock(h);
}

/* Gives a call a deadline (0: none); h->mu held. */
static void set_deadline_locked(eryx_call *c, uint64_t deadline_ns)
{
    eryx__hub *h = c->hub;
    c->deadline_ns = deadline_ns;
    if (deadline_ns && (!h->calls_deadline_ns || deadline_ns < h->calls_deadline_ns))
        h->calls_deadline_ns = deadline_ns;
}

void eryx__call_set_deadline(eryx_call *call, uint64_t deadline_ns)
{
    pthread_mutex_lock(&call->hub->mu);
    set_deadline_locked(call, deadline_ns);
    pthread_mutex_unlock(&call->hub->mu);
}

int eryx__call_pending(eryx_call *call)
{
    eryx__hub *h = call->hub;
    pthread_mutex_lock(&h->mu);
    int pending = call->state == ERYX__CALL_WAITING && !h->closed &&
                  !overdue_locked(call, eryx__now_ns());
    pthread_mutex_unlock(&h->mu);
    return pending;
}

/* ---- the guest's side (called from host_imports.c) ------------------------ */

static int push_call(eryx_exec *ex, eryx_call *c)
{
    int rc = 0;
    pthread_mutex_lock(&ex->hub->mu);
    if (ex->n_calls == ex->cap_calls) {
        /* picked as large: taking the completed calls allocates nothing. */
        size_t cap = ex->cap_calls ? ex->cap_calls * 2 : 16;
        eryx_call **bigger = realloc(ex->calls, cap * sizeof *bigger);
        if (bigger)
            ex->calls = bigger;
        eryx_call **picked = bigger ? realloc(ex->picked, cap * sizeof *picked) : NULL;
        if (picked) {
            ex->picked = picked;
            ex->cap_calls = cap;
        }
    }
    if (ex->n_calls < ex->cap_calls) {
        c->slot = ex->n_calls;
        ex->calls[ex->n_calls++] = c;
        ex->hub->n_waiting++; /* a new call waits */
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&ex->hub->mu);
    return rc;
}

/* A new call holding the execution's reference. */
static eryx_call *call_new(eryx_exec *ex, uint64_t id, const char *name)
{
    eryx_call *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return NULL;
    }
    c->hub = ex->hub;
    c->id = id;
    c->refs = 1;
    c->state = ERYX__CALL_WAITING;
    return c;
}

/* A call eryx answers itself, never the embedder's (eryx_exec_next_call
 * skips it), holding its result r (taken) until it completes; NULL when
 * out of memory (the guest's future then waits). */
static eryx_call *own_call_record(eryx_exec *ex, uint64_t id, eryx__record r)
{
    eryx_call *c = call_new(ex, id, "");
    if (!c || (!r.tree && !r.text) || push_call(ex, c) < 0) {
        if (c)
            call_free(c);
        json_decref(r.tree);
        free(r.text);
        return NULL;
    }
    pthread_mutex_lock(&ex->hub->mu);
    ex->hub->refs++;
    c->record = r;
    pthread_mutex_unlock(&ex->hub->mu);
    return c;
}

static eryx_call *own_call(eryx_exec *ex, uint64_t id, json_t *r)
{
    return own_call_record(ex, id, tree_record(r));
}

/* Completes an own call with the result it holds; h->mu held. */
static void complete_own_locked(eryx_call *c)
{
    eryx__record r = c->record;
    c->record = tree_record(NULL);
    complete_locked(c, r, NULL, 0);
}

/* A call completed at once with r (taken), recorded in journal entry
 * jentry - 1 if jentry. The step sees the completion itself (no notify). */
static void complete_now(eryx_exec *ex, uint64_t id, json_t *r, size_t jentry)
{
    eryx_call *c = own_call(ex, id, r);
    if (!c)
        return;
    pthread_mutex_lock(&ex->hub->mu);
    c->jentry = jentry;
    complete_own_locked(c);
    pthread_mutex_unlock(&ex->hub->mu);
}

void eryx__exec_fail_now(eryx_exec *ex, uint64_t id, const char *kind, const char *msg)
{
    complete_now(ex, id, error_result(id, kind, msg), 0);
}

/* A network operation: a call the network layer completes (src/net/),
 * recorded in journal entry jentry - 1 if jentry. */
static int add_net_call(eryx_exec *ex, uint64_t id, const char *name, const char *args,
                        size_t jentry)
{
    eryx_call *c = call_new(ex, id, name);
    if (!c || push_call(ex, c) < 0) {
        if (c)
            call_free(c);
        return -1;
    }
    c->jentry = jentry;
    pthread_mutex_lock(&ex->hub->mu);
    ex->hub->refs++;
    c->refs++; /* the network layer's, released when it completes */
    pthread_mutex_unlock(&ex->hub->mu);
    eryx__net_submit(ex->sb->net, c, name + strlen(ERYX__NET_PREFIX), args);
    return 0;
}

/* ---- journals ------------------------------------------------------------- */

/* The guest's call differs from the journal's entry e: the guest is
 * suspended for good (wait_for_host) and the step ends the execution. */
static void diverge(eryx_exec *ex, const eryx__jentry *e, const char *name)
{
    int same_name = strcmp(e->name, name) == 0;
    ex->diverged = 1;
    eryx__set_errmsg(ex->sb, "the code did not repeat the journal's calls: its call %zu is "
                             "'%.100s'%s where the journal has '%.100s'",
                     ex->jnext + 1, name, same_name ? " with other arguments" : "", e->name);
}

/* A replayed call: held until the replay delivers its batch, in the reply
 * that delivered it the first time: the guest's tasks then resume in the
 * same order and make the same calls. Its outcome is prepared only then
 * (prepare_batch): prepared here, every batch the guest had made again
 * held its trees at once, uncounted. */
static void hold_replayed(eryx_exec *ex, uint64_t id, size_t i)
{
    const eryx__jentry *e = &ex->journal->e[i];
    uint32_t batch = e->batch ? e->batch : ex->rlast; /* answered too late: last */
    eryx_call *c = call_new(ex, id, "");
    if (!c || push_call(ex, c) < 0) {
        if (c)
            call_free(c);
        return; /* out of memory: its batch never completes (diverged) */
    }
    pthread_mutex_lock(&ex->hub->mu);
    ex->hub->refs++;
    c->jentry = i + 1;
    c->replay_batch = batch;
    ex->rleft[batch]--;
    pthread_mutex_unlock(&ex->hub->mu);
}

/* Prepares the recorded outcomes of batch b, whose calls the guest made
 * again, from their entries (answered: they never change again, read
 * without the lock). A tree counts in the hub's trees_held as a live
 * reply's does, held by its call until the guest has it: a batch is what
 * the first run delivered at once, so its trees fit together with the
 * run's other calls; a journal whose batch does not (it was made, not
 * recorded: each reply fits on its own, 256 MiB of journal could hold
 * 20 GB of trees) ends the execution as diverged, as a crafted order the
 * code cannot follow does, with the message set. 0, or -1 then. */
static int prepare_batch(eryx_exec *ex, uint32_t b)
{
    const eryx_journal *j = ex->journal;
    for (size_t i = 0; i < ex->n_calls; i++) {
        eryx_call *c = ex->calls[i];
        if (!c || c->replay_batch != b || c->state != ERYX__CALL_WAITING || c->record.tree ||
            c->record.text)
            continue;
        size_t tree;
        eryx__record r = eryx__journal_result(j, c->jentry - 1, c->id, &tree);
        enum hold held = HELD;
        if (tree && (held = hold_args(ex->hub, 0, tree)) == HELD &&
            !(r.tree = eryx__journal_result_tree(j, c->jentry - 1, c->id)))
            release_args(ex->hub, 0, tree);
        if (held != HELD) {
            ex->diverged = 1;
            eryx__set_errmsg(ex->sb, "the journal's outcomes cannot be replayed: those of its "
                                     "batch %u take more than the %u MiB of trees the host reads "
                                     "at once (entry %zu's reply takes %zu MiB)",
                             b, (unsigned)(ERYX_MAX_HELD_TREES >> 20), c->jentry, tree >> 20);
            return -1;
        }
        if (!r.tree && !r.text) {
            ex->diverged = 1;
            eryx__set_errmsg(ex->sb, "out of memory preparing the journal's outcome %zu",
                             c->jentry);
            return -1;
        }
        pthread_mutex_lock(&ex->hub->mu);
        c->record = r;
        c->tree_held = tree; /* released with the call (call_unref_locked) */
        pthread_mutex_unlock(&ex->hub->mu);
    }
    return 0;
}

/* The guest waits while the next recorded batch still misses calls it has
 * not made again: fine if something else can wake it (h->mu held). A live
 * call cannot: every call of a journaled execution, network operations
 * included, is journaled, and its outcome waits for the recorded ones. */
static int can_wake_locked(eryx_exec *ex)
{
    return ex->timer_deadline_ns || ex->hub->n_ready;
}

void eryx__exec_replay_wait(eryx_exec *ex)
{
    eryx__hub *h = ex->hub;
    if (!ex->rleft || ex->diverged)
        return;
    pthread_mutex_lock(&h->mu);
    if (ex->rnext > ex->rlast) {
        /* The last batch was delivered by the previous reply: the live
         * outcomes held back come now. */
        if (h->deferring) {
            h->deferring = 0;
            h->n_ready = 0;
            for (size_t i = 0; i < ex->n_calls; i++)
                h->n_ready += ex->calls[i] && ex->calls[i]->state == ERYX__CALL_COMPLETED;
        }
        pthread_mutex_unlock(&h->mu);
        return;
    }
    if (ex->rleft[ex->rnext] == 0) {
        /* Only this thread adds calls or takes them away: the list stays. */
        pthread_mutex_unlock(&h->mu);
        if (prepare_batch(ex, ex->rnext) < 0)
            return;
        pthread_mutex_lock(&h->mu);
        for (size_t i = 0; i < ex->n_calls; i++) {
            eryx_call *c = ex->calls[i];
            if (c && c->replay_batch == ex->rnext && c->state == ERYX__CALL_WAITING)
                complete_own_locked(c);
        }
        ex->rnext++;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    int wakes = can_wake_locked(ex);
    pthread_mutex_unlock(&h->mu);
    if (!wakes) {
        ex->diverged = 1;
        eryx__set_errmsg(ex->sb, "the code did not repeat the journal's calls: it waits "
                                 "without making call %zu of the journal's %zu",
                         ex->jnext + 1, ex->journal->n);
    }
}

/* The replay of j's answered entries, batch by batch (ex->rleft). */
static int plan_replay(eryx_exec *ex, const eryx_journal *j)
{
    uint32_t last = 0, late = 0;
    for (size_t i = 0; i < j->n; i++) {
        const eryx__jentry *e = &j->e[i];
        if (e->state != ERYX__JE_PENDING && e->batch > last)
            last = e->batch;
        late |= e->state != ERYX__JE_PENDING && !e->batch;
    }
    if (!last && !late)
        return ERYX_OK;
    ex->rlast = last + late;
    ex->rnext = 1;
    if (!(ex->rleft = calloc((size_t)ex->rlast + 1, sizeof *ex->rleft)))
        return ERYX_NOMEM;
    for (size_t i = 0; i < j->n; i++)
        if (j->e[i].state != ERYX__JE_PENDING)
            ex->rleft[j->e[i].batch ? j->e[i].batch : ex->rlast]++;
    ex->hub->deferring = 1;
    return ERYX_OK;
}

enum { J_DONE, J_RECORD, J_NOMEM };

/* Sets the guest's call against the journal: an answered entry is replayed
 * (its outcome held for its batch, J_DONE), a pending or new entry is where
 * the call's outcome goes (*jentry, J_RECORD), a differing one ends the
 * execution (J_DONE). Entries change under the hub's mutex: replies record
 * into them on other threads. */
static int journal_call(eryx_exec *ex, uint64_t id, const char *name, const char *args,
                        size_t *jentry)
{
    eryx_journal *j = ex->journal;
    if (ex->diverged)
        return J_DONE; /* this guest never runs again */
    pthread_mutex_lock(&ex->hub->mu);
    if (ex->jnext < j->n) {
        const eryx__jentry *e = &j->e[ex->jnext];
        int answered = e->state != ERYX__JE_PENDING;
        if (strcmp(e->name, name) != 0 || strcmp(e->args, args) != 0) {
            pthread_mutex_unlock(&ex->hub->mu);
            diverge(ex, e, name);
            return J_DONE;
        }
        *jentry = ++ex->jnext;
        pthread_mutex_unlock(&ex->hub->mu);
        if (answered) {
            ex->n_replayed += !eryx__journal_is_net(name); /* callbacks only */
            hold_replayed(ex, id, *jentry - 1);
        }
        return answered ? J_DONE : J_RECORD;
    }
    int net = eryx__journal_is_net(name);
    int full = net ? j->n_net >= ERYX__JOURNAL_MAX_NET
                   : j->n - j->n_net >= ex->sb->max_callbacks;
    int rc = full ? -2 : eryx__journal_append(j, name, args);
    if (rc == 0)
        *jentry = ++ex->jnext;
    pthread_mutex_unlock(&ex->hub->mu);
    if (rc == -1)
        return J_NOMEM;
    if (rc < 0) {
        char msg[200];
        if (!full)
            snprintf(msg, sizeof msg, "the call does not fit in the journal (at most %u MiB of "
                                      "code, calls and outcomes)", ERYX__JOURNAL_MAX_BYTES >> 20);
        else if (net)
            snprintf(msg, sizeof msg, "the journal holds %u network operations, its most",
                     ERYX__JOURNAL_MAX_NET);
        else
            snprintf(msg, sizeof msg, "callback limit reached: the journal holds %u calls",
                     ex->sb->max_callbacks);
        eryx__exec_fail_now(ex, id, "failed", msg);
        return J_DONE;
    }
    return J_RECORD;
}

int eryx__exec_add_call(eryx_exec *ex, uint64_t id, const char *name, const char *args)
{
    eryx_sandbox *sb = ex->sb;
    size_t jentry = 0;
    if (ex->journal) {
        int j = journal_call(ex, id, name, args, &jentry);
        if (j != J_RECORD)
            return j == J_NOMEM ? -1 : 0;
    }
    /* Before anything reads them, the network's handlers included: every
     * host that takes them parses them (config.h, ERYX_MAX_HELD_TREES). */
    char msg[512];
    size_t args_len = strlen(args), tree;
    if (!eryx__json_tree_fits(args, args_len, ERYX_MAX_HELD_TREES, &tree)) {
        snprintf(msg, sizeof msg,
                 "the arguments of '%.200s' (%zu bytes of JSON) would take more than %u MiB "
                 "to read (too many objects, arrays and values): the host does not take them",
                 name, args_len, (unsigned)(ERYX_MAX_HELD_TREES >> 20));
        complete_now(ex, id, error_result(id, "failed", msg), jentry);
        return 0;
    }
    if (eryx__journal_is_net(name))
        return add_net_call(ex, id, name, args, jentry);
    const eryx__callback *cb = eryx__callback_find(sb, name);
    if (!cb) {
        snprintf(msg, sizeof msg, "no host function named '%.200s'", name);
        complete_now(ex, id, error_result(id, "invalid_arguments", msg), jentry);
        return 0;
    }
    if (ex->n_invocations >= sb->max_callbacks) {
        snprintf(msg, sizeof msg, "callback limit reached: at most %u calls per execution",
                 sb->max_callbacks);
        complete_now(ex, id, error_result(id, "failed", msg), jentry);
        return 0;
    }
    enum hold held = hold_args(ex->hub, args_len, tree);
    if (held != HELD) {
        if (held == OVER_HELD_ARGS)
            snprintf(msg, sizeof msg,
                     "the host holds %u MiB of arguments of this run's calls at most, those not "
                     "yet answered or whose handlers still run: '%.200s' (%zu bytes) would pass "
                     "it", (unsigned)(ERYX_MAX_HELD_ARGS >> 20), name, args_len);
        else
            snprintf(msg, sizeof msg,
                     "the host reads %u MiB of trees of arguments of this run's calls at most, "
                     "those not yet answered or whose handlers still run: '%.200s' (%zu bytes, "
                     "%zu MiB as a tree) would pass it",
                     (unsigned)(ERYX_MAX_HELD_TREES >> 20), name, args_len, tree >> 20);
        complete_now(ex, id, error_result(id, "failed", msg), jentry);
        return 0;
    }
    eryx_call *c = call_new(ex, id, name);
    if (c)
        c->jentry = jentry;
    if (!c || !(c->args = strdup(args)) || push_call(ex, c) < 0) {
        if (c)
            call_free(c);
        release_args(ex->hub, args_len, tree);
        return -1;
    }
    c->args_held = args_len; /* released with the call (call_unref_locked) */
    c->tree_held = tree;
    c->for_embedder = 1;
    c->handler = cb->handler;
    c->user_data = cb->user_data;
    c->flags = cb->flags;
    pthread_mutex_lock(&ex->hub->mu);
    set_deadline_locked(c, eryx__deadline_after(sb->callback_timeout_ns));
    ex->hub->refs++;
    pthread_mutex_unlock(&ex->hub->mu);
    ex->n_invocations++;
    return 1;
}

int eryx__exec_has_completed(eryx_exec *ex)
{
    pthread_mutex_lock(&ex->hub->mu);
    int n = ex->hub->n_ready;
    pthread_mutex_unlock(&ex->hub->mu);
    return n > 0;
}

int eryx__exec_awaits_nothing(eryx_exec *ex)
{
    pthread_mutex_lock(&ex->hub->mu);
    int waiting = ex->hub->n_ready > 0 || ex->hub->n_waiting > 0;
    pthread_mutex_unlock(&ex->hub->mu);
    return !waiting;
}

/* Times out calls past their deadline and makes the hub's bound on them
 * exact; h->mu held. Only once the bound has passed: scanning every call
 * at every step took 47 % of a run answering 30,000 gathered calls one
 * per step (quadratic). After a scan the bound is a deadline still to
 * come, so scans happen as deadlines pass, not as steps do. The clock is
 * read only if some call may wait with a deadline (not the case of a
 * reply to a call that completed at once, every callback's fast path). */
static void expire_calls_locked(eryx_exec *ex)
{
    eryx__hub *h = ex->hub;
    if (!h->calls_deadline_ns)
        return;
    uint64_t now = eryx__now_ns(), bound = 0;
    if (now < h->calls_deadline_ns)
        return;
    for (size_t i = 0; i < ex->n_calls; i++) {
        eryx_call *c = ex->calls[i];
        if (!c || c->state != ERYX__CALL_WAITING || !c->deadline_ns)
            continue;
        if (overdue_locked(c, now))
            expire_locked(c);
        else if (!bound || c->deadline_ns < bound)
            bound = c->deadline_ns;
    }
    h->calls_deadline_ns = bound;
}

/* Room for one more record in ex->taken. */
static int grow_taken(eryx_exec *ex)
{
    if (ex->n_taken < ex->cap_taken)
        return 1;
    size_t want = ex->cap_taken ? ex->cap_taken * 2 : 8;
    eryx__record *p = realloc(ex->taken, want * sizeof *p);
    if (!p)
        return 0;
    ex->taken = p;
    ex->cap_taken = want;
    return 1;
}

/* Removes the delivered calls' places from ex->calls, keeping the order,
 * and makes the hub's deadline bound exact; h->mu held. */
static void compact_calls_locked(eryx_exec *ex)
{
    size_t kept = 0, removed_before = 0;
    uint64_t bound = 0;
    for (size_t i = 0; i < ex->n_calls; i++) {
        eryx_call *c = ex->calls[i];
        if (!c) {
            removed_before += i < ex->next_new;
            continue;
        }
        if (c->state == ERYX__CALL_WAITING && c->deadline_ns && (!bound || c->deadline_ns < bound))
            bound = c->deadline_ns;
        c->slot = kept;
        ex->calls[kept++] = c;
    }
    ex->n_calls = kept;
    ex->next_new -= removed_before;
    ex->n_gone = 0;
    ex->hub->calls_deadline_ns = bound;
}

static int by_slot(const void *a, const void *b)
{
    size_t x = (*(eryx_call *const *)a)->slot, y = (*(eryx_call *const *)b)->slot;
    return (x > y) - (x < y);
}

/* Moves the completed, undeferred calls' records onto ex->taken, in the
 * order the calls were made, and marks the calls delivered; h->mu held.
 * Stops early, leaving the rest completed for the next reply, when the
 * list cannot grow. The completed calls come from the hub's list, not a
 * scan of every call: that took 15 % of a run answering 30,000 gathered
 * calls one per step (quadratic); a delivered call leaves a NULL in
 * ex->calls, compacted once they are half of it (amortised constant). */
static void take_completed_locked(eryx_exec *ex)
{
    eryx__hub *h = ex->hub;
    size_t n = 0;
    for (eryx_call **link = &h->done; *link;) {
        eryx_call *c = *link;
        if (deferred_locked(c)) {
            link = &c->done_next;
            continue;
        }
        *link = c->done_next;
        ex->picked[n++] = c; /* at most n_calls: room for cap_calls */
    }
    if (n > 1) /* picked is NULL before the first call */
        qsort(ex->picked, n, sizeof *ex->picked, by_slot);
    int journaled = 0;
    size_t i = 0;
    for (; i < n && grow_taken(ex); i++) {
        eryx_call *c = ex->picked[i];
        /* The record moves to the list: c may live on (the embedder's
         * reference) but never reads it again. */
        ex->taken[ex->n_taken++] = c->record;
        c->record = tree_record(NULL);
        c->state = ERYX__CALL_DELIVERED;
        /* Which reply delivered an outcome is what a replay repeats. */
        if (c->jentry && h->journal) {
            eryx__jentry *e = &h->journal->e[c->jentry - 1];
            if (!e->batch && e->state != ERYX__JE_PENDING)
                e->batch = ex->jbatch + 1;
            journaled = 1;
        }
        ex->calls[c->slot] = NULL;
        ex->n_gone++;
        call_unref_locked(c);
    }
    for (size_t k = n; k > i; k--) { /* kept completed, for the next reply */
        ex->picked[k - 1]->done_next = h->done;
        h->done = ex->picked[k - 1];
    }
    if (ex->n_gone * 2 > ex->n_calls)
        compact_calls_locked(ex);
    ex->jbatch += (uint32_t)journaled;
    h->n_ready = 0; /* what is left is deferred */
}

/* Drops the records a written reply holds. */
static void drop_taken(eryx_exec *ex)
{
    for (size_t i = 0; i < ex->n_taken; i++) {
        json_decref(ex->taken[i].tree);
        free(ex->taken[i].text);
    }
    ex->n_taken = 0;
}

/* Builds the reply for the guest from every completed call, which the
 * execution then forgets (the embedder may still hold its reference):
 * {"results": [records], "error"?: text, "raw"?: true}. Written into
 * ex->reply after the hub's lock is let go (core/json_write.h: json_dumps
 * cost a sixth of a round trip); the guest's copy of it frees the text. */
int eryx__exec_take_reply(eryx_exec *ex, const char *error)
{
    eryx__hub *h = ex->hub;
    pthread_mutex_lock(&h->mu);
    expire_calls_locked(ex);
    take_completed_locked(ex);
    pthread_mutex_unlock(&h->mu);
    /* Written outside the lock: a large value takes milliseconds, and the
     * threads completing other calls need h->mu meanwhile. */
    eryx__json_out o = {0};
    int raw = 0;
    eryx__json_put(&o, "{\"results\":[", 12);
    for (size_t i = 0; i < ex->n_taken; i++) {
        if (i)
            eryx__json_put(&o, ",", 1);
        const eryx__record *t = &ex->taken[i];
        if (t->text) {
            eryx__json_put(&o, t->text, t->len);
        } else {
            eryx__json_write(&o, t->tree);
            raw |= json_object_get(t->tree, "raw") != NULL;
        }
    }
    eryx__json_put(&o, "]", 1);
    if (error) {
        eryx__json_put(&o, ",\"error\":", 9);
        eryx__json_put_string(&o, error, strlen(error));
    }
    /* A value the guest must read from its text (core/json_wide.h): the
     * glue looks for it only when the reply says so. */
    if (raw)
        eryx__json_put(&o, ",\"raw\":true", 11);
    eryx__json_put(&o, "}", 1);
    free(ex->reply);
    ex->reply = NULL;
    ex->reply_len = 0;
    if (o.err) {
        free(o.p); /* the records stay taken: the next step writes them */
        return -1;
    }
    drop_taken(ex);
    ex->reply = o.p;
    ex->reply_len = o.len;
    return 0;
}

/* ---- what the embedder asks of a pending execution ------------------------ */

uint64_t eryx__exec_deadline(eryx_exec *ex)
{
    uint64_t d = ex->timer_deadline_ns, limit = eryx__irq_deadline(ex->sb);
    if (limit && (!d || limit < d))
        d = limit;
    /* A sleeping guest (time.sleep) takes its calls' outcomes, timeouts
     * included, only when it wakes: with their deadlines here, one that
     * passed during the sleep had the embedder step it over and over for
     * the rest of the sleep (a spin: 1.2 s of CPU in a sleep of 1.5 s). */
    if (atomic_load(&ex->sleeping))
        return d;
    /* The calls' bound, not a scan of them (quadratic in their number
     * for an embedder that asks at every step): a call that completed may
     * leave it early, which costs a step that finds nothing and makes it
     * exact (expire_calls_locked). */
    pthread_mutex_lock(&ex->hub->mu);
    uint64_t calls = ex->hub->calls_deadline_ns;
    pthread_mutex_unlock(&ex->hub->mu);
    if (calls && (!d || calls < d))
        d = calls;
    return d;
}

void eryx__exec_set_notify(eryx_exec *ex, void (*notify)(void *ud), void *ud)
{
    pthread_mutex_lock(&ex->hub->mu);
    ex->hub->notify = notify;
    ex->hub->notify_ud = ud;
    pthread_mutex_unlock(&ex->hub->mu);
}

eryx_call *eryx__exec_next_call(eryx_exec *ex)
{
    if (ex->state != EX_PENDING)
        return NULL;
    while (ex->next_new < ex->n_calls) {
        eryx_call *c = ex->calls[ex->next_new++];
        if (c && c->for_embedder) {
            /* The embedder's reference, released by the reply. (A call
             * holds one reference to the hub however many it has.) */
            pthread_mutex_lock(&ex->hub->mu);
            c->refs++;
            pthread_mutex_unlock(&ex->hub->mu);
            return c;
        }
    }
    return NULL;
}

/* Whether a step would resume the guest; h->mu held. A sleeping guest is
 * not in eryx.wait: replies wait for it, a stop does not. */
static int ready_locked(const eryx_exec *ex, int sleeping)
{
    return (ex->hub->n_ready > 0 && !sleeping) || ex->hub->stopping;
}

int eryx__exec_ready(eryx_exec *ex)
{
    int sleeping = atomic_load(&ex->sleeping);
    pthread_mutex_lock(&ex->hub->mu);
    int ready = ready_locked(ex, sleeping);
    pthread_mutex_unlock(&ex->hub->mu);
    return ready;
}

int eryx__exec_has_news(eryx_exec *ex)
{
    if (ex->state != EX_PENDING)
        return ex->state == EX_NEW;
    if (ex->timer_deadline_ns && eryx__now_ns() >= ex->timer_deadline_ns)
        return 1;
    int sleeping = atomic_load(&ex->sleeping);
    pthread_mutex_lock(&ex->hub->mu);
    if (!sleeping)
        expire_calls_locked(ex);
    int ready = ready_locked(ex, sleeping);
    pthread_mutex_unlock(&ex->hub->mu);
    if (ready)
        return 1;
    /* Nothing else to resume for: a time limit or grace that has passed is
     * acted on here (not on the callback round trip's path, where a reply
     * is ready and the guest runs anyway). */
    eryx__irq_fire_due(ex->sb);
    return eryx__irq_cause(ex->sb) != 0; /* resume: the stop takes effect in the guest */
}

int eryx__exec_sleep(void *sandbox, uint64_t deadline_ns)
{
    eryx_sandbox *sb = sandbox;
    eryx_exec *ex = sb->exec;
    if (!ex || ex->state == EX_DONE)
        return -1;
    atomic_store(&ex->sleeping, 1);
    ex->timer_deadline_ns = deadline_ns;
    int rc = eryx__engine_suspend();
    atomic_store(&ex->sleeping, 0);
    return rc;
}

/* What the guest draws first on a run that reseeds: its setup's
 * random.seed() takes N = 624 32-bit words (CPython's _randommodule.c,
 * random_seed_urandom) before anything else runs. test_journal.c's
 * test_replay_never_shares_the_image_generator fails if that changes. */
#define GUEST_RESEED_BYTES 2496u

/* A journaled execution's guest draws through its journal's records; any
 * other run (internal ones too) draws from the host. */
static int draw_random(void *sandbox, uint8_t *p, size_t len)
{
    eryx_exec *ex = ((eryx_sandbox *)sandbox)->exec;
    if (!ex || !ex->journal)
        return eryx__wasi_host_random(p, len);
    if (ex->reseed_left) {
        /* A reseed the recorded run did not make: not among its draws. */
        size_t n = len < ex->reseed_left ? len : ex->reseed_left;
        if (eryx__wasi_host_random(p, n) != 0)
            return -1;
        ex->reseed_left -= n;
        p += n;
        len -= n;
    }
    return eryx__journal_random(ex->journal, &ex->jrandom, p, len);
}

static uint64_t draw_realtime(void *sandbox, uint64_t host_ns)
{
    eryx_exec *ex = ((eryx_sandbox *)sandbox)->exec;
    if (!ex || !ex->journal)
        return host_ns;
    return eryx__journal_realtime(ex->journal, &ex->jclock, host_ns);
}

const eryx__wasi_draws eryx__exec_draws = {draw_random, draw_realtime};

/* ---- running ------------------------------------------------------------- */

static void exec_free(eryx_exec *ex)
{
    eryx__hub *h = ex->hub;
    /* The caller's reader and its user data may be gone once the run has
     * ended: the sandbox keeps no pointer to them. */
    eryx__wasi_set_stdin_reader(ex->sb->wasi, NULL, NULL);
    if (ex->handle)
        eryx__handle_close(ex->handle, ERYX__H_EXEC);
    pthread_mutex_lock(&h->mu);
    h->closed = 1;
    h->journal = NULL;
    if (h->notifying) /* (the queue's lock is not taken by every run's end) */
        notices_drop_locked(h);
    while (h->notifying)
        pthread_cond_wait(&h->cv, &h->mu);
    for (size_t i = 0; i < ex->n_calls; i++)
        if (ex->calls[i])
            call_unref_locked(ex->calls[i]);
    h->done = NULL;
    hub_unref_unlock(h);
    free(ex->calls);
    free(ex->picked);
    free(ex->request);
    free(ex->reply);
    drop_taken(ex);
    free(ex->taken);
    free(ex->result_json);
    free(ex->result_error);
    free(ex->exported);
    eryx_result_free(ex->result);
    if (ex->journal)
        atomic_store(&ex->journal->busy, 0);
    free(ex->rleft);
    free(ex);
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

/* A run's limit: the option, else the sandbox's; ERYX_NO_LIMIT is none. */
static uint64_t run_limit(uint64_t option, uint64_t sandbox)
{
    uint64_t v = option ? option : sandbox;
    return v == ERYX_NO_LIMIT ? 0 : v;
}

/* seed: as eryx__request_build's. */
static int exec_start(eryx_sandbox *sb, char mode, const char *code, size_t len,
                      const eryx_run_options *opts, int seed, eryx_exec **out)
{
    eryx_run_options defaults;
    if (!opts) {
        eryx_run_options_default(&defaults);
        opts = &defaults;
    }
    /* Where no sandbox can run, refused before the run changes anything
     * (the sandbox's set-up flags): the sandbox stays as it was. */
    int rc = eryx__guest_thread_free(sb, "the run");
    if (rc == ERYX_OK)
        rc = check_options(sb, opts);
    if (rc != ERYX_OK)
        return rc;
    size_t req_len = 0;
    char *req = eryx__request_build(sb, opts, mode, code, len, seed, &req_len);
    if (!req)
        return ERYX_INVALID;
    eryx_exec *ex = calloc(1, sizeof *ex);
    if (!ex || !(ex->hub = hub_new())) {
        free(ex);
        free(req);
        eryx__set_errmsg(sb, "out of memory preparing the run");
        return ERYX_NOMEM;
    }
    ex->sb = sb;
    ex->request = req;
    ex->request_len = req_len;
    ex->mode = mode;
    eryx__wasi_set_stdin_reader(sb->wasi, opts->stdin_read, opts->stdin_user_data);
    if (eryx__wasi_set_stdin(sb->wasi, opts->stdin_data, opts->stdin_len) != 0) {
        exec_free(ex);
        eryx__set_errmsg(sb, "out of memory preparing the run");
        return ERYX_NOMEM;
    }
    eryx__sandbox_prefault_pending(sb);
    eryx__wasi_begin_run(sb->wasi);
    eryx__net_run_begin(sb->net);
    /* Before the deadline is set (from a later clock reading): a run
     * stopped at its limit lasts at least the limit, even when this thread
     * is preempted in between (arming wakes the watchdog's thread). */
    ex->t0 = eryx__now_ns();
    rc = eryx__irq_run_begin(sb, run_limit(opts->timeout_ns, sb->timeout_ns), ex->hub);
    if (rc != ERYX_OK) {
        exec_free(ex);
        eryx__set_errmsg(sb, "cannot start the watchdog thread");
        return rc;
    }
    uint64_t fuel = run_limit(opts->fuel, sb->cfg.fuel);
    ex->fuel_start = fuel && fuel < (uint64_t)ERYX__FUEL_UNLIMITED ? (int64_t)fuel
                                                                    : ERYX__FUEL_UNLIMITED;
    sb->in.host.fuel = ex->fuel_start;
    sb->exec = ex;
    ex->took_setup = sb->needs_setup;
    ex->took_reseed = sb->reseed_only;
    ex->took_rebind = sb->rebind_imports;
    sb->needs_setup = sb->reseed_only = sb->rebind_imports = 0;
    sb->run_count++;
    *out = ex;
    return ERYX_OK;
}

int eryx__exec_start(eryx_sandbox *sb, char mode, const char *code, size_t len,
                     const eryx_run_options *opts, eryx_exec **out)
{
    return exec_start(sb, mode, code, len, opts, -1, out);
}

/* A journal that holds code runs it, under the mode and filename it was
 * recorded with: the caller's must agree. */
static int check_journal(eryx_sandbox *sb, const eryx_journal *j, const char *code, size_t len,
                         const eryx_run_options *o)
{
    if (!j->has_code) {
        if (code)
            return ERYX_OK;
        eryx__set_errmsg(sb, "the journal holds no code: give the code to run");
        return ERYX_INVALID;
    }
    const char *why = NULL;
    if (code && (len != j->code_len || memcmp(code, j->code, len) != 0))
        why = "the code differs from the journal's";
    else if ((int)o->mode != j->mode)
        why = "the run mode differs from the journal's";
    else if (o->filename && (!j->filename || strcmp(o->filename, j->filename) != 0))
        why = "the filename differs from the journal's";
    else if (j->n - j->n_net > sb->max_callbacks)
        why = "the journal holds more calls than the sandbox's max_callbacks";
    if (why) {
        eryx__set_errmsg(sb, "%s", why);
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

int eryx__exec_start_journaled(eryx_sandbox *sb, const char *code, size_t len,
                               const eryx_run_options *opts, eryx_journal *j, eryx_exec **out)
{
    eryx_run_options o;
    if (opts)
        o = *opts;
    else
        eryx_run_options_default(&o);
    int rc = eryx__guest_thread_free(sb, "the run"), recorded = 0; /* before the journal */
    if (rc == ERYX_OK)
        rc = check_journal(sb, j, code, len, &o);
    if (rc == ERYX_OK && !j->has_code && (rc = check_options(sb, &o)) == ERYX_OK) {
        rc = eryx__journal_set_code(j, code, len, (int)o.mode, o.filename);
        if (rc == ERYX_INVALID)
            eryx__set_errmsg(sb, "code of %zu bytes does not fit in a journal (at most %u MiB)",
                             len, ERYX__JOURNAL_MAX_BYTES >> 20);
        recorded = rc == ERYX_OK;
    }
    if (rc != ERYX_OK)
        return rc;
    /* The recorded run's random state is the replay's: it reseeds when the
     * recorded run did (a loaded session would otherwise reseed, and one
     * that ran would not), drawing from the journal's record (docs/
     * journal.md, "Randomness and the wall clock"). A sandbox still holding
     * the image's generator reseeds anyway: that state was never the
     * recorded run's, and must not be shared with other sandboxes. */
    if (recorded)
        j->reseeded = sb->needs_setup || sb->reseed_only;
    int extra_reseed = !j->reseeded && sb->needs_setup;
    o.filename = j->filename;
    rc = exec_start(sb, 0, j->code, j->code_len, &o, j->reseeded || extra_reseed, out);
    if (rc != ERYX_OK) {
        if (recorded)
            eryx__journal_set_code(j, NULL, 0, 0, NULL);
        return rc;
    }
    (*out)->journal = j;
    (*out)->hub->journal = j; /* not shared yet: no call was made */
    (*out)->reseed_left = extra_reseed ? GUEST_RESEED_BYTES : 0;
    eryx__journal_mark_draws(j, &(*out)->jmark);
    if (plan_replay(*out, j) != ERYX_OK) {
        eryx__exec_finish(*out, NULL); /* never ran: the sandbox is dead */
        *out = NULL;
        eryx__set_errmsg(sb, "out of memory preparing the replay");
        return ERYX_NOMEM;
    }
    return ERYX_OK;
}

int eryx__exec_suspend(eryx_exec *ex)
{
    if (!ex->journal || ex->state == EX_DONE) {
        eryx__set_errmsg(ex->sb, ex->journal ? "the execution has finished: take its result "
                                               "with eryx_exec_finish"
                                             : "the execution is not journaled");
        return ERYX_INVALID;
    }
    eryx_sandbox *sb = ex->sb;
    eryx__exec_finish(ex, NULL);
    eryx__set_errmsg(sb, "the execution was suspended: restore the state from before it to "
                         "resume it");
    return ERYX_OK;
}

static void do_exec(void *arg)
{
    eryx_exec *ex = arg;
    Z_python_instance_t *inst = &ex->sb->in.inst;
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
    uint8_t *dst = eryx__guest_span(sb, ex->request_ptr, ex->request_len);
    if (!dst) {
        eryx__set_errmsg(sb, "no room for the run request in the sandbox's memory");
        return ERYX_NOMEM;
    }
    memcpy(dst, ex->request, ex->request_len);
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
        r->exc_message_len = o->message_len;
        r->traceback_len = o->traceback_len;
        o->type = o->message = o->traceback = NULL;
        rc = o->status == ERYX_GUEST_EXCEPTION ? ERYX_PYTHON_EXCEPTION : ERYX_INTERNAL;
    }
    eryx__exec_outcome_clear(o);
    return rc;
}

/* Puts the exception TYPE with MESSAGE in place of the result's, with a
 * one-line traceback "TYPE: MESSAGE" ("TYPE" alone for no message). On
 * no memory the result keeps the glue's words and the call says so. */
static int replace_exception(eryx_result *r, const char *type, const char *message)
{
    size_t type_len = strlen(type), msg_len = strlen(message);
    size_t tb_len = type_len + (msg_len ? 2 + msg_len : 0) + 1;
    char *t = strdup(type), *m = strdup(message), *tb = malloc(tb_len + 1);
    if (!t || !m || !tb) {
        free(t);
        free(m);
        free(tb);
        return 0;
    }
    snprintf(tb, tb_len + 1, msg_len ? "%s: %s\n" : "%s\n", type, message);
    free(r->exc_type);
    free(r->exc_message);
    free(r->traceback);
    r->exc_type = t;
    r->exc_message = m;
    r->traceback = tb;
    r->exc_message_len = msg_len;
    r->traceback_len = tb_len;
    return 1;
}

/* The glue failed after a stop: the KeyboardInterrupt landed in its
 * prologue, before the code began (a stop between eryx_exec_start and the
 * first step always does), and the glue could only say "InternalError".
 * The result says what a stop that lands in the code says. */
static void glue_stopped(eryx_result *r)
{
    (void)replace_exception(r, "KeyboardInterrupt", "");
}

/* The guest's glue ran out of memory around the code: copying the request
 * (the source, mostly) into a bytes object and decoding it take twice its
 * size again, so a 35 MB file of comments did not fit the default
 * 128 MiB. The glue could only say so in its own words (_eryx.run's "bad
 * request: MemoryError()", eryx_exec's "could not report the result") and
 * the run was ERYX_INTERNAL, "internal error in the sandbox glue". It is
 * the MemoryError the code would have met: the result says that, and the
 * sandbox goes on (nothing of the code ran, or it had ended). */
static int glue_out_of_memory(eryx_exec *ex, eryx_result *r)
{
    /* _eryx.run's, before the code; eryx_exec's, after it (reporting its
     * outcome). Only a run of code: the state's export and import say
     * their own failures (state.c). */
    static const char before[] = "bad request: MemoryError()",
                      after[] = "the sandbox could not report the result (out of memory?)";
    int at_start = r->exc_message && strcmp(r->exc_message, before) == 0;
    if (ex->mode != 0 || (!at_start && (!r->exc_message || strcmp(r->exc_message, after) != 0)))
        return ERYX_INTERNAL;
    /* A session whose own objects fill its memory meets this at every run,
     * which no code of its can mend: the message says what can. */
    static const char hint[] = ": if the session's own objects fill it, reset the session or "
                               "give it a larger max_memory";
    char msg[320];
    if (at_start)
        snprintf(msg, sizeof msg, "the program does not fit in the sandbox's memory (max_memory "
                 "%llu bytes) with the %zu bytes of its run request%s",
                 (unsigned long long)ex->sb->cfg.max_memory, ex->request_len, hint);
    else
        snprintf(msg, sizeof msg, "no memory was left in the sandbox (max_memory %llu bytes) "
                 "to report the run's outcome%s", (unsigned long long)ex->sb->cfg.max_memory,
                 hint);
    return replace_exception(r, "MemoryError", msg) ? ERYX_PYTHON_EXCEPTION : ERYX_INTERNAL;
}

/* A timeout or interrupt was requested during the run: unless the code
 * finished anyway, the status says which stop ended it, the message how.
 * (A graceful stop shows in the result as the KeyboardInterrupt it raised.) */
static int stop_status(eryx_sandbox *sb, eryx_result *r, int rc, int cause, int hard)
{
    if (rc == ERYX_OK)
        return rc;
    if (rc == ERYX_INTERNAL)
        glue_stopped(r);
    r->hard_stopped = rc == ERYX_INTERRUPTED && hard;
    eryx__set_errmsg(sb, "%s%s", cause == ERYX_TIMEOUT ? "the run exceeded its time limit"
                                                       : "the run was interrupted",
                     r->hard_stopped ? "; it did not unwind in time and was stopped hard "
                                       "(the sandbox is dead)"
                                     : "");
    return cause;
}

/* Code that finished (or raised) before making all of its journal's calls
 * did not come back to where it was suspended. */
static int check_replayed(eryx_exec *ex, int rc)
{
    if ((rc != ERYX_OK && rc != ERYX_PYTHON_EXCEPTION) || ex->jnext >= ex->journal->n)
        return rc;
    eryx__set_errmsg(ex->sb, "the code did not repeat the journal's calls: it finished after "
                             "%zu of its %zu calls", ex->jnext, ex->journal->n);
    eryx__journal_reset_draws(ex->journal, &ex->jmark);
    return ERYX_DIVERGED;
}

/* The guest's glue failed (ERYX_GUEST_INTERNAL), as it does when a stop
 * lands in the prologue that comes before the user's code: the first
 * run's set-up it was given (reseeding random, the environment) may not
 * have happened, so the next run does it again. Dropped, the sandbox kept
 * the image's random state, which every sandbox stopped there shares, and
 * never got its environment. Twice is harmless: the set-up only puts back
 * what the config says (after a failure past the user's code, that is
 * the environment a first run changed). */
static void give_back_setup(eryx_exec *ex)
{
    ex->sb->needs_setup |= ex->took_setup;
    ex->sb->reseed_only |= ex->took_reseed;
    ex->sb->rebind_imports |= ex->took_rebind;
}

/* A dead sandbox's program is gone, and nothing can use its sockets until
 * a reset, which would close them: close them as its run ends, or they hold
 * the server's connections (and a poller's attention) meanwhile. */
static void close_if_dead(eryx_sandbox *sb)
{
    if (sb->state == ERYX__SB_DEAD)
        eryx__net_close_all(sb->net);
}

/* The guest finished (or died) with status rc: build the result. */
static int conclude(eryx_exec *ex, int rc)
{
    eryx_sandbox *sb = ex->sb;
    eryx_result *r = calloc(1, sizeof *r);
    eryx__exec_outcome o = {0};
    int hard, cause = eryx__irq_run_end(sb, &hard);
    /* sb->exec stays until eryx_exec_finish: the sandbox is not idle while
     * the execution lives (a free, a second start, a fork meanwhile), and
     * a free of the sandbox frees it too, its handle dead, instead of
     * leaving it pointing at a freed sandbox. */
    ex->state = EX_DONE;
    if (!r) {
        close_if_dead(sb);
        return ex->final_rc = ERYX_NOMEM;
    }
    r->duration_ns = eryx__now_ns() - ex->t0;
    r->stop_cause = cause;
    /* Out of fuel leaves the counter at -1: the run used all of it. */
    r->fuel_used = ERYX_HAVE_FUEL ? (uint64_t)(ex->fuel_start - (sb->in.host.fuel < 0 ? 0 : sb->in.host.fuel))
                                  : 0;
    r->memory_bytes = sb->in.inst.w2c_memory.size;
    r->n_callbacks = ex->n_invocations;
    r->result_json = ex->result_json;
    r->result_error = ex->result_error;
    ex->result_json = ex->result_error = NULL;
    take_output(sb, r);
    if (!r->out || !r->err) {
        eryx_result_free(r);
        eryx__set_errmsg(sb, "out of memory collecting the output");
        close_if_dead(sb);
        return ex->final_rc = ERYX_NOMEM;
    }
    if (rc == ERYX_OK)
        rc = eryx__guest_read_outcome(sb, ex->outcome_ptr, &o);
    if (rc == ERYX_OK) {
        rc = apply_outcome(r, &o);
        if (rc == ERYX_INTERNAL)
            give_back_setup(ex);
        if (rc == ERYX_INTERNAL && !cause)
            rc = glue_out_of_memory(ex, r);
    } else if (rc == ERYX_DEAD) {
        /* os._exit(n): this run ends like a process; the sandbox is dead. */
        r->exited = 1;
        r->exit_code = sb->exit_code;
        rc = ERYX_OK;
    } else if (rc == ERYX_TRAP || rc == ERYX_INTERRUPTED || rc == ERYX_FUEL ||
               rc == ERYX_DIVERGED) {
        r->exit_code = 1;
    } else {
        eryx_result_free(r);
        close_if_dead(sb);
        return ex->final_rc = rc;
    }
    if (cause && rc != ERYX_DIVERGED)
        rc = stop_status(sb, r, rc, cause, hard);
    close_if_dead(sb);
    if (ex->journal && rc != ERYX_DIVERGED)
        rc = check_replayed(ex, rc);
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
        /* A sleeping guest is not in eryx.wait: replies wait for it. */
        if (!atomic_load(&ex->sleeping) && eryx__exec_take_reply(ex, NULL) < 0) {
            eryx__set_errmsg(ex->sb, "out of memory building the reply");
            return ERYX_NOMEM; /* the execution stays pending: step again */
        }
        pthread_mutex_lock(&ex->hub->mu);
        ex->hub->stopping = 0;
        pthread_mutex_unlock(&ex->hub->mu);
        ex->timer_deadline_ns = 0;
        eryx__irq_park(ex->sb, 0);
        rc = eryx__guest_resume(ex->sb, "the code");
    }
    if (rc == ERYX_PENDING && ex->diverged) {
        /* Its stack is dropped mid-call: the sandbox is dead. */
        eryx__fiber_abandon(ex->sb->in.fiber);
        ex->sb->state = ERYX__SB_DEAD;
        eryx__journal_reset_draws(ex->journal, &ex->jmark);
        rc = ERYX_DIVERGED;
    }
    if (rc == ERYX_PENDING) {
        ex->state = EX_PENDING;
        eryx__irq_park(ex->sb, 1);
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
        int hard;
        if (ex->state == EX_PENDING)
            eryx__fiber_abandon(sb->in.fiber);
        eryx__irq_run_end(sb, &hard);
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "the execution was abandoned before it finished");
        rc = ERYX_DEAD;
    }
    sb->exec = NULL;
    if (out) {
        *out = ex->result;
        ex->result = NULL;
    }
    exec_free(ex);
    return rc;
}

/* Sleeps until a reply arrives, a stop is requested or the execution's
 * deadline passes. */
static void wait_for_news(eryx_exec *ex)
{
    eryx__hub *h = ex->hub;
    uint64_t deadline = eryx__exec_deadline(ex);
    pthread_mutex_lock(&h->mu);
    while (h->n_ready == 0 && !h->stopping) {
        if (!deadline) {
            pthread_cond_wait(&h->cv, &h->mu);
            continue;
        }
        if (eryx__now_ns() >= deadline)
            break;
        struct timespec ts = {(time_t)(deadline / 1000000000u),
                              (long)(deadline % 1000000000u)};
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
}

int eryx__exec_run_internal(eryx_sandbox *sb, char mode, const char *data, size_t len,
                            const eryx_run_options *opts, eryx_exec **done)
{
    eryx_exec *ex;
    *done = NULL;
    int rc = eryx__exec_start(sb, mode, data, len, opts, &ex);
    if (rc != ERYX_OK)
        return rc;
    while ((rc = eryx__exec_step(ex)) == ERYX_PENDING)
        wait_for_news(ex);
    *done = ex;
    return rc;
}

void eryx_run_options_default(eryx_run_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
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
