/*
 * eryx_sandbox_run: the blocking loop over the public non-blocking API
 * (eryx_exec_start / _step / _next_call / _finish), the way curl's easy
 * interface sits on multi. It only adds what a loop needs: something to
 * wait on (a notify that signals a condition) and threads for handlers.
 *
 * Handlers. An inline handler (ERYX_CALLBACK_INLINE) runs on the stepping
 * thread: it promised not to block. Every other handler runs on a worker of
 * one process-wide pool, never on the stepping thread, so a handler that
 * blocks holds up neither the run's time limit nor its callback timeouts:
 * the loop keeps waiting with the execution's deadline, the timeout
 * interrupts the guest, and the run returns while the handler is still
 * busy (its late reply is dropped). A call is started only while the guest
 * still waits for it: calls past their deadline, or whose run ended, are
 * failed without running their handler, and a run that ends takes its
 * unstarted calls out of the queue.
 *
 * Fairness. A handler that blocks keeps its worker after its call timed
 * out, and the guest may start as many calls as it likes: with one cap
 * for the process, one sandbox's blocked handlers made every other
 * sandbox's calls wait for a free worker until they timed out. So each
 * sandbox may have MAX_WORKERS_PER_SANDBOX handlers running at once (its
 * further calls wait in the queue, others' pass them), and the process
 * MAX_WORKERS.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

/* Handlers running at once: per sandbox, and workers in all; idle
 * workers exit after IDLE_EXIT_NS. */
#define MAX_WORKERS_PER_SANDBOX ERYX__HANDLERS_PER_SANDBOX
#define MAX_WORKERS ERYX__HANDLERS_PER_PROCESS
#define IDLE_EXIT_NS (2ull * 1000 * 1000 * 1000)

typedef struct job {
    struct job *next;
    eryx_call *call;
    eryx_callback_fn handler;
    void *user_data;
    const void *owner;          /* the run that queued it */
    const void *sandbox;        /* its sandbox's handle: a key only, never
                                   read; never another sandbox's (a slot's
                                   generation changes at each close:
                                   core/handle.h), though a freed one's
                                   address may be the next one's */
} job;

/* A sandbox's handlers running and queued; kept while either is not 0. */
typedef struct share {
    const void *sandbox;
    unsigned running, queued;
} share;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv;  /* a job was queued; CLOCK_MONOTONIC */
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static job *queue_head, *queue_tail;
static unsigned n_queued, n_workers, n_busy; /* busy: running a job */
static share *shares;
static size_t n_shares, cap_shares;

/* fork(2) (core/fork.c): pool_mu is held across it. The workers are not
 * in the child, only their count, and no call was ever started there
 * (each waited for its callback_timeout). The jobs queued and running
 * were other threads' runs (not in the child): forgotten, their memory
 * left. */
void eryx__workers_fork(enum eryx__fork_phase phase)
{
    if (phase == ERYX__FORK_PREPARE) {
        pthread_mutex_lock(&pool_mu);
        return;
    }
    if (phase == ERYX__FORK_CHILD) {
        eryx__cond_init_monotonic(&pool_cv);
        queue_head = queue_tail = NULL;
        n_queued = n_workers = n_busy = 0;
        n_shares = 0;
    }
    pthread_mutex_unlock(&pool_mu);
}

static void pool_init(void)
{
    eryx__cond_init_monotonic(&pool_cv);
}

/* The sandbox's share (made if need be: NULL when out of memory); pool_mu
 * held. */
static share *share_of_locked(const void *sandbox, int make)
{
    for (size_t i = 0; i < n_shares; i++)
        if (shares[i].sandbox == sandbox)
            return &shares[i];
    if (!make)
        return NULL;
    if (n_shares == cap_shares) {
        size_t cap = cap_shares ? cap_shares * 2 : 8;
        share *p = realloc(shares, cap * sizeof *p);
        if (!p)
            return NULL;
        shares = p;
        cap_shares = cap;
    }
    shares[n_shares] = (share){sandbox, 0, 0};
    return &shares[n_shares++];
}

static void share_forget_locked(share *sh)
{
    if (sh->running == 0 && sh->queued == 0)
        *sh = shares[--n_shares];
}

/* Queued jobs that a free worker could start now; pool_mu held. */
static unsigned startable_locked(void)
{
    unsigned n = 0;
    for (size_t i = 0; i < n_shares; i++) {
        unsigned room = MAX_WORKERS_PER_SANDBOX - shares[i].running;
        n += shares[i].queued < room ? shares[i].queued : room;
    }
    return n;
}

/* A job whose run ended: its handler is never started. */
static void drop_job(job *j)
{
    eryx_call_fail(j->call, ERYX_CALL_TIMEOUT, "the call was not started: its run ended first");
    free(j);
}

static void run_job(job *j)
{
    if (!eryx_call_pending(j->call))
        eryx_call_fail(j->call, ERYX_CALL_TIMEOUT,
                       "the call was not started: it timed out or its run ended first");
    else if (j->handler) {
        eryx__call_handle_set_queued(j->call, 0);
        j->handler(j->user_data, j->call);
    }
    else
        eryx_call_fail(j->call, ERYX_CALL_FAILED, "no handler is registered for this function");
    free(j);
}

