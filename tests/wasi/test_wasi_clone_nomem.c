/*
 * eryx__wasi_clone under allocation failure: the N-th allocation made by the
 * vfs/wasi code fails, for every N until a clone succeeds. Each failed clone
 * must return NULL and leave nothing allocated or open (ASan and valgrind
 * check the leaks), and the original must be unharmed. The test links with
 * --wrap for the allocation functions, which affects only our objects.
 */
#include <fcntl.h>
#include <unistd.h>

#include "testutil.h"

#include "failing_alloc.h"

TEST_CASE(test_clone_every_allocation_failing)
{
    wasm_rt_memory_t *mem = gmem_new(1);
    static const img_file files[] = {{"a.py", "A"}};
    size_t size;
    uint8_t *image = img_build(files, 1, &size);
    char host[] = "/tmp/eryx-clone-nomem-XXXXXX";
    REQUIRE(mkdtemp(host));
    eryx__vfs *vfs = eryx__vfs_new(1 << 20);
    REQUIRE(vfs && eryx__vfs_mount_image(vfs, "/lib", image, size) == 0);
    REQUIRE(eryx__vfs_mount_tmp(vfs, "/tmp") == 0);
    int have_host = eryx__vfs_mount_host(vfs, "/h", host, 0) == 0;
    static const char *const argv[] = {"py", NULL};
    eryx__wasi_config cfg = {argv, NULL, vfs, 1024};
    eryx__wasi *w = eryx__wasi_new(&cfg);
    REQUIRE(w);
    eryx__wasi_set_memory(w, mem);
    /* Some state: directories, files, an unlinked open file, a listing. */
    const char *paths[] = {"tmp/d", "tmp/d/e"};
    for (int i = 0; i < 2; i++)
        CHECK_INT(W(path_create_directory)(w, 3, 0, put_str(mem, 0, paths[i])), 0);
    const char *open_paths[] = {"tmp/d/e/f", "tmp/g", "tmp/gone", "lib/a.py", "tmp/d", "h/x"};
    for (int i = 0; i < (have_host ? 6 : 5); i++) {
        uint32_t n = put_str(mem, 0, open_paths[i]);
        uint32_t of = i < 3 || i == 5 ? WASI_O_CREAT : 0;
        uint64_t rights = i == 3 || i == 4 ? WASI_RIGHT_FD_READ | WASI_RIGHT_FD_READDIR
                                           : WASI_RIGHTS_ALL;
        CHECK_INT(W(path_open)(w, 3, 0, 0, n, of, rights, 0, 0, 256), 0);
        if (i < 3) {
            put_iov(mem, 512, 0, 5);
            CHECK_INT(W(fd_write)(w, ld32(mem, 256), 512, 1, 600), 0);
        }
        if (i == 4)
            CHECK_INT(W(fd_readdir)(w, ld32(mem, 256), 1024, 200, 0, 600), 0);
    }
    CHECK_INT(W(path_unlink_file)(w, 3, 0, put_str(mem, 0, "tmp/gone")), 0);
    REQUIRE(eryx__wasi_set_stdin(w, "in", 2) == 0);

    int fd_mark = open("/dev/null", O_RDONLY);
    close(fd_mark);
    long n;
    eryx__wasi *c = NULL;
    for (n = 1; n < 10000 && !c; n++) {
        count = 0;
        fail_at = n;
        c = eryx__wasi_clone(w);
        fail_at = 0;
    }
    printf("clone succeeded once %ld allocations could be made\n", n - 2);
    REQUIRE(c);
    CHECK(n > 10);
    /* The survivor works, and no failed attempt left a descriptor open. */
    eryx__wasi_set_memory(c, mem);
    CHECK_INT(W(path_filestat_get)(c, 3, 0, 0, put_str(mem, 0, "tmp/d/e/f"), 256), 0);
    CHECK_INT(ld64(mem, 256 + 32), 5);
    eryx__wasi_free(c);
    int fd_now = open("/dev/null", O_RDONLY);
    close(fd_now);
    CHECK_INT(fd_now, fd_mark);
    CHECK_INT(W(path_filestat_get)(w, 3, 0, 0, put_str(mem, 0, "tmp/d/e/f"), 256), 0);
    eryx__wasi_free(w);
    if (have_host) {
        char p[64];
        snprintf(p, sizeof p, "%s/x", host);
        unlink(p);
    }
    rmdir(host);
    free(image);
    gmem_free(mem);
}

TEST_MAIN()
