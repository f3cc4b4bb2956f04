/* Running code: output, exceptions, exits, persistence, hostile input. */
#include <errno.h>

#include <eryx.h>

#include "../check.h"

static eryx_runtime *rt;

static int run(eryx_sandbox *sb, const char *code, eryx_result **res)
{
    return eryx_sandbox_run(sb, code, strlen(code), res);
}

static eryx_sandbox *new_sandbox(void)
{
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(rt, NULL, &sb);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_sandbox_new: %s: %s\n", eryx_errstr(rc), eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK && sb);
    return sb;
}

/* The sandbox of the running case, freed by teardown. */
static eryx_sandbox *case_sb;

static eryx_sandbox *case_sandbox(void)
{
    case_sb = new_sandbox();
    return case_sb;
}

TEST_CASE(test_hello)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "print('hello')", &r), ERYX_OK);
    CHECK_STR(r->out, "hello\n");
    CHECK_INT(r->out_len, 6);
    CHECK_STR(r->err, "");
    CHECK_INT(r->exit_code, 0);
    CHECK_INT(r->exited, 0);
    CHECK(r->exc_type == NULL);
    CHECK(r->duration_ns > 0);
    CHECK(r->memory_bytes >= 20u << 20);
    eryx_result_free(r);
}

TEST_CASE(test_stdout_stderr)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n"
                      "sys.stdout.write('more')", &r), ERYX_OK);
    CHECK_STR(r->out, "out\nmore");
    CHECK_STR(r->err, "err\n");
    eryx_result_free(r);
}

TEST_CASE(test_exception)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "print('before')\ndef f():\n    raise ValueError('bad value')\nf()", &r),
              ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->out, "before\n");
    CHECK_STR(r->exc_type, "ValueError");
    CHECK_STR(r->exc_message, "bad value");
    CHECK_CONTAINS(r->traceback, "Traceback (most recent call last):");
    CHECK_CONTAINS(r->traceback, "File \"<string>\", line 4, in <module>");
    CHECK_CONTAINS(r->traceback, "line 3, in f");
    CHECK_CONTAINS(r->traceback, "ValueError: bad value");
    CHECK(strstr(r->traceback, "_eryx") == NULL); /* our glue stays hidden */
    CHECK_INT(r->exit_code, 1);
    eryx_result_free(r);

    CHECK_INT(run(sb, "import json\njson.loads('{')", &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "json.decoder.JSONDecodeError");
    CHECK_INT(r->exc_message_len, strlen(r->exc_message));
    CHECK_INT(r->traceback_len, strlen(r->traceback));
    eryx_result_free(r);

    /* An exception's text may hold NULs: the lengths carry all of it. */
    CHECK_INT(run(sb, "raise ValueError('x\\0y')", &r), ERYX_PYTHON_EXCEPTION);
    CHECK_INT(r->exc_message_len, 3);
    CHECK(memcmp(r->exc_message, "x\0y", 4) == 0);
    static const char tail[] = "ValueError: x\0y\n";
    CHECK(r->traceback_len > sizeof tail - 1 && r->traceback[r->traceback_len] == '\0');
    CHECK(memcmp(r->traceback + r->traceback_len - (sizeof tail - 1), tail, sizeof tail - 1) == 0);
    eryx_result_free(r);

    CHECK_INT(run(sb, "x = (", &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "SyntaxError");
    eryx_result_free(r);
}

static void check_exit(eryx_sandbox *sb, const char *code, int status, const char *err)
{
    eryx_result *r;
    CHECK_INT(run(sb, code, &r), ERYX_OK);
    CHECK_INT(r->exited, 1);
    CHECK_INT(r->exit_code, status);
    CHECK_STR(r->err, err);
    eryx_result_free(r);
}

TEST_CASE(test_system_exit)
{
    eryx_sandbox *sb = case_sandbox();
    check_exit(sb, "import sys; sys.exit()", 0, "");
    check_exit(sb, "import sys; sys.exit(0)", 0, "");
    check_exit(sb, "import sys; sys.exit(3)", 3, "");
    check_exit(sb, "raise SystemExit(255)", 255, "");
    check_exit(sb, "import sys; sys.exit('fatal: no input')", 1, "fatal: no input\n");
    check_exit(sb, "exit(4)", 4, "");
}

TEST_CASE(test_persistence)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "x = 42\ndef double(v):\n    return v * 2", &r), ERYX_OK);
    eryx_result_free(r);
    CHECK_INT(run(sb, "print(double(x))", &r), ERYX_OK);
    CHECK_STR(r->out, "84\n");
    eryx_result_free(r);
}

