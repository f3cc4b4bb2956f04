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

#endif
