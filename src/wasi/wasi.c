/*
 * The WASI instance: creation, args and environment, stdio capture, and the
 * imports that touch neither files nor clocks (proc_*, random_get,
 * sched_yield, sock_*).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../engine/engine.h"
#include "wasi_imports.h"
#include "wasi_internal.h"

#define IMPORT(name) Z_wasi_snapshot_preview1Z_##name

/* ---- creation --------------------------------------------------------- */

/* Copies a NULL-terminated string list into one NUL-separated buffer. The
 * total must fit the guest's 32-bit sizes. */
static int strings_init(wasi_strings *s, const char *const *list)
{
    uint64_t size = 0;
    uint32_t count = 0;
    for (; list && list[count]; count++) {
        size += strlen(list[count]) + 1;
        if (size > UINT32_MAX / 2 || count >= UINT32_MAX / 8)
            return -1;
    }
    s->buf = malloc(size ? (size_t)size : 1);
    if (!s->buf)
        return -1;
    char *p = s->buf;
    for (uint32_t i = 0; i < count; i++) {
        size_t n = strlen(list[i]) + 1;
        memcpy(p, list[i], n);
        p += n;
    }
    s->size = (uint32_t)size;
    s->count = count;
    return 0;
}

static int add_stdio(eryx__wasi *w)
{
    w->nfds = 8;
    w->fds = calloc(w->nfds, sizeof *w->fds);
    if (!w->fds)
        return -1;
    /* Not a tty (no CHARACTER_DEVICE): output is captured, like a pipe. */
    w->fds[0] = (wasi_fd){.kind = WASI_FD_STDIN,
                          .rights = WASI_RIGHT_FD_READ | WASI_RIGHT_POLL_FD_READWRITE |
                                    WASI_RIGHT_FD_FILESTAT_GET |
                                    WASI_RIGHT_FD_FDSTAT_SET_FLAGS};
    uint64_t out_rights = WASI_RIGHT_FD_WRITE | WASI_RIGHT_POLL_FD_READWRITE |
                          WASI_RIGHT_FD_FILESTAT_GET | WASI_RIGHT_FD_FDSTAT_SET_FLAGS |
                          WASI_RIGHT_FD_SYNC | WASI_RIGHT_FD_DATASYNC;
    w->fds[1] = (wasi_fd){.kind = WASI_FD_STDOUT, .rights = out_rights};
    w->fds[2] = (wasi_fd){.kind = WASI_FD_STDERR, .rights = out_rights};
    return 0;
}

static int add_root_preopen(eryx__wasi *w)
{
    eryx__vfs_file *root;
    if (eryx__vfs_open(w->vfs, "/", ERYX__VFS_O_READ | ERYX__VFS_O_DIRECTORY, &root) < 0)
        return -1;
    int64_t fd = eryx__wasi_fd_add(w, root, WASI_RIGHTS_ALL, WASI_RIGHTS_ALL, 0);
    if (fd != 3)
        return -1;
    w->fds[3].preopen = 1;
    return 0;
}

eryx__wasi *eryx__wasi_new(const eryx__wasi_config *cfg)
{
    eryx__wasi *w = calloc(1, sizeof *w);
    if (!w) {
        eryx__vfs_free(cfg ? cfg->vfs : NULL);
        return NULL;
    }
    if (cfg) {
        w->vfs = cfg->vfs;
        w->max_output = cfg->max_output;
    }
    atomic_init(&w->interrupted, 0);
    if (strings_init(&w->args, cfg ? cfg->argv : NULL) < 0 ||
        strings_init(&w->env, cfg ? cfg->envp : NULL) < 0 || add_stdio(w) < 0 ||
        (w->vfs && add_root_preopen(w) < 0)) {
        eryx__wasi_free(w);
        return NULL;
    }
    return w;
}

void eryx__wasi_free(eryx__wasi *w)
{
    if (!w)
        return;
    /* Files borrow the vfs: close them before it goes. */
    eryx__wasi_fd_close_all(w);
    free(w->fds);
    eryx__vfs_free(w->vfs);
    free(w->args.buf);
    free(w->env.buf);
    free(w->in);
    free(w->out[0].data);
    free(w->out[1].data);
    free(w);
}

static int strings_copy(wasi_strings *to, const wasi_strings *from)
{
    to->buf = malloc(from->size ? from->size : 1);
    if (!to->buf)
        return -1;
    memcpy(to->buf, from->buf, from->size);
    to->size = from->size;
    to->count = from->count;
    return 0;
}

