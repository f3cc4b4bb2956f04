/*
 * eryx_sandbox_import_state on arbitrary bytes: the guest decodes them
 * (guest/python/_eryx/state.py), the host frames the request and reads the
 * outcome. One sandbox, reset to a fresh interpreter after each input.
 * Property: corrupt or foreign bytes give ERYX_INVALID (the documented
 * answer) or ERYX_OK, never a dead sandbox or another status.
 */
#include "fuzz_sandbox.h"

static eryx_sandbox *sb;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_runtime_init();
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.timeout_ns = 5ull * 1000 * 1000 * 1000;
    FUZZ_CHECK(eryx_sandbox_new(fuzz_rt, &cfg, &sb) == ERYX_OK);
    /* Seeds: exports of this build's guest (pickles and code objects). */
    static const char *const sessions[] = {
        "n = 42\ns = 'text'\nb = b'\\x00\\xff'\nl = [1, 2.5, None, True]\nd = {'k': (1, 2)}",
        "def f(x, *a, k=3, **kw):\n    return x + k\nimport math\nc = 1+2j\nfs = frozenset({1})",
        "class C: pass\nobj = C()\nbig = 10**100\nnested = [[[]]] * 3",
    };
    for (size_t i = 0; i < sizeof sessions / sizeof *sessions; i++) {
        fuzz_run_ok(sb, sessions[i]);
        void *data = NULL;
        size_t len = 0;
        char *skipped = NULL, name[32];
        FUZZ_CHECK(eryx_sandbox_export_state(sb, &data, &len, &skipped) == ERYX_OK);
        snprintf(name, sizeof name, "generated-export-%zu", i);
        fuzz_add_seed(*argc, *argv, name, data, len);
        eryx_free(data);
        eryx_free(skipped);
        FUZZ_CHECK(eryx_sandbox_reset(sb) == ERYX_OK);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *failed = NULL;
    int rc = eryx_sandbox_import_state(sb, data, size, &failed);
    if (rc != ERYX_OK && rc != ERYX_INVALID)
        fprintf(stderr, "import_state: %s: %s\n", eryx_errstr(rc), eryx_errmsg(sb));
    FUZZ_CHECK(rc == ERYX_OK || rc == ERYX_INVALID);
    FUZZ_CHECK(!eryx_sandbox_is_dead(sb));
    eryx_free(failed);
    FUZZ_CHECK(eryx_sandbox_reset(sb) == ERYX_OK);
    return 0;
}
