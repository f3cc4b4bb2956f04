/*
 * The runtime image: the template sandbox boots CPython, imports the common
 * modules and is captured into a sealed memfd (src/engine/snapshot.c)
 * together with the instance's two mutable globals; the pages a first run
 * writes are learnt once so that new sandboxes can prefault them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "core/exec.h"
#include "core/packages.h"
#include "vfs/vfs_ops.h"

/* Modules every sandbox finds already imported (the list, plus the
 * glue's event loop). Imported through importlib so that __main__ stays
 * clean. */
static const char warm_up_code[] =
    "import importlib as _i\n"
    "for _m in ('json', 're', 'asyncio', 'collections', 'dataclasses', 'datetime',\n"
    "           'decimal', 'functools', 'itertools', 'math', 'random', 'typing',\n"
    "           'traceback', 'linecache', 'tokenize', 'io', 'os', 'sys', '_eryx.loop',\n"
    "           '_eryx.state'):\n"
    "    _i.import_module(_m)\n"
    "del _i, _m\n";

/* The template's last run before the capture: garbage collected, the
 * collector's generations frozen, every object immortal (docs/sessions.md,
 * "The runtime image"). */
static const char freeze_code[] =
    "import gc as _gc, _eryx_host as _h\n"
    "_gc.collect()\n"
    "_gc.freeze()\n"
    "_h.immortalize()\n"
    "del _gc, _h\n";

/* ---- the pages a first run writes ------------------------------------- */

/* Page faults are expensive (12–16 µs each on the VMs this was built on, a
 * batch prefault ~1.8 µs a page): a new sandbox writes the same few hundred
 * pages of the image in its first run, so they are copied in one batch when
 * it is made. Which pages: the runtime makes a probe sandbox, runs `pass`,
 * and asks /proc/self/pagemap which pages of its memory became private
 * copies (present, and no longer the file's page). Mapping the pages it only
 * read as well was measured: creation 1.3 ms instead of 0.4 ms, for a first
 * run 0.5 ms shorter, so read pages are left to fault. */
#define PAGE 4096u
#define PM_PRESENT (1ull << 63)
#define PM_FILE_OR_SHARED (1ull << 61)

static int add_run(eryx_runtime *rt, uint64_t start, uint64_t len)
{
    if (rt->n_hot == rt->cap_hot) {
        size_t cap = rt->cap_hot ? rt->cap_hot * 2 : 64;
        eryx__page_run *bigger = realloc(rt->hot, cap * sizeof *bigger);
        if (!bigger)
            return -1;
        rt->hot = bigger;
        rt->cap_hot = cap;
    }
    rt->hot[rt->n_hot++] = (eryx__page_run){start, len};
    return 0;
}

static void find_hot_pages(eryx_runtime *rt, const wasm_rt_memory_t *mem)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* no pagemap: no prefault, only slower first runs */
    uint64_t pages = mem->size / PAGE, run_start = 0, run_len = 0;
    uint64_t entries[512];
    for (uint64_t p = 0; p < pages; p += 512) {
        size_t n = pages - p < 512 ? (size_t)(pages - p) : 512;
        off_t at = (off_t)(((uintptr_t)mem->data / PAGE + p) * sizeof(uint64_t));
        if (pread(fd, entries, n * sizeof *entries, at) != (ssize_t)(n * sizeof *entries))
            break;
        for (size_t i = 0; i < n; i++) {
            /* Written pages became private copies; read ones are the file's. */
            int written = (entries[i] & PM_PRESENT) && !(entries[i] & PM_FILE_OR_SHARED);
            if (written && run_len && run_start + run_len == p + i) {
                run_len++;
            } else if (written) {
                if (run_len && add_run(rt, run_start * PAGE, run_len * PAGE) < 0)
                    goto done;
                run_start = p + i;
                run_len = 1;
            }
        }
    }
    if (run_len)
        add_run(rt, run_start * PAGE, run_len * PAGE);
done:
    close(fd);
}

