/*
 * The in-memory /tmp tree: file lifecycle, directories, rename rules,
 * quota (ENOSPC) and its release, unlink while open, times.
 */
#include <errno.h>
#include <pthread.h>

#include "testutil.h"
#include "vfs/vfs_persist.h"

/* Bytes the process has allocated now: the sanitizers' own count under
 * their allocators (declared here: gcc installs no header for it), glibc's
 * otherwise, headers and mmapped blocks included. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HEAP_SANITIZER 1
#endif
#endif
#ifdef HEAP_SANITIZER
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void) { return __sanitizer_get_current_allocated_bytes(); }
#else
#include <malloc.h>
static size_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}
#endif

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

/* Usage above the quota (lowered after the fact, as vfs.h allows): a file
 * may not grow, and no byte goes uncharged. Guards the underflow of "room"
 * in set_size and the ignored result of its charge. */
TEST_CASE(test_quota_over_usage)
{
    eryx__vfs *vfs = eryx__vfs_new(1 << 20);
    REQUIRE(vfs && eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    eryx__vfs_file *big = open_ok(vfs, "/tmp/big", RW | ERYX__VFS_O_CREAT);
    eryx__vfs_file *small = open_ok(vfs, "/tmp/small", RW | ERYX__VFS_O_CREAT);
    static char chunk[65536];
    size_t n;
    for (uint64_t off = 0; off < 512 * 1024; off += sizeof chunk)
        CHECK_INT(eryx__vfs_pwrite(big, chunk, sizeof chunk, off, &n), 0);
    eryx__vfs_set_tmp_quota(vfs, 256 * 1024);
    uint64_t used = eryx__vfs_tmp_used(vfs);
    CHECK(used > 256 * 1024);
    CHECK_INT(eryx__vfs_pwrite(small, "0123456789", 10, 0, &n), -ENOSPC);
    CHECK_INT(eryx__vfs_ftruncate(small, 100), -ENOSPC);
    CHECK_INT(eryx__vfs_tmp_used(vfs), used);
    eryx__vfs_attr st;
    CHECK_INT(eryx__vfs_fstat(small, &st), 0);
    CHECK_INT(st.size, 0);
    /* Shrinking is always allowed and gives the quota back. */
    CHECK_INT(eryx__vfs_ftruncate(big, 0), 0);
    CHECK(eryx__vfs_tmp_used(vfs) < 4096);
    CHECK_INT(eryx__vfs_pwrite(small, "0123456789", 10, 0, &n), 0);
    eryx__vfs_close(big);
    eryx__vfs_close(small);
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

/* The attack that crashed the host: mkdir + rename in a loop nests
 * directories one level deeper per step at a constant path length (300 000
 * levels took the recursive free and copy off the end of the host stack).
 * The depth is now bounded, and the deepest tree allowed is freed, copied,
 * saved and restored. */
static void deep_chain(eryx__vfs *vfs, int *levels, int *err)
{
    REQUIRE(eryx__vfs_mkdir(vfs, "/tmp/d") == 0);
    *levels = 1;
    *err = 0;
    for (int i = 0; i < 300000 && *err == 0; i++) {
        if ((*err = eryx__vfs_mkdir(vfs, "/tmp/x")) == 0 &&
            (*err = eryx__vfs_rename(vfs, "/tmp/d", "/tmp/x/d")) == 0 &&
            (*err = eryx__vfs_rename(vfs, "/tmp/x", "/tmp/d")) == 0)
            (*levels)++;
    }
}

static void *free_vfs(void *vfs)
{
    eryx__vfs_free(vfs);
    return NULL;
}

static void *clone_vfs(void *vfs)
{
    return eryx__vfs_clone(vfs, NULL, 0, NULL);
}

/* Runs fn(arg) on a thread with a 32 KiB stack: a walk that recursed once
 * per level would need several times that at ERYX__VFS_MAX_DEPTH. */
static void *on_small_stack(void *(*fn)(void *), void *arg)
{
    pthread_attr_t a;
    pthread_t t;
    void *ret = NULL;
    REQUIRE(pthread_attr_init(&a) == 0 && pthread_attr_setstacksize(&a, 32 * 1024) == 0);
    REQUIRE(pthread_create(&t, &a, fn, arg) == 0);
    REQUIRE(pthread_join(t, &ret) == 0);
    pthread_attr_destroy(&a);
    return ret;
}

TEST_CASE(test_deep_tree)
{
    eryx__vfs *vfs = eryx__vfs_new(256u << 20);
    REQUIRE(vfs && eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    int levels, err;
    deep_chain(vfs, &levels, &err);
    CHECK_INT(err, -ENAMETOOLONG);
    CHECK_INT(levels, ERYX__VFS_MAX_DEPTH);
    eryx__vfs_attr st;
    CHECK_INT(eryx__vfs_stat(vfs, "/tmp/x", 0, &st), 0);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/tmp/x"), 0);
    /* mkdir by path stops at the same depth. */
    char *p = malloc(ERYX__VFS_PATH_MAX);
    REQUIRE(p);
    strcpy(p, "/tmp/d");
    for (int i = 1; i < levels; i++)
        strcat(p, "/d");
    CHECK_INT(eryx__vfs_stat(vfs, p, 0, &st), 0);
    CHECK_INT(st.type, ERYX__VFS_T_DIR);
    strcat(p, "/f");
    CHECK_INT(eryx__vfs_mkdir(vfs, p), -ENAMETOOLONG);
    /* A file may sit in the deepest directory. */
    eryx__vfs_file *f = open_ok(vfs, p, RW | ERYX__VFS_O_CREAT);
    size_t n;
    CHECK_INT(eryx__vfs_pwrite(f, "deep", 4, 0, &n), 0);
    eryx__vfs_close(f);
    /* Moving the tree deeper is refused; moving it up is fine. */
    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/y"), 0);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/d", "/tmp/y/d"), -ENAMETOOLONG);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/d/d", "/tmp/z"), 0);
    CHECK_INT(eryx__vfs_rename(vfs, "/tmp/z", "/tmp/d/d"), 0);

    /* Copy and free with little stack. */
    eryx__vfs *copy = on_small_stack(clone_vfs, vfs);
    REQUIRE(copy);
    CHECK_INT(eryx__vfs_tmp_used(copy), eryx__vfs_tmp_used(vfs));
    CHECK_INT(eryx__vfs_stat(copy, p, 0, &st), 0);
    CHECK_INT(st.size, 4);
    on_small_stack(free_vfs, copy);

    /* Save and restore: every level comes back. */
    eryx__blob b = {0};
    eryx__vfs_saved *saved = NULL;
    CHECK_INT(eryx__vfs_save_tmp(vfs, &b, &saved), 0);
    eryx__vfs_saved_free(saved);
    eryx__vfs *back = eryx__vfs_new(256u << 20);
    REQUIRE(back && eryx__vfs_mount_tmp(back, "/tmp") == 0);
    eryx__blob_reader r = {b.p, b.len, 0, 0};
    CHECK_INT(eryx__vfs_restore_tmp(back, &r), 0);
    CHECK_INT(eryx__vfs_stat(back, p, 0, &st), 0);
    CHECK_INT(st.size, 4);
    CHECK_INT(eryx__vfs_tmp_used(back), eryx__vfs_tmp_used(vfs));
    free(b.p);
    eryx__vfs_free(back);
    free(p);
    on_small_stack(free_vfs, vfs);
}

/* Fills directory dir with empty files of short names until the quota says
 * no; returns how many were made. */
static int fill_dir(eryx__vfs *vfs, const char *dir)
{
    char name[64];
    int made = 0;
    for (;; made++) {
        snprintf(name, sizeof name, "%s/%x", dir, made);
        eryx__vfs_file *f = NULL;
        int rc = eryx__vfs_open(vfs, name, RW | ERYX__VFS_O_CREAT, &f);
        if (rc != 0) {
            CHECK_INT(rc, -ENOSPC);
            return made;
        }
        eryx__vfs_close(f);
    }
}

/* The host memory a tree of empty files holds stays within the quota:
 * names and directories' entry arrays are charged too, and the array of
 * a directory that was emptied is given back (it was not: 64 MiB of /tmp
 * took 87 MB of the host, and fill-and-empty grew without bound). */
TEST_CASE(test_quota_bounds_host_memory)
{
    const uint64_t quota = 4u << 20;
    eryx__vfs *vfs = eryx__vfs_new(quota);
    REQUIRE(vfs && eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    size_t base = heap_in_use();
    uint64_t used0 = eryx__vfs_tmp_used(vfs);
    size_t peak = 0;
    for (int round = 0; round < 6; round++) {
        char dir[32], name[64];
        snprintf(dir, sizeof dir, "/tmp/d%d", round);
        CHECK_INT(eryx__vfs_mkdir(vfs, dir), 0);
        int made = fill_dir(vfs, dir);
        CHECK(made > 1000);
        size_t now = heap_in_use() - base;
        if (now > peak)
            peak = now;
        for (int i = 0; i < made; i++) {
            snprintf(name, sizeof name, "%s/%x", dir, i);
            CHECK_INT(eryx__vfs_unlink(vfs, name), 0);
        }
    }
    CHECK(peak <= quota + quota / 32);
    /* Empty again: the quota and nearly all the memory are back (the
     * empty directories remain). */
    CHECK(eryx__vfs_tmp_used(vfs) - used0 <= 6 * 256);
    CHECK(heap_in_use() - base <= 64 * 1024);
    eryx__vfs_free(vfs);
}

/* Directory snapshots are host memory the guest controls (one per open
 * directory being listed): they count against a per-vfs bound, and past
 * it listing fails with ENOMEM instead of growing the host. */
TEST_CASE(test_list_quota)
{
    eryx__vfs *vfs = eryx__vfs_new(512u << 10);
    REQUIRE(vfs && eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/tmp/many"), 0);
    for (int i = 0; i < 2000; i++) {
        char name[64];
        snprintf(name, sizeof name, "/tmp/many/entry-with-a-longish-name-%05d", i);
        eryx__vfs_file *f = open_ok(vfs, name, RW | ERYX__VFS_O_CREAT);
        eryx__vfs_close(f);
    }
    eryx__vfs_set_list_quota(vfs, 1u << 20);
    eryx__vfs_file *dirs[100];
    int listed = 0, rc = 0;
    for (int i = 0; i < 100; i++) {
        dirs[i] = open_ok(vfs, "/tmp/many", ERYX__VFS_O_READ | ERYX__VFS_O_DIRECTORY);
        eryx__vfs_dirent e;
        rc = eryx__vfs_readdir(dirs[i], 0, &e);
        if (rc == 0)
            listed++;
        else
            CHECK_INT(rc, -ENOMEM);
    }
    /* ~180 KB per listing of 2000 entries: a handful fit in 1 MiB plus
     * the /tmp quota. */
    CHECK(listed >= 3 && listed <= 10);
    for (int i = 0; i < 100; i++)
        eryx__vfs_close(dirs[i]);
    /* Closing gives the memory back: listing works again, in full. */
    eryx__vfs_file *d = open_ok(vfs, "/tmp/many", ERYX__VFS_O_READ | ERYX__VFS_O_DIRECTORY);
    eryx__vfs_dirent e;
    uint64_t c = 0;
    while (eryx__vfs_readdir(d, c, &e) == 0)
        c++;
    CHECK_INT(c, 2000);
    /* A clone of a vfs with a listing open carries it within its bound. */
    eryx__vfs_file *cf;
    eryx__vfs *copy = eryx__vfs_clone(vfs, &d, 1, &cf);
    REQUIRE(copy);
    CHECK_INT(eryx__vfs_readdir(cf, 1999, &e), 0);
    eryx__vfs_close(cf);
    eryx__vfs_free(copy);
    /* Saving lists on the host's account: the guest's listings, holding
     * the whole bound, do not make the session unsaveable. */
    eryx__vfs_file *hog[10];
    for (int i = 0; i < 10; i++) {
        hog[i] = open_ok(vfs, "/tmp/many", ERYX__VFS_O_READ | ERYX__VFS_O_DIRECTORY);
        eryx__vfs_readdir(hog[i], 0, &e);
    }
    eryx__blob b = {0};
    eryx__vfs_saved *saved = NULL;
    CHECK_INT(eryx__vfs_save_tmp(vfs, &b, &saved), 0);
    eryx__vfs_saved_free(saved);
    free(b.p);
    for (int i = 0; i < 10; i++)
        eryx__vfs_close(hog[i]);
    eryx__vfs_close(d);
    eryx__vfs_free(vfs);
}

TEST_MAIN()
