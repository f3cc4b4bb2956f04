/*
 * The WASI imports that do not touch files: args and environment, stdio
 * capture (truncation, non-UTF-8, output callback), stdin then EOF, clocks,
 * poll_oneoff sleeps, random_get, proc_exit through the engine, sockets,
 * and bad guest pointers everywhere.
 */
#include <time.h>

#include "engine/engine.h"
#include "testutil.h"

static wasm_rt_memory_t *mem;

static eryx__wasi *new_wasi(uint64_t max_output)
{
    static const char *const argv[] = {"python", "-c", "print('hé')", NULL};
    static const char *const envp[] = {"A=1", "PYTHONHASHSEED=0", NULL};
    eryx__wasi_config cfg = {argv, envp, eryx__vfs_new(1 << 20), max_output};
    eryx__wasi *w = eryx__wasi_new(&cfg);
    REQUIRE(w);
    eryx__wasi_set_memory(w, mem);
    return w;
}

TEST_CASE(test_args_env)
{
    eryx__wasi *w = new_wasi(100);
    CHECK_INT(W(args_sizes_get)(w, 0, 4), 0);
    CHECK_INT(ld32(mem, 0), 3);
    CHECK_INT(ld32(mem, 4), strlen("python") + strlen("-c") + strlen("print('hé')") + 3);
    CHECK_INT(W(args_get)(w, 100, 200), 0);
    CHECK_INT(ld32(mem, 100), 200);
    CHECK_STR((char *)mem->data + ld32(mem, 104), "-c");
    CHECK_STR((char *)mem->data + ld32(mem, 108), "print('hé')");
    CHECK_INT(W(environ_sizes_get)(w, 0, 4), 0);
    CHECK_INT(ld32(mem, 0), 2);
    CHECK_INT(ld32(mem, 4), 21);
    CHECK_INT(W(environ_get)(w, 300, 400), 0);
    CHECK_STR((char *)mem->data + ld32(mem, 304), "PYTHONHASHSEED=0");
    /* Bad pointers: past the end, wrapping, and a buffer crossing the end. */
    CHECK_INT(W(args_sizes_get)(w, mem->size - 2, 4), WASI_EFAULT);
    CHECK_INT(W(args_sizes_get)(w, 0, 0xfffffffeu), WASI_EFAULT);
    CHECK_INT(W(args_get)(w, 100, mem->size - 5), WASI_EFAULT);
    CHECK_INT(W(environ_get)(w, 0xfffffffcu, 400), WASI_EFAULT);
    eryx__wasi_free(w);

    /* No argv/envp at all. */
    eryx__wasi_config cfg = {0};
    w = eryx__wasi_new(&cfg);
    REQUIRE(w);
    eryx__wasi_set_memory(w, mem);
    CHECK_INT(W(args_sizes_get)(w, 0, 4), 0);
    CHECK_INT(ld32(mem, 0), 0);
    CHECK_INT(ld32(mem, 4), 0);
    CHECK_INT(W(args_get)(w, mem->size, mem->size), 0);     /* empty ranges at the end */
    /* Without a vfs there is no preopen. */
    CHECK_INT(W(fd_prestat_get)(w, 3, 0), WASI_EBADF);
    eryx__wasi_free(w);
}

static char cb_buf[256];
static size_t cb_len;
static void on_output(void *ud, int fd, const char *data, size_t len)
{
    (void)ud;
    if (fd == 2 && cb_len + len < sizeof cb_buf) {
        memcpy(cb_buf + cb_len, data, len);
        cb_len += len;
    }
}

static uint32_t write_str(eryx__wasi *w, uint32_t fd, const char *s, size_t n)
{
    memcpy(mem->data + 1000, s, n);
    put_iov(mem, 16, 1000, (uint32_t)n);
    return W(fd_write)(w, fd, 16, 1, 8);
}

