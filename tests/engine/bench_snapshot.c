/* Not a test (speed is never asserted): what memory images cost. Prints
 * capture time, map time (p50/p99), first-touch fault costs, prefaulting,
 * and a fork of a 50 MiB memory against the plain-copy alternative. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "check.h"

#define PAGE 65536u
#define K4 4096u

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A memory of `mib` MiB where about 70% of the 4 KiB pages hold data, in
 * runs, like a heap that has been used. */
static void make_src(wasm_rt_memory_t *m, uint32_t mib)
{
    wasm_rt_allocate_memory(m, mib * 16, 2000);
    CHECK(m->data);
    uint32_t seed = 12345;
    for (uint64_t p = 0; p < m->size / K4; p++) {
        seed = seed * 1103515245u + 12345u;
        if ((p / 8) % 10 < 7)
            memset(m->data + p * K4, (int)((seed >> 16) | 1), K4);
    }
}

static void bench_capture(uint32_t mib)
{
    wasm_rt_memory_t src;
    make_src(&src, mib);
    double best = 1e30;
    eryx__mem_image *img = NULL;
    for (int i = 0; i < 5; i++) {
        eryx__mem_image_unref(img);
        double t0 = now_us();
        CHECK_EQ(eryx__mem_image_capture(&src, &img), 0);
        double t = now_us() - t0;
        best = t < best ? t : best;
    }
    printf("capture %2u MiB (%zu MiB data, %u mappings): %8.0f us (best of 5)\n", mib,
           eryx__mem_image_data_bytes(img) >> 20, eryx__mem_image_mappings(img), best);
    eryx__mem_image_unref(img);
    wasm_rt_free_memory(&src);
}

static void bench_map(void)
{
    wasm_rt_memory_t src;
    make_src(&src, 20);
    eryx__mem_image *img;
    CHECK_EQ(eryx__mem_image_capture(&src, &img), 0);
    wasm_rt_free_memory(&src);
    enum { N = 1000 };
    static double tr[N], tm[N], tf[N];
    for (int i = 0; i < N; i++) {
        wasm_rt_memory_t m;
        double t0 = now_us();
        CHECK_EQ(eryx__memory_reserve(&m, 2000), 0);
        double t1 = now_us();
        CHECK_EQ(eryx__memory_map_image(&m, img), 0);
        double t2 = now_us();
        m.data[0] = 1;
        wasm_rt_free_memory(&m);
        tf[i] = now_us() - t2;
        tr[i] = t1 - t0;
        tm[i] = t2 - t1;
    }
    qsort(tr, N, sizeof *tr, cmp_d);
    qsort(tm, N, sizeof *tm, cmp_d);
    qsort(tf, N, sizeof *tf, cmp_d);
    printf("reserve 8 GiB:        p50 %6.1f us  p99 %6.1f us\n", tr[N / 2], tr[N * 99 / 100]);
    printf("map 20 MiB image:     p50 %6.1f us  p99 %6.1f us\n", tm[N / 2], tm[N * 99 / 100]);
    printf("touch 1 page + free:  p50 %6.1f us  p99 %6.1f us\n", tf[N / 2], tf[N * 99 / 100]);

    /* First touch after mapping: one write (copy-on-write) or read fault
     * per 4 KiB page of the data, against fresh anonymous memory. */
    wasm_rt_memory_t m;
    CHECK_EQ(eryx__memory_reserve(&m, 2000), 0);
    CHECK_EQ(eryx__memory_map_image(&m, img), 0);
    uint64_t n = 0;
    double t0 = now_us();
    for (uint64_t o = 0; o < m.size; o += K4)
        if ((o / K4 / 8) % 10 < 7) {
            m.data[o] ^= 1;
            n++;
        }
    double cow = (now_us() - t0) / (double)n;
    CHECK_EQ(eryx__memory_map_image(&m, img), 0);
    volatile uint8_t sink = 0;
    t0 = now_us();
    for (uint64_t o = 0; o < m.size; o += K4)
        if ((o / K4 / 8) % 10 < 7)
            sink ^= m.data[o];
    double rd = (now_us() - t0) / (double)n;
    CHECK_EQ(eryx__memory_map_image(&m, img), 0);
    t0 = now_us();
    int rc = eryx__memory_prefault(&m, 0, m.size, 1);
    double pf = (now_us() - t0) / (double)(m.size / K4);
    wasm_rt_free_memory(&m);
    wasm_rt_memory_t a;
    wasm_rt_allocate_memory(&a, 320, 2000);
    t0 = now_us();
    for (uint64_t o = 0; o < a.size; o += K4)
        a.data[o] = 1;
    double anon = (now_us() - t0) / (double)(a.size / K4);
    wasm_rt_free_memory(&a);
    printf("first write per page: %.2f us (copy-on-write), first read %.2f us, "
           "fresh anonymous %.2f us\n", cow, rd, anon);
    printf("prefault (MADV_POPULATE_WRITE) of all 20 MiB: %.2f us per page (rc %d)\n", pf,
           rc);

    /* What instantiation does today: allocate 320 pages, copy 3 MB in. */
    static uint8_t seg[3u << 20];
    memset(seg, 7, sizeof seg);
    t0 = now_us();
    wasm_rt_allocate_memory(&a, 320, 2000);
    memcpy(a.data + PAGE * 16, seg, sizeof seg);
    __asm__ volatile("" ::"r"(a.data) : "memory");
    printf("today's instantiate memory (20 MiB + 3 MB copy): %.0f us\n", now_us() - t0);
    wasm_rt_free_memory(&a);
    (void)sink;
    eryx__mem_image_unref(img);
}

