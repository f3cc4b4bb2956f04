/* Sandboxes from the runtime's image; sessions: reset, fork, save, load. */
#include <eryx.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "../check.h"

static eryx_runtime *rt;

static eryx_sandbox *new_sandbox(const eryx_sandbox_config *cfg)
{
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(rt, cfg, &sb);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_sandbox_new: %s\n", eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK);
    return sb;
}

/* Runs code that must succeed; returns its stdout (malloc'd). */
static char *out_of(eryx_sandbox *sb, const char *code)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    if (rc != ERYX_OK)
        fprintf(stderr, "run %s: %s %s\n", eryx_errstr(rc), eryx_errmsg(sb),
                r && r->traceback ? r->traceback : "");
    CHECK_INT(rc, ERYX_OK);
    char *out = strdup(r && r->out ? r->out : "");
    eryx_result_free(r);
    return out;
}

static void check_out(eryx_sandbox *sb, const char *code, const char *want)
{
    char *out = out_of(sb, code);
    CHECK_STR(out, want);
    free(out);
}

TEST_CASE(test_fresh_from_image)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    const char *env[] = {"GREETING=hello", "EMPTY=", "PYTHONPATH=/lib/a::/lib/b", NULL};
    cfg.env = env;
    eryx_sandbox *a = new_sandbox(&cfg), *b = new_sandbox(NULL);

    /* Common modules are loaded, but the user's namespace is clean. */
    check_out(a, "m = __import__('sys').modules\nprint('json' in m, 'asyncio' in m, "
                 "'json' in globals(), sorted(k for k in globals() if not k.startswith('__') "
                 "and k != 'm'))",
              "True True False ['CallbackError', 'invoke', 'list_callbacks']\n");
    check_out(a, "import os\nprint(os.environ.get('GREETING'), repr(os.environ['EMPTY']))",
              "hello ''\n");
    check_out(b, "import os\nprint(dict(os.environ))", "{}\n");
    /* PYTHONPATH's directories go first on sys.path, as in python. */
    check_out(a, "import sys\nprint(sys.path[:3])", "['/lib/a', '/lib/b', '/usr/lib/python3.13']\n");
    check_out(b, "import sys\nprint(sys.path)", "['/usr/lib/python3.13']\n");
    /* Fresh entropy in each sandbox made from one image. */
    char *ra = out_of(a, "import random, os, uuid\nprint(random.random(), os.urandom(8).hex(), "
                         "uuid.uuid4())");
    char *rb = out_of(b, "import random, os, uuid\nprint(random.random(), os.urandom(8).hex(), "
                         "uuid.uuid4())");
    CHECK(strlen(ra) > 20);
    CHECK(strcmp(ra, rb) != 0);
    char *ra1 = strdup(ra), *rb1 = strdup(rb);
    *strchr(ra1, ' ') = '\0';
    *strchr(rb1, ' ') = '\0';
    CHECK(strcmp(ra1, rb1) != 0); /* random.random() alone differs too */
    free(ra), free(rb), free(ra1), free(rb1);
    /* Nothing one did is visible to the other. */
    check_out(a, "secret = 1\nopen('/tmp/a', 'w').write('x')", "");
    check_out(b, "import os\nprint('secret' in globals(), os.path.exists('/tmp/a'))",
              "False False\n");
    /* The image's objects are immortal; the sandbox's own are counted, and
     * an image module dropped and imported again works. */
    check_out(b, "import sys, json\nx = object()\n"
                 "print(sys.getrefcount(json) > 10**8, sys.getrefcount(json.dumps) > 10**8, "
                 "sys.getrefcount(x))\n"
                 "del sys.modules['json'], json\nimport json\nprint(json.dumps([1]))",
              "True True 2\n[1]\n");
    eryx_sandbox_free(a);
    eryx_sandbox_free(b);
}

