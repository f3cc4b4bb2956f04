/*
 * Runtime image files (eryx_runtime_config.image_path, src/core/image_file.c)
 * from the fuzzer's bytes, written to a file and loaded as a runtime.
 *
 * Input: a flags byte, the first 256 bytes of the header (the rest of its
 * 4096-byte page is zeros), then the bytes after the memory (the packages'
 * image, the template's WASI state, the hot page runs). The memory is
 * flags bits 1-2 + 1 zero pages. With flags bit 0 the harness makes the
 * header pass its first checks (magic, build id, layout, sizes that add up,
 * checksum), splitting the tail bytes at the two 16-bit lengths that open
 * it, so that the fuzzer reaches the packages' validation, the WASI state
 * decoder, the hot runs and the globals; without, the header is as given.
 * With flags bit 3 the file is loaded with ERYX_RUNTIME_IMAGE_TRUSTED (no
 * checksum: a damaged file must be refused by the other checks, or load).
 * Property: a runtime that loads makes a sandbox (never run: its memory is
 * zeros) and saves an image that loads again.
 */
#include <unistd.h>
#include <xxhash.h>

#include "fuzz_sandbox.h"

/* The header of src/core/image_file.c ("ERYXRTI1"). */
enum {
    H_MAGIC = 0, H_BUILD = 8, H_HSIZE = 72, H_GSIZE = 76, H_MEM = 80, H_PKG = 88,
    H_WASI = 96, H_HOT = 104, H_CHECKSUM = 112, H_GLOBALS = 120, H_GIVEN = 256,
    H_PAGE = 4096
};

static char dir[64], path[128], path2[128];
static uint8_t real_header[H_GIVEN];
static int loaded; /* the last input gave a runtime */

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

