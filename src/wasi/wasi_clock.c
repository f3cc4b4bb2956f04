/*
 * Clocks and poll_oneoff.
 *
 * Realtime and monotonic are the host's. Both CPU clocks (process and
 * thread: the guest has one thread) are the sandbox's own running time:
 * the time spent inside its guest calls (eryx__wasi_cpu_enter and _leave
 * bracket them), never the host process's CPU clock, which would tell the
 * guest how busy the other sandboxes in the process are. It is measured on
 * the monotonic clock, not the thread's CPU clock: reading that one is a
 * system call (1.65 us here, against 33 ns through the vDSO), paid twice
 * per guest entry, and a `pass` run enters the guest four times (9 -> 18
 * us measured with it, bench_sandbox). So a thread preempted inside a
 * guest call still counts that time: the clock is at least the sandbox's
 * CPU time, and says nothing of other tenants' work.
 *
 * poll_oneoff: fd subscriptions (read/write) are always ready, since
 * nothing we serve blocks for long (stdin is a buffer, then the embedder's
 * reader, which waits in short slices; files are memory or regular host
 * files); they are reported at once with no sleep. Otherwise
 * the call sleeps until the earliest clock subscription (relative or
 * absolute, realtime or monotonic; precision is ignored) and reports every
 * clock that has expired. Within an execution the sleep suspends the guest
 * (eryx__wasi_set_sleeper); otherwise it is taken in short slices so that
 * eryx__wasi_interrupt() from another thread ends it within a slice. Either
 * way an interrupted sleep gives the guest EINTR.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "wasi_imports.h"
#include "wasi_internal.h"
#include "../engine/engine.h"

#define IMPORT(name) Z_wasi_snapshot_preview1Z_##name

/* Longest uninterrupted sleep: the latency of eryx__wasi_interrupt(). */
#define SLEEP_SLICE_NS 20000000ull

static int host_clock(uint32_t id, clockid_t *out)
{
    static const clockid_t map[] = {CLOCK_REALTIME, CLOCK_MONOTONIC,
                                    CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID};
    if (id >= sizeof map / sizeof map[0])
        return -1;
    *out = map[id];
    return 0;
}

static uint64_t to_ns(struct timespec ts)
{
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return to_ns(ts);
}

void eryx__wasi_cpu_enter(eryx__wasi *w)
{
    if (w && w->cpu_depth++ == 0)
        w->cpu_since = now_ns(CLOCK_MONOTONIC);
}

void eryx__wasi_cpu_leave(eryx__wasi *w)
{
    if (!w || w->cpu_depth == 0)
        return;
    if (--w->cpu_depth == 0) {
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        w->cpu_used += now > w->cpu_since ? now - w->cpu_since : 0;
    }
}

static uint64_t sandbox_cpu_ns(const eryx__wasi *w)
{
    if (w->cpu_depth == 0)
        return w->cpu_used;
    uint64_t now = now_ns(CLOCK_MONOTONIC);
    return w->cpu_used + (now > w->cpu_since ? now - w->cpu_since : 0);
}

/* The current time of WASI clock id (known valid). */
static uint64_t clock_now(const eryx__wasi *w, uint32_t id, clockid_t c)
{
    if (id == WASI_CLOCK_PROCESS_CPUTIME || id == WASI_CLOCK_THREAD_CPUTIME)
        return sandbox_cpu_ns(w);
    return now_ns(c);
}

uint32_t IMPORT(clock_res_get)(eryx__wasi *w, uint32_t id, uint32_t ptr)
{
    eryx__engine_import_entry();
    clockid_t c;
    struct timespec ts;
    if (host_clock(id, &c) < 0)
        return WASI_EINVAL;
    if (clock_getres(c, &ts) < 0)
        return WASI_EINVAL;
    return gm_put64(w->mem, ptr, to_ns(ts)) < 0 ? WASI_EFAULT : WASI_ESUCCESS;
}

