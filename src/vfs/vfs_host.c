/*
 * Host directory mounts. Every path is resolved by openat2(2) from the
 * mount's O_PATH directory with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
 * RESOLVE_NO_XDEV: the kernel refuses any resolution that leaves the mount,
 * whether by "..", an absolute symlink, a relative symlink climbing out,
 * /proc magic links, or a mount point inside the directory (another file
 * system the embedder did not name). Operations on a name (mkdir, unlink,
 * rename, ...) first open its parent that way and then act on the single
 * last component, which cannot escape. If openat2 is missing (old kernel,
 * seccomp) the mount fails: we never fall back to an unconfined lookup.
 *
 * Only regular files and directories can be opened (or have their times
 * set through a symlink): a path is first opened O_PATH (which opens nothing: no FIFO wait, no
 * device side effect), its type checked on that descriptor, and only then
 * is the very same inode opened for I/O through /proc/self/fd. FIFOs,
 * sockets and devices are refused before anything touches them.
 *
 * Writable mounts have a byte quota per vfs (eryx__vfs_set_host_quota):
 * what the guest makes files grow by, plus HOST_ENTRY_COST per file or
 * directory it creates; shrinking and removing give it back (never below
 * zero, so deleting the host's own files earns nothing). A file's bytes are
 * given back when they leave the disk: removing the last name of a file
 * the sandbox still has open frees nothing (only the entry), so its bytes
 * are given back as it shrinks or when its last descriptor closes. Giving
 * them back at the unlink let a guest unlink, truncate the still-open file
 * and be paid twice, keeping any amount on disk past the quota.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
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

/* 1 if the directory is on one of the kernel's own file systems. Their
 * regular files are the host process itself: /proc/self/environ held a
 * secret's value the guest sees only as its placeholder, /proc/self/mem
 * the process's memory (writable, on a writable mount); /sys and the rest
 * reach the machine. The checks above hold (no magic link is followed) and
 * do not help: these are plain files. */
static int on_kernel_fs(int dirfd)
{
    static const unsigned long kinds[] = {
        PROC_SUPER_MAGIC, SYSFS_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC, SECURITYFS_MAGIC,
        BPF_FS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEVPTS_SUPER_MAGIC,
        EFIVARFS_MAGIC, PSTOREFS_MAGIC, BINFMTFS_MAGIC, SELINUX_MAGIC, SMACK_MAGIC,
        0x62656570 /* configfs */, 0x65735543 /* fusectl */, 0x19800202 /* mqueue */,
        0x6e667364 /* nfsd */, 0x67596969 /* rpc_pipefs */,
    };
    struct statfs st;
    if (fstatfs(dirfd, &st) != 0)
        return 0; /* the probe below will say what is wrong */
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if ((unsigned long)st.f_type == kinds[i])
            return 1;
    return 0;
}

/* -EPERM is the kernel file system's alone (the caller's message says
 * so): a seccomp filter or an LSM that refuses openat2 with EPERM says
 * "permission denied". */
