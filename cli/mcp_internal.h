/* Shared by the MCP files of the eryx command (mcp.h is their interface). */
#ifndef ERYX_CLI_MCP_INTERNAL_H
#define ERYX_CLI_MCP_INTERNAL_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "eryx.h"
#include "mcp.h"

/* How long `eryx mcp --http` keeps an idle connection for the next
 * request, and the header that says so to clients, which then reuse one
 * only well before (eryx mcp-proxy: up to a second before). */
#define ERYX_MCP_KEEP_ALIVE_S 5
#define ERYX_MCP_KEEP_ALIVE_HINT "Keep-Alive: timeout=5\r\n"

/* The protocol revisions eryx speaks: the current one and the one before,
 * negotiated in initialize (docs/mcp.md). */
#define ERYX_MCP_VERSION "2025-11-25"
#define ERYX_MCP_PREVIOUS_VERSION "2025-06-18"

/* 1 if v names a published revision whose messages eryx handles: the two
 * above and the older 2025-03-26 and 2024-11-05 (tools/list, tools/call,
 * ping, cancellation and progress are the same in all; what is newer,
 * structured content first, is only absent). eryx's client takes a
 * server of any of them; its server accepts them in MCP-Protocol-Version.
 * (mcp_names.c) */
int eryx_cli_mcp_known_revision(const char *v);

#define ERYX_MCP_DEFAULT_MAX_MESSAGE (16u << 20)

/* Appends s[0..n) to a growing text (NUL-terminated; *text NULL at
 * first); nothing when out of memory. (mcp_server.c) */
void eryx_cli_mcp_append(char **text, size_t *len, const char *s, size_t n);

/* mcp_answer.c: a tool result with one text item (of len bytes for _n:
 * the text may hold NUL characters) and, optionally, structured content
 * (stolen). */
json_t *eryx_mcp_tool_result(const char *text, json_t *structured_stolen, int is_error);
json_t *eryx_mcp_tool_result_n(const char *text, size_t len, json_t *structured_stolen,
                               int is_error);

/* What a run_python answer tells besides the run's result. */
typedef struct mcp_run_facts {
    const char *session;   /* the name the client gave */
    int was_reset;         /* the run left the sandbox dead: it was reset */
    int reset_untold;      /* an earlier cancelled call's hard stop reset it */
    int was_dropped;       /* it had been dropped for room (--max-sessions) */
} mcp_run_facts;

/* The answer of one run_python run: structured content (the output
 * schema's fields) and readable text. out_cap: bytes kept of each long
 * text (stdout, stderr, the exception's message and traceback, the
 * result's JSON; the rest is cut, a longer result left out with
 * result_error saying so); SIZE_MAX for all. */
json_t *eryx_mcp_run_answer(const mcp_run_facts *f, int rc, eryx_result *res,
                            const char *errmsg, size_t out_cap);

static inline void eryx_cli_mcp_append_str(char **text, size_t *len, const char *s)
{
    eryx_cli_mcp_append(text, len, s, strlen(s));
}

/* The tools of `eryx mcp`, for tools/list, with run_python's description
 * made for cfg (a sandbox of rt and cfg is asked what it has). New
 * reference; NULL when out of memory. (mcp_tools.c) */
json_t *eryx_cli_mcp_tools(eryx_runtime *rt, const eryx_sandbox_config *cfg);

/* 1 if s is a Python identifier (ASCII, at most 64 bytes) and no keyword. */
int eryx_cli_py_identifier(const char *s);
int eryx_cli_py_keyword(const char *s);

/* A Python identifier made of a name of MCP's (a tool's, a configured
 * server's): other characters become '_', a leading digit gets a '_'
 * before it, a keyword one after it; at most 100 bytes of the name are
 * used. malloc'd, NULL when out of memory. */
char *eryx_cli_py_name(const char *name);

/* A server to start. From --mcp-server: a shell command. From a
 * configuration file (mcp_config.c): a program, its arguments and the
 * environment it adds to ours. */
typedef struct eryx_cli_mcp_spec {
    char *name;      /* mcp.NAME: a Python identifier */
    char *command;   /* --mcp-server: for /bin/sh -c; else the program */
    char **argv;     /* NULL for a shell command, else NULL-terminated */
    char **env;      /* NAME=VALUE added to our environment; NULL-terminated */
    char *origin;    /* the configuration file; NULL for --mcp-server */
} eryx_cli_mcp_spec;

/* The servers being gathered: v[0..n), at most max; the first `fixed`
 * (the --mcp-server ones) are never replaced. */
typedef struct eryx_cli_mcp_specs {
    eryx_cli_mcp_spec *v;
    size_t n, max, fixed;
    FILE *warnings;  /* where what is left out is said (stderr), or NULL */
} eryx_cli_mcp_specs;

/* Adds to l the stdio servers of the configuration files of --mcp and
 * --mcp-config (mcp_config.c), a later file's server in place of an
 * earlier one's of the same name. Warnings go to stderr. 0, or -1 when a
 * --mcp-config file cannot be read or is not JSON, or out of memory. */
int eryx_cli_mcp_discover(const eryx_cli_mcp *m, eryx_cli_mcp_specs *l);

/* Adds to l the servers of one configuration file's text (len bytes at
 * data, blanked in place by eryx_cli_jsonc_blank) under key (NULL: the
 * first of mcpServers, servers, context_servers; "projects": Claude
 * Code's servers of this directory). origin names the file in messages.
 * 0; 1 if it is not JSON (said); -1 when out of memory. */
int eryx_cli_mcp_config_parse(eryx_cli_mcp_specs *l, char *data, size_t len, const char *key,
                              const char *origin);

/* Frees what a spec of a configuration file owns and zeroes it. */
void eryx_cli_mcp_spec_clear(eryx_cli_mcp_spec *s);

/* Blanks the comments (line and block) and trailing commas of JSON with
 * comments, in place, keeping line breaks: the JSON of VS Code and Zed. */
void eryx_cli_jsonc_blank(char *s, size_t n);

/* s with $VAR, ${VAR} and ${VAR:-default} replaced from our environment
 * (an unset VAR: empty); a '$' not before a name stays. malloc'd. */
char *eryx_cli_expand_env(const char *s);

/* The handler of every MCP tool callback (user_data: the tool). */
void eryx_cli_mcp_tool_handler(void *user_data, eryx_call *call);

/* The Python return annotation of a callback for the stubs: "dict" for an
 * MCP tool with an output schema, "str | list | None" for one without,
 * "Any" for other callbacks. */
const char *eryx_cli_mcp_tool_returns(const eryx_callback *cb);

#endif
