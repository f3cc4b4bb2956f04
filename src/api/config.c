/*
 * Configs of any version (config.h). Each struct is described as its list
 * of fields; a field is taken from the caller only when the caller's size
 * covers all of it, so a caller built against an older, smaller struct is
 * never over-read, and padding at the end of its struct is never taken
 * for a field added later.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "api/config.h"
#include "config.h"
#include "core/internal.h"

typedef struct field {
    size_t offset, size;
} field;

#define FIELD(type, name) {offsetof(type, name), sizeof(((type *)0)->name)}
#define N_FIELDS(a) (sizeof(a) / sizeof *(a))

/* Copies every field of src that its size covers into dst. */
static void take_fields(void *dst, const void *src, size_t src_size, const field *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].offset + f[i].size <= src_size)
            memcpy((char *)dst + f[i].offset, (const char *)src + f[i].offset, f[i].size);
}

static const field runtime_fields[] = {
    FIELD(eryx_runtime_config, flags),
    FIELD(eryx_runtime_config, site_packages),
    FIELD(eryx_runtime_config, n_site_packages),
    FIELD(eryx_runtime_config, wheels),
    FIELD(eryx_runtime_config, n_wheels),
    FIELD(eryx_runtime_config, imports),
    FIELD(eryx_runtime_config, n_imports),
    FIELD(eryx_runtime_config, setup_code),
    FIELD(eryx_runtime_config, setup_timeout_ns),
    FIELD(eryx_runtime_config, image_path),
};

static const field sandbox_fields[] = {
    FIELD(eryx_sandbox_config, env),
    FIELD(eryx_sandbox_config, mounts),
    FIELD(eryx_sandbox_config, n_mounts),
    FIELD(eryx_sandbox_config, max_memory),
    FIELD(eryx_sandbox_config, max_output),
    FIELD(eryx_sandbox_config, tmp_quota),
    FIELD(eryx_sandbox_config, on_output),
    FIELD(eryx_sandbox_config, output_user_data),
    FIELD(eryx_sandbox_config, callbacks),
    FIELD(eryx_sandbox_config, n_callbacks),
    FIELD(eryx_sandbox_config, callback_timeout_ns),
    FIELD(eryx_sandbox_config, max_callbacks),
    FIELD(eryx_sandbox_config, on_trace),
    FIELD(eryx_sandbox_config, trace_user_data),
    FIELD(eryx_sandbox_config, timeout_ns),
    FIELD(eryx_sandbox_config, interrupt_grace_ns),
    FIELD(eryx_sandbox_config, fuel),
    FIELD(eryx_sandbox_config, output_limit_stops),
    FIELD(eryx_sandbox_config, host_write_quota),
    FIELD(eryx_sandbox_config, net),
    FIELD(eryx_sandbox_config, secrets),
    FIELD(eryx_sandbox_config, n_secrets),
};

static const field mount_fields[] = {
    FIELD(eryx_mount, host_path),
    FIELD(eryx_mount, guest_path),
    FIELD(eryx_mount, writable),
};

static const field callback_fields[] = {
    FIELD(eryx_callback, name),
    FIELD(eryx_callback, description),
    FIELD(eryx_callback, schema),
    FIELD(eryx_callback, handler),
    FIELD(eryx_callback, user_data),
    FIELD(eryx_callback, flags),
};

static const field pool_fields[] = {
    FIELD(eryx_pool_config, sandbox),
    FIELD(eryx_pool_config, max_size),
    FIELD(eryx_pool_config, min_idle),
    FIELD(eryx_pool_config, idle_timeout_ns),
};

static const field run_fields[] = {
    FIELD(eryx_run_options, mode),
    FIELD(eryx_run_options, filename),
    FIELD(eryx_run_options, argv),
    FIELD(eryx_run_options, stdin_data),
    FIELD(eryx_run_options, stdin_len),
    FIELD(eryx_run_options, timeout_ns),
    FIELD(eryx_run_options, fuel),
    FIELD(eryx_run_options, stdin_read),
    FIELD(eryx_run_options, stdin_user_data),
};

