/*
 * Timeouts and eryx_sandbox_interrupt: a graceful stop first, a hard one
 * after the grace period.
 *
 * Graceful: the host writes KeyboardInterrupt into the guest thread state's
 * async_exc and sets the async-exception bit of its eval_breaker (the
 * addresses come from the guest's eryx_interrupt_info export), exactly what
 * PyThreadState_SetAsyncExc does; the eval loop raises it at its next check.
 * Sleeps (WASI poll_oneoff) and waits on callbacks are cut short too.
 * Hard: eryx__engine_interrupt stops the guest's fiber wherever it is in
 * guest code; the sandbox is dead afterwards.
 *
 * One watchdog thread per process fires the timers: each run with a time
 * limit, and each graceful stop waiting for its hard stop, is armed there.
 * It posts the executions' notifies to the notifier thread (exec.c) rather
 * than call them: an embedder's notify must not hold the timers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/exec.h"

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv;           /* on CLOCK_MONOTONIC */
static pthread_cond_t wd_idle_cv = PTHREAD_COND_INITIALIZER;
static eryx_sandbox *wd_armed;         /* list through irq.next */
static eryx_sandbox *wd_firing;        /* handled outside wd_mu right now */
static int wd_started;
/* When the watchdog looks at the list next: UINT64_MAX while it waits with
 * no deadline, 0 while it is scanning (it sees every change then). Arming
 * wakes it only for a deadline earlier than that: a run's 30 s deadline
 * usually is not, and the wake-up (two context switches, ~30 % of a `pass`
 * run on the development VM) is saved. */
static uint64_t wd_wake_ns;

/* A hard stop that lands in host code (a WASI import, libc) is dropped by
 * the engine: it is sent again this often until the run ends. */
#define HARD_RETRY_NS (1000u * 1000u)

/* A 32-bit word of guest memory used atomically by the host: NULL unless
 * it is inside the memory and aligned (the addresses come from the guest,
 * or from a session file: an unaligned atomic is undefined behaviour, and
 * a split lock on x86). */
static _Atomic uint32_t *guest_word(eryx_sandbox *sb, uint32_t addr)
{
    if (!addr || addr % 4u != 0)
        return NULL;
    return (_Atomic uint32_t *)(void *)eryx__guest_span(sb, addr, 4);
}

/* When the watchdog must look at sb next; 0 = never. irq.mu held. */
static uint64_t next_time(const eryx_sandbox *sb)
{
    const eryx__irq *q = &sb->irq;
    if (!q->running)
        return 0;
    if (q->hard)
        return q->hard_at_ns + HARD_RETRY_NS;
    return q->cause ? q->hard_at_ns : q->deadline_ns;
}

/* When the graceful stop turns hard; irq.mu held. 0, never: stopped while
 * parked (from the next step on), the grace is ERYX_NO_LIMIT, or so long
 * that now + it would wrap to the past and stop the code hard at once. */
static void set_grace(eryx__irq *q)
{
    q->hard_at_ns = q->grace_at_resume || q->grace_ns == ERYX_NO_LIMIT
                        ? 0
                        : eryx__deadline_after(q->grace_ns);
}

/* The graceful stop; irq.mu held, a run in progress. The execution's
 * notify, if any, goes into *n: deliver it once irq.mu is released (the
 * embedder's notify may call functions that take it). n is NULL when the
 * stepping thread stops its own run (eryx__irq_fire_due): it is awake. */
