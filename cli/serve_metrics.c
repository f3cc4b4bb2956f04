/*
 * Counters of `eryx serve`, in Prometheus' text format (--metrics), and
 * its structured logs: one JSON object per line on stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

/* Upper bounds (ms) of the execution duration histogram's buckets. */
static const double bucket_ms[M_NBUCKETS] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30000};
static const char *const status_label[M_NSTATUS] = {
    "ok", "exception", "timeout", "interrupted", "memory", "trap", "suspended", "diverged", "other"};

int metrics_status_index(int rc, const eryx_result *r)
{
    switch (rc) {
    case ERYX_OK: return M_OK;
    case ERYX_PYTHON_EXCEPTION:
        return r && r->exc_type && strcmp(r->exc_type, "MemoryError") == 0 ? M_MEMORY : M_EXCEPTION;
    case ERYX_TIMEOUT: return M_TIMEOUT;
    case ERYX_INTERRUPTED: return M_INTERRUPTED;
    case ERYX_TRAP: return M_TRAP;
    case ERYX_DIVERGED: return M_DIVERGED;
    default: return M_OTHER;
    }
}

void metrics_execution(server *sv, int status_index, uint64_t duration_ns)
{
    atomic_fetch_add(&sv->m.executions[status_index], 1);
    if (status_index == M_SUSPENDED)
        return;
    double ms = (double)duration_ns / 1e6;
    int b = 0;
    while (b < M_NBUCKETS && ms > bucket_ms[b])
        b++;
    atomic_fetch_add(&sv->m.duration_buckets[b], 1);
    atomic_fetch_add(&sv->m.duration_sum_us, duration_ns / 1000);
    atomic_fetch_add(&sv->m.duration_count, 1);
}

typedef struct text { char *p; size_t len, cap; int failed; } text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
        } else if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        } else {
            size_t cap = (t->cap + (size_t)n) * 2;
            char *p = realloc(t->p, cap);
            if (!p)
                t->failed = 1;
            else
                t->p = p, t->cap = cap;
        }
    }
}

