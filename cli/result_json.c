/* A run's `result` as the service and the MCP server answer it. */
#include "result_json.h"

#include <string.h>

/* The largest tree read of a result of len bytes of JSON: a result is at
 * most the sandbox's max_output (10 MiB by default), records as
 * `{"a":[1,2,{"b":null}],"c":"x"}` take 33 times their text. */
#define RESULT_MAX_TREE(len) ((len) < (8u << 20) ? (size_t)64 << 20 : 8 * (size_t)(len))

json_t *eryx_cli_result(const eryx_result *res, const char **error, int *inexact)
{
    *error = res ? res->result_error : NULL;
    *inexact = 0;
    if (!res || !res->result_json)
        return NULL;
    size_t len = strlen(res->result_json);
    if (!eryx__json_tree_fits(res->result_json, len, RESULT_MAX_TREE(len), NULL)) {
        *inexact = 1; /* the text goes alone */
        *error = "the result's JSON is too structured to read here (more than 64 MiB or 8 "
                 "times its size parsed): it is in result_json, as text";
        return NULL;
    }
    json_t *v = eryx__json_read(res->result_json, len, ERYX_CLI_JSON_FLAGS, inexact);
    if (v || *error)
        return v;
    *error = eryx__json_wide_ints(res->result_json, len) ? "the sandbox's result holds an integer beyond a double's range (1.8e308)"
                       " or is not JSON"
                     : "the sandbox reported a result that is not JSON";
    return NULL;
}