TEST_CASE(test_session_and_reset)
{
    eryx_sandbox *sb = new_sandbox(NULL);
    check_out(sb, "x = 42\ndef twice(v):\n    return v * 2\nimport fractions", "");
    check_out(sb, "print(twice(x), fractions.Fraction(1, 3))", "84 1/3\n");
    CHECK_INT(eryx_sandbox_run_count(sb), 2);
    /* clear: the user's names go, loaded modules and /tmp stay. */
    check_out(sb, "open('/tmp/keep', 'w').write('k')", "");
    CHECK_INT(eryx_sandbox_clear(sb), ERYX_OK);
    check_out(sb, "import sys, os\nprint('x' in globals(), 'fractions' in sys.modules, "
                  "os.path.exists('/tmp/keep'))", "False True True\n");
    CHECK_INT(eryx_sandbox_reset(sb), ERYX_OK);
    CHECK_INT(eryx_sandbox_run_count(sb), 0);
    check_out(sb, "print('x' in globals(), 'twice' in globals())", "False False\n");
    /* After heavy use (modules patched, memory grown by 64 MiB, a module
     * imported) a reset gives what a new sandbox has: the same modules,
     * the same globals, an unpatched json, the memory size of the image. */
    const char *probe = "import sys, json\nprint(sorted(sys.modules) == m0, sorted(set(globals()) "
                        "- {'sys', 'json', 'm0', 'g0'}) == g0, json.dumps([1]))";
    eryx_sandbox *ref = new_sandbox(NULL);
    char *mods = out_of(ref, "import sys\nprint(repr(sorted(sys.modules)))");
    char *names = out_of(ref, "print(repr(sorted(set(globals()) - {'sys'})))");
    eryx_sandbox_free(ref);
    for (int round = 0; round < 3; round++) {
        check_out(sb, "import json, fractions\njson.dumps = lambda *a: 'patched'\n"
                      "big = bytearray(64 << 20)\nbig[::4096] = b'x' * len(big[::4096])", "");
        eryx_result *rr = NULL;
        CHECK_INT(eryx_sandbox_run(sb, "pass", 4, &rr), ERYX_OK);
        uint64_t grown = rr->memory_bytes;
        eryx_result_free(rr);
        CHECK_INT(eryx_sandbox_reset(sb), ERYX_OK);
        size_t n = strlen(mods) + strlen(names) + 64;
        char *code = malloc(n + strlen(probe));
        REQUIRE(code);
        snprintf(code, n + strlen(probe), "m0 = %.*s\ng0 = %.*s\n%s",
                 (int)strlen(mods) - 1, mods, (int)strlen(names) - 1, names, probe);
        check_out(sb, code, "True True [1]\n");
        free(code);
        CHECK_INT(eryx_sandbox_run(sb, "pass", 4, &rr), ERYX_OK);
        CHECK(rr->memory_bytes + (48u << 20) <= grown);
        eryx_result_free(rr);
        CHECK_INT(eryx_sandbox_reset(sb), ERYX_OK);
    }
    free(mods);
    free(names);
    /* A dead sandbox comes back with a reset. */
    eryx_result *r = NULL;
    const char *code = "import os\nos._exit(3)";
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_OK);
    eryx_result_free(r);
    CHECK_INT(eryx_sandbox_is_dead(sb), 1);
    CHECK_INT(eryx_sandbox_reset(sb), ERYX_OK);
    CHECK_INT(eryx_sandbox_is_dead(sb), 0);
    check_out(sb, "print('alive')", "alive\n");
    eryx_sandbox_free(sb);
}

