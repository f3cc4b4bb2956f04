/* A run's `result` as the service and the MCP server answer it. */
#include "result_json.h"

#include <string.h>

json_t *eryx_cli_result(const eryx_result *res, const char **error, int *inexact)
{
    *error = res ? res->result_error : NULL;
    *inexact = 0;
    if (!res || !res->result_json)
        return NULL;
    size_t len = strlen(res->result_json);
    json_t *v = eryx__json_read(res->result_json, len, ERYX_CLI_JSON_FLAGS, inexact);
    if (v || *error)
        return v;
    *error = eryx__json_wide_ints(res->result_json, len) ? "the sandbox's result holds an integer beyond a double's range (1.8e308)"
                       " or is not JSON"
                     : "the sandbox reported a result that is not JSON";
    return NULL;
}
