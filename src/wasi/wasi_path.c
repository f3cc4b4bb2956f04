/*
 * The path_* imports. A guest path is relative to a directory fd (usually
 * the "/" preopen); it is joined onto that directory's guest path and
 * normalised lexically, so ".." never climbs above "/" and never reaches
 * the host. Symlinks exist only inside host mounts, where the kernel
 * (openat2 RESOLVE_BENEATH) keeps them inside the mount.
 */
#include <errno.h>
#include <string.h>

#include "wasi_imports.h"
#include "wasi_internal.h"
#include "../engine/engine.h"

#define IMPORT(name) Z_wasi_snapshot_preview1Z_##name

uint16_t eryx__wasi_path(eryx__wasi *w, uint32_t dirfd, uint64_t need, uint32_t ptr,
                         uint32_t len, char *out, int *trailing_slash)
{
    wasi_fd *e = eryx__wasi_fd_get(w, dirfd);
    if (!e)
        return WASI_EBADF;
    if (e->kind != WASI_FD_FILE || eryx__vfs_file_type(e->file) != ERYX__VFS_T_DIR)
        return WASI_ENOTDIR;
    if (!wasi_has(e, need))
        return WASI_ENOTCAPABLE;
    const uint8_t *p = gm_span(w->mem, ptr, len);
    if (!p)
        return WASI_EFAULT;
    if (len >= ERYX__VFS_PATH_MAX)
        return WASI_ENAMETOOLONG;
    int rc = eryx__vfs_path_join(eryx__vfs_file_path(e->file), (const char *)p, len, out,
                                 ERYX__VFS_PATH_MAX, trailing_slash);
    return rc < 0 ? eryx__wasi_errno(rc) : WASI_ESUCCESS;
}

/* Rights a new fd gets: what was asked for (already checked against the
 * directory's inheriting rights), less writing on files that cannot be
 * written. */
static uint64_t granted_rights(uint64_t asked, const eryx__vfs_file *f)
{
    uint64_t r = asked & WASI_RIGHTS_ALL;
    if (eryx__vfs_file_type(f) == ERYX__VFS_T_DIR || !eryx__vfs_file_writable(f))
        r &= ~WASI_RIGHTS_WRITE;
    return r;
}

static int open_flags(uint32_t dirflags, uint32_t oflags, uint64_t rights, int trailing)
{
    int f = 0;
    if (rights & (WASI_RIGHT_FD_READ | WASI_RIGHT_FD_READDIR))
        f |= ERYX__VFS_O_READ;
    /* Directories are opened for listing: write rights asked for one (as
     * with a full-rights request) do not make the open fail. */
    if ((rights & WASI_RIGHTS_WRITE) && !(oflags & WASI_O_DIRECTORY))
        f |= ERYX__VFS_O_WRITE;
    if (oflags & WASI_O_CREAT)
        f |= ERYX__VFS_O_CREAT;
    if (oflags & WASI_O_EXCL)
        f |= ERYX__VFS_O_EXCL;
    if (oflags & WASI_O_TRUNC)
        f |= ERYX__VFS_O_TRUNC;
    if ((oflags & WASI_O_DIRECTORY) || trailing)
        f |= ERYX__VFS_O_DIRECTORY;
    if (!(dirflags & WASI_LOOKUP_SYMLINK_FOLLOW))
        f |= ERYX__VFS_O_NOFOLLOW;
    return f;
}

