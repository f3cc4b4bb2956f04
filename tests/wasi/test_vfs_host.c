/*
 * Host directory mounts: reading and writing inside the mount, and every
 * escape attempt refused: "..", an absolute symlink to /etc, a relative
 * symlink climbing out, /proc magic links, FIFOs; read-only mounts refuse
 * every write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char root[256];

/* The file system of the running case, made by setup, and the lowest free
 * descriptor before. */
static eryx__vfs *case_vfs;
static int fds_before;

static void sh(const char *fmt, const char *arg)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, arg, arg, arg);
    REQUIRE(system(cmd) == 0);
}

static void make_tree(void)
{
    snprintf(root, sizeof root, "/tmp/eryx-vfs-host-XXXXXX");
    REQUIRE(mkdtemp(root));
    sh("mkdir -p %s/rw/sub %s/ro && echo -n secret-in-mount > %s/rw/sub/file.txt", root);
    sh("echo -n readonly > %s/ro/r.txt && ln -s /etc %s/rw/etc_link && "
       "ln -s ../../ %s/rw/up_link", root);
    sh("ln -s sub/file.txt %s/rw/good_link && ln -s /proc/self/root %s/rw/proc_link && "
       "mkfifo %s/rw/fifo", root);
    sh("echo -n outside > %s/outside.txt", root);
}

static int try_read(eryx__vfs *vfs, const char *path, char *buf, size_t cap)
{
    eryx__vfs_file *f;
    int rc = eryx__vfs_open(vfs, path, ERYX__VFS_O_READ, &f);
    if (rc < 0)
        return rc;
    size_t n = 0;
    rc = eryx__vfs_pread(f, buf, cap - 1, 0, &n);
    buf[n] = '\0';
    eryx__vfs_close(f);
    return rc;
}

TEST_CASE(test_rw)
{
    eryx__vfs *vfs = case_vfs;
    char buf[256];
    CHECK_INT(try_read(vfs, "/data/sub/file.txt", buf, sizeof buf), 0);
    CHECK_STR(buf, "secret-in-mount");
    CHECK_INT(try_read(vfs, "/data/good_link", buf, sizeof buf), 0);
    CHECK_STR(buf, "secret-in-mount");
    eryx__vfs_file *f;
    CHECK_INT(eryx__vfs_open(vfs, "/data/new.txt",
                             ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT | ERYX__VFS_O_EXCL, &f), 0);
    size_t n;
    CHECK_INT(eryx__vfs_pwrite(f, "written", 7, 0, &n), 0);
    CHECK_INT(eryx__vfs_ftruncate(f, 3), 0);
    eryx__vfs_close(f);
    CHECK_INT(try_read(vfs, "/data/new.txt", buf, sizeof buf), 0);
    CHECK_STR(buf, "wri");
    CHECK_INT(eryx__vfs_mkdir(vfs, "/data/newdir"), 0);
    CHECK_INT(eryx__vfs_rename(vfs, "/data/new.txt", "/data/newdir/moved.txt"), 0);
    eryx__vfs_attr st;
    CHECK_INT(eryx__vfs_stat(vfs, "/data/newdir/moved.txt", 1, &st), 0);
    CHECK_INT(st.size, 3);
    CHECK_INT(eryx__vfs_utimes(vfs, "/data/newdir/moved.txt", 1, 5000000000ull, 7000000000ull,
                               ERYX__VFS_SET_ATIM | ERYX__VFS_SET_MTIM), 0);
    CHECK_INT(eryx__vfs_stat(vfs, "/data/newdir/moved.txt", 1, &st), 0);
    CHECK_INT(st.mtim, 7000000000ull);
    CHECK_INT(eryx__vfs_unlink(vfs, "/data/newdir/moved.txt"), 0);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/data/newdir"), 0);
    CHECK_INT(eryx__vfs_stat(vfs, "/data/good_link", 0, &st), 0);
    CHECK_INT(st.type, ERYX__VFS_T_SYMLINK);
    size_t len;
    CHECK_INT(eryx__vfs_readlink(vfs, "/data/good_link", buf, sizeof buf, &len), 0);
    CHECK_MEM(buf, "sub/file.txt", len);
    CHECK_INT(eryx__vfs_readlink(vfs, "/data/sub/file.txt", buf, sizeof buf, &len), -EINVAL);

    char names[512] = "";
    REQUIRE(eryx__vfs_open(vfs, "/data", ERYX__VFS_O_READ | ERYX__VFS_O_DIRECTORY, &f) == 0);
    eryx__vfs_dirent d;
    int count = 0, saw_sub = 0;
    for (uint64_t c = 0; eryx__vfs_readdir(f, c, &d) == 0; c++) {
        count++;
        saw_sub |= strcmp(d.name, "sub") == 0 && d.type == ERYX__VFS_T_DIR;
        strcat(names, d.name);
    }
    eryx__vfs_close(f);
    CHECK_INT(count, 6);    /* sub etc_link up_link good_link proc_link fifo */
    CHECK(saw_sub);
}

