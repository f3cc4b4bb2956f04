/*
 * The in-memory /tmp tree: file lifecycle, directories, rename rules,
 * quota (ENOSPC) and its release, unlink while open, times.
 */
#include <errno.h>

#include "testutil.h"

#define RW (ERYX__VFS_O_READ | ERYX__VFS_O_WRITE)

static eryx__vfs_file *open_ok(eryx__vfs *vfs, const char *p, int flags)
{
    eryx__vfs_file *f = NULL;
    int rc = eryx__vfs_open(vfs, p, flags, &f);
    if (rc != 0)
        CHECK_FAIL_("open %s: %d", p, rc);
    return f;
}

TEST_CASE(test_lifecycle)
{
    eryx__vfs *vfs = eryx__vfs_new(1 << 20);
    REQUIRE(vfs && eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    eryx__vfs_file *f;
    CHECK_INT(eryx__vfs_open(vfs, "/tmp/a.txt", ERYX__VFS_O_READ, &f), -ENOENT);
    f = open_ok(vfs, "/tmp/a.txt", RW | ERYX__VFS_O_CREAT | ERYX__VFS_O_EXCL);
    REQUIRE(f);
    size_t n;
    CHECK_INT(eryx__vfs_pwrite(f, "hello world", 11, 0, &n), 0);
    CHECK_INT(n, 11);
    CHECK_INT(eryx__vfs_pwrite(f, "\xff\x00", 2, 20, &n), 0);   /* sparse */
    eryx__vfs_attr st;
    CHECK_INT(eryx__vfs_fstat(f, &st), 0);
    CHECK_INT(st.size, 22);
    CHECK_INT(st.type, ERYX__VFS_T_REG);
    CHECK(st.mtim > 0);
    char buf[32];
    CHECK_INT(eryx__vfs_pread(f, buf, sizeof buf, 0, &n), 0);
    CHECK_INT(n, 22);
    CHECK_MEM(buf, "hello world\0\0\0\0\0\0\0\0\0\xff\0", 22);
    CHECK_INT(eryx__vfs_ftruncate(f, 5), 0);
    CHECK_INT(eryx__vfs_pread(f, buf, sizeof buf, 0, &n), 0);
    CHECK_INT(n, 5);
    CHECK_INT(eryx__vfs_futimes(f, 1000, 2000, ERYX__VFS_SET_ATIM | ERYX__VFS_SET_MTIM), 0);
    CHECK_INT(eryx__vfs_stat(vfs, "/tmp/a.txt", 1, &st), 0);
    CHECK_INT(st.atim, 1000);
    CHECK_INT(st.mtim, 2000);
    eryx__vfs_close(f);

    CHECK_INT(eryx__vfs_open(vfs, "/tmp/a.txt", ERYX__VFS_O_CREAT | ERYX__VFS_O_EXCL, &f),
              -EEXIST);
    f = open_ok(vfs, "/tmp/a.txt", RW | ERYX__VFS_O_TRUNC);
    CHECK_INT(eryx__vfs_fstat(f, &st), 0);
    CHECK_INT(st.size, 0);
    eryx__vfs_close(f);

    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/d"), 0);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/d"), -EEXIST);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/x/y"), -ENOENT);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/a.txt/y"), -ENOTDIR);
    f = open_ok(vfs, "/tmp/d/inner", RW | ERYX__VFS_O_CREAT);
    eryx__vfs_close(f);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/tmp/d"), -ENOTEMPTY);
    CHECK_INT(eryx__vfs_unlink(vfs, "/tmp/d"), -EISDIR);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/tmp/a.txt"), -ENOTDIR);
    CHECK_INT(eryx__vfs_open(vfs, "/tmp/d", ERYX__VFS_O_WRITE, &f), -EISDIR);

    /* Rename: file over file, into a dir, dir into itself, across mounts. */
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/a.txt", "/tmp/d/inner"), 0);
    CHECK_INT(eryx__vfs_stat(vfs, "/tmp/a.txt", 1, &st), -ENOENT);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/d", "/tmp/d/sub"), -EINVAL);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/d", "/tmp/e"), 0);
    CHECK_INT(eryx__vfs_stat(vfs, "/tmp/e/inner", 1, &st), 0);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/f"), 0);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/e/inner", "/tmp/f"), -EISDIR);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/f", "/tmp/e"), -ENOTEMPTY);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/e", "/tmp/f"), 0);    /* over an empty dir */
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/f/inner", "/tmp/f/inner"), 0);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/missing", "/tmp/x"), -ENOENT);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/f/inner", "/elsewhere"), -EROFS);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp", "/tmp2"), -EBUSY);

    char names[256];
    names[0] = '\0';
    f = open_ok(vfs, "/tmp", ERYX__VFS_O_READ);
    eryx__vfs_dirent d;
    for (uint64_t c = 0; eryx__vfs_readdir(f, c, &d) == 0; c++) {
        strcat(names, d.name);
        strcat(names, " ");
    }
    eryx__vfs_close(f);
    CHECK_STR(names, "f ");
    CHECK_INT(eryx__vfs_unlink(vfs, "/tmp/f/inner"), 0);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/tmp/f"), 0);
    eryx__vfs_free(vfs);
}

