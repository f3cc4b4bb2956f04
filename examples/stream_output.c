/*
 * Streams the guest's output as it is written (here: prefixed by stream),
 * mounts a host directory read-only and limits the sandbox's memory.
 */
#include <eryx.h>
#include <stdio.h>
#include <string.h>

static void on_output(void *user_data, int fd, const char *data, size_t len)
{
    int *chunks = user_data;
    (*chunks)++;
    printf("[%s] %.*s", fd == 1 ? "out" : "err", (int)len, data);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    eryx_runtime *rt = NULL;
    eryx_sandbox *sb = NULL;
    int chunks = 0;
    if (eryx_runtime_new(NULL, &rt) != ERYX_OK)
        return 1;
    eryx_mount mount = {.host_path = dir, .guest_path = "/data", .writable = 0};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.mounts = &mount;
    cfg.n_mounts = 1;
    cfg.max_memory = 64u << 20;
    cfg.on_output = on_output;
    cfg.output_user_data = &chunks;
    int rc = eryx_sandbox_new(rt, &cfg, &sb);
    if (rc != ERYX_OK) {
        fprintf(stderr, "%s: %s\n", eryx_errstr(rc), eryx_errmsg(NULL));
        eryx_runtime_free(rt);
        return 1;
    }
    const char *code =
        "import os, sys\n"
        "print('files in /data:', len(os.listdir('/data')), flush=True)\n"
        "print('a warning', file=sys.stderr)\n"
        "try:\n"
        "    big = bytearray(100 * 2**20)\n"
        "except MemoryError:\n"
        "    print('100 MiB refused: the sandbox is capped at 64 MiB')\n";
    eryx_result *res = NULL;
    rc = eryx_sandbox_run(sb, code, strlen(code), &res);
    printf("status %s, %d chunks streamed, %zu bytes of stdout kept\n",
           rc == ERYX_OK ? "ok" : eryx_errstr(rc), chunks, res ? res->out_len : 0);
    eryx_result_free(res);
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    return rc == ERYX_OK ? 0 : 1;
}
