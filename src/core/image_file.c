/*
 * Runtime images in files: what eryx__runtime_snapshot builds (the
 * template's memory and globals, its /tmp and fd table, the packages' file
 * image, the pages a first run writes), saved by one process and loaded by
 * another of the same build instead of booting CPython and running the
 * warm-up and setup again. See docs/packages.md, "Image files".
 *
 * Layout (little endian, this host's struct layout; the build id pins the
 * guest, not the host library: docs/packages.md, "Image files"):
 *   image_header, padded to 4096 bytes (the memory starts page-aligned)
 *   mem_size bytes of linear memory (zero pages are holes)
 *   packages_size bytes: the packages' ERYXIMG1 image (0 if none)
 *   wasi_size bytes: the template's WASI state (src/wasi/wasi_persist.c)
 *   n_hot * 16 bytes: the hot page runs (start, len)
 * The checksum is XXH3-64 over the header page (its checksum field zero),
 * the memory's non-zero pages (each with its index: hash_pages) and every
 * byte after the memory. The loader checks the header against the file's
 * size and every limit before allocating anything, hashes the memory's
 * data ranges (read with pread) and reads the rest once, and
 * compares the checksum before anything is used: no sandbox maps, and no
 * tree mounts, anything of a file that fails a check. The memory is then
 * mapped from the file itself (docs/packages.md, "Image files").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
/* The SIMD variant the CPU has (libxxhash's dispatch: the same hashes,
 * ~30 % faster than its SSE2 default here). */
#include <xxh_x86dispatch.h>

#include "config.h"
#include "core/exec.h"
#include "core/packages.h"
#include "vfs/vfs.h"

#define IMAGE_MAGIC "ERYXRTI1"
#define HEADER_BYTES 4096u

typedef struct image_header {
    char magic[8];
    char build_id[64];          /* ERYX_BUILD_ID, NUL-padded */
    uint32_t header_size;       /* sizeof(image_header): the layout's size */
    uint32_t globals_size;      /* sizeof(eryx__snapshot_globals) */
    uint64_t mem_size;
    uint64_t packages_size;
    uint64_t wasi_size;
    uint64_t n_hot;
    uint64_t checksum;
    eryx__snapshot_globals globals;
} image_header;

_Static_assert(sizeof(image_header) <= HEADER_BYTES, "the header fits its page");

/* The most WASI state a template can have: its /tmp within the default
 * quota, which the setup code ran under. */
static uint64_t wasi_limit(void)
{
    return eryx__wasi_state_max(ERYX_DEFAULT_TMP_QUOTA);
}

static int refuse(const char *path, const char *why)
{
    eryx__set_errmsg(NULL, "%s: %s", path, why);
    return ERYX_INVALID;
}

int eryx__image_file_check(const void *data, size_t len, uint64_t file_size, const char *path)
{
    image_header h;
    if (len < 8 || memcmp(data, IMAGE_MAGIC, 8) != 0) {
        if (len >= 7 && memcmp(data, IMAGE_MAGIC, 7) == 0)
            return refuse(path, "is a runtime image of another format version");
        return refuse(path, "is not an eryx runtime image");
    }
    if (len < sizeof h || file_size < HEADER_BYTES)
        return refuse(path, "is truncated (shorter than its header)");
    memcpy(&h, data, sizeof h);
    if (strncmp(h.build_id, ERYX_BUILD_ID, sizeof h.build_id) != 0) {
        char id[4 * sizeof h.build_id + 1];
        eryx__set_errmsg(NULL, "%s was made by another build of eryx (%s, this is %s)", path,
                         eryx__printable(h.build_id, sizeof h.build_id, id, sizeof id),
                         ERYX_BUILD_ID);
        return ERYX_INVALID;
    }
    if (h.header_size != sizeof h || h.globals_size != sizeof h.globals)
        return refuse(path, "has a header of another layout");
    if (h.mem_size == 0 || h.mem_size % 65536u != 0 || h.mem_size > 65535ull * 65536u)
        return refuse(path, "has a malformed header (memory size)");
    if (h.packages_size > ERYX__PACKAGES_MAX_BYTES + 16ull * ERYX__PACKAGES_MAX_FILES + 16)
        return refuse(path, "has a malformed header (packages larger than their limit)");
    if (h.wasi_size > wasi_limit())
        return refuse(path, "has a malformed header (file state larger than its limit)");
    if (h.n_hot > h.mem_size / 4096u)
        return refuse(path, "has a malformed header (more hot page runs than pages)");
    /* Each term is bounded above, so the sum cannot overflow. */
    uint64_t want = HEADER_BYTES + h.mem_size + h.packages_size + h.wasi_size + h.n_hot * 16u;
    if (file_size != want) {
        eryx__set_errmsg(NULL, "%s is truncated or its sizes lie (%llu bytes; its header "
                               "says %llu)", path, (unsigned long long)file_size,
                         (unsigned long long)want);
        return ERYX_INVALID;
    }
    if (!eryx__globals_ok(&h.globals, h.mem_size))
        return refuse(path, "has a malformed header (saved globals outside its memory)");
    return ERYX_OK;
}