uint32_t IMPORT(clock_time_get)(eryx__wasi *w, uint32_t id, uint64_t precision,
                                uint32_t ptr)
{
    eryx__engine_import_entry();
    clockid_t c;
    if (host_clock(id, &c) < 0)
        return WASI_EINVAL;
    /* The pointer first: a read the guest cannot receive is not a draw. */
    uint8_t *p = gm_span(w->mem, ptr, 8);
    if (!p)
        return WASI_EFAULT;
    uint64_t now = clock_now(w, id, c);
    if (id == WASI_CLOCK_REALTIME && w->draws)
        now = w->draws->realtime(w->draws_ud, now);
    gm_st64(p, now);
    return WASI_ESUCCESS;
}

/* ---- poll_oneoff ------------------------------------------------------ */

static void put_event(uint8_t *ev, uint64_t userdata, uint16_t error, uint8_t type,
                      uint64_t nbytes)
{
    memset(ev, 0, WASI_EVENT_SIZE);
    gm_st64(ev + WASI_EVENT_USERDATA, userdata);
    gm_st16(ev + WASI_EVENT_ERROR, error);
    gm_st8(ev + WASI_EVENT_TYPE, type);
    gm_st64(ev + WASI_EVENT_NBYTES, nbytes);
}

/* The monotonic deadline of a clock subscription, or an error. */
static uint16_t clock_deadline(const eryx__wasi *w, const uint8_t *sub, uint64_t mono_now,
                               uint64_t *deadline)
{
    uint32_t id = gm_ld32(sub + WASI_SUB_CLOCK_ID);
    uint64_t timeout = gm_ld64(sub + WASI_SUB_CLOCK_TIMEOUT);
    uint16_t flags = gm_ld16(sub + WASI_SUB_CLOCK_FLAGS);
    clockid_t c;
    if (host_clock(id, &c) < 0)
        return WASI_EINVAL;
    if (flags & WASI_SUBCLOCK_ABSTIME) {
        /* Convert "at time T on clock c" into a monotonic deadline. */
        uint64_t now = clock_now(w, id, c);
        timeout = timeout > now ? timeout - now : 0;
    }
    *deadline = mono_now + timeout < mono_now ? UINT64_MAX : mono_now + timeout;
    return WASI_ESUCCESS;
}

/* Bytes an fd could deliver now (the "nbytes" of an FD_READ event). */
static uint64_t readable(eryx__wasi *w, const wasi_fd *e)
{
    if (e->kind == WASI_FD_STDIN)
        return w->in_len - w->in_pos;
    if (e->kind != WASI_FD_FILE)
        return 0;
    eryx__vfs_attr st;
    if (eryx__vfs_fstat(e->file, &st) < 0 || st.size < e->offset)
        return 0;
    return st.size - e->offset;
}

/* Reports every fd subscription (always ready) and clock errors; returns
 * the number of events written and the earliest clock deadline. */
static uint32_t immediate_events(eryx__wasi *w, const uint8_t *in, uint8_t *out,
                                 uint32_t n, uint64_t mono_now, uint64_t *earliest)
{
    uint32_t k = 0;
    *earliest = UINT64_MAX;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *sub = in + (size_t)i * WASI_SUBSCRIPTION_SIZE;
        uint64_t ud = gm_ld64(sub + WASI_SUB_USERDATA);
        uint8_t tag = sub[WASI_SUB_TAG];
        if (tag == WASI_EVENT_CLOCK) {
            uint64_t d;
            uint16_t err = clock_deadline(w, sub, mono_now, &d);
            if (err)
                put_event(out + (size_t)k++ * WASI_EVENT_SIZE, ud, err, tag, 0);
            else if (d < *earliest)
                *earliest = d;
            continue;
        }
        wasi_fd *e = eryx__wasi_fd_get(w, gm_ld32(sub + WASI_SUB_FD));
        uint16_t err = !e                                         ? WASI_EBADF
                       : !wasi_has(e, WASI_RIGHT_POLL_FD_READWRITE) ? WASI_ENOTCAPABLE
                                                                    : WASI_ESUCCESS;
        uint64_t nbytes = e && tag == WASI_EVENT_FD_READ ? readable(w, e) : 0;
        put_event(out + (size_t)k++ * WASI_EVENT_SIZE, ud, err, tag, nbytes);
    }
    return k;
}