TEST_CASE(test_escapes)
{
    eryx__vfs *vfs = case_vfs;
    char buf[4096];
    eryx__vfs_attr st;
    /* ".." is lexical and stops at "/", which holds no host files. */
    CHECK(try_read(vfs, "/data/../outside.txt", buf, sizeof buf) < 0);
    CHECK(try_read(vfs, "/data/../../../../etc/passwd", buf, sizeof buf) < 0);
    CHECK(try_read(vfs, "/data/sub/../../outside.txt", buf, sizeof buf) < 0);
    /* Symlinks that leave the mount are refused by the kernel. */
    CHECK(try_read(vfs, "/data/etc_link/passwd", buf, sizeof buf) < 0);
    CHECK(eryx__vfs_stat(vfs, "/data/etc_link/passwd", 1, &st) < 0);
    CHECK(eryx__vfs_stat(vfs, "/data/etc_link", 1, &st) < 0);
    CHECK(try_read(vfs, "/data/up_link/outside.txt", buf, sizeof buf) < 0);
    CHECK(try_read(vfs, "/data/proc_link/etc/passwd", buf, sizeof buf) < 0);
    eryx__vfs_file *f;
    CHECK(eryx__vfs_open(vfs, "/data/up_link", ERYX__VFS_O_READ, &f) < 0);
    CHECK(eryx__vfs_open(vfs, "/data/etc_link/evil", ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT,
                         &f) < 0);
    CHECK(eryx__vfs_mkdir(vfs, "/data/etc_link/evil") < 0);
    CHECK(eryx__vfs_unlink(vfs, "/data/up_link/outside.txt") < 0);
    CHECK(eryx__vfs_rename(vfs, "/data/up_link/outside.txt", "/data/stolen") < 0);
    CHECK(eryx__vfs_utimes(vfs, "/data/etc_link", 1, 0, 0, ERYX__VFS_SET_MTIM_NOW) < 0);
    char p[512];
    snprintf(p, sizeof p, "%s/outside.txt", root);
    CHECK(access(p, F_OK) == 0);
    /* A FIFO would block the host thread: refused without blocking. */
    CHECK_INT(eryx__vfs_open(vfs, "/data/fifo", ERYX__VFS_O_READ, &f), -EACCES);
    /* Opening with NOFOLLOW on a symlink fails (ELOOP). */
    CHECK_INT(eryx__vfs_open(vfs, "/data/good_link", ERYX__VFS_O_READ | ERYX__VFS_O_NOFOLLOW,
                             &f), -ELOOP);
    /* Deleting the symlink itself is fine and leaves /etc alone. */
    CHECK_INT(eryx__vfs_unlink(vfs, "/data/etc_link"), 0);
    CHECK(access("/etc/passwd", F_OK) == 0);
}

