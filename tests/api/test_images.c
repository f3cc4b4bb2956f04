/*
 * Runtimes with packages, imports and setup code, and runtime images saved
 * to files and loaded (docs/packages.md): real Debian pure-Python packages
 * (python3-jinja2, python3-markupsafe, python3-yaml, python3-attr,
 * python3-tabulate; scripts/install-deps.sh), wheels this test writes
 * with the host's python3 zipfile, bad wheels, setup code that raises or
 * loops, and image files that are forged, truncated or damaged.
 */
#include <eryx.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check.h"

#define DIST "/usr/lib/python3/dist-packages"

static char workdir[256];

static void make_workdir(void)
{
    snprintf(workdir, sizeof workdir, "/tmp/eryx-test-images-XXXXXX");
    REQUIRE(mkdtemp(workdir) != NULL);
}

static void remove_workdir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
    if (workdir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", workdir);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st != 0)
        fprintf(stderr, "command failed (%d): %s\n", st, cmd);
    REQUIRE_INT(st, 0);
}

/* A site-packages directory with copies of Debian's packages (their
 * __pycache__ and markupsafe's C speedups come along: the packer must
 * leave them out). */
static const char *site_dir(void)
{
    static char dir[300];
    snprintf(dir, sizeof dir, "%s/site", workdir);
    sh("mkdir -p '%s' && cp -r " DIST "/jinja2 " DIST "/markupsafe " DIST "/yaml " DIST
       "/_yaml " DIST "/attr " DIST "/attrs " DIST "/tabulate.py '%s'/",
       dir, dir);
    return dir;
}

/* A wheel written by the host's python3: files is a Python dict literal of
 * member name -> text; wheel_meta the WHEEL file's text (None: none). */
static const char *write_wheel(const char *name, const char *files, const char *wheel_meta)
{
    static char path[8][300];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", workdir, name);
    char script[3000];
    snprintf(script, sizeof script,
             "import zipfile, sys\n"
             "files = %s\n"
             "meta = %s\n"
             "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n"
             "    for n, t in sorted(files.items()):\n"
             "        z.writestr(zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0)), t)\n"
             "    if meta is not None:\n"
             "        z.writestr(zipfile.ZipInfo('demo-1.0.dist-info/WHEEL', (2020, 1, 1, 0, "
             "0, 0)), meta)\n",
             files, wheel_meta);
    char spath[320];
    snprintf(spath, sizeof spath, "%s/mkwheel.py", workdir);
    FILE *f = fopen(spath, "w");
    REQUIRE(f != NULL);
    fputs(script, f);
    fclose(f);
    sh("python3 '%s' '%s'", spath, p);
    return p;
}

#define PURE_META "'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'"

static const char *demo_wheel(void)
{
    return write_wheel("demo-1.0-py3-none-any.whl",
                       "{'demo/__init__.py': 'ANSWER = 42\\n', "
                       "'demo/sub.py': 'def twice(x):\\n    return 2 * x\\n', "
                       "'demo-1.0.data/purelib/demo_extra.py': 'EXTRA = \"extra\"\\n', "
                       "'demo-1.0.data/scripts/demo-cli': '#!/bin/sh\\n', "
                       "'demo-1.0.dist-info/METADATA': 'Name: demo\\n'}",
                       PURE_META);
}

/* Runs code in a new sandbox of rt; returns its stdout (malloc'd) or NULL
 * after printing what went wrong. */
static char *run_in(eryx_runtime *rt, const char *code)
{
    eryx_sandbox *sb;
    int rc = eryx_sandbox_new(rt, NULL, &sb);
    if (rc != ERYX_OK) {
        fprintf(stderr, "sandbox_new: %s\n", eryx_errmsg(NULL));
        return NULL;
    }
    eryx_result *r = NULL;
    rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    char *out = NULL;
    if (rc == ERYX_OK)
        out = strdup(r->out);
    else
        fprintf(stderr, "run: %s %s\n", eryx_errstr(rc), r && r->traceback ? r->traceback : "");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    return out;
}

static void check_run(eryx_runtime *rt, const char *code, const char *want)
{
    char *out = run_in(rt, code);
    CHECK(out != NULL);
    if (out)
        CHECK_STR(out, want);
    free(out);
}

static const char *const jinja_imports[] = {"jinja2", "yaml"};

static const char setup_code[] =
    "import jinja2\n"
    "ENV = jinja2.Environment(autoescape=True)\n"
    "def render(name):\n"
    "    return ENV.from_string('<p>{{ n }}</p>').render(n=name)\n"
    "with open('/tmp/from_setup.txt', 'w') as f:\n"
    "    f.write('made at setup')\n";

static int new_runtime(eryx_runtime **rt, const char *site, const char *wheel)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    const char *dirs[] = {site};
    const char *wheels[] = {wheel};
    cfg.site_packages = dirs;
    cfg.n_site_packages = site ? 1 : 0;
    cfg.wheels = wheels;
    cfg.n_wheels = wheel ? 1 : 0;
    cfg.imports = jinja_imports;
    cfg.n_imports = 2;
    cfg.setup_code = setup_code;
    int rc = eryx_runtime_new(&cfg, rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "runtime_new: %s: %s\n", eryx_errstr(rc), eryx_errmsg(NULL));
    return rc;
}

