/*
 * Sandboxes: one guest instance, its WASI state and file tree.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/exec.h"
#include "core/packages.h"
#include "net/net.h"
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
    cfg->host_write_quota = ERYX__VFS_HOST_QUOTA_DEFAULT;
}

/* Mounts cfg's host directories in vfs: ERYX_OK, or ERYX_IO with the
 * message on the thread (which mount, and why in words: a bare "Invalid
 * argument" for a place already taken left the user guessing). */
static int mount_hosts(eryx__vfs *vfs, const eryx_sandbox_config *cfg)
{
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        const eryx_mount *m = &cfg->mounts[i];
        int err = eryx__vfs_mount_host(vfs, m->guest_path, m->host_path, !m->writable);
        if (err == -EEXIST)
            eryx__set_errmsg(NULL, "cannot mount %s at %s: a mount is there already (/tmp, "
                                   "the standard library at %s, or an earlier mount)",
                             m->host_path, m->guest_path, STDLIB_GUEST_DIR);
        else if (err == -EINVAL && m->host_path)
            eryx__set_errmsg(NULL, "cannot mount %s at %s: the guest path is missing or "
                                   "longer than %d bytes", m->host_path,
                             m->guest_path ? m->guest_path : "(null)", ERYX__VFS_PATH_MAX - 1);
        else if (err == -EPERM)
            eryx__set_errmsg(NULL, "cannot mount %s at %s: it is on one of the kernel's own "
                                   "file systems (/proc, /sys, ...), whose files are the host "
                                   "process and machine themselves", m->host_path,
                             m->guest_path ? m->guest_path : "(null)");
        else if (err == -ENOTDIR)
            eryx__set_errmsg(NULL, "cannot mount %s at %s: it is not a directory (a mount "
                                   "shares a directory: mount the one that holds it)",
                             m->host_path, m->guest_path);
        else if (err != 0)
            eryx__set_errmsg(NULL, "cannot mount %s at %s: %s", m->host_path,
                             m->guest_path, strerror(-err));
        if (err != 0)
            return ERYX_IO;
    }
    return ERYX_OK;
}

/* The guest's file tree: the stdlib image, a private /tmp, the embedder's
 * mounts. Returns an eryx status; the message goes to the thread. */
