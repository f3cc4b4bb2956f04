/*
 * The WebSocket frame decoder (cli/ws.c) and the message layer over it
 * (cli/ws_conn.c: fragments, control frames, size limit, UTF-8), on
 * arbitrary bytes. Properties beyond "no crash, no leak": a parsed frame
 * lies within the input and within the size limit; parsing a prefix of a
 * frame asks for more bytes; a header written by ws_frame_header parses
 * back to the same frame; ws_utf8_valid agrees with a decoder written
 * differently; a message delivered by ws_conn is within the limit and,
 * for text, valid UTF-8.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "ws.h"
#include "ws_conn.h"

#define LIMIT 1024

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* UTF-8 validity by the table of RFC 3629, section 4. */
static int utf8_reference(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t k;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c <= 0x7f) { i++; continue; }
        else if (c >= 0xc2 && c <= 0xdf) k = 1;
        else if (c == 0xe0) { k = 2; lo = 0xa0; }
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) k = 2;
        else if (c == 0xed) { k = 2; hi = 0x9f; }
        else if (c == 0xf0) { k = 3; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) k = 3;
        else if (c == 0xf4) { k = 3; hi = 0x8f; }
        else return 0;
        if (n - i <= k || p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t j = 2; j <= k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

static void check_frame(const uint8_t *data, size_t size, int masked)
{
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    ws_frame f;
    long r = ws_parse_frame(buf, size, masked, LIMIT, &f);
    FUZZ_CHECK(r <= (long)size);
    if (r > 0) {
        FUZZ_CHECK(f.len <= LIMIT);
        FUZZ_CHECK(f.payload >= buf && f.payload + f.len == buf + r);
        /* Every proper prefix asks for more. */
        uint8_t *copy = malloc((size_t)r);
        memcpy(copy, data, (size_t)r);
        ws_frame g;
        FUZZ_CHECK(ws_parse_frame(copy, (size_t)r - 1, masked, LIMIT, &g) == 0);
        free(copy);
        /* Re-encoding a final frame gives it back (unmasked side). */
        if (f.fin) {
            uint8_t hdr[WS_MAX_HEADER];
            size_t h = ws_frame_header(hdr, f.opcode, f.len, NULL);
            uint8_t *re = malloc(h + (size_t)f.len + 1);
            memcpy(re, hdr, h);
            memcpy(re + h, f.payload, (size_t)f.len);
            FUZZ_CHECK(ws_parse_frame(re, h + (size_t)f.len, 0, LIMIT, &g) == (long)(h + f.len));
            FUZZ_CHECK(g.opcode == f.opcode && g.len == f.len &&
                       memcmp(g.payload, f.payload, (size_t)f.len) == 0);
            free(re);
        }
    }
    free(buf);
}

/* The bytes as a client would send them to the server. */
static void check_conn(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return;
    if (write(sv[1], data, size) != (ssize_t)size) {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    shutdown(sv[1], SHUT_WR);
    ws_conn *c = ws_conn_new(sv[0], NULL, 0, NULL, LIMIT);
    for (int i = 0; c && i < 1000; i++) {
        uint8_t *msg;
        size_t len;
        int binary;
        int r = ws_conn_recv(c, 0, &msg, &len, &binary);
        if (r <= 0)
            break;
        FUZZ_CHECK(len <= LIMIT);
        FUZZ_CHECK(binary || ws_utf8_valid(msg, len));
    }
    ws_conn_free(c);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ws_utf8_valid(data, size) == utf8_reference(data, size));
    check_frame(data, size, 0);
    check_frame(data, size, 1);
    check_conn(data, size);
    return 0;
}
