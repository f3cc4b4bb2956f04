/* Memory images: capture, copy-on-write mapping, isolation, growth, reset,
 * serialisation, fork, and no leaks over many map/free cycles. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define PAGE 65536u
#define K4 4096u

/* A recognisable non-zero byte for (page, offset), so that a misplaced page
 * is caught; some 4 KiB pages are left zero to exercise holes. */
static uint8_t pat(uint64_t off, uint8_t salt)
{
    return (uint8_t)(((off >> 12) * 31u + (off & 0xfff) + salt) | 1u);
}

static int page_filled(uint64_t page4k)
{
    /* A dense region, a sparse region, and a long zero stretch. */
    if (page4k < 200)
        return 1;
    if (page4k < 600)
        return page4k % 7 == 0;
    return page4k >= 1200 && page4k < 1210;
}

static void fill(wasm_rt_memory_t *m, uint8_t salt)
{
    for (uint64_t p = 0; p < m->size / K4; p++)
        if (page_filled(p))
            for (uint64_t o = p * K4; o < (p + 1) * K4; o++)
                m->data[o] = pat(o, salt);
}

/* Checks m against the pattern the first `size` bytes had at capture. */
static void check_pattern(const wasm_rt_memory_t *m, uint64_t size, uint8_t salt)
{
    for (uint64_t p = 0; p < size / K4; p++) {
        uint64_t o = p * K4;
        for (uint64_t i = o; i < o + K4; i += 509) {
            uint8_t want = page_filled(p) ? pat(i, salt) : 0;
            if (m->data[i] != want) {
                fprintf(stderr, "byte %llu: %u != %u\n", (unsigned long long)i, m->data[i],
                        want);
                exit(1);
            }
        }
    }
}

/* Lines of /proc/self/maps, and those mapping an image's memfd. */
static long count_maps(long *image_maps)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f);
    long n = 0;
    *image_maps = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        n++;
        *image_maps += strstr(line, "eryx-image") != NULL;
    }
    fclose(f);
    return n;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    long n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static long rss_pages(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f);
    long size = 0, rss = 0;
    CHECK_EQ(fscanf(f, "%ld %ld", &size, &rss), 2);
    fclose(f);
    return rss;
}

static wasm_rt_memory_t *touch_mem;
static uint64_t touch_off;

GUEST_CODE static void snapshot_poke(void *arg)
{
    volatile uint8_t *p = touch_mem->data + touch_off;
    *p = 1;
}

/* Whether guest code writing m at off traps as out of bounds. */
static int traps_at(wasm_rt_memory_t *m, uint64_t off)
{
    touch_mem = m;
    touch_off = off;
    return eryx__engine_call(m, snapshot_poke, NULL, NULL) == WASM_RT_TRAP_OOB;
}

static eryx__mem_image *make_image(uint32_t pages, uint8_t salt)
{
    wasm_rt_memory_t src;
    wasm_rt_allocate_memory(&src, pages, 1000);
    CHECK(src.data);
    fill(&src, salt);
    eryx__mem_image *img;
    CHECK_EQ(eryx__mem_image_capture(&src, &img), 0);
    wasm_rt_free_memory(&src);
    return img;
}

