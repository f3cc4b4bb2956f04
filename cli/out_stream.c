/*
 * The eryx command's stdout and stderr while it runs a program
 * (out_stream.h): stdio streams over descriptors 1 and 2 whose writes stop
 * waiting for a stalled reader once the run is being stopped.
 *
 * A write that may wait on a reader must wait in poll(2), where the stop
 * is seen, never in write(2). The descriptors themselves stay blocking:
 * O_NONBLOCK would be set on a file description the shell and the other
 * commands of a pipeline share. So each stream is written the cheapest
 * way that cannot block:
 * - a regular file (or /dev/null) never waits on a reader: written as
 *   before;
 * - a pipe or terminal is opened again through /proc/self/fd, which gives a
 *   file description of our own on the same pipe or device, made
 *   non-blocking: a write that would wait fails with EAGAIN, then poll;
 * - a socket is sent to with MSG_DONTWAIT, the same per call;
 * - anything else (no /proc, a pipe another user made) is polled before
 *   each write, at most PIPE_BUF bytes a time: a pipe that poll calls
 *   writable has a free slot, which a write that small fills without
 *   blocking. That costs a poll per write (print-heavy runs into a pipe
 *   took 1.6x as long), so it is the last resort.
 */
#include "out_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* How long a write waits on poll before it asks stop_due again: the
 * interrupt's grace (200 ms by default) must not pass before the run
 * goes back to the guest to unwind. */
#define SLICE_MS 50

enum how {
    WRITE_PLAIN,     /* a regular file */
    WRITE_OWN,       /* own_fd: our non-blocking description of the same */
    WRITE_SEND,      /* a socket: send(MSG_DONTWAIT) */
    WRITE_POLLED     /* poll first, then at most PIPE_BUF bytes */
};

typedef struct out_stream {
    int fd;
    enum how how;
    int own_fd;                  /* WRITE_OWN's descriptor */
    _Atomic uint64_t dropped;    /* bytes given up on */
} out_stream;

static out_stream streams[2] = {{.fd = STDOUT_FILENO, .own_fd = -1},
                                {.fd = STDERR_FILENO, .own_fd = -1}};
static int (*stop_due)(void);

/* 1 once s takes bytes, 0 when the stop came first and it still does not,
 * -1 (errno) when poll fails. */
static int wait_writable(const out_stream *s)
{
    for (;;) {
        int stopping = stop_due();
        struct pollfd p = {s->fd, POLLOUT, 0};
        int r = poll(&p, 1, stopping ? 0 : SLICE_MS);
        if (r > 0)
            return 1; /* writable, or an error the write will name */
        if (r < 0 && errno != EINTR)
            return -1;
        if (r == 0 && stopping)
            return 0;
    }
}

/* One write of up to n bytes that does not block: the count, or -1 with
 * errno (EAGAIN: the reader has taken nothing yet). */
static ssize_t write_some(const out_stream *s, const char *buf, size_t n)
{
    switch (s->how) {
    case WRITE_OWN:
        return write(s->own_fd, buf, n);
    case WRITE_SEND:
        return send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    case WRITE_POLLED: {
        struct pollfd p = {s->fd, POLLOUT, 0};
        if (poll(&p, 1, 0) == 0) {
            errno = EAGAIN; /* bounded_write waits */
            return -1;
        }
        return write(s->fd, buf, n < PIPE_BUF ? n : PIPE_BUF);
    }
    default:
        return write(s->fd, buf, n);
    }
}

/* The streams' write: all of buf, or -1 with errno (stdio marks the
 * error). Bytes given up on count as written, so the stream goes on
 * (a later write may find the reader back) and the caller is not told
 * of an error it could do nothing about; eryx_cli_out_dropped says. */
static ssize_t bounded_write(void *cookie, const char *buf, size_t len)
{
    out_stream *s = cookie;
    size_t done = 0;
    while (done < len) {
        ssize_t k = write_some(s, buf + done, len - done);
        if (k >= 0) {
            done += (size_t)k;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        int w = wait_writable(s);
        if (w < 0)
            return -1;
        if (w == 0) {
            atomic_fetch_add(&s->dropped, len - done);
            return (ssize_t)len;
        }
    }
    return (ssize_t)len;
}

/* How s is written (the file comment says why). */
static void choose_how(out_stream *s)
{
    struct stat st, own;
    if (fstat(s->fd, &st) != 0) {
        s->how = WRITE_PLAIN; /* closed: the write says so */
        return;
    }
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ||
        (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))) { /* /dev/null */
        s->how = WRITE_PLAIN;
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        s->how = WRITE_SEND;
        return;
    }
    /* Only a pipe or a terminal is opened again: opening some devices
     * does something (a tape's rewind, a watchdog's arming). */
    s->how = WRITE_POLLED;
    if (!S_ISFIFO(st.st_mode) && !isatty(s->fd))
        return;
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", s->fd);
    s->own_fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (s->own_fd >= 0 && fstat(s->own_fd, &own) == 0 && own.st_dev == st.st_dev &&
        own.st_ino == st.st_ino && own.st_rdev == st.st_rdev) {
        s->how = WRITE_OWN;
        return;
    }
    if (s->own_fd >= 0)
        close(s->own_fd);
    s->own_fd = -1;
}

int eryx_cli_out_bound(int (*due)(void))
{
    cookie_io_functions_t io = {.write = bounded_write};
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < 2; i++)
        choose_how(&streams[i]);
    stop_due = due;
    FILE *out = fopencookie(&streams[0], "w", io);
    FILE *err = fopencookie(&streams[1], "w", io);
    if (!out || !err || setvbuf(out, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ) ||
        setvbuf(err, NULL, _IONBF, 0)) {
        if (out)
            fclose(out);
        if (err)
            fclose(err);
        for (int i = 0; i < 2; i++)
            if (streams[i].own_fd >= 0)
                close(streams[i].own_fd);
        return -1;
    }
    /* glibc's standard streams are variables a program may set. */
    stdout = out;
    stderr = err;
    return 0;
}

uint64_t eryx_cli_out_dropped(int fd)
{
    return fd == STDOUT_FILENO || fd == STDERR_FILENO ? atomic_load(&streams[fd - 1].dropped) : 0;
}