TEST_CASE(test_unicode_and_bytes)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "s = 'héllo wörld ✓ 🐍'\nprint(s, len(s))", &r), ERYX_OK);
    CHECK_STR(r->out, "héllo wörld ✓ 🐍 15\n");
    eryx_result_free(r);

    /* Non-UTF-8 output arrives byte for byte, NULs included. */
    CHECK_INT(run(sb, "import sys\nsys.stdout.buffer.write(b'\\xff\\x00\\xfe')", &r), ERYX_OK);
    CHECK_INT(r->out_len, 3);
    CHECK(memcmp(r->out, "\xff\x00\xfe", 3) == 0);
    eryx_result_free(r);

    /* Invalid UTF-8 and NUL bytes in source are Python errors, not crashes. */
    static const char bad_utf8[] = "print('\xff\xfe')";
    CHECK_INT(eryx_sandbox_run(sb, bad_utf8, sizeof bad_utf8 - 1, &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "SyntaxError");
    eryx_result_free(r);
    static const char with_nul[] = "print(1)\0print(2)";
    CHECK_INT(eryx_sandbox_run(sb, with_nul, sizeof with_nul - 1, &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "SyntaxError");
    CHECK_CONTAINS(r->exc_message, "null bytes");
    eryx_result_free(r);
}

TEST_CASE(test_large_output)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "import sys\nfor i in range(100000):\n    print(i)", &r), ERYX_OK);
    CHECK_INT(r->out_len, 588890);
    CHECK(strncmp(r->out, "0\n1\n2\n", 6) == 0);
    CHECK(strcmp(r->out + r->out_len - 6, "99999\n") == 0);
    CHECK_INT(r->out_truncated, 0);
    eryx_result_free(r);
    /* Past the 10 MiB default cap: truncated, and the run still completes. */
    CHECK_INT(run(sb, "import sys\nchunk = 'x' * 1048576\nfor i in range(12):\n"
                      "    sys.stdout.write(chunk)\nprint('done', file=sys.stderr)", &r), ERYX_OK);
    static const char marker[] = "\n[eryx: output truncated at the 10485760-byte limit]\n";
    CHECK_INT(r->out_len, (10u << 20) + sizeof marker - 1);
    CHECK(strcmp(r->out + (10u << 20), marker) == 0);
    CHECK_INT(r->out_truncated, 1);
    /* stdout took the whole budget: stderr is cut too, with its marker. */
    CHECK_STR(r->err, "\n[eryx: output truncated at the 10485760-byte limit]\n");
    CHECK_INT(r->err_truncated, 1);
    eryx_result_free(r);
}

TEST_CASE(test_argv_stdin_module)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    eryx_run_options o;
    eryx_run_options_default(&o);
    const char *argv[] = {"prog.py", "a", "b c", NULL};
    o.argv = argv;
    o.filename = "prog.py";
    o.stdin_data = "line1\nline2\n";
    o.stdin_len = 12;
    const char *code = "import sys\nprint(sys.argv)\nprint(sys.stdin.read().split())\n"
                       "print(__file__)\n1/0";
    CHECK_INT(eryx_sandbox_run_ex(sb, code, strlen(code), &o, &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->out, "['prog.py', 'a', 'b c']\n['line1', 'line2']\nprog.py\n");
    CHECK_CONTAINS(r->traceback, "File \"prog.py\", line 5");
    eryx_result_free(r);

    eryx_run_options_default(&o);
    o.mode = ERYX_RUN_MODULE;
    const char *margv[] = {"json.tool", "--compact", NULL};
    o.argv = margv;
    o.stdin_data = "{\"a\": [1, 2]}";
    o.stdin_len = strlen(o.stdin_data);
    CHECK_INT(eryx_sandbox_run_ex(sb, "json.tool", 9, &o, &r), ERYX_OK);
    CHECK_STR(r->out, "{\"a\":[1,2]}\n");
    eryx_result_free(r);

    CHECK_INT(eryx_sandbox_run_ex(sb, "no_such_module", 14, &o, &r), ERYX_OK);
    CHECK_INT(r->exit_code, 1);
    CHECK_CONTAINS(r->err, "No module named no_such_module");
    eryx_result_free(r);

    /* A run reads a line of its stdin, leaving the rest buffered: nothing of
     * it reaches the next runs, with or without stdin of their own (runs
     * without keep their stdin object, runs with get a new one). */
    eryx_run_options_default(&o);
    o.stdin_data = "first\nleft over\n";
    o.stdin_len = strlen(o.stdin_data);
    CHECK_INT(eryx_sandbox_run_ex(sb, "print(input())", 14, &o, &r), ERYX_OK);
    CHECK_STR(r->out, "first\n");
    eryx_result_free(r);
    eryx_run_options_default(&o);
    const char *rd = "import sys\nprint(repr(sys.stdin.read()))\nquiet = sys.stdin";
    for (int i = 0; i < 2; i++) {
        CHECK_INT(eryx_sandbox_run_ex(sb, rd, strlen(rd), &o, &r), ERYX_OK);
        CHECK_STR(r->out, "''\n");
        eryx_result_free(r);
    }
    o.stdin_data = "new\n";
    o.stdin_len = 4;
    const char *rd2 = "print(repr(sys.stdin.read()), sys.stdin is quiet)";
    CHECK_INT(eryx_sandbox_run_ex(sb, rd2, strlen(rd2), &o, &r), ERYX_OK);
    CHECK_STR(r->out, "'new\\n' False\n");
    eryx_result_free(r);
    eryx_run_options_default(&o);
    CHECK_INT(eryx_sandbox_run_ex(sb, rd, strlen(rd), &o, &r), ERYX_OK);
    CHECK_STR(r->out, "''\n");
    eryx_result_free(r);
}