static void counter(text *t, const char *name, const char *help, uint64_t v)
{
    add(t, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

static void gauge(text *t, const char *name, const char *help, double v)
{
    add(t, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v);
}

static void executions(text *t, server *sv)
{
    add(t, "# HELP eryx_executions_total Executions ended, by status.\n"
           "# TYPE eryx_executions_total counter\n");
    for (int i = 0; i < M_NSTATUS; i++)
        add(t, "eryx_executions_total{status=\"%s\"} %llu\n", status_label[i],
            (unsigned long long)atomic_load(&sv->m.executions[i]));
    add(t, "# HELP eryx_execution_duration_seconds Wall time of executions.\n"
           "# TYPE eryx_execution_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b <= M_NBUCKETS; b++) {
        cum += atomic_load(&sv->m.duration_buckets[b]);
        if (b < M_NBUCKETS)
            add(t, "eryx_execution_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_ms[b] / 1000,
                (unsigned long long)cum);
        else
            add(t, "eryx_execution_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
    }
    add(t, "eryx_execution_duration_seconds_sum %g\neryx_execution_duration_seconds_count %llu\n",
        (double)atomic_load(&sv->m.duration_sum_us) / 1e6,
        (unsigned long long)atomic_load(&sv->m.duration_count));
}

static void store_metrics(text *t, server *sv)
{
    static const char *const kind[STORE_KINDS] = {"get", "put", "lock"};
    struct store_stats s;
    memset(&s, 0, sizeof s);
    store_stats(sv->st, &s);
    add(t, "# HELP eryx_store_operation_duration_seconds Session store operations, by kind.\n"
           "# TYPE eryx_store_operation_duration_seconds histogram\n");
    for (int k = 0; k < STORE_KINDS; k++) {
        uint64_t cum = 0;
        for (int b = 0; b < STORE_HIST_BUCKETS; b++) {
            cum += s.hist[k][b];
            if (b < STORE_HIST_BUCKETS - 1)
                add(t, "eryx_store_operation_duration_seconds_bucket{kind=\"%s\",le=\"%g\"} %llu\n",
                    kind[k], store_hist_bounds_ms[b] / 1000, (unsigned long long)cum);
            else
                add(t, "eryx_store_operation_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %llu\n",
                    kind[k], (unsigned long long)cum);
        }
        add(t, "eryx_store_operation_duration_seconds_sum{kind=\"%s\"} %g\n"
               "eryx_store_operation_duration_seconds_count{kind=\"%s\"} %llu\n",
            kind[k], (double)s.latency_ns[k] / 1e9, kind[k], (unsigned long long)s.ops[k]);
    }
    add(t, "# HELP eryx_store_errors_total Session store operations that failed.\n"
           "# TYPE eryx_store_errors_total counter\n");
    for (int k = 0; k < STORE_KINDS; k++)
        add(t, "eryx_store_errors_total{kind=\"%s\"} %llu\n", kind[k],
            (unsigned long long)s.errors[k]);
    add(t, "# HELP eryx_store_retries_total Session store attempts repeated.\n"
           "# TYPE eryx_store_retries_total counter\n");
    for (int k = 0; k < STORE_KINDS; k++)
        add(t, "eryx_store_retries_total{kind=\"%s\"} %llu\n", kind[k],
            (unsigned long long)s.retries[k]);
    counter(t, "eryx_store_chunks_uploaded_total", "Session chunks sent to the store.",
            s.chunks_uploaded);
    counter(t, "eryx_store_chunks_reused_total", "Session chunks a save found stored already.",
            s.chunks_reused);
    counter(t, "eryx_store_bytes_uploaded_total", "Compressed session bytes sent.",
            s.bytes_uploaded);
    counter(t, "eryx_store_bytes_fetched_total", "Compressed session bytes received.",
            s.bytes_fetched);
}

char *metrics_text(server *sv)
{
    text t = {0};
    eryx_pool_stats ps = {.size = sizeof ps};
    eryx_pool_get_stats(sv->pool, &ps);
    executions(&t, sv);
    counter(&t, "eryx_requests_total", "Requests received.", atomic_load(&sv->m.requests_total));
    counter(&t, "eryx_errors_total", "Requests answered with an error.",
            atomic_load(&sv->m.errors_total));
    counter(&t, "eryx_connections_total", "Connections accepted.",
            atomic_load(&sv->m.connections_total));
    counter(&t, "eryx_connections_refused_total", "Connections refused as busy.",
            atomic_load(&sv->m.connections_refused));
    gauge(&t, "eryx_connections", "Open connections.", atomic_load(&sv->m.connections));
    gauge(&t, "eryx_executing", "Executions running now.", atomic_load(&sv->m.executing));
    gauge(&t, "eryx_pool_idle", "Idle sandboxes in the pool.", ps.idle);
    gauge(&t, "eryx_pool_in_use", "Pool sandboxes in use.", ps.in_use);
    counter(&t, "eryx_pool_creations_total", "Pool sandboxes created.", ps.creations);
    counter(&t, "eryx_session_cache_hits_total", "Session requests served from this replica's "
            "sandbox.", atomic_load(&sv->m.cache_hits));
    counter(&t, "eryx_session_cache_misses_total", "Session requests that loaded the state.",
            atomic_load(&sv->m.cache_misses));
    counter(&t, "eryx_session_saves_total", "Session states stored.",
            atomic_load(&sv->m.session_saves));
    counter(&t, "eryx_session_save_failures_total", "Session states that could not be stored.",
            atomic_load(&sv->m.session_save_failures));
    store_metrics(&t, sv);
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

void serve_log(server *sv, const char *event, json_t *fields)
{
    if (!fields)
        fields = json_object();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_object_set_new(fields, "ts", json_real((double)ts.tv_sec + ts.tv_nsec / 1e9));
    json_object_set_new(fields, "event", json_string(event));
    json_object_set_new(fields, "replica", json_string(sv->replica));
    char *s = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(fields);
    if (s) {
        fprintf(stderr, "%s\n", s);
        free(s);
    }
}