/* What every sandbox of the package runtime must see. */
static const char package_checks[] =
    "import sys\n"
    "print('jinja2' in sys.modules, 'yaml' in sys.modules, 'jinja2' in dir())\n"
    "print(render('<b>'))\n"
    "import markupsafe\n"
    "print(markupsafe.escape.__module__)\n"
    "import yaml\n"
    "print(yaml.__with_libyaml__, yaml.safe_load('a: [1, 2]'))\n"
    "import attr\n"
    "@attr.s\n"
    "class P:\n"
    "    x = attr.ib()\n"
    "print(P(3))\n"
    "import tabulate\n"
    "print(tabulate.tabulate([[1, 2]], headers=['a', 'b'], tablefmt='plain'))\n"
    "try:\n"
    "    import markupsafe._speedups\n"
    "except ImportError as e:\n"
    "    print(type(e).__name__)\n"
    "try:\n"
    "    import yaml._yaml\n"
    "except ImportError as e:\n"
    "    print(type(e).__name__)\n"
    "print(open('/tmp/from_setup.txt').read())\n";

static const char package_want[] = "True True True\n"
                                   "<p>&lt;b&gt;</p>\n"
                                   "markupsafe._native\n"
                                   "False {'a': [1, 2]}\n"
                                   "P(x=3)\n"
                                   "  a    b\n"
                                   "  1    2\n"
                                   "ModuleNotFoundError\n"
                                   "ModuleNotFoundError\n"
                                   "made at setup\n";

TEST_CASE(packages_import_in_every_sandbox)
{
    make_workdir();
    eryx_runtime *rt;
    REQUIRE_INT(new_runtime(&rt, site_dir(), NULL), ERYX_OK);
    /* Twice: each sandbox starts from the image, nothing is unpacked. */
    check_run(rt, package_checks, package_want);
    check_run(rt, package_checks, package_want);
    /* The setup's globals are in __main__; the packages live read-only in
     * the image, at site-packages, after the standard library. */
    check_run(rt,
              "import sys, os\n"
              "print(sys.path[-1], os.path.exists(sys.path[-1] + '/jinja2/__init__.py'))\n"
              "print(sys.path.count(sys.path[-1]))\n"
              "print(sorted(os.listdir(sys.path[-1] + '/markupsafe/__pycache__')))\n"
              "try:\n"
              "    open(sys.path[-1] + '/x.py', 'w')\n"
              "except OSError as e:\n"
              "    import errno\n"
              "    print('refused', errno.errorcode[e.errno])\n",
              "/usr/lib/python3.13/site-packages True\n1\n"
              "['__init__.cpython-313.pyc', '_native.cpython-313.pyc']\nrefused EROFS\n");
    uint64_t bytes = 0;
    CHECK_INT(eryx_runtime_image_size(rt, &bytes), ERYX_OK);
    CHECK(bytes > 1000000);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    remove_workdir();
}

/* Runs code in a new sandbox of rt and saves it as a session at path. */
static void save_after(eryx_runtime *rt, const char *code, const char *path)
{
    eryx_sandbox *sb;
    REQUIRE_INT(eryx_sandbox_new(rt, NULL, &sb), ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_OK);
    eryx_result_free(r);
    CHECK_INT(eryx_sandbox_save(sb, path), ERYX_OK);
    eryx_sandbox_free(sb);
}

