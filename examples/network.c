/*
 * A sandbox with a network policy and a secret (docs/networking.md): the
 * code may reach api.example.com only; a name that resolves to the cloud
 * metadata address is refused although its name is allowed, and the
 * secret is a placeholder inside. Runs offline: nothing here needs DNS.
 *   cc network.c $(pkg-config --cflags --libs eryx) -o network
 */
#include <eryx.h>
#include <stdio.h>
#include <string.h>

static const char code[] =
    "import os, socket\n"
    "print('the key inside:', os.environ['API_KEY'][:12] + '...')\n"
    "for host, port in [('metadata.example.com', 80), ('169.254.169.254', 80),\n"
    "                   ('evil.example.net', 443)]:\n"
    "    try:\n"
    "        socket.create_connection((host, port), timeout=2)\n"
    "    except PermissionError as e:\n"
    "        print('refused:', e.strerror)\n";

int main(void)
{
    const char *allow[] = {"api.example.com", "*.example.com:80"};
    /* A test pin: the allowed name resolves to the metadata address. */
    const char *resolve[] = {"metadata.example.com:80:169.254.169.254"};
    eryx_net_config net = {.size = sizeof net, .allow = allow, .n_allow = 2,
                           .resolve = resolve, .n_resolve = 1};
    const char *hosts[] = {"api.example.com"};
    eryx_secret key = {.size = sizeof key, .name = "API_KEY",
                       .value = "sk-live-the-real-value-never-seen-inside",
                       .hosts = hosts, .n_hosts = 1};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.net = &net;
    cfg.secrets = &key;
    cfg.n_secrets = 1;

    eryx_runtime *rt = NULL;
    eryx_sandbox *sb = NULL;
    eryx_result *res = NULL;
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc == ERYX_OK)
        rc = eryx_sandbox_new(rt, &cfg, &sb);
    if (rc == ERYX_OK)
        rc = eryx_sandbox_run(sb, code, strlen(code), &res);
    if (rc == ERYX_OK)
        fwrite(res->out, 1, res->out_len, stdout);
    else
        fprintf(stderr, "failed: %s (%s)\n", eryx_errstr(rc),
                res && res->traceback ? res->traceback : eryx_errmsg(sb));
    printf("status %s\n", eryx_errstr(rc));
    eryx_result_free(res);
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    return rc == ERYX_OK ? 0 : 1;
}