/* Streams the program closed or replaced with something that cannot say
 * whether it is closed (no `closed`, or one that raises): the next run
 * gets fresh ones. Every later run of the session failed with
 * ERYX_INTERNAL ("bad request: AttributeError") on the second kind, and
 * on an object put in place of sys.__stdout__ too (no line_buffering):
 * that one is the user's and stays (it swallows the output). */
TEST_CASE(test_replaced_streams)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    static const char *const spoil[] = {
        "import sys\nsys.stdout.close()",
        "import sys\nclass W:\n    def write(self, s): return len(s)\n"
        "    def flush(self): pass\nsys.stdout = W()\nsys.stderr = W()",
        "import sys\nclass C:\n    @property\n    def closed(self): raise ValueError\n"
        "    def write(self, s): return len(s)\n    def flush(self): pass\nsys.stdout = C()",
        "import sys\nsys.stdout = None",
        "import sys\nclass K:\n    @property\n    def closed(self): raise SystemExit\n"
        "    def write(self, s): return len(s)\n    def flush(self): pass\nsys.stdout = K()",
        "import sys\nclass B:\n    closed = False\n    def write(self, s): return len(s)\n"
        "    def flush(self): pass\nsys.stdout = sys.__stdout__ = B()",
    };
    size_t n = sizeof spoil / sizeof spoil[0];
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(run(sb, spoil[i], &r), ERYX_OK);
        eryx_result_free(r);
        CHECK_INT(run(sb, "import sys\nprint('out')\nprint('err', file=sys.stderr)", &r),
                  ERYX_OK);
        CHECK_STR(r ? r->out : "", i == n - 1 ? "" : "out\n");
        CHECK_STR(r ? r->err : "", "err\n");
        eryx_result_free(r);
    }
}

/* eryx_run_options.stdin_read: what the program reads after stdin_data,
 * as it reads. */
typedef struct feed {
    const char *const *parts; /* NULL: "nothing yet" (EAGAIN); "": the end */
    size_t next, calls, max_calls;
    int fail_errno;           /* fail with this instead */
} feed;

static long feed_read(void *ud, void *buf, size_t cap)
{
    feed *f = ud;
    f->calls++;
    if (f->fail_errno || f->calls > f->max_calls) {
        errno = f->fail_errno ? f->fail_errno : EAGAIN;
        return -1;
    }
    const char *part = f->parts[f->next++];
    if (!part) {
        errno = EAGAIN;
        return -1;
    }
    size_t n = strlen(part) < cap ? strlen(part) : cap;
    memcpy(buf, part, n);
    return (long)n;
}

TEST_CASE(test_stdin_read)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    eryx_run_options o;
    /* The bytes first, then the reader's parts as they come ("nothing
     * yet" is asked again); after its end, no more calls. */
    static const char *const parts[] = {"ab\n", NULL, NULL, "cd\n", ""};
    feed f = {parts, 0, 0, 100, 0};
    eryx_run_options_default(&o);
    o.stdin_data = "x\n";
    o.stdin_len = 2;
    o.stdin_read = feed_read;
    o.stdin_user_data = &f;
    const char *code = "import sys\nprint(repr(input()))\nprint(repr(sys.stdin.read()))\n"
                       "print(repr(sys.stdin.read()))";
    CHECK_INT(eryx_sandbox_run_ex(sb, code, strlen(code), &o, &r), ERYX_OK);
    CHECK_STR(r->out, "'x'\n'ab\\ncd\\n'\n''\n");
    CHECK_INT(f.calls, 5);
    eryx_result_free(r);
    /* A program that does not read does not call it. */
    f = (feed){parts, 0, 0, 100, 0};
    CHECK_INT(eryx_sandbox_run_ex(sb, "print(1)", 8, &o, &r), ERYX_OK);
    CHECK_INT(f.calls, 0);
    eryx_result_free(r);
    /* A reader that fails: the program's read fails with EIO. */
    f = (feed){parts, 0, 0, 100, EBADF};
    o.stdin_data = NULL;
    o.stdin_len = 0;
    const char *fails = "import sys\ntry:\n    sys.stdin.read()\nexcept OSError as e:\n"
                        "    print(e.errno)";
    CHECK_INT(eryx_sandbox_run_ex(sb, fails, strlen(fails), &o, &r), ERYX_OK);
    CHECK_STR(r->out, "29\n");
    eryx_result_free(r);
    /* Input that never comes: the time limit still acts, the sandbox
     * lives, and the next run (without a reader) reads nothing. */
    f = (feed){parts, 0, 0, 0, 0};
    o.timeout_ns = 300000000u;
    const char *waits = "import sys\nsys.stdin.read()";
    CHECK_INT(eryx_sandbox_run_ex(sb, waits, strlen(waits), &o, &r), ERYX_TIMEOUT);
    CHECK(f.calls > 1);
    CHECK_INT(eryx_sandbox_is_dead(sb), 0);
    eryx_result_free(r);
    CHECK_INT(run(sb, "import sys\nprint(repr(sys.stdin.read()))", &r), ERYX_OK);
    CHECK_STR(r->out, "''\n");
    eryx_result_free(r);
}

