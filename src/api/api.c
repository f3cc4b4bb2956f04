/*
 * Public entry points: argument and misuse checks, then src/core/.
 * A bad handle, a NULL where an object is required, a config of an unknown
 * size or a sandbox entered by two threads at once is an error code with a
 * message, never a crash.
 */
#include <stddef.h>
#include <stdlib.h>

#include "core/exec.h"

#define CONFIG_MIN_SIZE(type, first_field) (offsetof(type, first_field) + sizeof(((type *)0)->first_field))

static int runtime_ok(const eryx_runtime *rt)
{
    return rt && rt->magic == ERYX__RUNTIME_MAGIC;
}

static int sandbox_ok(const eryx_sandbox *sb)
{
    return sb && sb->magic == ERYX__SANDBOX_MAGIC;
}

static int misuse(eryx_sandbox *sb, const char *what)
{
    eryx__set_errmsg(sb, "misuse: %s", what);
    return ERYX_MISUSE;
}

int eryx_runtime_new(const eryx_runtime_config *cfg, eryx_runtime **out)
{
    eryx__clear_errmsg(NULL);
    if (!out)
        return misuse(NULL, "eryx_runtime_new: out is NULL");
    *out = NULL;
    if (cfg && eryx__check_config_size(cfg->size, CONFIG_MIN_SIZE(eryx_runtime_config, size),
                                       sizeof *cfg) != ERYX_OK) {
        eryx__set_errmsg(NULL, "eryx_runtime_config.size is %zu: fill the config with "
                               "eryx_runtime_config_default()", cfg->size);
        return ERYX_INVALID;
    }
    return eryx__runtime_new(cfg, out);
}

int eryx_runtime_free(eryx_runtime *rt)
{
    if (!rt)
        return ERYX_OK;
    if (!runtime_ok(rt))
        return misuse(NULL, "eryx_runtime_free: not a runtime (freed twice?)");
    long live = atomic_load(&rt->n_sandboxes);
    if (live != 0) {
        eryx__set_errmsg(NULL, "misuse: eryx_runtime_free with %ld sandboxes alive", live);
        return ERYX_MISUSE;
    }
    eryx__runtime_free(rt);
    return ERYX_OK;
}

