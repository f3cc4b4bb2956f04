/*
 * Python names made of MCP's names: a tool's, a server's (mcp.NAME.TOOL
 * must be something the sandboxed code can write); and the names of MCP's
 * protocol revisions eryx knows.
 */
#include <stdlib.h>
#include <string.h>

#include "mcp_internal.h"

static const char *const keywords[] = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
    "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise",
    "return", "try", "while", "with", "yield"};

int eryx_cli_py_keyword(const char *s)
{
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
        if (strcmp(s, keywords[i]) == 0)
            return 1;
    return 0;
}

int eryx_cli_py_identifier(const char *s)
{
    if (!s || !*s || strlen(s) > 64 || eryx_cli_py_keyword(s))
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (p > s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

char *eryx_cli_py_name(const char *tool)
{
    size_t n = strlen(tool);
    if (n > 100)
        n = 100;
    char *s = malloc(n + 7);
    if (!s)
        return NULL;
    /* A name that maps to a leading underscore is the namespace's own kind
     * of name (its _path, Python's __class__ and __dict__, which binding
     * could not set, and every run failed): it gets "tool" before it.
     * Judged by the mapped name: "-_class__" and "\xc3\xa9class__" (each
     * byte of UTF-8 a "_") came through as __class__ (an audit's finding). */
    int lead_ = n > 0 && !((tool[0] >= 'a' && tool[0] <= 'z') || (tool[0] >= 'A' && tool[0] <= 'Z') ||
                           (tool[0] >= '0' && tool[0] <= '9'));
    size_t o = 0;
    if (lead_) {
        memcpy(s, "tool", 4);
        o = 4;
    } else if (n == 0 || (tool[0] >= '0' && tool[0] <= '9')) {
        s[o++] = '_';
    }
    for (size_t i = 0; i < n; i++) {
        char c = tool[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (c >= '0' && c <= '9');
        s[o++] = ok ? c : '_';
    }
    s[o] = '\0';
    if (eryx_cli_py_keyword(s)) {
        s[o++] = '_';
        s[o] = '\0';
    }
    return s;
}

int eryx_cli_mcp_known_revision(const char *v)
{
    static const char *const known[] = {ERYX_MCP_VERSION, ERYX_MCP_PREVIOUS_VERSION, "2025-03-26",
                                        "2024-11-05"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(v, known[i]) == 0)
            return 1;
    return 0;
}
