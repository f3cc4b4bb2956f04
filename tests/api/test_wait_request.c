/*
 * Regression test for the guest's eryx.wait requests (src/core/wait_request.c):
 * the host once parsed up to 64 MiB of guest JSON into a jansson tree, so
 * that a 50 MB request cost 1.1 GB of host memory and seconds that no
 * timeout could stop. Now a request over 8 MiB is refused unread (the
 * guest's event loop raises RuntimeError), a call whose arguments exceed
 * 4 MiB fails alone (CallbackError, kind invalid_arguments) without
 * reaching its handler, and requests of the wrong shape are refused.
 */
#include <eryx.h>
#include <sys/resource.h>

#include "../check.h"

static eryx_runtime *rt;
static int handler_calls;

/* size(data) -> the length of its arguments' JSON text */
static void size_cb(void *ud, eryx_call *call)
{
    (void)ud;
    handler_calls++;
    char buf[32];
    snprintf(buf, sizeof buf, "%zu", strlen(eryx_call_args(call)));
    eryx_call_reply(call, buf, strlen(buf));
}

static const eryx_callback callbacks[] = {
    {0, "size", NULL, "{\"properties\": {\"data\": {}}}", size_cb, NULL, ERYX_CALLBACK_INLINE},
};

static eryx_sandbox *new_sandbox(uint64_t max_memory)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = callbacks;
    cfg.n_callbacks = 1;
    if (max_memory)
        cfg.max_memory = max_memory;
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(rt, &cfg, &sb);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_sandbox_new: %s\n", eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK);
    return sb;
}

static eryx_result *run_expect(eryx_sandbox *sb, const char *code, int want)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    if (rc != want)
        fprintf(stderr, "run: %s %s\n%s%s\n", eryx_errstr(rc), eryx_errmsg(sb),
                r && r->traceback ? r->traceback : "", r ? r->err : "");
    CHECK_INT(rc, want);
    REQUIRE(r != NULL);
    return r;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* 12 million zeros are 36 MB of JSON: the old decoder made a jansson value
 * of each (~0.8 GB). The guest's own memory for the list and its JSON is
 * ~200 MB of the process; ThreadSanitizer's allocator keeps more of it
 * (454 MB measured once there), so the bound is 600 MB: still well below
 * what one host value per element would take. The glue never sends such a
 * request (it fails the call itself, and splits a turn's calls): code that
 * calls _eryx_host.wait itself does. */
TEST_CASE(test_oversized_request)
{
    eryx_sandbox *sb = new_sandbox(768ull << 20);
    long before = peak_rss_kb();
    handler_calls = 0;
    eryx_result *r = run_expect(
        sb,
        "import _eryx_host\n"
        "print(_eryx_host.wait(b'{\"calls\":[{\"id\":1,\"name\":\"size\",\"args\":{\"data\":['\n"
        "                      + b'0, ' * 12_000_000 + b'0]}}],\"timeout\":null}').decode())\n"
        "try:\n"
        "    await size(data=[0] * 12_000_000)\n"
        "except CallbackError as e:\n"
        "    print(e.kind, e)\n",
        ERYX_OK);
    long grown_mb = (peak_rss_kb() - before) / 1024;
    CHECK_CONTAINS(r->out, "\"error\":\"request to the host too large: 36000");
    CHECK_CONTAINS(r->out, "the limit is 8 MiB)\"}\n");
    CHECK_CONTAINS(r->out, "\ninvalid_arguments the arguments of 'size' are 36000010 bytes of "
                           "JSON; the limit is 4 MiB\n");
    CHECK_INT(handler_calls, 0);
    if (grown_mb >= 600)
        fprintf(stderr, "peak RSS grew by %ld MB\n", grown_mb);
    CHECK(grown_mb < 600);
    eryx_result_free(r);
    /* The sandbox goes on. */
    r = run_expect(sb, "print(await size(data='ok'))", ERYX_OK);
    CHECK_STR(r->out, "13\n");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* One call over 4 MiB fails alone, at its await; the others go through. */
TEST_CASE(test_oversized_call)
{
    eryx_sandbox *sb = new_sandbox(0);
    handler_calls = 0;
    eryx_result *r = run_expect(
        sb,
        "import asyncio\n"
        "big, small = await asyncio.gather(size(data='x' * 5_000_000), size(data='y'),\n"
        "                                  return_exceptions=True)\n"
        "print(type(big).__name__, big.kind, small)\n"
        "print(big)\n"
        "print(await size(data='z' * 3_000_000))\n",
        ERYX_OK);
    CHECK_STR(r->out, "CallbackError invalid_arguments 12\n"
                      "the arguments of 'size' are 5000012 bytes of JSON; the limit is 4 MiB\n"
                      "3000011\n");
    CHECK_INT(handler_calls, 2);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* Requests of any other shape than the glue's are refused. */
TEST_CASE(test_wrong_shapes)
{
    eryx_sandbox *sb = new_sandbox(0);
    eryx_result *r = run_expect(
        sb,
        "import _eryx_host, json\n"
        "bad = [b'', b'[]', b'{}', b'null', b'{\"calls\": {}}',\n"
        "       b'{\"calls\": [], \"timeout\": 1, \"extra\": 1}',\n"
        "       b'{\"calls\": [], \"calls\": [], \"timeout\": 1}',\n"
        "       b'{\"calls\": [{\"id\": -1, \"name\": \"size\", \"args\": {}}]}',\n"
        "       b'{\"calls\": [{\"id\": 1.5, \"name\": \"size\", \"args\": {}}]}',\n"
        "       b'{\"calls\": [{\"id\": 1, \"name\": \"size\", \"args\": []}]}',\n"
        "       b'{\"calls\": [{\"id\": 1, \"name\": \"size\"}]}',\n"
        "       b'{\"calls\": [{\"id\": 1, \"name\": \"size\", \"args\": {}, \"x\": 0}]}',\n"
        "       b'{\"calls\": [], \"timeout\": \"soon\"}',\n"
        "       b'{\"calls\": [], \"timeout\": 1} trailing',\n"
        "       b'{\"calls\": [{\"id\": 1, \"name\": \"si\\\\u0000ze\", \"args\": {}}]}',\n"
        "       b'{\"calls\": [{\"id\": 1, \"name\": \"size\", \"args\": {\"\\\\u0000\": 1}}]}',\n"
        "       b'{\"calls\": [{\"id\": 1, \"name\": \"size\", \"args\": {\"d\": ' + b'[' * 600\n"
        "       + b']' * 600 + b'}}]}']\n"
        "print(sum(json.loads(_eryx_host.wait(b)).get('error', '').startswith(\n"
        "    'malformed request') for b in bad), len(bad))\n",
        ERYX_OK);
    CHECK_STR(r->out, "17 17\n");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* Every case: a runtime of its own. */
static void setup(void)
{
    REQUIRE(eryx_runtime_new(NULL, &rt) == ERYX_OK);
}

static void teardown(void)
{
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
}

TEST_MAIN_WITH(setup, teardown)
