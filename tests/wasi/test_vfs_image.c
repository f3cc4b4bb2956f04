/*
 * Read-only images: validation of malformed images, lookups, directory
 * listing of the root and nested directories, ENOENT/ENOTDIR, refused
 * writes, and path normalisation of the VFS front.
 */
#include <errno.h>

#include "testutil.h"

static const img_file files[] = {
    {"os.py", "import sys\n"},
    {"json/__init__.py", "# json\n"},
    {"json/decoder.py", "decoder"},
    {"json/sub/deep.py", "deep"},
    {"json-x.py", "sorts between json and json/"},
    {"zz.txt", ""},
};

TEST_CASE(test_validate)
{
    size_t size;
    uint8_t *img = img_build(files, sizeof files / sizeof files[0], &size);
    CHECK_INT(eryx__image_validate(img, size), 0);
    CHECK_INT(eryx__image_validate(img, 15), -1);
    CHECK_INT(eryx__image_validate(NULL, size), -1);
    /* A truncated image: data offsets beyond its end. */
    CHECK_INT(eryx__image_validate(img, size - 1), -1);
    /* Bad magic. */
    img[0] = 'X';
    CHECK_INT(eryx__image_validate(img, size), -1);
    img[0] = 'E';
    /* An entry count that overflows the header arithmetic. */
    uint8_t saved[4];
    memcpy(saved, img + 8, 4);
    wr32(img + 8, 0xffffffffu);
    CHECK_INT(eryx__image_validate(img, size), -1);
    memcpy(img + 8, saved, 4);
    /* A path offset near 2^32. */
    memcpy(saved, img + 16, 4);
    wr32(img + 16, 0xfffffff0u);
    CHECK_INT(eryx__image_validate(img, size), -1);
    memcpy(img + 16, saved, 4);
    CHECK_INT(eryx__image_validate(img, size), 0);
    free(img);

    static const char *bad[][2] = {
        {"/abs", "x"}, {"a/../b", "x"}, {"a/./b", "x"}, {"a//b", "x"}, {"a/", "x"}, {"", "x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        img_file f = {bad[i][0], bad[i][1]};
        img = img_build(&f, 1, &size);
        CHECK_INT(eryx__image_validate(img, size), -1);
        free(img);
    }
    /* Unsorted / duplicate entries, and a path that is both file and dir. */
    img_file dup[] = {{"a", "1"}, {"a", "2"}};
    img = img_build(dup, 2, &size);
    CHECK_INT(eryx__image_validate(img, size), -1);
    free(img);
    img_file both[] = {{"a", "1"}, {"a-b", "2"}, {"a/b", "3"}};
    img = img_build(both, 3, &size);
    CHECK_INT(eryx__image_validate(img, size), -1);
    free(img);
    img_file two[] = {{"b", "1"}, {"a", "2"}};
    img = img_build(two, 2, &size);
    memcpy(img + 16, img + 32, 16);     /* entry 0 := entry 1: not strictly sorted */
    CHECK_INT(eryx__image_validate(img, size), -1);
    free(img);
}

TEST_CASE(test_path_join)
{
    char out[ERYX__VFS_PATH_MAX];
    int ts;
    static const char *cases[][3] = {
        {"/", "usr/lib", "/usr/lib"},
        {"/", "a/../../../etc/passwd", "/etc/passwd"},
        {"/tmp", "../..//x/./y/", "/x/y"},
        {"/tmp", "/abs/../z", "/z"},
        {"/", "", "/"},
        {"/", "..", "/"},
        {"/a/b", ".", "/a/b"},
        {"/", "././/", "/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = eryx__vfs_path_join(cases[i][0], cases[i][1], strlen(cases[i][1]), out,
                                    sizeof out, &ts);
        CHECK(n > 0);
        CHECK_STR(out, cases[i][2]);
    }
    eryx__vfs_path_join("/", "x/", 2, out, sizeof out, &ts);
    CHECK_INT(ts, 1);
    CHECK_INT(eryx__vfs_path_join("/", "a\0b", 3, out, sizeof out, NULL), -EINVAL);
    char longname[300];
    memset(longname, 'n', sizeof longname);
    CHECK_INT(eryx__vfs_path_join("/", longname, sizeof longname, out, sizeof out, NULL),
              -ENAMETOOLONG);
    char *huge = malloc(10000);
    REQUIRE(huge);
    for (int i = 0; i < 10000; i++)
        huge[i] = i % 2 ? '/' : 'a';
    CHECK_INT(eryx__vfs_path_join("/", huge, 10000, out, sizeof out, NULL), -ENAMETOOLONG);
    free(huge);
}

static void list_dir(eryx__vfs *vfs, const char *path, char *out, size_t cap)
{
    eryx__vfs_file *f;
    out[0] = '\0';
    REQUIRE(eryx__vfs_open(vfs, path, ERYX__VFS_O_READ | ERYX__VFS_O_DIRECTORY, &f) == 0);
    eryx__vfs_dirent d;
    for (uint64_t c = 0; eryx__vfs_readdir(f, c, &d) == 0; c++) {
        strncat(out, d.name, cap - strlen(out) - 3);
        strcat(out, d.type == ERYX__VFS_T_DIR ? "/ " : " ");
    }
    eryx__vfs_close(f);
}

TEST_CASE(test_lookup)
{
    size_t size;
    uint8_t *img = img_build(files, sizeof files / sizeof files[0], &size);
    eryx__vfs *vfs = eryx__vfs_new(1 << 20);
    REQUIRE(vfs);
    CHECK_INT(eryx__vfs_mount_image(vfs, "/usr/lib/python3.13", img, size), 0);
    CHECK_INT(eryx__vfs_mount_tmp(vfs, "/tmp"), 0);
    CHECK(eryx__vfs_mount_image(vfs, "/bad", img, size - 1) < 0);

    eryx__vfs_attr st;
    CHECK_INT(eryx__vfs_stat(vfs, "/usr/lib/python3.13/os.py", 1, &st), 0);
    CHECK_INT(st.type, ERYX__VFS_T_REG);
    CHECK_INT(st.size, 11);
    CHECK_INT(eryx__vfs_stat(vfs, "/usr/lib/python3.13/json", 1, &st), 0);
    CHECK_INT(st.type, ERYX__VFS_T_DIR);
    CHECK_INT(eryx__vfs_stat(vfs, "/usr/lib/python3.13/json/sub", 1, &st), 0);
    CHECK_INT(st.type, ERYX__VFS_T_DIR);
    CHECK_INT(eryx__vfs_stat(vfs, "/usr/lib/python3.13/js", 1, &st), -ENOENT);
    CHECK_INT(eryx__vfs_stat(vfs, "/usr/lib/python3.13/json/nope.py", 1, &st), -ENOENT);
    CHECK_INT(eryx__vfs_stat(vfs, "/usr/lib/python3.13/os.py/x", 1, &st), -ENOTDIR);
    CHECK_INT(eryx__vfs_stat(vfs, "/usr", 1, &st), 0);
    CHECK_INT(st.type, ERYX__VFS_T_DIR);
    CHECK_INT(eryx__vfs_stat(vfs, "/usr/lib/../lib/python3.13/./os.py", 1, &st), 0);
    CHECK_INT(eryx__vfs_stat(vfs, "/etc", 1, &st), -ENOENT);

    char buf[512];
    list_dir(vfs, "/", buf, sizeof buf);
    CHECK_STR(buf, "usr/ tmp/ ");
    list_dir(vfs, "/usr/lib", buf, sizeof buf);
    CHECK_STR(buf, "python3.13/ ");
    list_dir(vfs, "/usr/lib/python3.13", buf, sizeof buf);
    CHECK_STR(buf, "json-x.py json/ os.py zz.txt ");    /* entry order: '-' < '/' */
    list_dir(vfs, "/usr/lib/python3.13/json", buf, sizeof buf);
    CHECK_STR(buf, "__init__.py decoder.py sub/ ");
    list_dir(vfs, "/usr/lib/python3.13/json/sub", buf, sizeof buf);
    CHECK_STR(buf, "deep.py ");

    eryx__vfs_file *f;
    CHECK_INT(eryx__vfs_open(vfs, "/usr/lib/python3.13/json/decoder.py", ERYX__VFS_O_READ, &f),
              0);
    char data[32] = {0};
    size_t n;
    CHECK_INT(eryx__vfs_pread(f, data, sizeof data, 3, &n), 0);
    CHECK_INT(n, 4);
    CHECK_MEM(data, "oder", 4);
    CHECK_INT(eryx__vfs_pread(f, data, sizeof data, 1000, &n), 0);
    CHECK_INT(n, 0);
    CHECK_INT(eryx__vfs_pwrite(f, "x", 1, 0, &n), -EBADF);
    CHECK_INT(eryx__vfs_ftruncate(f, 0), -EBADF);
    CHECK_INT(eryx__vfs_readdir(f, 0, &(eryx__vfs_dirent){0}), -ENOTDIR);
    eryx__vfs_close(f);

    const char *osp = "/usr/lib/python3.13/os.py";
    CHECK_INT(eryx__vfs_open(vfs, osp, ERYX__VFS_O_WRITE, &f), -EROFS);
    CHECK_INT(eryx__vfs_open(vfs, osp, ERYX__VFS_O_READ | ERYX__VFS_O_TRUNC, &f), -EROFS);
    CHECK_INT(eryx__vfs_open(vfs, "/usr/lib/python3.13/new", ERYX__VFS_O_CREAT, &f), -EROFS);
    CHECK_INT(eryx__vfs_open(vfs, osp, ERYX__VFS_O_DIRECTORY, &f), -ENOTDIR);
    CHECK_INT(eryx__vfs_open(vfs, "/usr/lib/python3.13/json", ERYX__VFS_O_WRITE, &f), -EISDIR);
    CHECK_INT(eryx__vfs_open(vfs, "/new", ERYX__VFS_O_CREAT | ERYX__VFS_O_WRITE, &f), -EROFS);
    CHECK_INT(eryx__vfs_open(vfs, "/nope", ERYX__VFS_O_READ, &f), -ENOENT);
    CHECK_INT(eryx__vfs_unlink(vfs, osp), -EROFS);
    CHECK_INT(eryx__vfs_unlink(vfs, "/usr/lib/python3.13/missing"), -ENOENT);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/usr/lib/python3.13/d"), -EROFS);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/usr/lib/python3.13/json"), -EEXIST);
    CHECK_INT(eryx__vfs_mkdir(vfs, "/usr"), -EEXIST);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/usr/lib/python3.13/json"), -EROFS);
    CHECK_INT(eryx__vfs_rmdir(vfs, "/tmp"), -EBUSY);
    CHECK_INT(eryx__vfs_rename(vfs, osp, "/tmp/os.py"), -EROFS);
    CHECK_INT(eryx__vfs_utimes(vfs, osp, 1, 0, 0, ERYX__VFS_SET_MTIM_NOW), -EROFS);
    size_t len;
    CHECK_INT(eryx__vfs_readlink(vfs, osp, data, sizeof data, &len), -EINVAL);

    eryx__vfs_free(vfs);
    free(img);
}