TEST_CASE(test_read_only)
{
    eryx__vfs *vfs = case_vfs;
    char buf[64];
    CHECK_INT(try_read(vfs, "/ro/r.txt", buf, sizeof buf), 0);
    CHECK_STR(buf, "readonly");
    eryx__vfs_file *f;
    CHECK_INT(eryx__vfs_open(vfs, "/ro/r.txt", ERYX__VFS_O_WRITE, &f), -EROFS);
    CHECK_INT(eryx__vfs_open(vfs, "/ro/r.txt", ERYX__VFS_O_READ | ERYX__VFS_O_TRUNC, &f), -EROFS);
    CHECK_INT(eryx__vfs_open(vfs, "/ro/new", ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT, &f), -EROFS);
    CHECK_INT(eryx__vfs_open(vfs, "/ro/missing", ERYX__VFS_O_WRITE, &f), -ENOENT);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/ro/d"), -EROFS);
    CHECK_INT(eryx__vfs_unlink(vfs, "/ro/r.txt"), -EROFS);
    CHECK_INT(eryx__vfs_rename(vfs, "/ro/r.txt", "/ro/s.txt"), -EROFS);
    CHECK_INT(eryx__vfs_utimes(vfs, "/ro/r.txt", 1, 0, 0, ERYX__VFS_SET_MTIM_NOW), -EROFS);
    CHECK_INT(eryx__vfs_open(vfs, "/ro/r.txt", ERYX__VFS_O_READ, &f), 0);
    size_t n;
    CHECK_INT(eryx__vfs_pwrite(f, "x", 1, 0, &n), -EBADF);
    CHECK_INT(eryx__vfs_ftruncate(f, 0), -EBADF);
    CHECK_INT(eryx__vfs_futimes(f, 0, 0, ERYX__VFS_SET_MTIM_NOW), -EROFS);
    eryx__vfs_close(f);
    CHECK_INT(try_read(vfs, "/ro/r.txt", buf, sizeof buf), 0);
    CHECK_STR(buf, "readonly");
}

/* Special files are refused before anything opens them: a FIFO opened for
 * writing without a reader used to fail with ENXIO (it had been opened),
 * and opening one for reading was visible to the host (an open event, a
 * writer's wake-up). Now they are only ever opened O_PATH, which opens
 * nothing: no error but EACCES, and no open event. */
TEST_CASE(test_special_files)
{
    eryx__vfs *vfs = case_vfs;
    char p[512];
    snprintf(p, sizeof p, "%s/rw/fifo", root);
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    REQUIRE(in >= 0);
    REQUIRE(inotify_add_watch(in, p, IN_OPEN | IN_ACCESS | IN_CLOSE) >= 0);
    eryx__vfs_file *f;
    CHECK_INT(eryx__vfs_open(vfs, "/data/fifo", ERYX__VFS_O_READ, &f), -EACCES);
    CHECK_INT(eryx__vfs_open(vfs, "/data/fifo", ERYX__VFS_O_WRITE, &f), -EACCES);
    CHECK_INT(eryx__vfs_open(vfs, "/data/fifo", ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT, &f),
              -EACCES);
    CHECK_INT(eryx__vfs_open(vfs, "/data/fifo", ERYX__VFS_O_WRITE | ERYX__VFS_O_TRUNC, &f),
              -EACCES);
    CHECK_INT(eryx__vfs_utimes(vfs, "/data/fifo", 1, 0, 0, ERYX__VFS_SET_MTIM_NOW), -EACCES);
    char ev[4096];
    struct pollfd pfd = {in, POLLIN, 0};
    CHECK_INT(poll(&pfd, 1, 50), 0);
    CHECK(read(in, ev, sizeof ev) < 0);
    close(in);
    /* A device, also in a read-only mount (/dev/null: opening has no side
     * effect there, but the refusal must not depend on that). */
    eryx__vfs *dev = eryx__vfs_new(0);
    REQUIRE(dev && eryx__vfs_mount_host(dev, "/dev", "/dev", 1) == 0);
    CHECK_INT(eryx__vfs_open(dev, "/dev/null", ERYX__VFS_O_READ, &f), -EACCES);
    eryx__vfs_free(dev);
}

/* A mount is one file system: a mount point inside the mounted directory
 * (here /proc inside a mount of "/") is not followed. */
