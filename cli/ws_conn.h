/*
 * A WebSocket connection over a socket, plain or TLS: the opening
 * handshake (server or client side), whole messages in and out, pings,
 * close. Used by `eryx serve` (serve.c) and `eryx --remote` (remote.c).
 *
 * One thread reads (the handshake functions, ws_conn_recv) while any
 * thread may send (ws_conn_send, _send_json, _close: each message goes out
 * whole). The socket is non-blocking:
 * every wait is a poll with a time limit, so a peer that stops reading or
 * writing costs a bounded time, and the read buffer is bounded by the
 * largest message allowed.
 */
#ifndef ERYX_CLI_WS_CONN_H
#define ERYX_CLI_WS_CONN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "serve_tls.h"

typedef struct ws_conn ws_conn;

/* Takes fd (closed by ws_conn_free). tls may be NULL (plain). client: 1
 * for the client side (it masks what it sends; host is its TLS name). */
ws_conn *ws_conn_new(int fd, tls_ctx *tls, int client, const char *host, size_t max_message);
void ws_conn_free(ws_conn *c);
int ws_conn_fd(const ws_conn *c);
/* Why the connection failed or closed, for logs and errors. */
const char *ws_conn_error(const ws_conn *c);

/* Server side: completes TLS, then reads the HTTP request head into *req
 * (within timeout_ms). 1 = a head, 0 = the client went away, -1 = error
 * (a malformed head gets a 400 answer first). */
int ws_conn_read_request(ws_conn *c, http_req *req, int timeout_ms);
/* Answers a non-upgrade request: status line, a content type and body,
 * Connection: close. */
void ws_conn_http_answer(ws_conn *c, int code, const char *reason, const char *type,
                         const char *body);
/* The header of the 101 answer with which a server says how large a
 * message it takes (its max_message, in bytes, decimal). */
#define WS_MAX_MESSAGE_HEADER "Eryx-Max-Message"
/* And the one with which it says its longest time limit (ms, decimal): a
 * client may give up on a server silent for much longer. */
#define WS_MAX_TIMEOUT_HEADER "Eryx-Max-Timeout-Ms"

/* Server side: checks req is a WebSocket upgrade (answering 400/426 if
 * not) and sends the 101 answer, WS_MAX_MESSAGE_HEADER included, and the
 * header lines in headers (each ending in \r\n; may be NULL; at most a
 * few hundred bytes). 0 on success. */
int ws_conn_accept(ws_conn *c, const http_req *req, const char *headers);

/* Client side: TLS, the upgrade request for path with extra header lines
 * (each ending in \r\n, may be NULL), the 101 answer checked; a smaller
 * WS_MAX_MESSAGE_HEADER in it becomes the bound of what is sent. 0 on
 * success; -1 with ws_conn_error (an HTTP answer's status and body are
 * quoted in it). */
int ws_conn_connect(ws_conn *c, const char *host_header, const char *path,
                    const char *headers, int timeout_ms);

/* Waits up to timeout_ms (-1: forever) for a whole text or binary
 * message: 1 = one (*data, *len valid until the next call; *binary set
 * for binary), 0 = none yet, -1 = closed or failed (a close from the peer
 * is answered). Pings are answered on the way. */
int ws_conn_recv(ws_conn *c, int timeout_ms, uint8_t **data, size_t *len, int *binary);
/* 1 if a message may be ready without waiting on the socket. */
int ws_conn_buffered(ws_conn *c);
/* Ends the connection both ways now, from any thread: a thread waiting in
 * ws_conn_recv or a send returns. */
void ws_conn_shutdown(ws_conn *c);

/* Sends one message; -1 if the peer did not take it within the send time
 * limit (10 s) or the connection failed. */
int ws_conn_send(ws_conn *c, int opcode, const void *data, size_t len);
/* Sends msg as a text message (compact JSON) and drops the reference.
 * WS_TOO_LARGE, with nothing sent and the connection as it was, when the
 * text is longer than ws_conn_send_max: a peer that keeps its bound would
 * refuse the message (and close the connection). */
#define WS_TOO_LARGE (-2)
int ws_conn_send_json(ws_conn *c, json_t *msg);
/* ws_conn_send_json from the server's side that stops waiting for the
 * peer once give_up(arg) says (asked every 10 ms while it waits): the
 * rest of the message is then kept and goes first with the next message
 * sent, and WS_PARKED is returned. Until then nothing more should be
 * offered with it: ws_conn_parked says whether a rest waits. */
#define WS_PARKED (-3)
int ws_conn_send_json_or_park(ws_conn *c, json_t *msg, int (*give_up)(void *), void *arg);
/* 1 while the rest of a message ws_conn_send_json_or_park gave up on
 * waits to be sent. */
int ws_conn_parked(ws_conn *c);
/* The most one message sent may hold: max_message, or on the client side
 * the server's bound when it said a smaller one. */
size_t ws_conn_send_max(const ws_conn *c);
/* Client side: the server's WS_MAX_TIMEOUT_HEADER, or 0 when it said
 * none (an older eryx). */
uint64_t ws_conn_peer_max_timeout_ms(const ws_conn *c);
/* Sends a close frame (best effort) and marks the connection closed. */
void ws_conn_close(ws_conn *c, int code, const char *reason);

#endif