/* Runs code in the session at path loaded into rt: it must print want. */
static void check_loaded(eryx_runtime *rt, const char *path, const char *code,
                         const char *want)
{
    eryx_sandbox *sb;
    REQUIRE_INT(eryx_sandbox_load(rt, NULL, path, &sb), ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_OK);
    CHECK_STR(r ? r->out : "", want);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* A session carries its whole memory, sys.path included, into the runtime
 * it is loaded into; the modules it had not imported come from that
 * runtime, its packages too. A session made without packages could not
 * import those of the runtime it was loaded into (its sys.path lacked
 * site-packages) until 2026-12-07. */
TEST_CASE(session_imports_the_packages_of_its_runtime)
{
    make_workdir();
    eryx_runtime *plain, *pkgs;
    REQUIRE_INT(eryx_runtime_new(NULL, &plain), ERYX_OK);
    REQUIRE_INT(new_runtime(&pkgs, site_dir(), NULL), ERYX_OK);
    char plain_ses[300], pkgs_ses[300];
    snprintf(plain_ses, sizeof plain_ses, "%s/plain.session", workdir);
    snprintf(pkgs_ses, sizeof pkgs_ses, "%s/pkgs.session", workdir);
    save_after(plain, "x = 42", plain_ses);
    save_after(pkgs, "y = render('s')", pkgs_ses);
    /* Without packages, into a runtime with: they import, and
     * site-packages is on the path once, after the standard library. */
    check_loaded(pkgs, plain_ses,
                 "import sys, markupsafe, tabulate\n"
                 "print(x, markupsafe.escape('<'), tabulate.__name__)\n"
                 "print(sys.path.count('/usr/lib/python3.13/site-packages'), sys.path[-1])\n",
                 "42 &lt; tabulate\n1 /usr/lib/python3.13/site-packages\n");
    /* With packages, into a runtime without: what it imported lives on in
     * its memory; a package it had not imported is not found. */
    check_loaded(plain, pkgs_ses,
                 "print(y, render('again'))\n"
                 "try:\n"
                 "    import tabulate\n"
                 "except ModuleNotFoundError as e:\n"
                 "    print(e)\n",
                 "<p>s</p> <p>again</p>\nNo module named 'tabulate'\n");
    CHECK_INT(eryx_runtime_free(pkgs), ERYX_OK);
    CHECK_INT(eryx_runtime_free(plain), ERYX_OK);
    remove_workdir();
}

TEST_CASE(wheel_unpacked_at_build)
{
    make_workdir();
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    const char *wheels[] = {demo_wheel()};
    cfg.wheels = wheels;
    cfg.n_wheels = 1;
    static const char *const imports[] = {"demo.sub"};
    cfg.imports = imports;
    cfg.n_imports = 1;
    eryx_runtime *rt;
    int rc = eryx_runtime_new(&cfg, &rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "%s\n", eryx_errmsg(NULL));
    REQUIRE_INT(rc, ERYX_OK);
    check_run(rt,
              "import sys, os\n"
              "print('demo.sub' in sys.modules)\n"
              "import demo, demo.sub, demo_extra\n"
              "print(demo.ANSWER, demo.sub.twice(21), demo_extra.EXTRA)\n"
              "print(sorted(os.listdir(sys.path[-1])))\n",
              "True\n42 42 extra\n['__pycache__', 'demo', 'demo-1.0.dist-info', 'demo_extra.py']\n");
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    remove_workdir();
}

/* Imports in a sandbox that must not compile anything: every module comes
 * from the bytecode the runtime made (docs/packages.md, "Bytecode"), the
 * wheel's own stale __pycache__ file replaced; a module that does not
 * compile fails as before. */
static const char bytecode_checks[] =
    "import builtins, importlib.util, inspect\n"
    "real = builtins.compile\n"
    "def refuse(source, filename, *a, **k):\n"
    "    if str(filename).endswith('.py'):\n"
    "        raise AssertionError('compiled at import: %s' % (filename,))\n"
    "    return real(source, filename, *a, **k)\n"
    "builtins.compile = refuse\n"
    "try:\n"
    "    import jinja2, jinja2.sandbox, jinja2.nativetypes, markupsafe, yaml, attr, attrs\n"
    "    import tabulate, fast, fast.slow, demo\n"
    "finally:\n"
    "    builtins.compile = real\n"
    "print(fast.X, fast.slow.S, demo.ANSWER)\n"
    "with open(fast.slow.__cached__, 'rb') as f:\n"
    "    head = f.read(8)\n"
    "print(head[:4] == importlib.util.MAGIC_NUMBER, int.from_bytes(head[4:], 'little'))\n"
    "print(inspect.getsource(fast).strip())\n"
    "try:\n"
    "    import broken\n"
    "except SyntaxError as e:\n"
    "    print('SyntaxError', e.lineno)\n";

static const char bytecode_want[] = "1 \\d 42\n"
                                    "True 1\n"
                                    "X = 1\n"
                                    "SyntaxError 2\n";

TEST_CASE(imports_load_the_packages_bytecode)
{
    make_workdir();
    const char *site = site_dir();
    sh("mkdir '%s/fast' && printf 'X = 1\\n' > '%s/fast/__init__.py' && "
       "printf 'S = \"\\\\d\"\\n' > '%s/fast/slow.py' && printf 'x = 1\\ndef f(:\\n' > "
       "'%s/broken.py'",
       site, site, site, site);
    const char *wheel = write_wheel("demo-1.0-py3-none-any.whl",
                                    "{'demo/__init__.py': 'ANSWER = 42\\n', "
                                    "'demo/__pycache__/__init__.cpython-313.pyc': 'stale'}",
                                    PURE_META);
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    const char *dirs[] = {site};
    const char *wheels[] = {wheel};
    cfg.site_packages = dirs;
    cfg.n_site_packages = 1;
    cfg.wheels = wheels;
    cfg.n_wheels = 1;
    eryx_runtime *rt;
    int rc = eryx_runtime_new(&cfg, &rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "%s\n", eryx_errmsg(NULL));
    REQUIRE_INT(rc, ERYX_OK);
    check_run(rt, bytecode_checks, bytecode_want);
    /* What the template leaves in /tmp: nothing. */
    check_run(rt, "import os\nprint(os.listdir('/tmp'))\n", "[]\n");
    /* An image file carries the bytecode. */
    char img[300];
    snprintf(img, sizeof img, "%s/bc.img", workdir);
    REQUIRE_INT(eryx_runtime_save_image(rt, img), ERYX_OK);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    eryx_runtime_config_default(&cfg);
    cfg.image_path = img;
    REQUIRE_INT(eryx_runtime_new(&cfg, &rt), ERYX_OK);
    check_run(rt, bytecode_checks, bytecode_want);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    /* Without the bytecode: the sources only, compiled at each import. */
    eryx_runtime_config_default(&cfg);
    cfg.flags = ERYX_RUNTIME_NO_BYTECODE;
    cfg.site_packages = dirs;
    cfg.n_site_packages = 1;
    REQUIRE_INT(eryx_runtime_new(&cfg, &rt), ERYX_OK);
    check_run(rt,
              "import os, sys\n"
              "print(os.path.exists(sys.path[-1] + '/fast/__pycache__'))\n"
              "import builtins\n"
              "real = builtins.compile\n"
              "seen = []\n"
              "builtins.compile = lambda s, f, *a, **k: seen.append(f) or real(s, f, *a, **k)\n"
              "import fast\n"
              "builtins.compile = real\n"
              "print(seen == [fast.__file__])\n",
              "False\nTrue\n");
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    remove_workdir();
}

/* A two-entry ERYXIMG1 image (paths sorted by the caller; b may be NULL
 * for one entry), malloc'd. */
static uint8_t *tiny_image(const char *pa, const char *da, const char *pb, const char *db,
                           size_t *size)
{
    const char *p[2] = {pa, pb}, *d[2] = {da, db};
    uint32_t n = pb ? 2 : 1, at = 16 + 16 * n;
    *size = at;
    for (uint32_t i = 0; i < n; i++)
        *size += strlen(p[i]) + strlen(d[i]);
    uint8_t *img = calloc(1, *size);
    REQUIRE(img != NULL);
    memcpy(img, "ERYXIMG1", 8);
    memcpy(img + 8, &n, 4);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t plen = (uint32_t)strlen(p[i]);
        memcpy(img + 16 + 16 * i, &at, 4);
        memcpy(img + 20 + 16 * i, &plen, 4);
        memcpy(img + at, p[i], plen);
        at += plen;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t dlen = (uint32_t)strlen(d[i]);
        memcpy(img + 24 + 16 * i, &at, 4);
        memcpy(img + 28 + 16 * i, &dlen, 4);
        memcpy(img + at, d[i], dlen);
        at += dlen;
    }
    return img;
}

