/*
 * Sandboxes: one guest instance, its WASI state and file tree.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/exec.h"
#include "engine/engine.h"
#include "vfs/vfs.h"

#define STDLIB_GUEST_DIR "/usr/lib/python3.13"

void eryx_sandbox_config_default(eryx_sandbox_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    cfg->max_memory = ERYX_DEFAULT_MAX_MEMORY;
    cfg->max_output = ERYX_DEFAULT_MAX_OUTPUT;
    cfg->tmp_quota = ERYX_DEFAULT_TMP_QUOTA;
    cfg->callback_timeout_ns = ERYX_DEFAULT_CALLBACK_TIMEOUT_NS;
    cfg->max_callbacks = ERYX_DEFAULT_MAX_CALLBACKS;
    cfg->timeout_ns = ERYX_DEFAULT_TIMEOUT_NS;
    cfg->interrupt_grace_ns = ERYX_DEFAULT_INTERRUPT_GRACE_NS;
}

/* The guest's file tree: the stdlib image, a private /tmp, the embedder's
 * mounts. Returns an eryx status; the message goes to the thread. */
static int build_vfs(eryx_runtime *rt, const eryx_sandbox_config *cfg, eryx__vfs **out)
{
    eryx__vfs *vfs = eryx__vfs_new(cfg->tmp_quota);
    if (!vfs)
        return ERYX_NOMEM;
    int err = eryx__vfs_mount_image(vfs, STDLIB_GUEST_DIR, rt->stdlib, rt->stdlib_size);
    if (err == 0)
        err = eryx__vfs_mount_tmp(vfs, "/tmp");
    if (err != 0) {
        eryx__vfs_free(vfs);
        eryx__set_errmsg(NULL, "cannot build the sandbox file tree: %s", strerror(-err));
        return ERYX_NOMEM;
    }
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        const eryx_mount *m = &cfg->mounts[i];
        err = eryx__vfs_mount_host(vfs, m->guest_path, m->host_path, !m->writable);
        if (err != 0) {
            eryx__set_errmsg(NULL, "cannot mount %s at %s: %s", m->host_path,
                             m->guest_path, strerror(-err));
            eryx__vfs_free(vfs);
            return ERYX_IO;
        }
    }
    *out = vfs;
    return ERYX_OK;
}

int eryx__sandbox_create_wasi(eryx_sandbox *sb, const eryx_sandbox_config *cfg)
{
    eryx__vfs *vfs;
    int rc = build_vfs(sb->rt, cfg, &vfs);
    if (rc != ERYX_OK)
        return rc;
    static const char *const no_args[] = {"python3", NULL};
    eryx__wasi_config wc = {
        .argv = no_args,
        .envp = cfg->env,
        .vfs = vfs,
        .max_output = cfg->max_output,
    };
    sb->wasi = eryx__wasi_new(&wc);
    if (!sb->wasi)
        return ERYX_NOMEM;
    if (cfg->on_output)
        eryx__wasi_set_output_fn(sb->wasi, cfg->on_output, cfg->output_user_data);
    eryx__wasi_set_output_stop(sb->wasi, cfg->output_limit_stops);
    eryx__wasi_set_sleeper(sb->wasi, eryx__exec_sleep, sb);
    return ERYX_OK;
}

static char **copy_strings(const char *const *src)
{
    size_t n = 0;
    while (src && src[n])
        n++;
    char **dst = calloc(n + 1, sizeof *dst);
    for (size_t i = 0; dst && i < n; i++) {
        if (!(dst[i] = strdup(src[i]))) {
            for (size_t j = 0; j < i; j++)
                free(dst[j]);
            free(dst);
            return NULL;
        }
    }
    return dst;
}

