/*
 * Client connections of the eryx command (dial.h).
 */
#include "dial.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int dial_url_parse(const char *s, const char *plain, const char *secure,
                   const char *default_path, dial_url *u)
{
    memset(u, 0, sizeof *u);
    if (strncmp(s, plain, strlen(plain)) == 0)
        s += strlen(plain);
    else if (strncmp(s, secure, strlen(secure)) == 0)
        s += strlen(secure), u->tls = 1;
    else
        return -1;
    size_t alen = strcspn(s, "/?#");
    if (alen == 0 || alen >= sizeof u->authority || strlen(s + alen) >= sizeof u->path ||
        strpbrk(s, " \t\r\n"))
        return -1;
    memcpy(u->authority, s, alen);
    if (strchr(u->authority, '@')) /* no user info: credentials go in headers */
        return -1;
    if (s[alen] == '/')
        snprintf(u->path, sizeof u->path, "%s", s + alen);
    else
        snprintf(u->path, sizeof u->path, "%s%s", default_path, s + alen);
    char *hash = strchr(u->path, '#');
    if (hash)
        *hash = '\0';
    const char *a = u->authority, *colon = strrchr(a, ':');
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (!close || close - a - 1 >= (long)sizeof u->host)
            return -1;
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] && !colon)
            return -1;
        snprintf(u->host, sizeof u->host, "%.*s", (int)(close - a - 1), a + 1);
    } else {
        size_t hlen = colon ? (size_t)(colon - a) : alen;
        if (hlen >= sizeof u->host)
            return -1;
        snprintf(u->host, sizeof u->host, "%.*s", (int)hlen, a);
    }
    if (colon) {
        size_t plen = strlen(colon + 1);
        if (plen == 0 || plen >= sizeof u->port || strspn(colon + 1, "0123456789") != plen ||
            strtoul(colon + 1, NULL, 10) > 65535) /* getaddrinfo would wrap it */
            return -1;
    }
    snprintf(u->port, sizeof u->port, "%s", colon ? colon + 1 : u->tls ? "443" : "80");
    return u->host[0] ? 0 : -1;
}

int dial_connect(const dial_url *u, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *p;
    int e = getaddrinfo(u->host, u->port, &hints, &ai);
    if (e) {
        snprintf(err, errlen, "%s: %s", u->host, gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (p = ai; p && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        int r = connect(fd, p->ai_addr, p->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int soerr = 0;
            socklen_t el = sizeof soerr;
            r = poll(&pf, 1, timeout_ms) == 1 &&
                        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) == 0 && soerr == 0
                    ? 0
                    : -1;
            if (soerr)
                errno = soerr;
            else if (r < 0)
                errno = ETIMEDOUT;
        }
        if (r < 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to %s:%s: %s", u->host, u->port, strerror(errno));
    /* Each message is written whole (a WebSocket frame's head and payload
     * may be two writes): Nagle's algorithm would hold the second back
     * until the peer's delayed acknowledgement, 40 ms on Linux. It did:
     * 10 MB of --remote stdin in 64 KiB answers took 7.1 s. */
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(ai);
    return fd;
}