int eryx__packages_add_bytecode(const uint8_t *packages, size_t size, const uint8_t *bytecode,
                                size_t bc_size, uint8_t **image, size_t *out_size,
                                size_t *n_left);

/* Bytecode the guest hands back is taken only at the bytecode path of a
 * module of the packages (src/core/packages.c). */
static int add_bytecode(const char *bc_path, const uint8_t *pkgs, size_t pkgs_size,
                        uint8_t **out, size_t *out_size)
{
    size_t bc_size, left;
    uint8_t *bc = tiny_image(bc_path, "code", NULL, NULL, &bc_size);
    int rc = eryx__packages_add_bytecode(pkgs, pkgs_size, bc, bc_size, out, out_size, &left);
    CHECK_INT(left, 0);
    free(bc);
    return rc;
}

TEST_CASE(packages_take_only_their_modules_bytecode)
{
    size_t size, out_size;
    uint8_t *pkgs = tiny_image("a/b.py", "src", "t.py", "top", &size), *out = NULL;
    static const char *const good[] = {"a/__pycache__/b.cpython-313.pyc",
                                       "__pycache__/t.cpython-313.pyc"};
    for (size_t i = 0; i < 2; i++) {
        CHECK_INT(add_bytecode(good[i], pkgs, size, &out, &out_size), ERYX_OK);
        CHECK(out != NULL && out_size > size);
        CHECK(out && memmem(out, out_size, good[i], strlen(good[i])) != NULL);
        free(out);
        out = NULL;
    }
    static const char *const bad[] = {
        "a/__pycache__/c.cpython-313.pyc",          /* no a/c.py */
        "a/__pycache__/b.cpython-312.pyc",          /* another Python's */
        "a/__pycache__/b.opt-1.cpython-313.pyc",    /* not the import's */
        "a/b.cpython-313.pyc",                      /* not in __pycache__ */
        "ax__pycache__/b.cpython-313.pyc",
        "a/__pycache__/__pycache__/b.cpython-313.pyc",
        "a/__pycache__/.cpython-313.pyc",
        "a/b.py",                                   /* a source, not bytecode */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(add_bytecode(bad[i], pkgs, size, &out, &out_size), ERYX_INIT);
        CHECK(out == NULL);
        CHECK_CONTAINS(eryx_errmsg(NULL), "bytecode");
    }
    /* Not an image at all. */
    size_t left;
    CHECK_INT(eryx__packages_add_bytecode(pkgs, size, (const uint8_t *)"ERYXIMG1", 8, &out,
                                          &out_size, &left),
              ERYX_INIT);
    free(pkgs);
    /* A stale file of the packages at that path gives way. */
    pkgs = tiny_image("a/__pycache__/b.cpython-313.pyc", "stale", "a/b.py", "src", &size);
    CHECK_INT(add_bytecode("a/__pycache__/b.cpython-313.pyc", pkgs, size, &out, &out_size),
              ERYX_OK);
    CHECK(out && memmem(out, out_size, "code", 4) != NULL);
    CHECK(out && memmem(out, out_size, "stale", 5) == NULL);
    free(out);
    free(pkgs);
}