static void learn_hot_pages(eryx_runtime *rt)
{
    eryx_sandbox_config defaults;
    eryx_sandbox_config_default(&defaults);
    eryx_sandbox *probe;
    if (eryx__sandbox_new_from_image(rt, &defaults, &probe) != ERYX_OK)
        return;
    eryx_exec *ex;
    if (eryx__exec_run_internal(probe, 0, "pass", 4, NULL, &ex) == ERYX_OK)
        find_hot_pages(rt, &probe->in.inst.w2c_memory);
    if (ex)
        eryx__exec_finish(ex, NULL);
    eryx__sandbox_free(probe);
}

/* One run of the template's warm-up; the thread's message says why not. */
static int warm_up(eryx_sandbox *tpl, const char *code)
{
    eryx_exec *ex;
    int rc = eryx__exec_run_internal(tpl, 0, code, strlen(code), NULL, &ex);
    eryx_result *r = ex ? ex->result : NULL;
    if (rc != ERYX_OK)
        eryx__set_errmsg(NULL, "warming up the runtime image failed: %s",
                         r && r->traceback ? r->traceback : eryx__errmsg(tpl));
    if (ex)
        eryx__exec_finish(ex, NULL);
    return rc == ERYX_PYTHON_EXCEPTION ? ERYX_INIT : rc;
}

/* ---- the embedder's imports and setup code ----------------------------- */

/* A run of the embedder's code in the template, within the setup's time
 * limit (deadline, CLOCK_MONOTONIC; 0 = none). An exception stops the
 * build with its traceback in the thread's message. */
static int setup_run(eryx_sandbox *tpl, const char *what, const char *code, size_t len,
                     uint64_t deadline)
{
    eryx_run_options opts;
    eryx_run_options_default(&opts);
    opts.filename = "<setup>";
    uint64_t now = eryx__now_ns();
    opts.timeout_ns = !deadline ? ERYX_NO_LIMIT : deadline > now ? deadline - now : 1;
    eryx_exec *ex;
    int rc = eryx__exec_run_internal(tpl, 0, code, len, &opts, &ex);
    eryx_result *r = ex ? ex->result : NULL;
    if (rc == ERYX_OK && r && r->exited && r->exit_code != 0) {
        eryx__set_errmsg(NULL, "%s exited with status %d", what, r->exit_code);
        rc = ERYX_PYTHON_EXCEPTION;
    } else if (rc == ERYX_PYTHON_EXCEPTION) {
        eryx__set_errmsg(NULL, "%s raised %s: %s\n%s", what, r && r->exc_type ? r->exc_type : "?",
                         r && r->exc_message ? r->exc_message : "",
                         r && r->traceback ? r->traceback : "");
    } else if (rc == ERYX_TIMEOUT) {
        eryx__set_errmsg(NULL, "%s did not finish within the setup timeout", what);
    } else if (rc != ERYX_OK) {
        eryx__set_errmsg(NULL, "%s failed: %s", what, eryx__errmsg(tpl));
    }
    if (ex)
        eryx__exec_finish(ex, NULL);
    return rc;
}

/* ---- the packages' bytecode ---------------------------------------------- */

/* Where the template's compile step leaves its image (and, meanwhile,
 * that name + ".data"): /tmp, which the host reads and empties after. */
#define BYTECODE_FILE "/tmp/.eryx-bytecode.img"
#define BYTECODE_DATA BYTECODE_FILE ".data"

/* The whole of a file of the template's tree (malloc'd, *len bytes), or
 * NULL with the thread's message set. */
