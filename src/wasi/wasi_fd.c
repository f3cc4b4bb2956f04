/*
 * The fd table and the fd_* imports: read/write (stdio and files), seek,
 * stat, readdir, preopens, renumber.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wasi_imports.h"
#include "wasi_internal.h"
#include "../engine/engine.h"

#define IMPORT(name) Z_wasi_snapshot_preview1Z_##name

/* ---- table ------------------------------------------------------------ */

wasi_fd *eryx__wasi_fd_get(eryx__wasi *w, uint32_t fd)
{
    if (fd >= w->nfds || w->fds[fd].kind == WASI_FD_FREE)
        return NULL;
    return &w->fds[fd];
}

static wasi_fd *get_file(eryx__wasi *w, uint32_t fd)
{
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    return e && e->kind == WASI_FD_FILE ? e : NULL;
}

int64_t eryx__wasi_fd_add(eryx__wasi *w, eryx__vfs_file *file, uint64_t rights,
                          uint64_t inherit, uint16_t fdflags)
{
    uint32_t fd = 0;
    while (fd < w->nfds && w->fds[fd].kind != WASI_FD_FREE)
        fd++;
    if (fd == w->nfds) {
        uint32_t n = w->nfds * 2 < WASI_MAX_FDS ? w->nfds * 2 : WASI_MAX_FDS;
        wasi_fd *t = n > w->nfds ? realloc(w->fds, n * sizeof *t) : NULL;
        if (!t) {
            eryx__vfs_close(file);
            return n > w->nfds ? -WASI_ENOMEM : -WASI_EMFILE;
        }
        memset(t + w->nfds, 0, (n - w->nfds) * sizeof *t);
        w->fds = t;
        w->nfds = n;
    }
    w->fds[fd] = (wasi_fd){.kind = WASI_FD_FILE, .file = file, .rights = rights,
                           .inherit = inherit, .fdflags = fdflags};
    return fd;
}

static void fd_release(wasi_fd *e)
{
    if (e->kind == WASI_FD_FILE)
        eryx__vfs_close(e->file);
    memset(e, 0, sizeof *e);
}

void eryx__wasi_fd_close_all(eryx__wasi *w)
{
    for (uint32_t i = 0; i < w->nfds; i++)
        fd_release(&w->fds[i]);
}

/* ---- iovecs ----------------------------------------------------------- */

typedef struct iov {
    uint8_t *p;
    uint32_t len;
} iov;

/* Copies and checks the guest's iovec array: every buffer must lie in
 * memory before any byte moves. The copy keeps later descriptors from
 * changing under us when a read lands on the iovec array itself. */
static uint16_t load_iovs(eryx__wasi *w, uint32_t iovs, uint32_t n, iov *out)
{
    if (n > WASI_MAX_IOVS)
        return WASI_EINVAL;
    const uint8_t *a = gm_span(w->mem, iovs, gm_array_len(n, WASI_IOVEC_SIZE));
    if (!a)
        return WASI_EFAULT;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ptr = gm_ld32(a + 8 * (size_t)i), len = gm_ld32(a + 8 * (size_t)i + 4);
        out[i].p = gm_span(w->mem, ptr, len);
        out[i].len = len;
        if (!out[i].p)
            return WASI_EFAULT;
    }
    return WASI_ESUCCESS;
}

/* Length of iovec i clamped so the running total stays a valid u32 result. */
static size_t clamp(const iov *v, uint64_t total)
{
    uint64_t room = UINT32_MAX - total;
    return v->len < room ? v->len : (size_t)room;
}

static uint16_t read_file(wasi_fd *e, const iov *v, uint32_t n, uint64_t off,
                          uint64_t *total)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t want = clamp(&v[i], *total), got = 0;
        int rc = eryx__vfs_pread(e->file, v[i].p, want, off, &got);
        if (rc < 0)
            return eryx__wasi_errno(rc);
        *total += got;
        off += got;
        if (got < want)
            break;
    }
    return WASI_ESUCCESS;
}

