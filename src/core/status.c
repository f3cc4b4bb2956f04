/* Status names and error messages. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

static _Thread_local char thread_errmsg[4096]; /* room for a setup traceback */

const char *eryx_errstr(int rc)
{
    switch (rc) {
#define ERYX__STATUS_TEXT(name, value, text) \
    case value:                              \
        return "ERYX_" #name ": " text;
        ERYX_STATUS_MAP(ERYX__STATUS_TEXT)
#undef ERYX__STATUS_TEXT
    }
    return "unknown status";
}

const char *eryx_version(void)
{
    return ERYX_VERSION_STRING;
}

int eryx_build_has_fuel(void)
{
    return ERYX_HAVE_FUEL;
}

void eryx__set_errmsg(eryx_sandbox *sb, const char *fmt, ...)
{
    char *buf = sb ? sb->errmsg : thread_errmsg;
    size_t cap = sb ? sizeof sb->errmsg : sizeof thread_errmsg;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

void eryx__clear_errmsg(eryx_sandbox *sb)
{
    (sb ? sb->errmsg : thread_errmsg)[0] = '\0';
}

const char *eryx__errmsg(const eryx_sandbox *sb)
{
    return sb ? sb->errmsg : thread_errmsg;
}

uint64_t eryx__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t eryx__deadline_after(uint64_t ns)
{
    uint64_t now = eryx__now_ns();
    return ns && ns < UINT64_MAX - now ? now + ns : 0;
}

void eryx__cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

int eryx__thread_start_detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}
