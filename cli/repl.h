/* The interactive prompt of the eryx command. */
#ifndef ERYX_CLI_REPL_H
#define ERYX_CLI_REPL_H

#include <stdint.h>

#include "eryx.h"

/* Reads statements from the terminal and runs them in sb until end of
 * input or a SystemExit (os._exit too), each with the time limit
 * timeout_ns (ERYX_NO_LIMIT: none). An entry stopped hard kills the
 * interpreter: with fresh_after_death (no session file) a fresh one goes
 * on, else the prompt ends. Returns the command's exit status: 0 at the
 * end of input, SystemExit's or os._exit's status, 70 when the session
 * died. */
int eryx_cli_repl(eryx_sandbox *sb, uint64_t timeout_ns, int fresh_after_death);

#endif
