/* A run's `result` as the service and the MCP server answer it
 * (docs/serve.md, docs/mcp.md). Integers beyond 64 bits: core/json_wide.h. */
#ifndef ERYX_CLI_RESULT_JSON_H
#define ERYX_CLI_RESULT_JSON_H

#include <jansson.h>

#include "core/json_wide.h"
#include "eryx.h"

/* The flags every reader of the guest's JSON uses: any value at the top (a
 * result may be 3 or "x"), and strings holding NUL (\u0000 is JSON). */
#define ERYX_CLI_JSON_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

/* A run's `result` for a reply (NULL: none), and in *error why there is
 * none (NULL: it was not set). *inexact is 1 when the value holds an
 * integer beyond 64 bits as a real: the reply then carries the exact text,
 * res->result_json, beside it. The guest's glue writes strict JSON, but the
 * guest's code can forge the text: what cannot be read is reported as
 * such, not passed on as a null result. Text whose tree would take more
 * than 64 MiB and 8 times the text (eryx__json_tree_fits: `[{}] * 2600000`
 * is 10 MB of text and was 650 MB of tree) is not read: NULL, *error says
 * why and *inexact is 1, so the reply carries the text alone. */
json_t *eryx_cli_result(const eryx_result *res, const char **error, int *inexact);

#endif