static uint8_t *read_guest_file(eryx__vfs *vfs, const char *path, size_t *len)
{
    eryx__vfs_file *f;
    eryx__vfs_attr st;
    int err = eryx__vfs_open(vfs, path, ERYX__VFS_O_READ, &f);
    if (err == 0 && (err = eryx__vfs_fstat(f, &st)) != 0)
        eryx__vfs_close(f);
    if (err == 0 && st.size > 2 * ERYX__PACKAGES_MAX_BYTES) {
        eryx__vfs_close(f);
        err = -EFBIG;
    }
    if (err != 0) {
        eryx__set_errmsg(NULL, "cannot read the packages' bytecode (%s): %s", path,
                         strerror(-err));
        return NULL;
    }
    uint8_t *buf = malloc(st.size ? (size_t)st.size : 1);
    size_t got = 0;
    while (buf && got < st.size) {
        size_t n = 0;
        if (eryx__vfs_pread(f, buf + got, (size_t)st.size - got, got, &n) != 0 || n == 0) {
            free(buf);
            buf = NULL;
            break;
        }
        got += n;
    }
    eryx__vfs_close(f);
    if (!buf)
        eryx__set_errmsg(NULL, "cannot read the packages' bytecode (%s)", path);
    *len = got;
    return buf;
}

/* Compiles every module of the packages in the template (within half of
 * what is left of the setup's time) and serves the packages' image with
 * that bytecode beside the sources from then on, in the template and in
 * every sandbox made from it: their imports load it instead of compiling
 * (docs/packages.md, "Bytecode"). Runs before anything imports from the
 * packages, so no file of them is open when the image is replaced. */
static int compile_packages(eryx_sandbox *tpl, uint64_t deadline)
{
    eryx_runtime *rt = tpl->rt;
    eryx__vfs *vfs = eryx__wasi_vfs(tpl->wasi);
    uint64_t now = eryx__now_ns();
    double budget = !deadline ? 0 : deadline > now ? (double)(deadline - now) / 2e9 : 1e-3;
    char code[512];
    int len = snprintf(code, sizeof code,
                       "import _eryx, _eryx.bytecode as _b, sys as _s\n"
                       "_b.compile_tree('" ERYX__SITE_PACKAGES "', '" BYTECODE_FILE
                       "', %.3f)\n"
                       "del _eryx.bytecode, _s.modules['_eryx.bytecode'], _eryx, _b, _s\n",
                       budget);
    /* The bytecode passes through /tmp twice (its data, then the image). */
    eryx__vfs_set_tmp_quota(vfs, 2 * ERYX__PACKAGES_MAX_BYTES + ERYX_DEFAULT_TMP_QUOTA);
    int rc = setup_run(tpl, "compiling the packages", code, (size_t)len, deadline);
    eryx__vfs_set_tmp_quota(vfs, ERYX_DEFAULT_TMP_QUOTA);
    size_t size = 0;
    uint8_t *bytecode = rc == ERYX_OK ? read_guest_file(vfs, BYTECODE_FILE, &size) : NULL;
    eryx__vfs_unlink(vfs, BYTECODE_FILE);
    eryx__vfs_unlink(vfs, BYTECODE_DATA);
    if (rc != ERYX_OK || !bytecode)
        return rc != ERYX_OK ? rc : ERYX_INIT;
    uint8_t *image;
    size_t image_size, left;
    rc = eryx__packages_add_bytecode(rt->packages, rt->packages_size, bytecode, size, &image,
                                     &image_size, &left);
    free(bytecode);
    if (rc != ERYX_OK)
        return rc;
    int err = eryx__wasi_replace_image(tpl->wasi, ERYX__SITE_PACKAGES, image, image_size);
    if (err != 0) {
        free(image);
        eryx__set_errmsg(NULL, "cannot serve the packages with their bytecode: %s",
                         strerror(-err));
        return ERYX_INIT;
    }
    free(rt->packages);
    rt->packages = image;
    rt->packages_size = image_size;
    return ERYX_OK;
}

/* The runtime's imports (through importlib, so that __main__ stays clean),
 * then its setup code as __main__. The names were checked (config.c):
 * letters, digits, '_' and dots, so they can be quoted as they are. */