TEST_CASE(test_no_xdev)
{
    struct stat a, b;
    REQUIRE(stat("/", &a) == 0 && stat("/proc", &b) == 0);
    REQUIRE(a.st_dev != b.st_dev);  /* /proc is its own mount on Linux */
    eryx__vfs *vfs = eryx__vfs_new(0);
    REQUIRE(vfs && eryx__vfs_mount_host(vfs, "/host", "/", 1) == 0);
    char buf[256];
    CHECK_INT(try_read(vfs, "/host/proc/version", buf, sizeof buf), -EACCES);
    eryx__vfs_attr st;
    CHECK_INT(eryx__vfs_stat(vfs, "/host/proc/self", 0, &st), -EACCES);
    CHECK_INT(eryx__vfs_stat(vfs, "/host/etc", 0, &st), 0);
    eryx__vfs_free(vfs);
}

/* Writable mounts have a byte quota: file growth plus 4 KiB per entry
 * created; truncating and removing give it back. */
TEST_CASE(test_host_quota)
{
    char p[512];
    snprintf(p, sizeof p, "%s/rw", root);
    eryx__vfs *vfs = eryx__vfs_new(0);
    REQUIRE(vfs && eryx__vfs_mount_host(vfs, "/q", p, 0) == 0);
    eryx__vfs_set_host_quota(vfs, 20000);
    eryx__vfs_file *f;
    int rw = ERYX__VFS_O_READ | ERYX__VFS_O_WRITE;
    CHECK_INT(eryx__vfs_open(vfs, "/q/quota.bin", rw | ERYX__VFS_O_CREAT, &f), 0);
    CHECK_INT(eryx__vfs_host_used(vfs), 4096);
    static char chunk[4096];
    size_t n;
    uint64_t off = 0;
    int rc;
    /* Bounded, so that without a quota the test fails instead of filling
     * the disk. */
    while (off < (1u << 20) && (rc = eryx__vfs_pwrite(f, chunk, sizeof chunk, off, &n)) == 0)
        off += n;
    CHECK_INT(rc, -EDQUOT);
    CHECK_INT(off, 12288);      /* 4096 + 3 * 4096 <= 20000 < 4096 + 4 * 4096 */
    CHECK_INT(eryx__vfs_pwrite(f, chunk, 100, 0, &n), 0);  /* overwriting is free */
    CHECK_INT(eryx__vfs_ftruncate(f, 1u << 30), -EDQUOT);
    CHECK_INT(eryx__vfs_pwrite(f, "x", 1, 1ull << 40, &n), -EDQUOT);   /* sparse counts */
    CHECK_INT(eryx__vfs_mkdir(vfs, "/q/qdir"), -EDQUOT);
    CHECK_INT(eryx__vfs_ftruncate(f, 4096), 0);
    CHECK_INT(eryx__vfs_host_used(vfs), 8192);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/q/qdir"), 0);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/q/qdir"), 0);
    eryx__vfs_close(f);
    CHECK_INT(eryx__vfs_unlink(vfs, "/q/quota.bin"), 0);
    CHECK_INT(eryx__vfs_host_used(vfs), 0);
    /* Removing the host's own files earns nothing. */
    CHECK_INT(eryx__vfs_unlink(vfs, "/q/sub/file.txt"), 0);
    CHECK_INT(eryx__vfs_host_used(vfs), 0);
    eryx__vfs_free(vfs);
}

/* Regression: removing the last name of a file the sandbox still had open
 * gave its bytes back although they stay on disk until it is closed, and
 * shrinking the open file gave them back again: unlink, write as much
 * elsewhere, truncate, repeat, and a guest kept 1200 MB with a 1024 MB
 * quota. The bytes go back once: as the file shrinks, or when its last
 * descriptor (through any mount) closes. */