eryx__vfs *eryx__wasi_vfs(eryx__wasi *w)
{
    return w->vfs;
}

int eryx__wasi_replace_image(eryx__wasi *w, const char *guest_path, const void *image,
                             size_t size)
{
    size_t n = strlen(guest_path);
    for (uint32_t fd = 0; fd < w->nfds; fd++) {
        if (w->fds[fd].kind != WASI_FD_FILE)
            continue;
        const char *p = eryx__vfs_file_path(w->fds[fd].file);
        if (strncmp(p, guest_path, n) == 0 && (p[n] == '\0' || p[n] == '/'))
            return -EBUSY;
    }
    return eryx__vfs_replace_image(w->vfs, guest_path, image, size);
}

void eryx__wasi_set_max_output(eryx__wasi *w, uint64_t max_output)
{
    w->max_output = max_output;
}

/* Only reads w, so that several threads may clone one template at once. */
eryx__wasi *eryx__wasi_clone(const eryx__wasi *w)
{
    eryx__wasi *c = calloc(1, sizeof *c);
    eryx__vfs_file **from = NULL, **to = NULL;
    if (!c)
        return NULL;
    atomic_init(&c->interrupted, 0);
    c->max_output = w->max_output;
    c->output_stop = w->output_stop;
    if (strings_copy(&c->args, &w->args) < 0 || strings_copy(&c->env, &w->env) < 0)
        goto fail;
    if (w->in) {
        if (!(c->in = malloc(w->in_len ? w->in_len : 1)))
            goto fail;
        memcpy(c->in, w->in, w->in_len);
        c->in_len = w->in_len;
        c->in_pos = w->in_pos;
    }
    /* The fd table, entry for entry: offsets, flags, rights, preopens. Files
     * are installed once the vfs copy (which copies them) exists. */
    if (!(c->fds = calloc(w->nfds, sizeof *c->fds)))
        goto fail;
    c->nfds = w->nfds;
    from = calloc(w->nfds, sizeof *from);
    to = calloc(w->nfds, sizeof *to);
    if (!from || !to)
        goto fail;
    for (uint32_t i = 0; i < w->nfds; i++) {
        c->fds[i] = w->fds[i];
        c->fds[i].file = NULL;
        if (w->fds[i].kind == WASI_FD_FILE)
            from[i] = w->fds[i].file;
    }
    if (w->vfs) {
        if (!(c->vfs = eryx__vfs_clone(w->vfs, from, w->nfds, to)))
            goto fail;
        for (uint32_t i = 0; i < w->nfds; i++)
            c->fds[i].file = to[i];
    }
    free(from);
    free(to);
    return c;
fail:
    /* A FILE slot without its file is released as a NULL file (a no-op). */
    free(from);
    free(to);
    eryx__wasi_free(c);
    return NULL;
}

void eryx__wasi_reset_output(eryx__wasi *w)
{
    for (int i = 0; i < 2; i++) {
        free(w->out[i].data);
        w->out[i] = (wasi_capture){0};
    }
}

void eryx__wasi_set_memory(eryx__wasi *w, wasm_rt_memory_t *mem) { w->mem = mem; }

void eryx__wasi_interrupt(eryx__wasi *w) { atomic_store(&w->interrupted, 1); }

/* ---- stdio ------------------------------------------------------------ */

int eryx__wasi_set_stdin(eryx__wasi *w, const void *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    if (len)
        memcpy(copy, data, len);
    free(w->in);
    w->in = copy;
    w->in_len = len;
    w->in_pos = 0;
    return 0;
}

void eryx__wasi_set_stdin_reader(eryx__wasi *w, eryx__wasi_stdin_fn fn, void *ud)
{
    w->in_fn = fn;
    w->in_ud = ud;
}

/* The set bytes first; then the reader, called again while it has nothing
 * yet, until the run is interrupted (the time limit, or
 * eryx_sandbox_interrupt): then EIO. Not EINTR: CPython retries a read
 * that gets EINTR at once, without looking at the exception the
 * interruption left for it, so the run could only be stopped hard; with
 * EIO the read raises OSError, and the interruption's exception follows
 * at the next instruction (a handler of OSError runs one at most). */