static uint16_t write_file(wasi_fd *e, const iov *v, uint32_t n, uint64_t off,
                           uint64_t *total)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t want = clamp(&v[i], *total), put = 0;
        int rc = eryx__vfs_pwrite(e->file, v[i].p, want, off, &put);
        if (rc < 0)
            return *total ? WASI_ESUCCESS : eryx__wasi_errno(rc);
        *total += put;
        off += put;
        if (put < want)
            break;
    }
    return WASI_ESUCCESS;
}

static uint16_t do_read(eryx__wasi *w, uint32_t fd, uint32_t iovs, uint32_t n,
                        const uint64_t *pos, uint32_t nread_ptr)
{
    iov v[WASI_MAX_IOVS];
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    uint8_t *out = gm_span(w->mem, nread_ptr, 4);
    if (!e)
        return WASI_EBADF;
    uint16_t err = load_iovs(w, iovs, n, v);
    if (err)
        return err;
    if (!out)
        return WASI_EFAULT;
    if (!(e->rights & WASI_RIGHT_FD_READ))
        return WASI_EBADF;
    uint64_t total = 0;
    if (e->kind == WASI_FD_STDIN) {
        if (pos)
            return WASI_ESPIPE;
        /* One read: the reader may block, so the next iovec waits for the
         * next call. */
        for (uint32_t i = 0; i < n && !err; i++) {
            size_t want = clamp(&v[i], total), got = 0;
            err = eryx__wasi_stdin_read(w, v[i].p, want, &got);
            total += got;
            if (got < want || (got && w->in_fn))
                break;
        }
    } else if (e->kind == WASI_FD_FILE) {
        err = read_file(e, v, n, pos ? *pos : e->offset, &total);
        if (!pos)
            e->offset += total;
    } else {
        return WASI_EBADF;
    }
    gm_st32(out, (uint32_t)total);
    return err;
}

static uint16_t file_write_offset(wasi_fd *e, uint64_t *off)
{
    if (!(e->fdflags & WASI_FDFLAG_APPEND)) {
        *off = e->offset;
        return 0;
    }
    eryx__vfs_attr st;
    int rc = eryx__vfs_fstat(e->file, &st);
    if (rc < 0)
        return eryx__wasi_errno(rc);
    *off = st.size;
    return 0;
}

static uint16_t do_write(eryx__wasi *w, uint32_t fd, uint32_t iovs, uint32_t n,
                         const uint64_t *pos, uint32_t nwritten_ptr)
{
    iov v[WASI_MAX_IOVS];
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    uint8_t *out = gm_span(w->mem, nwritten_ptr, 4);
    if (!e)
        return WASI_EBADF;
    uint16_t err = load_iovs(w, iovs, n, v);
    if (err)
        return err;
    if (!out)
        return WASI_EFAULT;
    if (!(e->rights & WASI_RIGHT_FD_WRITE))
        return WASI_EBADF;
    uint64_t total = 0;
    if (e->kind == WASI_FD_STDOUT || e->kind == WASI_FD_STDERR) {
        if (pos)
            return WASI_ESPIPE;
        for (uint32_t i = 0; i < n; i++) {
            size_t len = clamp(&v[i], total);
            if (eryx__wasi_capture(w, e->kind == WASI_FD_STDOUT ? 1 : 2, v[i].p, len) < 0)
                return WASI_EFBIG; /* the output limit, configured to stop */
            total += len;
        }
    } else if (e->kind == WASI_FD_FILE) {
        uint64_t off = 0;
        if (!pos && (err = file_write_offset(e, &off)) != 0)
            return err;
        err = write_file(e, v, n, pos ? *pos : off, &total);
        if (!pos)
            e->offset = off + total;
    } else {
        return WASI_EBADF;
    }
    gm_st32(out, (uint32_t)total);
    return err;
}

