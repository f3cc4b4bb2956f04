/* `--callback NAME=COMMAND` handlers of the eryx command. */
#ifndef ERYX_CLI_SHELL_CALLBACK_H
#define ERYX_CLI_SHELL_CALLBACK_H

#include "eryx.h"

/* An eryx_callback_fn; user_data is the shell command (a C string). */
void eryx_cli_shell_callback(void *user_data, eryx_call *call);

#endif