static const field stats_fields[] = {
    FIELD(eryx_pool_stats, acquisitions),
    FIELD(eryx_pool_stats, creations),
    FIELD(eryx_pool_stats, waits),
    FIELD(eryx_pool_stats, evictions),
    FIELD(eryx_pool_stats, idle),
    FIELD(eryx_pool_stats, in_use),
};

/* A size field of a config: at least the size field itself, at most what
 * this library knows (a larger one comes from a newer header, whose fields
 * we would silently ignore). */
static int size_ok(size_t given, size_t known)
{
    return given >= sizeof(size_t) && given <= known;
}

/* The packages, imports and setup fields need an image to be built into;
 * an image loaded from a file brings its own. Arrays with a count need a
 * pointer. */
static int runtime_config_check(const eryx_runtime_config *c)
{
    int extras = c->n_site_packages || c->n_wheels || c->n_imports || c->setup_code;
    if ((c->n_site_packages && !c->site_packages) || (c->n_wheels && !c->wheels) ||
        (c->n_imports && !c->imports)) {
        eryx__set_errmsg(NULL, "eryx_runtime_config: a count is set but its array is NULL");
        return ERYX_INVALID;
    }
    if (extras && (c->flags & ERYX_RUNTIME_NO_IMAGE)) {
        eryx__set_errmsg(NULL, "eryx_runtime_config: packages, imports and setup code are "
                               "built into the runtime's image: they cannot be combined with "
                               "ERYX_RUNTIME_NO_IMAGE");
        return ERYX_INVALID;
    }
    if (c->image_path && (extras || (c->flags & ~ERYX_RUNTIME_IMAGE_TRUSTED) ||
                          c->setup_timeout_ns)) {
        eryx__set_errmsg(NULL, "eryx_runtime_config: image_path loads a built image: the "
                               "flags (but ERYX_RUNTIME_IMAGE_TRUSTED), packages, imports, "
                               "setup code and setup timeout must then be empty");
        return ERYX_INVALID;
    }
    if ((c->flags & ERYX_RUNTIME_IMAGE_TRUSTED) && !c->image_path) {
        eryx__set_errmsg(NULL, "eryx_runtime_config: ERYX_RUNTIME_IMAGE_TRUSTED is about "
                               "image_path, which is not set");
        return ERYX_INVALID;
    }
    unsigned known = ERYX_RUNTIME_NO_IMAGE | ERYX_RUNTIME_IMAGE_TRUSTED |
                     ERYX_RUNTIME_NO_BYTECODE;
    if (c->flags & ~known) {
        eryx__set_errmsg(NULL, "eryx_runtime_config: unknown flags 0x%x", c->flags & ~known);
        return ERYX_INVALID;
    }
    for (size_t i = 0; i < c->n_imports; i++) {
        const char *m = c->imports[i];
        int ok = m && m[0] && m[0] != '.';
        for (const char *p = m; ok && *p; p++)
            ok = *p == '.' || *p == '_' || (*p >= '0' && *p <= '9') ||
                 ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (unsigned char)*p >= 0x80;
        if (!ok || strstr(m, "..") || m[strlen(m) - 1] == '.') {
            eryx__set_errmsg(NULL, "eryx_runtime_config: imports[%zu] is not a module name: "
                                   "'%.100s'", i, m ? m : "(null)");
            return ERYX_INVALID;
        }
    }
    return ERYX_OK;
}

int eryx__runtime_config_take(const eryx_runtime_config *given, eryx_runtime_config *out)
{
    eryx_runtime_config_default(out);
    if (!given)
        return ERYX_OK;
    if (!size_ok(given->size, sizeof *out)) {
        eryx__set_errmsg(NULL, "eryx_runtime_config.size is %zu: fill the config with "
                               "eryx_runtime_config_default()", given->size);
        return ERYX_INVALID;
    }
    take_fields(out, given, given->size, runtime_fields, N_FIELDS(runtime_fields));
    return runtime_config_check(out);
}

/* Repacks n elements of stride `given`'s first size into dst (this
 * library's layout, zero-filled). -1 if the elements' sizes disagree or one
 * is larger than this library knows. */
