/* `--callback NAME=COMMAND` handlers of the eryx command. */
#ifndef ERYX_CLI_SHELL_CALLBACK_H
#define ERYX_CLI_SHELL_CALLBACK_H

#include <stddef.h>

#include "eryx.h"

/* An eryx_callback_fn; user_data is the shell command (a C string). */
void eryx_cli_shell_callback(void *user_data, eryx_call *call);

/* Runs command with args (JSON) on its stdin: 0 and *result (its stdout,
 * malloc'd, *len bytes), or -1 and msg (its stderr, or why it failed). */
int eryx_cli_shell_run(const char *command, const char *args, char **result, size_t *len,
                       char *msg, size_t msglen);

#endif