/* Sleeps until the monotonic deadline; returns -1 if interrupted. The
 * sleeper, when there is one, suspends the guest instead (the step that ran
 * it returns, and a later one resumes it here): a sleeping guest does not
 * hold the thread. */
static int sleep_until(eryx__wasi *w, uint64_t deadline)
{
    for (;;) {
        if (atomic_load(&w->interrupted))
            return -1;
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (now >= deadline)
            return 0;
        if (w->sleep_fn && w->sleep_fn(w->sleep_ud, deadline) == 0)
            continue;
        uint64_t until = deadline - now > SLEEP_SLICE_NS ? now + SLEEP_SLICE_NS : deadline;
        struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
}

static uint32_t expired_clocks(const eryx__wasi *w, const uint8_t *in, uint8_t *out, uint32_t n,
                               uint64_t mono_start, uint64_t mono_now)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *sub = in + (size_t)i * WASI_SUBSCRIPTION_SIZE;
        uint64_t d;
        if (sub[WASI_SUB_TAG] != WASI_EVENT_CLOCK || clock_deadline(w, sub, mono_start, &d) ||
            d > mono_now)
            continue;
        put_event(out + (size_t)k++ * WASI_EVENT_SIZE, gm_ld64(sub + WASI_SUB_USERDATA),
                  WASI_ESUCCESS, WASI_EVENT_CLOCK, 0);
    }
    return k;
}

static int valid_tags(const uint8_t *in, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (in[(size_t)i * WASI_SUBSCRIPTION_SIZE + WASI_SUB_TAG] > WASI_EVENT_FD_WRITE)
            return 0;
    return 1;
}

uint32_t IMPORT(poll_oneoff)(eryx__wasi *w, uint32_t in_ptr, uint32_t out_ptr,
                             uint32_t nsubs, uint32_t nevents_ptr)
{
    eryx__engine_import_entry();
    if (nsubs == 0 || nsubs > WASI_MAX_SUBS)
        return WASI_EINVAL;
    const uint8_t *in = gm_span(w->mem, in_ptr, gm_array_len(nsubs, WASI_SUBSCRIPTION_SIZE));
    uint8_t *out = gm_span(w->mem, out_ptr, gm_array_len(nsubs, WASI_EVENT_SIZE));
    uint8_t *nev = gm_span(w->mem, nevents_ptr, 4);
    if (!in || !out || !nev)
        return WASI_EFAULT;
    if (!valid_tags(in, nsubs))
        return WASI_EINVAL;
    /* Subscriptions are read before any event is written (the two arrays
     * may overlap): a copy of the input keeps them intact. */
    uint8_t subs[WASI_MAX_SUBS * WASI_SUBSCRIPTION_SIZE / 16];
    const uint8_t *src = in;
    if ((size_t)nsubs * WASI_SUBSCRIPTION_SIZE <= sizeof subs) {
        memcpy(subs, in, (size_t)nsubs * WASI_SUBSCRIPTION_SIZE);
        src = subs;
    }
    uint64_t start = now_ns(CLOCK_MONOTONIC), earliest;
    uint32_t k = immediate_events(w, src, out, nsubs, start, &earliest);
    if (k == 0 && earliest != UINT64_MAX) {
        /* A stop (timeout, interrupt) ends the sleep with every clock due
         * rather than with EINTR: the stop's KeyboardInterrupt is then
         * raised as the call returns, as native CPython raises it from the
         * sleep. EINTR came out as OSError(ENOTSUP) from time.sleep
         * (wasi-libc's clock_nanosleep turns every error into ENOTSUP), an
         * error the code's handlers could take for their own, and
         * select.select retried it, as PEP 475 says, until the hard stop. */
        int stopped = sleep_until(w, earliest) < 0;
        k = expired_clocks(w, src, out, nsubs, start,
                           stopped ? UINT64_MAX : now_ns(CLOCK_MONOTONIC));
    }
    gm_st32(nev, k);
    return WASI_ESUCCESS;
}