static int take_array(void *dst, size_t dst_size, const void *src, size_t n,
                      const field *f, size_t n_fields)
{
    size_t first;
    memcpy(&first, src, sizeof first);
    size_t stride = first ? first : dst_size; /* 0: this first layout */
    if (stride < sizeof(size_t) || stride > dst_size)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *el = (const char *)src + i * stride;
        size_t size;
        memcpy(&size, el, sizeof size);
        if (size != first)
            return -1;
        char *d = (char *)dst + i * dst_size;
        memset(d, 0, dst_size);
        memcpy(d, &dst_size, sizeof dst_size);
        take_fields(d, el, stride, f, n_fields);
    }
    return 0;
}

/* One convention for limits (eryx.h, "Limits"): 0 is the default. */
static void default_limits(eryx_sandbox_config *c)
{
    eryx_sandbox_config d;
    eryx_sandbox_config_default(&d);
    if (!c->max_memory)
        c->max_memory = d.max_memory;
    if (!c->max_output)
        c->max_output = d.max_output;
    if (!c->tmp_quota)
        c->tmp_quota = d.tmp_quota;
    if (!c->callback_timeout_ns)
        c->callback_timeout_ns = d.callback_timeout_ns;
    if (!c->max_callbacks)
        c->max_callbacks = d.max_callbacks;
    if (!c->timeout_ns)
        c->timeout_ns = d.timeout_ns;
    if (!c->interrupt_grace_ns)
        c->interrupt_grace_ns = d.interrupt_grace_ns;
    if (!c->host_write_quota)
        c->host_write_quota = d.host_write_quota;
}

