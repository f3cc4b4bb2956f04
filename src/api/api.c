/*
 * Public entry points: handle and argument checks, then src/core/.
 *
 * Every handle goes through the handle table (src/core/handle.h): a dead
 * handle, one of another type, NULL where an object is required, a config
 * of an unknown size or a sandbox entered by two threads at once is an
 * error code with a message, never a crash. Configs of any known version
 * are brought to this library's layout here (config.c), so the core sees
 * one shape only.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>

#include "api/config.h"
#include "core/exec.h"
#include "core/handle.h"
#include "net/net.h"

static eryx_runtime *get_runtime(const eryx_runtime *h)
{
    return eryx__handle_get(h, ERYX__H_RUNTIME);
}

static eryx_sandbox *get_sandbox(const eryx_sandbox *h)
{
    return eryx__handle_get(h, ERYX__H_SANDBOX);
}

static eryx_exec *get_exec(const eryx_exec *h)
{
    return eryx__handle_get(h, ERYX__H_EXEC);
}

static eryx_call *get_call(const eryx_call *h)
{
    return eryx__handle_get(h, ERYX__H_CALL);
}

static int misuse(eryx_sandbox *sb, const char *what)
{
    eryx__set_errmsg(sb, "misuse: %s", what);
    return ERYX_MISUSE;
}

/* One thread at a time inside a sandbox, which may enter it again (the
 * blocking run holds it around the eryx_exec_* calls it makes, so another
 * thread is refused for the whole run, not only during steps). */
static _Thread_local char this_thread;
#define THIS_THREAD ((uintptr_t)&this_thread)

static int claim(eryx_sandbox *sb)
{
    uintptr_t none = 0;
    if (atomic_load(&sb->owner) == THIS_THREAD) {
        sb->depth++;
        return 1;
    }
    if (!atomic_compare_exchange_strong(&sb->owner, &none, THIS_THREAD))
        return 0;
    sb->depth = 1;
    return 1;
}

static void leave(eryx_sandbox *sb)
{
    if (--sb->depth == 0)
        atomic_store(&sb->owner, 0);
}

/* Claims sb, the sandbox of handle h, and checks once it holds it that h
 * still leads there: a free by another thread (which claims too, so none
 * can come once this holds it) and a reuse of the sandbox for another
 * owner may have come between the look-up and the claim. 1: held; 0:
 * another thread is inside; -1: h died meanwhile (nothing held). */
static int claim_handle(const eryx_sandbox *h, eryx_sandbox *sb)
{
    if (!claim(sb))
        return 0;
    if (get_sandbox(h) == sb)
        return 1;
    leave(sb);
    return -1;
}

static int freed_meanwhile(void)
{
    eryx__set_errmsg(NULL, "misuse: not a sandbox (freed by another thread meanwhile)");
    return ERYX_MISUSE;
}

/* Another thread is inside sb: its message belongs to that thread (which
 * may be writing it), so the refusal is told on this thread's message. */
static int busy(eryx_sandbox *sb)
{
    (void)sb;
    eryx__set_errmsg(NULL, "misuse: the sandbox is in use by another thread");
    return ERYX_MISUSE;
}

/* An argument refused before the call enters its sandbox: the message goes
 * to the sandbox when no other thread is inside it (that thread owns the
 * message, and may be writing it: a run's outcome), else to this thread's,
 * as busy() tells a refusal; a dead handle's to this thread's too. */
static int refuse(const eryx_sandbox *h, const char *what)
{
    eryx_sandbox *sb = get_sandbox(h);
    if (!sb || claim_handle(h, sb) != 1)
        return misuse(NULL, what);
    int rc = misuse(sb, what);
    leave(sb);
    return rc;
}

/* ---- runtimes ------------------------------------------------------------- */

int eryx_runtime_new(const eryx_runtime_config *given, eryx_runtime **out)
{
    eryx__fork_handlers_install();
    eryx__clear_errmsg(NULL);
    if (!out)
        return misuse(NULL, "eryx_runtime_new: out is NULL");
    *out = NULL;
    eryx_runtime_config cfg;
    int rc = eryx__runtime_config_take(given, &cfg);
    eryx_runtime *rt = NULL;
    if (rc == ERYX_OK)
        rc = eryx__runtime_new(&cfg, &rt);
    if (rc != ERYX_OK)
        return rc;
    if (!(*out = eryx__handle_open(ERYX__H_RUNTIME, rt))) {
        eryx__runtime_free(rt);
        eryx__set_errmsg(NULL, "out of memory for a handle");
        return ERYX_NOMEM;
    }
    return ERYX_OK;
}

