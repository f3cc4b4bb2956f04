/*
 * A thread-safe pool of warm sandboxes. Sandboxes go back clean: a release
 * resets the sandbox to the runtime image, so one user's state never
 * reaches the next. Idle sandboxes beyond min_idle are evicted lazily, on
 * the pool's own calls: the pool runs no thread.
 *
 * "Warm" means more than created: before a sandbox goes idle (made for
 * min_idle, or reset on release) the pool runs `pass` in it. A sandbox's
 * first run is its expensive one — copy-on-write faults on the pages it
 * writes, reseeding `random` — ~3 ms against ~20 µs for the next
 * (BENCHMARKS.md); paying it on release instead of after acquire puts it
 * off the user's path. The warm-up holds no user state, and the run count
 * is set back to 0.
 *
 * The pool is a layer over the public API: it holds sandbox handles and
 * calls eryx_sandbox_*; a release gives the sandbox a new handle, so the
 * releasing user's one is dead (ERYX_MISUSE) even while the pool keeps or
 * hands out the sandbox again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/config.h"
#include "core/handle.h"
#include "core/internal.h"

typedef struct idle_entry {
    eryx_sandbox *sb;
    uint64_t since_ns;
} idle_entry;

struct eryx_pool {
    eryx_runtime *rt;           /* a handle */
    eryx_pool_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* a sandbox was released */
    idle_entry *idle;           /* a stack: the most recently used on top */
    uint32_t n_idle, in_use;
    int closed;                 /* eryx_pool_close: no more acquires */
    int resets;                 /* the runtime has an image to reset a
                                   released sandbox to; without one (the
                                   CLI's fallback when it has no cache) a
                                   release frees it: nothing else would
                                   clean it */
    eryx_pool_stats stats;
};

void eryx_pool_config_default(eryx_pool_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    cfg->max_size = 16;
    cfg->min_idle = 1;
    cfg->idle_timeout_ns = 60ull * 1000 * 1000 * 1000;
}

/* A released sandbox that could not be cleaned is freed, not reused: why
 * is told on this thread's message, the caller's handle being dead. The
 * reason is the sandbox's message, or the thread's (a reset's mounts and
 * a config's copy report there), or the status's text. */
static void tell_why_freed(eryx_sandbox *sb, int rc)
{
    char why[512];
    const char *own = eryx_errmsg(sb), *thread = eryx_errmsg(NULL);
    snprintf(why, sizeof why, "%s", own[0] ? own : thread[0] ? thread : eryx_errstr(rc));
    eryx__set_errmsg(NULL, "eryx_pool_release: the sandbox could not be cleaned and was "
                           "freed: %s", why);
}

/* Pays the first run's costs now (see the top of the file). */
static int warm_up(eryx_sandbox *sb)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, "pass", 4, &r);
    eryx_result_free(r);
    eryx__sandbox_forget_runs(sb);
    return rc;
}

static eryx_pool *get_pool(const eryx_pool *h)
{
    return eryx__handle_get(h, ERYX__H_POOL);
}

static void pool_destroy(eryx_pool *p)
{
    for (uint32_t i = 0; i < p->n_idle; i++)
        eryx_sandbox_free(p->idle[i].sb);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->idle);
    free(p);
}