uint32_t IMPORT(fd_read)(eryx__wasi *w, uint32_t fd, uint32_t iovs, uint32_t n,
                         uint32_t nread)
{
    eryx__engine_import_entry();
    return do_read(w, fd, iovs, n, NULL, nread);
}

uint32_t IMPORT(fd_pread)(eryx__wasi *w, uint32_t fd, uint32_t iovs, uint32_t n,
                          uint64_t offset, uint32_t nread)
{
    eryx__engine_import_entry();
    return do_read(w, fd, iovs, n, &offset, nread);
}

uint32_t IMPORT(fd_write)(eryx__wasi *w, uint32_t fd, uint32_t iovs, uint32_t n,
                          uint32_t nwritten)
{
    eryx__engine_import_entry();
    return do_write(w, fd, iovs, n, NULL, nwritten);
}

uint32_t IMPORT(fd_pwrite)(eryx__wasi *w, uint32_t fd, uint32_t iovs, uint32_t n,
                           uint64_t offset, uint32_t nwritten)
{
    eryx__engine_import_entry();
    return do_write(w, fd, iovs, n, &offset, nwritten);
}

/* ---- positions -------------------------------------------------------- */

uint32_t IMPORT(fd_seek)(eryx__wasi *w, uint32_t fd, uint64_t offset, uint32_t whence,
                         uint32_t newoffset)
{
    eryx__engine_import_entry();
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    uint8_t *out = gm_span(w->mem, newoffset, 8);
    if (!e)
        return WASI_EBADF;
    if (!out)
        return WASI_EFAULT;
    if (e->kind != WASI_FD_FILE)
        return WASI_ESPIPE;
    if (eryx__vfs_file_type(e->file) == ERYX__VFS_T_DIR)
        return WASI_EISDIR;
    /* Asking where one stands is telling, not seeking. */
    int tell_only = whence == WASI_WHENCE_CUR && offset == 0;
    if (!wasi_has(e, WASI_RIGHT_FD_SEEK) && !(tell_only && wasi_has(e, WASI_RIGHT_FD_TELL)))
        return WASI_ENOTCAPABLE;
    int64_t delta = (int64_t)offset, base;
    if (whence == WASI_WHENCE_SET) {
        base = 0;
    } else if (whence == WASI_WHENCE_CUR) {
        base = (int64_t)e->offset;
    } else if (whence == WASI_WHENCE_END) {
        eryx__vfs_attr st;
        int rc = eryx__vfs_fstat(e->file, &st);
        if (rc < 0)
            return eryx__wasi_errno(rc);
        base = (int64_t)st.size;
    } else {
        return WASI_EINVAL;
    }
    int64_t pos;
    if (__builtin_add_overflow(base, delta, &pos) || pos < 0)
        return WASI_EINVAL;
    e->offset = (uint64_t)pos;
    gm_st64(out, e->offset);
    return WASI_ESUCCESS;
}

uint32_t IMPORT(fd_tell)(eryx__wasi *w, uint32_t fd, uint32_t ptr)
{
    eryx__engine_import_entry();
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    uint8_t *out = gm_span(w->mem, ptr, 8);
    if (!e)
        return WASI_EBADF;
    if (!out)
        return WASI_EFAULT;
    if (e->kind != WASI_FD_FILE)
        return WASI_ESPIPE;
    if (!wasi_has(e, WASI_RIGHT_FD_TELL))
        return WASI_ENOTCAPABLE;
    gm_st64(out, e->offset);
    return WASI_ESUCCESS;
}

/* ---- descriptors ------------------------------------------------------ */

uint32_t IMPORT(fd_close)(eryx__wasi *w, uint32_t fd)
{
    eryx__engine_import_entry();
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    if (!e)
        return WASI_EBADF;
    fd_release(e);
    return WASI_ESUCCESS;
}