TEST_CASE(test_capture_and_map)
{
    wasm_rt_memory_t src;
    wasm_rt_allocate_memory(&src, 100, 1000);
    CHECK(src.data);
    fill(&src, 3);
    eryx__mem_image *img;
    CHECK_EQ(eryx__mem_image_capture(&src, &img), 0);
    CHECK_EQ(eryx__mem_image_size(img), 100 * PAGE);
    uint64_t filled = 0;
    for (uint64_t p = 0; p < 100 * PAGE / K4; p++)
        filled += (uint64_t)page_filled(p);
    CHECK_EQ(eryx__mem_image_data_bytes(img), filled * K4);     /* zero pages are holes */
    CHECK(eryx__mem_image_mappings(img) >= 1);
    CHECK(eryx__mem_image_mappings(img) <= ERYX__IMAGE_MAX_EXTENTS);

    /* The source changes after capture: the image does not. */
    memset(src.data, 0xee, 2 * K4);
    src.data[700 * K4] = 9;

    wasm_rt_memory_t m[4];
    CHECK_EQ(eryx__memory_reserve(&m[0], 200), 0);
    CHECK_EQ(m[0].size, 0);
    CHECK(traps_at(&m[0], 0));
    wasm_rt_allocate_memory(&m[1], 5, 200);        /* smaller than the image */
    wasm_rt_allocate_memory(&m[2], 150, 200);      /* larger: the tail goes away */
    memset(m[2].data, 0x55, 150 * PAGE);
    CHECK_EQ(eryx__memory_reserve(&m[3], 200), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(eryx__memory_map_image(&m[i], img), 0);
        CHECK_EQ(m[i].size, 100 * PAGE);
        CHECK_EQ(m[i].pages, 100);
        CHECK_EQ(m[i].max_pages, 200);
        check_pattern(&m[i], 100 * PAGE, 3);
        CHECK(traps_at(&m[i], 100 * PAGE));
        CHECK(!traps_at(&m[i], 100 * PAGE - 1));
        m[i].data[100 * PAGE - 1] = 0;
    }
    /* The memories keep working without the image. */
    eryx__mem_image_unref(img);

    /* Copy-on-write isolation: writes to one are seen by no other. */
    memset(m[0].data, 0xab, 3 * K4);        /* a data page */
    m[0].data[650 * K4] = 0x77;             /* a hole */
    m[1].data[10] = 0x11;
    for (int i = 1; i < 4; i++) {
        CHECK_EQ(m[i].data[650 * K4], 0);
        CHECK_EQ(m[i].data[K4], pat(K4, 3));
    }
    CHECK_EQ(m[2].data[10], pat(10, 3));
    CHECK_EQ(m[0].data[10], 0xab);
    CHECK_EQ(m[0].data[650 * K4], 0x77);
    CHECK_EQ(src.data[0], 0xee);
    CHECK_EQ(src.data[650 * K4], 0);

    /* Growth after mapping gives zero pages; the mapped part is intact. */
    CHECK_EQ(wasm_rt_grow_memory(&m[3], 10), 100);
    CHECK_EQ(m[3].size, 110 * PAGE);
    for (uint64_t o = 100 * PAGE; o < 110 * PAGE; o += 777)
        CHECK_EQ(m[3].data[o], 0);
    m[3].data[110 * PAGE - 1] = 4;
    CHECK(traps_at(&m[3], 110 * PAGE));
    check_pattern(&m[3], 100 * PAGE, 3);
    CHECK_EQ(wasm_rt_grow_memory(&m[3], 91), UINT32_MAX);       /* limit kept */

    /* A limit below the image's size. */
    wasm_rt_memory_t small;
    CHECK_EQ(eryx__memory_reserve(&small, 50), 0);
    eryx__mem_image *img2;
    CHECK_EQ(eryx__mem_image_capture(&m[0], &img2), 0);
    CHECK_EQ(eryx__memory_map_image(&small, img2), -EFBIG);
    CHECK_EQ(small.size, 0);
    wasm_rt_free_memory(&small);

    /* Remapping a used memory resets it to the image, grown part included. */
    CHECK_EQ(eryx__memory_map_image(&m[3], img2), 0);
    CHECK_EQ(m[3].size, 100 * PAGE);
    CHECK_EQ(m[3].data[0], 0xab);
    CHECK_EQ(m[3].data[650 * K4], 0x77);
    CHECK_EQ(m[3].data[4 * K4], pat(4 * K4, 3));
    CHECK(traps_at(&m[3], 105 * PAGE));
    eryx__mem_image_unref(img2);

    for (int i = 0; i < 4; i++)
        wasm_rt_free_memory(&m[i]);
    wasm_rt_free_memory(&src);
}

