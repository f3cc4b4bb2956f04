/*
 * The file imports end to end, as wasi-libc drives them: the "/" preopen,
 * path_open with rights, fd_read/seek/tell/pread/pwrite, fd_readdir paging
 * with cookies, /tmp lifecycle, append, renumber, fd exhaustion, and the
 * refusals (read-only image, escapes by "..").
 */
#include <errno.h>

#include "testutil.h"

static wasm_rt_memory_t *mem;
static uint8_t *image;

/* Scratch layout in guest memory. */
enum { P_PATH = 256, P_PATH2 = 512, P_IOV = 1024, P_OUT = 1100, P_STAT = 1200,
       P_BUF = 4096, P_BUF_LEN = 8192 };

#define READ_RIGHTS (WASI_RIGHT_FD_READ | WASI_RIGHT_FD_SEEK | WASI_RIGHT_FD_TELL | \
                     WASI_RIGHT_FD_FILESTAT_GET | WASI_RIGHT_FD_READDIR)
#define RW_RIGHTS (READ_RIGHTS | WASI_RIGHTS_WRITE | WASI_RIGHT_FD_FILESTAT_SET_TIMES | \
                   WASI_RIGHT_FD_SYNC | WASI_RIGHT_FD_ADVISE | WASI_RIGHT_FD_FDSTAT_SET_FLAGS)

/* The instance of the running case, made by setup. */
static eryx__wasi *case_w;

