/*
 * The decoder of the guest's eryx.wait requests (src/core/wait_request.c),
 * on arbitrary bytes. Properties beyond "no crash, no leak":
 *   - every decoded string is NUL-terminated and the arguments are no longer
 *     than they were sent;
 *   - the arguments are JSON jansson reads back as an object (unless a
 *     number is beyond what jansson holds: those are kept as written),
 *     their strings escaped as json_dumps would (\u00XX upper case);
 *   - re-encoding a decoded request and decoding it again gives the same
 *     calls (the output is a fixed point).
 */
#include <jansson.h>

#include "core/wait_request.h"
#include "fuzz.h"

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        FUZZ_CHECK(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void put_s(buf *b, const char *s) { put(b, s, strlen(s)); }

/* A decoded name back as a JSON string. */
static void put_json_string(buf *b, const char *s)
{
    put_s(b, "\"");
    for (; *s; s++) {
        char e[8];
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\' || c < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", c);
            put_s(b, e);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    put_s(b, "\"");
}

static void check_args(const char *args)
{
    /* Strings come out escaped as json_dumps writes them: the only \u
     * escapes left are control characters', \u00XX in upper case. */
    for (const char *u = args; (u = strstr(u, "\\u")) != NULL; u += 2) {
        int escaped = 0; /* is this backslash itself escaped? */
        for (const char *b = u; b > args && b[-1] == '\\'; b--)
            escaped = !escaped;
        if (escaped)
            continue;
        FUZZ_CHECK(u[2] == '0' && u[3] == '0' && (u[4] == '0' || u[4] == '1') && u[5] != '\0'
                   && strchr("0123456789ABCDEF", u[5]) != NULL);
    }
    json_error_t err;
    json_t *v = json_loads(args, JSON_ALLOW_NUL, &err); /* \u0000 is kept in arguments */
    if (!v) {
        FUZZ_CHECK(strstr(err.text, "too big") || strstr(err.text, "overflow"));
        return;
    }
    FUZZ_CHECK(json_is_object(v));
    json_decref(v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eryx__wait_request r, again;
    const char *err = eryx__wait_request_decode(data, size, &r);
    if (err) {
        FUZZ_CHECK(r.calls == NULL && r.arena == NULL && r.n_calls == 0);
        FUZZ_CHECK(!strstr(err, "overflow")); /* the arena is always large enough */
        return 0;
    }
    buf b = {0};
    put_s(&b, "{\"calls\": [");
    for (size_t i = 0; i < r.n_calls; i++) {
        const eryx__wait_call *c = &r.calls[i];
        FUZZ_CHECK(c->name && c->args); /* arguments over 4 MiB need larger inputs */
        FUZZ_CHECK(strlen(c->args) <= c->args_size);
        FUZZ_CHECK(c->id <= (uint64_t)INT64_MAX);
        check_args(c->args);
        char id[64];
        snprintf(id, sizeof id, "%s{\"id\": %llu, \"name\": ", i ? ", " : "",
                 (unsigned long long)c->id);
        put_s(&b, id);
        put_json_string(&b, c->name);
        put_s(&b, ", \"args\": ");
        put_s(&b, c->args);
        put_s(&b, "}");
    }
    put_s(&b, "]");
    if (r.has_timeout) {
        char t[64];
        snprintf(t, sizeof t, "%.17g", r.timeout_s);
        FUZZ_CHECK(!strchr(t, 'n') && !strchr(t, 'i')); /* not nan or inf */
        put_s(&b, ", \"timeout\": ");
        put_s(&b, t);
    }
    put_s(&b, "}");
    err = eryx__wait_request_decode(b.p, b.n, &again);
    if (err)
        fprintf(stderr, "re-encoded request refused (%s): %s\n", err, b.p);
    FUZZ_CHECK(err == NULL);
    FUZZ_CHECK(again.n_calls == r.n_calls && again.has_timeout == r.has_timeout);
    for (size_t i = 0; i < r.n_calls; i++) {
        FUZZ_CHECK(again.calls[i].id == r.calls[i].id);
        FUZZ_CHECK(strcmp(again.calls[i].name, r.calls[i].name) == 0);
        FUZZ_CHECK(strcmp(again.calls[i].args, r.calls[i].args) == 0);
    }
    eryx__wait_request_clear(&again);
    eryx__wait_request_clear(&r);
    free(b.p);
    return 0;
}
