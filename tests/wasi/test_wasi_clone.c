/*
 * eryx__wasi_clone: the copy keeps every fd (numbers, offsets, flags), args,
 * environment and stdin position; /tmp is copied, so changes on either side
 * are invisible to the other; unlinked-but-open files and directory listings
 * survive; host mounts work in both; output starts empty. Prints what a
 * clone costs (not asserted).
 */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "wasi/wasi_internal.h"

static wasm_rt_memory_t *mem;
static uint8_t *image;
static char host_root[64];

enum { P_PATH = 256, P_IOV = 1024, P_OUT = 1100, P_STAT = 1200, P_BUF = 4096 };

#define RW_RIGHTS (WASI_RIGHT_FD_READ | WASI_RIGHT_FD_SEEK | WASI_RIGHT_FD_TELL | \
                   WASI_RIGHT_FD_FILESTAT_GET | WASI_RIGHT_FD_READDIR | WASI_RIGHTS_WRITE)

static eryx__wasi *new_wasi(int with_host)
{
    static const img_file files[] = {{"os.py", "import abc\n"}, {"abc.py", "class A: pass\n"}};
    static size_t size;
    if (!image)
        image = img_build(files, 2, &size);
    eryx__vfs *vfs = eryx__vfs_new(8 << 20);
    REQUIRE(vfs);
    REQUIRE(eryx__vfs_mount_image(vfs, "/usr/lib/python3.13", image, size) == 0);
    REQUIRE(eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    /* valgrind does not know openat2: host mounts are tested where they work. */
    if (with_host && eryx__vfs_mount_host(vfs, "/data", host_root, 0) != 0)
        fprintf(stderr, "note: host mount unavailable, skipping that part\n");
    static const char *const argv[] = {"python", "-c", "pass", NULL};
    static const char *const envp[] = {"A=1", "PYTHONHOME=/usr", NULL};
    eryx__wasi_config cfg = {argv, envp, vfs, 1 << 20};
    eryx__wasi *w = eryx__wasi_new(&cfg);
    REQUIRE(w);
    eryx__wasi_set_memory(w, mem);
    return w;
}

static int64_t open_rights(eryx__wasi *w, const char *path, uint32_t oflags, uint32_t fdflags,
                           uint64_t rights)
{
    uint32_t n = put_str(mem, P_PATH, path);
    uint32_t rc = W(path_open)(w, 3, WASI_LOOKUP_SYMLINK_FOLLOW, P_PATH, n, oflags, rights,
                               WASI_RIGHTS_ALL, fdflags, P_OUT);
    return rc ? -(int64_t)rc : (int64_t)ld32(mem, P_OUT);
}

/* Reads up to len bytes from fd at its offset into out (NUL-terminated). */
static int64_t open_at(eryx__wasi *w, const char *path, uint32_t oflags, uint32_t fdflags)
{
    return open_rights(w, path, oflags, fdflags, RW_RIGHTS);
}

static int64_t read_str(eryx__wasi *w, uint32_t fd, uint32_t len, char *out)
{
    put_iov(mem, P_IOV, P_BUF, len);
    uint32_t rc = W(fd_read)(w, fd, P_IOV, 1, P_OUT);
    if (rc)
        return -(int64_t)rc;
    uint32_t n = ld32(mem, P_OUT);
    memcpy(out, mem->data + P_BUF, n);
    out[n] = '\0';
    return n;
}

static int64_t write_str(eryx__wasi *w, uint32_t fd, const char *s)
{
    uint32_t n = put_str(mem, P_BUF, s);
    put_iov(mem, P_IOV, P_BUF, n);
    uint32_t rc = W(fd_write)(w, fd, P_IOV, 1, P_OUT);
    return rc ? -(int64_t)rc : (int64_t)ld32(mem, P_OUT);
}

static uint64_t tell(eryx__wasi *w, uint32_t fd)
{
    CHECK_INT(W(fd_tell)(w, fd, P_OUT), 0);
    return ld64(mem, P_OUT);
}

static uint32_t unlink_path(eryx__wasi *w, const char *p)
{
    return W(path_unlink_file)(w, 3, P_PATH, put_str(mem, P_PATH, p));
}

/* Whether path exists, seen through w. */
static int exists(eryx__wasi *w, const char *p)
{
    uint32_t n = put_str(mem, P_PATH, p);
    return W(path_filestat_get)(w, 3, 0, P_PATH, n, P_STAT) == 0;
}

TEST_CASE(test_clone_files)
{
    eryx__wasi *w = new_wasi(0);
    CHECK_INT(W(path_create_directory)(w, 3, P_PATH, put_str(mem, P_PATH, "tmp/d")), 0);
    int64_t a = open_at(w, "tmp/d/a.txt", WASI_O_CREAT, 0);
    REQUIRE(a > 3);
    CHECK_INT(write_str(w, (uint32_t)a, "hello, world"), 12);
    CHECK_INT(W(fd_seek)(w, (uint32_t)a, 7, WASI_WHENCE_SET, P_OUT), 0);
    int64_t b = open_at(w, "tmp/b.log", WASI_O_CREAT, WASI_FDFLAG_APPEND);
    REQUIRE(b > a);
    CHECK_INT(write_str(w, (uint32_t)b, "log1;"), 5);
    /* An unlinked file kept alive by its fd, and a second fd on it. */
    int64_t u = open_at(w, "tmp/gone", WASI_O_CREAT, 0);
    CHECK_INT(write_str(w, (uint32_t)u, "ghost"), 5);
    CHECK_INT(unlink_path(w, "tmp/gone"), 0);
    int64_t img = open_rights(w, "usr/lib/python3.13/os.py", 0, 0,
                              RW_RIGHTS & ~(uint64_t)WASI_RIGHTS_WRITE);
    REQUIRE(img > 0);
    char s[256];
    CHECK_INT(read_str(w, (uint32_t)img, 7, s), 7);
    /* A free slot below an open one must stay free. */
    int64_t hole = open_at(w, "tmp/d/a.txt", 0, 0);
    int64_t after = open_at(w, "tmp/b.log", 0, 0);
    CHECK_INT(W(fd_close)(w, (uint32_t)hole), 0);
    uint8_t stdin_bytes[] = "line1\nline2\n";
    REQUIRE(eryx__wasi_set_stdin(w, stdin_bytes, 12) == 0);
    put_iov(mem, P_IOV, P_BUF, 6);
    CHECK_INT(W(fd_read)(w, 0, P_IOV, 1, P_OUT), 0);
    CHECK_INT(write_str(w, 1, "out-before"), 10);
    uint64_t used = eryx__vfs_tmp_used(w->vfs);

    eryx__wasi *c = eryx__wasi_clone(w);
    REQUIRE(c);
    eryx__wasi_set_memory(c, mem);

    /* Same table: offsets, flags, the hole, the image file. */
    CHECK_INT(tell(c, (uint32_t)a), 7);
    CHECK_INT(tell(c, (uint32_t)img), 7);
    CHECK_INT(W(fd_fdstat_get)(c, (uint32_t)hole, P_STAT), WASI_EBADF);
    CHECK_INT(W(fd_fdstat_get)(c, (uint32_t)b, P_STAT), 0);
    CHECK_INT(mem->data[P_STAT + 2] & WASI_FDFLAG_APPEND, WASI_FDFLAG_APPEND);
    CHECK_INT(W(fd_prestat_get)(c, 3, P_STAT), 0);
    CHECK_INT(read_str(c, (uint32_t)a, 100, s), 5);
    CHECK_STR(s, "world");
    CHECK_INT(read_str(c, (uint32_t)img, 100, s), 4);
    CHECK_STR(s, "abc\n");
    CHECK_INT(read_str(c, (uint32_t)after, 100, s), 5);
    CHECK_STR(s, "log1;");
    CHECK(eryx__vfs_tmp_used(c->vfs) > 0 && eryx__vfs_tmp_used(c->vfs) <= used);
    /* Stdin continues where the original was; output starts empty. */
    CHECK_INT(read_str(c, 0, 100, s), 6);
    CHECK_STR(s, "line2\n");
    size_t len;
    eryx__wasi_output(c, 1, &len, NULL);
    CHECK_INT(len, 0);
    eryx__wasi_output(w, 1, &len, NULL);
    CHECK_INT(len, 10);
    /* Args and environment. */
    CHECK_INT(W(environ_sizes_get)(c, P_OUT, P_OUT + 4), 0);
    CHECK_INT(ld32(mem, P_OUT), 2);
    CHECK_INT(W(environ_get)(c, P_STAT, P_BUF), 0);
    CHECK_STR((char *)mem->data + ld32(mem, P_STAT + 4), "PYTHONHOME=/usr");
    CHECK_INT(W(args_sizes_get)(c, P_OUT, P_OUT + 4), 0);
    CHECK_INT(ld32(mem, P_OUT), 3);

    /* The unlinked file: same contents, separate copies. */
    CHECK_INT(W(fd_seek)(c, (uint32_t)u, 0, WASI_WHENCE_SET, P_OUT), 0);
    CHECK_INT(read_str(c, (uint32_t)u, 100, s), 5);
    CHECK_STR(s, "ghost");
    CHECK_INT(write_str(c, (uint32_t)u, "-clone"), 6);
    CHECK_INT(W(fd_seek)(w, (uint32_t)u, 0, WASI_WHENCE_SET, P_OUT), 0);
    CHECK_INT(read_str(w, (uint32_t)u, 100, s), 5);
    CHECK_STR(s, "ghost");

    /* Writes in either are invisible to the other. */
    CHECK_INT(write_str(c, (uint32_t)b, "clone;"), 6);
    CHECK_INT(write_str(w, (uint32_t)b, "orig;"), 5);
    int64_t rb = open_at(c, "tmp/b.log", 0, 0);
    CHECK_INT(read_str(c, (uint32_t)rb, 100, s), 11);
    CHECK_STR(s, "log1;clone;");
    int64_t wb = open_at(w, "tmp/b.log", 0, 0);
    CHECK_INT(read_str(w, (uint32_t)wb, 100, s), 10);
    CHECK_STR(s, "log1;orig;");
    CHECK_INT(rb, wb);      /* both took the same lowest free slot */
    CHECK_INT(unlink_path(c, "tmp/d/a.txt"), 0);
    CHECK(!exists(c, "tmp/d/a.txt"));
    CHECK(exists(w, "tmp/d/a.txt"));
    int64_t n = open_at(w, "tmp/new", WASI_O_CREAT, 0);
    CHECK(n > 0);
    CHECK(exists(w, "tmp/new"));
    CHECK(!exists(c, "tmp/new"));
    /* The clone's fd on the file it unlinked still reads it. */
    CHECK_INT(W(fd_seek)(c, (uint32_t)a, 0, WASI_WHENCE_SET, P_OUT), 0);
    CHECK_INT(read_str(c, (uint32_t)a, 100, s), 12);

    /* Closing in one leaves the other's fd alone. */
    CHECK_INT(W(fd_close)(c, (uint32_t)a), 0);
    CHECK_INT(W(fd_seek)(w, (uint32_t)a, 0, WASI_WHENCE_CUR, P_OUT), 0);
    CHECK_INT(ld64(mem, P_OUT), 7);

    /* A clone of the clone, then the original goes first. */
    eryx__wasi *cc = eryx__wasi_clone(c);
    REQUIRE(cc);
    eryx__wasi_free(w);
    eryx__wasi_set_memory(cc, mem);
    CHECK(!exists(cc, "tmp/d/a.txt"));
    CHECK(exists(cc, "tmp/b.log"));
    CHECK_INT(W(fd_fdstat_get)(cc, (uint32_t)a, P_STAT), WASI_EBADF);
    eryx__wasi_free(c);
    eryx__wasi_free(cc);
}

TEST_CASE(test_clone_readdir)
{
    eryx__wasi *w = new_wasi(0);
    for (int i = 0; i < 5; i++) {
        char p[32];
        snprintf(p, sizeof p, "tmp/f%d", i);
        int64_t fd = open_at(w, p, WASI_O_CREAT, 0);
        CHECK_INT(W(fd_close)(w, (uint32_t)fd), 0);
    }
    int64_t d = open_at(w, "tmp", WASI_O_DIRECTORY, 0);
    REQUIRE(d > 0);
    /* Page through the first entries, then clone: the cookie continues. */
    CHECK_INT(W(fd_readdir)(w, (uint32_t)d, P_BUF, 64, 0, P_OUT), 0);
    eryx__wasi *c = eryx__wasi_clone(w);
    REQUIRE(c);
    eryx__wasi_set_memory(c, mem);
    CHECK_INT(W(fd_readdir)(c, (uint32_t)d, P_BUF, 4096, 2, P_OUT), 0);
    uint32_t used = ld32(mem, P_OUT);
    /* Entries 2.. (f2, f3, f4): three dirents of 24 bytes + 2-byte names. */
    CHECK_INT(used, 3 * (24 + 2));
    eryx__wasi_free(w);
    eryx__wasi_free(c);
}

TEST_CASE(test_clone_host)
{
    eryx__wasi *w = new_wasi(1);
    if (!exists(w, "data")) {
        eryx__wasi_free(w);
        return;
    }
    int64_t f = open_at(w, "data/h.txt", WASI_O_CREAT | WASI_O_TRUNC, 0);
    REQUIRE(f > 0);
    CHECK_INT(write_str(w, (uint32_t)f, "host!"), 5);
    eryx__wasi *c = eryx__wasi_clone(w);
    REQUIRE(c);
    eryx__wasi_set_memory(c, mem);
    eryx__wasi_free(w);         /* the clone's descriptors are its own */
    char s[64];
    CHECK_INT(tell(c, (uint32_t)f), 5);
    CHECK_INT(write_str(c, (uint32_t)f, "+clone"), 6);
    int64_t r = open_at(c, "data/h.txt", 0, 0);
    CHECK_INT(read_str(c, (uint32_t)r, 100, s), 11);
    CHECK_STR(s, "host!+clone");
    CHECK_INT(W(path_create_directory)(c, 3, P_PATH, put_str(mem, P_PATH, "data/sub")), 0);
    CHECK(exists(c, "data/sub"));
    eryx__wasi_free(c);
    char path[128];
    snprintf(path, sizeof path, "%s/h.txt", host_root);
    CHECK_INT(unlink(path), 0);
    snprintf(path, sizeof path, "%s/sub", host_root);
    CHECK_INT(rmdir(path), 0);
}

TEST_CASE(test_clone_quota)
{
    /* The copy is charged: a full /tmp clones into a full /tmp. */
    eryx__vfs *vfs = eryx__vfs_new(64 << 10);
    REQUIRE(vfs && eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    eryx__vfs_file *f;
    REQUIRE(eryx__vfs_open(vfs, "/tmp/x", ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT, &f) == 0);
    static char buf[40000];
    size_t n;
    CHECK_INT(eryx__vfs_pwrite(f, buf, sizeof buf, 0, &n), 0);
    eryx__vfs_file *copy;
    eryx__vfs *c = eryx__vfs_clone(vfs, &f, 1, &copy);
    REQUIRE(c && copy);
    CHECK(eryx__vfs_tmp_used(c) >= sizeof buf);
    CHECK_INT(eryx__vfs_pwrite(copy, buf, sizeof buf, sizeof buf, &n), -ENOSPC);
    eryx__vfs_close(copy);
    eryx__vfs_close(f);
    eryx__vfs_free(c);
    eryx__vfs_free(vfs);
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* Not asserted: what cloning costs for an empty /tmp, many small files, and
 * a few MiB of data. */
TEST_CASE(report_cost)
{
    eryx__wasi *w = new_wasi(0);
    double t0 = now_us();
    for (int i = 0; i < 100; i++) {
        eryx__wasi *c = eryx__wasi_clone(w);
        REQUIRE(c);
        eryx__wasi_free(c);
    }
    double empty = (now_us() - t0) / 100;
    for (int i = 0; i < 1000; i++) {
        char p[32];
        snprintf(p, sizeof p, "tmp/f%d", i);
        int64_t fd = open_at(w, p, WASI_O_CREAT, 0);
        CHECK_INT(write_str(w, (uint32_t)fd, "x"), 1);
        CHECK_INT(W(fd_close)(w, (uint32_t)fd), 0);
    }
    t0 = now_us();
    eryx__wasi_free(eryx__wasi_clone(w));
    double files = now_us() - t0;
    int64_t big = open_at(w, "tmp/big", WASI_O_CREAT, 0);
    eryx__vfs_file *bf = NULL;
    REQUIRE(eryx__vfs_open(w->vfs, "/tmp/big", ERYX__VFS_O_WRITE, &bf) == 0);
    static char mb[1 << 20];
    memset(mb, 1, sizeof mb);
    size_t n;
    for (int i = 0; i < 4; i++)
        CHECK_INT(eryx__vfs_pwrite(bf, mb, sizeof mb, (uint64_t)i << 20, &n), 0);
    eryx__vfs_close(bf);
    (void)big;
    t0 = now_us();
    eryx__wasi_free(eryx__wasi_clone(w));
    double data = now_us() - t0;
    printf("clone: empty /tmp %.1f us, +1000 files %.0f us, +4 MiB %.0f us\n", empty, files,
           data);
    eryx__wasi_free(w);
}

/* The lowest free descriptor when the case began. */
static int fds_before;

static void setup(void)
{
    mem = gmem_new(2);
    snprintf(host_root, sizeof host_root, "/tmp/eryx-clone-XXXXXX");
    REQUIRE(mkdtemp(host_root));
    fds_before = open("/dev/null", O_RDONLY);
    close(fds_before);
}

static void teardown(void)
{
    /* Every descriptor a clone made was closed again. */
    int fds_after = open("/dev/null", O_RDONLY);
    close(fds_after);
    CHECK_INT(fds_after, fds_before);
    rmdir(host_root);
    gmem_free(mem);
    free(image);
    image = NULL;
}

TEST_MAIN_WITH(setup, teardown)