uint32_t IMPORT(path_open)(eryx__wasi *w, uint32_t dirfd, uint32_t dirflags, uint32_t path,
                           uint32_t path_len, uint32_t oflags, uint64_t rights,
                           uint64_t inherit, uint32_t fdflags, uint32_t fd_out)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX];
    int trailing;
    uint8_t *out = gm_span(w->mem, fd_out, 4);
    uint64_t need = WASI_RIGHT_PATH_OPEN |
                    ((oflags & WASI_O_CREAT) ? WASI_RIGHT_PATH_CREATE_FILE : 0) |
                    ((oflags & WASI_O_TRUNC) ? WASI_RIGHT_PATH_FILESTAT_SET_SIZE : 0);
    uint16_t err = eryx__wasi_path(w, dirfd, need, path, path_len, p, &trailing);
    if (err)
        return err;
    if (!out)
        return WASI_EFAULT;
    if (oflags > 0xf || fdflags > 0x1f)
        return WASI_EINVAL;
    /* Creating names a regular file: as Linux since 6.4, O_CREAT with
     * O_DIRECTORY is refused (it made a file), and with a trailing slash
     * it is EISDIR. */
    if ((oflags & WASI_O_CREAT) && (oflags & WASI_O_DIRECTORY))
        return WASI_EINVAL;
    if ((oflags & WASI_O_CREAT) && trailing)
        return WASI_EISDIR;
    /* Nothing opened through a directory gets more than it may pass on. */
    rights &= WASI_RIGHTS_ALL;
    inherit &= WASI_RIGHTS_ALL;
    if ((rights | inherit) & ~eryx__wasi_fd_get(w, dirfd)->inherit)
        return WASI_ENOTCAPABLE;
    eryx__vfs_file *f;
    int rc = eryx__vfs_open(w->vfs, p, open_flags(dirflags, oflags, rights, trailing), &f);
    if (rc < 0)
        return eryx__wasi_errno(rc);
    if ((oflags & WASI_O_CREAT) && eryx__vfs_file_type(f) == ERYX__VFS_T_DIR) {
        eryx__vfs_close(f); /* an existing directory, even read-only: as Linux */
        return WASI_EISDIR;
    }
    int64_t fd = eryx__wasi_fd_add(w, f, granted_rights(rights, f), inherit, (uint16_t)fdflags);
    if (fd < 0)
        return (uint32_t)-fd;
    gm_st32(out, (uint32_t)fd);
    return WASI_ESUCCESS;
}

/* Stat of a resolved path, honouring a trailing slash. */
static int stat_path(eryx__wasi *w, const char *p, int follow, int trailing,
                     eryx__vfs_attr *st)
{
    int rc = eryx__vfs_stat(w->vfs, p, follow || trailing, st);
    if (rc == 0 && trailing && st->type != ERYX__VFS_T_DIR)
        rc = -ENOTDIR;
    return rc;
}

uint32_t IMPORT(path_filestat_get)(eryx__wasi *w, uint32_t dirfd, uint32_t flags,
                                   uint32_t path, uint32_t path_len, uint32_t buf)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX];
    int trailing;
    uint8_t *out = gm_span(w->mem, buf, WASI_FILESTAT_SIZE);
    uint16_t err = eryx__wasi_path(w, dirfd, WASI_RIGHT_PATH_FILESTAT_GET, path, path_len, p,
                                   &trailing);
    if (err)
        return err;
    if (!out)
        return WASI_EFAULT;
    eryx__vfs_attr st;
    int rc = stat_path(w, p, flags & WASI_LOOKUP_SYMLINK_FOLLOW, trailing, &st);
    if (rc < 0)
        return eryx__wasi_errno(rc);
    eryx__wasi_put_filestat(out, &st);
    return WASI_ESUCCESS;
}

uint32_t IMPORT(path_filestat_set_times)(eryx__wasi *w, uint32_t dirfd, uint32_t flags,
                                         uint32_t path, uint32_t path_len, uint64_t atim,
                                         uint64_t mtim, uint32_t fst_flags)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX];
    uint16_t err = eryx__wasi_path(w, dirfd, WASI_RIGHT_PATH_FILESTAT_SET_TIMES, path, path_len,
                                   p, NULL);
    if (err)
        return err;
    if (fst_flags > 0xf || ((fst_flags & WASI_FST_ATIM) && (fst_flags & WASI_FST_ATIM_NOW)) ||
        ((fst_flags & WASI_FST_MTIM) && (fst_flags & WASI_FST_MTIM_NOW)))
        return WASI_EINVAL;
    return eryx__wasi_errno(eryx__vfs_utimes(w->vfs, p, flags & WASI_LOOKUP_SYMLINK_FOLLOW,
                                             atim, mtim, (int)fst_flags));
}

uint32_t IMPORT(path_create_directory)(eryx__wasi *w, uint32_t dirfd, uint32_t path,
                                       uint32_t path_len)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX];
    uint16_t err =
        eryx__wasi_path(w, dirfd, WASI_RIGHT_PATH_CREATE_DIRECTORY, path, path_len, p, NULL);
    return err ? err : eryx__wasi_errno(eryx__vfs_mkdir(w->vfs, p));
}

