/*
 * --trace FILE: the user's line events (eryx_sandbox_config.on_trace) as
 * JSON lines {"file", "line", "function", "time"} (docs/cli.md).
 */
#ifndef ERYX_CLI_TRACE_H
#define ERYX_CLI_TRACE_H

#include <eryx.h>
#include <stdio.h>
#include <time.h>

typedef struct cli_trace {
    FILE *f;                /* NULL: no --trace */
    struct timespec t0;     /* "time" counts from here: when the file was
                               opened, as the command started */
} cli_trace;

/* Opens (truncates) path for writing; -1 after printing why it cannot. */
int cli_trace_open(cli_trace *t, const char *path);
/* Points cfg's trace callback at t (nothing without a file); t is only
 * read, and must outlive the sandbox. */
void cli_trace_apply(const cli_trace *t, eryx_sandbox_config *cfg);
/* Flushes and closes; -1 after printing why the file is incomplete. */
int cli_trace_close(cli_trace *t);

#endif