/* A wheel that must be refused: the status and a phrase of the message. */
static void refused_wheel(const char *wheel, int want_rc, const char *phrase)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    const char *wheels[] = {wheel};
    cfg.wheels = wheels;
    cfg.n_wheels = 1;
    eryx_runtime *rt = (eryx_runtime *)1;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), want_rc);
    CHECK(rt == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), phrase);
}

TEST_CASE(bad_wheels_refused)
{
    char path[300];
    make_workdir();
    refused_wheel(write_wheel("up.whl", "{'../evil.py': 'x = 1\\n'}", PURE_META), ERYX_INVALID,
                  "outside its root");
    refused_wheel(write_wheel("deep.whl", "{'demo/../../evil.py': 'x = 1\\n'}", PURE_META),
                  ERYX_INVALID, "outside its root");
    refused_wheel(write_wheel("abs.whl", "{'/etc/evil.py': 'x = 1\\n'}", PURE_META),
                  ERYX_INVALID, "outside its root");
    refused_wheel(write_wheel("native.whl", "{'demo/_fast.cpython-313-x86_64-linux-gnu.so': "
                                            "'ELF'}", PURE_META),
                  ERYX_INVALID, "native extension");
    refused_wheel(write_wheel("platlib.whl", "{'demo/__init__.py': ''}",
                              "'Wheel-Version: 1.0\\nRoot-Is-Purelib: false\\n'"),
                  ERYX_INVALID, "not a pure-Python wheel");
    refused_wheel(write_wheel("nometa.whl", "{'demo/__init__.py': ''}", "None"), ERYX_INVALID,
                  "not a wheel");
    /* Two WHEEL files, the first saying the wheel is not pure: the last
     * read decided (accepted). */
    refused_wheel(write_wheel("twometa.whl", "{'aaa-1.0.dist-info/WHEEL': 'Wheel-Version: "
                                             "1.0\\nRoot-Is-Purelib: false\\n', "
                                             "'demo/__init__.py': ''}", PURE_META),
                  ERYX_INVALID, "more than one *.dist-info/WHEEL");
    /* A bzip2 member of 16 MiB of zeros packed into a few kilobytes (a
     * zip bomb: it was unpacked whole). */
    snprintf(path, sizeof path, "%s/bomb.whl", workdir);
    sh("python3 -c \"import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); "
       "z.writestr('demo-1.0.dist-info/WHEEL', 'Root-Is-Purelib: true\\n'); "
       "z.writestr('demo/zeros.py', bytes(16 << 20), zipfile.ZIP_BZIP2); z.close()\" '%s'",
       path);
    refused_wheel(path, ERYX_INVALID, "times its packed size");
    /* Damage: garbage, a truncated archive, a flipped byte in a member. */
    snprintf(path, sizeof path, "%s/garbage.whl", workdir);
    sh("head -c 5000 /dev/urandom > '%s'", path);
    refused_wheel(path, ERYX_INVALID, "not a valid wheel");
    const char *good = demo_wheel();
    snprintf(path, sizeof path, "%s/short.whl", workdir);
    sh("head -c 300 '%s' > '%s'", good, path);
    refused_wheel(path, ERYX_INVALID, "not a valid wheel");
    /* A stored (uncompressed) member whose bytes change: the CRC catches it. */
    const char *stored = write_wheel("stored.whl", "{'demo/__init__.py': 'ANSWER = 42\\n'}",
                                     PURE_META);
    sh("python3 -c \"import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); "
       "i = b.index(b'ANSWER = 42'); b[i] ^= 1; open(p, 'wb').write(b)\" '%s'",
       stored);
    refused_wheel(stored, ERYX_INVALID, "damaged");
    snprintf(path, sizeof path, "%s/missing.whl", workdir);
    refused_wheel(path, ERYX_IO, "missing.whl");
    /* A file in a directory and a directory in a wheel, of one name: the
     * message names both sources. */
    char site[300];
    snprintf(site, sizeof site, "%s/clash", workdir);
    sh("mkdir -p '%s' && echo x > '%s/demo'", site, site);
    eryx_runtime *rt = (eryx_runtime *)1;
    CHECK_INT(new_runtime(&rt, site, good), ERYX_INVALID);
    CHECK(rt == NULL);
    char want[700];
    snprintf(want, sizeof want, "'demo' is a file in %s and a directory in %s", site, good);
    CHECK_CONTAINS(eryx_errmsg(NULL), want);
    remove_workdir();
}