int eryx_pool_new(eryx_runtime *rt, const eryx_pool_config *given, eryx_pool **out)
{
    eryx_pool_config config, *cfg = &config;
    eryx__clear_errmsg(NULL);
    if (!out)
        return ERYX_MISUSE;
    *out = NULL;
    eryx_runtime *runtime = eryx__handle_get(rt, ERYX__H_RUNTIME);
    if (!runtime) {
        eryx__set_errmsg(NULL, "misuse: eryx_pool_new: not a runtime");
        return ERYX_MISUSE;
    }
    int rc = eryx__pool_config_take(given, cfg);
    if (rc != ERYX_OK)
        return rc;
    eryx_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->idle = calloc(cfg->max_size, sizeof *p->idle))) {
        free(p);
        return ERYX_NOMEM;
    }
    p->rt = rt;
    p->cfg = *cfg;
    p->resets = runtime->image != NULL;
    pthread_mutex_init(&p->mu, NULL);
    eryx__cond_init_monotonic(&p->cv);
    /* Fill min_idle now, so the first acquires find sandboxes ready. */
    for (uint32_t i = 0; i < cfg->min_idle; i++) {
        eryx_sandbox *sb;
        rc = eryx_sandbox_new(rt, cfg->sandbox, &sb);
        if (rc == ERYX_OK && (rc = warm_up(sb)) != ERYX_OK)
            eryx_sandbox_free(sb);
        if (rc != ERYX_OK) {
            pool_destroy(p);
            return rc;
        }
        p->idle[p->n_idle++] = (idle_entry){sb, eryx__now_ns()};
        p->stats.creations++;
    }
    if (!(*out = eryx__handle_open(ERYX__H_POOL, p))) {
        pool_destroy(p);
        return ERYX_NOMEM;
    }
    return ERYX_OK;
}

/* Frees idle sandboxes beyond min_idle that waited longer than the idle
 * timeout (the oldest are at the bottom of the stack); mu held. */
static void evict_locked(eryx_pool *p, uint64_t now)
{
    uint32_t keep_from = 0;
    while (p->n_idle - keep_from > p->cfg.min_idle &&
           now - p->idle[keep_from].since_ns >= p->cfg.idle_timeout_ns) {
        eryx_sandbox_free(p->idle[keep_from].sb);
        p->stats.evictions++;
        keep_from++;
    }
    if (keep_from) {
        memmove(p->idle, p->idle + keep_from, (p->n_idle - keep_from) * sizeof *p->idle);
        p->n_idle -= keep_from;
    }
}

static void deadline_ts(uint64_t deadline_ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(deadline_ns / 1000000000u);
    ts->tv_nsec = (long)(deadline_ns % 1000000000u);
}