int eryx_runtime_free(eryx_runtime *h)
{
    if (!h)
        return ERYX_OK;
    eryx_runtime *rt = get_runtime(h);
    if (!rt)
        return misuse(NULL, "eryx_runtime_free: not a runtime (freed twice?)");
    long live = atomic_load(&rt->n_sandboxes);
    if (live != 0) {
        eryx__set_errmsg(NULL, "misuse: eryx_runtime_free with %ld sandboxes alive", live);
        return ERYX_MISUSE;
    }
    if (!eryx__handle_close(h, ERYX__H_RUNTIME))
        return misuse(NULL, "eryx_runtime_free: freed by another thread meanwhile");
    eryx__runtime_free(rt);
    return ERYX_OK;
}

int eryx_runtime_save_image(eryx_runtime *h, const char *path)
{
    eryx__clear_errmsg(NULL);
    eryx_runtime *rt = get_runtime(h);
    if (!rt)
        return misuse(NULL, "eryx_runtime_save_image: not a runtime");
    if (!path || !path[0]) {
        eryx__set_errmsg(NULL, "eryx_runtime_save_image: path is NULL or empty");
        return ERYX_INVALID;
    }
    if (!rt->image) {
        eryx__set_errmsg(NULL, "the runtime was made with ERYX_RUNTIME_NO_IMAGE: it has no "
                               "image to save");
        return ERYX_INVALID;
    }
    return eryx__runtime_save_image(rt, path);
}

int eryx_runtime_image_size(eryx_runtime *h, uint64_t *bytes)
{
    eryx__clear_errmsg(NULL);
    eryx_runtime *rt = get_runtime(h);
    if (!rt)
        return misuse(NULL, "eryx_runtime_image_size: not a runtime");
    if (!bytes)
        return misuse(NULL, "eryx_runtime_image_size: bytes is NULL");
    if (!rt->image) {
        eryx__set_errmsg(NULL, "the runtime was made with ERYX_RUNTIME_NO_IMAGE: it has no "
                               "image");
        return ERYX_INVALID;
    }
    *bytes = eryx__mem_image_data_bytes(rt->image) + rt->packages_size;
    return ERYX_OK;
}

const char *eryx_build_id(void)
{
    return ERYX_BUILD_ID;
}

/* ---- sandboxes ------------------------------------------------------------ */

/* Gives a sandbox the core just made a handle; frees it if there is none. */
static int hand_out(eryx_sandbox *sb, eryx_sandbox **out)
{
    if (!(*out = eryx__handle_open(ERYX__H_SANDBOX, sb))) {
        eryx__sandbox_free(sb);
        eryx__set_errmsg(NULL, "out of memory for a handle");
        return ERYX_NOMEM;
    }
    return ERYX_OK;
}

int eryx_sandbox_new(eryx_runtime *rth, const eryx_sandbox_config *given, eryx_sandbox **out)
{
    eryx__clear_errmsg(NULL);
    if (!out)
        return misuse(NULL, "eryx_sandbox_new: out is NULL");
    *out = NULL;
    eryx_runtime *rt = get_runtime(rth);
    if (!rt)
        return misuse(NULL, "eryx_sandbox_new: not a runtime");
    eryx__config_copy cfg;
    int rc = eryx__sandbox_config_take(given, &cfg);
    eryx_sandbox *sb = NULL;
    if (rc == ERYX_OK)
        rc = eryx__sandbox_new(rt, &cfg.cfg, &sb);
    eryx__config_copy_free(&cfg);
    return rc == ERYX_OK ? hand_out(sb, out) : rc;
}

/* Enters sb, the sandbox of handle h, for one call: fails if another thread
 * is inside, the handle died meanwhile, the sandbox is dead (unless
 * dead_ok), or (when idle_only) an execution is in progress. */
