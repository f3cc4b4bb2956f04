/*
 * The command line's network options (net_options.h).
 */
#include "net_options.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "size_arg.h"

const char cli_net_usage[] =
    "  --allow-net RULE\n"
    "                  let the code connect to RULE: a host (api.example.com),\n"
    "                  *.domain, *, an IP address or CIDR range, with an\n"
    "                  optional :PORT; repeatable. Without it there is no\n"
    "                  network. Loopback, private and link-local addresses need\n"
    "                  a rule naming them, whatever name resolves to them\n"
    "  --allow-host RULE, --net\n"
    "                  the reference CLI's spellings: --allow-net RULE, and\n"
    "                  --allow-net '*' (every public host)\n"
    "  --deny-net RULE refuse RULE even when an --allow-net matches; repeatable\n"
    "  --resolve HOST:PORT:ADDRESS\n"
    "                  resolve HOST at PORT to ADDRESS (still checked); repeatable\n"
    "  --ca-file PEM   trust the CA certificates in PEM besides the system's\n"
    "  --secret NAME@HOST[,HOST...]\n"
    "                  the value of the host's environment variable NAME may be\n"
    "                  sent to HOST; the code sees a placeholder in $NAME\n"
    "  --max-connections N\n"
    "                  connections open at once (default 10)\n"
    "  --max-net-bytes BYTES\n"
    "                  bytes a run may send, and receive (default 1G each)\n";

static int add(const char **list, size_t *n, const char *opt, const char *v)
{
    if (*n == CLI_NET_MAX) {
        fprintf(stderr, "eryx: too many %s options (at most %d)\n", opt, CLI_NET_MAX);
        return -1;
    }
    list[(*n)++] = v;
    return 1;
}

static int parse_secret(cli_net *n, const char *spec)
{
    if (n->n_secrets == CLI_NET_MAX) {
        fprintf(stderr, "eryx: too many --secret options (at most %d)\n", CLI_NET_MAX);
        return -1;
    }
    const char *at = strchr(spec, '@');
    if (!at || at == spec || !at[1]) {
        fprintf(stderr, "eryx: --secret wants NAME@HOST[,HOST...], not '%s'\n", spec);
        return -1;
    }
    size_t k = n->n_secrets;
    char *text = strdup(spec);
    if (!text)
        return -1;
    text[at - spec] = '\0';
    const char *value = getenv(text);
    if (!value || !*value) {
        fprintf(stderr, "eryx: --secret %s: the environment variable %s is %s\n", spec, text,
                value ? "empty" : "not set");
        free(text);
        return -1;
    }
    const char *hosts = at + 1;
    if (*hosts == ',' || hosts[strlen(hosts) - 1] == ',' || strstr(hosts, ",,")) {
        fprintf(stderr, "eryx: --secret %s: a host in the list is empty\n", spec);
        free(text);
        return -1;
    }
    size_t nh = 0;
    char *save = NULL;
    for (char *h = strtok_r(text + (at - spec) + 1, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        if (nh == CLI_NET_MAX) {
            fprintf(stderr, "eryx: --secret %s: too many hosts\n", spec);
            free(text);
            return -1;
        }
        n->secret_hosts[k][nh++] = h;
    }
    n->secret_text[k] = text;
    eryx_secret *s = &n->secrets[k];
    s->size = sizeof *s;
    s->name = text;
    s->value = value;
    s->hosts = (const char *const *)n->secret_hosts[k];
    s->n_hosts = nh;
    n->n_secrets++;
    return 1;
}

int cli_net_option(cli_net *n, int argc, char **argv, int *i)
{
    const char *opt = argv[*i];
    /* --allow-host is the reference's name for --allow-net (docs/cli.md);
     * its --net, every host, is here every public one. */
    static const char *const names[] = {"--allow-net", "--deny-net", "--resolve", "--ca-file",
                                        "--secret", "--max-connections", "--max-net-bytes",
                                        "--allow-host"};
    if (strcmp(opt, "--net") == 0)
        return add(n->allow, &n->n_allow, opt, "*");
    size_t which = 0;
    while (which < sizeof names / sizeof names[0] && strcmp(opt, names[which]) != 0)
        which++;
    if (which == sizeof names / sizeof names[0])
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "eryx: argument expected for the %s option\n", opt);
        return -1;
    }
    const char *v = argv[++*i];
    /* No rule begins with '-' (the library refuses one too): this is the
     * next option, and its own error would hide the mistake ("--allow-net
     * -c CODE" took -c as the rule, then CODE as the script's file). */
    if ((which == 0 || which == 1 || which == 7) && v[0] == '-') {
        fprintf(stderr, "eryx: %s wants a rule, not the option %s\n", opt, v);
        return -1;
    }
    switch (which) {
    case 0: case 7: return add(n->allow, &n->n_allow, opt, v);
    case 1: return add(n->deny, &n->n_deny, opt, v);
    case 2: return add(n->resolve, &n->n_resolve, opt, v);
    case 3: return add(n->ca_files, &n->n_ca_files, opt, v);
    case 4: return parse_secret(n, v);
    case 6: {
        uint64_t b;
        if (eryx_cli_parse_size(v, &b) < 0 || b == 0) {
            fprintf(stderr, "eryx: --max-net-bytes wants a size in bytes (suffixes k, M, G)\n");
            return -1;
        }
        n->max_bytes = b;
        return 1;
    }
    default: {
        char *end;
        unsigned long m = strtoul(v, &end, 10);
        if (*end || !isdigit((unsigned char)v[0]) || m == 0 || m > 100000) {
            fprintf(stderr, "eryx: --max-connections wants a number from 1 to 100000\n");
            return -1;
        }
        n->max_connections = (uint32_t)m;
        return 1;
    }
    }
}

int cli_net_check(cli_net *n)
{
    if (!n->n_allow &&
        (n->n_secrets || n->n_resolve || n->n_ca_files || n->n_deny || n->max_connections ||
         n->max_bytes)) {
        fprintf(stderr, "eryx: network options need --allow-net (without it the code has no "
                        "network)\n");
        return -1;
    }
    eryx_net_config *c = &n->cfg;
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
    c->allow = n->allow;
    c->n_allow = n->n_allow;
    c->deny = n->deny;
    c->n_deny = n->n_deny;
    c->resolve = n->resolve;
    c->n_resolve = n->n_resolve;
    c->ca_files = n->ca_files;
    c->n_ca_files = n->n_ca_files;
    c->max_connections = n->max_connections;
    c->max_bytes_sent = c->max_bytes_received = n->max_bytes;
    return 0;
}

void cli_net_apply(const cli_net *n, eryx_sandbox_config *cfg)
{
    if (!n->n_allow)
        return;
    cfg->net = &n->cfg;
    cfg->secrets = n->secrets;
    cfg->n_secrets = n->n_secrets;
}

void cli_net_free(cli_net *n)
{
    for (size_t i = 0; i < n->n_secrets; i++)
        free(n->secret_text[i]);
    n->n_secrets = 0;
}
