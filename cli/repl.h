/* The interactive prompt of the eryx command. */
#ifndef ERYX_CLI_REPL_H
#define ERYX_CLI_REPL_H

#include "eryx.h"

/* Reads statements from the terminal and runs them in sb until end of
 * input. Returns the command's exit status. */
int eryx_cli_repl(eryx_sandbox *sb);

#endif