static void soft_stop(eryx_sandbox *sb, int cause, eryx__notice *n)
{
    eryx__irq *q = &sb->irq;
    /* The grace is time for the code to unwind: a guest parked between
     * steps gets it from its next step, however late the embedder takes
     * it (a late step otherwise found the grace gone and the code was
     * stopped hard, the sandbox dead, before it had run at all). The
     * stepping thread swaps park without mu: either this marks it
     * stopped before the swap, and the step that swaps starts the grace,
     * or the swap came first and the grace starts here. No order leaves
     * a stop without its grace, and so without its hard stop. */
    int parked = ERYX__PARKED;
    q->grace_at_resume =
        atomic_compare_exchange_strong(&q->park, &parked, ERYX__PARKED_STOPPED);
    set_grace(q);
    _Atomic uint32_t *exc = guest_word(sb, q->async_exc_addr);
    _Atomic uint32_t *brk = guest_word(sb, q->breaker_addr);
    if (exc && brk) {
        atomic_store(exc, q->exc_value);
        atomic_fetch_or(brk, q->breaker_bit);
    }
    eryx__wasi_interrupt(sb->wasi);
    /* Last but the wake-up: a step that reads cause without mu and so
     * resumes the guest finds the stop in place (the exception, the
     * sleeps cut short). */
    q->cause = cause;
    if (q->hub) {
        pthread_mutex_lock(&q->hub->mu);
        q->hub->stopping = 1;
        pthread_cond_broadcast(&q->hub->cv);
        if (n)
            eryx__hub_notice_locked(q->hub, n);
        pthread_mutex_unlock(&q->hub->mu);
    }
}

/* Does what is due for sb; irq.mu held. */
static void fire(eryx_sandbox *sb, uint64_t now, eryx__notice *n)
{
    eryx__irq *q = &sb->irq;
    uint64_t t = next_time(sb);
    if (!t || now < t)
        return;
    if (!q->cause) {
        soft_stop(sb, ERYX_TIMEOUT, n);
    } else {
        q->hard = 1;
        q->hard_at_ns = now;
        eryx__engine_interrupt(sb->in.fiber);
    }
}

static void *watchdog(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd_mu);
    for (;;) {
        wd_wake_ns = 0;
        uint64_t now = eryx__now_ns(), earliest = 0;
        int fired = 0;
        for (eryx_sandbox *sb = wd_armed; sb && !fired; sb = sb->irq.next) {
            uint64_t t = sb->irq.wake_ns;
            if (t && t <= now) {
                /* Handle it without wd_mu (irq.mu comes first in the lock
                 * order); disarm waits for us meanwhile. */
                wd_firing = sb;
                pthread_mutex_unlock(&wd_mu);
                eryx__notice notice = {0};
                pthread_mutex_lock(&sb->irq.mu);
                fire(sb, now, &notice);
                /* Rearmed before irq.mu goes, as arm() does. Set after the
                 * notify instead, the time seen here overwrote a step's
                 * arming meanwhile (the grace of a stop made while parked
                 * starts at the next step): that hard stop was lost, and
                 * code that swallowed the KeyboardInterrupt ran on. */
                pthread_mutex_lock(&wd_mu);
                sb->irq.wake_ns = next_time(sb);
                wd_firing = NULL;
                pthread_cond_broadcast(&wd_idle_cv);
                pthread_mutex_unlock(&wd_mu);
                pthread_mutex_unlock(&sb->irq.mu);
                /* sb may be gone from here: the notice holds the hub.
                 * Posted, not delivered: a notify that blocked here held
                 * every other running guest's time limit with it. */
                eryx__notice_post(&notice);
                pthread_mutex_lock(&wd_mu);
                fired = 1; /* the list may have changed: scan again */
                continue;
            }
            if (t && (!earliest || t < earliest))
                earliest = t;
        }
        if (fired)
            continue;
        wd_wake_ns = earliest ? earliest : UINT64_MAX;
        if (earliest == 0) {
            pthread_cond_wait(&wd_cv, &wd_mu);
        } else {
            struct timespec ts = {(time_t)(earliest / 1000000000u),
                                  (long)(earliest % 1000000000u)};
            pthread_cond_timedwait(&wd_cv, &wd_mu, &ts);
        }
    }
    return NULL;
}

/* fork(2) (core/fork.c): wd_mu is held across it, so the child finds the
 * state whole. The watchdog thread is not in the child, only its state:
 * with wd_started still 1 no run's time limit was ever enforced there (a
 * multiprocessing worker ran a 500 ms limit's loop for 8 s); the next
 * run that needs it starts a new one. The runs armed were other threads'
 * (none of them is in the child): forgotten; a sandbox of one that the
 * child uses anyway is armed again by its next step. */
