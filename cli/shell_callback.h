/* `--callback NAME=COMMAND` handlers of the eryx command. */
#ifndef ERYX_CLI_SHELL_CALLBACK_H
#define ERYX_CLI_SHELL_CALLBACK_H

#include <stddef.h>

#include "eryx.h"

/* An eryx_callback_fn; user_data is the shell command (a C string). */
void eryx_cli_shell_callback(void *user_data, eryx_call *call);

/* Whether the caller still waits for a command's answer: asked every
 * 100 ms while it runs (fn NULL: always). */
typedef struct shell_wanted {
    int (*fn)(void *user_data);
    void *user_data;
} shell_wanted;

/* Runs command with args (JSON) on its stdin: 0 and *result (its stdout,
 * malloc'd, *len bytes), or -1 and msg (its stderr, or why it failed).
 * When wanted says no, the command's process group is stopped (SIGTERM,
 * SIGKILL a second later) and it fails. Any group still running at exit()
 * is killed. */
int eryx_cli_shell_run(const char *command, const char *args, const shell_wanted *wanted,
                       char **result, size_t *len, char *msg, size_t msglen);

/* Kills every command's process group (SIGKILL) and makes any later
 * start fail: run at exit(), and by the signal thread before eryx dies of
 * SIGTERM or SIGHUP (cli/signals.c). Takes a lock: not for a signal
 * handler. */
void eryx_cli_shell_kill_all(void);

#endif
