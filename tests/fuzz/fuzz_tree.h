/*
 * The file tree the WASI and VFS harnesses fuzz: a read-only image at
 * /usr/lib/python3.13 (as the stdlib is mounted), the in-memory /tmp, and a
 * host directory mounted read-only at /data holding a file, a directory,
 * a FIFO and symlinks that try to climb out (relative, absolute, /proc).
 * The host directory is made once per process and removed at exit; a fresh
 * vfs is made per input, so no state carries over between inputs.
 */
#ifndef ERYX_TEST_FUZZ_TREE_H
#define ERYX_TEST_FUZZ_TREE_H

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "testutil.h" /* tests/wasi: image builder */

static char fuzz_host_dir[64];
static uint8_t *fuzz_image;
static size_t fuzz_image_size;

static void fuzz_tree_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_host_dir);
    if (fuzz_host_dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fuzz_host_dir);
}

static inline void fuzz_tree_init(void)
{
    static const img_file files[] = {
        {"os.py", "import abc\n"}, {"json/__init__.py", "J"}, {"json/decoder.py", "D"},
        {"encodings/utf_8.py", "U"}, {"abc.py", "class ABC: pass\n"},
    };
    fuzz_image = img_build(files, sizeof files / sizeof files[0], &fuzz_image_size);
    snprintf(fuzz_host_dir, sizeof fuzz_host_dir, "/tmp/eryx-fuzz-XXXXXX");
    FUZZ_CHECK(mkdtemp(fuzz_host_dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && mkdir -p d/sub && printf data > d/f.txt && mkfifo d/fifo && "
             "ln -s f.txt d/good && ln -s ../.. d/up && ln -s /etc d/abs && "
             "ln -s /proc/self/root d/proc && ln -s loop d/loop",
             fuzz_host_dir);
    FUZZ_CHECK(system(cmd) == 0);
    atexit(fuzz_tree_remove);
}

/* A fresh tree (tmp_quota 64 KiB); NULL never (aborts). */
static inline eryx__vfs *fuzz_tree_vfs(void)
{
    char host[128];
    snprintf(host, sizeof host, "%s/d", fuzz_host_dir);
    eryx__vfs *vfs = eryx__vfs_new(64 * 1024);
    FUZZ_CHECK(vfs);
    FUZZ_CHECK(eryx__vfs_mount_image(vfs, "/usr/lib/python3.13", fuzz_image,
                                     fuzz_image_size) == 0);
    FUZZ_CHECK(eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    FUZZ_CHECK(eryx__vfs_mount_host(vfs, "/data", host, 1) == 0);
    return vfs;
}

#endif