TEST_CASE(test_quota)
{
    eryx__vfs *vfs = eryx__vfs_new(64 * 1024);
    REQUIRE(vfs && eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    uint64_t base = eryx__vfs_tmp_used(vfs);
    eryx__vfs_file *f = open_ok(vfs, "/tmp/big", RW | ERYX__VFS_O_CREAT);
    static char chunk[4096];
    memset(chunk, 'q', sizeof chunk);
    size_t n;
    int rc = 0;
    uint64_t off = 0;
    while ((rc = eryx__vfs_pwrite(f, chunk, sizeof chunk, off, &n)) == 0)
        off += n;
    CHECK_INT(rc, -ENOSPC);
    CHECK(off >= 32 * 1024 && off <= 64 * 1024);
    CHECK(eryx__vfs_tmp_used(vfs) <= 64 * 1024);
    CHECK_INT(eryx__vfs_ftruncate(f, 1ull << 40), -ENOSPC);
    CHECK_INT(eryx__vfs_pwrite(f, "x", 1, UINT64_MAX, &n), -ENOSPC);
    /* Many empty files also run into the quota (per-node cost). */
    int made = 0;
    for (int i = 0; i < 10000; i++) {
        char p[64];
        eryx__vfs_file *g;
        snprintf(p, sizeof p, "/tmp/empty%05d", i);
        if (eryx__vfs_open(vfs, p, RW | ERYX__VFS_O_CREAT, &g) != 0)
            break;
        eryx__vfs_close(g);
        made++;
    }
    CHECK(made < 10000);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/onemore"), -ENOSPC);
    /* Unlinking gives the space back, but only once the last handle closes. */
    CHECK_INT(eryx__vfs_ftruncate(f, 0), 0);
    CHECK_INT(eryx__vfs_pwrite(f, chunk, sizeof chunk, 0, &n), 0);
    CHECK_INT(eryx__vfs_unlink(vfs, "/tmp/big"), 0);
    for (int i = 0; i < made; i++) {
        char p[64];
        snprintf(p, sizeof p, "/tmp/empty%05d", i);
        CHECK_INT(eryx__vfs_unlink(vfs, p), 0);
    }
    CHECK(eryx__vfs_tmp_used(vfs) > base + 4096);
    eryx__vfs_close(f);
    CHECK_INT(eryx__vfs_tmp_used(vfs), base);
    eryx__vfs_free(vfs);
}

TEST_CASE(test_unlink_open)
{
    eryx__vfs *vfs = eryx__vfs_new(1 << 20);
    REQUIRE(vfs && eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    eryx__vfs_file *f = open_ok(vfs, "/tmp/gone", RW | ERYX__VFS_O_CREAT);
    eryx__vfs_file *g = open_ok(vfs, "/tmp/gone", ERYX__VFS_O_READ);
    size_t n;
    CHECK_INT(eryx__vfs_pwrite(f, "abc", 3, 0, &n), 0);
    CHECK_INT(eryx__vfs_unlink(vfs, "/tmp/gone"), 0);
    eryx__vfs_attr st;
    CHECK_INT(eryx__vfs_stat(vfs, "/tmp/gone", 1, &st), -ENOENT);
    CHECK_INT(eryx__vfs_pwrite(f, "def", 3, 3, &n), 0);
    char buf[8];
    CHECK_INT(eryx__vfs_pread(g, buf, sizeof buf, 0, &n), 0);
    CHECK_INT(n, 6);
    CHECK_MEM(buf, "abcdef", 6);
    CHECK_INT(eryx__vfs_fstat(g, &st), 0);
    CHECK_INT(st.nlink, 0);
    /* A new file of the same name is a different file. */
    eryx__vfs_file *h = open_ok(vfs, "/tmp/gone", RW | ERYX__VFS_O_CREAT | ERYX__VFS_O_EXCL);
    CHECK_INT(eryx__vfs_pread(h, buf, sizeof buf, 0, &n), 0);
    CHECK_INT(n, 0);
    eryx__vfs_close(f);
    eryx__vfs_close(h);
    CHECK_INT(eryx__vfs_pread(g, buf, sizeof buf, 0, &n), 0);
    CHECK_INT(n, 6);
    eryx__vfs_close(g);
    /* A removed directory held open lists as empty. */
    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/dd"), 0);
    eryx__vfs_file *d = open_ok(vfs, "/tmp/dd", ERYX__VFS_O_READ);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/tmp/dd"), 0);
    eryx__vfs_dirent e;
    CHECK_INT(eryx__vfs_readdir(d, 0, &e), 1);
    eryx__vfs_close(d);
    eryx__vfs_free(vfs);
}

TEST_MAIN()