/* The memory's part of the checksum: the index (u64) and bytes of each of
 * its 4 KiB pages that are not all zeros, in order. Zero pages are left
 * out so that a load never reads the file's holes (nor hashes 11 of the
 * default image's 20 MB: zeros); the index keeps a page from moving. */
static int page_is_zero(const uint8_t *p)
{
    uint64_t w[8];
    for (size_t i = 0; i < 4096; i += sizeof w) {
        memcpy(w, p + i, sizeof w);
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
            return 0;
    }
    return 1;
}

/* p holds the len bytes (whole pages) of the memory at offset at. */
static void hash_pages(XXH3_state_t *x, const uint8_t *p, uint64_t at, uint64_t len)
{
    for (uint64_t off = 0; off < len; off += 4096) {
        if (page_is_zero(p + off))
            continue;
        uint64_t index = (at + off) / 4096;
        XXH3_64bits_update(x, &index, sizeof index);
        XXH3_64bits_update(x, p + off, 4096);
    }
}

/* ---- saving ---------------------------------------------------------------- */

int eryx__runtime_save_image(eryx_runtime *rt, const char *path)
{
    /* The template never runs after the capture: its memory is the image. */
    const wasm_rt_memory_t *mem = &rt->template->in.inst.w2c_memory;
    eryx__blob state = {0};
    int err = eryx__wasi_save_state(rt->template->wasi, &state);
    if (err < 0) {
        free(state.p);
        eryx__set_errmsg(NULL, "cannot save the template's files: %s", strerror(-err));
        return err == -ENOMEM ? ERYX_NOMEM : ERYX_IO;
    }
    image_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, IMAGE_MAGIC, 8);
    snprintf(h.build_id, sizeof h.build_id, "%s", ERYX_BUILD_ID);
    h.header_size = sizeof h;
    h.globals_size = sizeof h.globals;
    h.mem_size = mem->size;
    h.packages_size = rt->packages_size;
    h.wasi_size = state.len;
    h.n_hot = rt->n_hot;
    h.globals = rt->globals;
    uint64_t *hot = calloc(rt->n_hot ? rt->n_hot * 2 : 1, sizeof *hot);
    XXH3_state_t *x = XXH3_createState();
    if (!hot || !x) {
        free(hot);
        XXH3_freeState(x);
        free(state.p);
        return ERYX_NOMEM;
    }
    for (size_t i = 0; i < rt->n_hot; i++) {
        hot[2 * i] = rt->hot[i].start;
        hot[2 * i + 1] = rt->hot[i].len;
    }
    uint8_t page[HEADER_BYTES] = {0};
    memcpy(page, &h, sizeof h);
    XXH3_64bits_reset(x);
    XXH3_64bits_update(x, page, sizeof page);
    hash_pages(x, mem->data, 0, mem->size);
    XXH3_64bits_update(x, rt->packages, rt->packages_size);
    XXH3_64bits_update(x, state.p, state.len);
    XXH3_64bits_update(x, hot, rt->n_hot * 16u);
    h.checksum = XXH3_64bits_digest(x);
    XXH3_freeState(x);
    memcpy(page, &h, sizeof h);

    /* Written next to the target and renamed over it: a reader sees the old
     * file or the whole new one, never half of one, also when two
     * processes write the same path at once. */
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    int fd = -1, ok = 0;
    if (tmp) {
        snprintf(tmp, n, "%s.tmpXXXXXX", path);
        fd = mkstemp(tmp);
        off_t end = (off_t)(HEADER_BYTES + h.mem_size + h.packages_size + h.wasi_size +
                            h.n_hot * 16u);
        ok = fd >= 0 && fchmod(fd, 0644) == 0 && ftruncate(fd, end) == 0 &&
             eryx__write_all(fd, page, sizeof page) == 0 &&
             eryx__memory_write_sparse(mem, fd, HEADER_BYTES) == 0 &&
             lseek(fd, (off_t)(HEADER_BYTES + h.mem_size), SEEK_SET) >= 0 &&
             eryx__write_all(fd, rt->packages, rt->packages_size) == 0 &&
             eryx__write_all(fd, state.p, state.len) == 0 &&
             eryx__write_all(fd, hot, rt->n_hot * 16u) == 0 && fsync(fd) == 0;
        int e = errno;
        if (fd >= 0 && close(fd) != 0 && ok) {
            ok = 0;
            e = errno;
        }
        if (ok && rename(tmp, path) != 0) {
            ok = 0;
            e = errno;
        }
        if (!ok) {
            eryx__set_errmsg(NULL, "cannot write the runtime image to %s: %s", path,
                             strerror(e));
            if (fd >= 0)
                unlink(tmp);
        }
    }
    free(tmp);
    free(hot);
    free(state.p);
    if (!tmp)
        return ERYX_NOMEM;
    return ok ? ERYX_OK : ERYX_IO;
}

