/*
 * For the harnesses that need the guest: one runtime per process, and a
 * way to add seeds that depend on the build (session files name their
 * build; exported state holds the guest's pickles) to the corpus at start:
 * they are written into the first corpus directory on the command line,
 * which is the scratch one in tests/fuzz/run.sh, never the committed seeds.
 */
#ifndef ERYX_TEST_FUZZ_SANDBOX_H
#define ERYX_TEST_FUZZ_SANDBOX_H

#include <eryx.h>
#include <signal.h>
#include <sys/stat.h>

#include "fuzz.h"

static eryx_runtime *fuzz_rt;

static inline void fuzz_runtime_init(void)
{
    int rc = eryx_runtime_new(NULL, &fuzz_rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_runtime_new: %s\n", eryx_errmsg(NULL));
    FUZZ_CHECK(rc == ERYX_OK);
}

/* The first directory among the arguments (libFuzzer's output corpus). */
static inline const char *fuzz_first_corpus(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (argv[i][0] != '-' && stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            return argv[i];
    }
    return NULL;
}

/* Writes a seed named name into the first corpus directory, if any. */
static inline void fuzz_add_seed(int argc, char **argv, const char *name, const void *p, size_t n)
{
    const char *dir = fuzz_first_corpus(argc, argv);
    if (!dir)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0);
}

/* Reads a whole file (malloc'd). */
static inline uint8_t *fuzz_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    FUZZ_CHECK(f);
    FUZZ_CHECK(fseek(f, 0, SEEK_END) == 0);
    long size = ftell(f);
    FUZZ_CHECK(size >= 0 && fseek(f, 0, SEEK_SET) == 0);
    uint8_t *p = malloc(size ? (size_t)size : 1);
    FUZZ_CHECK(p && fread(p, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return p;
}

static inline void fuzz_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0);
}

/* The runtime, and the MCP harnesses' sandbox config (mcp, mcp_http):
 * code under a 300 ms limit, 64 MiB of memory, 64 KiB of output; SIGPIPE
 * ignored, the server's peers going away as they please. */
static inline void fuzz_mcp_init(eryx_sandbox_config *cfg)
{
    signal(SIGPIPE, SIG_IGN);
    fuzz_runtime_init();
    eryx_sandbox_config_default(cfg);
    cfg->timeout_ns = 300000000ull;
    cfg->max_memory = 64u << 20;
    cfg->max_output = 64u << 10;
}

/* Runs code that must succeed (seed making). */
static inline void fuzz_run_ok(eryx_sandbox *sb, const char *code)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    if (rc != ERYX_OK)
        fprintf(stderr, "seed code failed: %s %s\n", eryx_errstr(rc), r ? r->err : "");
    FUZZ_CHECK(rc == ERYX_OK);
    eryx_result_free(r);
}

#endif