TEST_CASE(test_fork)
{
    eryx_sandbox *parent = new_sandbox(NULL);
    check_out(parent, "data = list(range(5))\nopen('/tmp/f', 'w').write('parent')", "");
    eryx_sandbox *child = NULL;
    CHECK_INT(eryx_sandbox_fork(parent, &child), ERYX_OK);
    REQUIRE(child != NULL);
    check_out(child, "print(data, open('/tmp/f').read())", "[0, 1, 2, 3, 4] parent\n");
    check_out(child, "data.append(99)\nopen('/tmp/f', 'w').write('child')", "");
    check_out(parent, "print(data, open('/tmp/f').read())", "[0, 1, 2, 3, 4] parent\n");
    check_out(child, "print(data[-1], open('/tmp/f').read())", "99 child\n");
    CHECK_INT(eryx_sandbox_run_count(child), 4);
    /* The child outlives its parent. */
    eryx_sandbox_free(parent);
    check_out(child, "print(len(data))", "6\n");
    eryx_sandbox_free(child);
}

static eryx_sandbox *fork_of(eryx_sandbox *sb)
{
    eryx_sandbox *child = NULL;
    int rc = eryx_sandbox_fork(sb, &child);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_sandbox_fork: %s\n", eryx_errmsg(sb));
    REQUIRE(rc == ERYX_OK && child != NULL);
    return child;
}

/* Forks of an unchanged state share one capture of it (and a sandbox just
 * mapped from an image forks from that image): each must still see exactly
 * the state at its fork, whatever ran since in its parent or siblings. */
TEST_CASE(test_fork_shared_base)
{
    eryx_sandbox *parent = new_sandbox(NULL);
    check_out(parent, "data = [1]", "");
    eryx_sandbox *c1 = fork_of(parent), *c2 = fork_of(parent);
    check_out(c1, "data.append('c1')\nprint(data)", "[1, 'c1']\n");
    check_out(c2, "print(data)", "[1]\n");
    check_out(parent, "print(data)\ndata.append(2)", "[1]\n");
    eryx_sandbox *c3 = fork_of(parent);
    eryx_sandbox *c4 = fork_of(c3); /* c3 has not run: it is its image */
    check_out(c3, "data.append('c3')", "");
    check_out(c4, "print(data)", "[1, 2]\n");
    check_out(parent, "print(data)", "[1, 2]\n");
    eryx_sandbox_free(c4);
    eryx_sandbox_free(c3);
    eryx_sandbox_free(c2);
    eryx_sandbox_free(c1);
    /* After a reset the memory is the runtime image again. */
    CHECK_INT(eryx_sandbox_reset(parent), ERYX_OK);
    eryx_sandbox *c5 = fork_of(parent);
    check_out(c5, "print('data' in globals())", "False\n");
    check_out(parent, "print('data' in globals())", "False\n");
    eryx_sandbox_free(c5);
    eryx_sandbox_free(parent);

    /* A fork of a sandbox that never ran still gets its setup. */
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    const char *env[] = {"GREETING=forked", NULL};
    cfg.env = env;
    eryx_sandbox *fresh = new_sandbox(&cfg);
    eryx_sandbox *c6 = fork_of(fresh);
    const char *code = "import os, random\nprint(os.environ.get('GREETING'))\n"
                       "print(random.random())";
    char *a = out_of(c6, code), *b = out_of(fresh, code);
    CHECK(strncmp(a, "forked\n", 7) == 0);
    CHECK(strncmp(b, "forked\n", 7) == 0);
    CHECK(strcmp(a, b) != 0); /* each reseeded */
    free(a);
    free(b);
    eryx_sandbox_free(c6);
    eryx_sandbox_free(fresh);
}

static void write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, data, n) == (ssize_t)n);
    close(fd);
}

static void expect_load_refused(const char *path, const char *why)
{
    eryx_sandbox *sb = (eryx_sandbox *)1;
    CHECK_INT(eryx_sandbox_load(rt, NULL, path, &sb), ERYX_INVALID);
    CHECK(sb == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), why);
}

