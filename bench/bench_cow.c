/*
 * What a lazy (copy-on-write) fork of a session would cost on this machine,
 * measured on the kernel primitives it would be built from, against what
 * eryx_sandbox_fork does (src/engine/snapshot.c: copy the non-zero pages
 * into a memfd's page cache with pwrite, map it MAP_PRIVATE).
 *
 * Linux has no call that duplicates anonymous memory copy-on-write inside
 * one process, so a lazy fork must catch writes itself: write-protect the
 * parent (mprotect, or userfaultfd's UFFDIO_WRITEPROTECT, which also sees
 * the kernel's own accesses), leave the child's pages missing, and copy a
 * page on the first fault on either side. Both costs scale with the pages
 * of the session, and both are measured here: the write-protect of the
 * whole memory (paid by the fork) and one fault round trip (paid by every
 * page either side later touches). mremap, which moves page tables a PMD
 * at a time, is the one sub-linear primitive; it is measured too.
 *
 * usage: bench_cow [MiB]   (default 50); prints one JSON object.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define ALIGN (2u << 20)

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* size bytes of fresh anonymous memory at a 2 MiB boundary (so mremap can
 * move whole page tables); leaked on purpose, the process is short. */
static uint8_t *fresh(size_t size)
{
    uint8_t *p = mmap(NULL, size + ALIGN, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return (uint8_t *)(((uintptr_t)p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
}

/* Fills memory the way a session's is: every page written, no two alike. */
static void fill(uint8_t *p, size_t size)
{
    for (size_t off = 0; off < size; off += PAGE)
        memset(p + off, (int)(off / PAGE) | 1, PAGE);
}

/* ---- the userfaultfd round trip ----------------------------------------- */

typedef struct uffd_bench {
    int fd;
    uint8_t *src, *dst;
    size_t size;
} uffd_bench;

/* Serves missing-page faults in dst by copying the page from src, as a
 * lazy fork's service thread would. */
static void *serve(void *arg)
{
    uffd_bench *u = arg;
    for (;;) {
        struct pollfd pf = {u->fd, POLLIN, 0};
        if (poll(&pf, 1, -1) < 0 && errno != EINTR)
            return NULL;
        struct uffd_msg m;
        if (read(u->fd, &m, sizeof m) != (ssize_t)sizeof m)
            continue;
        if (m.event != UFFD_EVENT_PAGEFAULT)
            continue;
        uintptr_t at = (uintptr_t)m.arg.pagefault.address & ~(uintptr_t)(PAGE - 1);
        struct uffdio_copy c = {.dst = at, .src = at - (uintptr_t)u->dst + (uintptr_t)u->src,
                                .len = PAGE, .mode = 0};
        if (ioctl(u->fd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
            return NULL;
    }
}

/* Registers size bytes at p with a new userfaultfd in `mode`; -1 if the
 * kernel or the process's privileges do not allow it. */
static int uffd_open(uint8_t *p, size_t size, unsigned mode)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct uffdio_api api = {.api = UFFD_API};
    struct uffdio_register reg = {.range = {(uintptr_t)p, size}, .mode = mode};
    if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* us per page for a child reading pages it does not have yet. */
static double uffd_fault_us(uint8_t *src, size_t size)
{
    uffd_bench u = {.src = src, .dst = fresh(size), .size = size};
    u.fd = uffd_open(u.dst, size, UFFDIO_REGISTER_MODE_MISSING);
    if (u.fd < 0)
        return -1;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, &u) != 0)
        return -1;
    size_t pages = size / PAGE / 8; /* a sample: this is slow */
    volatile uint8_t sink = 0;
    double t0 = now_us();
    for (size_t i = 0; i < pages; i++)
        sink ^= u.dst[i * PAGE];
    double us = (now_us() - t0) / (double)pages;
    (void)sink;
    return us;
}

/* us to write-protect size bytes of populated memory with userfaultfd. */
static double uffd_wp_us(uint8_t *p, size_t size)
{
    int fd = uffd_open(p, size, UFFDIO_REGISTER_MODE_WP);
    if (fd < 0)
        return -1;
    struct uffdio_writeprotect wp = {.range = {(uintptr_t)p, size},
                                     .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    double t0 = now_us();
    int rc = ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
    double us = now_us() - t0;
    close(fd);
    return rc < 0 ? -1 : us;
}

/* ---- the rest ----------------------------------------------------------- */

/* What eryx_sandbox_fork does with the memory: pwrite into a memfd. */
static double capture_us(const uint8_t *p, size_t size)
{
    int fd = memfd_create("bench", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        return -1;
    double t0 = now_us();
    ssize_t n = pwrite(fd, p, size, 0);
    double us = now_us() - t0;
    close(fd);
    return n == (ssize_t)size ? us : -1;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 50;
    if (mib == 0 || mib > 4096) {
        fprintf(stderr, "usage: bench_cow [MiB (1-4096)]\n");
        return 2;
    }
    size_t size = mib << 20, pages = size / PAGE;

    uint8_t *a = fresh(size);
    double t0 = now_us();
    fill(a, size); /* a first-touch fault per page */
    double fault = (now_us() - t0) / (double)pages;

    uint8_t *b = fresh(size);
    t0 = now_us();
    int populated = madvise(b, size, MADV_POPULATE_WRITE) == 0;
    double populate = populated ? (now_us() - t0) / (double)pages : -1;

    /* The first capture in a process is several times slower (fresh page
     * cache pages): report it and the best of the next three. */
    double capture_first = capture_us(a, size), capture = -1;
    for (int i = 0; i < 3; i++) {
        double us = capture_us(a, size);
        if (capture < 0 || (us >= 0 && us < capture))
            capture = us;
    }

    t0 = now_us();
    int prot = mprotect(a, size, PROT_READ) == 0;
    double mprotect_ro = prot ? now_us() - t0 : -1;
    mprotect(a, size, PROT_READ | PROT_WRITE);

    double wp = uffd_wp_us(a, size);
    double uffd_fault = uffd_fault_us(a, size);

    uint8_t *c = fresh(size);
    t0 = now_us();
    void *moved = mremap(a, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, c);
    double mremap_us = moved == c ? now_us() - t0 : -1;

    printf("{\"mib\": %zu, \"first_touch_fault_us_per_page\": %.2f, "
           "\"populate_write_us_per_page\": %.2f, \"capture_pwrite_first_us\": %.0f, "
           "\"capture_pwrite_us\": %.0f, "
           "\"mprotect_readonly_us\": %.0f, \"uffd_writeprotect_us\": %.0f, "
           "\"uffd_fault_round_trip_us_per_page\": %.2f, \"mremap_move_us\": %.0f}\n",
           mib, fault, populate, capture_first, capture, mprotect_ro, wp, uffd_fault, mremap_us);
    return 0;
}