uint16_t eryx__wasi_stdin_read(eryx__wasi *w, uint8_t *dst, size_t len, size_t *got)
{
    size_t left = w->in_len - w->in_pos;
    size_t n = len < left ? len : left;
    *got = n;
    if (n || !len || !w->in_fn) {
        if (n)
            memcpy(dst, w->in + w->in_pos, n);
        w->in_pos += n;
        return WASI_ESUCCESS;
    }
    for (;;) {
        if (atomic_load(&w->interrupted))
            return WASI_EIO;
        errno = 0;
        long r = w->in_fn(w->in_ud, dst, len);
        if (r >= 0) {
            *got = (size_t)r < len ? (size_t)r : len;
            if (r == 0)
                w->in_fn = NULL; /* the end: later reads get EOF at once */
            return WASI_ESUCCESS;
        }
        if (errno != EAGAIN && errno != EINTR)
            return WASI_EIO;
    }
}

void eryx__wasi_begin_run(eryx__wasi *w)
{
    for (int i = 0; i < 2; i++) {
        w->out[i].len = 0;
        w->out[i].truncated = 0;
        w->out[i].marker = 0;
    }
    atomic_store(&w->interrupted, 0);
}

void eryx__wasi_set_output_stop(eryx__wasi *w, int stop)
{
    w->output_stop = stop;
}

void eryx__wasi_set_draws(eryx__wasi *w, const eryx__wasi_draws *draws, void *ud)
{
    w->draws = draws;
    w->draws_ud = ud;
}

void eryx__wasi_set_sleeper(eryx__wasi *w, eryx__wasi_sleep_fn fn, void *ud)
{
    w->sleep_fn = fn;
    w->sleep_ud = ud;
}

void eryx__wasi_set_output_fn(eryx__wasi *w, eryx__wasi_output_fn fn, void *ud)
{
    w->output_fn = fn;
    w->output_ud = ud;
}

/* Appends bytes to a capture (and to the output callback); 0 or -1. */
static int capture_append(eryx__wasi *w, wasi_capture *c, int fd, const char *data, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *d = realloc(c->data, cap);
        if (!d)
            return -1;
        c->data = d;
        c->cap = cap;
    }
    memcpy(c->data + c->len, data, n);
    c->len += n;
    c->data[c->len] = '\0';
    if (w->output_fn)
        w->output_fn(w->output_ud, fd, data, n);
    return 0;
}

/* Keeps at most max_output bytes of stdout and stderr together per run.
 * Beyond, the bytes are dropped, the capture is marked truncated and ends
 * with a one-line marker; the guest's write succeeds, or fails with EFBIG
 * (-1 here) when output_stop is set. The output callback sees exactly what
 * is kept. */
int eryx__wasi_capture(eryx__wasi *w, int fd, const uint8_t *data, size_t len)
{
    wasi_capture *c = &w->out[fd - 1];
    uint64_t used = w->out[0].len + w->out[1].len - w->out[0].marker - w->out[1].marker;
    size_t room = w->max_output > used ? (size_t)(w->max_output - used) : 0;
    size_t keep = len < room ? len : room;
    if (keep && capture_append(w, c, fd, (const char *)data, keep) < 0)
        keep = 0;
    if (keep == len)
        return 0;
    if (!c->truncated) {
        char marker[96];
        int m = snprintf(marker, sizeof marker, "\n[eryx: output truncated at the %llu-byte limit]\n",
                         (unsigned long long)w->max_output);
        if (m > 0 && capture_append(w, c, fd, marker, (size_t)m) == 0)
            c->marker = (size_t)m;
        c->truncated = 1;
    }
    return w->output_stop ? -1 : 0;
}

const char *eryx__wasi_output(const eryx__wasi *w, int fd, size_t *len, int *truncated)
{
    if (fd != 1 && fd != 2) {
        *len = 0;
        if (truncated)
            *truncated = 0;
        return "";
    }
    const wasi_capture *c = &w->out[fd - 1];
    *len = c->len;
    if (truncated)
        *truncated = c->truncated;
    return c->data ? c->data : "";
}

char *eryx__wasi_take_output(eryx__wasi *w, int fd, size_t *len)
{
    *len = 0;
    if (fd != 1 && fd != 2)
        return NULL;
    wasi_capture *c = &w->out[fd - 1];
    char *d = c->data;
    if (!d && !(d = calloc(1, 1)))
        return NULL;
    *len = c->len;
    c->data = NULL;
    c->len = c->cap = 0;
    return d;
}

/* ---- args and environment --------------------------------------------- */