static int enter(const eryx_sandbox *h, eryx_sandbox *sb, int idle_only, int dead_ok)
{
    int held = claim_handle(h, sb);
    if (held != 1)
        return held == 0 ? busy(sb) : freed_meanwhile();
    eryx__clear_errmsg(sb);
    int rc = ERYX_OK;
    if (sb->state == ERYX__SB_DEAD && !dead_ok) {
        eryx__set_errmsg(sb, "the sandbox is dead (an earlier run trapped or exited)");
        rc = ERYX_DEAD;
    } else if (idle_only && sb->exec) {
        rc = misuse(sb, "an execution is in progress: finish it first");
    }
    if (rc != ERYX_OK)
        leave(sb);
    return rc;
}

/* The sandbox of a handle, entered; *rc says why not when NULL. */
static eryx_sandbox *enter_handle(const eryx_sandbox *h, const char *fn, int idle_only,
                                  int dead_ok, int *rc)
{
    eryx_sandbox *sb = get_sandbox(h);
    if (!sb) {
        eryx__set_errmsg(NULL, "misuse: %s: not a sandbox (NULL or freed)", fn);
        *rc = ERYX_MISUSE;
        return NULL;
    }
    *rc = enter(h, sb, idle_only, dead_ok);
    return *rc == ERYX_OK ? sb : NULL;
}

void eryx_sandbox_free(eryx_sandbox *h)
{
    /* A bad handle here cannot be reported: ignoring it beats crashing. */
    /* Not from inside a call on it (a handler freeing its own sandbox). */
    eryx_sandbox *sb = get_sandbox(h);
    if (!sb)
        return;
    if (atomic_load(&sb->owner) == THIS_THREAD || !claim(sb)) {
        eryx__set_errmsg(NULL, "misuse: eryx_sandbox_free: the sandbox is running code (here "
                               "or on another thread): not freed, free it when the run returns");
        return;
    }
    if (sb->lender) {
        /* Freed here, it would stay counted by its pool for good. */
        leave(sb);
        eryx__set_errmsg(NULL, "misuse: eryx_sandbox_free: the sandbox was acquired from a "
                               "pool: not freed, give it back with eryx_pool_release");
        return;
    }
    if (eryx__handle_close(h, ERYX__H_SANDBOX))
        eryx__sandbox_free(sb);
    else
        leave(sb);
}

int eryx__sandbox_hold(eryx_sandbox *h)
{
    eryx_sandbox *sb = get_sandbox(h);
    if (!sb) {
        eryx__set_errmsg(NULL, "misuse: eryx_sandbox_run: not a sandbox (NULL or freed)");
        return ERYX_MISUSE;
    }
    int held = claim_handle(h, sb);
    return held == 1 ? ERYX_OK : held == 0 ? busy(sb) : freed_meanwhile();
}

void eryx__sandbox_unhold(eryx_sandbox *h)
{
    eryx_sandbox *sb = get_sandbox(h);
    if (sb && atomic_load(&sb->owner) == THIS_THREAD)
        leave(sb);
}

size_t eryx__sandbox_net_pollfds(eryx_sandbox *h, struct pollfd *fds, size_t max)
{
    eryx_sandbox *sb = get_sandbox(h);
    return sb && atomic_load(&sb->owner) == THIS_THREAD ? eryx__net_pollfds(sb->net, fds, max) : 0;
}

void eryx__sandbox_net_poll_done(eryx_sandbox *h, const struct pollfd *fds, size_t n)
{
    eryx_sandbox *sb = get_sandbox(h);
    if (sb && sb->net)
        eryx__net_poll_done(sb->net, fds, n);
}

int eryx__sandbox_rehandle(eryx_sandbox **h, const void *pool)
{
    eryx_sandbox *sb = get_sandbox(*h);
    if (!sb || atomic_load(&sb->owner) == THIS_THREAD || !claim(sb))
        return ERYX_MISUSE;
    if (sb->lender != pool) {
        leave(sb);
        eryx__set_errmsg(NULL, "misuse: eryx_pool_release: the sandbox was not acquired from "
                               "this pool");
        return ERYX_MISUSE;
    }
    if (sb->exec) {
        leave(sb);
        eryx__set_errmsg(NULL, "misuse: eryx_pool_release: an execution on the sandbox is not "
                               "finished: eryx_exec_finish it first");
        return ERYX_MISUSE;
    }
    int rc = ERYX_NOMEM;
    eryx_sandbox *fresh = eryx__handle_open(ERYX__H_SANDBOX, sb);
    if (fresh && eryx__handle_close(*h, ERYX__H_SANDBOX)) {
        *h = fresh;
        sb->lender = NULL;
        rc = ERYX_OK;
    } else if (fresh) {
        eryx__handle_close(fresh, ERYX__H_SANDBOX);
        rc = ERYX_MISUSE;
    }
    leave(sb);
    return rc;
}

