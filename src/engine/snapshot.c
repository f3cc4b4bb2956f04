/*
 * Memory images: a linear memory's contents frozen in a sealed memfd, mapped
 * copy-on-write into any number of memories, and forks of live memories.
 *
 * Why a memfd: the only thing Linux lets several mappings of one process share
 * copy-on-write is the page cache of a file mapped MAP_PRIVATE. There is no
 * call that duplicates an anonymous private mapping copy-on-write without
 * fork(2) (mremap with old_size 0 aliases shared mappings only, MREMAP_DONTUNMAP
 * and UFFDIO_MOVE move pages, process_vm_readv and UFFDIO_COPY copy them), and
 * fork(2) of a multi-threaded embedder is out of the question. So an image is
 * a memfd holding the non-zero 4 KiB pages of the memory (zero pages stay
 * holes), sealed against every change, and a memory "maps" it by
 * mmap(MAP_PRIVATE | MAP_FIXED) into its guard reservation: page-table work
 * only, and a page is copied when first written.
 *
 * Holes: a read fault on a hole of a shmem file allocates a zero page in its
 * page cache (measured: it does, also on a sealed memfd). That page is shared
 * by every memory mapping the image, so it costs once per image, but to keep
 * images as small as what the guest really uses, only the data extents are
 * mapped from the file; the large zero stretches between them are anonymous
 * memory (reads map the kernel's zero page, writes get fresh pages). Gaps
 * shorter than a threshold are mapped from the file anyway so that one image
 * costs at most ERYX__IMAGE_MAX_EXTENTS + 1 mappings (and VMAs) per memory.
 *
 * Fork: a live memory is its image (if it was mapped from one) plus private
 * pages the kernel will not share. eryx__memory_fork therefore captures src
 * into a new image (one pass over src, copying its non-zero pages into the
 * page cache with pwrite, which allocates pages in batches and takes no page
 * faults) and maps that image into dst. Forking one state many times should
 * capture once and map many times: the page cache copy is then shared by all
 * of them. Measured by tests/engine/bench_snapshot.c on the development VM
 * (where a page-fault trap costs ~12-16 us, a batched populate ~1-2 us per
 * page): forking a 50 MiB memory with 35 MiB of data takes ~15 ms this way,
 * against ~145 ms for a memcpy of the non-zero pages into fresh anonymous
 * memory (one fault per page) and ~110 ms for MADV_POPULATE_WRITE + memcpy.
 * The first fork in a process is slower (~150 ms): fresh page-cache pages.
 * A later improvement: read /proc/self/pagemap to copy only the pages that
 * differ from the image src was mapped from, and layer them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/internal.h"

#define PAGE4K 4096u

/* Gaps of zero pages shorter than this are mapped from the image file with
 * their neighbours rather than as anonymous memory of their own. */
#define MIN_HOLE (64u * 1024u)

typedef struct image_extent {
    uint64_t off, len;          /* a range of the image mapped from the file */
} image_extent;

struct eryx__mem_image {
    atomic_uint refs;
    int fd;                     /* sealed memfd, size bytes; or a file
                                   holding them from offset base */
    int from_file;              /* fd is a file: on the list of mapped files */
    uint64_t file_dev, file_ino;
    eryx__mem_image *file_next;
    uint64_t base;
    const uint8_t *view;        /* fd mapped read-only (restoring in place) */
    uint64_t size;              /* a multiple of the wasm page size */
    uint64_t data_bytes;        /* bytes of non-zero pages it holds */
    uint32_t next;
    image_extent ext[];
};

/* ---- the files images are mapped from --------------------------------
 *
 * An image mapped from a file (eryx__mem_image_from_file) is not sealed: a
 * write to the file reaches every memory restored from it, other tenants'
 * included, on every page they have not written, and a truncation makes
 * their next read of it a SIGBUS. So the file's inode is listed while the
 * image lives, and the VFS refuses the guest any write to a listed inode
 * (eryx__mem_image_maps_file; ETXTBSY, as Linux refuses writes to a
 * running program). A leaf lock, held across fork(2) (core/fork.c). */