int vfs_host_mount(vfs_mount *m, const char *host_dir, int read_only)
{
    int fd = open(host_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == EPERM ? -EACCES : -errno;
    if (on_kernel_fs(fd)) {
        close(fd);
        return -EPERM;
    }
    int probe = sys_openat2(fd, "", O_PATH | O_DIRECTORY, 0);
    if (probe < 0) {
        close(fd);
        return probe == -EPERM ? -EACCES : probe;
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

/* Quota charged for each file or directory the guest creates: about what
 * an inode and a directory block cost the host's disk. */
#define HOST_ENTRY_COST 4096u

static int host_charge(eryx__vfs *vfs, uint64_t bytes)
{
    if (vfs->host_used > vfs->host_quota || bytes > vfs->host_quota - vfs->host_used)
        return -EDQUOT;
    vfs->host_used += bytes;
    return 0;
}

static void host_release(eryx__vfs *vfs, uint64_t bytes)
{
    vfs->host_used = bytes > vfs->host_used ? 0 : vfs->host_used - bytes;
}

/* Flags for reopening a checked inode: the access mode and O_TRUNC. */
static int io_flags(int flags)
{
    int rw = flags & ERYX__VFS_O_WRITE;
    int o = rw ? ((flags & ERYX__VFS_O_READ) ? O_RDWR : O_WRONLY) : O_RDONLY;
    if (flags & ERYX__VFS_O_TRUNC)
        o |= O_TRUNC;
    /* Regular files and directories never block; this is for the fallback
     * below, should the inode have been swapped for a FIFO meanwhile. */
    return o | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
}

/* Opens rel O_PATH (nothing is opened for I/O) and stats it. */
static int open_path(const vfs_mount *m, const char *rel, int flags, struct stat *st)
{
    uint64_t o = O_PATH;
    if (flags & ERYX__VFS_O_NOFOLLOW)
        o |= O_NOFOLLOW;
    if (flags & ERYX__VFS_O_DIRECTORY)
        o |= O_DIRECTORY;
    int fd = sys_openat2(m->u.host.dirfd, rel, o, 0);
    if (fd >= 0 && fstat(fd, st) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Why a checked inode may not be opened, or 0 if it may. */
static int refuse_type(const struct stat *st)
{
    if (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode))
        return 0;
    /* An O_PATH|O_NOFOLLOW open lands on the link itself. */
    return S_ISLNK(st->st_mode) ? -ELOOP : -EACCES;
}

/* Opens the inode behind the O_PATH descriptor pfd (stat st) for I/O.
 * /proc/self/fd reaches exactly that inode; without /proc, rel is resolved
 * again and must lead to the same inode. */
static int reopen(const vfs_mount *m, const char *rel, int pfd, const struct stat *st, int o)
{
    char proc[40];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
    int fd = open(proc, o);
    if (fd >= 0 || (errno != ENOENT && errno != ENOTDIR))
        return fd >= 0 ? fd : -errno;
    fd = sys_openat2(m->u.host.dirfd, rel, (uint64_t)o, 0);
    struct stat now;
    if (fd >= 0 && (fstat(fd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino)) {
        close(fd);
        return -EAGAIN;     /* replaced while we looked: the guest may retry */
    }
    return fd;
}

/* Creates rel as a new regular file (O_EXCL: never opens what is there),
 * charging the quota. -EEXIST if a name appeared meanwhile. */
static int create_file(eryx__vfs *vfs, const vfs_mount *m, const char *rel, int flags)
{
    int rc = host_charge(vfs, HOST_ENTRY_COST);
    if (rc < 0)
        return rc;
    int o = io_flags(flags) | O_CREAT | O_EXCL;
    int fd = sys_openat2(m->u.host.dirfd, rel, (uint64_t)o, 0644);
    if (fd < 0)
        host_release(vfs, HOST_ENTRY_COST);
    return fd;
}

static int (*_Atomic write_guard)(uint64_t dev, uint64_t ino);

void eryx__vfs_set_write_guard(int (*refused)(uint64_t dev, uint64_t ino))
{
    atomic_store(&write_guard, refused);
}

/* -ETXTBSY if the host inode is one the guest may not write (a runtime
 * image the embedder loaded from a file in a writable mount: a write would
 * reach other sandboxes' memories), as Linux refuses writes to a running
 * program. */
static int refuse_guarded(uint64_t dev, uint64_t ino)
{
    int (*refused)(uint64_t, uint64_t) = atomic_load(&write_guard);
    return refused && refused(dev, ino) ? -ETXTBSY : 0;
}

/* Opens rel for I/O: O_PATH first, type check, then reopen. Returns the fd
 * with *st describing it. */
static int open_checked(eryx__vfs *vfs, const vfs_mount *m, const char *rel, int flags,
                        struct stat *st)
{
    for (int tries = 0; tries < 8; tries++) {
        int pfd = open_path(m, rel, flags, st);
        if (pfd == -ENOENT && (flags & ERYX__VFS_O_CREAT)) {
            int fd = create_file(vfs, m, rel, flags);
            if (fd == -EEXIST)
                continue;   /* created by someone else since: look again */
            if (fd >= 0 && fstat(fd, st) < 0) {
                close(fd);
                return -EIO;
            }
            return fd;
        }
        if (pfd < 0)
            return pfd;
        int rc = (flags & ERYX__VFS_O_CREAT) && (flags & ERYX__VFS_O_EXCL) ? -EEXIST
                                                                             : refuse_type(st);
        if (rc == 0 && S_ISDIR(st->st_mode) && (flags & (ERYX__VFS_O_WRITE | ERYX__VFS_O_TRUNC)))
            rc = -EISDIR;
        if (rc == 0 && (flags & (ERYX__VFS_O_WRITE | ERYX__VFS_O_TRUNC)))
            rc = refuse_guarded((uint64_t)st->st_dev, (uint64_t)st->st_ino);
        int fd = rc < 0 ? rc : reopen(m, rel, pfd, st, io_flags(flags));
        close(pfd);
        if (fd >= 0 && (flags & ERYX__VFS_O_TRUNC)) {
            host_release(vfs, st->st_size > 0 ? (uint64_t)st->st_size : 0);
            st->st_size = 0;
        }
        return fd;
    }
    /* The name keeps existing for O_EXCL and missing for O_PATH: a dangling
     * symlink, which creation does not follow. */
    return -EEXIST;
}

/* ---- open regular files, by inode -------------------------------------
 *
 * Every open host regular file is on its vfs's list (read-only mounts'
 * too: another mount may name the same directory writably). A linear
 * search is enough: a sandbox has at most WASI_MAX_FDS files open. */

static void track(eryx__vfs_file *f, uint64_t dev, uint64_t ino)
{
    eryx__vfs *vfs = f->vfs;
    f->host_dev = dev;
    f->host_ino = ino;
    f->host_prev = NULL;
    f->host_next = vfs->host_files;
    if (vfs->host_files)
        vfs->host_files->host_prev = f;
    vfs->host_files = f;
    f->host_tracked = 1;
}

static void untrack(eryx__vfs_file *f)
{
    if (f->host_prev)
        f->host_prev->host_next = f->host_next;
    else
        f->vfs->host_files = f->host_next;
    if (f->host_next)
        f->host_next->host_prev = f->host_prev;
    f->host_tracked = 0;
}

/* 1 if the sandbox has the host inode (dev, ino) open. */
static int is_open(const eryx__vfs *vfs, uint64_t dev, uint64_t ino)
{
    for (const eryx__vfs_file *f = vfs->host_files; f; f = f->host_next)
        if (f->host_dev == dev && f->host_ino == ino)
            return 1;
    return 0;
}

void vfs_host_track_copy(eryx__vfs_file *to, const eryx__vfs_file *from)
{
    if (from->host_tracked)
        track(to, from->host_dev, from->host_ino);
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
    struct stat st;
    int fd = open_checked(f->vfs, f->mnt, rel, flags, &st);
    if (fd < 0)
        return fd;
    f->kind = VFS_F_HOST;
    f->type = S_ISDIR(st.st_mode) ? ERYX__VFS_T_DIR : ERYX__VFS_T_REG;
    f->writable = !S_ISDIR(st.st_mode) && (flags & ERYX__VFS_O_WRITE);
    f->u.hostfd = fd;
    if (S_ISREG(st.st_mode))
        track(f, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    return 0;
}

/* Closing the last descriptor of a file with no name left frees its
 * blocks: what it still holds goes back to the quota (see the top). */
void vfs_host_close_fd(eryx__vfs_file *f)
{
    if (f->host_tracked) {
        untrack(f);
        struct stat st;
        if (fstat(f->u.hostfd, &st) == 0 && st.st_nlink == 0 && st.st_size > 0 &&
            !is_open(f->vfs, (uint64_t)st.st_dev, (uint64_t)st.st_ino))
            host_release(f->vfs, (uint64_t)st.st_size);
    }
    close(f->u.hostfd);
}

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

/* Current size of an open host file. */
static int host_size(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
    return 0;
}

/* Writes are charged by how much they make the file grow: the growth is
 * charged before and what did not happen given back after. */
int vfs_host_pwrite(eryx__vfs_file *f, const void *buf, size_t len, uint64_t off, size_t *n)
{
    if (off > INT64_MAX || len > INT64_MAX - off)
        return -EFBIG;
    uint64_t size = 0;
    int rc = refuse_guarded(f->host_dev, f->host_ino); /* mapped since the open */
    if (rc == 0)
        rc = host_size(f->u.hostfd, &size);
    uint64_t grow = off + len > size ? off + len - size : 0;
    if (rc < 0 || (rc = host_charge(f->vfs, grow)) < 0)
        return rc;
    ssize_t r;
    do
        r = pwrite(f->u.hostfd, buf, len, (off_t)off);
    while (r < 0 && errno == EINTR);
    rc = r < 0 ? -errno : 0;
    uint64_t done = r < 0 ? 0 : (uint64_t)r;
    uint64_t grew = off + done > size ? off + done - size : 0;
    host_release(f->vfs, grow - grew);
    if (rc == 0)
        *n = (size_t)done;
    return rc;
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
    uint64_t old = 0;
    int rc = refuse_guarded(f->host_dev, f->host_ino); /* mapped since the open */
    if (rc == 0)
        rc = host_size(f->u.hostfd, &old);
    if (rc < 0 || (size > old && (rc = host_charge(f->vfs, size - old)) < 0))
        return rc;
    if (ftruncate(f->u.hostfd, (off_t)size) < 0) {
        rc = -errno;
        if (size > old)
            host_release(f->vfs, size - old);
        return rc;
    }
    if (size < old)
        host_release(f->vfs, old - size);
    return 0;
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
        /* Following a symlink must stay beneath the mount: resolve the
         * target through openat2 (O_PATH: nothing is opened), check its
         * type, and set the times of that inode through /proc/self/fd. */
        struct stat st;
        int pfd = open_path(m, rel, 0, &st);
        if (pfd < 0)
            return pfd;
        rc = refuse_type(&st);
        if (rc == 0) {
            char proc[40];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
            rc = utimensat(AT_FDCWD, proc, ts, 0) < 0 ? -errno : 0;
        }
        if (rc == -ENOENT) {
            /* No /proc: open the checked inode (never a FIFO or device). */
            int fd = reopen(m, rel, pfd, &st, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
            rc = fd < 0 ? fd : futimens(fd, ts) < 0 ? -errno : 0;
            if (fd >= 0)
                close(fd);
        }
        close(pfd);
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

int vfs_host_mkdir(eryx__vfs *vfs, const vfs_mount *m, const char *rel)
{
    const char *name;
    int rc = host_charge(vfs, HOST_ENTRY_COST);
    if (rc < 0)
        return rc;
    int pfd = open_parent(m, rel, &name);
    rc = pfd < 0 ? pfd : mkdirat(pfd, name, 0755) < 0 ? -errno : 0;
    if (pfd >= 0)
        close(pfd);
    if (rc < 0)
        host_release(vfs, HOST_ENTRY_COST);
    return rc;
}

/* Removes a name; what it frees (the entry, and a file's bytes when this
 * was its last link and the sandbox does not have it open) goes back to
 * the quota. */
static int unlink_in(eryx__vfs *vfs, const vfs_mount *m, const char *rel, int flags)
{
    const char *name;
    int pfd = open_parent(m, rel, &name);
    if (pfd < 0)
        return pfd;
    struct stat st;
    uint64_t freed = HOST_ENTRY_COST;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        st.st_nlink == 1 && st.st_size > 0 &&
        !is_open(vfs, (uint64_t)st.st_dev, (uint64_t)st.st_ino))
        freed += (uint64_t)st.st_size;
    int rc = unlinkat(pfd, name, flags) < 0 ? -errno : 0;
    close(pfd);
    if (rc == 0)
        host_release(vfs, freed);
    return rc;
}

int vfs_host_rmdir(eryx__vfs *vfs, const vfs_mount *m, const char *rel)
{
    return unlink_in(vfs, m, rel, AT_REMOVEDIR);
}

int vfs_host_unlink(eryx__vfs *vfs, const vfs_mount *m, const char *rel)
{
    return unlink_in(vfs, m, rel, 0);
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
