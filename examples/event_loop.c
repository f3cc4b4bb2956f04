/*
 * eryx in an epoll event loop, with the non-blocking API only: no thread.
 *
 * The sandboxed code gathers three calls to `fetch(delay_ms)`. Each call
 * becomes a timerfd (standing in for real asynchronous I/O: a socket, a
 * subprocess); when it fires, the loop replies to the call and steps the
 * execution again. The execution's own deadline (an asyncio timer, a
 * callback timeout) is one more timerfd.
 *
 * Run it and the three 100 ms fetches finish together after ~100 ms.
 */
#include <eryx.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CALLS 16

typedef struct pending {
    int fd;            /* timerfd standing in for the I/O */
    eryx_call *call;
} pending;

static void arm(int fd, uint64_t at_ns)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(at_ns / 1000000000u);
    its.it_value.tv_nsec = (long)(at_ns % 1000000000u);
    timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Starts the "I/O" of a call: a timer of delay_ms from its arguments. */
static int start_call(int ep, pending *p, eryx_call *call)
{
    const char *d = strstr(eryx_call_args(call), "\"delay_ms\":");
    long delay = d ? atol(d + 11) : 0;
    p->call = call;
    p->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    arm(p->fd, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
                   (uint64_t)delay * 1000000u);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
    return epoll_ctl(ep, EPOLL_CTL_ADD, p->fd, &ev);
}

static void finish_call(int ep, pending *p, double t0)
{
    char reply[96];
    snprintf(reply, sizeof reply, "{\"id\": %llu, \"at_ms\": %.0f}",
             (unsigned long long)eryx_call_id(p->call), now_ms() - t0);
    eryx_call_reply(p->call, reply, strlen(reply));
    epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    p->call = NULL;
}

int main(void)
{
    static const eryx_callback fetch = {
        0, "fetch", "Waits delay_ms, then answers",
        "{\"properties\": {\"delay_ms\": {\"type\": \"integer\"}}}", NULL, NULL, 0};
    eryx_runtime *rt = NULL;
    eryx_sandbox *sb = NULL;
    eryx_exec *ex = NULL;
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &fetch;
    cfg.n_callbacks = 1;
    const char *code = "import asyncio\n"
                       "replies = await asyncio.gather(fetch(100), fetch(100), fetch(100))\n"
                       "await asyncio.sleep(0.05)\n"
                       "print('replies:', [r['id'] for r in replies])\n"
                       "print('all three answered by', max(r['at_ms'] for r in replies) < 250)";
    if (eryx_runtime_new(NULL, &rt) != ERYX_OK || eryx_sandbox_new(rt, &cfg, &sb) != ERYX_OK ||
        eryx_exec_start(sb, code, strlen(code), NULL, &ex) != ERYX_OK) {
        fprintf(stderr, "setup failed: %s\n", eryx_errmsg(sb ? sb : NULL));
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int deadline_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct epoll_event dev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, deadline_fd, &dev);
    pending calls[MAX_CALLS] = {0};
    double t0 = now_ms();
    int rc, steps = 0;
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        steps++;
        eryx_call *call;
        while ((call = eryx_exec_next_call(ex))) {
            pending *slot = NULL;
            for (int i = 0; i < MAX_CALLS && !slot; i++)
                slot = calls[i].call ? NULL : &calls[i];
            if (!slot || start_call(ep, slot, call) < 0)
                eryx_call_fail(call, ERYX_CALL_FAILED, "the loop is full");
        }
        uint64_t deadline = eryx_exec_deadline_ns(ex);
        arm(deadline_fd, deadline); /* 0 disarms */
        /* Sleep until an "I/O" completes or the deadline passes. */
        while (!eryx_exec_ready(ex)) {
            struct epoll_event ev[8];
            int n = epoll_wait(ep, ev, 8, -1);
            int deadline_passed = 0;
            for (int i = 0; i < n; i++) {
                if (ev[i].data.ptr)
                    finish_call(ep, ev[i].data.ptr, t0);
                else
                    deadline_passed = 1;
            }
            if (deadline_passed) {
                uint64_t expirations;
                if (read(deadline_fd, &expirations, sizeof expirations) < 0)
                    break;
                break;
            }
        }
    }
    eryx_result *res = NULL;
    rc = eryx_exec_finish(ex, &res);
    if (res)
        fwrite(res->out, 1, res->out_len, stdout);
    printf("status %s after %d pending steps, %.0f ms\n", rc == ERYX_OK ? "ok" : eryx_errstr(rc),
           steps, now_ms() - t0);
    eryx_result_free(res);
    close(deadline_fd);
    close(ep);
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    return rc == ERYX_OK ? 0 : 1;
}