/* Takes the first queued job whose sandbox is under its share, if any;
 * pool_mu held. */
static job *take_startable_locked(void)
{
    for (job **p = &queue_head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
        job *j = *p;
        share *sh = share_of_locked(j->sandbox, 0);
        if (sh && sh->running >= MAX_WORKERS_PER_SANDBOX)
            continue;
        *p = j->next;
        if (queue_tail == j)
            queue_tail = prev;
        n_queued--;
        if (sh) {
            sh->queued--;
            sh->running++;
        }
        return j;
    }
    return NULL;
}

/* The next job, or NULL when the worker has idled long enough; pool_mu
 * held. */
static job *next_job_locked(void)
{
    job *j;
    while (!(j = take_startable_locked())) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(IDLE_EXIT_NS / 1000000000u);
        int rc = pthread_cond_timedwait(&pool_cv, &pool_mu, &ts);
        if (rc == ETIMEDOUT && !(j = take_startable_locked()))
            return NULL;
        if (j)
            break;
    }
    n_busy++;
    return j;
}

/* A job's handler returned: its sandbox's place is free for its next
 * queued job, which this worker (now idle) takes unless another does. */
static void job_done_locked(const void *sandbox)
{
    n_busy--;
    share *sh = share_of_locked(sandbox, 0);
    if (sh) {
        sh->running--;
        share_forget_locked(sh);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool_mu);
    job *j;
    while ((j = next_job_locked())) {
        const void *sandbox = j->sandbox;
        pthread_mutex_unlock(&pool_mu);
        run_job(j);
        pthread_mutex_lock(&pool_mu);
        job_done_locked(sandbox);
    }
    n_workers--;
    pthread_mutex_unlock(&pool_mu);
    return NULL;
}

/* Starts a worker; pool_mu held. 0, or -1 if no thread could be made. */
static int add_worker_locked(void)
{
    if (eryx__thread_start_detached(worker, NULL) != 0)
        return -1;
    n_workers++;
    return 0;
}

/* The jobs one step's calls make, queued together. */
typedef struct batch {
    job *head, *tail;
    unsigned n;
} batch;

static void batch_add(batch *b, eryx_call *c, eryx_callback_fn handler, void *user_data,
                      const void *owner, const void *sandbox)
{
    job *j = malloc(sizeof *j);
    if (!j) {
        eryx_call_fail(c, ERYX_CALL_FAILED, "out of memory on the host");
        return;
    }
    *j = (job){NULL, c, handler, user_data, owner, sandbox};
    eryx__call_handle_set_queued(c, 1);
    if (b->tail)
        b->tail->next = j;
    else
        b->head = j;
    b->tail = j;
    b->n++;
}

/* Queues a batch (of one sandbox) for the workers with one lock and one
 * wake-up (a gather of 10,000 calls queued one by one was slow under
 * valgrind), and adds workers so that every job that may start has a
 * worker not busy with another. */
static void submit(batch *b)
{
    if (!b->n)
        return;
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool_mu);
    share *sh = share_of_locked(b->head->sandbox, 1);
    if (sh)
        sh->queued += b->n;
    /* (out of memory for the share: its jobs go unlimited, as before) */
    unsigned startable = startable_locked() + (sh ? 0 : b->n);
    while (n_workers - n_busy < startable && n_workers < MAX_WORKERS &&
           add_worker_locked() == 0)
        ;
    if (n_workers == 0) { /* no thread could be made: nobody would run them */
        if (sh) {
            sh->queued -= b->n;
            share_forget_locked(sh);
        }
        pthread_mutex_unlock(&pool_mu);
        for (job *j = b->head, *next; j; j = next) {
            next = j->next;
            eryx_call_fail(j->call, ERYX_CALL_FAILED, "cannot start a thread for the host function");
            free(j);
        }
        return;
    }
    if (queue_tail)
        queue_tail->next = b->head;
    else
        queue_head = b->head;
    queue_tail = b->tail;
    n_queued += b->n;
    if (b->n > 1)
        pthread_cond_broadcast(&pool_cv);
    else
        pthread_cond_signal(&pool_cv);
    pthread_mutex_unlock(&pool_mu);
}

/* A run ended: its calls still queued are failed without being started. */
static void purge(const void *owner)
{
    job *mine = NULL, **p = &queue_head, *last = NULL;
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool_mu);
    while (*p) {
        job *j = *p;
        if (j->owner == owner) {
            *p = j->next;
            n_queued--;
            share *sh = share_of_locked(j->sandbox, 0);
            if (sh) {
                sh->queued--;
                share_forget_locked(sh);
            }
            j->next = mine;
            mine = j;
            continue;
        }
        last = j;
        p = &j->next;
    }
    queue_tail = last;
    pthread_mutex_unlock(&pool_mu);
    while (mine) {
        job *j = mine;
        mine = j->next;
        drop_job(j);
    }
}

