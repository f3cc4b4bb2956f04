/*
 * The VFS path resolver (src/vfs/vfs.c): eryx__vfs_path_join on arbitrary
 * bases and guest paths, then the joined path through the path operations
 * of a tree with every kind of mount (fuzz_tree.h).
 *
 * Input: op byte, cap byte, base selector byte, then the guest path (the
 * rest; a fuzzed base, when selected, is the path up to its first NUL).
 * Properties of a join that succeeds: the result is absolute, normalised
 * (no empty, "." or ".." component, no trailing slash), no longer than
 * the buffer, and a fixed point of joining again. Anything the tree then
 * does with it must not crash or leak (ASan, UBSan, LSan).
 */
#include <errno.h>

#include "fuzz_tree.h"
#include "vfs/vfs_ops.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_tree_init();
    return 0;
}

static void check_normalised(const char *p, int len, size_t cap)
{
    FUZZ_CHECK(len >= 1 && (size_t)len < cap && strlen(p) == (size_t)len);
    FUZZ_CHECK(p[0] == '/');
    FUZZ_CHECK(len == 1 || p[len - 1] != '/');
    for (const char *c = p + 1; len > 1 && c <= p + len;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        FUZZ_CHECK(n > 0 && n <= ERYX__VFS_NAME_MAX);
        FUZZ_CHECK(!(n == 1 && c[0] == '.') && !(n == 2 && c[0] == '.' && c[1] == '.'));
        c += n + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const bases[] = {"/", "/tmp", "/usr/lib/python3.13", "/data", "/data/d",
                                        "/usr", ""};
    fuzz_in in = {data, size};
    uint8_t op = fuzz_u8(&in), capb = fuzz_u8(&in), sel = fuzz_u8(&in);
    char base[ERYX__VFS_PATH_MAX], out[ERYX__VFS_PATH_MAX], again[ERYX__VFS_PATH_MAX];
    const char *path = (const char *)in.p;
    size_t path_len = in.n;
    if (sel % 8 < 7) {
        snprintf(base, sizeof base, "%s", bases[sel % 8]);
    } else {
        const uint8_t *nul = memchr(in.p, '\0', in.n);
        size_t n = nul ? (size_t)(nul - in.p) : in.n;
        n = n < sizeof base - 1 ? n : sizeof base - 1;
        memcpy(base, in.p, n);
        base[n] = '\0';
        path += nul ? n + 1 : n;
        path_len -= nul ? n + 1 : n;
    }
    /* Small buffers exercise the length checks; most inputs get the full one. */
    size_t cap = capb < 0x40 ? (size_t)capb : sizeof out;
    int trailing = -1;
    int len = eryx__vfs_path_join(base, path, path_len, out, cap, &trailing);
    if (len < 0) {
        FUZZ_CHECK(len == -ENAMETOOLONG || len == -EINVAL);
        return 0;
    }
    FUZZ_CHECK(trailing == (path_len > 0 && path[path_len - 1] == '/'));
    check_normalised(out, len, cap);
    FUZZ_CHECK(eryx__vfs_path_join("/", out, (size_t)len, again, sizeof again, NULL) == len);
    FUZZ_CHECK(strcmp(out, again) == 0);

    /* The joined path through the tree (a fresh one: nothing carries over). */
    eryx__vfs *vfs = fuzz_tree_vfs();
    eryx__vfs_attr st;
    eryx__vfs_file *f = NULL;
    char link[ERYX__VFS_PATH_MAX];
    size_t n;
    switch (op % 8) {
    case 0:
        (void)eryx__vfs_stat(vfs, out, op & 8, &st);
        break;
    case 1:
        if (eryx__vfs_open(vfs, out, op >> 3, &f) == 0) {
            const char *fp = eryx__vfs_file_path(f);
            check_normalised(fp, (int)strlen(fp), ERYX__VFS_PATH_MAX);
            char b[64];
            (void)eryx__vfs_pread(f, b, sizeof b, 0, &n);
            (void)eryx__vfs_fstat(f, &st);
            eryx__vfs_dirent ent;
            for (uint64_t cookie = 0; cookie < 8 && eryx__vfs_readdir(f, cookie, &ent) == 0;
                 cookie++)
                FUZZ_CHECK(ent.name_len > 0 && !memchr(ent.name, '/', ent.name_len));
            eryx__vfs_close(f);
        }
        break;
    case 2:
        (void)eryx__vfs_mkdir(vfs, out);
        (void)eryx__vfs_stat(vfs, out, 0, &st);
        (void)eryx__vfs_rmdir(vfs, out);
        break;
    case 3:
        (void)eryx__vfs_unlink(vfs, out);
        break;
    case 4:
        if (eryx__vfs_readlink(vfs, out, link, sizeof link, &n) == 0)
            FUZZ_CHECK(n <= sizeof link);
        break;
    case 5:
        (void)eryx__vfs_rename(vfs, out, base[0] == '/' ? base : "/tmp/x");
        (void)eryx__vfs_rename(vfs, "/tmp", out);
        break;
    case 6:
        if (eryx__vfs_open(vfs, out, ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT, &f) == 0) {
            (void)eryx__vfs_pwrite(f, path, path_len < 4096 ? path_len : 4096, op, &n);
            (void)eryx__vfs_ftruncate(f, op);
            eryx__vfs_close(f);
        }
        break;
    default:
        (void)eryx__vfs_utimes(vfs, out, op & 8, 1, 2, op >> 4);
        break;
    }
    eryx__vfs_free(vfs);
    return 0;
}