static void bench_fork(void)
{
    wasm_rt_memory_t src;
    make_src(&src, 50);
    for (int i = 0; i < 3; i++) {
        wasm_rt_memory_t dst = {0};
        double t0 = now_us();
        CHECK_EQ(eryx__memory_fork(&src, &dst), 0);
        double tf = now_us() - t0;
        /* The child then writes 1% of its pages. */
        t0 = now_us();
        for (uint64_t o = 0; o < dst.size; o += 100 * K4)
            dst.data[o] ^= 1;
        double tw = now_us() - t0;
        wasm_rt_free_memory(&dst);

        /* The alternative: a private anonymous copy of every non-zero page. */
        wasm_rt_memory_t cp;
        t0 = now_us();
        wasm_rt_allocate_memory(&cp, src.pages, src.max_pages);
        for (uint64_t o = 0; o < src.size; o += K4)
            if (src.data[o] != 0 || memcmp(src.data + o, src.data + o + 1, K4 - 1) != 0)
                memcpy(cp.data + o, src.data + o, K4);
        __asm__ volatile("" ::"r"(cp.data) : "memory");
        double tc = now_us() - t0;
        wasm_rt_free_memory(&cp);

        /* The same with the destination prefaulted in one batch. */
        t0 = now_us();
        wasm_rt_allocate_memory(&cp, src.pages, src.max_pages);
        madvise(cp.data, src.size, MADV_POPULATE_WRITE);
        memcpy(cp.data, src.data, src.size);
        __asm__ volatile("" ::"r"(cp.data) : "memory");
        double tp = now_us() - t0;
        wasm_rt_free_memory(&cp);
        printf("fork 50 MiB (35 MiB data): memfd fork %.0f us (+%.0f us for the child's "
               "first writes to 1%% of pages) | copy %.0f us | populate+memcpy %.0f us\n",
               tf, tw, tc, tp);
    }
    wasm_rt_free_memory(&src);
}

int main(void)
{
    CHECK_EQ(eryx__engine_global_init(), 0);
    bench_capture(20);
    bench_capture(50);
    bench_map();
    bench_fork();
    return 0;
}
