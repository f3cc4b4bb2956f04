/* `eryx --remote URL`: run the program on an `eryx serve` (docs/serve.md). */
#ifndef ERYX_CLI_REMOTE_H
#define ERYX_CLI_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "eryx.h"

typedef struct remote_opts {
    const char *url;          /* ws://HOST:PORT[/PATH] or wss://... */
    const char *token_file;   /* the bearer token, or NULL */
    const char *ca_file;      /* more CAs to trust for wss://, or NULL */
    const char *cert_file;    /* the client certificate for mTLS, or NULL */
    const char *key_file;     /* its private key (with cert_file), or NULL */
    const char *session;      /* a session name, or NULL (a fresh sandbox) */
    uint64_t timeout_ms;      /* 0: the server's limit */
    const eryx_callback *callbacks; /* user_data: the shell command */
    size_t n_callbacks;
    int stdin_stream;         /* the program reads our stdin as it goes */
} remote_opts;

/* Runs code remotely, streaming its output to stdout/stderr and answering
 * its calls with the --callback commands. Returns the exit status the
 * local run would have (docs/cli.md), 71 when the server cannot be
 * reached or refuses, 70 for other failures. */
int eryx_cli_remote(const remote_opts *o, const char *code, size_t len);

/* Whether a write to a stalled reader of our stdout or stderr gives up
 * (out_stream.h): after Ctrl-C, or 5 s past the run's time limit. */
int eryx_cli_remote_stopping(void);

/* The first error writing stdout during eryx_cli_remote, or 0 (EPIPE: its
 * reader went away, and the run was cancelled). */
int eryx_cli_remote_stdout_errno(void);

#endif