void eryx__watchdog_fork(enum eryx__fork_phase phase)
{
    if (phase == ERYX__FORK_PREPARE) {
        pthread_mutex_lock(&wd_mu);
        return;
    }
    if (phase == ERYX__FORK_CHILD) {
        pthread_cond_t fresh_cv = PTHREAD_COND_INITIALIZER;
        wd_idle_cv = fresh_cv; /* (a waiter of the parent's is not here) */
        for (eryx_sandbox *sb = wd_armed; sb; sb = sb->irq.next)
            sb->irq.linked = 0;
        wd_armed = wd_firing = NULL;
        wd_started = 0;
        wd_wake_ns = 0;
    }
    pthread_mutex_unlock(&wd_mu);
}

static int start_watchdog(void)
{
    eryx__cond_init_monotonic(&wd_cv);
    return eryx__thread_start_detached(watchdog, NULL);
}

/* (Re)arms sb at its next time; irq.mu held. A grace that waits for the
 * guest's next step starts the watchdog already, so that the arming at
 * that step cannot fail. */
static int arm(eryx_sandbox *sb)
{
    uint64_t t = next_time(sb);
    pthread_mutex_lock(&wd_mu);
    if (!wd_started && (t || sb->irq.grace_at_resume)) {
        if (start_watchdog() != 0) {
            pthread_mutex_unlock(&wd_mu);
            return -1;
        }
        wd_started = 1;
    }
    if (!sb->irq.linked && t) {
        sb->irq.next = wd_armed;
        wd_armed = sb;
        sb->irq.linked = 1;
    }
    if (sb->irq.linked)
        sb->irq.wake_ns = t;
    if (wd_started && t && t < wd_wake_ns)
        pthread_cond_signal(&wd_cv);
    pthread_mutex_unlock(&wd_mu);
    return 0;
}

static void disarm(eryx_sandbox *sb)
{
    pthread_mutex_lock(&wd_mu);
    while (wd_firing == sb)
        pthread_cond_wait(&wd_idle_cv, &wd_mu);
    if (sb->irq.linked) {
        eryx_sandbox **p = &wd_armed;
        while (*p != sb)
            p = &(*p)->irq.next;
        *p = sb->irq.next;
        sb->irq.linked = 0;
    }
    pthread_mutex_unlock(&wd_mu);
}

/* ---- used by sandboxes and runs ----------------------------------------- */

void eryx__irq_init(eryx_sandbox *sb, uint64_t grace_ns)
{
    pthread_mutex_init(&sb->irq.mu, NULL);
    sb->irq.grace_ns = grace_ns;
}

void eryx__irq_destroy(eryx_sandbox *sb)
{
    disarm(sb);
    pthread_mutex_destroy(&sb->irq.mu);
}

struct info_call {
    eryx_sandbox *sb;
    u32 ptr;
};

static void do_interrupt_info(void *arg)
{
    struct info_call *c = arg;
    c->ptr = Z_pythonZ_eryx_interrupt_info(&c->sb->in.inst);
}

int eryx__irq_fetch_addresses(eryx_sandbox *sb)
{
    struct info_call c = {sb, 0};
    int rc = eryx__guest_call(sb, do_interrupt_info, &c, "eryx_interrupt_info");
    uint32_t f[4];
    const uint8_t *p = rc == ERYX_OK ? eryx__guest_span(sb, c.ptr, sizeof f) : NULL;
    if (!p) {
        if (rc == ERYX_OK)
            eryx__set_errmsg(sb, "the guest gave no interrupt addresses");
        return rc == ERYX_OK ? ERYX_INIT : rc;
    }
    memcpy(f, p, sizeof f);
    sb->irq.breaker_addr = f[0];
    sb->irq.async_exc_addr = f[1];
    sb->irq.exc_value = f[2];
    sb->irq.breaker_bit = f[3];
    return ERYX_OK;
}