static int check_sandbox_config(const eryx_sandbox_config *cfg)
{
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        const eryx_mount *m = &cfg->mounts[i];
        if (!m->host_path || !m->guest_path || m->guest_path[0] != '/') {
            eryx__set_errmsg(NULL, "mount %zu: host_path and an absolute guest_path "
                                   "are required", i);
            return ERYX_INVALID;
        }
    }
    if (cfg->fuel && cfg->fuel != ERYX_NO_LIMIT && !eryx_build_has_fuel()) {
        eryx__set_errmsg(NULL, "this build does not count fuel: build its guest with "
                               "ERYX_GUEST_FUEL=1 (docs/limits.md)");
        return ERYX_INVALID;
    }
    if (cfg->n_secrets && !cfg->net) {
        eryx__set_errmsg(NULL, "secrets need a network config (eryx_sandbox_config.net): "
                               "there is nowhere to send them");
        return ERYX_INVALID;
    }
    if (cfg->max_memory < (32u << 20)) {
        eryx__set_errmsg(NULL, "max_memory %llu is below the 32 MiB the interpreter "
                               "needs to start", (unsigned long long)cfg->max_memory);
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

static int copy_arrays(const eryx_sandbox_config *given, eryx__config_copy *out)
{
    eryx_sandbox_config *c = &out->cfg;
    if (c->n_mounts) {
        if (c->n_mounts > SIZE_MAX / sizeof *out->mounts ||
            !(out->mounts = malloc(c->n_mounts * sizeof *out->mounts)))
            return ERYX_NOMEM;
        if (take_array(out->mounts, sizeof *out->mounts, given->mounts, c->n_mounts,
                       mount_fields, N_FIELDS(mount_fields)) < 0) {
            eryx__set_errmsg(NULL, "eryx_mount.size differs between the mounts, or is "
                                   "larger than this library knows");
            return ERYX_INVALID;
        }
        c->mounts = out->mounts;
    }
    if (c->n_callbacks) {
        int rc = eryx__callbacks_take(given->callbacks, c->n_callbacks, &out->callbacks);
        if (rc != ERYX_OK)
            return rc;
        c->callbacks = out->callbacks;
    }
    return ERYX_OK;
}

int eryx__callbacks_take(const eryx_callback *given, size_t n, eryx_callback **out)
{
    *out = NULL;
    if (!n)
        return ERYX_OK;
    if (n > SIZE_MAX / sizeof **out || !(*out = malloc(n * sizeof **out)))
        return ERYX_NOMEM;
    if (take_array(*out, sizeof **out, given, n, callback_fields, N_FIELDS(callback_fields)) <
        0) {
        eryx__set_errmsg(NULL, "eryx_callback.size differs between the callbacks, or is "
                               "larger than this library knows");
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

int eryx__sandbox_config_take(const eryx_sandbox_config *given, eryx__config_copy *out)
{
    memset(out, 0, sizeof *out);
    eryx_sandbox_config *c = &out->cfg;
    eryx_sandbox_config_default(c);
    if (!given)
        return ERYX_OK;
    if (!size_ok(given->size, sizeof *c)) {
        eryx__set_errmsg(NULL, "eryx_sandbox_config.size is %zu: fill the config with "
                               "eryx_sandbox_config_default()", given->size);
        return ERYX_INVALID;
    }
    take_fields(c, given, given->size, sandbox_fields, N_FIELDS(sandbox_fields));
    if ((c->n_mounts && !c->mounts) || (c->n_callbacks && !c->callbacks) ||
        (c->n_secrets && !c->secrets)) {
        eryx__set_errmsg(NULL, "misuse: eryx_sandbox_config: n_mounts, n_callbacks or "
                               "n_secrets set but its array is NULL");
        return ERYX_MISUSE;
    }
    default_limits(c);
    int rc = copy_arrays(given, out);
    if (rc == ERYX_OK)
        rc = check_sandbox_config(c);
    if (rc != ERYX_OK)
        eryx__config_copy_free(out);
    return rc;
}

void eryx__config_copy_free(eryx__config_copy *c)
{
    free(c->mounts);
    free(c->callbacks);
    c->mounts = NULL;
    c->callbacks = NULL;
}

int eryx__pool_config_take(const eryx_pool_config *given, eryx_pool_config *out)
{
    eryx_pool_config_default(out);
    if (!given)
        return ERYX_OK;
    if (!size_ok(given->size, sizeof *out)) {
        eryx__set_errmsg(NULL, "eryx_pool_config.size is %zu: fill the config with "
                               "eryx_pool_config_default()", given->size);
        return ERYX_INVALID;
    }
    take_fields(out, given, given->size, pool_fields, N_FIELDS(pool_fields));
    if (out->idle_timeout_ns == 0) { /* not set, as for every limit */
        eryx_pool_config d;
        eryx_pool_config_default(&d);
        out->idle_timeout_ns = d.idle_timeout_ns;
    }
    if (out->max_size == 0 || out->min_idle > out->max_size) {
        eryx__set_errmsg(NULL, "eryx_pool_config: max_size must be > 0 and >= min_idle");
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

int eryx__run_options_take(eryx_sandbox *sb, const eryx_run_options *given,
                           eryx_run_options *out)
{
    eryx_run_options_default(out);
    if (!given)
        return ERYX_OK;
    if (!size_ok(given->size, sizeof *out)) {
        eryx__set_errmsg(sb, "eryx_run_options.size is %zu: fill the options with "
                             "eryx_run_options_default()", given->size);
        return ERYX_INVALID;
    }
    take_fields(out, given, given->size, run_fields, N_FIELDS(run_fields));
    if (out->stdin_len && !out->stdin_data) {
        eryx__set_errmsg(sb, "misuse: eryx_run_options: stdin_len set but stdin_data is NULL");
        return ERYX_MISUSE;
    }
    if (out->fuel && out->fuel != ERYX_NO_LIMIT && !eryx_build_has_fuel()) {
        eryx__set_errmsg(sb, "this build does not count fuel: build its guest with "
                             "ERYX_GUEST_FUEL=1 (docs/limits.md)");
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

void eryx__pool_stats_give(const eryx_pool_stats *full, eryx_pool_stats *out)
{
    size_t size = out->size ? out->size : sizeof *out;
    if (size > sizeof *out)
        size = sizeof *out;
    take_fields(out, full, size, stats_fields, N_FIELDS(stats_fields));
}