static int build_vfs(eryx_runtime *rt, const eryx_sandbox_config *cfg, eryx__vfs **out)
{
    eryx__vfs *vfs = eryx__vfs_new(cfg->tmp_quota);
    if (!vfs)
        return ERYX_NOMEM;
    eryx__vfs_set_host_quota(vfs, cfg->host_write_quota);
    int err = eryx__vfs_mount_image(vfs, STDLIB_GUEST_DIR, rt->stdlib, rt->stdlib_size);
    if (err == 0 && rt->packages)
        err = eryx__vfs_mount_image(vfs, ERYX__SITE_PACKAGES, rt->packages, rt->packages_size);
    if (err == 0)
        err = eryx__vfs_mount_tmp(vfs, "/tmp");
    if (err != 0) {
        eryx__vfs_free(vfs);
        eryx__set_errmsg(NULL, "cannot build the sandbox file tree: %s", strerror(-err));
        return ERYX_NOMEM;
    }
    if (mount_hosts(vfs, cfg) != ERYX_OK) {
        eryx__vfs_free(vfs);
        return ERYX_IO;
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
    eryx__wasi_set_draws(sb->wasi, &eryx__exec_draws, sb);
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

/* The secrets' placeholders join the environment (an entry of the same
 * name given in env is replaced). */
static int add_secret_env(eryx_sandbox *sb)
{
    size_t n = 0, k = eryx__net_secret_count(sb->net);
    while (sb->env_copy[n])
        n++;
    char **v = realloc(sb->env_copy, (n + k + 1) * sizeof *v);
    if (!v)
        return -1;
    sb->env_copy = v;
    for (size_t i = 0; i < k; i++) {
        const char *name = eryx__net_secret_name(sb->net, i);
        size_t len = strlen(name);
        for (size_t j = 0; j < n; j++)
            if (strncmp(v[j], name, len) == 0 && v[j][len] == '=') {
                free(v[j]);
                memmove(&v[j], &v[j + 1], (n - j) * sizeof *v);
                n--;
                break;
            }
        const char *ph = eryx__net_secret_placeholder(sb->net, i);
        char *kv = malloc(len + strlen(ph) + 2);
        if (!kv)
            return -1;
        sprintf(kv, "%s=%s", name, ph);
        v[n++] = kv;
        v[n] = NULL;
    }
    return 0;
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
    /* The network is sb->net; a fork shares its parent's (placeholders
     * included, which its environment already holds). */
    sb->cfg.net = NULL;
    sb->cfg.secrets = NULL;
    sb->cfg.n_secrets = 0;
    sb->env_copy = copy_strings(cfg->env);
    if (sb->env_copy && sb->net && add_secret_env(sb) < 0)
        return ERYX_NOMEM;
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
    sb->in.host.fuel = ERYX__FUEL_UNLIMITED;
    sb->callback_timeout_ns = cfg->callback_timeout_ns;
    sb->max_callbacks = cfg->max_callbacks;
    sb->on_trace = cfg->on_trace;
    sb->trace_user_data = cfg->trace_user_data;
    sb->timeout_ns = cfg->timeout_ns;
    eryx__irq_init(sb, cfg->interrupt_grace_ns);
    atomic_store(&sb->owner, 0);
    sb->depth = 0;
    atomic_fetch_add(&sb->rt->n_sandboxes, 1);
    if (cfg->net) {
        char err[512];
        int nrc = eryx__net_new(cfg->net, cfg->secrets, cfg->n_secrets, &sb->net, err,
                                sizeof err);
        if (nrc != ERYX_OK) {
            eryx__set_errmsg(NULL, "%s", err);
            return nrc;
        }
    }
    int rc = copy_config(sb, cfg);
    if (rc == ERYX_OK)
        rc = eryx__callbacks_set(sb, cfg->callbacks, cfg->n_callbacks);
    return rc;
}

/* Everything a user gave or left, apart from the guest's memory and
 * globals (src/core/instance.c restores those): WASI state, callbacks,
 * config copies, timers, messages. No longer counted as live. */
static void drop_settings(eryx_sandbox *sb)
{
    eryx__net_free(sb->net);
    sb->net = NULL;
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

/* What the user gave or left goes; the instance stays, parked. */
void eryx__sandbox_retire(eryx_sandbox *sb)
{
    drop_settings(sb);
    eryx__sandbox_drop_fork_base(sb);
    memset(&sb->irq, 0, sizeof sb->irq);
    memset(&sb->cfg, 0, sizeof sb->cfg);
    sb->state = ERYX__SB_PARKED;
    sb->exit_code = 0;
    sb->needs_setup = sb->reseed_only = sb->rebind_imports = 0;
    sb->in.prefault_pending = 0;
    sb->run_count = 0;
    sb->in.host.fuel = ERYX__FUEL_UNLIMITED;
    sb->errmsg[0] = '\0';
}

/* A parked sandbox takes a new owner's config; freed on failure. */
static int sandbox_reuse(eryx_sandbox *sb, const eryx_sandbox_config *cfg)
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
    sb->in.host.sb = sb;
    int rc = take_settings(sb, cfg);
    if (rc == ERYX_OK && !(sb->in.fiber = eryx__fiber_new(0))) {
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
        wasm_rt_memory_t *mem = &sb->in.inst.w2c_memory;
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

/* A sandbox being freed keeps its instance for the next one when the
 * runtime has room (instance.c, "parked instances"): its user's settings
 * go, its memory goes back to the image. */
static int park(eryx_sandbox *sb)
{
    if (eryx__instance_park_prepare(sb) != 0)
        return 0;
    eryx__sandbox_retire(sb);
    if (eryx__instance_park(sb) != 0) { /* the last place went meanwhile */
        eryx__instance_destroy(sb);
        free(sb);
    }
    return 1;
}

void eryx__sandbox_free(eryx_sandbox *sb)
{
    if (sb->exec)
        eryx__exec_finish(sb->exec, NULL);
    if (park(sb))
        return;
    eryx__instance_destroy(sb);
    drop_settings(sb);
    free(sb);
}

/* ---- sandboxes made from images ------------------------------------------ */

/* The embedder's file tree and caps on a WASI state cloned from the
 * template. The message goes to the thread. */
static int adopt_wasi(eryx_sandbox *sb, eryx__wasi *w, const eryx_sandbox_config *cfg,
                      int mount)
{
    eryx__vfs *vfs = eryx__wasi_vfs(w);
    eryx__vfs_set_tmp_quota(vfs, cfg->tmp_quota);
    eryx__vfs_set_host_quota(vfs, cfg->host_write_quota);
    eryx__wasi_set_max_output(w, cfg->max_output);
    eryx__wasi_set_output_stop(w, cfg->output_limit_stops);
    if (mount && mount_hosts(vfs, cfg) != ERYX_OK)
        return ERYX_IO;
    if (cfg->on_output)
        eryx__wasi_set_output_fn(w, cfg->on_output, cfg->output_user_data);
    eryx__wasi_set_sleeper(w, eryx__exec_sleep, sb);
    eryx__wasi_set_draws(w, &eryx__exec_draws, sb);
    sb->wasi = w;
    return ERYX_OK;
}

/* A sandbox in the state given by img + g, with the WASI state of `parent`
 * (cloned) or a new one, and the embedder's config. A parked sandbox is
 * taken when there is one (its instance, fiber and tables are reused, and
 * img is mapped over the runtime image it maps), preferably one whose
 * pages are not warm: those are better kept for new sandboxes. */
int eryx__sandbox_from_state(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                              const eryx__mem_image *img, const eryx__snapshot_globals *g,
                              const eryx_sandbox *parent, eryx_sandbox **out)
{
    eryx_sandbox *sb = eryx__instance_unpark(rt, 0);
    int reused = sb != NULL;
    int rc = reused ? sandbox_reuse(sb, cfg) : eryx__sandbox_alloc(rt, cfg, &sb);
    if (rc != ERYX_OK)
        return rc; /* both free sb on failure */
    /* A fork keeps its parent's files, mounts and callbacks; the others
     * start from the template's tree and add the config's mounts, or, in a
     * runtime without an image (and so without a template: a session being
     * loaded), from a fresh tree as a booting sandbox would. */
    if (parent)
        rc = eryx__callbacks_copy(sb, parent);
    const eryx_sandbox *src = parent ? parent : rt->template;
    if (rc == ERYX_OK && !src) {
        rc = eryx__sandbox_create_wasi(sb, cfg);
    } else if (rc == ERYX_OK) {
        eryx__wasi *w = eryx__wasi_clone(src->wasi);
        rc = w ? adopt_wasi(sb, w, cfg, parent == NULL) : ERYX_NOMEM;
        if (w && rc != ERYX_OK)
            eryx__wasi_free(w);
    }
    /* The instance calls its WASI imports through this pointer, and its
     * memory limit is the last owner's: mapping can only lower it. */
    if (rc == ERYX_OK && reused) {
        sb->in.inst.Z_wasi_snapshot_preview1_instance = sb->wasi;
        eryx__memory_set_max(&sb->in.inst.w2c_memory, eryx__limit_pages(cfg->max_memory));
    } else if (rc == ERYX_OK)
        rc = eryx__instance_instantiate_bare(sb);
    if (rc == ERYX_OK)
        rc = eryx__instance_map(sb, img, g, cfg->max_memory);
    if (rc == ERYX_OK)
        eryx__wasi_set_memory(sb->wasi, &sb->in.inst.w2c_memory);
    if (rc != ERYX_OK) {
        if (sb->errmsg[0])
            eryx__set_errmsg(NULL, "%s", sb->errmsg);
        eryx__sandbox_free(sb);
        return rc;
    }
    /* The first run reseeds random and applies the environment: the image
     * holds the template's. */
    sb->needs_setup = 1;
    *out = sb;
    return ERYX_OK;
}

/* A parked sandbox for a new owner: its config, the template's WASI state. */
static int reuse_parked(eryx_sandbox *sb, const eryx_sandbox_config *cfg)
{
    eryx_runtime *rt = sb->rt;
    int rc = sandbox_reuse(sb, cfg);   /* frees sb on failure */
    if (rc != ERYX_OK)
        return rc;
    eryx__wasi *w = eryx__wasi_clone(rt->template->wasi);
    rc = w ? adopt_wasi(sb, w, &sb->cfg, 1) : ERYX_NOMEM;
    if (rc != ERYX_OK) {
        eryx__wasi_free(w);
        if (sb->errmsg[0])
            eryx__set_errmsg(NULL, "%s", sb->errmsg);
        eryx__sandbox_free(sb);
        return rc;
    }
    /* The instance calls its WASI imports through this pointer; the
     * interrupt addresses went with the old owner's timers. */
    sb->in.inst.Z_wasi_snapshot_preview1_instance = sb->wasi;
    eryx__restore_globals(sb, &rt->globals);
    wasm_rt_memory_t *mem = &sb->in.inst.w2c_memory;
    eryx__memory_set_max(mem, eryx__limit_pages(sb->cfg.max_memory));
    eryx__wasi_set_memory(sb->wasi, mem);
    eryx__instance_set_fork_base(sb, rt->image); /* restored to it when parked */
    sb->needs_setup = 1;
    return ERYX_OK;
}

int eryx__sandbox_new_from_image(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                                 eryx_sandbox **out)
{
    eryx_sandbox *sb = eryx__instance_unpark(rt, 1);
    if (sb) {
        int warm = sb->in.pages_warm;
        int rc = reuse_parked(sb, cfg);
        if (rc == ERYX_OK && !warm)
            eryx__prefault_hot_pages(sb);
        if (rc == ERYX_OK)
            *out = sb;
        return rc;
    }
    int rc = eryx__sandbox_from_state(rt, cfg, rt->image, &rt->globals, NULL, out);
    if (rc == ERYX_OK)
        eryx__prefault_hot_pages(*out);
    return rc;
}

int eryx__sandbox_reset(eryx_sandbox *sb)
{
    eryx_runtime *rt = sb->rt;
    if (!rt->image) {
        eryx__set_errmsg(sb, "the runtime was made with ERYX_RUNTIME_NO_IMAGE: "
                             "there is no image to reset to");
        return ERYX_INVALID;
    }
    eryx__wasi *old = sb->wasi, *w = eryx__wasi_clone(rt->template->wasi);
    if (!w)
        return ERYX_NOMEM;
    /* Keep the sandbox's own mounts, caps and output handler: rebuild the
     * tree from its config. */
    int rc = adopt_wasi(sb, w, &sb->cfg, 1);
    if (rc != ERYX_OK) {
        eryx__wasi_free(w);
        return rc;
    }
    /* The instance calls its WASI imports with the pointer it was
     * instantiated with: point it at the new state before freeing the old. */
    sb->in.inst.Z_wasi_snapshot_preview1_instance = sb->wasi;
    eryx__wasi_free(old);
    eryx__net_close_all(sb->net);
    rc = eryx__instance_restore_image(sb, sb->cfg.max_memory);
    eryx__wasi_set_memory(sb->wasi, &sb->in.inst.w2c_memory);
    if (rc != ERYX_OK) {
        sb->state = ERYX__SB_DEAD;
        return rc;
    }
    sb->state = ERYX__SB_READY;
    sb->needs_setup = 1;
    sb->rebind_imports = 0; /* the image's sys.path is the runtime's */
    sb->run_count = 0;
    return ERYX_OK;
}

int eryx__sandbox_fork(eryx_sandbox *sb, eryx_sandbox **out)
{
    if (!sb->in.fork_base) {
        int err = eryx__mem_image_capture(&sb->in.inst.w2c_memory, &sb->in.fork_base);
        if (err < 0) {
            eryx__set_errmsg(sb, "cannot capture the sandbox's memory: %s", strerror(-err));
            return ERYX_NOMEM;
        }
    }
    eryx__snapshot_globals g;
    eryx__save_globals(sb, &g);
    int rc = eryx__sandbox_from_state(sb->rt, &sb->cfg, sb->in.fork_base, &g, sb, out);
    if (rc == ERYX_OK && sb->net && !((*out)->net = eryx__net_share(sb->net))) {
        eryx__sandbox_free(*out);
        *out = NULL;
        eryx__set_errmsg(NULL, "out of memory");
        rc = ERYX_NOMEM;
    }
    if (rc == ERYX_OK) {
        /* A fork keeps its parent's random state (and, if the parent never
         * ran, its pending setup)... */
        (*out)->needs_setup = sb->needs_setup;
        (*out)->reseed_only = 1; /* ...but must not share its future */
        (*out)->rebind_imports = sb->rebind_imports;
        (*out)->run_count = sb->run_count;
    } else {
        eryx__set_errmsg(sb, "%s", eryx__errmsg(NULL));
    }
    return rc;
}


