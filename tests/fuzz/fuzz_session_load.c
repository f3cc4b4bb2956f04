/*
 * Session files (eryx_sandbox_load, src/core/session_file.c and the WASI
 * state of src/wasi/wasi_persist.c) from the fuzzer's bytes, written to a
 * file and loaded by one runtime.
 *
 * Input: a flags byte, the 128-byte header (zero-padded), then the WASI
 * state bytes. The memory is flags bits 1-2 + 1 zero pages: the guest's
 * memory is the guest's business, the host's decoders are the header and
 * the state. With flags bit 0 the harness makes the header pass its first
 * checks (magic, build id, sizes, checksum over memory and state), so that
 * the fuzzer reaches the state decoder and the globals; without, the
 * header is as given. With flags bit 3 the bytes are loaded from a memfd
 * (eryx_sandbox_load_fd) instead of the path: the same checks must hold
 * (one loader). Property: a file that loads saves again, and that save
 * loads too.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "fuzz_sandbox.h"

/* The header of src/core/session_file.c (session format "ERYXSES4"). */
enum { H_MAGIC = 0, H_BUILD = 8, H_MEM = 72, H_WASI = 80, H_CHECKSUM = 96, H_SIZE = 128 };

static char dir[64], path[128], path2[128];
static uint8_t build_id[64];

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void remove_dir(void)
{
    unlink(path);
    unlink(path2);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_runtime_init();
    snprintf(dir, sizeof dir, "/tmp/eryx-fuzz-session-XXXXXX");
    FUZZ_CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.img", dir);
    snprintf(path2, sizeof path2, "%s/again.img", dir);
    atexit(remove_dir);
    /* A real session with files in /tmp and open descriptors: its header
     * gives the build id, its WASI state a seed. */
    eryx_sandbox *sb = NULL;
    FUZZ_CHECK(eryx_sandbox_new(fuzz_rt, NULL, &sb) == ERYX_OK);
    fuzz_run_ok(sb, "import os\n"
                    "os.makedirs('/tmp/a/b')\n"
                    "with open('/tmp/a/b/f', 'wb') as f: f.write(bytes(range(256)))\n"
                    "os.utime('/tmp/a/b/f', ns=(1, 2))\n"
                    "keep = open('/tmp/a/b/f', 'rb'); keep.read(7)\n"
                    "gone = open('/tmp/gone', 'w+'); gone.write('x'); gone.flush()\n"
                    "os.unlink('/tmp/gone')\n"
                    "w = open('/tmp/w', 'a')\n");
    FUZZ_CHECK(eryx_sandbox_save(sb, path) == ERYX_OK);
    eryx_sandbox_free(sb);
    size_t n;
    uint8_t *file = fuzz_read_file(path, &n);
    FUZZ_CHECK(n >= H_SIZE);
    memcpy(build_id, file + H_BUILD, sizeof build_id);
    uint64_t mem = get64(file + H_MEM), wasi = get64(file + H_WASI);
    FUZZ_CHECK(H_SIZE + mem + wasi == n);
    /* The seed: flags (fix up, one page), the header, the state. */
    uint8_t *seed = malloc(1 + H_SIZE + wasi);
    FUZZ_CHECK(seed);
    seed[0] = 1;
    memcpy(seed + 1, file, H_SIZE);
    memcpy(seed + 1 + H_SIZE, file + H_SIZE + mem, wasi);
    fuzz_add_seed(*argc, *argv, "generated-session", seed, 1 + H_SIZE + wasi);
    free(seed);
    free(file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags = size ? data[0] : 0;
    const uint8_t *state = size > 1 + H_SIZE ? data + 1 + H_SIZE : NULL;
    size_t state_len = state ? size - 1 - H_SIZE : 0;
    size_t mem = ((size_t)(flags >> 1 & 3) + 1) * 65536u;
    size_t total = H_SIZE + mem + state_len;
    uint8_t *file = calloc(1, total);
    FUZZ_CHECK(file);
    if (size > 1)
        memcpy(file, data + 1, size - 1 < H_SIZE ? size - 1 : H_SIZE);
    if (state_len)
        memcpy(file + H_SIZE + mem, state, state_len);
    if (flags & 1) {
        memcpy(file + H_MAGIC, "ERYXSES4", 8);
        memcpy(file + H_BUILD, build_id, sizeof build_id);
        put64(file + H_MEM, mem);
        put64(file + H_WASI, state_len);
        put64(file + H_CHECKSUM, XXH3_64bits(file + H_SIZE, mem + state_len));
    }
    fuzz_write_file(path, file, total);

    eryx_sandbox *sb = NULL;
    int rc;
    if (flags & 8) {
        int fd = memfd_create("session", MFD_CLOEXEC);
        FUZZ_CHECK(fd >= 0 && write(fd, file, total) == (ssize_t)total);
        FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
        rc = eryx_sandbox_load_fd(fuzz_rt, NULL, fd, &sb);
        close(fd);
    } else {
        rc = eryx_sandbox_load(fuzz_rt, NULL, path, &sb);
    }
    free(file);
    if (rc != ERYX_OK) {
        FUZZ_CHECK(sb == NULL);
        FUZZ_CHECK(rc == ERYX_INVALID || rc == ERYX_IO);
        return 0;
    }
    rc = eryx_sandbox_save(sb, path2);
    if (rc != ERYX_OK)
        fprintf(stderr, "a loaded session does not save: %s\n", eryx_errmsg(sb));
    FUZZ_CHECK(rc == ERYX_OK);
    eryx_sandbox_free(sb);
    sb = NULL;
    rc = eryx_sandbox_load(fuzz_rt, NULL, path2, &sb);
    if (rc != ERYX_OK)
        fprintf(stderr, "a re-saved session does not load: %s\n", eryx_errmsg(NULL));
    FUZZ_CHECK(rc == ERYX_OK);
    eryx_sandbox_free(sb);
    return 0;
}