static pthread_mutex_t file_images_lock = PTHREAD_MUTEX_INITIALIZER;
static eryx__mem_image *file_images;
static atomic_uint file_image_count; /* lets the VFS skip the lock when 0 */

static void list_file_image(eryx__mem_image *img)
{
    pthread_mutex_lock(&file_images_lock);
    img->file_next = file_images;
    file_images = img;
    atomic_fetch_add_explicit(&file_image_count, 1, memory_order_release);
    pthread_mutex_unlock(&file_images_lock);
}

static void unlist_file_image(eryx__mem_image *img)
{
    pthread_mutex_lock(&file_images_lock);
    for (eryx__mem_image **pp = &file_images; *pp; pp = &(*pp)->file_next) {
        if (*pp == img) {
            *pp = img->file_next;
            atomic_fetch_sub_explicit(&file_image_count, 1, memory_order_release);
            break;
        }
    }
    pthread_mutex_unlock(&file_images_lock);
}

int eryx__mem_image_maps_file(uint64_t dev, uint64_t ino)
{
    if (atomic_load_explicit(&file_image_count, memory_order_acquire) == 0)
        return 0;
    int found = 0;
    pthread_mutex_lock(&file_images_lock);
    for (const eryx__mem_image *img = file_images; img && !found; img = img->file_next)
        found = img->file_dev == dev && img->file_ino == ino;
    pthread_mutex_unlock(&file_images_lock);
    return found;
}

void eryx__mem_images_fork(int phase)
{
    if (phase == 0)
        pthread_mutex_lock(&file_images_lock);
    else
        pthread_mutex_unlock(&file_images_lock);
}

static int page_is_zero(const uint8_t *p)
{
    uint64_t w[8];
    for (size_t i = 0; i < PAGE4K; i += sizeof w) {
        memcpy(w, p + i, sizeof w);
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
            return 0;
    }
    return 1;
}