static int check_sandbox_config(const eryx_sandbox_config *cfg)
{
    if (eryx__check_config_size(cfg->size, CONFIG_MIN_SIZE(eryx_sandbox_config, size),
                                sizeof *cfg) != ERYX_OK) {
        eryx__set_errmsg(NULL, "eryx_sandbox_config.size is %zu: fill the config with "
                               "eryx_sandbox_config_default()", cfg->size);
        return ERYX_INVALID;
    }
    if (cfg->n_mounts && !cfg->mounts)
        return misuse(NULL, "eryx_sandbox_config: n_mounts set but mounts is NULL");
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        const eryx_mount *m = &cfg->mounts[i];
        if (!m->host_path || !m->guest_path || m->guest_path[0] != '/') {
            eryx__set_errmsg(NULL, "mount %zu: host_path and an absolute guest_path "
                                   "are required", i);
            return ERYX_INVALID;
        }
    }
    if (cfg->fuel && !eryx_build_has_fuel()) {
        eryx__set_errmsg(NULL, "this build does not count fuel: build its guest with "
                               "ERYX_GUEST_FUEL=1 (docs/limits.md)");
        return ERYX_INVALID;
    }
    if (cfg->n_callbacks && !cfg->callbacks)
        return misuse(NULL, "eryx_sandbox_config: n_callbacks set but callbacks is NULL");
    if (cfg->max_memory < (32u << 20)) {
        eryx__set_errmsg(NULL, "max_memory %llu is below the 32 MiB the interpreter "
                               "needs to start", (unsigned long long)cfg->max_memory);
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

int eryx_sandbox_new(eryx_runtime *rt, const eryx_sandbox_config *cfg, eryx_sandbox **out)
{
    eryx__clear_errmsg(NULL);
    if (!out)
        return misuse(NULL, "eryx_sandbox_new: out is NULL");
    *out = NULL;
    if (!runtime_ok(rt))
        return misuse(NULL, "eryx_sandbox_new: not a runtime");
    if (cfg) {
        int rc = check_sandbox_config(cfg);
        if (rc != ERYX_OK)
            return rc;
    }
    return eryx__sandbox_new(rt, cfg, out);
}

void eryx_sandbox_free(eryx_sandbox *sb)
{
    /* A bad handle here cannot be reported: ignoring it beats crashing. */
    if (sandbox_ok(sb) && !atomic_flag_test_and_set(&sb->busy))
        eryx__sandbox_free(sb);
}

int eryx_sandbox_run(eryx_sandbox *sb, const char *code, size_t len, eryx_result **out)
{
    return eryx_sandbox_run_ex(sb, code, len, NULL, out);
}

/* Checks shared by eryx_sandbox_run_ex and eryx_exec_start. */
static int check_run(eryx_sandbox *sb, const char *code, size_t len,
                     const eryx_run_options *opts, void *out, const char *fn)
{
    if (!sandbox_ok(sb)) {
        eryx__set_errmsg(NULL, "misuse: %s: not a sandbox (NULL or freed)", fn);
        return ERYX_MISUSE;
    }
    if (!out || (!code && len)) {
        eryx__set_errmsg(sb, "misuse: %s: out is NULL, or code is NULL with len > 0", fn);
        return ERYX_MISUSE;
    }
    if (opts && eryx__check_config_size(opts->size, CONFIG_MIN_SIZE(eryx_run_options, size),
                                        sizeof *opts) != ERYX_OK) {
        eryx__set_errmsg(sb, "eryx_run_options.size is %zu: fill the options with "
                             "eryx_run_options_default()", opts->size);
        return ERYX_INVALID;
    }
    if (opts && opts->stdin_len && !opts->stdin_data)
        return misuse(sb, "eryx_run_options: stdin_len set but stdin_data is NULL");
    if (opts && opts->fuel && !eryx_build_has_fuel()) {
        eryx__set_errmsg(sb, "this build does not count fuel: build its guest with "
                             "ERYX_GUEST_FUEL=1 (docs/limits.md)");
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

/* Enters sb for one call: fails if another thread is inside, the sandbox is
 * dead, or (when idle_only) an execution is in progress. */
static int enter(eryx_sandbox *sb, int idle_only)
{
    if (atomic_flag_test_and_set(&sb->busy))
        return misuse(sb, "the sandbox is in use by another thread");
    eryx__clear_errmsg(sb);
    int rc = ERYX_OK;
    if (sb->state == ERYX__SB_DEAD) {
        eryx__set_errmsg(sb, "the sandbox is dead (an earlier run trapped or exited)");
        rc = ERYX_DEAD;
    } else if (idle_only && sb->exec) {
        rc = misuse(sb, "an execution is in progress: finish it first");
    }
    if (rc != ERYX_OK)
        atomic_flag_clear(&sb->busy);
    return rc;
}

static void leave(eryx_sandbox *sb)
{
    atomic_flag_clear(&sb->busy);
}

int eryx_sandbox_run_ex(eryx_sandbox *sb, const char *code, size_t len,
                        const eryx_run_options *opts, eryx_result **out)
{
    int rc = check_run(sb, code, len, opts, out, "eryx_sandbox_run");
    if (rc != ERYX_OK)
        return rc;
    *out = NULL;
    if ((rc = enter(sb, 1)) != ERYX_OK)
        return rc;
    rc = eryx__sandbox_run(sb, code ? code : "", len, opts, out);
    leave(sb);
    return rc;
}

int eryx_exec_start(eryx_sandbox *sb, const char *code, size_t len,
                    const eryx_run_options *opts, eryx_exec **out)
{
    int rc = check_run(sb, code, len, opts, out, "eryx_exec_start");
    if (rc != ERYX_OK)
        return rc;
    *out = NULL;
    if ((rc = enter(sb, 1)) != ERYX_OK)
        return rc;
    rc = eryx__exec_start(sb, code ? code : "", len, opts, out);
    leave(sb);
    return rc;
}

/* An execution is valid while its sandbox is and still points at it. */
static int exec_ok(const eryx_exec *ex)
{
    return ex && sandbox_ok(ex->sb) && (ex->sb->exec == ex || ex->state == EX_DONE);
}

int eryx_exec_step(eryx_exec *ex)
{
    if (!exec_ok(ex))
        return misuse(NULL, "eryx_exec_step: not a live execution");
    if (atomic_flag_test_and_set(&ex->sb->busy))
        return misuse(ex->sb, "the sandbox is in use by another thread");
    int rc = eryx__exec_step(ex);
    leave(ex->sb);
    return rc;
}

int eryx_exec_finish(eryx_exec *ex, eryx_result **out)
{
    if (out)
        *out = NULL;
    if (!exec_ok(ex))
        return misuse(NULL, "eryx_exec_finish: not a live execution");
    eryx_sandbox *sb = ex->sb;
    if (atomic_flag_test_and_set(&sb->busy))
        return misuse(sb, "the sandbox is in use by another thread");
    int rc = eryx__exec_finish(ex, out);
    leave(sb);
    return rc;
}

const char *eryx_errmsg(const eryx_sandbox *sb)
{
    if (sb && !sandbox_ok(sb))
        return "not a sandbox";
    return eryx__errmsg(sb);
}

int eryx_sandbox_interrupt(eryx_sandbox *sb)
{
    /* No busy flag here: this is the call made while another thread runs. */
    if (!sandbox_ok(sb))
        return ERYX_MISUSE;
    return eryx__sandbox_interrupt(sb);
}

int eryx_sandbox_reset(eryx_sandbox *sb)
{
    if (!sandbox_ok(sb))
        return misuse(NULL, "eryx_sandbox_reset: not a sandbox");
    if (atomic_flag_test_and_set(&sb->busy))
        return misuse(sb, "the sandbox is in use by another thread");
    int rc = sb->exec ? misuse(sb, "an execution is in progress: finish it first")
                      : eryx__sandbox_reset(sb);
    leave(sb);
    return rc;
}

int eryx_sandbox_fork(eryx_sandbox *sb, eryx_sandbox **out)
{
    if (!out)
        return misuse(NULL, "eryx_sandbox_fork: out is NULL");
    *out = NULL;
    if (!sandbox_ok(sb))
        return misuse(NULL, "eryx_sandbox_fork: not a sandbox");
    int rc = enter(sb, 1);
    if (rc != ERYX_OK)
        return rc;
    rc = eryx__sandbox_fork(sb, out);
    leave(sb);
    return rc;
}

int eryx_sandbox_save(eryx_sandbox *sb, const char *path)
{
    if (!sandbox_ok(sb))
        return misuse(NULL, "eryx_sandbox_save: not a sandbox");
    if (!path)
        return misuse(sb, "eryx_sandbox_save: path is NULL");
    int rc = enter(sb, 1);
    if (rc != ERYX_OK)
        return rc;
    rc = eryx__sandbox_save(sb, path);
    leave(sb);
    return rc;
}

int eryx_sandbox_load(eryx_runtime *rt, const eryx_sandbox_config *cfg, const char *path,
                      eryx_sandbox **out)
{
    eryx__clear_errmsg(NULL);
    if (!out || !path)
        return misuse(NULL, "eryx_sandbox_load: out or path is NULL");
    *out = NULL;
    if (!runtime_ok(rt))
        return misuse(NULL, "eryx_sandbox_load: not a runtime");
    eryx_sandbox_config defaults;
    if (!cfg) {
        eryx_sandbox_config_default(&defaults);
        cfg = &defaults;
    }
    int rc = check_sandbox_config(cfg);
    if (rc != ERYX_OK)
        return rc;
    return eryx__sandbox_load(rt, cfg, path, out);
}

uint64_t eryx_sandbox_run_count(const eryx_sandbox *sb)
{
    return sandbox_ok(sb) ? sb->run_count : 0;
}

int eryx_sandbox_is_dead(const eryx_sandbox *sb)
{
    return sandbox_ok(sb) ? sb->state == ERYX__SB_DEAD : 1;
}

int eryx_sandbox_export_state(eryx_sandbox *sb, void **data, size_t *len, char **skipped)
{
    if (!data || !len || !skipped)
        return misuse(sandbox_ok(sb) ? sb : NULL, "eryx_sandbox_export_state: NULL out");
    *data = NULL;
    *len = 0;
    *skipped = NULL;
    if (!sandbox_ok(sb))
        return misuse(NULL, "eryx_sandbox_export_state: not a sandbox");
    int rc = enter(sb, 1);
    if (rc != ERYX_OK)
        return rc;
    rc = eryx__sandbox_export_state(sb, data, len, skipped);
    leave(sb);
    return rc;
}

#define MAX_STATE_BYTES (64u << 20)

int eryx_sandbox_import_state(eryx_sandbox *sb, const void *data, size_t len, char **failed)
{
    if (!failed || (!data && len))
        return misuse(sandbox_ok(sb) ? sb : NULL, "eryx_sandbox_import_state: NULL argument");
    *failed = NULL;
    if (!sandbox_ok(sb))
        return misuse(NULL, "eryx_sandbox_import_state: not a sandbox");
    if (len > MAX_STATE_BYTES) {
        eryx__set_errmsg(sb, "state of %zu bytes is over the 64 MiB limit", len);
        return ERYX_INVALID;
    }
    int rc = enter(sb, 1);
    if (rc != ERYX_OK)
        return rc;
    rc = eryx__sandbox_import_state(sb, data ? data : "", len, failed);
    leave(sb);
    return rc;
}

void eryx_free(void *p)
{
    free(p);
}

int eryx_sandbox_clear(eryx_sandbox *sb)
{
    if (!sandbox_ok(sb))
        return misuse(NULL, "eryx_sandbox_clear: not a sandbox");
    int rc = enter(sb, 1);
    if (rc != ERYX_OK)
        return rc;
    rc = eryx__sandbox_clear(sb);
    leave(sb);
    return rc;
}