static uint32_t strings_get(eryx__wasi *w, const wasi_strings *s, uint32_t ptrs,
                            uint32_t buf)
{
    uint8_t *pp = gm_span(w->mem, ptrs, gm_array_len(s->count, 4));
    uint8_t *bp = gm_span(w->mem, buf, s->size);
    if (!pp || !bp)
        return WASI_EFAULT;
    memcpy(bp, s->buf, s->size);
    uint32_t off = 0;
    for (uint32_t i = 0; i < s->count; i++) {
        gm_st32(pp + 4 * (size_t)i, buf + off);
        off += (uint32_t)strlen(s->buf + off) + 1;
    }
    return WASI_ESUCCESS;
}

static uint32_t strings_sizes(eryx__wasi *w, const wasi_strings *s, uint32_t count_ptr,
                              uint32_t size_ptr)
{
    uint8_t *cp = gm_span(w->mem, count_ptr, 4);
    uint8_t *sp = gm_span(w->mem, size_ptr, 4);
    if (!cp || !sp)
        return WASI_EFAULT;
    gm_st32(cp, s->count);
    gm_st32(sp, s->size);
    return WASI_ESUCCESS;
}

uint32_t IMPORT(args_get)(eryx__wasi *w, uint32_t argv, uint32_t argv_buf)
{
    eryx__engine_import_entry();
    return strings_get(w, &w->args, argv, argv_buf);
}

uint32_t IMPORT(args_sizes_get)(eryx__wasi *w, uint32_t argc, uint32_t argv_buf_size)
{
    eryx__engine_import_entry();
    return strings_sizes(w, &w->args, argc, argv_buf_size);
}

uint32_t IMPORT(environ_get)(eryx__wasi *w, uint32_t env_ptrs, uint32_t environ_buf)
{
    eryx__engine_import_entry();
    return strings_get(w, &w->env, env_ptrs, environ_buf);
}

uint32_t IMPORT(environ_sizes_get)(eryx__wasi *w, uint32_t count, uint32_t buf_size)
{
    eryx__engine_import_entry();
    return strings_sizes(w, &w->env, count, buf_size);
}

/* ---- process, randomness, sockets ------------------------------------- */

void IMPORT(proc_exit)(eryx__wasi *w, uint32_t code)
{
    (void)w;
    eryx__engine_exit((int)code);
}

uint32_t IMPORT(proc_raise)(eryx__wasi *w, uint32_t sig) { return WASI_ENOSYS; }

uint32_t IMPORT(sched_yield)(eryx__wasi *w) { return WASI_ESUCCESS; }

int eryx__wasi_host_random(uint8_t *p, size_t len)
{
    eryx__engine_import_entry();
    size_t done = 0;
    while (done < len) {
        ssize_t r = getrandom(p + done, len - done, 0);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r > 0)
            done += (size_t)r;
    }
    return 0;
}

uint32_t IMPORT(random_get)(eryx__wasi *w, uint32_t buf, uint32_t len)
{
    eryx__engine_import_entry();
    uint8_t *p = gm_span(w->mem, buf, len);
    if (!p)
        return WASI_EFAULT;
    int rc = w->draws ? w->draws->random(w->draws_ud, p, len) : eryx__wasi_host_random(p, len);
    return rc == 0 ? WASI_ESUCCESS : WASI_EIO;
}

/* Sockets are not offered yet (src/net/ will provide them under policy). */
uint32_t IMPORT(sock_accept)(eryx__wasi *w, uint32_t fd, uint32_t flags, uint32_t ret)
{
    eryx__engine_import_entry();
    return eryx__wasi_fd_get(w, fd) ? WASI_ENOTSUP : WASI_EBADF;
}

uint32_t IMPORT(sock_recv)(eryx__wasi *w, uint32_t fd, uint32_t ri_data,
                           uint32_t ri_data_len, uint32_t ri_flags, uint32_t ro_datalen,
                           uint32_t ro_flags)
{
    eryx__engine_import_entry();
    return WASI_ENOTSUP;
}

uint32_t IMPORT(sock_send)(eryx__wasi *w, uint32_t fd, uint32_t si_data,
                           uint32_t si_data_len, uint32_t si_flags, uint32_t so_datalen)
{
    eryx__engine_import_entry();
    return WASI_ENOTSUP;
}

uint32_t IMPORT(sock_shutdown)(eryx__wasi *w, uint32_t fd, uint32_t how)
{
    eryx__engine_import_entry();
    return WASI_ENOTSUP;
}