TEST_CASE(setup_code_errors)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    eryx_runtime *rt = NULL;
    cfg.setup_code = "def f():\n    return 1 / 0\nf()\n";
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_PYTHON_EXCEPTION);
    CHECK(rt == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "the setup code raised ZeroDivisionError");
    CHECK_CONTAINS(eryx_errmsg(NULL), "Traceback (most recent call last)");
    CHECK_CONTAINS(eryx_errmsg(NULL), "line 2, in f");

    eryx_runtime_config_default(&cfg);
    static const char *const missing[] = {"no_such_module_here"};
    cfg.imports = missing;
    cfg.n_imports = 1;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_PYTHON_EXCEPTION);
    CHECK_CONTAINS(eryx_errmsg(NULL), "ModuleNotFoundError");
    CHECK_CONTAINS(eryx_errmsg(NULL), "no_such_module_here");

    /* A loop is stopped by the setup timeout. */
    eryx_runtime_config_default(&cfg);
    cfg.setup_code = "while True:\n    pass\n";
    cfg.setup_timeout_ns = 300u * 1000 * 1000;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_TIMEOUT);
    CHECK_CONTAINS(eryx_errmsg(NULL), "setup timeout");
    /* One that catches the interruption is stopped hard. */
    cfg.setup_code = "while True:\n    try:\n        while True: pass\n"
                     "    except BaseException:\n        pass\n";
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_TIMEOUT);
    cfg.setup_code = "raise SystemExit(3)";
    cfg.setup_timeout_ns = 0;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_PYTHON_EXCEPTION);
    CHECK_CONTAINS(eryx_errmsg(NULL), "exited with status 3");
    CHECK(rt == NULL);
}

TEST_CASE(config_combinations_refused)
{
    eryx_runtime_config cfg;
    eryx_runtime *rt = NULL;
    static const char *const mods[] = {"json"};
    eryx_runtime_config_default(&cfg);
    cfg.flags = ERYX_RUNTIME_NO_IMAGE;
    cfg.imports = mods;
    cfg.n_imports = 1;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "ERYX_RUNTIME_NO_IMAGE");
    eryx_runtime_config_default(&cfg);
    cfg.image_path = "/nonexistent.img";
    cfg.setup_code = "x = 1";
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "must then be empty");
    eryx_runtime_config_default(&cfg);
    cfg.n_wheels = 2;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_INVALID);
    static const char *const bad[] = {"json; import os"};
    eryx_runtime_config_default(&cfg);
    cfg.imports = bad;
    cfg.n_imports = 1;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not a module name");
    eryx_runtime_config_default(&cfg);
    cfg.flags = ERYX_RUNTIME_IMAGE_TRUSTED;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "image_path, which is not set");
    eryx_runtime_config_default(&cfg);
    cfg.flags = 0x80;
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "unknown flags 0x80");
    eryx_runtime_config_default(&cfg);
    cfg.image_path = "/nonexistent/dir/x.img";
    CHECK_INT(eryx_runtime_new(&cfg, &rt), ERYX_IO);
    CHECK_CONTAINS(eryx_errmsg(NULL), "No such file");
    /* A runtime without an image has none to save. */
    eryx_runtime_config_default(&cfg);
    cfg.flags = ERYX_RUNTIME_NO_IMAGE;
    REQUIRE_INT(eryx_runtime_new(&cfg, &rt), ERYX_OK);
    CHECK_INT(eryx_runtime_save_image(rt, "/tmp/never.img"), ERYX_INVALID);
    uint64_t b;
    CHECK_INT(eryx_runtime_image_size(rt, &b), ERYX_INVALID);
    CHECK(access("/tmp/never.img", F_OK) != 0);
    eryx_runtime_free(rt);
    CHECK(strlen(eryx_build_id()) > 8);
}

static eryx_runtime *load_flags(const char *path, unsigned flags, int want_rc)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    cfg.image_path = path;
    cfg.flags = flags;
    eryx_runtime *rt = NULL;
    int rc = eryx_runtime_new(&cfg, &rt);
    if (rc != want_rc)
        fprintf(stderr, "load %s: %s: %s\n", path, eryx_errstr(rc), eryx_errmsg(NULL));
    CHECK_INT(rc, want_rc);
    return rt;
}

static eryx_runtime *load(const char *path, int want_rc)
{
    return load_flags(path, 0, want_rc);
}