uint32_t IMPORT(fd_renumber)(eryx__wasi *w, uint32_t from, uint32_t to)
{
    eryx__engine_import_entry();
    wasi_fd *a = eryx__wasi_fd_get(w, from), *b = eryx__wasi_fd_get(w, to);
    if (!a || !b)
        return WASI_EBADF;
    if (a != b) {
        fd_release(b);
        *b = *a;
        memset(a, 0, sizeof *a);
    }
    return WASI_ESUCCESS;
}

static uint8_t fd_filetype(const wasi_fd *e)
{
    if (e->kind != WASI_FD_FILE)
        return WASI_FILETYPE_UNKNOWN;
    return eryx__vfs_file_type(e->file);
}

uint32_t IMPORT(fd_fdstat_get)(eryx__wasi *w, uint32_t fd, uint32_t buf)
{
    eryx__engine_import_entry();
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    uint8_t *p = gm_span(w->mem, buf, WASI_FDSTAT_SIZE);
    if (!e)
        return WASI_EBADF;
    if (!p)
        return WASI_EFAULT;
    memset(p, 0, WASI_FDSTAT_SIZE);
    gm_st8(p + WASI_FDSTAT_FILETYPE, fd_filetype(e));
    gm_st16(p + WASI_FDSTAT_FLAGS, e->fdflags);
    gm_st64(p + WASI_FDSTAT_RIGHTS_BASE, e->rights);
    gm_st64(p + WASI_FDSTAT_RIGHTS_INHERIT, e->inherit);
    return WASI_ESUCCESS;
}

uint32_t IMPORT(fd_fdstat_set_flags)(eryx__wasi *w, uint32_t fd, uint32_t flags)
{
    eryx__engine_import_entry();
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    if (!e)
        return WASI_EBADF;
    /* Only APPEND changes behaviour; NONBLOCK is accepted (nothing blocks)
     * and the sync flags are meaningless for memory-backed files. */
    if (flags > 0x1f)
        return WASI_EINVAL;
    if (!wasi_has(e, WASI_RIGHT_FD_FDSTAT_SET_FLAGS))
        return WASI_ENOTCAPABLE;
    e->fdflags = (uint16_t)flags;
    return WASI_ESUCCESS;
}

uint32_t IMPORT(fd_fdstat_set_rights)(eryx__wasi *w, uint32_t fd, uint64_t base,
                                      uint64_t inherit)
{
    eryx__engine_import_entry();
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    if (!e)
        return WASI_EBADF;
    if ((base & ~e->rights) || (inherit & ~e->inherit))
        return WASI_ENOTCAPABLE;
    e->rights = base;
    e->inherit = inherit;
    return WASI_ESUCCESS;
}

void eryx__wasi_put_filestat(uint8_t *p, const eryx__vfs_attr *st)
{
    memset(p, 0, WASI_FILESTAT_SIZE);
    gm_st64(p + WASI_FILESTAT_DEV, st->dev);
    gm_st64(p + WASI_FILESTAT_INO, st->ino);
    gm_st8(p + WASI_FILESTAT_FILETYPE, st->type);
    gm_st64(p + WASI_FILESTAT_NLINK, st->nlink);
    gm_st64(p + WASI_FILESTAT_SIZE_OFF, st->size);
    gm_st64(p + WASI_FILESTAT_ATIM, st->atim);
    gm_st64(p + WASI_FILESTAT_MTIM, st->mtim);
    gm_st64(p + WASI_FILESTAT_CTIM, st->ctim);
}