/* The stdlib image has ~1500 files; lookups must stay fast and correct. */
TEST_CASE(test_many)
{
    enum { N = 2000 };
    img_file *fs = malloc(N * sizeof *fs);
    char(*names)[32] = malloc(N * sizeof *names);
    REQUIRE(fs && names);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "pkg%02d/mod%04d.py", i % 50, i);
        fs[i] = (img_file){names[i], "x"};
    }
    size_t size;
    uint8_t *img = img_build(fs, N, &size);
    eryx__vfs *vfs = eryx__vfs_new(0);
    CHECK_INT(eryx__vfs_mount_image(vfs, "/lib", img, size), 0);
    eryx__vfs_attr st;
    for (int i = 0; i < N; i++) {
        char p[64];
        snprintf(p, sizeof p, "/lib/%s", names[i]);
        if (eryx__vfs_stat(vfs, p, 1, &st) != 0 || st.type != ERYX__VFS_T_REG)
            CHECK_FAIL_("stat %s", p);
    }
    eryx__vfs_file *f;
    CHECK_INT(eryx__vfs_open(vfs, "/lib", ERYX__VFS_O_READ, &f), 0);
    eryx__vfs_dirent d;
    uint64_t c = 0;
    while (eryx__vfs_readdir(f, c, &d) == 0)
        c++;
    CHECK_INT(c, 50);
    eryx__vfs_close(f);
    eryx__vfs_free(vfs);
    free(img);
    free(fs);
    free(names);
}

TEST_MAIN()