TEST_CASE(saved_image_loads_with_packages_and_setup)
{
    make_workdir();
    eryx_runtime *built;
    REQUIRE_INT(new_runtime(&built, site_dir(), demo_wheel()), ERYX_OK);
    char img[300];
    snprintf(img, sizeof img, "%s/rt.img", workdir);
    REQUIRE_INT(eryx_runtime_save_image(built, img), ERYX_OK);
    uint64_t built_size = 0, loaded_size = 0;
    CHECK_INT(eryx_runtime_image_size(built, &built_size), ERYX_OK);
    CHECK_INT(eryx_runtime_free(built), ERYX_OK);
    /* No temporary file is left next to it. */
    sh("test $(ls '%s' | grep -c tmp) = 0", workdir);
    /* The site-packages copy is gone: the image carries the packages. */
    sh("rm -rf '%s/site'", workdir);

    eryx_runtime *rt = load(img, ERYX_OK);
    REQUIRE(rt != NULL);
    CHECK_INT(eryx_runtime_image_size(rt, &loaded_size), ERYX_OK);
    CHECK_INT(loaded_size, built_size);
    check_run(rt, package_checks, package_want);
    check_run(rt, "import demo\nprint(demo.ANSWER)\n", "42\n");

    /* Reset, fork and session files work on a loaded image's sandboxes. */
    eryx_sandbox *sb, *child, *back;
    REQUIRE_INT(eryx_sandbox_new(rt, NULL, &sb), ERYX_OK);
    eryx_result *r = NULL;
    const char *code = "x = render('fork')\nwith open('/tmp/mine', 'w') as f: f.write('m')";
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_OK);
    eryx_result_free(r);
    REQUIRE_INT(eryx_sandbox_fork(sb, &child), ERYX_OK);
    code = "print(x, open('/tmp/mine').read())";
    CHECK_INT(eryx_sandbox_run(child, code, strlen(code), &r), ERYX_OK);
    CHECK_STR(r->out, "<p>fork</p> m\n");
    eryx_result_free(r);
    char ses[300];
    snprintf(ses, sizeof ses, "%s/s.session", workdir);
    CHECK_INT(eryx_sandbox_save(child, ses), ERYX_OK);
    eryx_sandbox_free(child);
    REQUIRE_INT(eryx_sandbox_load(rt, NULL, ses, &back), ERYX_OK);
    code = "import tabulate\nprint(x, render('again'), tabulate.__name__)";
    CHECK_INT(eryx_sandbox_run(back, code, strlen(code), &r), ERYX_OK);
    CHECK_STR(r->out, "<p>fork</p> <p>again</p> tabulate\n");
    eryx_result_free(r);
    eryx_sandbox_free(back);
    REQUIRE_INT(eryx_sandbox_reset(sb), ERYX_OK);
    code = "print('x' in dir(), render('r'))";
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_OK);
    CHECK_STR(r->out, "False <p>r</p>\n");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    /* A loaded runtime saves an image equal in use to the one it loaded. */
    char img2[300];
    snprintf(img2, sizeof img2, "%s/rt2.img", workdir);
    CHECK_INT(eryx_runtime_save_image(rt, img2), ERYX_OK);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    rt = load(img2, ERYX_OK);
    if (rt)
        check_run(rt, "print(render('2'))", "<p>2</p>\n");
    eryx_runtime_free(rt);
    remove_workdir();
}

/* The header's fields (image_file.c): where the forgeries write. */
#define OFF_BUILD_ID 8
#define OFF_MEM_SIZE 80
#define OFF_PACKAGES_SIZE 88
#define OFF_WASI_SIZE 96
#define OFF_N_HOT 104

static void patch_u64(const char *path, long off, uint64_t delta)
{
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    uint64_t v;
    REQUIRE(pread(fd, &v, 8, off) == 8);
    v += delta;
    REQUIRE(pwrite(fd, &v, 8, off) == 8);
    close(fd);
}

static void copy(const char *from, const char *to)
{
    sh("cp '%s' '%s'", from, to);
}

