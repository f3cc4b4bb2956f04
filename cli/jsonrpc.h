/*
 * JSON-RPC 2.0 over newline-delimited streams, as MCP's stdio transport
 * uses it: a bounded line framer (fed bytes, hands out complete lines, never
 * holds more than its limit), a classifier of decoded messages, and a
 * writer that serialises one message per line. JSON is jansson's.
 */
#ifndef ERYX_CLI_JSONRPC_H
#define ERYX_CLI_JSONRPC_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>

/* A line framer. Lines longer than max (without their newline) are
 * dropped whole and reported once as JR_TOO_LONG; memory stays under
 * max + one read's worth. */
typedef struct jr_framer {
    char *buf;        /* [0, start) handed out or dropped; [start, len)
                         pending, of which [start, scan) holds no newline */
    size_t start, len, cap, max;
    size_t scan;
    int skipping;     /* inside an over-long line: drop up to its newline */
    int pending_report; /* an over-long line was dropped: say so once */
} jr_framer;

enum {
    JR_NONE = 0,      /* no complete line buffered */
    JR_LINE = 1,      /* *line / *len hold one line (borrowed until the next call) */
    JR_TOO_LONG = 2   /* a line over the limit was (or is being) dropped */
};

void jr_framer_init(jr_framer *f, size_t max);
void jr_framer_free(jr_framer *f);
/* Appends n bytes; -1 when memory runs out (the framer stays usable). */
int jr_framer_feed(jr_framer *f, const char *data, size_t n);
/* The next complete line (without '\n' and a '\r' before it). Empty lines
 * are skipped. The line is NUL-terminated in place. */
int jr_framer_next(jr_framer *f, char **line, size_t *len);
/* Reads once from fd into the framer: >0 bytes read, 0 at end of file,
 * -1 on error (errno). */
long jr_framer_read(jr_framer *f, int fd);

/* What a decoded line is. */
typedef enum jr_kind {
    JR_INVALID = 0,      /* not JSON, or not a JSON-RPC 2.0 message */
    JR_REQUEST,          /* method + id */
    JR_NOTIFICATION,     /* method, no id */
    JR_RESPONSE,         /* id + result */
    JR_ERROR_RESPONSE,   /* id (maybe null) + error */
    JR_BATCH             /* a JSON array (JSON-RPC batches; MCP 2025-06-18
                            and later have none) */
} jr_kind;

typedef struct jr_msg {
    jr_kind kind;
    json_t *root;          /* owned: json_decref(root) frees everything */
    const char *method;    /* requests and notifications */
    json_t *id;            /* borrowed from root: a string or an integer;
                              JR_INVALID: a request's, if it was good */
    json_t *params;        /* object, array or NULL */
    json_t *result;        /* responses */
    json_t *error;         /* error responses: an object */
    int parse_error;       /* JR_INVALID: 1 = not JSON at all (-32700),
                              0 = JSON but not a valid message (-32600) */
    const char *parse_why; /* JR_INVALID: why, for the error's message
                              (static text), or NULL */
} jr_msg;

/* Decodes one line. Never fails hard: anything malformed is JR_INVALID
 * (root may still be set: free it with jr_msg_clear). */
void jr_decode(const char *line, size_t len, jr_msg *out);
/* jr_decode for what a peer sends (a server's clients, and the MCP servers
 * whose tools the code calls): a line whose tree would take more than
 * max_tree bytes (eryx__json_tree_fits) is a parse error, not read. */
void jr_decode_bounded(const char *line, size_t len, size_t max_tree, jr_msg *out);
/* For a peer's message not read for its size: *out becomes the error
 * response that stands for it (code -32000, message why) to the id that
 * jr_id_of_ends finds on its first and last 256 bytes, so that the request
 * it answered fails now with the reason rather than waiting. -1 when its
 * ends show no id or memory runs out (*out is then an empty JR_INVALID). */
int jr_decode_unread(const char *text, size_t len, const char *why, jr_msg *out);
/* The largest tree read of one message of at most max_message bytes (by a
 * server of its clients', by the MCP client and proxy of their servers'):
 * 4 times that. A 16 MiB message of `[{},{},...]` would be 1.3 GB; records
 * such as `{"a":[1,2,{"b":null}],"c":"x"}` take about 33 times their text,
 * so 2 MiB of them fit the default 16 MiB limit (raise it for more). */
#define JR_MAX_TREE(max_message) (4 * (size_t)(max_message))
/* v's text when v is a string holding no NUL character, else NULL. Strings
 * may hold NULs ("\u0000" is JSON, and tools' texts have them), but a name
 * or identifier compared as a C string must not let "a\u0000b" pass as
 * "a". */
const char *jr_text(const json_t *v);
void jr_msg_clear(jr_msg *m);

/* Serialises msg (not consumed) and writes it and a newline to fd under
 * lock (may be NULL). SIGPIPE is kept from killing the process. 0 on
 * success, -1 when the peer is gone or memory ran out. */
int jr_write(int fd, pthread_mutex_t *lock, const json_t *msg);

/* jr_write for a non-blocking fd: while the peer does not read, waits in
 * slices of 100 ms and gives up (-1, errno ETIMEDOUT) once stop(ud)
 * returns non-zero. max: refuse (-1, errno EMSGSIZE) a message longer than
 * max bytes (0: any). */
int jr_write_ex(int fd, pthread_mutex_t *lock, const json_t *msg, size_t max,
                int (*stop)(void *ud), void *ud);

/* One write attempt on a non-blocking fd, SIGPIPE kept away: the bytes
 * written (0 when it would block), or -1 when the peer is gone. */
long jr_write_some(int fd, const char *p, size_t n);

/* Writes n bytes to a blocking fd, SIGPIPE kept away; -1 when it fails. */
int jr_write_raw(int fd, const char *p, size_t n);

/* Builders (new references). id may be NULL (JSON null). */
json_t *jr_response(json_t *id, json_t *result_stolen);
json_t *jr_error(json_t *id, int code, const char *message);
json_t *jr_request(json_int_t id, const char *method, json_t *params_stolen);
json_t *jr_notification(const char *method, json_t *params_stolen);

/* Standard error codes. */
enum {
    JR_PARSE_ERROR = -32700,
    JR_INVALID_REQUEST = -32600,
    JR_METHOD_NOT_FOUND = -32601,
    JR_INVALID_PARAMS = -32602,
    JR_INTERNAL_ERROR = -32603
};

/* A copy of the n bytes at s as a JSON string, with every byte sequence
 * that is not UTF-8 (and NUL) replaced by U+FFFD. NULL only when memory
 * runs out. */
json_t *jr_string_lossy(const char *s, size_t n);

/* The "id" of a message known only by its first bytes (head) and its
 * last (tail), as of one dropped for its size: found where it can only be
 * the message's own, among the top-level members before the first
 * nested value ({"jsonrpc":"2.0","id":7,"result":...), or as the last
 * member, right before the final brace (...,"id":7}); a string or an
 * integer. NULL when neither end shows it. */
json_t *jr_id_of_ends(const char *head, size_t head_len, const char *tail, size_t tail_len);

#endif
