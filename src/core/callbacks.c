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

/* The registrations of n callbacks (cbs, *n_out) and their description for
 * the guest (*json_out), or a failure with everything made freed; the
 * message goes to the thread. */
static int build(const eryx_callback *src, size_t n, eryx__callback **cbs_out,
                 size_t *n_out, char **json_out)
{
    json_t *list = json_array();
    eryx__callback *cbs = n ? calloc(n, sizeof *cbs) : NULL;
    size_t made = 0;
    int rc = !list || (n && !cbs) ? ERYX_NOMEM : ERYX_OK;
    for (size_t i = 0; rc == ERYX_OK && i < n; i++) {
        const eryx_callback *cb = &src[i];
        int bad = check_name(cb->name);
        if (bad) {
            eryx__set_errmsg(NULL, bad == -2 ? "callback name '%s' would shadow a Python builtin "
                                               "or keyword" : "callback name '%s' is not a dotted "
                                               "Python identifier", cb->name ? cb->name : "(null)");
            rc = ERYX_INVALID;
            break;
        }
        for (size_t j = 0; j < i && rc == ERYX_OK; j++) {
            if (strcmp(src[j].name, cb->name) == 0) {
                eryx__set_errmsg(NULL, "callback '%s' is registered twice", cb->name);
                rc = ERYX_INVALID;
            }
        }
        eryx__callback *dst = &cbs[made];
        if (rc == ERYX_OK && cb->schema) {
            json_error_t err;
            dst->schema = json_loads(cb->schema, 0, &err);
            if (!dst->schema || !json_is_object(dst->schema)) {
                eryx__set_errmsg(NULL, "schema of callback '%s' is not a JSON object: %s",
                                 cb->name, dst->schema ? "another JSON value" : err.text);
                json_decref(dst->schema);
                dst->schema = NULL;
                rc = ERYX_INVALID;
            }
        }
        if (rc != ERYX_OK)
            break;
        dst->name = strdup(cb->name);
        dst->handler = cb->handler;
        dst->user_data = cb->user_data;
        dst->flags = cb->flags;
        made++;
        if (!dst->name || add_description(list, cb, dst->schema) < 0)
            rc = ERYX_NOMEM;
    }
    char *json = rc == ERYX_OK ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    if (rc == ERYX_OK && !json)
        rc = ERYX_NOMEM;
    if (rc != ERYX_OK) {
        eryx__callbacks_free(cbs, made);
        return rc;
    }
    *cbs_out = cbs;
    *n_out = made;
    *json_out = json;
    return ERYX_OK;
}

/* The guest learns of the change with its next run's request, which
 * carries the description (guest/python/_eryx/callbacks.py install()). */
int eryx__callbacks_set(eryx_sandbox *sb, const eryx_callback *src, size_t n)
{
    eryx__callback *cbs;
    size_t made;
    char *json;
    int rc = build(src, n, &cbs, &made, &json);
    if (rc != ERYX_OK)
        return rc;
    eryx__callbacks_free(sb->callbacks, sb->n_callbacks);
    free(sb->callbacks_json);
    sb->callbacks = cbs;
    sb->n_callbacks = made;
    sb->callbacks_json = json;
    return ERYX_OK;
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