TEST_CASE(test_empty_and_zero)
{
    /* An image of a zero-size memory and one of an all-zero memory. */
    wasm_rt_memory_t z, m;
    wasm_rt_allocate_memory(&z, 0, 10);
    eryx__mem_image *img;
    CHECK_EQ(eryx__mem_image_capture(&z, &img), 0);
    CHECK_EQ(eryx__mem_image_size(img), 0);
    wasm_rt_allocate_memory(&m, 3, 10);
    m.data[0] = 1;
    CHECK_EQ(eryx__memory_map_image(&m, img), 0);
    CHECK_EQ(m.size, 0);
    CHECK(traps_at(&m, 0));
    eryx__mem_image_unref(img);

    CHECK_EQ(wasm_rt_grow_memory(&z, 4), 0);
    CHECK_EQ(eryx__mem_image_capture(&z, &img), 0);
    CHECK_EQ(eryx__mem_image_data_bytes(img), 0);
    CHECK_EQ(eryx__mem_image_mappings(img), 0);
    CHECK_EQ(eryx__memory_map_image(&m, img), 0);
    CHECK_EQ(m.size, 4 * PAGE);
    for (uint64_t o = 0; o < 4 * PAGE; o += 999)
        CHECK_EQ(m.data[o], 0);
    m.data[4 * PAGE - 1] = 1;
    eryx__mem_image_unref(img);
    eryx__mem_image_unref(NULL);
    wasm_rt_free_memory(&m);
    wasm_rt_free_memory(&z);

    /* A fully dense image is one file mapping. */
    wasm_rt_allocate_memory(&m, 2, 10);
    memset(m.data, 1, 2 * PAGE);
    CHECK_EQ(eryx__mem_image_capture(&m, &img), 0);
    CHECK_EQ(eryx__mem_image_mappings(img), 1);
    wasm_rt_memory_t c;
    CHECK_EQ(eryx__memory_reserve(&c, 10), 0);
    CHECK_EQ(eryx__memory_map_image(&c, img), 0);
    CHECK_EQ(c.data[2 * PAGE - 1], 1);
    eryx__mem_image_unref(img);
    wasm_rt_free_memory(&c);
    wasm_rt_free_memory(&m);
}

TEST_CASE(test_many_extents)
{
    /* Scattered data pages far apart: merged down to the mapping cap. */
    wasm_rt_memory_t m;
    wasm_rt_allocate_memory(&m, 400, 400);
    for (uint64_t i = 0; i < 300; i++)
        m.data[i * 20 * K4 + 5] = (uint8_t)(i | 1);
    eryx__mem_image *img;
    CHECK_EQ(eryx__mem_image_capture(&m, &img), 0);
    CHECK_EQ(eryx__mem_image_data_bytes(img), 300 * K4);
    CHECK(eryx__mem_image_mappings(img) <= ERYX__IMAGE_MAX_EXTENTS);
    wasm_rt_memory_t c;
    CHECK_EQ(eryx__memory_reserve(&c, 400), 0);
    CHECK_EQ(eryx__memory_map_image(&c, img), 0);
    CHECK_EQ(memcmp(c.data, m.data, 400 * PAGE), 0);
    eryx__mem_image_unref(img);
    wasm_rt_free_memory(&c);
    wasm_rt_free_memory(&m);
}

TEST_CASE(test_no_leaks)
{
    eryx__mem_image *img = make_image(100, 5);
    /* Warm up, then count mappings, fds and resident pages. */
    for (int i = 0; i < 10; i++) {
        wasm_rt_memory_t m;
        CHECK_EQ(eryx__memory_reserve(&m, 200), 0);
        CHECK_EQ(eryx__memory_map_image(&m, img), 0);
        wasm_rt_free_memory(&m);
    }
    long imaps, imaps2;
    long maps = count_maps(&imaps), fds = count_fds(), rss = rss_pages();
    CHECK_EQ(imaps, 1);     /* only the image's own read-only view */
    for (int i = 0; i < 1000; i++) {
        wasm_rt_memory_t m;
        CHECK_EQ(eryx__memory_reserve(&m, 200), 0);
        CHECK_EQ(eryx__memory_map_image(&m, img), 0);
        /* Dirty a few pages (private copies) and grow. */
        m.data[(uint64_t)(i % 100) * PAGE] = 1;
        m.data[650 * K4 + 3] = 2;
        CHECK_EQ(wasm_rt_grow_memory(&m, 2), 100);
        m.data[101 * PAGE] = 3;
        if (i % 100 == 0)
            CHECK_EQ(eryx__memory_map_image(&m, img), 0);
        if (i == 0) {
            long live;
            count_maps(&live);
            CHECK(live >= 1);
        }
        wasm_rt_free_memory(&m);
    }
    long maps2 = count_maps(&imaps2), fds2 = count_fds(), rss2 = rss_pages();
    printf("maps %ld -> %ld, fds %ld -> %ld, rss pages %ld -> %ld\n", maps, maps2, fds, fds2,
           rss, rss2);
    CHECK_EQ(imaps2, 1);
    /* The allocator (ASan's in particular) may map a little on its own. */
    CHECK(maps2 - maps < 16);
    CHECK_EQ(fds2, fds);
    /* 1000 cycles each dirtying ~4 pages would leak thousands of pages. */
    CHECK(rss2 - rss < 256);
    eryx__mem_image_unref(img);
    CHECK_EQ(count_fds(), fds - 1);         /* the image's memfd is closed */
}

