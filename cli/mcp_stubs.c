/*
 * Python stubs of the callbacks, generated from their JSON schemas, for the
 * description of `eryx mcp`'s run_python tool: what a model reads to know
 * which host functions its code may await and how to call them.
 *
 *   async def mcp.fs.read_file(path: str, head: int | None = None) -> str | list | None:
 *       """Read a file (MCP tool 'read_file' of server fs)"""
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp.h"
#include "mcp_internal.h"

typedef struct sbuf {
    char *data;
    size_t len, cap;
    int failed;
} sbuf;

static void add(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
        char *bigger = realloc(b->data, cap);
        if (!bigger) {
            b->failed = 1;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
}

static const char *scalar_type(const char *t)
{
    static const char *const map[][2] = {{"string", "str"}, {"integer", "int"},
                                         {"number", "float"}, {"boolean", "bool"},
                                         {"array", "list"}, {"object", "dict"},
                                         {"null", "None"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(t, map[i][0]) == 0)
            return map[i][1];
    return "Any";
}

/* The annotation of one property's schema (depth-limited). */
static void annotation(sbuf *b, json_t *schema, int depth)
{
    json_t *type = json_object_get(schema, "type");
    json_t *alts = json_object_get(schema, "anyOf");
    if (!alts)
        alts = json_object_get(schema, "oneOf");
    if (depth > 3 || !json_is_object(schema)) {
        add(b, "Any");
    } else if (json_is_string(type) && strcmp(json_string_value(type), "array") == 0 &&
               json_is_object(json_object_get(schema, "items"))) {
        add(b, "list[");
        annotation(b, json_object_get(schema, "items"), depth + 1);
        add(b, "]");
    } else if (json_is_string(type)) {
        add(b, "%s", scalar_type(json_string_value(type)));
    } else if (json_is_array(type) && json_array_size(type) > 0) {
        size_t i;
        json_t *t;
        json_array_foreach(type, i, t) {
            add(b, "%s%s", i ? " | " : "", json_is_string(t) ? scalar_type(json_string_value(t))
                                                             : "Any");
        }
    } else if (json_is_array(alts) && json_array_size(alts) > 0 && json_array_size(alts) < 8) {
        size_t i;
        json_t *t;
        json_array_foreach(alts, i, t) {
            if (i)
                add(b, " | ");
            annotation(b, t, depth + 1);
        }
    } else if (json_is_array(json_object_get(schema, "enum"))) {
        add(b, "str");
    } else {
        add(b, "Any");
    }
}

/* A Python literal for a JSON default (falls back to None). */
static void literal(sbuf *b, json_t *v)
{
    if (json_is_true(v))
        add(b, "True");
    else if (json_is_false(v))
        add(b, "False");
    else if (json_is_null(v) || (!json_is_number(v) && !json_is_string(v)))
        add(b, "None");
    else {
        /* JSON numbers and strings are Python literals as they are
         * (JSON escapes are Python escapes, both kinds of quotes aside). */
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        add(b, "%s", s && strlen(s) < 200 ? s : "...");
        free(s);
    }
}

static int required(json_t *req, const char *name)
{
    size_t i;
    json_t *r;
    json_array_foreach(req, i, r) {
        if (json_is_string(r) && strcmp(json_string_value(r), name) == 0)
            return 1;
    }
    return 0;
}

/* The description as a docstring: no triple quotes inside, at most ~1500
 * bytes, indented. */
static void docstring(sbuf *b, const char *text)
{
    add(b, "    \"\"\"");
    size_t n = 0;
    /* Cut at 1500 bytes, but never inside a character: half of one made
     * the stubs' text not UTF-8, and `eryx mcp` failed to start. */
    const char *p = text;
    for (; *p && (n < 1500 || ((unsigned char)*p & 0xC0) == 0x80); p++, n++) {
        if (*p == '"' && p[1] == '"' && p[2] == '"') {
            add(b, "\\\"");
            continue;
        }
        if (*p == '\\') {
            add(b, "\\\\");
            continue;
        }
        if (*p == '\n') {
            add(b, "\n    ");
            continue;
        }
        add(b, "%c", *p);
    }
    if (*p)
        add(b, "...");
    add(b, "\"\"\"\n");
}

static void stub(sbuf *b, const eryx_callback *cb)
{
    json_t *schema = cb->schema ? json_loads(cb->schema, 0, NULL) : NULL;
    json_t *props = json_object_get(schema, "properties");
    json_t *req = json_object_get(schema, "required");
    add(b, "async def %s(", cb->name);
    int first = 1, odd_names = 0;
    /* Required parameters first (Python wants them before defaults), in
     * the schema's order, which is also the positional order. */
    for (int pass = 0; pass < 2; pass++) {
        const char *key;
        json_t *prop;
        json_object_foreach(props, key, prop) {
            int is_req = required(req, key);
            if (is_req != (pass == 0))
                continue;
            if (!eryx_cli_py_identifier(key)) {
                odd_names = 1;
                continue;
            }
            add(b, "%s%s: ", first ? "" : ", ", key);
            first = 0;
            annotation(b, prop, 0);
            if (!is_req) {
                json_t *dflt = json_object_get(prop, "default");
                if (!dflt)
                    add(b, " | None");
                add(b, " = ");
                literal(b, dflt);
            }
        }
    }
    if (odd_names)
        add(b, "%s**kwargs", first ? "" : ", ");
    add(b, ") -> %s:\n", eryx_cli_mcp_tool_returns(cb));
    if (cb->description && cb->description[0])
        docstring(b, cb->description);
    else
        add(b, "    ...\n");
    json_decref(schema);
}

char *eryx_cli_mcp_stubs(const eryx_callback *cbs, size_t n)
{
    sbuf b = {0};
    add(&b, "%s", "");
    for (size_t i = 0; i < n; i++)
        stub(&b, &cbs[i]);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