static void free_strings(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Keeps the embedder's config for resets and forks: scalars as they are,
 * mounts and environment copied, callbacks held apart (sb->callbacks). */
static int copy_config(eryx_sandbox *sb, const eryx_sandbox_config *cfg)
{
    sb->cfg = *cfg;
    sb->cfg.callbacks = NULL;
    sb->cfg.n_callbacks = 0;
    sb->cfg.mounts = NULL;
    sb->cfg.n_mounts = 0;
    sb->cfg.env = NULL;
    sb->env_copy = copy_strings(cfg->env);
    sb->mounts_copy = cfg->n_mounts ? calloc(cfg->n_mounts, sizeof *sb->mounts_copy) : NULL;
    if (!sb->env_copy || (cfg->n_mounts && !sb->mounts_copy))
        return ERYX_NOMEM;
    sb->cfg.env = (const char *const *)sb->env_copy;
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        eryx_mount *m = &sb->mounts_copy[i];
        m->writable = cfg->mounts[i].writable;
        m->host_path = strdup(cfg->mounts[i].host_path);
        m->guest_path = strdup(cfg->mounts[i].guest_path);
        sb->cfg.n_mounts = i + 1;
        if (!m->host_path || !m->guest_path)
            return ERYX_NOMEM;
    }
    sb->cfg.mounts = sb->mounts_copy;
    return ERYX_OK;
}

static void free_config(eryx_sandbox *sb)
{
    for (size_t i = 0; i < sb->cfg.n_mounts; i++) {
        free((char *)sb->mounts_copy[i].host_path);
        free((char *)sb->mounts_copy[i].guest_path);
    }
    free(sb->mounts_copy);
    free_strings(sb->env_copy);
}

/* What a sandbox takes from its config, on creation and on reuse
 * (eryx__sandbox_reuse): counts it as live. */
static int take_settings(eryx_sandbox *sb, const eryx_sandbox_config *cfg)
{
    sb->state = ERYX__SB_READY;
    sb->host.fuel = ERYX__FUEL_UNLIMITED;
    sb->callback_timeout_ns = cfg->callback_timeout_ns;
    sb->max_callbacks = cfg->max_callbacks;
    sb->on_trace = cfg->on_trace;
    sb->trace_user_data = cfg->trace_user_data;
    sb->timeout_ns = cfg->timeout_ns;
    eryx__irq_init(sb, cfg->interrupt_grace_ns);
    atomic_flag_clear(&sb->busy);
    atomic_fetch_add(&sb->rt->n_sandboxes, 1);
    int rc = copy_config(sb, cfg);
    if (rc == ERYX_OK)
        rc = eryx__callbacks_init(sb, cfg->callbacks, cfg->n_callbacks);
    return rc;
}

/* Everything a user gave or left, apart from the guest's memory and
 * globals (src/core/instance.c restores those): WASI state, callbacks,
 * config copies, timers, messages. No longer counted as live. */
static void drop_settings(eryx_sandbox *sb)
{
    eryx__wasi_free(sb->wasi);
    sb->wasi = NULL;
    eryx__irq_destroy(sb);
    eryx__callbacks_free(sb->callbacks, sb->n_callbacks);
    sb->callbacks = NULL;
    sb->n_callbacks = 0;
    free(sb->callbacks_json);
    sb->callbacks_json = NULL;
    free_config(sb);
    sb->mounts_copy = NULL;
    sb->env_copy = NULL;
    atomic_fetch_sub(&sb->rt->n_sandboxes, 1);
}

void eryx__sandbox_retire(eryx_sandbox *sb)
{
    drop_settings(sb);
    eryx__sandbox_drop_fork_base(sb);
    memset(&sb->irq, 0, sizeof sb->irq);
    memset(&sb->cfg, 0, sizeof sb->cfg);
    sb->state = ERYX__SB_PARKED;
    sb->exit_code = 0;
    sb->needs_setup = sb->reseed_only = 0;
    sb->prefault_pending = 0;
    sb->run_count = 0;
    sb->host.fuel = ERYX__FUEL_UNLIMITED;
    sb->errmsg[0] = '\0';
}

int eryx__sandbox_reuse(eryx_sandbox *sb, const eryx_sandbox_config *cfg)
{
    int rc = take_settings(sb, cfg);
    if (rc != ERYX_OK)
        eryx__sandbox_free(sb);
    return rc;
}

