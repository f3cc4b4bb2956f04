/*
 * The request-head parser of `eryx mcp --http` (cli/http.c) and its
 * loopback checks, on arbitrary bytes. Properties beyond "no crash, no
 * leak": a parsed head's length is within the input and ends with a blank
 * line; every field is NUL-terminated within its size; parsing any prefix
 * of a complete head asks for more bytes or fails, and parsing the head
 * alone gives the same result as with trailing bytes; a Host accepted as
 * loopback starts with a loopback name.
 */
#include <strings.h>

#include "fuzz.h"
#include "http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_fields(const http_req *r)
{
    FUZZ_CHECK(memchr(r->method, '\0', sizeof r->method));
    FUZZ_CHECK(memchr(r->path, '\0', sizeof r->path));
    FUZZ_CHECK(memchr(r->host, '\0', sizeof r->host));
    FUZZ_CHECK(memchr(r->origin, '\0', sizeof r->origin));
    FUZZ_CHECK(memchr(r->session, '\0', sizeof r->session));
    FUZZ_CHECK(memchr(r->protocol, '\0', sizeof r->protocol));
    FUZZ_CHECK(memchr(r->last_event_id, '\0', sizeof r->last_event_id));
    FUZZ_CHECK(memchr(r->accept, '\0', sizeof r->accept));
    FUZZ_CHECK(memchr(r->content_type, '\0', sizeof r->content_type));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    http_req r;
    int n = http_parse_head(buf, size, &r);
    FUZZ_CHECK(n >= -2 && (n <= 0 || (size_t)n <= size));
    if (n > 0) {
        FUZZ_CHECK(buf[n - 1] == '\n');
        FUZZ_CHECK(r.path[0] == '/' && r.method[0]);
        check_fields(&r);
        /* The head alone parses the same. */
        char *head = malloc((size_t)n);
        FUZZ_CHECK(head);
        memcpy(head, buf, (size_t)n);
        http_req again;
        FUZZ_CHECK(http_parse_head(head, (size_t)n, &again) == n);
        FUZZ_CHECK(memcmp(&again, &r, sizeof r) == 0);
        /* A strict prefix never completes. */
        size_t cut = size ? data[0] % (size_t)n : 0;
        FUZZ_CHECK(http_parse_head(head, cut, &again) <= 0);
        free(head);
        if (http_host_is_loopback(r.host))
            FUZZ_CHECK(strncasecmp(r.host, "localhost", 9) == 0 ||
                       strncmp(r.host, "127.0.0.1", 9) == 0 || strncmp(r.host, "[::1]", 5) == 0);
        if (r.has_origin && http_origin_is_loopback(r.origin))
            FUZZ_CHECK(strncasecmp(r.origin, "http", 4) == 0);
    }
    /* The loopback checks on raw text. */
    char s[300];
    size_t k = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, buf, k);
    s[k] = '\0';
    http_host_is_loopback(s);
    http_origin_is_loopback(s);
    return 0;
}