/* A run begins: clear what a late interrupt of the previous one left. */
int eryx__irq_run_begin(eryx_sandbox *sb, uint64_t timeout_ns, eryx__hub *hub)
{
    eryx__irq *q = &sb->irq;
    _Atomic uint32_t *exc = guest_word(sb, q->async_exc_addr);
    _Atomic uint32_t *brk = guest_word(sb, q->breaker_addr);
    if (exc && brk) {
        atomic_store(exc, 0);
        atomic_fetch_and(brk, ~q->breaker_bit);
    }
    eryx__fiber_clear_interrupt(sb->in.fiber);
    pthread_mutex_lock(&q->mu);
    q->running = 1;
    q->cause = 0;
    q->hard = 0;
    atomic_store(&q->park, ERYX__RUNNING);
    q->grace_at_resume = 0;
    q->deadline_ns = eryx__deadline_after(timeout_ns);
    q->hub = hub;
    int rc = arm(sb);
    pthread_mutex_unlock(&q->mu);
    return rc < 0 ? ERYX_NOMEM : ERYX_OK;
}

/* A run ended; returns the cause of a stop (0, ERYX_TIMEOUT, ERYX_INTERRUPTED)
 * and whether it was hard. */
int eryx__irq_run_end(eryx_sandbox *sb, int *hard)
{
    eryx__irq *q = &sb->irq;
    pthread_mutex_lock(&q->mu);
    q->running = 0;
    q->hub = NULL;
    int cause = q->cause;
    *hard = q->hard;
    pthread_mutex_unlock(&q->mu);
    disarm(sb);
    return cause;
}

/* The stepping thread does what is due for its own parked run, as the
 * watchdog would: a step at the run's deadline (eryx_exec_deadline_ns is
 * next_time) acts on it whether or not the watchdog has had its turn (it
 * can be late: held by another execution's notify, or starved under
 * valgrind). Until the watchdog came, each step found nothing to do and
 * the deadline still now: eryx_sandbox_run stepped in a loop meanwhile. */
void eryx__irq_fire_due(eryx_sandbox *sb)
{
    pthread_mutex_lock(&sb->irq.mu);
    fire(sb, eryx__now_ns(), NULL);
    pthread_mutex_unlock(&sb->irq.mu);
}

/* The stop cause now (for a pending execution deciding to resume). A stop
 * that comes just after is seen at the next step, as with a lock. */
int eryx__irq_cause(eryx_sandbox *sb)
{
    return atomic_load(&sb->irq.cause);
}

/* The guest is parked between steps of an execution (parked 1), or is
 * about to run again (0): a graceful stop that came while it was parked
 * starts its grace now. Only the stepping thread calls it. */
void eryx__irq_park(eryx_sandbox *sb, int parked)
{
    eryx__irq *q = &sb->irq;
    if (parked) {
        atomic_store(&q->park, ERYX__PARKED);
        return;
    }
    if (atomic_exchange(&q->park, ERYX__RUNNING) != ERYX__PARKED_STOPPED)
        return;
    /* soft_stop marked it under mu, and armed the watchdog: taking mu
     * waits for it to be done. */
    pthread_mutex_lock(&q->mu);
    q->grace_at_resume = 0;
    set_grace(q);
    (void)arm(sb); /* the watchdog runs since the stop: cannot fail */
    pthread_mutex_unlock(&q->mu);
}

/* The next time the run's limits need the execution stepped, or 0. */
uint64_t eryx__irq_deadline(eryx_sandbox *sb)
{
    pthread_mutex_lock(&sb->irq.mu);
    uint64_t t = next_time(sb);
    pthread_mutex_unlock(&sb->irq.mu);
    return t;
}

int eryx__sandbox_interrupt(eryx_sandbox *sb)
{
    eryx__irq *q = &sb->irq;
    eryx__notice notice = {0};
    int rc = ERYX_OK;
    pthread_mutex_lock(&q->mu);
    if (q->running && !q->cause) {
        soft_stop(sb, ERYX_INTERRUPTED, &notice);
        if (arm(sb) < 0)
            rc = ERYX_NOMEM;
    }
    pthread_mutex_unlock(&q->mu);
    eryx__notice_deliver(&notice);
    return rc;
}