TEST_CASE(test_stdio)
{
    eryx__wasi *w = new_wasi(10);
    eryx__wasi_set_output_fn(w, on_output, NULL);
    eryx__wasi_begin_run(w);
    /* Two iovecs in one call, non-UTF-8 bytes included. */
    memcpy(mem->data + 500, "ab\xff\xfe", 4);
    memcpy(mem->data + 600, "\x00z", 2);
    put_iov(mem, 16, 500, 4);
    put_iov(mem, 24, 600, 2);
    CHECK_INT(W(fd_write)(w, 1, 16, 2, 8), 0);
    CHECK_INT(ld32(mem, 8), 6);
    size_t len;
    int trunc;
    const char *out = eryx__wasi_output(w, 1, &len, &trunc);
    CHECK_INT(len, 6);
    CHECK_MEM(out, "ab\xff\xfe\x00z", 6);
    CHECK_INT(trunc, 0);
    /* Past max_output (10 for stdout and stderr together): the write
     * succeeds, the rest is dropped, a marker ends the stream. */
    static const char marker[] = "\n[eryx: output truncated at the 10-byte limit]\n";
    const size_t mlen = sizeof marker - 1;
    CHECK_INT(write_str(w, 1, "0123456789", 10), 0);
    CHECK_INT(ld32(mem, 8), 10);
    out = eryx__wasi_output(w, 1, &len, &trunc);
    CHECK_INT(len, 10 + mlen);
    CHECK_MEM(out, "ab\xff\xfe\x00z0123", 10);
    CHECK_MEM(out + 10, marker, mlen);
    CHECK_INT(trunc, 1);
    /* stdout used the shared budget: stderr keeps only its marker. */
    CHECK_INT(write_str(w, 2, "err", 3), 0);
    out = eryx__wasi_output(w, 2, &len, &trunc);
    CHECK_INT(len, mlen);
    CHECK_INT(trunc, 1);
    CHECK_INT(cb_len, mlen);
    CHECK_MEM(cb_buf, marker, mlen);
    char *taken = eryx__wasi_take_output(w, 2, &len);
    REQUIRE(taken);
    CHECK_INT(len, mlen);
    CHECK_STR(taken, marker);
    free(taken);
    taken = eryx__wasi_take_output(w, 2, &len);
    REQUIRE(taken);
    CHECK_INT(len, 0);
    free(taken);
    /* Configured to stop, the crossing write fails. */
    eryx__wasi_begin_run(w);
    eryx__wasi_set_output_stop(w, 1);
    CHECK_INT(write_str(w, 1, "0123456789ab", 12), WASI_EFBIG);
    eryx__wasi_set_output_stop(w, 0);
    eryx__wasi_begin_run(w);
    out = eryx__wasi_output(w, 1, &len, &trunc);
    CHECK_INT(len, 0);
    CHECK_INT(trunc, 0);

    /* Writes to stdin / reads from stdout are refused; pwrite is ESPIPE. */
    CHECK_INT(write_str(w, 0, "x", 1), WASI_EBADF);
    CHECK_INT(write_str(w, 99, "x", 1), WASI_EBADF);
    CHECK_INT(W(fd_pwrite)(w, 1, 16, 1, 0, 8), WASI_ESPIPE);
    CHECK_INT(W(fd_read)(w, 1, 16, 1, 8), WASI_EBADF);
    CHECK_INT(W(fd_seek)(w, 1, 0, WASI_WHENCE_SET, 8), WASI_ESPIPE);
    CHECK_INT(W(fd_tell)(w, 1, 8), WASI_ESPIPE);

    /* stdin: the bytes set, then EOF. */
    CHECK_INT(eryx__wasi_set_stdin(w, "line1\nline2", 11), 0);
    put_iov(mem, 16, 2000, 4);
    put_iov(mem, 24, 3000, 100);
    CHECK_INT(W(fd_read)(w, 0, 16, 2, 8), 0);
    CHECK_INT(ld32(mem, 8), 11);
    CHECK_MEM(mem->data + 2000, "line", 4);
    CHECK_MEM(mem->data + 3000, "1\nline2", 7);
    CHECK_INT(W(fd_read)(w, 0, 16, 2, 8), 0);
    CHECK_INT(ld32(mem, 8), 0);

    uint8_t *p = mem->data + 40;
    CHECK_INT(W(fd_fdstat_get)(w, 1, 40), 0);
    CHECK_INT(p[0], WASI_FILETYPE_UNKNOWN);
    CHECK(ld64(mem, 48) & WASI_RIGHT_FD_WRITE);
    CHECK_INT(W(fd_filestat_get)(w, 0, 40), 0);
    eryx__wasi_free(w);
}