uint32_t IMPORT(path_remove_directory)(eryx__wasi *w, uint32_t dirfd, uint32_t path,
                                       uint32_t path_len)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX];
    uint16_t err =
        eryx__wasi_path(w, dirfd, WASI_RIGHT_PATH_REMOVE_DIRECTORY, path, path_len, p, NULL);
    return err ? err : eryx__wasi_errno(eryx__vfs_rmdir(w->vfs, p));
}

uint32_t IMPORT(path_unlink_file)(eryx__wasi *w, uint32_t dirfd, uint32_t path,
                                  uint32_t path_len)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX];
    int trailing;
    uint16_t err =
        eryx__wasi_path(w, dirfd, WASI_RIGHT_PATH_UNLINK_FILE, path, path_len, p, &trailing);
    if (err)
        return err;
    if (trailing) {
        /* "file/" names no file; "dir/" is a directory, not unlinkable. */
        eryx__vfs_attr st;
        int rc = stat_path(w, p, 1, 1, &st);
        return eryx__wasi_errno(rc < 0 ? rc : -EISDIR);
    }
    return eryx__wasi_errno(eryx__vfs_unlink(w->vfs, p));
}

uint32_t IMPORT(path_rename)(eryx__wasi *w, uint32_t fd, uint32_t old_path,
                             uint32_t old_len, uint32_t new_fd, uint32_t new_path,
                             uint32_t new_len)
{
    eryx__engine_import_entry();
    char from[ERYX__VFS_PATH_MAX], to[ERYX__VFS_PATH_MAX];
    uint16_t err =
        eryx__wasi_path(w, fd, WASI_RIGHT_PATH_RENAME_SOURCE, old_path, old_len, from, NULL);
    if (!err)
        err = eryx__wasi_path(w, new_fd, WASI_RIGHT_PATH_RENAME_TARGET, new_path, new_len, to,
                              NULL);
    return err ? err : eryx__wasi_errno(eryx__vfs_rename(w->vfs, from, to));
}

uint32_t IMPORT(path_readlink)(eryx__wasi *w, uint32_t dirfd, uint32_t path,
                               uint32_t path_len, uint32_t buf, uint32_t buf_len,
                               uint32_t bufused)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX], target[ERYX__VFS_PATH_MAX];
    uint8_t *dst = gm_span(w->mem, buf, buf_len);
    uint8_t *used = gm_span(w->mem, bufused, 4);
    uint16_t err = eryx__wasi_path(w, dirfd, WASI_RIGHT_PATH_READLINK, path, path_len, p, NULL);
    if (err)
        return err;
    if (!dst || !used)
        return WASI_EFAULT;
    size_t n = 0;
    int rc = eryx__vfs_readlink(w->vfs, p, target, sizeof target, &n);
    if (rc < 0)
        return eryx__wasi_errno(rc);
    /* Like readlink(2): the target is cut to the buffer, no NUL added. */
    if (n > buf_len)
        n = buf_len;
    memcpy(dst, target, n);
    gm_st32(used, (uint32_t)n);
    return WASI_ESUCCESS;
}

/* Hard links and symlinks are not offered: the image and memfs have no
 * links, and creating links in host mounts is not a capability we grant. */
uint32_t IMPORT(path_link)(eryx__wasi *w, uint32_t old_fd, uint32_t old_flags,
                           uint32_t old_path, uint32_t old_len, uint32_t new_fd,
                           uint32_t new_path, uint32_t new_len)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX];
    uint16_t err =
        eryx__wasi_path(w, old_fd, WASI_RIGHT_PATH_LINK_SOURCE, old_path, old_len, p, NULL);
    if (!err)
        err = eryx__wasi_path(w, new_fd, WASI_RIGHT_PATH_LINK_TARGET, new_path, new_len, p, NULL);
    return err ? err : WASI_ENOTSUP;
}

uint32_t IMPORT(path_symlink)(eryx__wasi *w, uint32_t old_path, uint32_t old_len,
                              uint32_t dirfd, uint32_t new_path, uint32_t new_len)
{
    eryx__engine_import_entry();
    char p[ERYX__VFS_PATH_MAX];
    if (!gm_span(w->mem, old_path, old_len))
        return WASI_EFAULT;
    uint16_t err = eryx__wasi_path(w, dirfd, WASI_RIGHT_PATH_SYMLINK, new_path, new_len, p, NULL);
    return err ? err : WASI_ENOTSUP;
}