uint32_t IMPORT(fd_filestat_get)(eryx__wasi *w, uint32_t fd, uint32_t buf)
{
    eryx__engine_import_entry();
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    uint8_t *p = gm_span(w->mem, buf, WASI_FILESTAT_SIZE);
    if (!e)
        return WASI_EBADF;
    if (!p)
        return WASI_EFAULT;
    if (!wasi_has(e, WASI_RIGHT_FD_FILESTAT_GET))
        return WASI_ENOTCAPABLE;
    eryx__vfs_attr st = {.type = WASI_FILETYPE_UNKNOWN};
    if (e->kind == WASI_FD_FILE) {
        int rc = eryx__vfs_fstat(e->file, &st);
        if (rc < 0)
            return eryx__wasi_errno(rc);
    }
    eryx__wasi_put_filestat(p, &st);
    return WASI_ESUCCESS;
}

uint32_t IMPORT(fd_filestat_set_size)(eryx__wasi *w, uint32_t fd, uint64_t size)
{
    eryx__engine_import_entry();
    wasi_fd *e = get_file(w, fd);
    if (!e)
        return WASI_EBADF;
    if (!(e->rights & WASI_RIGHT_FD_FILESTAT_SET_SIZE))
        return WASI_EBADF;
    return eryx__wasi_errno(eryx__vfs_ftruncate(e->file, size));
}

static int valid_fst(uint32_t flags)
{
    return flags <= 0xf && !((flags & WASI_FST_ATIM) && (flags & WASI_FST_ATIM_NOW)) &&
           !((flags & WASI_FST_MTIM) && (flags & WASI_FST_MTIM_NOW));
}

uint32_t IMPORT(fd_filestat_set_times)(eryx__wasi *w, uint32_t fd, uint64_t atim,
                                       uint64_t mtim, uint32_t flags)
{
    eryx__engine_import_entry();
    wasi_fd *e = get_file(w, fd);
    if (!e)
        return WASI_EBADF;
    if (!valid_fst(flags))
        return WASI_EINVAL;
    if (!wasi_has(e, WASI_RIGHT_FD_FILESTAT_SET_TIMES))
        return WASI_ENOTCAPABLE;
    return eryx__wasi_errno(eryx__vfs_futimes(e->file, atim, mtim, (int)flags));
}

uint32_t IMPORT(fd_advise)(eryx__wasi *w, uint32_t fd, uint64_t offset, uint64_t len,
                           uint32_t advice)
{
    eryx__engine_import_entry();
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    if (!e)
        return WASI_EBADF;
    if (advice > 5)
        return WASI_EINVAL;
    return wasi_has(e, WASI_RIGHT_FD_ADVISE) ? WASI_ESUCCESS : WASI_ENOTCAPABLE;
}

uint32_t IMPORT(fd_allocate)(eryx__wasi *w, uint32_t fd, uint64_t offset, uint64_t len)
{
    eryx__engine_import_entry();
    wasi_fd *e = get_file(w, fd);
    if (!e)
        return WASI_EBADF;
    if (!eryx__vfs_file_writable(e->file) || !wasi_has(e, WASI_RIGHT_FD_ALLOCATE))
        return WASI_EBADF;
    if (offset > INT64_MAX - len || len == 0)
        return WASI_EINVAL;
    eryx__vfs_attr st;
    int rc = eryx__vfs_fstat(e->file, &st);
    if (rc == 0 && offset + len > st.size)
        rc = eryx__vfs_ftruncate(e->file, offset + len);
    return eryx__wasi_errno(rc);
}

/* Nothing is buffered on our side: memfs is memory, host writes go straight
 * to the kernel, and the guest may not force host disk flushes. */
static uint32_t sync_fd(eryx__wasi *w, uint32_t fd, uint64_t any_of)
{
    wasi_fd *e = eryx__wasi_fd_get(w, fd);
    if (!e)
        return WASI_EBADF;
    return (e->rights & any_of) ? WASI_ESUCCESS : WASI_ENOTCAPABLE;
}

/* POSIX lets fdatasync work on any fd fsync works on (files opened for
 * reading lack the datasync right). */
uint32_t IMPORT(fd_datasync)(eryx__wasi *w, uint32_t fd)
{
    eryx__engine_import_entry();
    return sync_fd(w, fd, WASI_RIGHT_FD_DATASYNC | WASI_RIGHT_FD_SYNC);
}