/* ---- loading --------------------------------------------------------------- */

/* The memory's pages, as the saver hashed them: those of the file's data
 * ranges (SEEK_DATA/SEEK_HOLE), read with pread through a 64 KiB buffer
 * that stays in the CPU's cache. The holes are zero pages, which the
 * checksum leaves out: never read. (Hashing through a read-only mapping of
 * the file instead took 6.6-7.5 ms of a load's CPU time against 3.7-4.4
 * for the whole load this way, the faults costing more than the copy; a
 * 1 MB buffer, which leaves the cache, was slower than the mapping.) A
 * file system without holes reports one range, read whole: slower, same
 * sum. 0 or an errno value. */
#define HASH_BUF (64u * 1024u)

static int hash_range(XXH3_state_t *x, int fd, uint8_t *buf, uint64_t from, uint64_t to)
{
    for (uint64_t off = from; off < to;) {
        size_t want = to - off < HASH_BUF ? (size_t)(to - off) : HASH_BUF;
        ssize_t got = pread(fd, buf, want, (off_t)(HEADER_BYTES + off));
        if (got < 0 && errno == EINTR)
            continue;
        if (got != (ssize_t)want)
            return got < 0 ? errno : EIO;
        hash_pages(x, buf, off, want);
        off += want;
    }
    return 0;
}

static int hash_memory(XXH3_state_t *x, int fd, uint64_t size)
{
    uint8_t *buf = malloc(HASH_BUF);
    if (!buf)
        return ENOMEM;
    int err = 0;
    for (uint64_t pos = 0; !err && pos < size;) {
        off_t d = lseek(fd, (off_t)(HEADER_BYTES + pos), SEEK_DATA);
        if (d < 0) {
            err = errno == ENXIO ? 0 : errno;
            break;
        }
        uint64_t start = ((uint64_t)d - HEADER_BYTES) & ~(uint64_t)4095;
        if (start >= size)
            break;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0) {
            err = errno;
            break;
        }
        uint64_t end = (uint64_t)h - HEADER_BYTES;
        end = end > size ? size : (end + 4095) & ~(uint64_t)4095;
        err = hash_range(x, fd, buf, start > pos ? start : pos, end);
        pos = end;
    }
    free(buf);
    return err;
}

