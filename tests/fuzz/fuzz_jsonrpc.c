/*
 * The MCP transport's own parsing (cli/jsonrpc.c): the newline framer fed
 * arbitrary bytes in arbitrary chunks, each line it hands out decoded as a
 * JSON-RPC message and copied as a lossy UTF-8 string. Input: byte 0 picks
 * the line limit (1..1021), byte 1 the chunk sizes; the rest is the stream.
 * Properties beyond "no crash, no leak":
 *   - the lines handed out are exactly the stream's newline-terminated lines
 *     of at most the limit (a '\r' before the newline dropped, empty lines
 *     skipped), in order; every longer line is reported, never handed out;
 *   - after the lines are drained the framer holds at most limit + one
 *     chunk (a peer cannot make it hold more);
 *   - a decoded message's fields agree with its kind;
 *   - the lossy copy is valid UTF-8 (jansson takes it) and equals the line
 *     when the line was valid UTF-8 without NUL;
 *   - the id found at a line's ends (jr_id_of_ends) is a string or an
 *     integer, and jr_decode_unread's error response carries it.
 */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "jsonrpc.h"

static void check_msg(const char *line, size_t len)
{
    jr_msg m;
    jr_decode(line, len, &m);
    switch (m.kind) {
    case JR_REQUEST:
        FUZZ_CHECK(m.method && (json_is_string(m.id) || json_is_integer(m.id)));
        FUZZ_CHECK(!m.params || json_is_object(m.params) || json_is_array(m.params));
        break;
    case JR_NOTIFICATION:
        FUZZ_CHECK(m.method && !m.id);
        break;
    case JR_RESPONSE:
        FUZZ_CHECK(m.result && !m.error && m.id);
        break;
    case JR_ERROR_RESPONSE:
        FUZZ_CHECK(json_is_object(m.error) && !m.result && m.id);
        break;
    case JR_BATCH:
        FUZZ_CHECK(json_is_array(m.root));
        break;
    default:
        FUZZ_CHECK(m.parse_error == !m.root);
        break;
    }
    /* Answers to it serialise. */
    json_t *e = jr_error(m.id, JR_INVALID_REQUEST, "x");
    FUZZ_CHECK(e);
    char *s = json_dumps(e, JSON_COMPACT);
    FUZZ_CHECK(s && !strchr(s, '\n'));
    free(s);
    json_decref(e);
    jr_msg_clear(&m);
    /* The id seen only at the line's ends (a message dropped for its
     * size): a string or an integer when found, and the error response
     * that stands for a message not read (jr_decode_unread) answers it. */
    size_t keep = len < 256 ? len : 256;
    json_t *id = jr_id_of_ends(line, keep, line + len - keep, keep);
    FUZZ_CHECK(!id || json_is_string(id) || json_is_integer(id));
    jr_msg u;
    if (jr_decode_unread(line, len, "too wide", &u) == 0) {
        FUZZ_CHECK(u.kind == JR_ERROR_RESPONSE && json_equal(u.id, id));
        FUZZ_CHECK(!strcmp(json_string_value(json_object_get(u.error, "message")), "too wide"));
    } else {
        FUZZ_CHECK(!id && u.kind == JR_INVALID && !u.root);
    }
    jr_msg_clear(&u);
    json_decref(id);
}

static void check_lossy(const char *line, size_t len)
{
    json_t *s = jr_string_lossy(line, len);
    FUZZ_CHECK(s);
    json_error_t err;
    json_t *again = json_stringn(json_string_value(s), json_string_length(s));
    FUZZ_CHECK(again); /* jansson refuses invalid UTF-8 */
    json_decref(again);
    json_t *direct = memchr(line, '\0', len) ? NULL : json_stringn(line, len);
    if (direct) {
        FUZZ_CHECK(json_string_length(s) == len && memcmp(json_string_value(s), line, len) == 0);
        json_decref(direct);
    }
    (void)err;
    json_decref(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = 1 + (size_t)data[0] * 4;
    unsigned chunk_seed = data[1];
    const char *stream = (const char *)data + 2;
    size_t n = size - 2;

    /* The model: the stream's terminated lines. */
    size_t expect_pos = 0; /* where the next expected line starts */
    size_t long_lines = 0, reported = 0;

    jr_framer f;
    jr_framer_init(&f, max);
    size_t off = 0, k = 0;
    while (off < n) {
        size_t chunk = 1 + ((chunk_seed * (k + 7)) % 97);
        if (chunk > n - off)
            chunk = n - off;
        FUZZ_CHECK(jr_framer_feed(&f, stream + off, chunk) == 0);
        off += chunk;
        k++;
        char *line;
        size_t len;
        int r;
        while ((r = jr_framer_next(&f, &line, &len)) != JR_NONE) {
            if (r == JR_TOO_LONG) {
                reported++;
                continue;
            }
            FUZZ_CHECK(r == JR_LINE && len > 0 && len <= max && line[len] == '\0');
            FUZZ_CHECK(!memchr(line, '\n', len));
            /* The model's next line of at most max bytes must be this one. */
            for (;;) {
                const char *nl = memchr(stream + expect_pos, '\n', n - expect_pos);
                FUZZ_CHECK(nl);
                size_t raw = (size_t)(nl - (stream + expect_pos));
                size_t want = raw && stream[expect_pos + raw - 1] == '\r' ? raw - 1 : raw;
                size_t at = expect_pos;
                expect_pos += raw + 1;
                if (raw > max) {
                    long_lines++;
                    continue;
                }
                if (want == 0)
                    continue;
                FUZZ_CHECK(want == len && memcmp(stream + at, line, len) == 0);
                break;
            }
            check_msg(line, len);
            check_lossy(line, len);
        }
        FUZZ_CHECK(f.len - f.start <= max + chunk + 1);
    }
    /* Every line over the limit was reported, and no more often than the
     * model's long lines (a final unterminated one may count). */
    for (;;) {
        const char *nl = memchr(stream + expect_pos, '\n', n - expect_pos);
        if (!nl)
            break;
        size_t raw = (size_t)(nl - (stream + expect_pos));
        if (raw > max)
            long_lines++;
        else
            FUZZ_CHECK(raw == 0 || (raw == 1 && stream[expect_pos] == '\r'));
        expect_pos += raw + 1;
    }
    FUZZ_CHECK(reported >= long_lines && reported <= long_lines + 1);
    jr_framer_free(&f);
    return 0;
}