/* Every pointer/length the fd_write and fd_read paths take, made bad. */
TEST_CASE(test_bad_pointers)
{
    eryx__wasi *w = new_wasi(1 << 20);
    uint32_t top = mem->size;
    put_iov(mem, 16, 1000, 4);
    /* iovec array out of range, wrapping, or too long. */
    CHECK_INT(W(fd_write)(w, 1, top - 4, 1, 8), WASI_EFAULT);
    CHECK_INT(W(fd_write)(w, 1, 0xfffffff8u, 1, 8), WASI_EFAULT);
    CHECK_INT(W(fd_write)(w, 1, 16, 0x20000000u, 8), WASI_EINVAL);
    CHECK_INT(W(fd_write)(w, 1, 16, 1025, 8), WASI_EINVAL);
    /* A buffer crossing the end, one whose ptr+len wraps, and a NULL-ish len. */
    put_iov(mem, 16, top - 2, 4);
    CHECK_INT(W(fd_write)(w, 1, 16, 1, 8), WASI_EFAULT);
    put_iov(mem, 16, 0xfffffff0u, 0x20);
    CHECK_INT(W(fd_write)(w, 1, 16, 1, 8), WASI_EFAULT);
    put_iov(mem, 16, 100, 0xffffffffu);
    CHECK_INT(W(fd_write)(w, 1, 16, 1, 8), WASI_EFAULT);
    CHECK_INT(W(fd_read)(w, 0, 16, 1, 8), WASI_EFAULT);
    /* A good iovec followed by a bad one: nothing is written. */
    put_iov(mem, 16, 1000, 4);
    put_iov(mem, 24, top, 1);
    CHECK_INT(W(fd_write)(w, 1, 16, 2, 8), WASI_EFAULT);
    size_t len;
    eryx__wasi_output(w, 1, &len, NULL);
    CHECK_INT(len, 0);
    /* The result pointer. */
    CHECK_INT(W(fd_write)(w, 1, 16, 1, top - 3), WASI_EFAULT);
    CHECK_INT(W(fd_write)(w, 1, 16, 1, 0xffffffffu), WASI_EFAULT);
    /* An empty write at the very end of memory is fine. */
    put_iov(mem, 16, top, 0);
    CHECK_INT(W(fd_write)(w, 1, 16, 1, top - 4), 0);
    CHECK_INT(W(fd_write)(w, 1, 16, 0, 8), 0);

    CHECK_INT(W(fd_fdstat_get)(w, 1, top - 8), WASI_EFAULT);
    CHECK_INT(W(fd_filestat_get)(w, 1, top - 63), WASI_EFAULT);
    CHECK_INT(W(fd_prestat_get)(w, 3, top - 4), WASI_EFAULT);
    CHECK_INT(W(fd_prestat_dir_name)(w, 3, 0xffffffffu, 2), WASI_EFAULT);
    CHECK_INT(W(fd_readdir)(w, 3, top - 10, 100, 0, 8), WASI_EFAULT);
    CHECK_INT(W(fd_readdir)(w, 3, 100, 100, 0, top), WASI_EFAULT);
    CHECK_INT(W(clock_time_get)(w, WASI_CLOCK_MONOTONIC, 0, top - 7), WASI_EFAULT);
    CHECK_INT(W(clock_res_get)(w, WASI_CLOCK_MONOTONIC, 0xfffffffcu), WASI_EFAULT);
    CHECK_INT(W(random_get)(w, top - 10, 11), WASI_EFAULT);
    CHECK_INT(W(random_get)(w, 0xffffff00u, 0x1000), WASI_EFAULT);
    CHECK_INT(W(poll_oneoff)(w, top - 40, 0, 1, 8), WASI_EFAULT);
    CHECK_INT(W(poll_oneoff)(w, 0, top - 16, 1, 8), WASI_EFAULT);
    CHECK_INT(W(poll_oneoff)(w, 0, 100, 0x10000000u, 8), WASI_EINVAL);
    CHECK_INT(W(poll_oneoff)(w, 0, 100, 0, 8), WASI_EINVAL);
    CHECK_INT(W(path_open)(w, 3, 0, top - 2, 5, 0, 0, 0, 0, 8), WASI_EFAULT);
    CHECK_INT(W(path_open)(w, 3, 0, 0xfffffff0u, 0x20, 0, 0, 0, 0, 8), WASI_EFAULT);
    put_str(mem, 100, "tmp");
    CHECK_INT(W(path_open)(w, 3, 0, 100, 3, 0, 0, 0, 0, top), WASI_EFAULT);
    CHECK_INT(W(path_filestat_get)(w, 3, 0, 100, 3, top - 1), WASI_EFAULT);
    CHECK_INT(W(path_readlink)(w, 3, 100, 3, top - 1, 2, 8), WASI_EFAULT);
    CHECK_INT(W(path_create_directory)(w, 3, 0xffffffffu, 1), WASI_EFAULT);
    CHECK_INT(W(path_rename)(w, 3, 100, 3, 3, top, 1), WASI_EFAULT);
    CHECK_INT(W(path_symlink)(w, top, 2, 3, 100, 3), WASI_EFAULT);

    /* No memory bound at all. */
    eryx__wasi_set_memory(w, NULL);
    CHECK_INT(W(fd_write)(w, 1, 16, 1, 8), WASI_EFAULT);
    CHECK_INT(W(args_sizes_get)(w, 0, 4), WASI_EFAULT);
    eryx__wasi_free(w);
}