static int read_exact(int fd, uint8_t *p, uint64_t len, uint64_t at, const char *path)
{
    for (uint64_t off = 0; off < len;) {
        ssize_t r = pread(fd, p + off, (size_t)(len - off), (off_t)(at + off));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            eryx__set_errmsg(NULL, "cannot read %s: %s", path,
                             r < 0 ? strerror(errno) : "it shrank while being loaded");
            return ERYX_IO;
        }
        off += (uint64_t)r;
    }
    return ERYX_OK;
}

/* The parts after the memory, checked now that the checksum holds: the
 * packages' image is well formed, every hot run lies inside the memory. */
static int check_parts(const image_header *h, const uint8_t *rest, const char *path)
{
    /* No more files than a build makes (entries may share their paths'
     * bytes, so the size alone allows tens of millions, each compared). */
    if (h->packages_size >= 12 && eryx__image_count(rest) > ERYX__PACKAGES_MAX_FILES)
        return refuse(path, "holds more package files than a build makes");
    if (h->packages_size && eryx__image_validate(rest, (size_t)h->packages_size) != 0)
        return refuse(path, "holds a malformed packages image");
    const uint8_t *hot = rest + h->packages_size + h->wasi_size;
    for (uint64_t i = 0; i < h->n_hot; i++) {
        uint64_t run[2];
        memcpy(run, hot + 16 * i, 16);
        if (run[0] % 4096u || run[1] % 4096u || run[1] == 0 || run[0] > h->mem_size ||
            run[1] > h->mem_size - run[0])
            return refuse(path, "holds a hot page run outside its memory");
    }
    return ERYX_OK;
}

/* Makes rt's template from the checked parts: a sandbox mapping img with
 * the saved globals (a tree with the packages mounted, then the saved /tmp
 * and fd table), then the hot runs. */
static int adopt(eryx_runtime *rt, const image_header *h, eryx__mem_image *img, uint8_t *rest,
                 const char *path)
{
    if (h->packages_size) {
        rt->packages = malloc((size_t)h->packages_size);
        if (!rt->packages)
            return ERYX_NOMEM;
        memcpy(rt->packages, rest, (size_t)h->packages_size);
        rt->packages_size = (size_t)h->packages_size;
    }
    rt->image = img;
    eryx__mem_image_ref(img);
    rt->globals = h->globals;
    eryx_sandbox_config defaults;
    eryx_sandbox_config_default(&defaults);
    eryx_sandbox *tpl;
    int rc = eryx__sandbox_from_state(rt, &defaults, img, &h->globals, NULL, &tpl);
    if (rc != ERYX_OK)
        return rc;
    rt->template = tpl;
    char *lost = NULL;
    int err = eryx__wasi_restore_state(tpl->wasi, rest + h->packages_size,
                                       (size_t)h->wasi_size, &lost);
    free(lost);
    if (err < 0) {
        eryx__set_errmsg(NULL, "cannot restore the files of %s: %s", path,
                         err == -EINVAL ? "its file state is malformed" : strerror(-err));
        return err == -ENOMEM ? ERYX_NOMEM : ERYX_INVALID;
    }
    const uint8_t *hot = rest + h->packages_size + h->wasi_size;
    if (h->n_hot) {
        rt->hot = calloc((size_t)h->n_hot, sizeof *rt->hot);
        if (!rt->hot)
            return ERYX_NOMEM;
        for (uint64_t i = 0; i < h->n_hot; i++)
            memcpy(&rt->hot[i], hot + 16 * i, 16);
        rt->n_hot = rt->cap_hot = (size_t)h->n_hot;
    }
    /* Sandboxes made from the image prefault the hot pages; the template,
     * which maps it too, never runs. */
    tpl->in.prefault_pending = 0;
    return ERYX_OK;
}