static int run_setup(eryx_sandbox *tpl, const eryx_runtime_config *cfg)
{
    if (!cfg)
        return ERYX_OK;
    uint64_t limit = cfg->setup_timeout_ns ? cfg->setup_timeout_ns
                                           : ERYX_DEFAULT_SETUP_TIMEOUT_NS;
    uint64_t deadline = limit == ERYX_NO_LIMIT ? 0 : eryx__deadline_after(limit);
    int rc = ERYX_OK;
    if (tpl->rt->packages) {
        /* After the standard library, as site-packages is in Python,
         * and once: CPython's own start (site.py) has put it there already
         * when the directory existed then. */
        static const char add_path[] = "import sys as _s\n"
                                       "if '" ERYX__SITE_PACKAGES "' not in _s.path:\n"
                                       "    _s.path.append('" ERYX__SITE_PACKAGES "')\n"
                                       "del _s\n";
        rc = setup_run(tpl, "adding site-packages to sys.path", add_path,
                       sizeof add_path - 1, deadline);
        if (rc == ERYX_OK && !(cfg->flags & ERYX_RUNTIME_NO_BYTECODE))
            rc = compile_packages(tpl, deadline);
    }
    if (rc == ERYX_OK && cfg->n_imports) {
        size_t cap = 128;
        for (size_t i = 0; i < cfg->n_imports; i++)
            cap += strlen(cfg->imports[i]) + 4;
        char *code = malloc(cap);
        if (!code)
            return ERYX_NOMEM;
        size_t n = (size_t)snprintf(code, cap, "import importlib as _i\nfor _m in (");
        for (size_t i = 0; i < cfg->n_imports; i++)
            n += (size_t)snprintf(code + n, cap - n, "'%s',", cfg->imports[i]);
        n += (size_t)snprintf(code + n, cap - n, "):\n    _i.import_module(_m)\ndel _i, _m\n");
        rc = setup_run(tpl, "an import of the runtime config", code, n, deadline);
        free(code);
    }
    if (rc == ERYX_OK && cfg->setup_code)
        rc = setup_run(tpl, "the setup code", cfg->setup_code, strlen(cfg->setup_code),
                       deadline);
    return rc;
}

/* The template imports the common modules, then runs `pass` a few times,
 * the first time through the setup a new sandbox's first run goes through
 * (reseed, environment): CPython's adaptive interpreter specialises the
 * glue's bytecode in place on its first executions, and lazy caches fill,
 * so that happens once in the image rather than in every sandbox. Measured
 * (bench_sandbox): private memory per idle sandbox 508 -> 424 kB; creation
 * and first run within the noise. Then the freeze, and the capture. */
int eryx__runtime_snapshot(eryx_runtime *rt, const eryx_runtime_config *cfg)
{
    eryx_sandbox *tpl;
    int rc = eryx__sandbox_new(rt, NULL, &tpl);
    if (rc != ERYX_OK)
        return rc;
    rc = warm_up(tpl, warm_up_code);
    if (rc == ERYX_OK)
        rc = run_setup(tpl, cfg);
    for (int i = 0; rc == ERYX_OK && i < 3; i++) {
        tpl->needs_setup = i == 0;
        rc = warm_up(tpl, "pass");
    }
    if (rc == ERYX_OK)
        rc = warm_up(tpl, freeze_code);
    if (rc != ERYX_OK) {
        eryx__sandbox_free(tpl);
        return rc;
    }
    int err = eryx__mem_image_capture(&tpl->in.inst.w2c_memory, &rt->image);
    if (err < 0) {
        eryx__set_errmsg(NULL, "cannot capture the runtime image: %s", strerror(-err));
        eryx__sandbox_free(tpl);
        return ERYX_NOMEM;
    }
    eryx__save_globals(tpl, &rt->globals);
    rt->template = tpl;
    learn_hot_pages(rt);
    return ERYX_OK;
}

void eryx__runtime_drop_snapshot(eryx_runtime *rt)
{
    if (rt->template)
        eryx__sandbox_free(rt->template);
    eryx__mem_image_unref(rt->image);
    free(rt->hot);
    free(rt->packages);
    rt->template = NULL;
    rt->image = NULL;
    rt->hot = NULL;
    rt->n_hot = rt->cap_hot = 0;
    rt->packages = NULL;
    rt->packages_size = 0;
}

