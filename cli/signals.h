/* How the eryx command ends on SIGINT, SIGTERM and SIGHUP (a run, the
 * prompt, --remote, `eryx mcp`). `eryx serve` and `eryx mcp-proxy` have
 * their own. */
#ifndef ERYX_CLI_SIGNALS_H
#define ERYX_CLI_SIGNALS_H

#include "eryx.h"

/* Blocks SIGTERM and SIGHUP (and SIGINT when take_sigint) in the calling
 * thread, so in every thread it starts later, and starts the thread that
 * takes them: call it before any other thread is started. SIGTERM and
 * SIGHUP kill the process groups of the --callback commands and MCP
 * servers, then end the process by the signal itself (its default action:
 * a shell sees 128+N). SIGINT interrupts the sandbox given to
 * eryx_cli_signals_sandbox, or, before there is one, ends the process as
 * SIGTERM does. 0, or -1 when the thread could not start (the signals
 * then keep their default action). */
int eryx_cli_signals_start(int take_sigint);

/* The sandbox that SIGINT interrupts from now on (thread-safe). */
void eryx_cli_signals_sandbox(eryx_sandbox *sb);

/* How many SIGINTs have interrupted a sandbox so far (thread-safe). */
unsigned eryx_cli_signals_interrupts(void);

/* A --session save begins (1) or ends (0): SIGTERM and SIGHUP wait for its
 * end (30 s at most) before the process dies, so that the temporary file
 * it writes is renamed or removed, not left behind. */
void eryx_cli_signals_saving(int on);

/* The terminal's settings as they are now, put back when SIGTERM or
 * SIGHUP ends the process: the prompt's line editor leaves the terminal
 * raw (no echo) while it reads, and an end by the default action left it
 * so. Call it before the line editor changes them (once). */
void eryx_cli_signals_keep_terminal(int fd);

#endif
