/*
 * For the tests that run `eryx mcp`'s server in their own process: is the
 * server's global lock (S.lock in cli/mcp_server.c, which every session's
 * calls take) free of the calling thread?
 *
 * lock_free() starts a thread that goes through the lock
 * (eryx_mcp_session_busy takes it) and waits for it: when the calling
 * thread holds the lock, that thread cannot get through, and after
 * PROBE_MS the answer is 0. No timing is measured: PROBE_MS only bounds
 * how long a probe that cannot get through is waited for.
 *
 * dispatch_json() hands a request to the server as its reading thread
 * does. Include check.h first (REQUIRE).
 */
#ifndef ERYX_TEST_MCP_LOCK_PROBE_H
#define ERYX_TEST_MCP_LOCK_PROBE_H

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "jsonrpc.h"
#include "mcp_server.h"

#define PROBE_MS 1000

/* 1 on the probe's own thread (whose allocations are not to be probed). */
static _Thread_local int in_probe;

/* A probe: waited for by the thread asking, or let go (when it could not
 * get through); whichever drops the last reference frees it. */
typedef struct probe {
    sem_t done;
    atomic_int refs;
} probe;

static void probe_drop(probe *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1) {
        sem_destroy(&p->done);
        free(p);
    }
}

static void *probe_main(void *arg)
{
    probe *p = arg;
    in_probe = 1;
    eryx_mcp_session_busy("probe"); /* takes the global lock */
    sem_post(&p->done);
    probe_drop(p);
    return NULL;
}

/* 1 if sem was posted within ms. */
static int sem_wait_ms(sem_t *sem, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc;
    while ((rc = sem_timedwait(sem, &ts)) < 0 && errno == EINTR) {
    }
    return rc == 0;
}

/* 1 if another thread got through the global lock within PROBE_MS (when
 * this thread holds it, none can until this returns). */
static int lock_free(void)
{
    probe *p = malloc(sizeof *p);
    if (!p)
        return 1;
    sem_init(&p->done, 0, 0);
    atomic_init(&p->refs, 2);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int ok = 1;
    if (pthread_create(&t, &attr, probe_main, p) == 0)
        ok = sem_wait_ms(&p->done, PROBE_MS);
    else
        probe_drop(p);
    pthread_attr_destroy(&attr);
    probe_drop(p);
    return ok;
}

/* Dispatches req (stolen) on ch as a line the server read: its reply, or
 * NULL when a job answers it later. */
static json_t *dispatch_json(channel *ch, json_t *req)
{
    char *line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    REQUIRE(line != NULL);
    jr_msg m;
    jr_decode(line, strlen(line), &m);
    free(line);
    json_t *reply = eryx_mcp_dispatch(ch, &m);
    jr_msg_clear(&m);
    return reply;
}

#endif