static eryx_runtime *load(const char *p, unsigned flags)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    cfg.image_path = p;
    cfg.flags = flags;
    eryx_runtime *rt = NULL;
    int rc = eryx_runtime_new(&cfg, &rt);
    if (rc != ERYX_OK) {
        FUZZ_CHECK(rt == NULL);
        FUZZ_CHECK(rc == ERYX_INVALID || rc == ERYX_IO || rc == ERYX_NOMEM);
        FUZZ_CHECK(eryx_errmsg(NULL)[0] != 0);
        if (getenv("FUZZ_VERBOSE"))
            fprintf(stderr, "refused: %s\n", eryx_errmsg(NULL));
    }
    return rt;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_runtime_init();
    snprintf(dir, sizeof dir, "/tmp/eryx-fuzz-image-XXXXXX");
    FUZZ_CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/rt.img", dir);
    snprintf(path2, sizeof path2, "%s/again.img", dir);
    atexit(remove_dir);
    /* A real image: its header gives the build id, layout and globals; its
     * tail (no packages, the template's WASI state, the hot runs) a seed. */
    FUZZ_CHECK(eryx_runtime_save_image(fuzz_rt, path) == ERYX_OK);
    size_t n;
    uint8_t *file = fuzz_read_file(path, &n);
    FUZZ_CHECK(n >= H_PAGE);
    memcpy(real_header, file, H_GIVEN);
    uint64_t mem = get64(file + H_MEM), pkg = get64(file + H_PKG);
    uint64_t wasi = get64(file + H_WASI), hot = get64(file + H_HOT) * 16u;
    FUZZ_CHECK(H_PAGE + mem + pkg + wasi + hot == n && pkg == 0);
    /* The seed: flags (fix up, one page), the header, then the tail
     * opened by its two lengths (packages 0, WASI state); the hot runs,
     * which lie beyond a page of memory, left out. */
    size_t seed_len = 1 + H_GIVEN + 4 + wasi;
    uint8_t *seed = calloc(1, seed_len);
    FUZZ_CHECK(seed && wasi < 65536);
    seed[0] = 1;
    memcpy(seed + 1, file, H_GIVEN);
    seed[1 + H_GIVEN + 2] = (uint8_t)wasi;
    seed[1 + H_GIVEN + 3] = (uint8_t)(wasi >> 8);
    memcpy(seed + 1 + H_GIVEN + 4, file + H_PAGE + mem, wasi);
    fuzz_add_seed(*argc, *argv, "generated-image", seed, seed_len);
    /* The fix-up works: the real tail under a fixed-up header loads. */
    LLVMFuzzerTestOneInput(seed, seed_len);
    FUZZ_CHECK(loaded);
    free(seed);
    free(file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags = size ? data[0] : 0;
    const uint8_t *tail = size > 1 + H_GIVEN ? data + 1 + H_GIVEN : NULL;
    size_t tail_len = tail ? size - 1 - H_GIVEN : 0;
    size_t mem = ((size_t)(flags >> 1 & 3) + 1) * 65536u;
    uint8_t *file = calloc(1, H_PAGE + mem + tail_len);
    FUZZ_CHECK(file);
    if (size > 1)
        memcpy(file, data + 1, size - 1 < H_GIVEN ? size - 1 : H_GIVEN);
    size_t body = tail_len;
    if ((flags & 1) && tail_len >= 4) {
        /* Two lengths open the tail; what follows is the tail proper. */
        size_t pkg = (size_t)tail[0] | (size_t)tail[1] << 8;
        size_t wasi = (size_t)tail[2] | (size_t)tail[3] << 8;
        body = tail_len - 4;
        pkg = pkg > body ? body : pkg;
        wasi = wasi > body - pkg ? body - pkg : wasi;
        size_t hot = (body - pkg - wasi) / 16;
        body = pkg + wasi + hot * 16;
        memcpy(file + H_PAGE + mem, tail + 4, body);
        memcpy(file + H_MAGIC, "ERYXRTI1", 8);
        memcpy(file + H_BUILD, real_header + H_BUILD, H_CHECKSUM - H_BUILD);
        put64(file + H_MEM, mem);
        put64(file + H_PKG, pkg);
        put64(file + H_WASI, wasi);
        put64(file + H_HOT, hot);
        /* The globals as given, brought inside the memory: the stack
         * pointer and memory base 16-aligned, no interrupt words (the
         * sandboxes never run). */
        for (int i = 0; i < 2; i++) {
            uint8_t *g = file + H_GLOBALS + 4 * i;
            uint32_t v = ((uint32_t)g[0] | (uint32_t)g[1] << 8 | (uint32_t)g[2] << 16 |
                          (uint32_t)g[3] << 24) % (uint32_t)mem & ~15u;
            for (int b = 0; b < 4; b++)
                g[b] = (uint8_t)(v >> (8 * b));
        }
        memset(file + H_GLOBALS + 8, 0, 16);
        put64(file + H_CHECKSUM, 0);
        /* The header page, then the tail: the memory's pages are all zeros,
         * which the checksum leaves out. */
        XXH3_state_t *x = XXH3_createState();
        FUZZ_CHECK(x);
        XXH3_64bits_reset(x);
        XXH3_64bits_update(x, file, H_PAGE);
        XXH3_64bits_update(x, file + H_PAGE + mem, body);
        put64(file + H_CHECKSUM, XXH3_64bits_digest(x));
        XXH3_freeState(x);
    } else if (tail_len) {
        memcpy(file + H_PAGE + mem, tail, tail_len);
    }
    fuzz_write_file(path, file, H_PAGE + mem + body);
    free(file);

    eryx_runtime *rt = load(path, flags & 8 ? ERYX_RUNTIME_IMAGE_TRUSTED : 0);
    loaded = rt != NULL;
    if (!rt)
        return 0;
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(rt, NULL, &sb);
    FUZZ_CHECK(rc == ERYX_OK || rc == ERYX_NOMEM || rc == ERYX_INVALID);
    eryx_sandbox_free(sb);
    rc = eryx_runtime_save_image(rt, path2);
    if (rc != ERYX_OK)
        fprintf(stderr, "a loaded image does not save: %s\n", eryx_errmsg(NULL));
    FUZZ_CHECK(rc == ERYX_OK);
    FUZZ_CHECK(eryx_runtime_free(rt) == ERYX_OK);
    rt = load(path2, 0);
    if (!rt)
        fprintf(stderr, "a re-saved image does not load: %s\n", eryx_errmsg(NULL));
    FUZZ_CHECK(rt != NULL);
    FUZZ_CHECK(eryx_runtime_free(rt) == ERYX_OK);
    return 0;
}