TEST_CASE(test_write_read)
{
    eryx__mem_image *img = make_image(40, 7);
    char path[] = "/tmp/eryx-image-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);

    /* A header before the image: written at the file's end, so sparse. */
    CHECK_EQ(write(fd, "HDR!", 4), 4);
    CHECK_EQ(eryx__mem_image_write(img, fd), 0);
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    CHECK_EQ(st.st_size, 4 + 40 * PAGE);
    CHECK_EQ(lseek(fd, 4, SEEK_SET), 4);
    eryx__mem_image *back;
    CHECK_EQ(eryx__mem_image_read(fd, 40 * PAGE, &back), 0);
    CHECK_EQ(eryx__mem_image_size(back), 40 * PAGE);
    CHECK_EQ(eryx__mem_image_data_bytes(back), eryx__mem_image_data_bytes(img));
    wasm_rt_memory_t m;
    CHECK_EQ(eryx__memory_reserve(&m, 100), 0);
    CHECK_EQ(eryx__memory_map_image(&m, back), 0);
    check_pattern(&m, 40 * PAGE, 7);
    eryx__mem_image_unref(back);

    /* Over existing non-zero bytes: the zeros must be written. */
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    static uint8_t junk[65536];
    memset(junk, 0x5a, sizeof junk);
    for (int i = 0; i < 41; i++)
        CHECK_EQ(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    CHECK_EQ(eryx__mem_image_write(img, fd), 0);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    CHECK_EQ(eryx__mem_image_read(fd, 40 * PAGE, &back), 0);
    CHECK_EQ(eryx__memory_map_image(&m, back), 0);
    check_pattern(&m, 40 * PAGE, 7);
    eryx__mem_image_unref(back);

    /* Short input, bad sizes. */
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    CHECK_EQ(eryx__mem_image_read(fd, 64 * PAGE, &back), -EIO);
    CHECK(back == NULL);
    CHECK_EQ(eryx__mem_image_read(fd, 1000, &back), -EINVAL);

    /* Through a pipe (not seekable: zeros written), small enough to fit. */
    wasm_rt_memory_t one;
    wasm_rt_allocate_memory(&one, 1, 1);
    one.data[100] = 42;
    eryx__mem_image *small;
    CHECK_EQ(eryx__mem_image_capture(&one, &small), 0);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(eryx__mem_image_write(small, p[1]), 0);
    close(p[1]);
    CHECK_EQ(eryx__mem_image_read(p[0], PAGE, &back), 0);
    close(p[0]);
    CHECK_EQ(eryx__mem_image_data_bytes(back), K4);
    CHECK_EQ(eryx__memory_map_image(&m, back), 0);
    CHECK_EQ(m.data[100], 42);
    CHECK_EQ(m.data[99], 0);
    eryx__mem_image_unref(back);
    eryx__mem_image_unref(small);
    wasm_rt_free_memory(&one);

    wasm_rt_free_memory(&m);
    eryx__mem_image_unref(img);
    close(fd);
}

/* An image mapped from a regular file at an offset (runtime image files):
 * the memory sees the file's bytes from there, zeros in its holes, a write
 * stays private, writing the image out gives the bytes back, and
 * restoring in place puts the file's bytes back. */
TEST_CASE(test_from_file)
{
    eryx__mem_image *img = make_image(40, 9);
    char path[] = "/tmp/eryx-image-file-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    char header[4096];
    memset(header, 'H', sizeof header);
    CHECK_EQ(write(fd, header, sizeof header), (ssize_t)sizeof header);
    CHECK_EQ(eryx__mem_image_write(img, fd), 0);
    eryx__mem_image_unref(img);
    CHECK_EQ(write(fd, "TAIL", 4), 4);     /* bytes after the memory */
    eryx__mem_image *file_img;
    CHECK_EQ(eryx__mem_image_from_file(fd, 4096, 40 * PAGE, &file_img), 0);
    CHECK_EQ(eryx__mem_image_from_file(fd, 100, 40 * PAGE, &img), -EINVAL);
    close(fd);                              /* the image holds its own */
    CHECK_EQ(eryx__mem_image_size(file_img), 40 * PAGE);
    CHECK(eryx__mem_image_data_bytes(file_img) > 0);
    CHECK_EQ(eryx__mem_image_view(file_img)[509], pat(509, 9));

    wasm_rt_memory_t m;
    CHECK_EQ(eryx__memory_reserve(&m, 100), 0);
    CHECK_EQ(eryx__memory_map_image(&m, file_img), 0);
    check_pattern(&m, 40 * PAGE, 9);
    m.data[509] ^= 0xff;                    /* private: the file keeps its byte */
    CHECK_EQ(eryx__mem_image_view(file_img)[509], pat(509, 9));
    CHECK_EQ(eryx__memory_restore_image(&m, file_img, NULL), 0);
    check_pattern(&m, 40 * PAGE, 9);

    char out[] = "/tmp/eryx-image-out-XXXXXX";
    int ofd = mkstemp(out);
    CHECK(ofd >= 0);
    unlink(out);
    CHECK_EQ(eryx__mem_image_write(file_img, ofd), 0);
    CHECK_EQ(lseek(ofd, 0, SEEK_SET), 0);
    eryx__mem_image *back;
    CHECK_EQ(eryx__mem_image_read(ofd, 40 * PAGE, &back), 0);
    close(ofd);
    wasm_rt_memory_t m2;
    CHECK_EQ(eryx__memory_reserve(&m2, 100), 0);
    CHECK_EQ(eryx__memory_map_image(&m2, back), 0);
    check_pattern(&m2, 40 * PAGE, 9);
    wasm_rt_free_memory(&m2);
    wasm_rt_free_memory(&m);
    eryx__mem_image_unref(back);
    eryx__mem_image_unref(file_img);
}

TEST_CASE(test_fork)
{
    /* The source: mapped from an image, then changed (private pages) and
     * grown: a fork must see all of it. */
    eryx__mem_image *img = make_image(60, 9);
    wasm_rt_memory_t src;
    CHECK_EQ(eryx__memory_reserve(&src, 300), 0);
    CHECK_EQ(eryx__memory_map_image(&src, img), 0);
    eryx__mem_image_unref(img);
    memset(src.data + 10 * K4, 0x3c, K4);
    CHECK_EQ(wasm_rt_grow_memory(&src, 4), 60);
    src.data[62 * PAGE] = 0x44;

    wasm_rt_memory_t a = {0}, b;
    CHECK_EQ(eryx__memory_fork(&src, &a), 0);         /* unallocated dst */
    CHECK_EQ(a.max_pages, 300);
    wasm_rt_allocate_memory(&b, 100, 100);            /* allocated dst, replaced */
    b.data[99 * PAGE] = 1;
    CHECK_EQ(eryx__memory_fork(&src, &b), 0);
    for (int i = 0; i < 2; i++) {
        wasm_rt_memory_t *d = i ? &b : &a;
        CHECK_EQ(d->size, 64 * PAGE);
        CHECK_EQ(memcmp(d->data, src.data, 64 * PAGE), 0);
        CHECK(traps_at(d, 64 * PAGE));
    }
    /* Independent in every direction. */
    a.data[0] = 0x01;
    b.data[0] = 0x02;
    src.data[62 * PAGE] = 0x03;
    CHECK_EQ(src.data[0], pat(0, 9));
    CHECK_EQ(a.data[0], 0x01);
    CHECK_EQ(b.data[0], 0x02);
    CHECK_EQ(a.data[62 * PAGE], 0x44);
    CHECK_EQ(b.data[62 * PAGE], 0x44);
    /* A fork of a fork. */
    wasm_rt_memory_t c = {0};
    CHECK_EQ(eryx__memory_fork(&a, &c), 0);
    CHECK_EQ(memcmp(c.data, a.data, 64 * PAGE), 0);

    /* dst's limit too small for src. */
    wasm_rt_memory_t tiny;
    CHECK_EQ(eryx__memory_reserve(&tiny, 10), 0);
    CHECK_EQ(eryx__memory_fork(&src, &tiny), -EFBIG);
    wasm_rt_free_memory(&tiny);

    wasm_rt_free_memory(&a);
    wasm_rt_free_memory(&b);
    wasm_rt_free_memory(&c);
    wasm_rt_free_memory(&src);
}

TEST_CASE(test_prefault)
{
    eryx__mem_image *img = make_image(20, 1);
    wasm_rt_memory_t m;
    CHECK_EQ(eryx__memory_reserve(&m, 30), 0);
    CHECK_EQ(eryx__memory_map_image(&m, img), 0);
    int rc = eryx__memory_prefault(&m, 0, 20 * PAGE, 1);
    CHECK(rc == 0 || rc == -EINVAL);        /* kernels before 5.14 lack it */
    CHECK_EQ(eryx__memory_prefault(&m, 10, 20 * PAGE, 0), -EINVAL);
    check_pattern(&m, 20 * PAGE, 1);
    /* Prefaulted private copies are still private. */
    m.data[5] = 0;
    wasm_rt_memory_t o;
    CHECK_EQ(eryx__memory_reserve(&o, 30), 0);
    CHECK_EQ(eryx__memory_map_image(&o, img), 0);
    CHECK_EQ(o.data[5], pat(5, 1));
    eryx__mem_image_unref(img);
    wasm_rt_free_memory(&o);
    wasm_rt_free_memory(&m);
}

/* Many threads mapping one image at once and dropping references. */
static eryx__mem_image *shared_img;

static void *mapper(void *arg)
{
    for (int i = 0; i < 50; i++) {
        eryx__mem_image_ref(shared_img);
        wasm_rt_memory_t m;
        CHECK_EQ(eryx__memory_reserve(&m, 100), 0);
        CHECK_EQ(eryx__memory_map_image(&m, shared_img), 0);
        eryx__mem_image_unref(shared_img);
        m.data[(uintptr_t)arg] = (uint8_t)(uintptr_t)arg;
        CHECK_EQ(m.data[K4 * 3 + 1], pat(K4 * 3 + 1, 2));
        CHECK_EQ(m.data[(uintptr_t)arg], (uint8_t)(uintptr_t)arg);
        wasm_rt_free_memory(&m);
    }
    return NULL;
}

TEST_CASE(test_threads)
{
    shared_img = make_image(30, 2);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, mapper, (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    eryx__mem_image_unref(shared_img);
}

static long minor_faults(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

/* Restoring in place: every page written (in data extents, in zero gaps,
 * one byte or all of it), growth, then restore: the memory equals the image
 * again, byte for byte where checked, the growth is gone, and writing the
 * same pages again takes no fault (the page tables were kept). */
TEST_CASE(test_restore_in_place)
{
    eryx__mem_image *img = make_image(100, 9);
    wasm_rt_memory_t m;
    CHECK_EQ(eryx__memory_reserve(&m, 200), 0);
    CHECK_EQ(eryx__memory_map_image(&m, img), 0);
    uint64_t restored = 0;
    CHECK_EQ(eryx__memory_restore_image(&m, img, &restored), 0);
    CHECK_EQ(restored, 0);                      /* nothing written yet */
    for (int round = 0; round < 3; round++) {
        for (uint64_t p = (uint64_t)round; p < 100 * PAGE / K4; p += 3)
            m.data[p * K4 + (p * 37) % K4] ^= 0x5a;     /* data and gaps */
        memset(m.data + 150 * K4, 0xab, 4 * K4);
        for (uint64_t p = 700; p < 760; p++)           /* read a gap only */
            CHECK_EQ(m.data[p * K4], 0);
        CHECK_EQ(wasm_rt_grow_memory(&m, 3), 100);
        memset(m.data + 100 * PAGE, 0x77, PAGE);
        CHECK_EQ(eryx__memory_restore_image(&m, img, &restored), 0);
        CHECK(restored >= 100 * PAGE / K4 / 3);
        CHECK_EQ(m.size, 100 * PAGE);
        CHECK_EQ(m.pages, 100);
        check_pattern(&m, 100 * PAGE, 9);
        for (uint64_t p = 0; p < 100 * PAGE / K4; p++)      /* every byte here */
            for (uint64_t o = p * K4; o < (p + 1) * K4; o++)
                if (m.data[o] != (page_filled(p) ? pat(o, 9) : 0)) {
                    fprintf(stderr, "restore: byte %llu differs\n", (unsigned long long)o);
                    exit(1);
                }
        /* Grown again: the new pages are zero, not the old growth. */
        CHECK_EQ(wasm_rt_grow_memory(&m, 1), 100);
        CHECK_EQ(m.data[100 * PAGE + 5], 0);
        CHECK_EQ(eryx__memory_restore_image(&m, img, NULL), 0);
    }
    long before = minor_faults();
    for (uint64_t p = 0; p < 100 * PAGE / K4; p += 3)
        m.data[p * K4] ^= 1;
    CHECK(minor_faults() - before < 10);
    /* A memory smaller than the image is refused. */
    wasm_rt_memory_t small;
    CHECK_EQ(eryx__memory_reserve(&small, 200), 0);
    CHECK_EQ(eryx__memory_restore_image(&small, img, NULL), -EINVAL);
    wasm_rt_free_memory(&small);
    wasm_rt_free_memory(&m);
    eryx__mem_image_unref(img);
}

static void setup(void)
{
    eng_global();
}

TEST_MAIN_WITH(setup, NULL)
