/* Status names and error messages. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

/* The thread's message (eryx_errmsg(NULL)): 4 KiB, room for a setup
 * code's traceback, on the heap. Thread-local storage of that size would
 * not fit the static TLS block a dlopen'd library may use (the engine's
 * thread state is initial-exec: a Python extension linking liberyx failed
 * to load with "cannot allocate memory in static TLS block"). */
#define THREAD_ERRMSG_SIZE 4096
static _Thread_local char *thread_errmsg;
static _Thread_local char thread_errmsg_fallback[128]; /* when malloc failed */
static pthread_key_t errmsg_key;
static pthread_once_t errmsg_once = PTHREAD_ONCE_INIT;

static void errmsg_key_make(void)
{
    pthread_key_create(&errmsg_key, free);
}

static char *thread_buf(size_t *cap)
{
    if (!thread_errmsg) {
        pthread_once(&errmsg_once, errmsg_key_make);
        char *b = calloc(1, THREAD_ERRMSG_SIZE);
        if (b && pthread_setspecific(errmsg_key, b) != 0) {
            free(b);
            b = NULL;
        }
        if (!b) {
            *cap = sizeof thread_errmsg_fallback;
            return thread_errmsg_fallback;
        }
        thread_errmsg = b;
    }
    *cap = THREAD_ERRMSG_SIZE;
    return thread_errmsg;
}

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
    size_t cap = sizeof sb->errmsg;
    char *buf = sb ? sb->errmsg : thread_buf(&cap);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

char *eryx__printable(const char *text, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && text[i] && o + 5 <= cap; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (cap)
        out[o < cap ? o : cap - 1] = '\0';
    return out;
}

/* Clearing and reading never allocate: a thread that has had no error
 * (the watchdog, a handler worker) never mallocs here, which would give it
 * an allocator arena of its own: mappings that a leak check counts. */
void eryx__clear_errmsg(eryx_sandbox *sb)
{
    if (sb)
        sb->errmsg[0] = '\0';
    else if (thread_errmsg)
        thread_errmsg[0] = '\0';
    else
        thread_errmsg_fallback[0] = '\0';
}

const char *eryx__errmsg(const eryx_sandbox *sb)
{
    if (sb)
        return sb->errmsg;
    return thread_errmsg ? thread_errmsg : thread_errmsg_fallback;
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

int eryx__write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}