void eryx__sandbox_lend(eryx_sandbox *h, const void *pool)
{
    eryx_sandbox *sb = get_sandbox(h);
    if (sb)
        sb->lender = pool;
}

void eryx__sandbox_forget_runs(eryx_sandbox *h)
{
    eryx_sandbox *sb = get_sandbox(h);
    if (sb)
        sb->run_count = 0;
}

const char *eryx_errmsg(const eryx_sandbox *h)
{
    if (!h)
        return eryx__errmsg(NULL);
    eryx_sandbox *sb = get_sandbox(h);
    return sb ? eryx__errmsg(sb) : "not a sandbox (freed?)";
}

int eryx_sandbox_interrupt(eryx_sandbox *h)
{
    /* No busy flag here: this is the call made while another thread runs. */
    eryx_sandbox *sb = get_sandbox(h);
    return sb ? eryx__sandbox_interrupt(sb) : ERYX_MISUSE;
}

int eryx_sandbox_reset(eryx_sandbox *h)
{
    int rc;
    eryx_sandbox *sb = enter_handle(h, "eryx_sandbox_reset", 1, 1, &rc);
    if (!sb)
        return rc;
    rc = eryx__sandbox_reset(sb);
    leave(sb);
    return rc;
}

int eryx_sandbox_fork(eryx_sandbox *h, eryx_sandbox **out)
{
    if (!out)
        return misuse(NULL, "eryx_sandbox_fork: out is NULL");
    *out = NULL;
    int rc;
    eryx_sandbox *sb = enter_handle(h, "eryx_sandbox_fork", 1, 0, &rc);
    if (!sb)
        return rc;
    eryx_sandbox *child = NULL;
    rc = eryx__sandbox_fork(sb, &child);
    leave(sb);
    return rc == ERYX_OK ? hand_out(child, out) : rc;
}

/* eryx_sandbox_save, _save_at and _save_fd: to name in dir, or to fd when
 * name is NULL. */
static int save(eryx_sandbox *h, int dir, const char *name, int fd, const char *fn)
{
    int rc;
    eryx_sandbox *sb = enter_handle(h, fn, 1, 0, &rc);
    if (!sb)
        return rc;
    rc = eryx__sandbox_save(sb, dir, name, fd);
    leave(sb);
    return rc;
}

int eryx_sandbox_save(eryx_sandbox *h, const char *path)
{
    if (!path)
        return refuse(h, "eryx_sandbox_save: path is NULL");
    return save(h, AT_FDCWD, path, -1, "eryx_sandbox_save");
}

int eryx_sandbox_save_at(eryx_sandbox *h, int dirfd, const char *name)
{
    if (!name || (dirfd < 0 && dirfd != AT_FDCWD))
        return refuse(h, "eryx_sandbox_save_at: name is NULL, or dirfd is negative and "
                         "not AT_FDCWD");
    return save(h, dirfd, name, -1, "eryx_sandbox_save_at");
}

int eryx_sandbox_save_fd(eryx_sandbox *h, int fd)
{
    if (fd < 0)
        return refuse(h, "eryx_sandbox_save_fd: fd is negative");
    return save(h, AT_FDCWD, NULL, fd, "eryx_sandbox_save_fd");
}

/* eryx_sandbox_load and _load_fd: from path, or from fd when path is NULL. */
static int load(eryx_runtime *rth, const eryx_sandbox_config *given, const char *path, int fd,
                eryx_sandbox **out)
{
    eryx__clear_errmsg(NULL);
    if (!out || (!path && fd < 0))
        return misuse(NULL, "eryx_sandbox_load: out or path is NULL, or fd is negative");
    *out = NULL;
    eryx_runtime *rt = get_runtime(rth);
    if (!rt)
        return misuse(NULL, "eryx_sandbox_load: not a runtime");
    eryx__config_copy cfg;
    int rc = eryx__sandbox_config_take(given, &cfg);
    eryx_sandbox *sb = NULL;
    if (rc == ERYX_OK)
        rc = eryx__sandbox_load(rt, &cfg.cfg, path, fd, &sb);
    eryx__config_copy_free(&cfg);
    return rc == ERYX_OK ? hand_out(sb, out) : rc;
}

