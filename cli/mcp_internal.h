/* Shared by the MCP files of the eryx command (mcp.h is their interface). */
#ifndef ERYX_CLI_MCP_INTERNAL_H
#define ERYX_CLI_MCP_INTERNAL_H

#include "eryx.h"

/* The protocol revisions eryx speaks: the current one and the one before,
 * negotiated in initialize (docs/mcp.md). */
#define ERYX_MCP_VERSION "2025-11-25"
#define ERYX_MCP_PREVIOUS_VERSION "2025-06-18"

#define ERYX_MCP_DEFAULT_MAX_MESSAGE (16u << 20)

/* 1 if s is a Python identifier (ASCII, at most 64 bytes) and no keyword. */
int eryx_cli_py_identifier(const char *s);
int eryx_cli_py_keyword(const char *s);

/* The handler of every MCP tool callback (user_data: the tool). */
void eryx_cli_mcp_tool_handler(void *user_data, eryx_call *call);

/* The Python return annotation of a callback for the stubs: "dict" for an
 * MCP tool with an output schema, "str | list | None" for one without,
 * "Any" for other callbacks. */
const char *eryx_cli_mcp_tool_returns(const eryx_callback *cb);

#endif