static uint64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void put_clock_sub(uint32_t off, uint64_t ud, uint32_t clock, uint64_t timeout,
                          uint16_t flags)
{
    memset(mem->data + off, 0, WASI_SUBSCRIPTION_SIZE);
    st64(mem, off, ud);
    mem->data[off + 8] = WASI_EVENT_CLOCK;
    st32(mem, off + 16, clock);
    st64(mem, off + 24, timeout);
    memcpy(mem->data + off + 40, &flags, 2);
}

TEST_CASE(test_clocks_poll)
{
    eryx__wasi *w = new_wasi(100);
    CHECK_INT(W(clock_time_get)(w, WASI_CLOCK_MONOTONIC, 0, 8), 0);
    uint64_t a = ld64(mem, 8);
    CHECK_INT(W(clock_time_get)(w, WASI_CLOCK_MONOTONIC, 0, 8), 0);
    CHECK(ld64(mem, 8) >= a);
    CHECK_INT(W(clock_time_get)(w, WASI_CLOCK_REALTIME, 0, 8), 0);
    CHECK(ld64(mem, 8) > 1600000000ull * 1000000000ull);
    CHECK_INT(W(clock_time_get)(w, WASI_CLOCK_PROCESS_CPUTIME, 0, 8), 0);
    CHECK_INT(W(clock_time_get)(w, WASI_CLOCK_THREAD_CPUTIME, 0, 8), 0);
    CHECK_INT(W(clock_time_get)(w, 4, 0, 8), WASI_EINVAL);
    CHECK_INT(W(clock_res_get)(w, WASI_CLOCK_REALTIME, 8), 0);
    CHECK(ld64(mem, 8) > 0);

    /* A relative 10 ms sleep takes at least 10 ms. */
    put_clock_sub(1024, 77, WASI_CLOCK_MONOTONIC, 10000000, 0);
    uint64_t t0 = mono();
    CHECK_INT(W(poll_oneoff)(w, 1024, 2048, 1, 8), 0);
    CHECK(mono() - t0 >= 10000000);
    CHECK_INT(ld32(mem, 8), 1);
    CHECK_INT(ld64(mem, 2048), 77);
    CHECK_INT(mem->data[2048 + 10], WASI_EVENT_CLOCK);

    /* Absolute realtime deadline 15 ms ahead, with a later one: one event.
     * t0 is taken before the deadline is made: under valgrind, making it
     * took more than the 1 ms of slack a later t0 left. */
    t0 = mono();
    CHECK_INT(W(clock_time_get)(w, WASI_CLOCK_REALTIME, 0, 16), 0);
    put_clock_sub(1024, 1, WASI_CLOCK_REALTIME, ld64(mem, 16) + 15000000, 1);
    put_clock_sub(1072, 2, WASI_CLOCK_MONOTONIC, 5000000000ull, 0);
    CHECK_INT(W(poll_oneoff)(w, 1024, 2048, 2, 8), 0);
    CHECK(mono() - t0 >= 14000000);
    CHECK(mono() - t0 < 4000000000ull);
    CHECK_INT(ld32(mem, 8), 1);
    CHECK_INT(ld64(mem, 2048), 1);

    /* An fd subscription is ready at once; the clock is not waited for. */
    put_clock_sub(1024, 5, WASI_CLOCK_MONOTONIC, 5000000000ull, 0);
    memset(mem->data + 1072, 0, 48);
    st64(mem, 1072, 6);
    mem->data[1072 + 8] = WASI_EVENT_FD_WRITE;
    st32(mem, 1072 + 16, 1);
    t0 = mono();
    CHECK_INT(W(poll_oneoff)(w, 1024, 2048, 2, 8), 0);
    CHECK(mono() - t0 < 1000000000ull);
    CHECK_INT(ld32(mem, 8), 1);
    CHECK_INT(ld64(mem, 2048), 6);
    CHECK_INT(mem->data[2048 + 10], WASI_EVENT_FD_WRITE);
    /* A bad fd gives an event with EBADF; a bad clock id one with EINVAL. */
    st32(mem, 1072 + 16, 55);
    put_clock_sub(1024, 5, 99, 0, 0);
    CHECK_INT(W(poll_oneoff)(w, 1024, 2048, 2, 8), 0);
    CHECK_INT(ld32(mem, 8), 2);
    CHECK_INT(*(uint16_t *)(mem->data + 2048 + 8), WASI_EINVAL);
    CHECK_INT(*(uint16_t *)(mem->data + 2048 + 32 + 8), WASI_EBADF);
    /* A bad tag. */
    mem->data[1024 + 8] = 7;
    CHECK_INT(W(poll_oneoff)(w, 1024, 2048, 1, 8), WASI_EINVAL);
    /* An interrupt ends a long sleep early, its clock reported due (with
     * EINTR, wasi-libc's clock_nanosleep said ENOTSUP, and time.sleep
     * raised OSError). */
    put_clock_sub(1024, 5, WASI_CLOCK_MONOTONIC, 60000000000ull, 0);
    memset(mem->data + 2048, 0xff, 32);
    eryx__wasi_interrupt(w);
    t0 = mono();
    CHECK_INT(W(poll_oneoff)(w, 1024, 2048, 1, 8), 0);
    CHECK(mono() - t0 < 1000000000ull);
    CHECK_INT(ld32(mem, 8), 1);
    CHECK_INT(ld64(mem, 2048), 5);
    CHECK_INT(*(uint16_t *)(mem->data + 2048 + 8), 0);
    CHECK_INT(mem->data[2048 + 10], WASI_EVENT_CLOCK);
    eryx__wasi_begin_run(w);
    put_clock_sub(1024, 5, WASI_CLOCK_MONOTONIC, 0, 0);
    CHECK_INT(W(poll_oneoff)(w, 1024, 2048, 1, 8), 0);
    CHECK_INT(ld32(mem, 8), 1);

    /* random_get fills the buffer (two draws of 64 bytes differ). */
    memset(mem->data + 4096, 0, 128);
    CHECK_INT(W(random_get)(w, 4096, 64), 0);
    CHECK_INT(W(random_get)(w, 4160, 64), 0);
    CHECK(memcmp(mem->data + 4096, mem->data + 4160, 64) != 0);
    int zeros = 0;
    for (int i = 0; i < 64; i++)
        zeros += mem->data[4096 + i] == 0;
    CHECK(zeros < 16);
    CHECK_INT(W(random_get)(w, mem->size, 0), 0);
    CHECK_INT(W(sched_yield)(w), 0);
    CHECK_INT(W(proc_raise)(w, 9), WASI_ENOSYS);
    CHECK_INT(W(sock_accept)(w, 3, 0, 8), WASI_ENOTSUP);
    CHECK_INT(W(sock_accept)(w, 77, 0, 8), WASI_EBADF);
    CHECK_INT(W(sock_recv)(w, 3, 0, 0, 0, 0, 0), WASI_ENOTSUP);
    CHECK_INT(W(sock_send)(w, 3, 0, 0, 0, 0), WASI_ENOTSUP);
    CHECK_INT(W(sock_shutdown)(w, 3, 0), WASI_ENOTSUP);
    eryx__wasi_free(w);
}