uint32_t IMPORT(fd_sync)(eryx__wasi *w, uint32_t fd)
{
    eryx__engine_import_entry();
    return sync_fd(w, fd, WASI_RIGHT_FD_SYNC);
}

/* ---- preopens --------------------------------------------------------- */

uint32_t IMPORT(fd_prestat_get)(eryx__wasi *w, uint32_t fd, uint32_t buf)
{
    eryx__engine_import_entry();
    wasi_fd *e = get_file(w, fd);
    uint8_t *p = gm_span(w->mem, buf, WASI_PRESTAT_SIZE);
    if (!e || !e->preopen)
        return WASI_EBADF;
    if (!p)
        return WASI_EFAULT;
    memset(p, 0, WASI_PRESTAT_SIZE);
    gm_st32(p + WASI_PRESTAT_NAME_LEN, (uint32_t)strlen(eryx__vfs_file_path(e->file)));
    return WASI_ESUCCESS;
}

uint32_t IMPORT(fd_prestat_dir_name)(eryx__wasi *w, uint32_t fd, uint32_t path,
                                     uint32_t len)
{
    eryx__engine_import_entry();
    wasi_fd *e = get_file(w, fd);
    uint8_t *p = gm_span(w->mem, path, len);
    if (!e || !e->preopen)
        return WASI_EBADF;
    if (!p)
        return WASI_EFAULT;
    const char *name = eryx__vfs_file_path(e->file);
    size_t n = strlen(name);
    if (len < n)
        return WASI_ENAMETOOLONG;
    memcpy(p, name, n);
    return WASI_ESUCCESS;
}

/* ---- directories ------------------------------------------------------ */

/* Writes one dirent (header then name) at p, clipped to room bytes, as the
 * spec wants: a clipped last entry tells the caller to retry larger. */
static size_t put_dirent(uint8_t *p, size_t room, const eryx__vfs_dirent *d, uint64_t next)
{
    uint8_t hdr[WASI_DIRENT_SIZE] = {0};
    gm_st64(hdr + WASI_DIRENT_NEXT, next);
    gm_st64(hdr + WASI_DIRENT_INO, d->ino);
    gm_st32(hdr + WASI_DIRENT_NAMLEN, (uint32_t)d->name_len);
    gm_st8(hdr + WASI_DIRENT_TYPE, d->type);
    size_t n = room < sizeof hdr ? room : sizeof hdr;
    memcpy(p, hdr, n);
    size_t m = room - n < d->name_len ? room - n : d->name_len;
    memcpy(p + n, d->name, m);
    return n + m;
}

uint32_t IMPORT(fd_readdir)(eryx__wasi *w, uint32_t fd, uint32_t buf, uint32_t buf_len,
                            uint64_t cookie, uint32_t bufused)
{
    eryx__engine_import_entry();
    wasi_fd *e = get_file(w, fd);
    uint8_t *p = gm_span(w->mem, buf, buf_len);
    uint8_t *used = gm_span(w->mem, bufused, 4);
    if (!e)
        return WASI_EBADF;
    if (!p || !used)
        return WASI_EFAULT;
    if (eryx__vfs_file_type(e->file) != ERYX__VFS_T_DIR)
        return WASI_ENOTDIR;
    if (!wasi_has(e, WASI_RIGHT_FD_READDIR))
        return WASI_ENOTCAPABLE;
    size_t off = 0;
    for (uint64_t c = cookie; off < buf_len; c++) {
        eryx__vfs_dirent d;
        int rc = eryx__vfs_readdir(e->file, c, &d);
        if (rc < 0)
            return eryx__wasi_errno(rc);
        if (rc == 1)
            break;
        off += put_dirent(p + off, buf_len - off, &d, c + 1);
    }
    gm_st32(used, (uint32_t)off);
    return WASI_ESUCCESS;
}