TEST_CASE(test_host_quota_unlinked_open)
{
    char p[512];
    snprintf(p, sizeof p, "%s/rw", root);
    eryx__vfs *vfs = eryx__vfs_new(0);
    REQUIRE(vfs && eryx__vfs_mount_host(vfs, "/q", p, 0) == 0);
    REQUIRE(eryx__vfs_mount_host(vfs, "/r", p, 1) == 0);   /* the same, read-only */
    eryx__vfs_set_host_quota(vfs, 65536);
    int rw = ERYX__VFS_O_READ | ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT;
    static char chunk[32768];
    size_t n;
    eryx__vfs_file *a, *b, *c, *c_ro;
    CHECK_INT(eryx__vfs_open(vfs, "/q/a", rw, &a), 0);
    CHECK_INT(eryx__vfs_pwrite(a, chunk, sizeof chunk, 0, &n), 0);
    CHECK_INT(eryx__vfs_host_used(vfs), 4096 + 32768);
    CHECK_INT(eryx__vfs_unlink(vfs, "/q/a"), 0);
    CHECK_INT(eryx__vfs_host_used(vfs), 32768);         /* the entry only: a is open */
    CHECK_INT(eryx__vfs_open(vfs, "/q/b", rw, &b), 0);
    CHECK_INT(eryx__vfs_pwrite(b, chunk, sizeof chunk, 0, &n), -EDQUOT);
    CHECK_INT(eryx__vfs_ftruncate(a, 0), 0);            /* now they leave the disk */
    CHECK_INT(eryx__vfs_host_used(vfs), 4096);
    CHECK_INT(eryx__vfs_pwrite(b, chunk, sizeof chunk, 0, &n), 0);
    eryx__vfs_close(a);
    CHECK_INT(eryx__vfs_host_used(vfs), 4096 + 32768);
    /* Unlinked while open twice, once through the read-only mount: the
     * bytes go back when the last descriptor closes. */
    CHECK_INT(eryx__vfs_open(vfs, "/q/c", rw, &c), 0);
    CHECK_INT(eryx__vfs_pwrite(c, chunk, 8192, 0, &n), 0);
    CHECK_INT(eryx__vfs_open(vfs, "/r/c", ERYX__VFS_O_READ, &c_ro), 0);
    CHECK_INT(eryx__vfs_unlink(vfs, "/q/c"), 0);
    eryx__vfs_close(c);
    CHECK_INT(eryx__vfs_host_used(vfs), 32768 + 4096 + 8192);
    eryx__vfs_close(c_ro);
    CHECK_INT(eryx__vfs_host_used(vfs), 32768 + 4096);
    /* A copy (template, fork) knows its copied descriptors are open. */
    eryx__vfs_file *copy_b;
    eryx__vfs *copy = eryx__vfs_clone(vfs, &b, 1, &copy_b);
    REQUIRE(copy);
    CHECK_INT(eryx__vfs_unlink(copy, "/q/b"), 0);
    CHECK_INT(eryx__vfs_host_used(copy), 32768);
    eryx__vfs_close(copy_b);
    CHECK_INT(eryx__vfs_host_used(copy), 0);
    eryx__vfs_free(copy);
    eryx__vfs_close(b);
    CHECK_INT(eryx__vfs_host_used(vfs), 4096);  /* b's bytes went; its name was the copy's */
    eryx__vfs_free(vfs);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* Mounting what does not exist, or over a mount point. */
TEST_CASE(test_mount_errors)
{
    char p[512];
    snprintf(p, sizeof p, "%s/ro", root);
    CHECK(eryx__vfs_mount_host(case_vfs, "/nope", "/nonexistent-eryx-dir", 0) < 0);
    CHECK(eryx__vfs_mount_host(case_vfs, "/data", p, 0) < 0);    /* mount point taken */
}

static void setup(void)
{
    fds_before = open_fds();
    make_tree();
    case_vfs = eryx__vfs_new(1 << 20);
    REQUIRE(case_vfs);
    char p[512];
    snprintf(p, sizeof p, "%s/rw", root);
    REQUIRE(eryx__vfs_mount_host(case_vfs, "/data", p, 0) == 0);
    snprintf(p, sizeof p, "%s/ro", root);
    REQUIRE(eryx__vfs_mount_host(case_vfs, "/ro", p, 1) == 0);
}

static void teardown(void)
{
    eryx__vfs_free(case_vfs);
    CHECK_INT(open_fds(), fds_before);     /* no host fd leaked */
    sh("rm -rf %s", root);
}

TEST_MAIN_WITH(setup, teardown)
