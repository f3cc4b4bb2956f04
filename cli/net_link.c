/*
 * A socket, plain or TLS, with a time limit on every wait (net_link.h).
 */
#include "net_link.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"

/* How long the next wait may last: the timeout, or less by the deadline. */
static int wait_ms(const net_link *l)
{
    if (!l->deadline_ms)
        return l->timeout_ms;
    uint64_t now = eryx_cli_now_ms();
    uint64_t left = now >= l->deadline_ms ? 0 : l->deadline_ms - now;
    return l->timeout_ms >= 0 && (uint64_t)l->timeout_ms < left ? l->timeout_ms
           : left > INT_MAX                                      ? INT_MAX
                                                                 : (int)left;
}

/* Waits for fd to be ready for ev; -1 (errno ETIMEDOUT) after the timeout
 * or at the deadline. */
static int link_wait(const net_link *l, short ev)
{
    struct pollfd p = {.fd = l->fd, .events = ev};
    int r;
    while ((r = poll(&p, 1, wait_ms(l))) < 0 && errno == EINTR) {
    }
    if (r == 1)
        return 0;
    errno = r == 0 ? ETIMEDOUT : errno;
    return -1;
}

int net_link_start(net_link *l, int fd, tls_ctx *ctx, const char *host, int timeout_ms,
                   char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    l->fd = fd;
    l->timeout_ms = timeout_ms;
    int flags = fcntl(fd, F_GETFL), one = 1;
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "cannot make the socket non-blocking: %s", strerror(errno));
        return -1;
    }
    /* Requests and answers are whole messages written at once: Nagle's
     * algorithm would only hold a message's last segment back until the
     * peer's delayed acknowledgement (40 ms on Linux) of the one before. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!ctx)
        return 0;
    if (!(l->tls = tls_conn_new(ctx, fd, host))) {
        snprintf(err, errlen, "cannot start TLS");
        return -1;
    }
    /* The whole handshake within timeout_ms, however slowly the peer
     * sends its part. */
    if (timeout_ms >= 0)
        l->deadline_ms = eryx_cli_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int r = tls_conn_handshake(l->tls, err, errlen);
        if (r == 1) {
            l->deadline_ms = 0;
            return 0;
        }
        if ((r != TLS_WANT_READ && r != TLS_WANT_WRITE) ||
            link_wait(l, r == TLS_WANT_READ ? POLLIN : POLLOUT) < 0) {
            if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
                snprintf(err, errlen, "the TLS handshake timed out");
            return -1;
        }
    }
}

long net_link_read(net_link *l, char *buf, size_t n)
{
    /* What comes is acknowledged at once: a peer that writes an answer's
     * head and body apart, Nagle's algorithm on, would otherwise hold the
     * body back until our delayed acknowledgement (40 ms) of the head.
     * Not permanent in the kernel: set again at each read. */
    int one = 1;
    setsockopt(l->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    for (;;) {
        long r = l->tls ? tls_conn_read(l->tls, buf, n) : read(l->fd, buf, n);
        if (r >= 0)
            return r;
        short ev = r == TLS_WANT_WRITE ? POLLOUT : POLLIN;
        if (l->tls ? (r != TLS_WANT_READ && r != TLS_WANT_WRITE)
                   : (errno != EAGAIN && errno != EINTR))
            return -1;
        if (link_wait(l, ev) < 0)
            return -1;
    }
}

int net_link_write(net_link *l, const char *p, size_t n)
{
    while (n > 0) {
        long r = l->tls ? tls_conn_write(l->tls, p, n) : send(l->fd, p, n, MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        short ev = r == TLS_WANT_READ ? POLLIN : POLLOUT;
        if (l->tls ? (r != TLS_WANT_READ && r != TLS_WANT_WRITE)
                   : (r == 0 || (errno != EAGAIN && errno != EINTR)))
            return -1;
        if (link_wait(l, ev) < 0)
            return -1;
    }
    return 0;
}

void net_link_close(net_link *l)
{
    if (l->tls)
        tls_conn_free(l->tls);
    l->tls = NULL;
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}