static eryx__wasi *exit_w;
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins until this thread has used ns more CPU time. */
static void burn_cpu(uint64_t ns)
{
    uint64_t start = thread_cpu_ns();
    volatile uint64_t x = 0;
    while (thread_cpu_ns() - start < ns)
        for (int i = 0; i < 1000; i++)
            x += (uint64_t)i;
}

static uint64_t guest_clock(eryx__wasi *w, uint32_t id)
{
    CHECK_INT(W(clock_time_get)(w, id, 0, 8), 0);
    return ld64(mem, 8);
}

/* The CPU clocks show the sandbox's own CPU time (inside guest calls), not
 * the host process's, which includes other tenants' work. */
TEST_CASE(test_cpu_clocks)
{
    eryx__wasi *w = new_wasi(100);
    burn_cpu(40000000);     /* host work, not the sandbox's */
    CHECK_INT(guest_clock(w, WASI_CLOCK_PROCESS_CPUTIME), 0);
    CHECK_INT(guest_clock(w, WASI_CLOCK_THREAD_CPUTIME), 0);
    eryx__wasi_cpu_enter(w);
    burn_cpu(20000000);
    uint64_t inside = guest_clock(w, WASI_CLOCK_PROCESS_CPUTIME);
    CHECK(inside >= 20000000);
    CHECK(guest_clock(w, WASI_CLOCK_THREAD_CPUTIME) >= inside);
    eryx__wasi_cpu_enter(w);    /* nested entries count once */
    eryx__wasi_cpu_leave(w);
    eryx__wasi_cpu_leave(w);
    uint64_t after = guest_clock(w, WASI_CLOCK_PROCESS_CPUTIME);
    burn_cpu(40000000);
    CHECK_INT(guest_clock(w, WASI_CLOCK_PROCESS_CPUTIME), after);
    CHECK(after - inside < 20000000);
    eryx__wasi_cpu_leave(w);    /* unbalanced: ignored */
    CHECK_INT(guest_clock(w, WASI_CLOCK_PROCESS_CPUTIME), after);
    /* A clone has used no CPU yet. */
    eryx__wasi *c = eryx__wasi_clone(w);
    REQUIRE(c);
    eryx__wasi_set_memory(c, mem);
    CHECK_INT(guest_clock(c, WASI_CLOCK_PROCESS_CPUTIME), 0);
    eryx__wasi_free(c);
    eryx__wasi_free(w);
}