int eryx_pool_acquire(eryx_pool *h, uint64_t timeout_ns, eryx_sandbox **out)
{
    if (!out)
        return ERYX_MISUSE;
    *out = NULL;
    eryx_pool *p = get_pool(h);
    if (!p)
        return ERYX_MISUSE;
    /* 0: none (ERYX_NO_LIMIT, or so far off that now + it would wrap to
     * the past and give up at once). */
    uint64_t deadline = timeout_ns == ERYX_NO_LIMIT ? 0 : eryx__deadline_after(timeout_ns);
    int waited = 0, rc = ERYX_OK;
    pthread_mutex_lock(&p->mu);
    evict_locked(p, eryx__now_ns());
    while (p->closed || (p->n_idle == 0 && p->n_idle + p->in_use >= p->cfg.max_size)) {
        if (p->closed) {
            rc = ERYX_MISUSE;
            break;
        }
        if (timeout_ns == 0 || (deadline && eryx__now_ns() >= deadline)) {
            rc = ERYX_TIMEOUT;
            break;
        }
        waited = 1;
        if (!deadline) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        struct timespec ts;
        deadline_ts(deadline, &ts);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    p->stats.waits += (uint64_t)waited;
    if (rc != ERYX_OK) {
        uint32_t in_use = p->in_use;
        pthread_mutex_unlock(&p->mu);
        if (rc == ERYX_MISUSE)
            eryx__set_errmsg(NULL, "misuse: eryx_pool_acquire: the pool is closed");
        else
            eryx__set_errmsg(NULL, "no sandbox became free in time (%u in use)", in_use);
        return rc;
    }
    eryx_sandbox *sb = p->n_idle ? p->idle[--p->n_idle].sb : NULL;
    p->in_use++; /* reserved: creation happens outside the lock */
    pthread_mutex_unlock(&p->mu);
    if (!sb) {
        rc = eryx_sandbox_new(p->rt, p->cfg.sandbox, &sb);
        pthread_mutex_lock(&p->mu);
        if (rc == ERYX_OK)
            p->stats.creations++;
        else
            p->in_use--;
        pthread_mutex_unlock(&p->mu);
        if (rc != ERYX_OK)
            return rc;
    }
    pthread_mutex_lock(&p->mu);
    p->stats.acquisitions++;
    pthread_mutex_unlock(&p->mu);
    eryx__sandbox_lend(sb, h); /* nobody else has its handle yet */
    *out = sb;
    return ERYX_OK;
}

/* Puts back the callbacks of the pool's sandbox config: a user may have
 * replaced them (eryx_sandbox_set_callbacks), and the reset keeps a
 * sandbox's callbacks, handlers and user_data with them. */
static int restore_callbacks(eryx_pool *p, eryx_sandbox *sb)
{
    eryx__config_copy c;
    int rc = eryx__sandbox_config_take(p->cfg.sandbox, &c);
    if (rc == ERYX_OK)
        rc = eryx_sandbox_set_callbacks(sb, c.cfg.callbacks, c.cfg.n_callbacks);
    eryx__config_copy_free(&c);
    return rc;
}

int eryx_pool_release(eryx_pool *h, eryx_sandbox *sb)
{
    eryx_pool *p = get_pool(h);
    if (!p || !eryx__handle_get(sb, ERYX__H_SANDBOX))
        return ERYX_MISUSE;
    /* The user's handle dies first: nothing they do with it from now on
     * reaches the sandbox. Then it is cleaned before anyone else sees it.
     * Only a sandbox this pool lent comes back: another would count
     * in_use down past 0 and go to the next user. */
    int rc = eryx__sandbox_rehandle(&sb, h);
    if (rc != ERYX_OK)
        return rc; /* in use, running, or not lent by us: still theirs */
    /* On a thread inside another sandbox's guest code (its on_output) the
     * warm-up cannot run: the sandbox is let go instead of kept. Refusing
     * left bindings that release from a finalizer, which may run there, no
     * way to give its place back. */
    int keep = p->resets && !eryx__in_guest_code();
    if (keep)
        rc = eryx_sandbox_reset(sb);
    if (keep && rc == ERYX_OK)
        rc = restore_callbacks(p, sb);
    if (keep && rc == ERYX_OK)
        rc = warm_up(sb);
    pthread_mutex_lock(&p->mu);
    p->in_use--;
    if (keep && rc == ERYX_OK && p->n_idle < p->cfg.max_size) {
        p->idle[p->n_idle++] = (idle_entry){sb, eryx__now_ns()};
        sb = NULL;
    }
    evict_locked(p, eryx__now_ns());
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (rc != ERYX_OK && sb)
        tell_why_freed(sb, rc);
    eryx_sandbox_free(sb);
    return rc;
}

void eryx_pool_get_stats(eryx_pool *h, eryx_pool_stats *out)
{
    eryx_pool *p = get_pool(h);
    if (!p || !out)
        return;
    pthread_mutex_lock(&p->mu);
    eryx_pool_stats full = p->stats;
    full.idle = p->n_idle;
    full.in_use = p->in_use;
    pthread_mutex_unlock(&p->mu);
    eryx__pool_stats_give(&full, out);
}

int eryx_pool_close(eryx_pool *h)
{
    eryx_pool *p = get_pool(h);
    if (!p)
        return ERYX_MISUSE;
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    pthread_cond_broadcast(&p->cv); /* the acquires waiting: closed, at once */
    pthread_mutex_unlock(&p->mu);
    return ERYX_OK;
}

int eryx_pool_free(eryx_pool *h)
{
    if (!h)
        return ERYX_OK;
    eryx_pool *p = get_pool(h);
    if (!p)
        return ERYX_MISUSE;
    pthread_mutex_lock(&p->mu);
    uint32_t in_use = p->in_use;
    pthread_mutex_unlock(&p->mu);
    if (in_use) {
        eryx__set_errmsg(NULL, "misuse: eryx_pool_free with %u sandboxes acquired", in_use);
        return ERYX_MISUSE;
    }
    if (!eryx__handle_close(h, ERYX__H_POOL))
        return ERYX_MISUSE;
    pool_destroy(p);
    return ERYX_OK;
}