/* Starts the handlers of the calls the last step issued; returns how many
 * went to the workers' queue. */
static unsigned start_calls(eryx_sandbox *sb, eryx_exec *ex, const void *owner)
{
    batch b = {NULL, NULL, 0};
    eryx_call *c;
    while ((c = eryx_exec_next_call(ex))) {
        eryx_callback_fn handler;
        void *user_data;
        unsigned flags;
        eryx__call_handler(c, &handler, &user_data, &flags);
        if (handler && (flags & ERYX_CALLBACK_INLINE))
            handler(user_data, c);
        else
            batch_add(&b, c, handler, user_data, owner, sb);
    }
    unsigned queued = b.n;
    submit(&b);
    return queued;
}

/* Woken by the execution's notify (a reply, a stop), or by its deadline. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken;
    int efd;                    /* an eventfd the notify also writes, once a
                                   wait polled sockets; -1 before */
    unsigned queued;            /* jobs the run gave the workers */
} waiter;

static void wake(void *ud)
{
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->woken = 1;
    if (w->efd >= 0) {
        uint64_t one = 1;
        if (write(w->efd, &one, sizeof one) < 0) { /* full: it wakes anyway */
        }
    }
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* A run whose guest waits on its sockets polls them on this thread, with
 * the notify's eventfd, rather than sleep until the poller thread wakes it:
 * one thread switch less per network wait. 0 when there was nothing to
 * poll (the caller sleeps on the condition then). */
static int wait_on_sockets(eryx_sandbox *sb, eryx_exec *ex, waiter *w, uint64_t deadline)
{
    enum { MAX_FDS = 16 };
    struct pollfd fds[MAX_FDS + 1];
    size_t n = eryx__sandbox_net_pollfds(sb, fds + 1, MAX_FDS);
    if (!n)
        return 0;
    pthread_mutex_lock(&w->mu);
    if (w->efd < 0)
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int ready = w->woken || eryx_exec_ready(ex) || w->efd < 0;
    w->woken = 0;
    pthread_mutex_unlock(&w->mu);
    if (!ready) {
        fds[0].fd = w->efd;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        int ms = -1;
        if (deadline) {
            uint64_t now = eryx__now_ns();
            ms = deadline <= now ? 0 : (int)((deadline - now + 999999) / 1000000);
        }
        if (poll(fds, (nfds_t)n + 1, ms) > 0 && fds[0].revents) {
            uint64_t v;
            if (read(w->efd, &v, sizeof v) < 0) { /* raced with another read */
            }
        }
    }
    eryx__sandbox_net_poll_done(sb, fds + 1, n);
    pthread_mutex_lock(&w->mu);
    w->woken = 0;
    pthread_mutex_unlock(&w->mu);
    return 1;
}

static void wait_for_news(eryx_sandbox *sb, eryx_exec *ex, waiter *w)
{
    /* An inline handler's reply has woken us already: step at once, without
     * the deadline's and the sockets' look-ups (every callback's case). */
    pthread_mutex_lock(&w->mu);
    int woken = w->woken;
    w->woken = 0;
    pthread_mutex_unlock(&w->mu);
    if (woken)
        return;
    uint64_t deadline = eryx_exec_deadline_ns(ex);
    if (wait_on_sockets(sb, ex, w, deadline))
        return;
    struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
    pthread_mutex_lock(&w->mu);
    while (!w->woken && !eryx_exec_ready(ex)) {
        if (!deadline)
            pthread_cond_wait(&w->cv, &w->mu);
        else if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    w->woken = 0;
    pthread_mutex_unlock(&w->mu);
}

int eryx_sandbox_run_ex(eryx_sandbox *sb, const char *code, size_t len,
                        const eryx_run_options *opts, eryx_result **out)
{
    eryx_exec *ex;
    if (!out) /* eryx_exec_start reports the misuse */
        return eryx_exec_start(sb, code, len, opts, NULL);
    *out = NULL;
    int rc = eryx__sandbox_hold(sb);
    if (rc != ERYX_OK)
        return rc;
    if ((rc = eryx_exec_start(sb, code, len, opts, &ex)) != ERYX_OK) {
        eryx__sandbox_unhold(sb);
        return rc;
    }
    waiter w = {.woken = 0, .efd = -1};
    pthread_mutex_init(&w.mu, NULL);
    eryx__cond_init_monotonic(&w.cv);
    eryx_exec_set_notify(ex, wake, &w);
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        w.queued += start_calls(sb, ex, &w);
        wait_for_news(sb, ex, &w);
    }
    /* No notify runs after this returns: w can go. */
    int final = eryx_exec_finish(ex, out);
    if (w.queued) /* a run without queued calls skips the global queue's lock */
        purge(&w);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    if (w.efd >= 0)
        close(w.efd);
    eryx__sandbox_unhold(sb);
    return rc == ERYX_MISUSE ? rc : final;
}

int eryx_sandbox_run(eryx_sandbox *sb, const char *code, size_t len, eryx_result **out)
{
    return eryx_sandbox_run_ex(sb, code, len, NULL, out);
}