/* A fake journal's draws: random bytes count up, the wall clock is 7. */
static int fake_random(void *ud, uint8_t *p, size_t len)
{
    int *n = ud;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(*n)++;
    return len == 3 ? -1 : 0;
}

static uint64_t fake_realtime(void *ud, uint64_t host_ns)
{
    (void)ud;
    return host_ns ? 7 : 0;
}

/* Counts the realtime reads that reach it in *ud. */
static uint64_t counting_realtime(void *ud, uint64_t host_ns)
{
    ++*(int *)ud;
    return host_ns ? 7 : 0;
}

/* random_get and the realtime clock go through the draws when set (a
 * journal records and replays them); the other clocks never do, and a
 * clone starts without them. */
TEST_CASE(test_draws)
{
    static const eryx__wasi_draws draws = {fake_random, fake_realtime};
    int n = 0;
    eryx__wasi *w = new_wasi(100);
    eryx__wasi_set_draws(w, &draws, &n);
    CHECK_INT(W(random_get)(w, 4096, 4), 0);
    CHECK_INT(mem->data[4096], 0);
    CHECK_INT(mem->data[4099], 3);
    CHECK_INT(W(random_get)(w, 4096, 3), WASI_EIO);
    CHECK_INT(W(random_get)(w, mem->size - 1, 4), WASI_EFAULT); /* checked first */
    CHECK_INT(n, 7);
    CHECK_INT(guest_clock(w, WASI_CLOCK_REALTIME), 7);
    /* A bad pointer is refused before the read reaches the draws. */
    n = 100;
    static const eryx__wasi_draws counting = {fake_random, counting_realtime};
    eryx__wasi_set_draws(w, &counting, &n);
    CHECK_INT(W(clock_time_get)(w, WASI_CLOCK_REALTIME, 0, mem->size - 4), WASI_EFAULT);
    CHECK_INT(n, 100);
    CHECK_INT(guest_clock(w, WASI_CLOCK_REALTIME), 7);
    CHECK_INT(n, 101);
    eryx__wasi_set_draws(w, &draws, &n);
    CHECK(guest_clock(w, WASI_CLOCK_MONOTONIC) != 7);
    eryx__wasi *c = eryx__wasi_clone(w);
    REQUIRE(c);
    eryx__wasi_set_memory(c, mem);
    CHECK(guest_clock(c, WASI_CLOCK_REALTIME) > 1000000000ull * 1700000000ull);
    eryx__wasi_free(c);
    eryx__wasi_set_draws(w, NULL, NULL);
    CHECK(guest_clock(w, WASI_CLOCK_REALTIME) > 1000000000ull * 1700000000ull);
    eryx__wasi_free(w);
}

static void call_exit(void *arg)
{
    (void)arg;
    W(proc_exit)(exit_w, 42);
}

TEST_CASE(test_proc_exit)
{
    REQUIRE(eryx__engine_global_init() == 0);
    exit_w = new_wasi(100);
    eryx__call_info info = {0};
    CHECK_INT(eryx__engine_call(mem, call_exit, NULL, &info), ERYX__CALL_EXIT);
    CHECK_INT(info.exit_code, 42);
    eryx__wasi_free(exit_w);
}

static void setup(void)
{
    mem = gmem_new(2);
}

static void teardown(void)
{
    gmem_free(mem);
}

TEST_MAIN_WITH(setup, teardown)
