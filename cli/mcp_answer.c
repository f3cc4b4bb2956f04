/*
 * The answers of eryx mcp's tools (mcp_internal.h): tool results, and a
 * run_python run's answer, as structured content and as the text a
 * terminal would show.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"
#include "mcp_internal.h"
#include "run_status.h"
#include "result_json.h"

/* A text item of len bytes: the text may hold NUL characters (the code's
 * output), which a C string would cut it at. */
static json_t *text_item(const char *text, size_t len)
{
    return json_pack("{s:s, s:s#}", "type", "text", "text", text, len);
}

/* A tool result with one text item of len bytes and, optionally,
 * structured content. */
json_t *eryx_mcp_tool_result_n(const char *text, size_t len, json_t *structured_stolen,
                                int is_error)
{
    json_t *r = json_pack("{s:[o], s:b}", "content", text_item(text, len), "isError", is_error);
    if (r && structured_stolen)
        json_object_set_new(r, "structuredContent", structured_stolen);
    else
        json_decref(structured_stolen);
    return r;
}

json_t *eryx_mcp_tool_result(const char *text, json_t *structured_stolen, int is_error)
{
    return eryx_mcp_tool_result_n(text, strlen(text), structured_stolen, is_error);
}

static const char *status_of(int rc, const eryx_result *res)
{
    switch (rc) {
    case ERYX_OK: return res && res->exit_code ? "exit" : "ok";
    case ERYX_PYTHON_EXCEPTION: return "exception";
    case ERYX_TIMEOUT: return "timeout";
    case ERYX_INTERRUPTED: return "interrupted";
    case ERYX_FUEL: return "fuel";
    case ERYX_TRAP:
    case ERYX_DEAD: return "crashed";
    default: return "error";
    }
}

/* Appends to a growing text (NUL-terminated); nothing when out of memory. */
void eryx_cli_mcp_append(char **text, size_t *len, const char *s, size_t n)
{
    char *bigger = realloc(*text, *len + n + 1);
    if (!bigger)
        return;
    memcpy(bigger + *len, s, n);
    *len += n;
    bigger[*len] = '\0';
    *text = bigger;
}

/* At most cap bytes of s as a JSON string, with a marker when cut. */
static json_t *output_string(const char *s, size_t n, size_t cap)
{
    if (n <= cap)
        return jr_string_lossy(s, n);
    char marker[120];
    int m = snprintf(marker, sizeof marker, "\n[eryx: %zu bytes cut here: the answer must fit "
                     "--mcp-max-message]\n", n - cap);
    char *buf = malloc(cap + (size_t)m);
    if (!buf)
        return NULL;
    memcpy(buf, s, cap);
    memcpy(buf + cap, marker, (size_t)m);
    json_t *str = jr_string_lossy(buf, cap + (size_t)m);
    free(buf);
    return str;
}

/* s (a C string, or NULL) cut to cap bytes (a JSON string, or NULL). */
static json_t *text_string(const char *s, size_t n, size_t cap)
{
    return s ? output_string(s, n, cap) : NULL;
}