int eryx_sandbox_load(eryx_runtime *rth, const eryx_sandbox_config *given, const char *path,
                      eryx_sandbox **out)
{
    return load(rth, given, path, -1, out);
}

int eryx_sandbox_load_fd(eryx_runtime *rth, const eryx_sandbox_config *given, int fd,
                         eryx_sandbox **out)
{
    return load(rth, given, NULL, fd, out);
}

int eryx_sandbox_set_callbacks(eryx_sandbox *h, const eryx_callback *cbs, size_t n)
{
    if (n && !cbs)
        return refuse(h, "eryx_sandbox_set_callbacks: cbs is NULL, n is not 0");
    int rc;
    eryx_sandbox *sb = enter_handle(h, "eryx_sandbox_set_callbacks", 1, 1, &rc);
    if (!sb)
        return rc;
    eryx_callback *copy = NULL;
    rc = eryx__callbacks_take(cbs, n, &copy);
    if (rc == ERYX_OK)
        rc = eryx__callbacks_set(sb, copy, n);
    if (rc != ERYX_OK) /* the core's message went to the thread */
        eryx__set_errmsg(sb, "%s", eryx__errmsg(NULL));
    free(copy);
    leave(sb);
    return rc;
}

uint64_t eryx_sandbox_run_count(const eryx_sandbox *h)
{
    eryx_sandbox *sb = get_sandbox(h);
    return sb ? sb->run_count : 0;
}

int eryx_sandbox_is_dead(const eryx_sandbox *h)
{
    eryx_sandbox *sb = get_sandbox(h);
    return sb ? sb->state == ERYX__SB_DEAD : 1;
}

int eryx_sandbox_export_state(eryx_sandbox *h, void **data, size_t *len, char **skipped)
{
    if (!data || !len || !skipped)
        return refuse(h, "eryx_sandbox_export_state: NULL out");
    *data = NULL;
    *len = 0;
    *skipped = NULL;
    int rc;
    eryx_sandbox *sb = enter_handle(h, "eryx_sandbox_export_state", 1, 0, &rc);
    if (!sb)
        return rc;
    rc = eryx__sandbox_export_state(sb, data, len, skipped);
    leave(sb);
    return rc;
}

#define MAX_STATE_BYTES (64u << 20)

int eryx_sandbox_import_state(eryx_sandbox *h, const void *data, size_t len, char **failed)
{
    if (!failed || (!data && len))
        return refuse(h, "eryx_sandbox_import_state: NULL argument");
    *failed = NULL;
    int rc;
    eryx_sandbox *sb = enter_handle(h, "eryx_sandbox_import_state", 1, 0, &rc);
    if (!sb)
        return rc;
    if (len > MAX_STATE_BYTES) {
        eryx__set_errmsg(sb, "state of %zu bytes is over the 64 MiB limit", len);
        rc = ERYX_INVALID;
    } else {
        rc = eryx__sandbox_import_state(sb, data ? data : "", len, failed);
    }
    leave(sb);
    return rc;
}

void eryx_free(void *p)
{
    free(p);
}

int eryx_sandbox_clear(eryx_sandbox *h)
{
    int rc;
    eryx_sandbox *sb = enter_handle(h, "eryx_sandbox_clear", 1, 0, &rc);
    if (!sb)
        return rc;
    rc = eryx__sandbox_clear(sb);
    leave(sb);
    return rc;
}

/* ---- executions ----------------------------------------------------------- */

/* eryx_exec_start and _start_journaled (j not NULL): the journal is
 * claimed here for the execution, which gives it back when it is freed. */