static eryx__wasi *new_wasi(void)
{
    static const img_file files[] = {
        {"os.py", "import abc\n"}, {"json/__init__.py", "J"}, {"json/decoder.py", "D"},
        {"json/encoder.py", "E"}, {"json/tool.py", "T"}, {"abc.py", "class ABC: pass\n"},
    };
    size_t size;
    free(image);
    image = img_build(files, sizeof files / sizeof files[0], &size);
    eryx__vfs *vfs = eryx__vfs_new(1 << 20);
    REQUIRE(vfs);
    REQUIRE(eryx__vfs_mount_image(vfs, "/usr/lib/python3.13", image, size) == 0);
    REQUIRE(eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    eryx__wasi_config cfg = {NULL, NULL, vfs, 1 << 20};
    eryx__wasi *w = eryx__wasi_new(&cfg);
    REQUIRE(w);
    eryx__wasi_set_memory(w, mem);
    return w;
}

/* path_open relative to dirfd; returns the new fd or -(WASI errno). */
static int64_t open_at(eryx__wasi *w, uint32_t dirfd, const char *path, uint32_t oflags,
                       uint64_t rights, uint32_t fdflags)
{
    uint32_t n = put_str(mem, P_PATH, path);
    uint32_t rc = W(path_open)(w, dirfd, WASI_LOOKUP_SYMLINK_FOLLOW, P_PATH, n, oflags, rights,
                               WASI_RIGHTS_ALL, fdflags, P_OUT);
    return rc ? -(int64_t)rc : (int64_t)ld32(mem, P_OUT);
}

static int64_t read_fd(eryx__wasi *w, uint32_t fd, uint32_t len)
{
    put_iov(mem, P_IOV, P_BUF, len);
    uint32_t rc = W(fd_read)(w, fd, P_IOV, 1, P_OUT);
    return rc ? -(int64_t)rc : (int64_t)ld32(mem, P_OUT);
}

static int64_t write_fd(eryx__wasi *w, uint32_t fd, const char *s)
{
    uint32_t n = put_str(mem, P_BUF, s);
    put_iov(mem, P_IOV, P_BUF, n);
    uint32_t rc = W(fd_write)(w, fd, P_IOV, 1, P_OUT);
    return rc ? -(int64_t)rc : (int64_t)ld32(mem, P_OUT);
}

static uint32_t path_call(eryx__wasi *w, uint32_t (*fn)(eryx__wasi *, uint32_t, uint32_t,
                                                         uint32_t), const char *path)
{
    return fn(w, 3, P_PATH, put_str(mem, P_PATH, path));
}

TEST_CASE(test_preopen)
{
    eryx__wasi *w = case_w;
    CHECK_INT(W(fd_prestat_get)(w, 3, P_STAT), 0);
    CHECK_INT(mem->data[P_STAT], 0);
    CHECK_INT(ld32(mem, P_STAT + 4), 1);
    CHECK_INT(W(fd_prestat_dir_name)(w, 3, P_BUF, 1), 0);
    CHECK_INT(mem->data[P_BUF], '/');
    CHECK_INT(W(fd_prestat_dir_name)(w, 3, P_BUF, 0), WASI_ENAMETOOLONG);
    CHECK_INT(W(fd_prestat_get)(w, 4, P_STAT), WASI_EBADF);
    CHECK_INT(W(fd_prestat_get)(w, 1, P_STAT), WASI_EBADF);
    CHECK_INT(W(fd_fdstat_get)(w, 3, P_STAT), 0);
    CHECK_INT(mem->data[P_STAT], WASI_FILETYPE_DIRECTORY);
    CHECK_INT(ld64(mem, P_STAT + 16), WASI_RIGHTS_ALL);
}

TEST_CASE(test_image_files)
{
    eryx__wasi *w = case_w;
    int64_t fd = open_at(w, 3, "usr/lib/python3.13/os.py", 0, READ_RIGHTS, 0);
    REQUIRE(fd > 3);
    CHECK_INT(read_fd(w, (uint32_t)fd, 6), 6);
    CHECK_MEM(mem->data + P_BUF, "import", 6);
    CHECK_INT(read_fd(w, (uint32_t)fd, 100), 5);
    CHECK_INT(read_fd(w, (uint32_t)fd, 100), 0);
    CHECK_INT(W(fd_tell)(w, (uint32_t)fd, P_OUT), 0);
    CHECK_INT(ld64(mem, P_OUT), 11);
    CHECK_INT(W(fd_seek)(w, (uint32_t)fd, (uint64_t)-4, WASI_WHENCE_END, P_OUT), 0);
    CHECK_INT(ld64(mem, P_OUT), 7);
    CHECK_INT(read_fd(w, (uint32_t)fd, 100), 4);
    CHECK_MEM(mem->data + P_BUF, "abc\n", 4);
    CHECK_INT(W(fd_seek)(w, (uint32_t)fd, (uint64_t)-100, WASI_WHENCE_CUR, P_OUT), WASI_EINVAL);
    CHECK_INT(W(fd_seek)(w, (uint32_t)fd, 0, 9, P_OUT), WASI_EINVAL);
    CHECK_INT(W(fd_seek)(w, (uint32_t)fd, (uint64_t)INT64_MAX, WASI_WHENCE_END, P_OUT),
              WASI_EINVAL);
    put_iov(mem, P_IOV, P_BUF, 3);
    CHECK_INT(W(fd_pread)(w, (uint32_t)fd, P_IOV, 1, 7, P_OUT), 0);
    CHECK_MEM(mem->data + P_BUF, "abc", 3);
    CHECK_INT(W(fd_filestat_get)(w, (uint32_t)fd, P_STAT), 0);
    CHECK_INT(mem->data[P_STAT + 16], WASI_FILETYPE_REGULAR_FILE);
    CHECK_INT(ld64(mem, P_STAT + 32), 11);
    /* Writes to the read-only image fail. */
    CHECK_INT(write_fd(w, (uint32_t)fd, "x"), -WASI_EBADF);
    CHECK_INT(W(fd_filestat_set_size)(w, (uint32_t)fd, 0), WASI_EBADF);
    CHECK_INT(W(fd_fdstat_get)(w, (uint32_t)fd, P_STAT), 0);
    CHECK_INT(ld64(mem, P_STAT + 8) & WASI_RIGHT_FD_WRITE, 0);
    CHECK_INT(W(fd_close)(w, (uint32_t)fd), 0);
    CHECK_INT(W(fd_close)(w, (uint32_t)fd), WASI_EBADF);

    CHECK_INT(open_at(w, 3, "usr/lib/python3.13/os.py", 0, RW_RIGHTS, 0), -WASI_EROFS);
    CHECK_INT(open_at(w, 3, "usr/lib/python3.13/new.py", WASI_O_CREAT, RW_RIGHTS, 0),
              -WASI_EROFS);
    CHECK_INT(open_at(w, 3, "usr/lib/python3.13/nope.py", 0, READ_RIGHTS, 0), -WASI_ENOENT);
    CHECK_INT(open_at(w, 3, "usr/lib/python3.13/os.py/x", 0, READ_RIGHTS, 0), -WASI_ENOTDIR);
    CHECK_INT(open_at(w, 3, "usr/lib/python3.13/os.py/", 0, READ_RIGHTS, 0), -WASI_ENOTDIR);
    CHECK_INT(open_at(w, 3, "usr/lib/python3.13/os.py", WASI_O_DIRECTORY, READ_RIGHTS, 0),
              -WASI_ENOTDIR);
    /* ".." cannot climb out of "/": this is /usr/lib/python3.13/os.py. */
    fd = open_at(w, 3, "../../../usr/lib/python3.13/json/../os.py", 0, READ_RIGHTS, 0);
    CHECK(fd > 3);
    W(fd_close)(w, (uint32_t)fd);
    CHECK_INT(open_at(w, 3, "../../../etc/passwd", 0, READ_RIGHTS, 0), -WASI_ENOENT);
    CHECK_INT(path_call(w, W(path_unlink_file), "usr/lib/python3.13/os.py"), WASI_EROFS);
    CHECK_INT(path_call(w, W(path_create_directory), "usr/lib/python3.13/x"), WASI_EROFS);
    CHECK_INT(path_call(w, W(path_remove_directory), "usr/lib/python3.13/json"), WASI_EROFS);

    /* Relative to a directory fd (which needs the right to open through). */
    int64_t dir = open_at(w, 3, "usr/lib/python3.13/json", WASI_O_DIRECTORY,
                          READ_RIGHTS | WASI_RIGHT_PATH_OPEN, 0);
    REQUIRE(dir > 3);
    fd = open_at(w, (uint32_t)dir, "tool.py", 0, READ_RIGHTS, 0);
    CHECK(fd > 3);
    CHECK_INT(read_fd(w, (uint32_t)fd, 10), 1);
    CHECK_INT(mem->data[P_BUF], 'T');
    /* A file is not a directory fd. */
    CHECK_INT(open_at(w, (uint32_t)fd, "x", 0, READ_RIGHTS, 0), -WASI_ENOTDIR);
    CHECK_INT(open_at(w, 99, "x", 0, READ_RIGHTS, 0), -WASI_EBADF);
    W(fd_close)(w, (uint32_t)fd);
    W(fd_close)(w, (uint32_t)dir);
}

/* Lists a directory through fd_readdir with a buffer of buf_len bytes,
 * paging by cookie like wasi-libc; returns the names space-separated. */
static void readdir_all(eryx__wasi *w, uint32_t fd, uint32_t buf_len, char *out)
{
    uint64_t cookie = 0;
    out[0] = '\0';
    for (int guard = 0; guard < 100; guard++) {
        REQUIRE(W(fd_readdir)(w, fd, P_BUF, buf_len, cookie, P_OUT) == 0);
        uint32_t used = ld32(mem, P_OUT), off = 0;
        while (off + WASI_DIRENT_SIZE <= used) {
            uint32_t namlen = ld32(mem, P_BUF + off + 16);
            if (off + WASI_DIRENT_SIZE + namlen > used)
                break;  /* clipped: ask again from this entry's cookie */
            strncat(out, (char *)mem->data + P_BUF + off + WASI_DIRENT_SIZE, namlen);
            strcat(out, " ");
            cookie = ld64(mem, P_BUF + off);
            off += WASI_DIRENT_SIZE + namlen;
        }
        if (used < buf_len)
            return;
    }
    CHECK_FAIL_("readdir did not finish");
}

/* Another image served at a mount (the packages with their bytecode,
 * src/core/image.c): refused while a file of the mount is open, then every
 * new lookup sees the new image only. */
TEST_CASE(test_replace_image)
{
    eryx__wasi *w = case_w;
    static const img_file next[] = {{"json/__init__.py", "J2"}, {"new.py", "N"}};
    size_t size;
    uint8_t *img = img_build(next, 2, &size);
    const char *mount = "/usr/lib/python3.13";
    int64_t fd = open_at(w, 3, "usr/lib/python3.13/json", WASI_O_DIRECTORY, READ_RIGHTS, 0);
    REQUIRE(fd > 3);
    CHECK_INT(eryx__wasi_replace_image(w, mount, img, size), -EBUSY);
    CHECK_INT(W(fd_close)(w, (uint32_t)fd), 0);
    /* Files elsewhere (the preopen, /tmp) do not hold it. */
    fd = open_at(w, 3, "tmp/x", WASI_O_CREAT, RW_RIGHTS, 0);
    REQUIRE(fd > 3);
    CHECK_INT(eryx__wasi_replace_image(w, mount, img, size - 1), -EINVAL);
    CHECK_INT(eryx__wasi_replace_image(w, "/usr/lib", img, size), -ENOENT);
    CHECK_INT(eryx__wasi_replace_image(w, "/tmp", img, size), -EBUSY);
    CHECK_INT(eryx__wasi_replace_image(w, mount, img, size), 0);
    CHECK_INT(W(fd_close)(w, (uint32_t)fd), 0);
    CHECK_INT(eryx__wasi_replace_image(w, "/tmp", img, size), -ENOENT);
    CHECK_INT(open_at(w, 3, "usr/lib/python3.13/os.py", 0, READ_RIGHTS, 0), -WASI_ENOENT);
    fd = open_at(w, 3, "usr/lib/python3.13/json/__init__.py", 0, READ_RIGHTS, 0);
    REQUIRE(fd > 3);
    CHECK_INT(read_fd(w, (uint32_t)fd, 100), 2);
    CHECK_MEM(mem->data + P_BUF, "J2", 2);
    CHECK_INT(W(fd_close)(w, (uint32_t)fd), 0);
    CHECK(open_at(w, 3, "usr/lib/python3.13/new.py", 0, READ_RIGHTS, 0) > 3);
    /* The vfs frees with the case; the image must outlive it. */
    free(image);
    image = img;
}

TEST_CASE(test_readdir)
{
    eryx__wasi *w = case_w;
    char names[512];
    readdir_all(w, 3, 4096, names);
    CHECK_STR(names, "usr tmp ");
    int64_t dir = open_at(w, 3, "usr/lib/python3.13/json", WASI_O_DIRECTORY, READ_RIGHTS, 0);
    REQUIRE(dir > 3);
    readdir_all(w, (uint32_t)dir, 4096, names);
    CHECK_STR(names, "__init__.py decoder.py encoder.py tool.py ");
    /* A buffer that holds about one entry at a time: clipping and cookies. */
    readdir_all(w, (uint32_t)dir, 40, names);
    CHECK_STR(names, "__init__.py decoder.py encoder.py tool.py ");
    /* Resuming from cookie 2 gives the third entry onwards. */
    CHECK_INT(W(fd_readdir)(w, (uint32_t)dir, P_BUF, 4096, 2, P_OUT), 0);
    CHECK_INT(ld32(mem, P_BUF + 16), strlen("encoder.py"));
    CHECK_INT(ld64(mem, P_BUF), 3);
    CHECK_INT(mem->data[P_BUF + 20], WASI_FILETYPE_REGULAR_FILE);
    CHECK_INT(W(fd_readdir)(w, (uint32_t)dir, P_BUF, 4096, 1000, P_OUT), 0);
    CHECK_INT(ld32(mem, P_OUT), 0);
    W(fd_close)(w, (uint32_t)dir);
    int64_t fd = open_at(w, 3, "usr/lib/python3.13/os.py", 0, READ_RIGHTS, 0);
    CHECK_INT(W(fd_readdir)(w, (uint32_t)fd, P_BUF, 4096, 0, P_OUT), WASI_ENOTDIR);
    W(fd_close)(w, (uint32_t)fd);
}

TEST_CASE(test_tmp)
{
    eryx__wasi *w = case_w;
    int64_t fd = open_at(w, 3, "tmp/f.txt", WASI_O_CREAT | WASI_O_EXCL, RW_RIGHTS, 0);
    REQUIRE(fd > 3);
    CHECK_INT(write_fd(w, (uint32_t)fd, "hello"), 5);
    CHECK_INT(write_fd(w, (uint32_t)fd, " world"), 6);
    CHECK_INT(W(fd_seek)(w, (uint32_t)fd, 0, WASI_WHENCE_SET, P_OUT), 0);
    CHECK_INT(read_fd(w, (uint32_t)fd, 100), 11);
    CHECK_MEM(mem->data + P_BUF, "hello world", 11);
    put_str(mem, P_BUF, "J");
    put_iov(mem, P_IOV, P_BUF, 1);
    CHECK_INT(W(fd_pwrite)(w, (uint32_t)fd, P_IOV, 1, 0, P_OUT), 0);
    CHECK_INT(W(fd_tell)(w, (uint32_t)fd, P_OUT), 0);
    CHECK_INT(ld64(mem, P_OUT), 11);
    CHECK_INT(W(fd_filestat_set_size)(w, (uint32_t)fd, 5), 0);
    CHECK_INT(W(fd_filestat_get)(w, (uint32_t)fd, P_STAT), 0);
    CHECK_INT(ld64(mem, P_STAT + 32), 5);
    CHECK_INT(W(fd_allocate)(w, (uint32_t)fd, 0, 64), 0);
    CHECK_INT(W(fd_filestat_get)(w, (uint32_t)fd, P_STAT), 0);
    CHECK_INT(ld64(mem, P_STAT + 32), 64);
    CHECK_INT(W(fd_filestat_set_times)(w, (uint32_t)fd, 1, 2, WASI_FST_ATIM | WASI_FST_MTIM), 0);
    CHECK_INT(W(fd_filestat_set_times)(w, (uint32_t)fd, 1, 2, WASI_FST_ATIM | WASI_FST_ATIM_NOW),
              WASI_EINVAL);
    put_str(mem, P_PATH, "tmp/f.txt");
    CHECK_INT(W(path_filestat_get)(w, 3, 0, P_PATH, 9, P_STAT), 0);
    CHECK_INT(ld64(mem, P_STAT + 48), 2);
    CHECK_INT(W(fd_sync)(w, (uint32_t)fd), 0);
    CHECK_INT(W(fd_datasync)(w, (uint32_t)fd), 0);
    CHECK_INT(W(fd_advise)(w, (uint32_t)fd, 0, 0, 1), 0);
    W(fd_close)(w, (uint32_t)fd);

    /* O_CREAT makes regular files only: with O_DIRECTORY it is refused
     * (it made a file), and a name ending in a slash is EISDIR. Neither
     * leaves anything behind. */
    CHECK_INT(open_at(w, 3, "tmp/nd", WASI_O_CREAT | WASI_O_DIRECTORY, RW_RIGHTS, 0),
              -WASI_EINVAL);
    CHECK_INT(open_at(w, 3, "tmp/nd/", WASI_O_CREAT, RW_RIGHTS, 0), -WASI_EISDIR);
    put_str(mem, P_PATH, "tmp/nd");
    CHECK_INT(W(path_filestat_get)(w, 3, 0, P_PATH, 6, P_STAT), WASI_ENOENT);
    CHECK_INT(open_at(w, 3, "tmp", WASI_O_CREAT | WASI_O_DIRECTORY, READ_RIGHTS, 0),
              -WASI_EINVAL);
    CHECK_INT(open_at(w, 3, "tmp", WASI_O_CREAT, READ_RIGHTS, 0), -WASI_EISDIR);

    /* Append mode writes at the end whatever the position. */
    fd = open_at(w, 3, "tmp/f.txt", WASI_O_TRUNC, RW_RIGHTS, WASI_FDFLAG_APPEND);
    REQUIRE(fd > 3);
    CHECK_INT(write_fd(w, (uint32_t)fd, "ab"), 2);
    CHECK_INT(W(fd_seek)(w, (uint32_t)fd, 0, WASI_WHENCE_SET, P_OUT), 0);
    CHECK_INT(write_fd(w, (uint32_t)fd, "cd"), 2);
    CHECK_INT(W(fd_seek)(w, (uint32_t)fd, 0, WASI_WHENCE_SET, P_OUT), 0);
    CHECK_INT(read_fd(w, (uint32_t)fd, 100), 4);
    CHECK_MEM(mem->data + P_BUF, "abcd", 4);
    CHECK_INT(W(fd_fdstat_get)(w, (uint32_t)fd, P_STAT), 0);
    CHECK_INT(mem->data[P_STAT + 2], WASI_FDFLAG_APPEND);
    CHECK_INT(W(fd_fdstat_set_flags)(w, (uint32_t)fd, 0), 0);
    CHECK_INT(W(fd_fdstat_set_rights)(w, (uint32_t)fd, WASI_RIGHT_FD_READ, 0), 0);
    CHECK_INT(write_fd(w, (uint32_t)fd, "x"), -WASI_EBADF);
    CHECK_INT(W(fd_fdstat_set_rights)(w, (uint32_t)fd, WASI_RIGHTS_ALL, 0), WASI_ENOTCAPABLE);

    /* Unlinked while open: still readable. */
    CHECK_INT(path_call(w, W(path_unlink_file), "tmp/f.txt"), 0);
    CHECK_INT(path_call(w, W(path_unlink_file), "tmp/f.txt"), WASI_ENOENT);
    put_iov(mem, P_IOV, P_BUF, 100);
    CHECK_INT(W(fd_pread)(w, (uint32_t)fd, P_IOV, 1, 0, P_OUT), 0);
    CHECK_INT(ld32(mem, P_OUT), 4);
    W(fd_close)(w, (uint32_t)fd);

    /* Directories, rename, trailing slashes, normalised paths. */
    CHECK_INT(path_call(w, W(path_create_directory), "tmp/d"), 0);
    CHECK_INT(path_call(w, W(path_create_directory), "tmp/d"), WASI_EEXIST);
    fd = open_at(w, 3, "tmp/d/../d/./g", WASI_O_CREAT, RW_RIGHTS, 0);
    CHECK(fd > 3);
    W(fd_close)(w, (uint32_t)fd);
    uint32_t n1 = put_str(mem, P_PATH, "tmp/d/g"), n2 = put_str(mem, P_PATH2, "tmp/h");
    CHECK_INT(W(path_rename)(w, 3, P_PATH, n1, 3, P_PATH2, n2), 0);
    CHECK_INT(W(path_rename)(w, 3, P_PATH, n1, 3, P_PATH2, n2), WASI_ENOENT);
    n1 = put_str(mem, P_PATH, "tmp/h");
    n2 = put_str(mem, P_PATH2, "usr/lib/python3.13/h");
    CHECK_INT(W(path_rename)(w, 3, P_PATH, n1, 3, P_PATH2, n2), WASI_EROFS);
    CHECK_INT(path_call(w, W(path_unlink_file), "tmp/h/"), WASI_ENOTDIR);
    CHECK_INT(path_call(w, W(path_unlink_file), "tmp/d/"), WASI_EISDIR);
    CHECK_INT(path_call(w, W(path_remove_directory), "tmp/d"), 0);
    CHECK_INT(path_call(w, W(path_remove_directory), "tmp"), WASI_EBUSY);
    put_str(mem, P_PATH, "tmp/h/");
    CHECK_INT(W(path_filestat_get)(w, 3, 0, P_PATH, 6, P_STAT), WASI_ENOTDIR);
    put_str(mem, P_PATH, "/tmp/h");
    CHECK_INT(W(path_filestat_get)(w, 3, 0, P_PATH, 6, P_STAT), 0);
    CHECK_INT(W(path_filestat_set_times)(w, 3, 0, P_PATH, 6, 0, 9, WASI_FST_MTIM), 0);
    CHECK_INT(W(path_readlink)(w, 3, P_PATH, 6, P_BUF, 10, P_OUT), WASI_EINVAL);
    n2 = put_str(mem, P_PATH2, "tmp/link");
    CHECK_INT(W(path_symlink)(w, P_PATH, 6, 3, P_PATH2, n2), WASI_ENOTSUP);
    CHECK_INT(W(path_link)(w, 3, 0, P_PATH, 6, 3, P_PATH2, n2), WASI_ENOTSUP);
    memcpy(mem->data + P_PATH, "tmp/\0x", 6);
    CHECK_INT(W(path_open)(w, 3, 0, P_PATH, 6, 0, READ_RIGHTS, 0, 0, P_OUT), WASI_EINVAL);
}

/* path_open through dirfd with the given base and inheriting rights;
 * returns the new fd or -(WASI errno). */
static int64_t open_rights(eryx__wasi *w, uint32_t dirfd, const char *path, uint32_t oflags,
                           uint64_t rights, uint64_t inherit)
{
    uint32_t n = put_str(mem, P_PATH, path);
    uint32_t rc = W(path_open)(w, dirfd, 0, P_PATH, n, oflags, rights, inherit, 0, P_OUT);
    return rc ? -(int64_t)rc : (int64_t)ld32(mem, P_OUT);
}

/* Rights are a barrier, not decoration: a directory fd passes on at most
 * its inheriting rights, path operations need the directory's rights, and
 * fd operations the fd's (ENOTCAPABLE; EBADF for the access-mode rights). */
TEST_CASE(test_rights)
{
    eryx__wasi *w = case_w;
    int64_t fd = open_at(w, 3, "tmp/r.txt", WASI_O_CREAT, RW_RIGHTS, 0);
    REQUIRE(fd > 3);
    W(fd_close)(w, (uint32_t)fd);
    /* A directory that may open and list, and hand out read rights only. */
    uint64_t dir_rights = WASI_RIGHT_PATH_OPEN | WASI_RIGHT_FD_READDIR |
                          WASI_RIGHT_PATH_FILESTAT_GET;
    int64_t dir = open_rights(w, 3, "tmp", WASI_O_DIRECTORY, dir_rights, READ_RIGHTS);
    REQUIRE(dir > 3);
    CHECK_INT(open_rights(w, (uint32_t)dir, "r.txt", 0, RW_RIGHTS, 0), -WASI_ENOTCAPABLE);
    CHECK_INT(open_rights(w, (uint32_t)dir, "r.txt", 0, READ_RIGHTS, WASI_RIGHTS_ALL),
              -WASI_ENOTCAPABLE);
    CHECK_INT(open_rights(w, (uint32_t)dir, "new.txt", WASI_O_CREAT, READ_RIGHTS, 0),
              -WASI_ENOTCAPABLE);
    CHECK_INT(open_rights(w, (uint32_t)dir, "r.txt", WASI_O_TRUNC, READ_RIGHTS, 0),
              -WASI_ENOTCAPABLE);
    fd = open_rights(w, (uint32_t)dir, "r.txt", 0, READ_RIGHTS, 0);
    REQUIRE(fd > 3);
    CHECK_INT(write_fd(w, (uint32_t)fd, "x"), -WASI_EBADF);
    CHECK_INT(W(fd_fdstat_get)(w, (uint32_t)fd, P_STAT), 0);
    CHECK_INT(ld64(mem, P_STAT + 8), READ_RIGHTS);
    /* Path operations through the directory need its rights. */
    CHECK_INT(W(path_filestat_get)(w, (uint32_t)dir, 0, P_PATH, put_str(mem, P_PATH, "r.txt"),
                                   P_STAT), 0);
    CHECK_INT(W(path_filestat_set_times)(w, (uint32_t)dir, 0, P_PATH, 5, 0, 0,
                                         WASI_FST_MTIM_NOW), WASI_ENOTCAPABLE);
    CHECK_INT(W(path_unlink_file)(w, (uint32_t)dir, P_PATH, 5), WASI_ENOTCAPABLE);
    CHECK_INT(W(path_create_directory)(w, (uint32_t)dir, P_PATH, 5), WASI_ENOTCAPABLE);
    CHECK_INT(W(path_remove_directory)(w, (uint32_t)dir, P_PATH, 5), WASI_ENOTCAPABLE);
    uint32_t n2 = put_str(mem, P_PATH2, "s.txt");
    CHECK_INT(W(path_rename)(w, (uint32_t)dir, P_PATH, 5, 3, P_PATH2, n2), WASI_ENOTCAPABLE);
    CHECK_INT(W(path_readlink)(w, (uint32_t)dir, P_PATH, 5, P_BUF, 10, P_OUT), WASI_ENOTCAPABLE);
    /* fd operations need the fd's rights; dropped rights do not come back. */
    CHECK_INT(W(fd_fdstat_set_rights)(w, (uint32_t)fd, WASI_RIGHT_FD_READ, 0), 0);
    CHECK_INT(W(fd_seek)(w, (uint32_t)fd, 1, WASI_WHENCE_SET, P_OUT), WASI_ENOTCAPABLE);
    CHECK_INT(W(fd_tell)(w, (uint32_t)fd, P_OUT), WASI_ENOTCAPABLE);
    CHECK_INT(W(fd_filestat_get)(w, (uint32_t)fd, P_STAT), WASI_ENOTCAPABLE);
    CHECK_INT(W(fd_filestat_set_times)(w, (uint32_t)fd, 0, 0, WASI_FST_MTIM_NOW),
              WASI_ENOTCAPABLE);
    CHECK_INT(W(fd_fdstat_set_flags)(w, (uint32_t)fd, WASI_FDFLAG_APPEND), WASI_ENOTCAPABLE);
    CHECK_INT(W(fd_advise)(w, (uint32_t)fd, 0, 0, 1), WASI_ENOTCAPABLE);
    CHECK_INT(W(fd_sync)(w, (uint32_t)fd), WASI_ENOTCAPABLE);
    CHECK_INT(read_fd(w, (uint32_t)fd, 10), 0);
    CHECK_INT(W(fd_fdstat_set_rights)(w, (uint32_t)fd, READ_RIGHTS, 0), WASI_ENOTCAPABLE);
    W(fd_close)(w, (uint32_t)fd);
    /* A directory without FD_READDIR cannot be listed, without PATH_OPEN
     * nothing opens through it. */
    CHECK_INT(W(fd_fdstat_set_rights)(w, (uint32_t)dir, WASI_RIGHT_PATH_FILESTAT_GET, 0), 0);
    CHECK_INT(W(fd_readdir)(w, (uint32_t)dir, P_BUF, 4096, 0, P_OUT), WASI_ENOTCAPABLE);
    CHECK_INT(open_rights(w, (uint32_t)dir, "r.txt", 0, 0, 0), -WASI_ENOTCAPABLE);
    W(fd_close)(w, (uint32_t)dir);
    CHECK_INT(path_call(w, W(path_unlink_file), "tmp/r.txt"), 0);
}

TEST_CASE(test_fd_table)
{
    eryx__wasi *w = case_w;
    int64_t a = open_at(w, 3, "usr/lib/python3.13/os.py", 0, READ_RIGHTS, 0);
    int64_t b = open_at(w, 3, "usr/lib/python3.13/abc.py", 0, READ_RIGHTS, 0);
    REQUIRE(a > 3 && b > a);
    CHECK_INT(W(fd_renumber)(w, (uint32_t)b, (uint32_t)a), 0);
    CHECK_INT(read_fd(w, (uint32_t)a, 5), 5);
    CHECK_MEM(mem->data + P_BUF, "class", 5);
    CHECK_INT(read_fd(w, (uint32_t)b, 5), -WASI_EBADF);
    CHECK_INT(W(fd_renumber)(w, (uint32_t)a, 500), WASI_EBADF);
    CHECK_INT(W(fd_renumber)(w, 500, (uint32_t)a), WASI_EBADF);
    W(fd_close)(w, (uint32_t)a);
    /* Open until the table is full: EMFILE, no crash; then all close. */
    int64_t last = 0, fd;
    int opened = 0;
    while ((fd = open_at(w, 3, "usr/lib/python3.13/os.py", 0, READ_RIGHTS, 0)) > 0) {
        last = fd;
        opened++;
        REQUIRE(opened < 5000);
    }
    CHECK_INT(fd, -WASI_EMFILE);
    CHECK_INT(last, 1023);
    for (int64_t i = 4; i <= last; i++)
        CHECK_INT(W(fd_close)(w, (uint32_t)i), 0);
    /* Closing stdout works; later opens may reuse its number. */
    CHECK_INT(W(fd_close)(w, 1), 0);
    CHECK_INT(write_fd(w, 1, "x"), -WASI_EBADF);
    CHECK_INT(open_at(w, 3, "usr/lib/python3.13/os.py", 0, READ_RIGHTS, 0), 1);
}

static void setup(void)
{
    mem = gmem_new(2);
    case_w = new_wasi();
}

static void teardown(void)
{
    eryx__wasi_free(case_w);
    gmem_free(mem);
    free(image);
    image = NULL;
}

TEST_MAIN_WITH(setup, teardown)
