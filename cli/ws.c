/*
 * WebSocket frames (ws.h). The decoder is strict: whatever RFC 6455 says
 * a receiver must fail the connection for is refused here, so the layers
 * above only ever see whole, unmasked, well-sized frames.
 */
#include <string.h>

#include "ws.h"

#include "core/utf8.h"

static int is_control(int op) { return op >= 0x8; }

static int known_opcode(int op)
{
    return op == WS_CONT || op == WS_TEXT || op == WS_BINARY || op == WS_CLOSE ||
           op == WS_PING || op == WS_PONG;
}

/* The payload length field at p (after the first two bytes): its size in
 * bytes through *hlen, the length through *len. 0 = need more, -1 = not
 * in its shortest form (or the top bit of the 64-bit form is set). */
static int read_length(const uint8_t *p, size_t avail, unsigned len7, size_t *hlen,
                       uint64_t *len)
{
    if (len7 < 126) {
        *hlen = 0;
        *len = len7;
        return 1;
    }
    size_t k = len7 == 126 ? 2 : 8;
    if (avail < k)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < k; i++)
        v = v << 8 | p[i];
    if ((k == 2 && v < 126) || (k == 8 && (v <= 0xffff || v >> 63)))
        return -1;
    *hlen = k;
    *len = v;
    return 1;
}

long ws_parse_frame(uint8_t *buf, size_t n, int masked, uint64_t max_payload, ws_frame *f)
{
    if (n < 2)
        return 0;
    int fin = buf[0] >> 7, rsv = buf[0] >> 4 & 7, op = buf[0] & 0xf;
    int has_mask = buf[1] >> 7;
    if (rsv || !known_opcode(op))
        return -WS_CLOSE_PROTOCOL;
    if (has_mask != !!masked)
        return -WS_CLOSE_PROTOCOL;
    if (is_control(op) && (!fin || (buf[1] & 0x7f) > 125))
        return -WS_CLOSE_PROTOCOL;
    size_t hlen;
    uint64_t len;
    int r = read_length(buf + 2, n - 2, buf[1] & 0x7f, &hlen, &len);
    if (r <= 0)
        return r == 0 ? 0 : -WS_CLOSE_PROTOCOL;
    if (len > max_payload)
        return -WS_CLOSE_TOO_BIG;
    size_t head = 2 + hlen + (has_mask ? 4 : 0);
    if (n < head || n - head < len)
        return 0;
    f->fin = fin;
    f->opcode = op;
    f->payload = buf + head;
    f->len = len;
    if (has_mask)
        ws_mask(f->payload, (size_t)len, buf + head - 4, 0);
    return (long)(head + len);
}

size_t ws_frame_header(uint8_t hdr[WS_MAX_HEADER], int opcode, uint64_t len,
                       const uint8_t *mask)
{
    size_t k = 2;
    hdr[0] = (uint8_t)(0x80 | (opcode & 0xf));
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        hdr[1] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        hdr[1] = m | 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        k = 4;
    } else {
        hdr[1] = m | 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        k = 10;
    }
    if (mask) {
        memcpy(hdr + k, mask, 4);
        k += 4;
    }
    return k;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if ((k = eryx__utf8_len(p + i, n - i)) == 0)
            return 0;
    return 1;
}
