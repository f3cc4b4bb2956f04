/*
 * The HTTP response reader of `eryx mcp-proxy` (cli/http_resp.c): what a
 * Streamable HTTP MCP server on the network sends. Input: byte 0 picks the
 * largest message (16..4111 bytes), byte 1 seeds the sizes of the pieces
 * the response arrives in; the rest is the response. Properties beyond
 * "no crash, no leak":
 *   - read in pieces or whole, the outcome is the same: the same
 *     messages in the same order, the same status, session, keep-alive
 *     hint and ending (complete, malformed, cut short);
 *   - a message handed out is at most the largest and NUL-terminated,
 *     and so is its event's name;
 *   - once complete, more bytes change nothing;
 *   - reusable (keep-alive) only when complete with nothing after it,
 *     whole or in pieces;
 *   - the ends of the events dropped for their size are the same whole
 *     or in pieces, each at most HTTP_DROP_KEEP bytes.
 */
#include "fuzz.h"
#include "http_resp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

typedef struct seen {
    const http_resp *r;
    char *all;       /* each message's event name, a 0xFE byte, the
                      * message, a 0xFF byte */
    size_t len, cap;
    size_t max, count;
} seen;

static void add(seen *s, const char *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->all = realloc(s->all, s->cap);
        FUZZ_CHECK(s->all);
    }
    memcpy(s->all + s->len, p, n);
    s->len += n;
}

/* A dropped event's ends go into all too, marked 0xFD. */
static void on_drop(void *ud, const char *head, size_t head_len, const char *tail,
                    size_t tail_len)
{
    seen *s = ud;
    FUZZ_CHECK(head_len <= HTTP_DROP_KEEP && tail_len <= HTTP_DROP_KEEP);
    add(s, "\xFD", 1);
    add(s, head, head_len);
    add(s, "\xFD", 1);
    add(s, tail, tail_len);
    add(s, "\xFD", 1);
}

static void on_message(void *ud, const char *text, size_t len)
{
    seen *s = ud;
    FUZZ_CHECK(len <= s->max && text[len] == '\0');
    size_t elen = strnlen(s->r->event, sizeof s->r->event);
    FUZZ_CHECK(elen < sizeof s->r->event);
    if (s->len + elen + len + 2 > s->cap) {
        s->cap = (s->len + elen + len + 2) * 2;
        s->all = realloc(s->all, s->cap);
        FUZZ_CHECK(s->all);
    }
    memcpy(s->all + s->len, s->r->event, elen);
    s->all[s->len + elen] = (char)0xFE;
    memcpy(s->all + s->len + elen + 1, text, len);
    s->all[s->len + elen + 1 + len] = (char)0xFF;
    s->len += elen + len + 2;
    s->count++;
}

/* Reads data in pieces (chunk 0: whole); the outcome: 1, -1, or 0 when
 * the input ended without completing (then the end of the connection
 * decides). */
static int read_all(http_resp *r, const uint8_t *data, size_t n, unsigned seed, seen *s)
{
    int rc = 0;
    size_t off = 0;
    while (off < n && rc == 0) {
        size_t k = seed ? 1 + (seed = seed * 1103515245u + 12345u) % 37 : n - off;
        if (k > n - off)
            k = n - off;
        rc = http_resp_feed(r, (const char *)data + off, k, on_message, s);
        off += k;
    }
    if (rc == 0)
        rc = http_resp_eof(r, on_message, s) == 1 ? 2 : -2;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = {data, size};
    size_t max = 16 + fuzz_u8(&in) * 16u;
    unsigned seed = fuzz_u8(&in) | 1u;
    http_resp *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    FUZZ_CHECK(a && b);
    seen sa = {.r = a, .max = max}, sb = {.r = b, .max = max};
    http_resp_init(a, max);
    http_resp_init(b, max);
    a->drop_fn = b->drop_fn = on_drop;
    int ra = read_all(a, in.p, in.n, 0, &sa);
    int rb = read_all(b, in.p, in.n, seed, &sb);
    FUZZ_CHECK(ra == rb);
    FUZZ_CHECK(sa.count == sb.count && sa.len == sb.len &&
               (sa.len == 0 || memcmp(sa.all, sb.all, sa.len) == 0));
    FUZZ_CHECK(a->status == b->status && strcmp(a->session, b->session) == 0);
    FUZZ_CHECK(a->has_keep_alive == b->has_keep_alive && a->keep_alive_s == b->keep_alive_s &&
               a->keep_alive_s <= 3600 && (a->has_keep_alive || a->keep_alive_s == 0));
    FUZZ_CHECK(http_resp_started(a) == (in.n > 0) && http_resp_started(b) == (in.n > 0));
    FUZZ_CHECK(a->dropped == b->dropped);
    /* Where the stream resumes: the same however the bytes came, and an
     * id that is kept usable can go in a header line as it is. */
    FUZZ_CHECK(a->has_last_id == b->has_last_id &&
               strcmp(a->last_id, b->last_id) == 0 && a->retry_ms == b->retry_ms);
    FUZZ_CHECK(a->retry_ms >= -1 && a->retry_ms <= 86400000L);
    for (const char *c = a->last_id; *c; c++)
        FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
    /* A connection is reused only after a complete response with nothing
     * after it, and that holds however the bytes arrived. */
    FUZZ_CHECK(!http_resp_reusable(a) || (ra == 1 && http_resp_reusable(b)));
    if (ra == 1) {
        size_t before = sa.count;
        FUZZ_CHECK(http_resp_feed(a, "HTTP/1.1 200 OK\r\n\r\n", 19, on_message, &sa) == 1);
        FUZZ_CHECK(sa.count == before);
    }
    http_resp_clear(a);
    http_resp_clear(b);
    free(a);
    free(b);
    free(sa.all);
    free(sb.all);
    return 0;
}