json_t *eryx_mcp_run_answer(const mcp_run_facts *j, int rc, eryx_result *res,
                            const char *errmsg, size_t out_cap)
{
    int was_reset = j->was_reset;
    const char *status = status_of(rc, res);
    json_t *sc = json_object();
    json_object_set_new(sc, "status", json_string(status));
    json_object_set_new(sc, "session", json_string(j->session));
    json_object_set_new(sc, "stdout", res ? output_string(res->out, res->out_len, out_cap)
                                          : json_string(""));
    json_object_set_new(sc, "stderr", res ? output_string(res->err, res->err_len, out_cap)
                                          : json_string(""));
    const char *result_error;
    int inexact;
    json_t *result = eryx_cli_result(res, &result_error, &inexact);
    if ((result || inexact) && out_cap != SIZE_MAX) {
        /* A result too structured to read goes as its text alone. */
        char *r = result ? json_dumps(result, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        if (result ? !r || strlen(r) > out_cap : strlen(res->result_json) > out_cap) {
            json_decref(result);
            result = NULL;
            inexact = 0;
            result_error = "the result is larger than the answer may carry (--mcp-max-message)";
        }
        free(r);
    }
    json_object_set_new(sc, "result", result ? json_incref(result) : json_null());
    if (inexact)
        json_object_set_new(sc, "result_json", json_string(res->result_json));
    json_t *error = json_null();
    if (res && res->exc_type) {
        error = json_pack("{s:s, s:o?, s:o?}", "type", res->exc_type, "message",
                          text_string(res->exc_message, res->exc_message_len, out_cap),
                          "traceback", text_string(res->traceback, res->traceback_len, out_cap));
    } else if (rc != ERYX_OK) {
        error = json_pack("{s:s, s:s, s:o?}", "type", status, "message",
                          errmsg && errmsg[0] ? errmsg : eryx_errstr(rc), "traceback",
                          text_string(res ? res->traceback : NULL,
                                      res ? res->traceback_len : 0, out_cap));
    }
    if (!error)
        error = json_null();
    json_object_set_new(sc, "error", error);
    if (result_error)
        json_object_set_new(sc, "result_error", json_string(result_error));
    json_object_set_new(sc, "exit_code", json_integer(res ? res->exit_code : 1));
    json_object_set_new(sc, "duration_ms", json_real(res ? (double)res->duration_ns / 1e6 : 0));
    json_object_set_new(sc, "output_truncated",
                        json_boolean(res && (res->out_truncated || res->err_truncated ||
                                             res->out_len > out_cap || res->err_len > out_cap)));
    json_object_set_new(sc, "session_reset", json_boolean(was_reset));
    /* A stop that came though the code caught it and ended on its own. */
    const char *stopped = eryx_cli_stop_name(res);
    json_object_set_new(sc, "stopped", stopped ? json_string(stopped) : json_null());

    /* The text: what a person would see in a terminal, then the rest. */
    char *text = NULL;
    size_t len = 0;
    eryx_cli_mcp_append_str(&text, &len, "");
    json_t *out = json_object_get(sc, "stdout"), *err = json_object_get(sc, "stderr");
    if (json_string_length(out))
        eryx_cli_mcp_append(&text, &len, json_string_value(out), json_string_length(out));
    if (json_string_length(err)) {
        eryx_cli_mcp_append_str(&text, &len, len ? "\n[stderr]\n" : "[stderr]\n");
        eryx_cli_mcp_append(&text, &len, json_string_value(err), json_string_length(err));
    }
    if (result || inexact) {
        /* The exact text where the value lost digits, or was not read
         * (result_json.h). */
        char *r = inexact ? NULL : json_dumps(result, JSON_ENCODE_ANY | JSON_COMPACT);
        if (r || inexact) {
            eryx_cli_mcp_append_str(&text, &len, len ? "\n[result] " : "[result] ");
            eryx_cli_mcp_append_str(&text, &len, r ? r : res->result_json);
            free(r);
        }
    }
    json_decref(result);
    if (stopped && (rc == ERYX_OK || rc == ERYX_PYTHON_EXCEPTION)) {
        eryx_cli_mcp_append_str(&text, &len, len ? "\n" : "");
        eryx_cli_mcp_append_str(&text, &len, stopped[0] == 't'
                                                 ? "[the time limit passed: the code caught the "
                                                   "KeyboardInterrupt and ended on its own]"
                                                 : "[interrupted: the code caught the "
                                                   "KeyboardInterrupt and ended on its own]");
    }
    if (strcmp(status, "ok") != 0) {
        char line[160];
        snprintf(line, sizeof line, "%s[%s]", len ? "\n" : "", status);
        eryx_cli_mcp_append_str(&text, &len, line);
        json_t *tb = json_object_get(error, "traceback");
        json_t *msg = json_object_get(error, "message");
        if (json_is_string(tb)) {
            eryx_cli_mcp_append_str(&text, &len, "\n");
            eryx_cli_mcp_append(&text, &len, json_string_value(tb), json_string_length(tb));
        } else if (json_is_string(msg)) {
            eryx_cli_mcp_append_str(&text, &len, " ");
            eryx_cli_mcp_append(&text, &len, json_string_value(msg), json_string_length(msg));
        }
        if (strcmp(status, "exit") == 0) {
            snprintf(line, sizeof line, " exit code %d", res ? res->exit_code : 1);
            eryx_cli_mcp_append_str(&text, &len, line);
        }
    }
    if (was_reset)
        eryx_cli_mcp_append_str(&text, &len, "\n[the session could not go on and was reset: its "
                                "variables are gone]");
    if (j->reset_untold)
        eryx_cli_mcp_append_str(&text, &len, "\n[a cancelled call on this session was stopped hard, "
                                "which reset it: this call started empty]");
    if (j->was_dropped)
        eryx_cli_mcp_append_str(&text, &len, "\n[this session had been dropped to make room for others "
                                "(--max-sessions): it started empty]");
    if (len == 0)
        eryx_cli_mcp_append_str(&text, &len, "(no output)");
    json_t *answer = eryx_mcp_tool_result_n(text ? text : "", text ? len : 0, sc,
                                   strcmp(status, "ok") != 0);
    free(text);
    return answer;
}
