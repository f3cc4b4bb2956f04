/*
 * Host directory mounts. Every path is resolved by openat2(2) from the
 * mount's O_PATH directory with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: the
 * kernel refuses any resolution that leaves the mount, whether by "..", an
 * absolute symlink, a relative symlink climbing out, or /proc magic links.
 * Operations on a name (mkdir, unlink, rename, ...) first open its parent
 * that way and then act on the single last component, which cannot escape.
 * If openat2 is missing (old kernel, seccomp) the mount fails: we never fall
 * back to an unconfined lookup.
 *
 * Only regular files and directories can be opened: FIFOs, sockets and
 * devices inside a mount are refused so the guest cannot block the host
 * thread or reach a device.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vfs_internal.h"

static int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode)
{
    /* openat2 is strict: O_PATH accepts no other flags but O_DIRECTORY,
     * O_NOFOLLOW and O_CLOEXEC. */
    if (!(flags & O_PATH))
        flags |= O_NOCTTY;
    struct open_how how = {
        .flags = flags | O_CLOEXEC,
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    for (int tries = 0; tries < 16; tries++) {
        long fd = syscall(SYS_openat2, dirfd, path[0] ? path : ".", &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        /* EAGAIN: a concurrent rename raced the lookup; EINTR: a signal. */
        if (errno != EAGAIN && errno != EINTR)
            break;
    }
    /* EXDEV is the kernel's "would leave the mount": to the guest that is
     * simply a path it may not use. */
    return errno == EXDEV ? -EACCES : -errno;
}

int vfs_host_mount(vfs_mount *m, const char *host_dir, int read_only)
{
    int fd = open(host_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int probe = sys_openat2(fd, "", O_PATH | O_DIRECTORY, 0);
    if (probe < 0) {
        close(fd);
        return probe;
    }
    close(probe);
    m->u.host.dirfd = fd;
    m->u.host.read_only = read_only;
    return 0;
}

void vfs_host_unmount(vfs_mount *m)
{
    if (m->u.host.dirfd >= 0)
        close(m->u.host.dirfd);
}

static int open_flags(int flags)
{
    int rw = flags & ERYX__VFS_O_WRITE;
    int o = rw ? ((flags & ERYX__VFS_O_READ) ? O_RDWR : O_WRONLY) : O_RDONLY;
    if (flags & ERYX__VFS_O_CREAT)
        o |= O_CREAT;
    if (flags & ERYX__VFS_O_EXCL)
        o |= O_EXCL;
    if (flags & ERYX__VFS_O_TRUNC)
        o |= O_TRUNC;
    if (flags & ERYX__VFS_O_DIRECTORY)
        o |= O_DIRECTORY;
    if (flags & ERYX__VFS_O_NOFOLLOW)
        o |= O_NOFOLLOW;
    /* O_NONBLOCK: opening a FIFO must not block before we can refuse it. */
    return o | O_NONBLOCK;
}

int vfs_host_open(eryx__vfs_file *f, const char *rel, int flags)
{
    int writes = flags & (ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT | ERYX__VFS_O_TRUNC);
    if (writes && f->mnt->u.host.read_only) {
        eryx__vfs_attr st;
        int rc = vfs_host_stat(f->mnt, rel, 1, &st);
        if (rc == -ENOENT && !(flags & ERYX__VFS_O_CREAT))
            return rc;
        return rc == 0 && st.type == ERYX__VFS_T_DIR ? -EISDIR : -EROFS;
    }
    int fd = sys_openat2(f->mnt->u.host.dirfd, rel, (uint64_t)open_flags(flags), 0644);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        close(fd);
        return -EACCES;
    }
    f->kind = VFS_F_HOST;
    f->type = S_ISDIR(st.st_mode) ? ERYX__VFS_T_DIR : ERYX__VFS_T_REG;
    f->writable = !S_ISDIR(st.st_mode) && (flags & ERYX__VFS_O_WRITE);
    f->u.hostfd = fd;
    return 0;
}

void vfs_host_close_fd(eryx__vfs_file *f) { close(f->u.hostfd); }

int vfs_host_pread(const eryx__vfs_file *f, void *buf, size_t len, uint64_t off, size_t *n)
{
    if (off > INT64_MAX)
        return 0;
    ssize_t r;
    do
        r = pread(f->u.hostfd, buf, len, (off_t)off);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    *n = (size_t)r;
    return 0;
}

int vfs_host_pwrite(eryx__vfs_file *f, const void *buf, size_t len, uint64_t off, size_t *n)
{
    if (off > INT64_MAX)
        return -EFBIG;
    ssize_t r;
    do
        r = pwrite(f->u.hostfd, buf, len, (off_t)off);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    *n = (size_t)r;
    return 0;
}

static uint64_t ts_ns(struct timespec ts)
{
    return ts.tv_sec < 0 ? 0 : (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint8_t mode_type(mode_t mode)
{
    if (S_ISDIR(mode))
        return ERYX__VFS_T_DIR;
    if (S_ISREG(mode))
        return ERYX__VFS_T_REG;
    if (S_ISLNK(mode))
        return ERYX__VFS_T_SYMLINK;
    return ERYX__VFS_T_UNKNOWN;
}

/* The host's st_dev is not shown: the mount's own device number is. */
static void to_vfs_stat(const vfs_mount *m, const struct stat *s, eryx__vfs_attr *st)
{
    memset(st, 0, sizeof *st);
    st->dev = m->dev;
    st->ino = (uint64_t)s->st_ino;
    st->nlink = (uint64_t)s->st_nlink;
    st->size = s->st_size < 0 ? 0 : (uint64_t)s->st_size;
    st->type = mode_type(s->st_mode);
    st->atim = ts_ns(s->st_atim);
    st->mtim = ts_ns(s->st_mtim);
    st->ctim = ts_ns(s->st_ctim);
}

int vfs_host_fstat(const eryx__vfs_file *f, eryx__vfs_attr *st)
{
    struct stat s;
    if (fstat(f->u.hostfd, &s) < 0)
        return -errno;
    to_vfs_stat(f->mnt, &s, st);
    return 0;
}

int vfs_host_ftruncate(eryx__vfs_file *f, uint64_t size)
{
    if (size > INT64_MAX)
        return -EFBIG;
    return ftruncate(f->u.hostfd, (off_t)size) < 0 ? -errno : 0;
}

static void to_timespecs(uint64_t atim, uint64_t mtim, int flags, struct timespec ts[2])
{
    uint64_t v[2] = {atim, mtim};
    int set[2] = {ERYX__VFS_SET_ATIM, ERYX__VFS_SET_MTIM};
    int now[2] = {ERYX__VFS_SET_ATIM_NOW, ERYX__VFS_SET_MTIM_NOW};
    for (int i = 0; i < 2; i++) {
        ts[i].tv_sec = (time_t)(v[i] / 1000000000u);
        ts[i].tv_nsec = (long)(v[i] % 1000000000u);
        if (flags & now[i])
            ts[i].tv_nsec = UTIME_NOW;
        else if (!(flags & set[i]))
            ts[i].tv_nsec = UTIME_OMIT;
    }
}

int vfs_host_futimes(eryx__vfs_file *f, uint64_t atim, uint64_t mtim, int flags)
{
    struct timespec ts[2];
    to_timespecs(atim, mtim, flags, ts);
    return futimens(f->u.hostfd, ts) < 0 ? -errno : 0;
}

static uint8_t dirent_type(int dirfd, const struct dirent *d)
{
    switch (d->d_type) {
    case DT_DIR:
        return ERYX__VFS_T_DIR;
    case DT_REG:
        return ERYX__VFS_T_REG;
    case DT_LNK:
        return ERYX__VFS_T_SYMLINK;
    case DT_UNKNOWN: {
        struct stat s;
        if (fstatat(dirfd, d->d_name, &s, AT_SYMLINK_NOFOLLOW) == 0)
            return mode_type(s.st_mode);
        return ERYX__VFS_T_UNKNOWN;
    }
    default:
        return ERYX__VFS_T_UNKNOWN;
    }
}

int vfs_host_list(const eryx__vfs_file *f, vfs_dirlist *l)
{
    /* fdopendir takes over its fd, so it gets a fresh one; reopening "."
     * (rather than dup) gives it its own read position. */
    int fd = sys_openat2(f->u.hostfd, "", O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    errno = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = vfs_dirlist_add(l, e->d_name, strlen(e->d_name), dirent_type(fd, e),
                             (uint64_t)e->d_ino);
    }
    if (rc == 0 && errno != 0)
        rc = -errno;
    closedir(d);
    return rc;
}

/* ---- path operations -------------------------------------------------- */

int vfs_host_stat(const vfs_mount *m, const char *rel, int follow, eryx__vfs_attr *st)
{
    int fd = sys_openat2(m->u.host.dirfd, rel, O_PATH | (follow ? 0 : O_NOFOLLOW), 0);
    if (fd < 0)
        return fd;
    struct stat s;
    int rc = fstat(fd, &s) < 0 ? -errno : 0;
    close(fd);
    if (rc == 0)
        to_vfs_stat(m, &s, st);
    return rc;
}

/* Opens rel's parent directory beneath the mount; *name is the last
 * component (never empty, ".", "..": rel is normalised and not the root). */
static int open_parent(const vfs_mount *m, const char *rel, const char **name)
{
    const char *slash = strrchr(rel, '/');
    *name = slash ? slash + 1 : rel;
    if (!slash)
        return sys_openat2(m->u.host.dirfd, "", O_PATH | O_DIRECTORY, 0);
    size_t n = (size_t)(slash - rel);
    char parent[ERYX__VFS_PATH_MAX];
    memcpy(parent, rel, n);
    parent[n] = '\0';
    return sys_openat2(m->u.host.dirfd, parent, O_PATH | O_DIRECTORY, 0);
}

int vfs_host_utimes(const vfs_mount *m, const char *rel, int follow, uint64_t atim,
                    uint64_t mtim, int flags)
{
    struct timespec ts[2];
    to_timespecs(atim, mtim, flags, ts);
    int rc = 0;
    if (follow) {
        /* Following a symlink must stay beneath the mount: open the target
         * through openat2 and set times on the open file. */
        int fd = sys_openat2(m->u.host.dirfd, rel, O_RDONLY | O_NONBLOCK, 0);
        if (fd < 0)
            return fd;
        rc = futimens(fd, ts) < 0 ? -errno : 0;
        close(fd);
        return rc;
    }
    const char *name;
    int pfd = open_parent(m, rel, &name);
    if (pfd < 0)
        return pfd;
    rc = utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
    close(pfd);
    return rc;
}

int vfs_host_mkdir(const vfs_mount *m, const char *rel)
{
    const char *name;
    int pfd = open_parent(m, rel, &name);
    if (pfd < 0)
        return pfd;
    int rc = mkdirat(pfd, name, 0755) < 0 ? -errno : 0;
    close(pfd);
    return rc;
}

static int unlink_in(const vfs_mount *m, const char *rel, int flags)
{
    const char *name;
    int pfd = open_parent(m, rel, &name);
    if (pfd < 0)
        return pfd;
    int rc = unlinkat(pfd, name, flags) < 0 ? -errno : 0;
    close(pfd);
    return rc;
}

int vfs_host_rmdir(const vfs_mount *m, const char *rel)
{
    return unlink_in(m, rel, AT_REMOVEDIR);
}

int vfs_host_unlink(const vfs_mount *m, const char *rel)
{
    return unlink_in(m, rel, 0);
}

int vfs_host_rename(const vfs_mount *m, const char *from, const char *to)
{
    const char *n1, *n2;
    int p1 = open_parent(m, from, &n1);
    if (p1 < 0)
        return p1;
    int p2 = open_parent(m, to, &n2);
    if (p2 < 0) {
        close(p1);
        return p2;
    }
    int rc = renameat(p1, n1, p2, n2) < 0 ? -errno : 0;
    close(p1);
    close(p2);
    return rc;
}

int vfs_host_readlink(const vfs_mount *m, const char *rel, char *buf, size_t cap,
                      size_t *len)
{
    int fd = sys_openat2(m->u.host.dirfd, rel, O_PATH | O_NOFOLLOW, 0);
    if (fd < 0)
        return fd;
    ssize_t r = readlinkat(fd, "", buf, cap);
    int rc = r < 0 ? -errno : 0;
    close(fd);
    if (rc == 0)
        *len = (size_t)r;
    /* readlinkat on a non-link O_PATH fd gives ENOENT; POSIX says EINVAL. */
    if (rc == -ENOENT)
        rc = -EINVAL;
    return rc;
}