TEST_CASE(damaged_images_refused)
{
    make_workdir();
    eryx_runtime *built;
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    cfg.setup_code = "y = 5";
    REQUIRE_INT(eryx_runtime_new(&cfg, &built), ERYX_OK);
    char img[300], bad[300];
    snprintf(img, sizeof img, "%s/ok.img", workdir);
    snprintf(bad, sizeof bad, "%s/bad.img", workdir);
    REQUIRE_INT(eryx_runtime_save_image(built, img), ERYX_OK);
    /* Over an existing file: replaced whole. */
    REQUIRE_INT(eryx_runtime_save_image(built, img), ERYX_OK);
    eryx_runtime_free(built);
    eryx_runtime *rt = load(img, ERYX_OK);
    if (rt)
        check_run(rt, "print(y)", "5\n");
    eryx_runtime_free(rt);

    copy(img, bad);
    patch_u64(bad, OFF_BUILD_ID, 1);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "another build");

    copy(img, bad);
    sh("truncate -s -4096 '%s'", bad);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "truncated or its sizes lie");

    copy(img, bad);
    sh("truncate -s 100 '%s'", bad);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "truncated");

    /* Sizes that lie: the memory claims a page more than the file has. */
    copy(img, bad);
    patch_u64(bad, OFF_MEM_SIZE, 65536);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "sizes lie");
    /* ...or they add up (bytes appended) but the checksum does not. */
    copy(img, bad);
    patch_u64(bad, OFF_PACKAGES_SIZE, 4096);
    sh("head -c 4096 /dev/zero >> '%s'", bad);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "checksum mismatch");
    copy(img, bad);
    patch_u64(bad, OFF_WASI_SIZE, 1ull << 40);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "malformed header");
    copy(img, bad);
    patch_u64(bad, OFF_N_HOT, 1ull << 40);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "malformed header");

    /* One flipped byte in the memory. */
    copy(img, bad);
    sh("printf '\\377' | dd of='%s' bs=1 seek=%d conv=notrunc status=none", bad, 4096 + 70000);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "checksum mismatch");
    /* ERYX_RUNTIME_IMAGE_TRUSTED does not hash the memory: the flipped
     * byte goes unnoticed (the guest sees it), as documented; everything
     * else is still checked. */
    rt = load_flags(bad, ERYX_RUNTIME_IMAGE_TRUSTED, ERYX_OK);
    eryx_runtime_free(rt);
    rt = load_flags(img, ERYX_RUNTIME_IMAGE_TRUSTED, ERYX_OK);
    if (rt)
        check_run(rt, "print(y)", "5\n");
    eryx_runtime_free(rt);
    copy(img, bad);
    patch_u64(bad, OFF_BUILD_ID, 1);
    CHECK(load_flags(bad, ERYX_RUNTIME_IMAGE_TRUSTED, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "another build");
    copy(img, bad);
    patch_u64(bad, OFF_N_HOT, 1ull << 40);
    CHECK(load_flags(bad, ERYX_RUNTIME_IMAGE_TRUSTED, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "malformed header");
    copy(img, bad);
    sh("truncate -s -4096 '%s'", bad);
    CHECK(load_flags(bad, ERYX_RUNTIME_IMAGE_TRUSTED, ERYX_INVALID) == NULL);

    sh("head -c 10000 /dev/urandom > '%s'", bad);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not an eryx runtime image");
    sh(": > '%s'", bad);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK(load(workdir, ERYX_IO) == NULL); /* a directory */
    CHECK_CONTAINS(eryx_errmsg(NULL), "not a regular file");
    /* A FIFO is refused at once, not waited on (nobody writes to it). */
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo.img", workdir);
    REQUIRE(mkfifo(fifo, 0600) == 0);
    CHECK(load(fifo, ERYX_IO) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not a regular file");
    unlink(fifo);

    /* A session file is not an image. */
    eryx_runtime_config_default(&cfg);
    cfg.flags = ERYX_RUNTIME_NO_IMAGE;
    REQUIRE_INT(eryx_runtime_new(&cfg, &rt), ERYX_OK);
    eryx_sandbox *sb;
    REQUIRE_INT(eryx_sandbox_new(rt, NULL, &sb), ERYX_OK);
    CHECK_INT(eryx_sandbox_save(sb, bad), ERYX_OK);
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    CHECK(load(bad, ERYX_INVALID) == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not an eryx runtime image");
    remove_workdir();
}

TEST_CASE(save_to_unwritable_place)
{
    make_workdir();
    eryx_runtime *rt;
    REQUIRE_INT(eryx_runtime_new(NULL, &rt), ERYX_OK);
    char dir[300], img[320];
    snprintf(dir, sizeof dir, "%s/ro", workdir);
    snprintf(img, sizeof img, "%s/x.img", dir);
    CHECK_INT(eryx_runtime_save_image(rt, "/nonexistent-dir/x.img"), ERYX_IO);
    CHECK_CONTAINS(eryx_errmsg(NULL), "cannot write the runtime image");
    /* A path that is a directory: the temporary file is removed. */
    REQUIRE(mkdir(dir, 0755) == 0);
    snprintf(img, sizeof img, "%s/sub", dir);
    REQUIRE(mkdir(img, 0755) == 0);
    CHECK_INT(eryx_runtime_save_image(rt, img), ERYX_IO);
    sh("test $(ls '%s' | wc -l) = 1", dir);
    CHECK_INT(eryx_runtime_save_image(rt, NULL), ERYX_INVALID);
    CHECK_INT(eryx_runtime_save_image(NULL, img), ERYX_MISUSE);
    eryx_runtime_free(rt);
    remove_workdir();
}

/* eryx_runtime_save_image is thread-safe: saving while other threads make,
 * run and free sandboxes of the runtime gives whole images that load. */
typedef struct churn_arg {
    eryx_runtime *rt;
    int ok;
} churn_arg;

static void *churn(void *p)
{
    churn_arg *a = p;
    a->ok = 1;
    for (int i = 0; i < 20; i++) {
        char *out = run_in(a->rt, "import os\nprint(len(os.listdir('/tmp')))");
        if (!out || strcmp(out, "0\n") != 0)
            a->ok = 0;
        free(out);
    }
    return NULL;
}

TEST_CASE(save_while_sandboxes_run)
{
    make_workdir();
    eryx_runtime *rt;
    REQUIRE_INT(eryx_runtime_new(NULL, &rt), ERYX_OK);
    churn_arg a = {rt, 0};
    pthread_t t;
    REQUIRE_INT(pthread_create(&t, NULL, churn, &a), 0);
    char img[300];
    snprintf(img, sizeof img, "%s/busy.img", workdir);
    for (int i = 0; i < 5; i++)
        CHECK_INT(eryx_runtime_save_image(rt, img), ERYX_OK);
    pthread_join(t, NULL);
    CHECK(a.ok);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    rt = load(img, ERYX_OK);
    if (rt)
        check_run(rt, "import json\nprint(json.dumps([1]))", "[1]\n");
    eryx_runtime_free(rt);
    remove_workdir();
}

/* The standard library image linked into the library: runtimes take it as
 * it is (src/core/runtime.c), so the build's image is validated here, by
 * the validator of every image from outside (src/vfs/vfs_image.c). */
int eryx__image_validate(const void *image, size_t size);
extern const uint8_t eryx__stdlib_image[], eryx__stdlib_image_end[];

TEST_CASE(embedded_stdlib_image_is_valid)
{
    size_t size = (size_t)(eryx__stdlib_image_end - eryx__stdlib_image);
    CHECK(size > 1000000);
    CHECK(eryx__image_validate(eryx__stdlib_image, size) == 0);
}

TEST_MAIN()