TEST_CASE(test_save_load)
{
    char dir[] = "/tmp/eryx-test-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/session.img", dir);
    snprintf(bad, sizeof bad, "%s/bad.img", dir);
    eryx_sandbox *sb = new_sandbox(NULL);
    check_out(sb, "class Point:\n    def __init__(self, x): self.x = x\n"
                  "p = Point(7)\nhistory = ['a', 'b']\nblob = bytearray(40 * 2**20)", "");
    CHECK_INT(eryx_sandbox_save(sb, path), ERYX_OK);
    eryx_sandbox_free(sb);

    CHECK_INT(eryx_sandbox_load(rt, NULL, path, &sb), ERYX_OK);
    check_out(sb, "print(p.x, history, type(p).__name__, len(blob))",
              "7 ['a', 'b'] Point 41943040\n");
    CHECK_INT(eryx_sandbox_run_count(sb), 2);
    eryx_sandbox_free(sb);

    /* Files that are not good sessions are refused, never mapped. */
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bytes = malloc((size_t)size);
    REQUIRE(fread(bytes, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    write_file(bad, "hello world, not a session at all", 33);
    expect_load_refused(bad, "not an eryx session");
    write_file(bad, bytes, (size_t)size / 2);
    expect_load_refused(bad, "truncated");
    bytes[size - 100] ^= 0x40;
    write_file(bad, bytes, (size_t)size);
    expect_load_refused(bad, "damaged");
    bytes[size - 100] ^= 0x40;
    memcpy(bytes + 8, "another-build", 13);
    write_file(bad, bytes, (size_t)size);
    expect_load_refused(bad, "another build");
    memcpy(bytes, "ERYXSES2", 8); /* the format before XXH3 checksums */
    write_file(bad, bytes, (size_t)size);
    expect_load_refused(bad, "older eryx");
    free(bytes);
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.max_memory = 32u << 20; /* the session holds more than 40 MiB */
    CHECK_INT(eryx_sandbox_load(rt, &cfg, path, &sb), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "larger than max_memory");
    CHECK_INT(eryx_sandbox_load(rt, NULL, "/nonexistent/x.img", &sb), ERYX_IO);
    unlink(path);
    unlink(bad);
    rmdir(dir);
}

/* The session file's checksum (src/core/session_file.c). */
static uint64_t checksum(const unsigned char *p, size_t n)
{
    return XXH3_64bits(p, n);
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* /tmp and open files travel with a session file: nested directories,
 * binary contents and timestamps, an fd's read position, a file unlinked
 * while open; a host file the loading sandbox cannot see is reported, not
 * invented; a /tmp over the loader's quota and a crafted path outside /tmp
 * (its tree moved to /usr) are refused. */
TEST_CASE(test_save_load_files)
{
    char dir[] = "/tmp/eryx-test-XXXXXX", host[160], path[160];
    REQUIRE(mkdtemp(dir));
    snprintf(host, sizeof host, "%s/host", dir);
    snprintf(path, sizeof path, "%s/files.img", dir);
    REQUIRE(mkdir(host, 0700) == 0);
    eryx_mount m = {0, host, "/data", 1};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    /* valgrind 3.19 does not know openat2(2), which host mounts need: under
     * it (only) the host file part is left out. */
    int with_host = !RUNNING_ON_VALGRIND;
    cfg.mounts = with_host ? &m : NULL;
    cfg.n_mounts = with_host ? 1 : 0;
    eryx_sandbox *sb = new_sandbox(&cfg);
    if (with_host)
        check_out(sb, "with open('/data/h', 'w') as f: f.write('host')\n"
                      "hf = open('/data/h')\n", "");
    check_out(sb,
              "import os\n"
              "os.makedirs('/tmp/a/b/c')\n"
              "with open('/tmp/a/b/c/bin', 'wb') as f: f.write(bytes(range(256)) * 1000)\n"
              "os.utime('/tmp/a/b/c/bin', ns=(1_000_000_000, 2_000_000_000))\n"
              "with open('/tmp/victim', 'w') as f: f.write('v')\n"
              "fd = os.open('/tmp/a/b/c/bin', os.O_RDONLY)\n"
              "assert os.read(fd, 1000) == (bytes(range(256)) * 4)[:1000]\n"
              "os.rename('/tmp/a/b/c/bin', '/tmp/a/moved')\n"
              "orphan = open('/tmp/orphan', 'w+')\n"
              "orphan.write('still here'); orphan.flush()\n"
              "os.unlink('/tmp/orphan')\n",
              "");
    CHECK_INT(eryx_sandbox_save(sb, path), ERYX_OK);
    eryx_sandbox_free(sb);

    /* Loaded without the /data mount. */
    CHECK_INT(eryx_sandbox_load(rt, NULL, path, &sb), ERYX_OK);
    if (with_host)
        CHECK_CONTAINS(eryx_errmsg(sb), "/data/h");
    else
        CHECK_STR(eryx_errmsg(sb), "");
    check_out(sb,
              "print(sorted(os.listdir('/tmp')), os.listdir('/tmp/a/b/c'))\n"
              "st = os.stat('/tmp/a/moved')\n"
              "print(st.st_size, st.st_atime_ns, st.st_mtime_ns)\n"
              "print(os.read(fd, 3) == bytes(range(232, 235)))\n"
              "orphan.seek(0); print(orphan.read())\n",
              "['a', 'victim'] []\n256000 1000000000 2000000000\nTrue\nstill here\n");
    if (with_host)
        check_out(sb, "try:\n    hf.read()\nexcept OSError as e:\n    print(e.errno == 8)\n",
                  "True\n");
    eryx_sandbox_free(sb);

    /* Loaded with a quota /tmp does not fit in. */
    eryx_sandbox_config small;
    eryx_sandbox_config_default(&small);
    small.tmp_quota = 64 * 1024;
    sb = (eryx_sandbox *)1;
    CHECK_INT(eryx_sandbox_load(rt, &small, path, &sb), ERYX_INVALID);
    CHECK(sb == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "tmp_quota");

    /* A path outside /tmp, checksum and all made to look right. */
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(size);
    REQUIRE(bytes && fread(bytes, 1, size, f) == size);
    fclose(f);
    size_t data = size - (size_t)le64(bytes + 72) - (size_t)le64(bytes + 80);
    size_t wasi = size - (size_t)le64(bytes + 80);
    /* The first tree record's path: no prefix shared, 4 bytes, "/tmp"
     * (src/vfs/vfs_persist.c); the others follow from it. */
    static const unsigned char root[] = {0, 0, 0, 0, 4, 0, 0, 0, '/', 't', 'm', 'p'};
    unsigned char *victim = NULL;
    for (size_t i = wasi; i + sizeof root <= size; i++)
        if (memcmp(bytes + i, root, sizeof root) == 0) {
            victim = bytes + i + 8;
            break;
        }
    REQUIRE(victim != NULL);
    memcpy(victim, "/usr", 4);
    uint64_t sum = checksum(bytes + data, size - data);
    for (int i = 0; i < 8; i++)
        bytes[96 + i] = (unsigned char)(sum >> (8 * i));
    write_file(path, bytes, size);
    free(bytes);
    expect_load_refused(path, "malformed");

    unlink(path);
    char h[200];
    snprintf(h, sizeof h, "%s/h", host);
    unlink(h);
    rmdir(host);
    rmdir(dir);
}

static void echo_cb(void *ud, eryx_call *call)
{
    (void)ud;
    eryx_call_reply(call, "\"from b\"", 8);
}

/* Freed sandboxes are kept and handed to the next eryx_sandbox_new
 * (src/core/instance.c, "parked instances"): whatever the first owner did
 * (globals, /tmp, a patched module, 64 MiB more memory, its config, even
 * dying), the next one sees a new sandbox with its own config. */
TEST_CASE(test_recycled_sandbox)
{
    char dir[] = "/tmp/eryx-recycle-XXXXXX";
    REQUIRE(mkdtemp(dir));
    for (int how = 0; how < 3; how++) {
        const char *env_a[] = {"OWNER=a", NULL};
        eryx_mount m = {0, dir, "/data", 1};
        eryx_sandbox_config a_cfg;
        eryx_sandbox_config_default(&a_cfg);
        a_cfg.env = env_a;
        int mount = !RUNNING_ON_VALGRIND;  /* valgrind 3.19 lacks openat2 */
        a_cfg.mounts = mount ? &m : NULL;
        a_cfg.n_mounts = mount ? 1 : 0;
        a_cfg.max_memory = 512u << 20;
        eryx_sandbox *a = new_sandbox(&a_cfg);
        check_out(a, "import json, os, random\nsecret = 'a'\njson.dumps = None\n"
                     "open('/tmp/a_file', 'w').write('a')\nbig = bytearray(64 << 20)\n"
                     "print(os.environ['OWNER'], os.path.isdir('/data'))",
                  mount ? "a True\n" : "a False\n");
        char *ra = out_of(a, "print(random.random())");
        eryx_result *r = NULL;
        if (how == 1) {       /* dies by os._exit */
            CHECK_INT(eryx_sandbox_run(a, "import os\nos._exit(3)", 21, &r), ERYX_OK);
            eryx_result_free(r);
            CHECK_INT(eryx_sandbox_is_dead(a), 1);
        } else if (how == 2) { /* stopped hard in C */
            eryx_run_options o;
            eryx_run_options_default(&o);
            o.timeout_ns = 50u * 1000000u;
            const char *stuck = "import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')";
            CHECK_INT(eryx_sandbox_run_ex(a, stuck, strlen(stuck), &o, &r), ERYX_TIMEOUT);
            eryx_result_free(r);
        }
        eryx_sandbox_free(a);

        static const eryx_callback cb = {0, "who", NULL, NULL, echo_cb, NULL,
                                         ERYX_CALLBACK_INLINE};
        const char *env_b[] = {"OWNER=b", NULL};
        eryx_sandbox_config b_cfg;
        eryx_sandbox_config_default(&b_cfg);
        b_cfg.env = env_b;
        b_cfg.callbacks = &cb;
        b_cfg.n_callbacks = 1;
        b_cfg.max_memory = 48u << 20;
        eryx_sandbox *b = new_sandbox(&b_cfg);
        CHECK_INT(eryx_sandbox_run_count(b), 0);
        CHECK_INT(eryx_sandbox_is_dead(b), 0);
        CHECK_STR(eryx_errmsg(b), "");
        check_out(b, "import json, os, sys\n"
                     "print('secret' in globals(), json.dumps([1]), os.listdir('/tmp'), "
                     "os.environ.get('OWNER'), os.path.exists('/data'), await who(), "
                     "[c['name'] for c in list_callbacks()])",
                  "False [1] [] b False from b ['who']\n");
        char *rb = out_of(b, "import random\nprint(random.random())");
        CHECK(strcmp(ra, rb) != 0);
        eryx_result *rr = NULL;      /* b's own, lower memory limit holds */
        CHECK_INT(eryx_sandbox_run(b, "x = bytearray(64 << 20)", 23, &rr),
                  ERYX_PYTHON_EXCEPTION);
        CHECK_STR(rr->exc_type, "MemoryError");
        eryx_result_free(rr);
        free(ra);
        free(rb);
        eryx_sandbox_free(b);
    }
    rmdir(dir);
}

/* Forks and loads take parked sandboxes, and a fork or a loaded session
 * is parked when freed (mapping the image afresh): whoever gets one next
 * must see only its own state, with its own memory limit. */
TEST_CASE(test_parked_forks)
{
    eryx_sandbox *p = new_sandbox(NULL);
    check_out(p, "import json\nsecret = 'p'\njson.dumps = None\nopen('/tmp/p', 'w').write('p')",
              "");
    eryx_sandbox *c = fork_of(p);
    check_out(c, "secret2 = 'c'\nopen('/tmp/c', 'w').write('c')", "");
    eryx_sandbox_free(c); /* parked, mapping the image afresh */
    eryx_sandbox_free(p); /* parked, restored in place */
    eryx_sandbox *n[3];
    for (int i = 0; i < 3; i++) {
        n[i] = new_sandbox(NULL);
        check_out(n[i], "import json, os\nprint('secret' in globals(), 'secret2' in globals(), "
                        "json.dumps([1]), os.listdir('/tmp'))",
                  "False False [1] []\n");
    }
    for (int i = 0; i < 3; i++)
        eryx_sandbox_free(n[i]);

    eryx_sandbox_config big_cfg, small_cfg;
    eryx_sandbox_config_default(&big_cfg);
    eryx_sandbox_config_default(&small_cfg);
    big_cfg.max_memory = 512u << 20;
    small_cfg.max_memory = 48u << 20;
    eryx_sandbox *big = new_sandbox(&big_cfg);
    check_out(big, "data = bytearray(100 << 20)\ndata[-1] = 7\nopen('/tmp/big', 'w').write('b')",
              "");
    eryx_sandbox *small[4];
    for (int i = 0; i < 4; i++)
        small[i] = new_sandbox(&small_cfg);
    for (int i = 0; i < 4; i++)
        eryx_sandbox_free(small[i]); /* every parked place: a 48 MiB limit */
    eryx_sandbox *child = fork_of(big);
    check_out(child, "import os\nmore = bytearray(100 << 20)\n"
                     "print(data[-1], len(more), os.listdir('/tmp'))",
              "7 104857600 ['big']\n");
    eryx_sandbox_free(child);
    char dir[] = "/tmp/eryx-test-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/big.img", dir);
    CHECK_INT(eryx_sandbox_save(big, path), ERYX_OK);
    eryx_sandbox_free(big);
    eryx_sandbox *loaded = NULL;
    CHECK_INT(eryx_sandbox_load(rt, &big_cfg, path, &loaded), ERYX_OK);
    check_out(loaded, "more = bytearray(100 << 20)\nprint(data[-1], len(more))",
              "7 104857600\n");
    eryx_sandbox_free(loaded);
    /* A small limit holds on a sandbox that last served a big one. */
    eryx_sandbox *s = new_sandbox(&small_cfg);
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(s, "x = bytearray(64 << 20)", 23, &r), ERYX_PYTHON_EXCEPTION);
    CHECK_STR(r->exc_type, "MemoryError");
    eryx_result_free(r);
    eryx_sandbox_free(s);
    unlink(path);
    rmdir(dir);
}

