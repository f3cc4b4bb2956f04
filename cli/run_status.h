/* The names of run statuses shared by `--stats`, `eryx serve`'s done event
 * and `--remote` (docs/cli.md, docs/serve.md), and a run's result as the
 * service and the MCP server answer it. */
#ifndef ERYX_CLI_RUN_STATUS_H
#define ERYX_CLI_RUN_STATUS_H

#include <jansson.h>

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

/* A run's `result` for a reply (NULL: none), and in *error why there is
 * none (NULL: it was not set). The guest's glue writes strict JSON, but
 * the guest's code can forge the text: what jansson does not read is
 * reported as such, not passed on as a null result. */
static inline json_t *eryx_cli_result(const eryx_result *res, const char **error)
{
    *error = res ? res->result_error : NULL;
    if (!res || !res->result_json)
        return NULL;
    json_t *v = json_loads(res->result_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!v && !*error)
        *error = "the sandbox reported a result that is not JSON";
    return v;
}

#endif
