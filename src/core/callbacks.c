/*
 * Callback registrations: validated and copied from the config, described
 * to the guest as JSON.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"

/* Names a host function may not take (its first dotted part): Python's
 * builtins and keywords, and what the glue puts in the user's globals. */
static const char *const reserved[] = {
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException",
    "BaseExceptionGroup", "BlockingIOError", "BrokenPipeError", "BufferError",
    "BytesWarning", "CallbackError", "ChildProcessError", "ConnectionAbortedError",
    "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
    "DeprecationWarning", "EOFError", "Ellipsis", "EncodingWarning", "EnvironmentError",
    "Exception", "ExceptionGroup", "False", "FileExistsError", "FileNotFoundError",
    "FloatingPointError", "FutureWarning", "GeneratorExit", "IOError", "ImportError",
    "ImportWarning", "IndentationError", "IndexError", "InterruptedError",
    "IsADirectoryError", "KeyError", "KeyboardInterrupt", "LookupError", "MemoryError",
    "ModuleNotFoundError", "NameError", "None", "NotADirectoryError", "NotImplemented",
    "NotImplementedError", "OSError", "OverflowError", "PendingDeprecationWarning",
    "PermissionError", "ProcessLookupError", "RecursionError", "ReferenceError",
    "ResourceWarning", "RuntimeError", "RuntimeWarning", "StopAsyncIteration",
    "StopIteration", "SyntaxError", "SyntaxWarning", "SystemError", "SystemExit",
    "TabError", "TimeoutError", "True", "TypeError", "UnboundLocalError",
    "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError", "UnicodeTranslateError",
    "UnicodeWarning", "UserWarning", "ValueError", "Warning", "ZeroDivisionError", "_",
    "abs", "aiter", "all", "and", "anext", "any", "as", "ascii", "assert", "async",
    "await", "bin", "bool", "break", "breakpoint", "bytearray", "bytes", "callable",
    "case", "chr", "class", "classmethod", "compile", "complex", "continue",
    "copyright", "credits", "def", "del", "delattr", "dict", "dir", "divmod", "elif",
    "else", "enumerate", "eval", "except", "exec", "exit", "filter", "finally", "float",
    "for", "format", "from", "frozenset", "getattr", "global", "globals", "hasattr",
    "hash", "help", "hex", "id", "if", "import", "in", "input", "int", "invoke", "is",
    "isinstance", "issubclass", "iter", "lambda", "len", "license", "list",
    "list_callbacks", "locals", "map", "match", "max", "memoryview", "min", "next",
    "nonlocal", "not", "object", "oct", "open", "or", "ord", "pass", "pow", "print",
    "property", "quit", "raise", "range", "repr", "result", "return", "reversed",
    "round", "set", "setattr", "slice", "sorted", "staticmethod", "str", "sum", "super",
    "try", "tuple", "type", "vars", "while", "with", "yield", "zip",
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int is_reserved(const char *name, size_t len)
{
    char first[64];
    if (len >= sizeof first)
        return 0;
    memcpy(first, name, len);
    first[len] = '\0';
    const char *key = first;
    return bsearch(&key, reserved, sizeof reserved / sizeof *reserved, sizeof *reserved,
                   cmp_str) != NULL;
}

/* Dotted Python identifiers (ASCII), the first part not reserved. */
static int check_name(const char *name)
{
    size_t part = 0, first_len = 0;
    if (!name || !*name || strlen(name) > 200)
        return -1;
    for (const char *p = name;; p++) {
        if (*p == '.' || *p == '\0') {
            if (part == 0)
                return -1;
            if (first_len == 0)
                first_len = (size_t)(p - name);
            if (*p == '\0')
                break;
            part = 0;
            continue;
        }
        if (!(isalpha((unsigned char)*p) || *p == '_' || (part > 0 && isdigit((unsigned char)*p))))
            return -1;
        part++;
    }
    return is_reserved(name, first_len) ? -2 : 0;
}

static int add_description(json_t *list, const eryx_callback *cb, json_t *schema)
{
    json_t *d = json_pack("{s:s, s:s?, s:O?}", "name", cb->name, "description",
                          cb->description, "schema", schema);
    return d ? json_array_append_new(list, d) : -1;
}

void eryx__callbacks_free(eryx__callback *cbs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(cbs[i].name);
        json_decref(cbs[i].schema);
    }
    free(cbs);
}

/* Copies the config's callbacks into sb; the message goes to the thread. */
int eryx__callbacks_init(eryx_sandbox *sb, const eryx_callback *src, size_t n)
{
    json_t *list = json_array();
    sb->callbacks = n ? calloc(n, sizeof *sb->callbacks) : NULL;
    if (!list || (n && !sb->callbacks))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        const eryx_callback *cb = &src[i];
        int bad = check_name(cb->name);
        if (bad) {
            eryx__set_errmsg(NULL, bad == -2 ? "callback name '%s' would shadow a Python builtin "
                                               "or keyword" : "callback name '%s' is not a dotted "
                                               "Python identifier", cb->name ? cb->name : "(null)");
            goto invalid;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(src[j].name, cb->name) == 0) {
                eryx__set_errmsg(NULL, "callback '%s' is registered twice", cb->name);
                goto invalid;
            }
        }
        eryx__callback *dst = &sb->callbacks[sb->n_callbacks];
        if (cb->schema) {
            json_error_t err;
            dst->schema = json_loads(cb->schema, 0, &err);
            if (!dst->schema || !json_is_object(dst->schema)) {
                eryx__set_errmsg(NULL, "schema of callback '%s' is not a JSON object: %s",
                                 cb->name, dst->schema ? "another JSON value" : err.text);
                json_decref(dst->schema);
                dst->schema = NULL;
                goto invalid;
            }
        }
        dst->name = strdup(cb->name);
        dst->handler = cb->handler;
        dst->user_data = cb->user_data;
        dst->flags = cb->flags;
        sb->n_callbacks++;
        if (!dst->name || add_description(list, cb, dst->schema) < 0)
            goto nomem;
    }
    sb->callbacks_json = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    return sb->callbacks_json ? ERYX_OK : ERYX_NOMEM;
nomem:
    json_decref(list);
    return ERYX_NOMEM;
invalid:
    json_decref(list);
    return ERYX_INVALID;
}

const eryx__callback *eryx__callback_find(const eryx_sandbox *sb, const char *name)
{
    for (size_t i = 0; i < sb->n_callbacks; i++)
        if (strcmp(sb->callbacks[i].name, name) == 0)
            return &sb->callbacks[i];
    return NULL;
}

/* Gives a fork its parent's callbacks (the registrations are immutable). */
int eryx__callbacks_copy(eryx_sandbox *dst, const eryx_sandbox *src)
{
    dst->callbacks = src->n_callbacks ? calloc(src->n_callbacks, sizeof *dst->callbacks) : NULL;
    if (src->n_callbacks && !dst->callbacks)
        return ERYX_NOMEM;
    for (size_t i = 0; i < src->n_callbacks; i++) {
        eryx__callback *d = &dst->callbacks[i];
        *d = src->callbacks[i];
        d->name = strdup(src->callbacks[i].name);
        json_incref(d->schema);
        dst->n_callbacks = i + 1;
        if (!d->name)
            return ERYX_NOMEM;
    }
    free(dst->callbacks_json);
    dst->callbacks_json = strdup(src->callbacks_json ? src->callbacks_json : "[]");
    return dst->callbacks_json ? ERYX_OK : ERYX_NOMEM;
}
