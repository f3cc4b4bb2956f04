/*
 * What one load costs through each way generated code can address linear
 * memory, on this machine: the latency of a chain of dependent loads (each
 * load's result is the next one's address), the pattern of an interpreter
 * following pointers (frame -> object -> type -> slot).
 *
 *   segment    mov %gs:(idx), idx        how the default guest reads memory
 *                                        (guest/w2c_segment.h): a 32-bit
 *                                        index under a %gs base
 *   base+index mov (base,idx), idx       a base pointer held in a register
 *                                        (the ERYX_GUEST_SEGMENT=0 variant
 *                                        when it keeps the base in one)
 *   pointer    mov 8(ptr), ptr           native code's own 64-bit pointers
 *
 * The nodes are 64 bytes apart in a random cycle; the working set is given
 * in KiB (default 32, inside every L1 data cache in use: the case where
 * the address computation is not hidden behind a cache miss).
 * docs/performance.md ("The segment on Intel") has what it found.
 *
 * usage: bench_segment [KiB] [rounds]; prints one JSON object of the best
 * round's nanoseconds per load. x86-64 Linux only (arch_prctl).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#if defined(__x86_64__) && defined(__linux__)
#include <asm/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NODE 64u   /* bytes between nodes: one cache line each */
#define FIRST 4096u /* the first node's index: never 0 */
#define LOADS 100000000L

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Links the nodes in one random cycle: at each node a 32-bit index of the
 * next (for the segment and base+index chains) and, 8 bytes on, its 64-bit
 * address (for the pointer chain). */
static void link_nodes(uint8_t *base, uint32_t nodes)
{
    uint32_t *order = malloc((size_t)nodes * sizeof *order);
    if (order == NULL) {
        perror("malloc");
        exit(1);
    }
    for (uint32_t i = 0; i < nodes; i++)
        order[i] = i;
    srand(1);
    for (uint32_t i = nodes - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t i = 0; i < nodes; i++) {
        uint32_t here = FIRST + order[i] * NODE, next = FIRST + order[(i + 1) % nodes] * NODE;
        *(uint32_t *)(base + here) = next;
        *(uint64_t *)(base + here + 8) = (uint64_t)(uintptr_t)(base + next);
    }
    free(order);
}

/* Each chain returns where it ended so that the loads cannot be dropped. */
static uint64_t chase_segment(void)
{
    uint64_t i = FIRST;
    for (long n = 0; n < LOADS; n++)
        __asm__ volatile("movl %%gs:(%0), %k0" : "+r"(i));
    return i;
}

static uint64_t chase_base_index(const uint8_t *base)
{
    uint64_t i = FIRST;
    for (long n = 0; n < LOADS; n++)
        __asm__ volatile("movl (%1,%0), %k0" : "+r"(i) : "r"(base));
    return i;
}

static uint64_t chase_pointer(const uint8_t *base)
{
    const uint8_t *p = base + FIRST;
    for (long n = 0; n < LOADS; n++)
        __asm__ volatile("movq 8(%0), %0" : "+r"(p));
    return (uint64_t)(uintptr_t)p;
}

int main(int argc, char **argv)
{
    long kib = argc > 1 ? atol(argv[1]) : 32;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (kib < 1 || kib > 1024L * 1024 || rounds < 1) {
        fprintf(stderr, "usage: bench_segment [KiB 1..1048576] [rounds >= 1]\n");
        return 2;
    }
    uint32_t nodes = (uint32_t)(kib * 1024 / NODE);
    size_t len = FIRST + (size_t)nodes * NODE;
    uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    link_nodes(base, nodes);
    /* This process has no other use for %gs; the engine sets it the same
     * way (src/engine/segment.c). */
    if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)(uintptr_t)base) != 0) {
        perror("arch_prctl");
        return 1;
    }
    double best[3] = {1e9, 1e9, 1e9};
    uint64_t sink = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        sink ^= chase_segment();
        double t1 = now();
        sink ^= chase_base_index(base);
        double t2 = now();
        sink ^= chase_pointer(base);
        double t3 = now();
        double d[3] = {t1 - t0, t2 - t1, t3 - t2};
        for (int k = 0; k < 3; k++)
            if (d[k] < best[k])
                best[k] = d[k];
    }
    printf("{\"kib\": %ld, \"rounds\": %d, \"segment_ns\": %.3f, \"base_index_ns\": %.3f, "
           "\"pointer_ns\": %.3f, \"sink\": %llu}\n",
           kib, rounds, best[0] / LOADS * 1e9, best[1] / LOADS * 1e9, best[2] / LOADS * 1e9,
           (unsigned long long)(sink & 1));
    return 0;
}
#else
int main(void)
{
    fprintf(stderr, "bench_segment: x86-64 Linux only\n");
    return 2;
}
#endif