TEST_CASE(test_state_export_import)
{
    eryx_sandbox *a = new_sandbox(NULL), *b = new_sandbox(NULL);
    check_out(a, "import json\nn = 7\nitems = {'k': [1, 2.5, None]}\n"
                 "def area(w, h=2):\n    return w * h * n\n"
                 "class Local: pass\nobj = Local()\nfh = open('/tmp/x', 'w')", "");
    void *data = NULL;
    size_t len = 0;
    char *skipped = NULL;
    CHECK_INT(eryx_sandbox_export_state(a, &data, &len, &skipped), ERYX_OK);
    CHECK(len > 0);
    CHECK_STR(skipped, "[\"Local\", \"fh\", \"obj\"]");
    char *failed = NULL;
    CHECK_INT(eryx_sandbox_import_state(b, data, len, &failed), ERYX_OK);
    CHECK_STR(failed, "[]");
    check_out(b, "print(n, items, area(3))", "7 {'k': [1, 2.5, None]} 42\n");
    eryx_free(failed);
    /* Corrupt bytes are refused inside the sandbox, which goes on. */
    ((unsigned char *)data)[len / 2] ^= 0xff;
    failed = NULL;
    CHECK_INT(eryx_sandbox_import_state(b, "garbage", 7, &failed), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(b), "not an eryx state export");
    check_out(b, "print('fine')", "fine\n");
    eryx_free(data);
    eryx_free(skipped);
    eryx_sandbox_free(a);
    eryx_sandbox_free(b);
    /* The export pickles with the session's own reducers: one that ends
     * the interpreter is the code's doing (ERYX_DEAD), not the glue's
     * (ERYX_INTERNAL, "exported no state", until 2026-12-07). */
    a = new_sandbox(NULL);
    check_out(a, "import copyreg, os\ndef red(x):\n    os._exit(1)\n"
                 "copyreg.pickle(complex, red)\nz = 1j", "");
    data = NULL;
    skipped = NULL;
    CHECK_INT(eryx_sandbox_export_state(a, &data, &len, &skipped), ERYX_DEAD);
    CHECK_CONTAINS(eryx_errmsg(a), "os._exit(1) during the export");
    CHECK(data == NULL && skipped == NULL);
    CHECK(eryx_sandbox_is_dead(a));
    eryx_sandbox_free(a);
    /* SystemExit is caught: the sandbox goes on. */
    a = new_sandbox(NULL);
    check_out(a, "import copyreg, sys\ndef red(x):\n    sys.exit(3)\n"
                 "copyreg.pickle(complex, red)\nz = 1j", "");
    CHECK_INT(eryx_sandbox_export_state(a, &data, &len, &skipped), ERYX_PYTHON_EXCEPTION);
    CHECK_CONTAINS(eryx_errmsg(a), "raised SystemExit(3) during the export");
    CHECK(!eryx_sandbox_is_dead(a));
    check_out(a, "print(z)", "1j\n");
    eryx_sandbox_free(a);
}