/* The guest sees only its own file tree and nothing of the host's. */
TEST_CASE(test_hostile_filesystem)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "open('/etc/passwd')", &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "FileNotFoundError");
    eryx_result_free(r);
    CHECK_INT(run(sb, "open('/tmp/../../../../etc/passwd')", &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "FileNotFoundError");
    eryx_result_free(r);
    CHECK_INT(run(sb, "import os\nprint(sorted(os.listdir('/')))", &r), ERYX_OK);
    CHECK_STR(r->out, "['tmp', 'usr']\n");
    eryx_result_free(r);
    CHECK_INT(run(sb, "import os\nprint(dict(os.environ))", &r), ERYX_OK);
    CHECK_STR(r->out, "{}\n");
    eryx_result_free(r);
    CHECK_INT(run(sb, "open('/usr/lib/python3.13/os.pyc', 'wb')", &r), ERYX_PYTHON_EXCEPTION);
    CHECK(r->exc_type && (strcmp(r->exc_type, "OSError") == 0 ||
                          strcmp(r->exc_type, "PermissionError") == 0));
    eryx_result_free(r);
    /* /tmp is private and writable. */
    CHECK_INT(run(sb, "with open('/tmp/f.txt', 'w') as f: f.write('data')\n"
                      "print(open('/tmp/f.txt').read())", &r), ERYX_OK);
    CHECK_STR(r->out, "data\n");
    eryx_result_free(r);
}

TEST_CASE(test_recursion_and_memory)
{
    eryx_sandbox *sb = case_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "def f(n): return f(n + 1)\nf(0)", &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "RecursionError");
    eryx_result_free(r);
    CHECK_INT(run(sb, "x = bytearray(10**9)", &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "MemoryError");
    eryx_result_free(r);
    CHECK_INT(run(sb, "print('still alive')", &r), ERYX_OK);
    CHECK_STR(r->out, "still alive\n");
    eryx_result_free(r);
}

TEST_CASE(test_os_exit)
{
    eryx_sandbox *sb = new_sandbox();
    eryx_result *r;
    CHECK_INT(run(sb, "import os\nprint('bye', flush=True)\nos._exit(7)", &r), ERYX_OK);
    CHECK_INT(r->exited, 1);
    CHECK_INT(r->exit_code, 7);
    CHECK_STR(r->out, "bye\n");
    eryx_result_free(r);
    r = (eryx_result *)1;
    CHECK_INT(run(sb, "print(1)", &r), ERYX_DEAD);
    CHECK(r == NULL);
    CHECK_CONTAINS(eryx_errmsg(sb), "dead");
    eryx_sandbox_free(sb);
}

/* Two sandboxes share nothing. */
TEST_CASE(test_isolation)
{
    eryx_sandbox *a = new_sandbox(), *b = new_sandbox();
    eryx_result *r;
    CHECK_INT(run(a, "secret = 'a'\nopen('/tmp/x', 'w').write('a')", &r), ERYX_OK);
    eryx_result_free(r);
    CHECK_INT(run(b, "import os\nprint('secret' in globals(), os.path.exists('/tmp/x'))", &r),
              ERYX_OK);
    CHECK_STR(r->out, "False False\n");
    eryx_result_free(r);
    eryx_sandbox_free(a);
    eryx_sandbox_free(b);
}

static void setup(void)
{
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_runtime_new: %s: %s\n", eryx_errstr(rc), eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK);
}

static void teardown(void)
{
    eryx_sandbox_free(case_sb);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
}

TEST_MAIN_WITH(setup, teardown)