static int pwrite_all(int fd, const uint8_t *p, uint64_t len, uint64_t off)
{
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t n = pwrite(fd, p, chunk, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

/* Writes the non-zero pages of p[0, len) to fd at offset `at` + their offset,
 * one pwrite per run of non-zero pages. len is a multiple of 4 KiB. */
static int write_nonzero(int fd, const uint8_t *p, uint64_t len, uint64_t at)
{
    uint64_t run = UINT64_MAX;
    for (uint64_t off = 0; off <= len; off += PAGE4K) {
        int zero = off == len || page_is_zero(p + off);
        if (!zero && run == UINT64_MAX)
            run = off;
        if (zero && run != UINT64_MAX) {
            int rc = pwrite_all(fd, p + run, off - run, at + run);
            if (rc < 0)
                return rc;
            run = UINT64_MAX;
        }
    }
    return 0;
}

static int valid_size(uint64_t size)
{
    return size % ERYX__WASM_PAGE == 0 && size / ERYX__WASM_PAGE <= ERYX__MAX_PAGES;
}

static int new_memfd(uint64_t size)
{
    int fd = memfd_create("eryx-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* The data ranges of fd (SEEK_DATA/SEEK_HOLE: exact to the page on tmpfs),
 * merged across short gaps until there are at most ERYX__IMAGE_MAX_EXTENTS. */
static int find_extents(int fd, uint64_t base, uint64_t size, image_extent **out, uint32_t *n,
                        uint64_t *data_bytes)
{
    image_extent *raw = NULL;
    size_t nraw = 0, cap = 0;
    *data_bytes = 0;
    off_t pos = 0;
    while ((uint64_t)pos < size) {
        off_t d = lseek(fd, (off_t)base + pos, SEEK_DATA);
        if (d < 0) {
            if (errno == ENXIO)
                break;
            free(raw);
            return -errno;
        }
        d -= (off_t)base;
        if ((uint64_t)d >= size)
            break;
        off_t h = lseek(fd, (off_t)base + d, SEEK_HOLE);
        if (h < 0) {
            free(raw);
            return -errno;
        }
        h -= (off_t)base;
        if ((uint64_t)h > size)
            h = (off_t)size;
        /* Whole pages (a file system may report finer ranges). */
        d &= ~(off_t)(PAGE4K - 1);
        h = (h + (off_t)PAGE4K - 1) & ~(off_t)(PAGE4K - 1);
        if (nraw == cap) {
            cap = cap ? cap * 2 : 64;
            image_extent *r = realloc(raw, cap * sizeof *r);
            if (!r) {
                free(raw);
                return -ENOMEM;
            }
            raw = r;
        }
        raw[nraw++] = (image_extent){(uint64_t)d, (uint64_t)(h - d)};
        *data_bytes += (uint64_t)(h - d);
        pos = h;
    }
    /* Merge in place, doubling the gap that is bridged until few enough. */
    uint64_t bridge = MIN_HOLE;
    size_t m = nraw;
    for (;;) {
        m = 0;
        for (size_t i = 0; i < nraw; i++) {
            if (m > 0 && raw[i].off - (raw[m - 1].off + raw[m - 1].len) < bridge)
                raw[m - 1].len = raw[i].off + raw[i].len - raw[m - 1].off;
            else
                raw[m++] = raw[i];
        }
        nraw = m;
        if (m <= ERYX__IMAGE_MAX_EXTENTS)
            break;
        bridge *= 2;
    }
    *out = raw;
    *n = (uint32_t)m;
    return 0;
}

/* Seals a memfd the image owns against any change. F_SEAL_WRITE makes the
 * kernel wait for every page of the file to lose its transient references
 * and fails with EBUSY if one keeps it. A runtime's capture failed so once,
 * under valgrind with the test suite on both cores; the likely holder (not
 * confirmed) is another CPU's LRU batch of a page just written. The file was written with
 * pwrite only and no other process has it, so no writable mapping exists,
 * and F_SEAL_FUTURE_WRITE (no write or writable mapping from now on, no
 * wait) then seals it as firmly. */
static int seal_image(int fd)
{
    const int fixed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    if (fcntl(fd, F_ADD_SEALS, fixed | F_SEAL_WRITE) == 0)
        return 0;
    if (errno == EBUSY && fcntl(fd, F_ADD_SEALS, fixed | F_SEAL_FUTURE_WRITE) == 0)
        return 0;
    return -errno;
}

/* Wraps fd's bytes [base, base + size) in an image (taking fd over, also
 * on failure); a memfd (base 0) is sealed first. */
static int wrap(int fd, uint64_t base, uint64_t size, int seal, eryx__mem_image **out)
{
    image_extent *ext = NULL;
    uint32_t n = 0;
    uint64_t data = 0;
    int rc = seal ? seal_image(fd) : 0;
    if (rc == 0)
        rc = find_extents(fd, base, size, &ext, &n, &data);
    eryx__mem_image *img = NULL;
    if (rc == 0 && !(img = malloc(sizeof *img + n * sizeof *ext)))
        rc = -ENOMEM;
    /* Address space only: pages come from the page cache when read. */
    void *view = NULL;
    if (rc == 0 && size &&
        (view = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, (off_t)base)) == MAP_FAILED)
        rc = -errno;
    if (rc < 0) {
        free(img);
        free(ext);
        close(fd);
        return rc;
    }
    img->view = view;
    atomic_init(&img->refs, 1);
    img->fd = fd;
    img->from_file = 0;
    img->file_next = NULL;
    img->base = base;
    img->size = size;
    img->data_bytes = data;
    img->next = n;
    if (n)
        memcpy(img->ext, ext, n * sizeof *ext);
    free(ext);
    *out = img;
    return 0;
}

static int finish(int fd, uint64_t size, eryx__mem_image **out)
{
    return wrap(fd, 0, size, 1, out);
}

int eryx__mem_image_from_file(int fd, uint64_t offset, uint64_t size, eryx__mem_image **out)
{
    *out = NULL;
    if (!valid_size(size) || offset % PAGE4K != 0)
        return -EINVAL;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return -errno;
    int rc = wrap(own, offset, size, 0, out);
    if (rc == 0) {
        /* Listed before the caller checks the bytes: a write after the
         * check is refused, one before it fails the check. */
        (*out)->from_file = 1;
        (*out)->file_dev = (uint64_t)st.st_dev;
        (*out)->file_ino = (uint64_t)st.st_ino;
        list_file_image(*out);
    }
    return rc;
}

int eryx__mem_image_capture(const wasm_rt_memory_t *m, eryx__mem_image **out)
{
    *out = NULL;
    uint64_t size = m->data ? m->size : 0;
    if (!valid_size(size))
        return -EINVAL;
    int fd = new_memfd(size);
    if (fd < 0)
        return fd;
    int rc = write_nonzero(fd, m->data, size, 0);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return finish(fd, size, out);
}

void eryx__mem_image_ref(eryx__mem_image *img)
{
    atomic_fetch_add_explicit(&img->refs, 1, memory_order_relaxed);
}

void eryx__mem_image_unref(eryx__mem_image *img)
{
    if (!img || atomic_fetch_sub_explicit(&img->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (img->from_file)
        unlist_file_image(img);
    if (img->view)
        munmap((void *)img->view, (size_t)img->size);
    close(img->fd);
    free(img);
}

size_t eryx__mem_image_size(const eryx__mem_image *img) { return (size_t)img->size; }

const uint8_t *eryx__mem_image_view(const eryx__mem_image *img) { return img->view; }

size_t eryx__mem_image_data_bytes(const eryx__mem_image *img)
{
    return (size_t)img->data_bytes;
}

uint32_t eryx__mem_image_mappings(const eryx__mem_image *img) { return img->next; }

/* Leaves m with no accessible pages after a failed remap: nothing of the old
 * or new contents stays reachable, and the reservation stays whole. */
static void map_failed(wasm_rt_memory_t *m, uint64_t extent)
{
    eryx__memory_decommit(m->data, (size_t)extent);
    m->pages = 0;
    m->size = 0;
}

int eryx__memory_map_image(wasm_rt_memory_t *m, const eryx__mem_image *img)
{
    if (!m->data || !img)
        return -EINVAL;
    uint64_t size = img->size;
    if (size / ERYX__WASM_PAGE > m->max_pages)
        return -EFBIG;
    uint64_t old = m->size;
    uint64_t span = old > size ? old : size;
    /* Pages beyond the image go back to the reservation. */
    if (old > size && eryx__memory_decommit(m->data + size, (size_t)(old - size)) < 0) {
        int e = errno;
        map_failed(m, span);
        return -e;
    }
    /* Zero memory under the gaps between extents (and it releases the old
     * pages); skipped when one extent covers everything. */
    int covered = img->next == 1 && img->ext[0].off == 0 && img->ext[0].len == size;
    if (!covered && eryx__memory_commit(m->data, (size_t)size) < 0) {
        int e = errno;
        map_failed(m, span);
        return -e;
    }
    for (uint32_t i = 0; i < img->next; i++) {
        const image_extent *x = &img->ext[i];
        void *p = mmap(m->data + x->off, (size_t)x->len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, img->fd,
                       (off_t)(img->base + x->off));
        if (p == MAP_FAILED) {
            int e = errno;
            map_failed(m, span);
            return -e;
        }
    }
    m->pages = (uint32_t)(size / ERYX__WASM_PAGE);
    m->size = (uint32_t)size;
    return 0;
}

int eryx__memory_fork(const wasm_rt_memory_t *src, wasm_rt_memory_t *dst)
{
    eryx__mem_image *img;
    int rc = eryx__mem_image_capture(src, &img);
    if (rc < 0)
        return rc;
    int own = 0;
    if (!dst->data) {
        if (eryx__memory_reserve(dst, src->max_pages) < 0) {
            rc = -errno;
            eryx__mem_image_unref(img);
            return rc;
        }
        own = 1;
    }
    rc = eryx__memory_map_image(dst, img);
    /* The mappings hold the file: the image itself is no longer needed. */
    eryx__mem_image_unref(img);
    if (rc < 0 && own)
        wasm_rt_free_memory(dst);
    return rc;
}

/* ---- restoring in place ------------------------------------------------ */

/* /proc/self/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE_OR_SHARED (1ull << 61)

/* Whether the 4 KiB page at image offset off lies in a file extent of img
 * (else in a zero gap). Extents are few and sorted. */
static int in_extent(const eryx__mem_image *img, uint64_t off)
{
    for (uint32_t i = 0; i < img->next; i++)
        if (off >= img->ext[i].off && off < img->ext[i].off + img->ext[i].len)
            return 1;
    return 0;
}

/* Puts one page back: the image's bytes where the image has data, zeros in
 * a gap (skipped when already zero: reading a gap maps the shared zero
 * page, and writing it would only allocate a private one). */
static int restore_page(const eryx__mem_image *img, uint8_t *page, uint64_t off)
{
    if (!in_extent(img, off)) {
        if (!page_is_zero(page))
            memset(page, 0, PAGE4K);
        return 0;
    }
    memcpy(page, img->view + off, PAGE4K);
    return 0;
}

int eryx__memory_restore_image(wasm_rt_memory_t *m, const eryx__mem_image *img,
                               uint64_t *restored)
{
    if (!m->data || !img || m->size < img->size)
        return -EINVAL;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -ENOTSUP;
    uint64_t pages = img->size / PAGE4K, first = (uintptr_t)m->data / PAGE4K, n = 0;
    uint64_t entries[512];
    int rc = 0;
    for (uint64_t p = 0; rc == 0 && p < pages; p += 512) {
        size_t want = (size_t)(pages - p < 512 ? pages - p : 512);
        ssize_t got = pread(fd, entries, want * 8, (off_t)((first + p) * 8));
        if (got != (ssize_t)(want * 8)) {
            rc = -ENOTSUP;
            break;
        }
        for (size_t i = 0; rc == 0 && i < want; i++) {
            /* A page the guest (or the host for it) wrote is a private
             * copy now: present or swapped out, not the file's. */
            uint64_t e = entries[i];
            if (!(e & (PM_PRESENT | PM_SWAPPED)) || (e & PM_FILE_OR_SHARED))
                continue;
            rc = restore_page(img, m->data + (p + i) * PAGE4K, (p + i) * PAGE4K);
            n++;
        }
    }
    close(fd);
    /* Growth beyond the image goes back to the reservation. */
    if (rc == 0 && m->size > img->size &&
        eryx__memory_decommit(m->data + img->size, (size_t)(m->size - img->size)) < 0)
        rc = -errno;
    if (rc == 0) {
        m->pages = (uint32_t)(img->size / ERYX__WASM_PAGE);
        m->size = (uint32_t)img->size;
    }
    if (restored)
        *restored = n;
    return rc;
}

int eryx__memory_prefault(wasm_rt_memory_t *m, uint64_t off, uint64_t len, int write)
{
    if (off > m->size || len > m->size - off)
        return -EINVAL;
    uint64_t lo = off & ~(uint64_t)(PAGE4K - 1);
    uint64_t hi = off + len;
    if (hi == lo)
        return 0;
    int advice = write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
    return madvise(m->data + lo, (size_t)(hi - lo), advice) < 0 ? -errno : 0;
}

/* ---- serialisation ---------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#define IO_CHUNK (1u << 20)

int eryx__mem_image_write(const eryx__mem_image *img, int fd)
{
    /* Holes are skipped with lseek where that gives zeros: in a regular
     * file written at or past its end. Anywhere else zeros are written. */
    struct stat st;
    off_t start = lseek(fd, 0, SEEK_CUR);
    int sparse = start >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                 start >= st.st_size;
    uint8_t *buf = calloc(1, IO_CHUNK);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    uint64_t pos = 0;
    while (rc == 0 && pos < img->size) {
        /* Offsets in img->fd start at img->base (a file image). */
        off_t d = lseek(img->fd, (off_t)(img->base + pos), SEEK_DATA);
        uint64_t data = d < 0 ? img->size : (uint64_t)d - img->base;
        if (data > img->size)
            data = img->size;
        if (d < 0 && errno != ENXIO) {
            rc = -errno;
            break;
        }
        /* The hole [pos, data). */
        if (data > pos && sparse) {
            if (lseek(fd, (off_t)(data - pos), SEEK_CUR) < 0)
                rc = -errno;
        } else {
            memset(buf, 0, IO_CHUNK);
            for (uint64_t z = pos; rc == 0 && z < data;) {
                size_t k = data - z < IO_CHUNK ? (size_t)(data - z) : IO_CHUNK;
                rc = write_all(fd, buf, k);
                z += k;
            }
        }
        pos = data;
        if (rc < 0 || pos >= img->size)
            break;
        off_t h = lseek(img->fd, (off_t)(img->base + pos), SEEK_HOLE);
        if (h < 0) {
            rc = -errno;
            break;
        }
        uint64_t hole = (uint64_t)h - img->base;
        if (hole > img->size)
            hole = img->size;
        while (rc == 0 && pos < hole) {
            size_t k = hole - pos < IO_CHUNK ? (size_t)(hole - pos) : IO_CHUNK;
            ssize_t n = pread(img->fd, buf, k, (off_t)(img->base + pos));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = n < 0 ? -errno : -EIO;
                break;
            }
            rc = write_all(fd, buf, (size_t)n);
            pos += (uint64_t)n;
        }
    }
    /* A trailing hole skipped by seeking must still make the file long. */
    if (rc == 0 && sparse && img->size > 0) {
        off_t end = lseek(fd, 0, SEEK_CUR);
        if (end < 0 || fstat(fd, &st) < 0)
            rc = -errno;
        else if (st.st_size < end && ftruncate(fd, end) < 0)
            rc = -errno;
    }
    free(buf);
    return rc;
}

int eryx__memory_write_sparse(const wasm_rt_memory_t *m, int fd, uint64_t at)
{
    if (!m->data)
        return 0;
    return write_nonzero(fd, m->data, m->size, at);
}

int eryx__mem_image_read(int fd, uint64_t size, eryx__mem_image **out)
{
    return eryx__mem_image_read_each(fd, size, NULL, NULL, out);
}

int eryx__mem_image_read_each(int fd, uint64_t size,
                              void (*each)(void *ud, const uint8_t *p, size_t n), void *ud,
                              eryx__mem_image **out)
{
    *out = NULL;
    if (!valid_size(size))
        return -EINVAL;
    int mfd = new_memfd(size);
    if (mfd < 0)
        return mfd;
    uint8_t *buf = malloc(IO_CHUNK);
    int rc = buf ? 0 : -ENOMEM;
    for (uint64_t pos = 0; rc == 0 && pos < size;) {
        size_t want = size - pos < IO_CHUNK ? (size_t)(size - pos) : IO_CHUNK;
        size_t got = 0;
        while (got < want) {
            ssize_t n = read(fd, buf + got, want - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = n < 0 ? -errno : -EIO;     /* short input */
                break;
            }
            got += (size_t)n;
        }
        if (rc == 0 && each)
            each(ud, buf, want);
        if (rc == 0)
            rc = write_nonzero(mfd, buf, want, pos);
        pos += want;
    }
    free(buf);
    if (rc < 0) {
        close(mfd);
        return rc;
    }
    return finish(mfd, size, out);
}