/* A runtime without an image: sandboxes boot CPython; no reset or load. */
TEST_CASE(test_no_image)
{
    eryx_runtime_config rc;
    eryx_runtime_config_default(&rc);
    rc.flags = ERYX_RUNTIME_NO_IMAGE;
    eryx_runtime *plain = NULL;
    REQUIRE(eryx_runtime_new(&rc, &plain) == ERYX_OK);
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(plain, NULL, &sb) == ERYX_OK);
    check_out(sb, "x = 5\nprint(x)", "5\n");
    CHECK_INT(eryx_sandbox_reset(sb), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(sb), "ERYX_RUNTIME_NO_IMAGE");
    eryx_sandbox *child = NULL;
    CHECK_INT(eryx_sandbox_fork(sb, &child), ERYX_OK); /* forks need no image */
    check_out(child, "print(x + 1)", "6\n");
    eryx_sandbox_free(child);

    /* Sessions go both ways between runtimes with and without an image
     * (what the eryx command does: it never builds one). */
    char dir[] = "/tmp/eryx-test-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/plain.img", dir);
    check_out(sb, "open('/tmp/note', 'w').write('kept')", "");
    CHECK_INT(eryx_sandbox_save(sb, path), ERYX_OK);
    eryx_sandbox_free(sb);
    sb = NULL;
    CHECK_INT(eryx_sandbox_load(plain, NULL, path, &sb), ERYX_OK);
    check_out(sb, "print(x, open('/tmp/note').read())\nx = 7", "5 kept\n");
    CHECK_INT(eryx_sandbox_save(sb, path), ERYX_OK);
    eryx_sandbox_free(sb);
    CHECK_INT(eryx_sandbox_load(rt, NULL, path, &sb), ERYX_OK);
    check_out(sb, "print(x, open('/tmp/note').read())\ny = 8", "7 kept\n");
    CHECK_INT(eryx_sandbox_save(sb, path), ERYX_OK);
    eryx_sandbox_free(sb);
    CHECK_INT(eryx_sandbox_load(plain, NULL, path, &sb), ERYX_OK);
    check_out(sb, "print(x + y)", "15\n");
    eryx_sandbox_free(sb);
    CHECK_INT(eryx_sandbox_load(plain, NULL, "/nonexistent", &sb), ERYX_IO);
    unlink(path);
    rmdir(dir);
    CHECK_INT(eryx_runtime_free(plain), ERYX_OK);
}

static void setup(void)
{
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_runtime_new: %s\n", eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK);
}

static void teardown(void)
{
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
}

TEST_MAIN_WITH(setup, teardown)
