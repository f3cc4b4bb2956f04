/*
 * WebSocket (RFC 6455) framing for `eryx serve` and `eryx --remote`: the
 * frame decoder (bytes from the network: bounded, fuzzed by
 * tests/fuzz/fuzz_ws.c) and the frame header encoder. The connection that
 * reads and writes frames is ws_conn (serve_conn.h).
 */
#ifndef ERYX_CLI_WS_H
#define ERYX_CLI_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
    WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2,
    WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xA
};

/* Close codes used here. */
enum {
    WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003, WS_CLOSE_INVALID = 1007, WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011
};

#define WS_MAX_HEADER 14

typedef struct ws_frame {
    int fin;
    int opcode;
    uint8_t *payload;     /* inside the parsed buffer, unmasked in place */
    uint64_t len;
} ws_frame;

/* Parses the frame at buf[0..n). Returns the bytes it takes (> 0), 0 when
 * more are needed, or -WS_CLOSE_* (negative close code) when the frame
 * breaks the protocol: reserved bits or opcodes, a control frame longer
 * than 125 bytes or fragmented, a mask where there must be none or none
 * where there must be one (clients mask, servers do not), a length over
 * max_payload (-WS_CLOSE_TOO_BIG) or not in its shortest form. The
 * payload is unmasked in place. */
long ws_parse_frame(uint8_t *buf, size_t n, int masked, uint64_t max_payload, ws_frame *f);

/* Writes the header of a final frame (opcode, len bytes of payload) into
 * hdr; with mask (4 bytes) the frame is marked masked and the caller masks
 * the payload with ws_mask. Returns the header's length. */
size_t ws_frame_header(uint8_t hdr[WS_MAX_HEADER], int opcode, uint64_t len,
                       const uint8_t *mask);

/* XORs p[0..n) with the mask, starting at byte offset of the payload. */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* 1 if p[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF): text messages must be, and JSON needs it. */
int ws_utf8_valid(const uint8_t *p, size_t n);

#endif
