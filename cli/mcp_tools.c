/*
 * The tools `eryx mcp` offers (run_python, reset_session, list_sessions):
 * their schemas, and run_python's description, which tells a model what
 * the sandbox has (asked of a sandbox once at start), its limits, its
 * files and the host functions its code may await (mcp_stubs.c).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_internal.h"

/* What the sandbox has: Python's version, third-party packages, standard
 * modules that are missing. Asked of a sandbox once at start. */
static char *probe(eryx_runtime *rt, const eryx_sandbox_config *cfg)
{
    static const char code[] =
        "import sys, pkgutil\n"
        "pk = sorted({m.name for m in pkgutil.iter_modules()\n"
        "             if m.name not in sys.stdlib_module_names and not m.name.startswith('_')\n"
        "             and m.name != 'eryx'})\n"
        "missing = []\n"
        "for n in ('zlib', 'sqlite3', 'ssl', 'ctypes', 'lzma', 'bz2', 'socket'):\n"
        "    try:\n"
        "        __import__(n)\n"
        "    except Exception:\n"
        "        missing.append(n)\n"
        "result = {'version': sys.version.split()[0], 'packages': pk, 'missing': missing}\n";
    eryx_sandbox *sb = NULL;
    eryx_result *res = NULL;
    char *out = NULL;
    if (eryx_sandbox_new(rt, cfg, &sb) == ERYX_OK &&
        eryx_sandbox_run(sb, code, sizeof code - 1, &res) == ERYX_OK && res->result_json)
        out = strdup(res->result_json);
    eryx_result_free(res);
    eryx_sandbox_free(sb);
    return out;
}

static void join_strings(char **text, size_t *len, json_t *list, const char *none)
{
    size_t i;
    json_t *s;
    if (!json_array_size(list))
        eryx_cli_mcp_append_str(text, len, none);
    json_array_foreach(list, i, s) {
        if (i)
            eryx_cli_mcp_append_str(text, len, ", ");
        eryx_cli_mcp_append_str(text, len, json_is_string(s) ? json_string_value(s) : "?");
    }
}

static char *run_python_description(eryx_runtime *rt, const eryx_sandbox_config *cfg)
{
    char *text = NULL, line[512];
    size_t len = 0;
    char *facts_json = probe(rt, cfg);
    json_t *facts = facts_json ? json_loads(facts_json, 0, NULL) : NULL;
    free(facts_json);
    json_t *version = json_object_get(facts, "version");
    snprintf(line, sizeof line,
             "Run Python %s code in an isolated sandbox (CPython compiled to WebAssembly) and "
             "get back its stdout, stderr, the value of a global named `result` (if the code "
             "sets one; it must be JSON-serialisable) and, on failure, the exception with its "
             "traceback.\n\n",
             json_is_string(version) ? json_string_value(version) : "3.13");
    eryx_cli_mcp_append_str(&text, &len, line);
    eryx_cli_mcp_append_str(&text, &len,
               "Sessions: globals (variables, functions, imports) persist between calls "
               "with the same `session` (default \"default\"); reset_session empties one, "
               "list_sessions lists them. Top-level `await` works, and so does asyncio "
               "(gather, create_task, sleep, wait_for).\n\n");
    uint64_t t = cfg->timeout_ns;
    if (t && t != ERYX_NO_LIMIT)
        snprintf(line, sizeof line, "Limits of each call: %.1f s of wall-clock time (less "
                 "with timeout_ms), ", (double)t / 1e9);
    else
        snprintf(line, sizeof line, "Limits of each call: no time limit unless timeout_ms, ");
    eryx_cli_mcp_append_str(&text, &len, line);
    snprintf(line, sizeof line, "%llu MiB of memory (MemoryError beyond), %llu KiB of output "
             "(the rest is dropped).\n\n",
             (unsigned long long)(cfg->max_memory ? cfg->max_memory >> 20 : 128),
             (unsigned long long)(cfg->max_output ? cfg->max_output >> 10 : 10240));
    eryx_cli_mcp_append_str(&text, &len, line);
    eryx_cli_mcp_append_str(&text, &len, "What there is: the standard library");
    json_t *missing = json_object_get(facts, "missing");
    if (json_array_size(missing)) {
        eryx_cli_mcp_append_str(&text, &len, " except ");
        join_strings(&text, &len, missing, "");
    }
    eryx_cli_mcp_append_str(&text, &len, "; no subprocesses, no threads. Third-party packages: ");
    join_strings(&text, &len, json_object_get(facts, "packages"), "none");
    eryx_cli_mcp_append_str(&text, &len, ". Files: a private in-memory /tmp");
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        snprintf(line, sizeof line, "%s %s (%s)", i ? "," : "; host directories at",
                 cfg->mounts[i].guest_path, cfg->mounts[i].writable ? "read-write"
                                                                      : "read-only");
        eryx_cli_mcp_append_str(&text, &len, line);
    }
    eryx_cli_mcp_append_str(&text, &len, ".\n");
    json_decref(facts);
    if (cfg->n_callbacks) {
        eryx_cli_mcp_append_str(&text, &len,
                   "\nHost functions the code can await (keyword arguments; calls gathered "
                   "with asyncio.gather run concurrently, so one program making many calls is "
                   "much faster than many tool calls; failures raise CallbackError; "
                   "list_callbacks() gives their JSON schemas):\n\n```python\n");
        char *stubs = eryx_cli_mcp_stubs(cfg->callbacks, cfg->n_callbacks);
        if (stubs)
            eryx_cli_mcp_append_str(&text, &len, stubs);
        free(stubs);
        eryx_cli_mcp_append_str(&text, &len, "```\n");
    }
    return text;
}

