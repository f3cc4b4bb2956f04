/*
 * MCP in the eryx command (docs/mcp.md):
 *   - `--mcp-server NAME=COMMAND`: eryx is an MCP client of COMMAND and offers
 *     each of its tools to the sandbox as `await mcp.NAME.TOOL(**args)`, a
 *     callback like any other (mcp_client.c);
 *   - `eryx mcp [options]`: eryx is an MCP server on stdin/stdout whose
 *     tools run Python in sandboxes (mcp_server.c).
 *   - `--mcp`, `--mcp-config PATH`: the servers that agents' and editors'
 *     MCP configuration files name, started as --mcp-server's are
 *     (mcp_config.c).
 * The options of all are parsed by eryx_cli_mcp_option from main.c's own
 * option loop, so every other option of the command applies to them.
 */
#ifndef ERYX_CLI_MCP_H
#define ERYX_CLI_MCP_H

#include <stddef.h>
#include <stdint.h>

#include "eryx.h"

#define ERYX_CLI_MAX_MCP_SERVERS 32
#define ERYX_CLI_MAX_MCP_CONFIGS 16

typedef struct eryx_cli_mcp {
    int serve;                        /* `eryx mcp` */
    struct {
        const char *name, *command;
    } servers[ERYX_CLI_MAX_MCP_SERVERS];
    size_t n_servers;
    int discover;                     /* --mcp: read the agents' configuration
                                         files (docs/mcp.md) */
    const char *configs[ERYX_CLI_MAX_MCP_CONFIGS]; /* --mcp-config PATH */
    size_t n_configs;
    uint64_t connect_timeout_ms;      /* --mcp-timeout: start + initialize +
                                         tools/list of a server (30000) */
    uint64_t callback_timeout_ms;     /* --callback-timeout (0: the library's) */
    uint64_t max_message;             /* --mcp-max-message: bytes of one JSON-RPC
                                         message, either direction (16M) */
    uint32_t max_sessions;            /* --max-sessions of `eryx mcp` (16) */
    const char *http;                 /* --http ADDR:PORT: Streamable HTTP instead
                                         of stdio (a loopback address, or any
                                         with --http-token-file) */
    const char *http_token_file;      /* --http-token-file: the bearer token
                                         every request must carry */
    const char *http_tls_cert, *http_tls_key; /* --http-tls-cert, -key: HTTPS */
} eryx_cli_mcp;

/* Looks at argv[*i]: 0 if it is not an MCP option; 1 if it was one (its
 * argument consumed, *i advanced past it); -1 after printing a usage error. */
int eryx_cli_mcp_option(eryx_cli_mcp *m, int argc, char **argv, int *i);

/* The help text of the MCP options. */
extern const char eryx_cli_mcp_usage[];

/* 1 if any option asks for MCP servers. */
int eryx_cli_mcp_wants_servers(const eryx_cli_mcp *m);

/* Starts the --mcp-server processes and those --mcp and --mcp-config
 * name, initializes them, lists their tools and makes cfg's callbacks the
 * command's own followed by one per tool (cfg->callbacks then points to
 * memory kept until the process exits). Messages go to stderr. 0, or -1
 * when a --mcp-server could not be used or a --mcp-config file not read;
 * a server of a configuration file that fails is reported and left out,
 * as agents do. */
int eryx_cli_mcp_connect(const eryx_cli_mcp *m, eryx_sandbox_config *cfg);

/* Stops the servers started by eryx_cli_mcp_connect (closes their stdin,
 * then SIGTERM, then SIGKILL). Idempotent. */
void eryx_cli_mcp_disconnect(void);

/* Kills the servers' process groups at once (SIGKILL), and any server
 * started from then on fails to start: the command is dying of a signal
 * (cli/signals.c). Takes locks, so not for a signal handler. */
void eryx_cli_mcp_kill_all(void);

/* `eryx mcp`: serves MCP on stdin/stdout until stdin closes. rt, cfg: the
 * command's runtime and sandbox config (limits, mounts, callbacks); the
 * config's output streaming is replaced. Returns the exit status. */
int eryx_cli_mcp_serve(const eryx_cli_mcp *m, eryx_runtime *rt, const eryx_sandbox_config *cfg);

/* `eryx mcp-proxy URL [option]...` (argv[0] is "mcp-proxy"): MCP on
 * stdin/stdout forwarded to a Streamable HTTP server (mcp_proxy.c).
 * Returns the exit status. */
int eryx_cli_mcp_proxy(int argc, char **argv);

/* Python stubs of callbacks (`async def name(a: int, b: str = "x") -> Any:
 * """description"""`), generated from their JSON schemas: malloc'd text. */
char *eryx_cli_mcp_stubs(const eryx_callback *cbs, size_t n);

#endif
