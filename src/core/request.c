/*
 * The run request the guest's eryx_exec decodes (guest/abi.h):
 *
 *   mode \0 flags \0 filename \0 callbacks \0 setup \0 argc \0 argv[0] \0 ... \0 code
 *
 * Every part is measured before anything is copied, and the whole is
 * bounded: the guest copies it into its own memory with a 32-bit length.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/exec.h"
#include "core/packages.h"

/* Largest request: code, argv and filename together. The guest's memory
 * (at most 4 GiB) must also hold the interpreter and a copy of the source. */
#define MAX_REQUEST_BYTES (1ull << 30)

/* What a sandbox made from an image does on its first run: reseed random
 * (the image holds the template's state) and, unless it is a fork or a
 * loaded session, apply its environment; a loaded session's first run
 * also takes the packages of the runtime it was loaded into. seed: whether
 * to reseed, or -1 as the sandbox says (a journal's replay reseeds as the
 * recorded run did). "" when nothing is to be done. */
static char *build_setup(const eryx_sandbox *sb, int seed)
{
    int reseed = seed < 0 ? sb->needs_setup || sb->reseed_only : seed;
    if (!sb->needs_setup && !reseed && !sb->rebind_imports)
        return strdup("");
    json_t *setup = reseed ? json_pack("{s:b}", "seed", 1) : json_object();
    if (setup && sb->rebind_imports)
        json_object_set_new(setup, "imports",
                            sb->rt->packages ? json_string(ERYX__SITE_PACKAGES) : json_true());
    json_t *env = json_object();
    for (size_t i = 0; sb->needs_setup && sb->cfg.env && sb->cfg.env[i]; i++) {
        const char *kv = sb->cfg.env[i], *eq = strchr(kv, '=');
        if (eq && eq != kv) {
            char *key = strndup(kv, (size_t)(eq - kv));
            if (key)
                json_object_set_new(env, key, json_string(eq + 1));
            free(key);
        }
    }
    if (sb->needs_setup && setup && env)
        json_object_set(setup, "env", env);
    if (sb->needs_setup && setup && sb->cfg.n_mounts)
        json_object_set_new(setup, "mounts", json_true());
    json_decref(env);
    char *text = setup ? json_dumps(setup, JSON_COMPACT) : NULL;
    json_decref(setup);
    return text;
}

/* Adds a part's length (and its NUL) to *n; -1 past the bound. */
static int add_len(size_t *n, size_t part)
{
    if (part > MAX_REQUEST_BYTES || *n > MAX_REQUEST_BYTES - part - 1)
        return -1;
    *n += part + 1;
    return 0;
}

static char mode_char(char mode, eryx_run_mode m)
{
    if (mode)
        return mode;
    return m == ERYX_RUN_MODULE ? 'm' : m == ERYX_RUN_INTERACTIVE ? 'i' : 'c';
}

char *eryx__request_build(eryx_sandbox *sb, const eryx_run_options *o, char mode,
                          const char *code, size_t len, int seed, size_t *req_len)
{
    static const char *const default_argv[] = {"", NULL};
    const char *filename = o->filename ? o->filename : "<string>";
    const char *const *argv = o->argv && o->argv[0] ? o->argv : default_argv;
    /* "t": trace; "s": this run has stdin bytes or a reader (without, the
     * guest may keep the previous run's unused stdin object: a few
     * microseconds). */
    int has_stdin = o->stdin_len > 0 || o->stdin_read;
    const char *flags = sb->on_trace ? (has_stdin ? "ts" : "t") : (has_stdin ? "s" : "");
    const char *cbs = sb->callbacks_json ? sb->callbacks_json : "[]";
    char count[24];
    size_t argc = 0, n = 0;
    while (argv[argc])
        argc++;
    snprintf(count, sizeof count, "%zu", argc);
    int too_big = add_len(&n, 1) || add_len(&n, strlen(flags)) ||
                  add_len(&n, strlen(filename)) || add_len(&n, strlen(cbs)) ||
                  add_len(&n, strlen(count));
    for (size_t i = 0; !too_big && i < argc; i++)
        too_big = add_len(&n, strlen(argv[i]));
    if (too_big || len > MAX_REQUEST_BYTES - n) {
        eryx__set_errmsg(sb, "the code, argv and filename together are over the 1 GiB a "
                             "run request may hold");
        return NULL;
    }
    char *setup = build_setup(sb, seed);
    if (!setup || add_len(&n, strlen(setup)) || len > MAX_REQUEST_BYTES - n) {
        free(setup);
        eryx__set_errmsg(sb, "out of memory preparing the run");
        return NULL;
    }
    n += len;
    char *req = malloc(n);
    if (!req) {
        free(setup);
        eryx__set_errmsg(sb, "out of memory preparing the run");
        return NULL;
    }
    char *p = req;
    *p++ = mode_char(mode, o->mode);
    *p++ = '\0';
    p = stpcpy(p, flags) + 1;
    p = stpcpy(p, filename) + 1;
    p = stpcpy(p, cbs) + 1;
    p = stpcpy(p, setup) + 1;
    free(setup);
    p = stpcpy(p, count) + 1;
    for (size_t i = 0; i < argc; i++)
        p = stpcpy(p, argv[i]) + 1;
    memcpy(p, code, len);
    *req_len = n;
    return req;
}