static json_t *output_schema(void)
{
    return json_pack(
        "{s:s, s:{s:{s:s, s:[s,s,s,s,s,s,s,s]}, s:{s:s}, s:{s:s}, s:{s:s}, s:{}, s:{s:[s,s]},"
        " s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:[s,s]}}, s:[s,s,s,s,s]}",
        "type", "object", "properties",
        "status", "type", "string", "enum", "ok", "exit", "exception", "timeout", "interrupted",
        "fuel", "crashed", "error",
        "session", "type", "string",
        "stdout", "type", "string",
        "stderr", "type", "string",
        "result",
        "error", "type", "object", "null",
        "exit_code", "type", "integer",
        "duration_ms", "type", "number",
        "output_truncated", "type", "boolean",
        "session_reset", "type", "boolean",
        "result_error", "type", "string",
        "result_json", "type", "string",
        "stopped", "type", "string", "null",
        "required", "status", "session", "stdout", "stderr", "error");
}

json_t *eryx_cli_mcp_tools(eryx_runtime *rt, const eryx_sandbox_config *cfg)
{
    char *desc = run_python_description(rt, cfg);
    json_t *tools = json_pack(
        "[{s:s, s:s, s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:i, s:s}}, s:[s]},"
        "  s:o},"
        " {s:s, s:s, s:s, s:{s:s, s:{s:{s:s, s:s}}}},"
        " {s:s, s:s, s:s, s:{s:s, s:{}}}]",
        "name", "run_python", "title", "Run Python", "description", desc ? desc : "Run Python",
        "inputSchema", "type", "object", "properties",
        "code", "type", "string", "description", "Python source to run",
        "session", "type", "string", "description",
        "session to run in (1-64 of A-Z a-z 0-9 _ - .); default \"default\"",
        "timeout_ms", "type", "integer", "minimum", 1, "description",
        "time limit of this call in milliseconds (at most the server's)",
        "required", "code",
        "outputSchema", output_schema(),
        "name", "reset_session", "title", "Reset a session", "description",
        "Forget a session's state (its globals); its next run starts afresh.",
        "inputSchema", "type", "object", "properties", "session", "type", "string",
        "description", "the session; default \"default\"",
        "name", "list_sessions", "title", "List sessions", "description",
        "List the sessions: name, runs, whether one is running, memory.",
        "inputSchema", "type", "object", "properties");
    free(desc);
    return tools;
}