static int start(eryx_sandbox *h, const char *code, size_t len, const eryx_run_options *given,
                 eryx_journal *j, eryx_exec **out)
{
    eryx_sandbox *sb = get_sandbox(h);
    if (!sb) {
        eryx__set_errmsg(NULL, "misuse: eryx_exec_start: not a sandbox (NULL or freed)");
        return ERYX_MISUSE;
    }
    if (!out || (!code && len))
        return refuse(h, "eryx_exec_start: out is NULL, or code is NULL with len > 0");
    *out = NULL;
    int rc, unused = 0;
    if ((rc = enter(h, sb, 1, 0)) != ERYX_OK)
        return rc;
    /* Inside: the options' refusals are written on the sandbox's message. */
    eryx_run_options opts;
    if ((rc = eryx__run_options_take(sb, given, &opts)) != ERYX_OK) {
        leave(sb);
        return rc;
    }
    if (j && !atomic_compare_exchange_strong(&j->busy, &unused, 1)) {
        rc = misuse(sb, "eryx_exec_start_journaled: another execution uses the journal");
        leave(sb);
        return rc;
    }
    eryx_exec *ex = NULL;
    rc = j ? eryx__exec_start_journaled(sb, code, len, &opts, j, &ex)
           : eryx__exec_start(sb, 0, code ? code : "", len, &opts, &ex);
    if (rc != ERYX_OK && j)
        atomic_store(&j->busy, 0);
    if (rc == ERYX_OK && !(ex->handle = eryx__handle_open(ERYX__H_EXEC, ex))) {
        eryx__exec_finish(ex, NULL); /* abandoned: the sandbox is dead */
        eryx__set_errmsg(sb, "out of memory for a handle");
        rc = ERYX_NOMEM;
    }
    if (rc == ERYX_OK)
        *out = ex->handle;
    leave(sb);
    return rc;
}

int eryx_exec_start(eryx_sandbox *h, const char *code, size_t len,
                    const eryx_run_options *given, eryx_exec **out)
{
    return start(h, code, len, given, NULL, out);
}

int eryx_exec_start_journaled(eryx_sandbox *h, const char *code, size_t len,
                              const eryx_run_options *given, eryx_journal *j, eryx_exec **out)
{
    if (!j)
        return refuse(h, "eryx_exec_start_journaled: the journal is NULL");
    return start(h, code, len, given, j, out);
}

/* The execution of a handle with its sandbox entered, or NULL. */
static eryx_exec *enter_exec(const eryx_exec *h, const char *fn, int *rc)
{
    eryx_exec *ex = get_exec(h);
    if (!ex) {
        eryx__set_errmsg(NULL, "misuse: %s: not a live execution", fn);
        *rc = ERYX_MISUSE;
        return NULL;
    }
    if (!claim(ex->sb)) {
        *rc = busy(ex->sb);
        return NULL;
    }
    /* This thread runs the execution's own guest code (an output handler
     * given the handle): a finish would free the execution under the step
     * that runs it, a step would resume the fiber it is on. */
    if (ex->sb->depth > 1 && eryx__engine_thread_in_guest()) {
        *rc = misuse(ex->sb, "an execution cannot be driven from inside its own guest code "
                             "(an output, trace or stdin handler)");
        leave(ex->sb);
        return NULL;
    }
    return ex;
}

int eryx_exec_step(eryx_exec *h)
{
    int rc;
    eryx_exec *ex = enter_exec(h, "eryx_exec_step", &rc);
    if (!ex)
        return rc;
    rc = eryx__exec_step(ex);
    leave(ex->sb);
    return rc;
}

int eryx_exec_finish(eryx_exec *h, eryx_result **out)
{
    if (out)
        *out = NULL;
    int rc;
    eryx_exec *ex = enter_exec(h, "eryx_exec_finish", &rc);
    if (!ex)
        return rc;
    eryx_sandbox *sb = ex->sb;
    rc = eryx__exec_finish(ex, out);
    leave(sb);
    return rc;
}

eryx_call *eryx_exec_next_call(eryx_exec *h)
{
    int rc;
    eryx_exec *ex = enter_exec(h, "eryx_exec_next_call", &rc);
    if (!ex)
        return NULL;
    eryx_call *c = eryx__exec_next_call(ex), *handle = NULL;
    if (c && !(handle = eryx__handle_open(ERYX__H_CALL, c)))
        eryx__call_fail(c, ERYX_CALL_FAILED, "out of memory on the host");
    leave(ex->sb);
    return handle;
}

/* The three below read the execution without entering its sandbox: they
 * are what an event loop asks between steps, possibly from a notify. */
uint64_t eryx_exec_deadline_ns(const eryx_exec *h)
{
    eryx_exec *ex = get_exec(h);
    return ex ? eryx__exec_deadline(ex) : 0;
}

int eryx_exec_ready(const eryx_exec *h)
{
    eryx_exec *ex = get_exec(h);
    return ex ? eryx__exec_ready(ex) : 0;
}

void eryx_exec_set_notify(eryx_exec *h, void (*notify)(void *ud), void *ud)
{
    eryx_exec *ex = get_exec(h);
    if (ex)
        eryx__exec_set_notify(ex, notify, ud);
}

