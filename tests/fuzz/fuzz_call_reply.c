/*
 * Callback replies (eryx_call_reply, eryx_call_fail) with arbitrary bytes,
 * for a call the guest awaits, through the non-blocking API. One sandbox.
 *
 * Input: a mode byte, then the reply. Mode 0-191: the reply as JSON;
 * 192-255: a failure of kind (mode % 4, out of range included: ERYX_MISUSE,
 * the call failed all the same) with the bytes as message. Properties: the run ends with ERYX_OK or
 * ERYX_PYTHON_EXCEPTION in the same step, the sandbox lives, and a reply
 * the host accepted reaches Python intact: the guest's json.dumps of it
 * reads back equal to the reply (jansson's json_equal, both read with
 * integers beyond 64 bits widened alike: core/json_wide.h).
 */
#include <jansson.h>

#include "core/json_wide.h"
#include "fuzz_sandbox.h"

static eryx_sandbox *sb;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_runtime_init();
    static const eryx_callback cb = {0, "cb", NULL, NULL, NULL, NULL, 0};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &cb;
    cfg.n_callbacks = 1;
    cfg.timeout_ns = 5ull * 1000 * 1000 * 1000;
    FUZZ_CHECK(eryx_sandbox_new(fuzz_rt, &cfg, &sb) == ERYX_OK);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char code[] = "result = await cb()";
    uint8_t mode = size ? data[0] : 0;
    const char *reply = size ? (const char *)data + 1 : "";
    size_t len = size ? size - 1 : 0;
    eryx_exec *ex = NULL;
    FUZZ_CHECK(eryx_exec_start(sb, code, sizeof code - 1, NULL, &ex) == ERYX_OK);
    FUZZ_CHECK(eryx_exec_step(ex) == ERYX_PENDING);
    eryx_call *call = eryx_exec_next_call(ex);
    FUZZ_CHECK(call && eryx_exec_next_call(ex) == NULL);
    FUZZ_CHECK(strcmp(eryx_call_name(call), "cb") == 0 && strcmp(eryx_call_args(call), "{}") == 0);
    int reply_rc;
    if (mode < 192) {
        reply_rc = eryx_call_reply(call, reply, len);
        FUZZ_CHECK(reply_rc == ERYX_OK || reply_rc == ERYX_INVALID);
    } else {
        char *msg = strndup(reply, len);
        FUZZ_CHECK(msg);
        reply_rc = eryx_call_fail(call, mode % 4, msg);
        /* A kind that is no eryx_call_error fails the call all the same. */
        FUZZ_CHECK(reply_rc == (mode % 4 <= ERYX_CALL_TIMEOUT ? ERYX_OK : ERYX_MISUSE));
        free(msg);
        reply_rc = ERYX_INVALID; /* not a value */
    }
    int rc = eryx_exec_step(ex);
    eryx_result *r = NULL;
    FUZZ_CHECK(eryx_exec_finish(ex, &r) == rc);
    if (rc != ERYX_OK && rc != ERYX_PYTHON_EXCEPTION)
        fprintf(stderr, "run: %s: %s\n", eryx_errstr(rc), eryx_errmsg(sb));
    FUZZ_CHECK(rc == ERYX_OK || rc == ERYX_PYTHON_EXCEPTION);
    FUZZ_CHECK(r != NULL && !eryx_sandbox_is_dead(sb));
    if (reply_rc == ERYX_OK && rc == ERYX_OK && r->result_json) {
        int inexact;
        json_t *sent = eryx__json_read(reply, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &inexact);
        json_t *got = eryx__json_read(r->result_json, strlen(r->result_json),
                                      JSON_DECODE_ANY | JSON_ALLOW_NUL, &inexact);
        if (!json_equal(sent, got))
            fprintf(stderr, "reply changed on its way: %.*s -> %s\n", (int)len, reply,
                    r->result_json);
        FUZZ_CHECK(json_equal(sent, got));
        json_decref(sent);
        json_decref(got);
    }
    eryx_result_free(r);
    return 0;
}
