/* The names of run statuses shared by `--stats`, `eryx serve`'s done event
 * and `--remote` (docs/cli.md, docs/serve.md). */
#ifndef ERYX_CLI_RUN_STATUS_H
#define ERYX_CLI_RUN_STATUS_H

#include "eryx.h"

static inline const char *eryx_cli_status_name(int rc)
{
    switch (rc) {
    case ERYX_OK: return "ok";
    case ERYX_PYTHON_EXCEPTION: return "exception";
    case ERYX_TIMEOUT: return "timeout";
    case ERYX_INTERRUPTED: return "interrupted";
    case ERYX_TRAP: return "trap";
    case ERYX_DEAD: return "dead";
    case ERYX_FUEL: return "fuel";
    case ERYX_DIVERGED: return "diverged";
    default: return "error";
    }
}

/* eryx_result.stop_cause's name ("timeout", "interrupted"), or NULL when
 * no stop came: `--stats`', the done event's and MCP's `stopped`. */
static inline const char *eryx_cli_stop_name(const eryx_result *r)
{
    return r && r->stop_cause ? eryx_cli_status_name(r->stop_cause) : NULL;
}

/* What eryx says, locally and with --remote, of a run whose time limit
 * passed though its code caught the KeyboardInterrupt and ended. */
#define ERYX_CLI_CAUGHT_TIMEOUT \
    "the run exceeded its time limit (the code caught the KeyboardInterrupt and ended on its own)"

#endif
