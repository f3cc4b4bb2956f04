/*
 * The command line's network options (--allow-net, --deny-net, --resolve,
 * --ca-file, --secret, --max-connections, --max-net-bytes): parsed into an eryx_net_config
 * and a list of secrets (docs/networking.md).
 */
#ifndef ERYX_CLI_NET_OPTIONS_H
#define ERYX_CLI_NET_OPTIONS_H

#include <eryx.h>

#define CLI_NET_MAX 64

typedef struct cli_net {
    const char *allow[CLI_NET_MAX], *deny[CLI_NET_MAX], *resolve[CLI_NET_MAX],
        *ca_files[CLI_NET_MAX];
    size_t n_allow, n_deny, n_resolve, n_ca_files;
    uint32_t max_connections;
    uint64_t max_bytes;         /* --max-net-bytes: sent, and received */
    eryx_secret secrets[CLI_NET_MAX];
    char *secret_hosts[CLI_NET_MAX][CLI_NET_MAX];
    char *secret_text[CLI_NET_MAX];
    size_t n_secrets;
    eryx_net_config cfg;
} cli_net;

/* If opt is a network option, consumes its argument (argv[*i + 1]) and
 * returns 1, or -1 after printing why it is wrong; 0 if opt is another
 * option. */
int cli_net_option(cli_net *n, int argc, char **argv, int *i);

/* After parsing: -1 after printing why the options do not fit together. */
int cli_net_check(cli_net *n);

/* Gives cfg the network of the options (none without --allow-net). */
void cli_net_apply(const cli_net *n, eryx_sandbox_config *cfg);

void cli_net_free(cli_net *n);

/* The usage lines of the options. */
extern const char cli_net_usage[];

#endif