/* Read between steps by the thread that steps (the count changes only
 * inside a step). */
size_t eryx_exec_replayed(const eryx_exec *h)
{
    eryx_exec *ex = get_exec(h);
    return ex ? ex->n_replayed : 0;
}

int eryx_exec_suspend(eryx_exec *h)
{
    int rc;
    eryx_exec *ex = enter_exec(h, "eryx_exec_suspend", &rc);
    if (!ex)
        return rc;
    eryx_sandbox *sb = ex->sb;
    rc = eryx__exec_suspend(ex);
    leave(sb);
    return rc;
}

/* ---- journals ------------------------------------------------------------- */
/* Plain data, not handles (like results): NULL is checked, and a journal an
 * execution records into is refused (its busy flag). */

static int journal_misuse(const char *what)
{
    eryx__set_errmsg(NULL, "misuse: %s", what);
    return ERYX_MISUSE;
}

int eryx_journal_new(eryx_journal **out)
{
    if (!out)
        return journal_misuse("eryx_journal_new: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? ERYX_OK : ERYX_NOMEM;
}

void eryx_journal_free(eryx_journal *j)
{
    if (j && !atomic_load(&j->busy))
        eryx__journal_free(j);
}

int eryx_journal_save(const eryx_journal *j, void **data, size_t *len)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!j || !data || !len)
        return journal_misuse("eryx_journal_save: NULL argument");
    if (atomic_load(&j->busy))
        return journal_misuse("eryx_journal_save: an execution records into the journal");
    return eryx__journal_save(j, data, len);
}

int eryx_journal_load(const void *data, size_t len, eryx_journal **out)
{
    eryx__clear_errmsg(NULL);
    if (out)
        *out = NULL;
    if (!out || (!data && len))
        return journal_misuse("eryx_journal_load: NULL argument");
    return eryx__journal_load(data ? data : "", len, out);
}

size_t eryx_journal_count(const eryx_journal *j)
{
    return j && !atomic_load(&j->busy) ? j->n : 0;
}

size_t eryx_journal_pending(const eryx_journal *j)
{
    return j && !atomic_load(&j->busy) ? eryx__journal_pending(j) : 0;
}

/* ---- calls ---------------------------------------------------------------- */

int eryx_call_reply(eryx_call *h, const char *json, size_t len)
{
    eryx_call *c = eryx__handle_close(h, ERYX__H_CALL);
    return c ? eryx__call_reply(c, json, len) : ERYX_MISUSE;
}

int eryx_call_fail(eryx_call *h, int kind, const char *message)
{
    eryx_call *c = eryx__handle_close(h, ERYX__H_CALL);
    if (!c)
        return ERYX_MISUSE;
    if (kind < ERYX_CALL_FAILED || kind > ERYX_CALL_TIMEOUT) {
        /* Still answered (the call is released either way): as failed. */
        eryx__call_fail(c, ERYX_CALL_FAILED, message);
        eryx__set_errmsg(NULL, "misuse: eryx_call_fail: kind %d is no eryx_call_error (the "
                               "call failed as ERYX_CALL_FAILED)", kind);
        return ERYX_MISUSE;
    }
    return eryx__call_fail(c, kind, message);
}

int eryx_call_pending(const eryx_call *h)
{
    eryx_call *c = get_call(h);
    return c ? eryx__call_pending(c) : 0;
}

void eryx__call_handle_set_queued(const eryx_call *h, int queued)
{
    eryx_call *c = get_call(h);
    if (c)
        eryx__call_set_queued(c, queued);
}

const char *eryx_call_name(const eryx_call *h)
{
    eryx_call *c = get_call(h);
    return c ? c->name : NULL;
}

const char *eryx_call_args(const eryx_call *h)
{
    eryx_call *c = get_call(h);
    return c ? c->args : NULL;
}

uint64_t eryx_call_id(const eryx_call *h)
{
    eryx_call *c = get_call(h);
    return c ? c->id : 0;
}

void eryx__call_handler(const eryx_call *h, eryx_callback_fn *handler, void **user_data,
                        unsigned *flags)
{
    eryx_call *c = get_call(h);
    *handler = c ? c->handler : NULL;
    *user_data = c ? c->user_data : NULL;
    *flags = c ? c->flags : 0;
}