/* A sandbox with its settings, callbacks and fiber, but no guest and no
 * WASI state yet. */
int eryx__sandbox_alloc(eryx_runtime *rt, const eryx_sandbox_config *cfg, eryx_sandbox **out)
{
    eryx_sandbox_config defaults;
    if (!cfg) {
        eryx_sandbox_config_default(&defaults);
        cfg = &defaults;
    }
    eryx_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb)
        return ERYX_NOMEM;
    sb->rt = rt;
    sb->host.sb = sb;
    int rc = take_settings(sb, cfg);
    if (rc == ERYX_OK && !(sb->fiber = eryx__fiber_new(0))) {
        eryx__set_errmsg(NULL, "cannot map a stack for the sandbox");
        rc = ERYX_NOMEM;
    }
    if (rc != ERYX_OK) {
        eryx__sandbox_free(sb);
        return rc;
    }
    *out = sb;
    return ERYX_OK;
}

/* A sandbox with an instantiated guest whose interpreter is not started. */
int eryx__sandbox_new_bare(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                           eryx_sandbox **out)
{
    eryx_sandbox *sb;
    int rc = eryx__sandbox_alloc(rt, cfg, &sb);
    if (rc != ERYX_OK)
        return rc;
    rc = eryx__sandbox_create_wasi(sb, &sb->cfg);
    if (rc == ERYX_OK)
        rc = eryx__guest_instantiate(sb);
    if (rc == ERYX_OK) {
        wasm_rt_memory_t *mem = &sb->inst.w2c_memory;
        eryx__wasi_set_memory(sb->wasi, mem);
        eryx__memory_set_limit(mem, eryx__limit_pages(sb->cfg.max_memory));
    }
    if (rc != ERYX_OK) {
        if (sb->errmsg[0])
            eryx__set_errmsg(NULL, "%s", sb->errmsg);
        eryx__sandbox_free(sb);
        return rc;
    }
    *out = sb;
    return ERYX_OK;
}

/* A sandbox that boots CPython itself: the runtime's template (and every
 * sandbox of a runtime without an image). */
static int sandbox_boot(eryx_runtime *rt, const eryx_sandbox_config *cfg, eryx_sandbox **out)
{
    eryx_sandbox *sb;
    int rc = eryx__sandbox_new_bare(rt, cfg, &sb);
    if (rc != ERYX_OK)
        return rc;
    eryx__wasi_begin_run(sb->wasi);
    rc = eryx__guest_start(sb);
    if (rc == ERYX_OK)
        rc = eryx__irq_fetch_addresses(sb);
    if (rc != ERYX_OK) {
        /* Start-up problems print to the guest's stderr: pass them on. */
        size_t len;
        int truncated;
        const char *err = eryx__wasi_output(sb->wasi, 2, &len, &truncated);
        eryx__set_errmsg(NULL, "%s%s%.*s", sb->errmsg, len ? ": " : "",
                         (int)(len > 300 ? 300 : len), err ? err : "");
        eryx__sandbox_free(sb);
        return rc;
    }
    *out = sb;
    return ERYX_OK;
}

int eryx__sandbox_new(eryx_runtime *rt, const eryx_sandbox_config *cfg, eryx_sandbox **out)
{
    if (rt->image) {
        eryx_sandbox_config defaults;
        if (!cfg) {
            eryx_sandbox_config_default(&defaults);
            cfg = &defaults;
        }
        return eryx__sandbox_new_from_image(rt, cfg, out);
    }
    return sandbox_boot(rt, cfg, out);
}

void eryx__sandbox_free(eryx_sandbox *sb)
{
    if (sb->exec)
        eryx__exec_finish(sb->exec, NULL);
    int parked = sb->state == ERYX__SB_PARKED;
    if (!parked && eryx__sandbox_park(sb))
        return;
    eryx__sandbox_drop_fork_base(sb);
    if (sb->instantiated)
        Z_python_free(&sb->inst);
    eryx__fiber_free(sb->fiber);
    if (!parked)
        drop_settings(sb);
    free(sb);
}
