/*
 * --trace FILE: the user's line events (eryx_sandbox_config.on_trace) as
 * JSON lines {"file", "line", "function", "time"} (docs/cli.md).
 */
#ifndef ERYX_CLI_TRACE_H
#define ERYX_CLI_TRACE_H

#include <eryx.h>
#include <stdio.h>
#include <time.h>

#define CLI_TRACE_SLOTS 16
/* Bytes of events a trace file takes by default (--trace-max): a traced
 * hot loop writes tens of MB a second, and a run without a time limit
 * would fill the disk. */
#define CLI_TRACE_DEFAULT_MAX (1ull << 30)

/* A name of a recent event (file or function) and its JSON string. */
typedef struct cli_trace_name {
    char *raw, *json;       /* NULL before the first event */
    size_t len, json_len;
} cli_trace_name;

typedef struct cli_trace {
    FILE *f;                /* NULL: no --trace */
    struct timespec t0;     /* "time" counts from here: when the file was
                               opened, as the command started */
    cli_trace_name *names;  /* CLI_TRACE_SLOTS files, then as many
                               functions: written by the events, so apart
                               from the options, like the counts below */
    uint64_t *counts;       /* [0] bytes of events written, [1] events
                               dropped once the next would pass max */
    uint64_t max;           /* --trace-max: bytes of events at most
                               (UINT64_MAX: no limit) */
} cli_trace;

/* Opens (truncates) path for writing, with the default limit; -1 after
 * printing why it cannot. */
int cli_trace_open(cli_trace *t, const char *path);
/* Points cfg's trace callback at t (nothing without a file); t must
 * outlive the sandbox, whose running thread alone uses it. */
void cli_trace_apply(const cli_trace *t, eryx_sandbox_config *cfg);
/* Flushes and closes; -1 after printing why the file is incomplete. A
 * trace cut at its limit is not a failure: its last line says so,
 * {"truncated": true, "events_dropped": N}, and so does stderr. */
int cli_trace_close(cli_trace *t);

#endif