int eryx__runtime_load_image(eryx_runtime *rt, const char *path, int trusted)
{
    /* O_NONBLOCK: a FIFO given as the image is refused, not waited on. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        eryx__set_errmsg(NULL, "cannot open the runtime image %s: %s", path, strerror(errno));
        return ERYX_IO;
    }
    struct stat st;
    uint8_t page[HEADER_BYTES];
    image_header h;
    ssize_t got = -1;
    int rc = ERYX_OK;
    if (fstat(fd, &st) != 0) {
        eryx__set_errmsg(NULL, "cannot read %s: %s", path, strerror(errno));
        rc = ERYX_IO;
    } else if (!S_ISREG(st.st_mode)) {
        eryx__set_errmsg(NULL, "cannot read the runtime image %s: not a regular file", path);
        rc = ERYX_IO;
    } else if ((got = pread(fd, page, sizeof page, 0)) < 0) {
        eryx__set_errmsg(NULL, "cannot read %s: %s", path, strerror(errno));
        rc = ERYX_IO;
    } else {
        rc = eryx__image_file_check(page, (size_t)got, (uint64_t)st.st_size, path);
    }
    if (rc == ERYX_OK && (size_t)got != sizeof page)
        rc = refuse(path, "is truncated (shorter than its header)");
    XXH3_state_t *x = NULL;
    eryx__mem_image *img = NULL;
    uint8_t *rest = NULL;
    uint64_t rest_len = 0;
    if (rc == ERYX_OK) {
        memcpy(&h, page, sizeof h);
        uint64_t want = h.checksum;
        h.checksum = 0;
        memcpy(page, &h, sizeof h);
        h.checksum = want;
        x = XXH3_createState();
        rest_len = h.packages_size + h.wasi_size + h.n_hot * 16u;
        rest = malloc(rest_len ? (size_t)rest_len : 1);
        rc = x && rest ? ERYX_OK : ERYX_NOMEM;
    }
    if (rc == ERYX_OK) {
        XXH3_64bits_reset(x);
        XXH3_64bits_update(x, page, sizeof page);
        if (lseek(fd, HEADER_BYTES, SEEK_SET) < 0) {
            eryx__set_errmsg(NULL, "cannot read %s: %s", path, strerror(errno));
            rc = ERYX_IO;
        }
    }
    if (rc == ERYX_OK) {
        /* The memory is mapped from the file itself: no sandbox may write
         * it while it is (a writable mount may hold it). */
        eryx__vfs_set_write_guard(eryx__mem_image_maps_file);
        int err = eryx__mem_image_from_file(fd, HEADER_BYTES, h.mem_size, &img);
        if (err < 0) {
            eryx__set_errmsg(NULL, "cannot map %s: %s", path, strerror(-err));
            rc = err == -ENOMEM ? ERYX_NOMEM : ERYX_IO;
        }
    }
    if (rc == ERYX_OK && !trusted) {
        int err = hash_memory(x, fd, h.mem_size);
        if (err) {
            eryx__set_errmsg(NULL, "cannot read %s: %s", path,
                             err == EIO ? "it shrank while being loaded" : strerror(err));
            rc = err == ENOMEM ? ERYX_NOMEM : ERYX_IO;
        }
    }
    if (rc == ERYX_OK)
        rc = read_exact(fd, rest, rest_len, HEADER_BYTES + h.mem_size, path);
    close(fd);
    if (rc == ERYX_OK) {
        XXH3_64bits_update(x, rest, (size_t)rest_len);
        if (!trusted && XXH3_64bits_digest(x) != h.checksum)
            rc = refuse(path, "is damaged (checksum mismatch)");
    }
    if (rc == ERYX_OK)
        rc = check_parts(&h, rest, path);
    if (rc == ERYX_OK)
        rc = adopt(rt, &h, img, rest, path);
    XXH3_freeState(x);
    free(rest);
    eryx__mem_image_unref(img);
    return rc;
}
