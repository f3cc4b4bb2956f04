/*
 * eryx._eryx: sandboxes, executions of the non-blocking core, calls, pools.
 */
#include "pyeryx.h"

#include <structmember.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Ctrl-C during a blocking run on the main thread                           */
/*
 * Python's SIGINT handler only sets a flag that the interpreter checks
 * between bytecodes, and the main thread is inside guest code with the GIL
 * released: the KeyboardInterrupt would wait for the run to end (up to its
 * time limit). So while a run is in progress on the main thread, a chained
 * SIGINT handler writes a byte to a pipe (async-signal-safe) and calls
 * Python's handler as before; a helper thread reading the pipe interrupts
 * the running sandbox (eryx_sandbox_interrupt is not async-signal-safe, so
 * it cannot be called from the handler). The run then returns, and the
 * pending KeyboardInterrupt is raised in place of its result. A program
 * that installs a SIGINT handler of its own replaces ours (asyncio.run
 * does, for its run, and puts Python's back after it): each run on the
 * main thread chains the handler it finds again, so that Ctrl-C still
 * stops the sandbox (it never did after an asyncio.run before).
 */
static pthread_mutex_t sigint_mu = PTHREAD_MUTEX_INITIALIZER;
static eryx_sandbox *sigint_target;   /* the main thread's running sandbox */
static unsigned long sigint_hits;     /* Ctrl-Cs that interrupted a target */
/* SIGINTs received (the handler counts them; lock-free, so safe there),
 * and of those, the ones already given to a run: by the helper thread
 * (the target it interrupted) or by a run that ended (it saw them before
 * the helper did, which a loaded machine allows: the helper must not give
 * them to the next run then). sigint_given under sigint_mu. */
static _Atomic unsigned long sigint_signals;
static unsigned long sigint_given;
static int sigint_pipe[2] = {-1, -1};
static struct sigaction sigint_prev;
static int sigint_state;              /* 0 untried, 1 installed, -1 not possible */
static pthread_t main_thread;

static void sigint_handler(int sig, siginfo_t *info, void *uctx)
{
    int saved = errno;
    char c = 1;
    atomic_fetch_add(&sigint_signals, 1);
    ssize_t w = write(sigint_pipe[1], &c, 1);
    (void)w;
    errno = saved;
    if (sigint_prev.sa_flags & SA_SIGINFO) {
        if (sigint_prev.sa_sigaction)
            sigint_prev.sa_sigaction(sig, info, uctx);
    } else if (sigint_prev.sa_handler != SIG_IGN && sigint_prev.sa_handler != SIG_DFL &&
               sigint_prev.sa_handler) {
        sigint_prev.sa_handler(sig);
    }
}

static void *sigint_thread(void *arg)
{
    (void)arg;
    for (;;) {
        char buf[16];
        ssize_t n = read(sigint_pipe[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        pthread_mutex_lock(&sigint_mu);
        unsigned long signals = atomic_load(&sigint_signals);
        if (sigint_target && signals != sigint_given) {
            eryx_sandbox_interrupt(sigint_target);
            sigint_hits++;
        }
        sigint_given = signals;
        pthread_mutex_unlock(&sigint_mu);
    }
}

/* Starts the helper thread and its pipe, once (the handler is chained by
 * sigint_rechain, at each run). Called with the GIL held, on the main
 * thread. */
static void sigint_install(void)
{
    if (sigint_state != 0)
        return;
    sigint_state = -1;
    if (pipe2(sigint_pipe, O_CLOEXEC) < 0)
        return;
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the helper takes no signals */
    int rc = pthread_create(&t, &attr, sigint_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(sigint_pipe[0]);
        close(sigint_pipe[1]);
        return;
    }
    sigint_state = 1;
}

void pyeryx_sigint_init(void)
{
    main_thread = pthread_self();
}

/* Chains the handler in place (Python's, or one a program put in place of
 * ours), unless SIGINT is ignored or left to the default (then Ctrl-C is
 * not Python's to turn into KeyboardInterrupt). Main thread, GIL held:
 * ours is not installed, so the handler does not read sigint_prev while
 * it changes. 1 if ours is in place. */
static int sigint_rechain(void)
{
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) < 0)
        return 0;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == sigint_handler)
        return 1;
    if (!(cur.sa_flags & SA_SIGINFO) && (cur.sa_handler == SIG_IGN || cur.sa_handler == SIG_DFL))
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sigint_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | (cur.sa_flags & SA_RESTART);
    sigemptyset(&sa.sa_mask);
    sigint_prev = cur;
    return sigaction(SIGINT, &sa, NULL) == 0;
}

/* A run on the main thread that Ctrl-C may stop. */
typedef struct sigint_run {
    eryx_sandbox *outer;    /* the run this one is nested in (a callback on
                             * the main thread ran it), target again after */
    unsigned long hits;     /* sigint_hits when it began */
    unsigned long signals;  /* sigint_signals when it began */
} sigint_run;

/* Whether this run should be interruptible by Ctrl-C (main thread). */
static int sigint_begin(eryx_sandbox *sb, sigint_run *r)
{
    if (!pthread_equal(pthread_self(), main_thread))
        return 0;
    sigint_install();
    if (sigint_state != 1 || !sigint_rechain())
        return 0;
    pthread_mutex_lock(&sigint_mu);
    r->outer = sigint_target;
    r->hits = sigint_hits;
    r->signals = atomic_load(&sigint_signals);
    sigint_target = sb;
    pthread_mutex_unlock(&sigint_mu);
    return 1;
}

/* Ends the run; 1 if a Ctrl-C interrupted it, or came while it ran (the
 * helper thread may not have got to it yet: the run could end first, an
 * inline callback having taken the KeyboardInterrupt, and the Ctrl-C was
 * lost, or given to the next run). */
static int sigint_end(const sigint_run *r)
{
    pthread_mutex_lock(&sigint_mu);
    unsigned long signals = atomic_load(&sigint_signals);
    int hit = sigint_hits != r->hits || signals != r->signals;
    sigint_given = signals;
    sigint_target = r->outer;
    pthread_mutex_unlock(&sigint_mu);
    return hit;
}

/* Whether Python's SIGINT handler is its default, which raises
 * KeyboardInterrupt (a program's own may mean to go on): 1 or 0; -1 with
 * the KeyboardInterrupt of a Ctrl-C that came meanwhile set. GIL held, no
 * exception set. */
static int sigint_handler_is_default(void)
{
    PyObject *mod = PyImport_ImportModule("signal");
    PyObject *cur = mod ? PyObject_CallMethod(mod, "getsignal", "i", SIGINT) : NULL;
    PyObject *def = mod ? PyObject_GetAttrString(mod, "default_int_handler") : NULL;
    int is = cur && cur == def;
    Py_XDECREF(cur);
    Py_XDECREF(def);
    Py_XDECREF(mod);
    if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        return -1;
    PyErr_Clear();
    return is;
}

/* After a run that Ctrl-C may have stopped (hit: it did): -1 with
 * KeyboardInterrupt raised, or what the program's handler raised. Python's
 * flag may already be gone, taken by Python code that ran meanwhile (an
 * inline callback, whose KeyboardInterrupt became the call's failure):
 * under Python's own handler the run's stop is a KeyboardInterrupt all the
 * same. It stops the run this one is nested in too (the program is to
 * stop; the outer run would have gone on after its callback failed). */
static int sigint_raise(const sigint_run *r, int hit)
{
    int rc = PyErr_CheckSignals();   /* a pending Ctrl-C first: nothing else takes it */
    if (rc == 0 && hit) {
        int is = sigint_handler_is_default();
        if (is > 0)
            PyErr_SetNone(PyExc_KeyboardInterrupt);
        rc = is != 0 ? -1 : 0;
    }
    if (rc < 0 && hit && r->outer && PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        pthread_mutex_lock(&sigint_mu);
        eryx_sandbox_interrupt(r->outer);
        sigint_hits++;
        pthread_mutex_unlock(&sigint_mu);
    }
    return rc;
}

/* Status codes of the guard below. */
static int sandbox_enter(pyeryx_sandbox *self)
{
    if (!self->sb) {
        PyErr_SetString(PyExc_ValueError, self->pool ? "this pooled sandbox was released"
                                                     : "this sandbox is closed");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(pyeryx_EryxError,
                        "this sandbox is already running code (a sandbox is used by one "
                        "thread at a time; use one per thread, or a SandboxPool)");
        return -1;
    }
    self->busy = 1;
    return 0;
}

static int pool_give_back(PyObject *pool, eryx_sandbox *sb);

PyObject *pyeryx_sandbox_wrap(eryx_sandbox *sb, PyObject *runtime, pyeryx_ctx *ctx,
                              PyObject *pool)
{
    pyeryx_sandbox *self = PyObject_GC_New(pyeryx_sandbox, &pyeryx_SandboxType);
    if (!self) {
        if (pool)
            pool_give_back(pool, sb);
        else
            eryx_sandbox_free(sb);
        return NULL;
    }
    self->sb = sb;
    self->runtime = runtime;
    Py_INCREF(runtime);
    self->pool = pool;
    Py_XINCREF(pool);
    self->ctx = ctx;
    pyeryx_ctx_incref(ctx);
    self->busy = 0;
    self->stateless = 0;
    self->weakreflist = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static void sandbox_close_now(pyeryx_sandbox *self)
{
    eryx_sandbox *sb = self->sb;
    self->sb = NULL;
    if (!sb)
        return;
    if (self->pool) {
        pool_give_back(self->pool, sb);
        return;
    }
    /* The GIL is kept: eryx_sandbox_interrupt from another Python thread
     * (which holds the GIL too) can then never meet a freed sandbox. */
    eryx_sandbox_free(sb);
}

static PyObject *sandbox_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *runtime;
    if (!PyArg_ParseTuple(args, "O!:Sandbox", &pyeryx_RuntimeType, &runtime))
        return NULL;
    pyeryx_config c;
    if (pyeryx_config_parse(&c, kw) < 0)
        return NULL;
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(((pyeryx_runtime *)runtime)->rt, &c.cfg, &sb);
    if (rc != ERYX_OK) {
        pyeryx_config_clear(&c);
        char text[1200];
        snprintf(text, sizeof text, "could not create the sandbox: %s", eryx_errmsg(NULL));
        return pyeryx_raise_as(rc == ERYX_INVALID ? PyExc_ValueError : pyeryx_InitializationError,
                               rc, text);
    }
    PyObject *o = pyeryx_sandbox_wrap(sb, runtime, c.ctx, NULL);
    pyeryx_config_clear(&c); /* eryx copied the config; o holds the ctx */
    return o;
}

/* The callables of the sandbox's ctx often refer back to it (a tool that
 * is a method of an object owning the sandbox, an on_stdout closure): a
 * cycle the collector must see, or every such sandbox lived until exit.
 * Only a ctx this object alone holds is its to report: a pool's, or one a
 * callback in flight holds for a moment, is not (visited from each holder,
 * its references would be counted more than once). */
static int sandbox_traverse(pyeryx_sandbox *self, visitproc visit, void *arg)
{
    Py_VISIT(self->runtime);
    Py_VISIT(self->pool);
    pyeryx_ctx *c = self->ctx;
    if (c && atomic_load(&c->refs) == 1) {
        Py_VISIT(c->dispatch);
        Py_VISIT(c->on_stdout);
        Py_VISIT(c->on_stderr);
    }
    return 0;
}

/* Breaks such a cycle: the sandbox is closed first (none of its runs can
 * be in progress: a run holds its sandbox object), then its callables go. */
static int sandbox_gc_clear(pyeryx_sandbox *self)
{
    sandbox_close_now(self);
    pyeryx_ctx *c = self->ctx;
    self->ctx = NULL;
    pyeryx_ctx_decref(c);
    Py_CLEAR(self->pool);
    Py_CLEAR(self->runtime);
    return 0;
}

static void sandbox_dealloc(pyeryx_sandbox *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    sandbox_close_now(self);
    pyeryx_ctx_decref(self->ctx);
    Py_CLEAR(self->pool);
    Py_CLEAR(self->runtime);
    PyObject_GC_Del(self);
}

/* Code as UTF-8 bytes: a str (which must encode: no lone surrogates) or
 * bytes-like. */
static int code_arg(PyObject *code, const char **s, Py_ssize_t *n, Py_buffer *view)
{
    view->obj = NULL;
    if (PyUnicode_Check(code)) {
        *s = PyUnicode_AsUTF8AndSize(code, n);
        return *s ? 0 : -1;
    }
    if (PyObject_CheckBuffer(code)) {
        if (PyObject_GetBuffer(code, view, PyBUF_SIMPLE) < 0)
            return -1;
        *s = view->buf;
        *n = view->len;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "code must be str or bytes, not %.100s",
                 Py_TYPE(code)->tp_name);
    return -1;
}

typedef struct run_args {
    PyObject *code, *filename, *argv, *stdin_, *on_stdout, *on_stderr;
    uint64_t timeout_ns, fuel;
    int mode;
    eryx_run_options opts;
    const char *src;
    Py_ssize_t len;
    Py_buffer view, stdin_view;
    const char **argv_c;
} run_args;

static void run_args_clear(run_args *a)
{
    if (a->view.obj)
        PyBuffer_Release(&a->view);
    if (a->stdin_view.obj)
        PyBuffer_Release(&a->stdin_view);
    PyMem_Free(a->argv_c);
    a->argv_c = NULL;
}

static int run_args_parse(run_args *a, PyObject *args, PyObject *kw, const char *fname)
{
    static char *kwlist[] = {"code", "timeout_ns", "fuel", "mode", "filename", "argv",
                             "stdin", "on_stdout", "on_stderr", NULL};
    PyObject *timeout = NULL, *fuel = NULL;
    memset(a, 0, sizeof *a);
    char fmt[64];
    snprintf(fmt, sizeof fmt, "O|OOiOOOOO:%s", fname);
    if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &a->code, &timeout, &fuel,
                                     &a->mode, &a->filename, &a->argv, &a->stdin_,
                                     &a->on_stdout, &a->on_stderr))
        return -1;
    if (pyeryx_u64(timeout, "timeout_ns", 0, &a->timeout_ns) < 0 ||
        pyeryx_u64(fuel, "fuel", 0, &a->fuel) < 0)
        return -1;
    if (a->mode < 0 || a->mode > 2) {
        PyErr_SetString(PyExc_ValueError, "mode must be 0 (code), 1 (module) or 2 (interactive)");
        return -1;
    }
    if (code_arg(a->code, &a->src, &a->len, &a->view) < 0)
        return -1;
    eryx_run_options_default(&a->opts);
    a->opts.mode = (eryx_run_mode)a->mode;
    a->opts.timeout_ns = a->timeout_ns;
    a->opts.fuel = a->fuel;
    if (a->filename && a->filename != Py_None) {
        if (!PyUnicode_Check(a->filename) || !(a->opts.filename = PyUnicode_AsUTF8(a->filename))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "filename must be a str");
            goto fail;
        }
    }
    if (a->argv && a->argv != Py_None) {
        if (!PyList_Check(a->argv) && !PyTuple_Check(a->argv)) {
            PyErr_SetString(PyExc_TypeError, "argv must be a list of str");
            goto fail;
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(a->argv);
        a->argv_c = PyMem_Calloc((size_t)n + 1, sizeof(char *));
        if (!a->argv_c) {
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *s = PySequence_Fast_GET_ITEM(a->argv, i);
            if (!PyUnicode_Check(s) || !(a->argv_c[i] = PyUnicode_AsUTF8(s))) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "argv must be a list of str");
                goto fail;
            }
        }
        a->opts.argv = a->argv_c;
    }
    if (a->stdin_ && a->stdin_ != Py_None) {
        if (PyObject_GetBuffer(a->stdin_, &a->stdin_view, PyBUF_SIMPLE) < 0)
            goto fail;
        a->opts.stdin_data = a->stdin_view.buf;
        a->opts.stdin_len = (size_t)a->stdin_view.len;
    }
    for (int i = 0; i < 2; i++) {
        PyObject *f = i ? a->on_stderr : a->on_stdout;
        if (f && f != Py_None && !PyCallable_Check(f)) {
            PyErr_SetString(PyExc_TypeError, "on_stdout/on_stderr must be callable");
            goto fail;
        }
    }
    return 0;
fail:
    run_args_clear(a);
    return -1;
}

static PyObject *sandbox_run(pyeryx_sandbox *self, PyObject *args, PyObject *kw)
{
    run_args a;
    if (run_args_parse(&a, args, kw, "run") < 0)
        return NULL;
    if (sandbox_enter(self) < 0) {
        run_args_clear(&a);
        return NULL;
    }
    pyeryx_run run;
    pyeryx_run_begin(&run, self->ctx);
    if (a.on_stdout && a.on_stdout != Py_None)
        run.on_stdout = a.on_stdout;
    if (a.on_stderr && a.on_stderr != Py_None)
        run.on_stderr = a.on_stderr;
    eryx_sandbox *sb = self->sb;
    eryx_result *res = NULL;
    int rc = ERYX_OK;
    int fresh = self->stateless && eryx_sandbox_run_count(sb) > 0;
    sigint_run sr;
    int ctrl_c = sigint_begin(sb, &sr);
    Py_BEGIN_ALLOW_THREADS
    if (fresh)
        rc = eryx_sandbox_reset(sb);
    if (rc == ERYX_OK)
        rc = eryx_sandbox_run_ex(sb, a.src, (size_t)a.len, &a.opts, &res);
    Py_END_ALLOW_THREADS
    int hit = ctrl_c && sigint_end(&sr);
    self->busy = 0;
    run_args_clear(&a);
    if (pyeryx_run_end(&run) < 0) {
        eryx_result_free(res);
        return NULL;
    }
    /* A Ctrl-C that arrived during the run (it interrupted the run):
     * KeyboardInterrupt, as for any blocking call. */
    if (ctrl_c && sigint_raise(&sr, hit) < 0) {
        eryx_result_free(res);
        return NULL;
    }
    return pyeryx_result_or_raise(rc, res, eryx_errmsg(sb));
}

static int check_open(pyeryx_sandbox *self)
{
    if (!self->sb) {
        PyErr_SetString(PyExc_ValueError, self->pool ? "this pooled sandbox was released"
                                                     : "this sandbox is closed");
        return -1;
    }
    return 0;
}

/* reset, clear: run with the GIL released, guarded like a run. */
static PyObject *simple_op(pyeryx_sandbox *self, int (*op)(eryx_sandbox *), const char *what)
{
    if (sandbox_enter(self) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = op(self->sb);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc != ERYX_OK) {
        PyErr_Format(pyeryx_EryxError, "%s failed: %s: %s", what, eryx_errstr(rc),
                     eryx_errmsg(self->sb));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *sandbox_reset(pyeryx_sandbox *self, PyObject *u)
{
    return simple_op(self, eryx_sandbox_reset, "reset");
}

static PyObject *sandbox_clear(pyeryx_sandbox *self, PyObject *u)
{
    return simple_op(self, eryx_sandbox_clear, "clear");
}

static PyObject *sandbox_interrupt(pyeryx_sandbox *self, PyObject *u)
{
    if (self->sb)
        eryx_sandbox_interrupt(self->sb);
    Py_RETURN_NONE;
}

static PyObject *sandbox_close(pyeryx_sandbox *self, PyObject *u)
{
    if (self->busy) {
        PyErr_SetString(pyeryx_EryxError,
                        "cannot close a sandbox while it runs code (interrupt() it first)");
        return NULL;
    }
    sandbox_close_now(self);
    Py_RETURN_NONE;
}

static PyObject *sandbox_fork(pyeryx_sandbox *self, PyObject *u)
{
    if (sandbox_enter(self) < 0)
        return NULL;
    eryx_sandbox *child = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_sandbox_fork(self->sb, &child);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc != ERYX_OK) {
        PyErr_Format(pyeryx_EryxError, "fork failed: %s: %s", eryx_errstr(rc),
                     eryx_errmsg(self->sb));
        return NULL;
    }
    /* The fork's callbacks point at the same context: it shares it. */
    return pyeryx_sandbox_wrap(child, self->runtime, self->ctx, NULL);
}

/* save(path, dir_fd=None): eryx_sandbox_save, or eryx_sandbox_save_at
 * relative to dir_fd, as os.open's dir_fd resolves a path. */
static PyObject *sandbox_save(pyeryx_sandbox *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"path", "dir_fd", NULL};
    PyObject *path = NULL, *dir_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|$O:save", names, PyUnicode_FSConverter,
                                     &path, &dir_obj))
        return NULL;
    int dir_fd = -1;
    if (dir_obj != Py_None && (dir_fd = PyObject_AsFileDescriptor(dir_obj)) < 0) {
        Py_DECREF(path);
        return NULL;
    }
    if (sandbox_enter(self) < 0) {
        Py_DECREF(path);
        return NULL;
    }
    int rc;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    rc = dir_fd < 0 ? eryx_sandbox_save(self->sb, p) : eryx_sandbox_save_at(self->sb, dir_fd, p);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    Py_DECREF(path);
    if (rc != ERYX_OK) {
        PyErr_Format(rc == ERYX_IO ? PyExc_OSError : pyeryx_EryxError, "save failed: %s: %s",
                     eryx_errstr(rc), eryx_errmsg(self->sb));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *sandbox_export_state(pyeryx_sandbox *self, PyObject *u)
{
    if (sandbox_enter(self) < 0)
        return NULL;
    void *data = NULL;
    size_t len = 0;
    char *skipped = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_sandbox_export_state(self->sb, &data, &len, &skipped);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc != ERYX_OK) {
        eryx_free(data);
        eryx_free(skipped);
        PyErr_Format(pyeryx_ExecutionError, "exporting the state failed: %s: %s",
                     eryx_errstr(rc), eryx_errmsg(self->sb));
        return NULL;
    }
    PyObject *r = Py_BuildValue("(y#s)", (const char *)data, (Py_ssize_t)len,
                                skipped ? skipped : "[]");
    eryx_free(data);
    eryx_free(skipped);
    return r;
}

static PyObject *sandbox_import_state(pyeryx_sandbox *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (sandbox_enter(self) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    char *failed = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_sandbox_import_state(self->sb, view.buf, (size_t)view.len, &failed);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&view);
    if (rc != ERYX_OK) {
        eryx_free(failed);
        PyErr_Format(rc == ERYX_INVALID ? PyExc_ValueError : pyeryx_ExecutionError,
                     "importing the state failed: %s: %s", eryx_errstr(rc),
                     eryx_errmsg(self->sb));
        return NULL;
    }
    PyObject *r = PyUnicode_FromString(failed ? failed : "[]");
    eryx_free(failed);
    return r;
}

static PyObject *sandbox_get_dead(pyeryx_sandbox *self, void *u)
{
    return PyBool_FromLong(self->sb ? eryx_sandbox_is_dead(self->sb) : 1);
}

static PyObject *sandbox_get_closed(pyeryx_sandbox *self, void *u)
{
    return PyBool_FromLong(self->sb == NULL);
}

static PyObject *sandbox_get_busy(pyeryx_sandbox *self, void *u)
{
    return PyBool_FromLong(self->busy);
}

static PyObject *sandbox_get_run_count(pyeryx_sandbox *self, void *u)
{
    if (check_open(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(eryx_sandbox_run_count(self->sb));
}

static PyObject *sandbox_get_stateless(pyeryx_sandbox *self, void *u)
{
    return PyBool_FromLong(self->stateless);
}

static int sandbox_set_stateless(pyeryx_sandbox *self, PyObject *v, void *u)
{
    int t = v ? PyObject_IsTrue(v) : 0;
    if (t < 0)
        return -1;
    self->stateless = t;
    return 0;
}

/* The object of a sandbox eryx_sandbox_load* made (rc, msg: its status and
 * message), or the exception; c is cleared either way. */
static PyObject *loaded(int rc, const char *msg, eryx_sandbox *sb, PyObject *runtime,
                        pyeryx_config *c)
{
    PyObject *o = NULL;
    if (rc != ERYX_OK) {
        char text[1200];
        snprintf(text, sizeof text, "could not load the session: %s: %s", eryx_errstr(rc), msg);
        pyeryx_raise_as(rc == ERYX_IO ? PyExc_OSError : pyeryx_InitializationError, rc, text);
    } else
        o = pyeryx_sandbox_wrap(sb, runtime, c->ctx, NULL);
    pyeryx_config_clear(c);
    return o;
}

/* load(runtime, path_or_fd, **config): a session file by path, or read
 * from an open file descriptor's offset to its end (eryx_sandbox_load_fd;
 * the descriptor stays the caller's). */
static PyObject *sandbox_load(PyObject *cls, PyObject *args, PyObject *kw)
{
    PyObject *runtime, *where, *path = NULL;
    int fd = -1;
    if (!PyArg_ParseTuple(args, "O!O:load", &pyeryx_RuntimeType, &runtime, &where))
        return NULL;
    if (PyLong_Check(where)) {
        long v = PyLong_AsLong(where);
        if (v == -1 && PyErr_Occurred())
            return NULL;
        if (v < 0 || v > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "load: %ld is not a file descriptor", v);
            return NULL;
        }
        fd = (int)v;
    } else if (!PyUnicode_FSConverter(where, &path)) {
        return NULL;
    }
    pyeryx_config c;
    if (pyeryx_config_parse(&c, kw) < 0) {
        Py_XDECREF(path);
        return NULL;
    }
    eryx_sandbox *sb = NULL;
    int rc;
    char msg[1024];
    const char *p = path ? PyBytes_AS_STRING(path) : NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = p ? eryx_sandbox_load(((pyeryx_runtime *)runtime)->rt, &c.cfg, p, &sb)
           : eryx_sandbox_load_fd(((pyeryx_runtime *)runtime)->rt, &c.cfg, fd, &sb);
    snprintf(msg, sizeof msg, "%s", rc == ERYX_OK ? "" : eryx_errmsg(NULL));
    Py_END_ALLOW_THREADS
    Py_XDECREF(path);
    return loaded(rc, msg, sb, runtime, &c);
}

/* The session as bytes: eryx_sandbox_save_fd into a memfd, read back. */
static PyObject *sandbox_save_bytes(pyeryx_sandbox *self, PyObject *u)
{
    if (sandbox_enter(self) < 0)
        return NULL;
    int fd = memfd_create("eryx-session", MFD_CLOEXEC);
    if (fd < 0) {
        self->busy = 0;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int rc;
    off_t end = -1;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_sandbox_save_fd(self->sb, fd);
    if (rc == ERYX_OK)
        end = lseek(fd, 0, SEEK_CUR); /* the save leaves the offset at its end */
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc != ERYX_OK || end < 0) {
        close(fd);
        if (rc == ERYX_OK)
            return PyErr_SetFromErrno(PyExc_OSError);
        PyErr_Format(rc == ERYX_IO ? PyExc_OSError : pyeryx_EryxError, "save failed: %s: %s",
                     eryx_errstr(rc), eryx_errmsg(self->sb));
        return NULL;
    }
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)end);
    if (!b) {
        close(fd);
        return NULL;
    }
    char *p = PyBytes_AS_STRING(b);
    size_t got = 0, want = (size_t)end;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    while (got < want) {
        ssize_t n = pread(fd, p + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    Py_END_ALLOW_THREADS
    if (got != want) {
        Py_DECREF(b);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return b;
}

/* ------------------------------------------------------------------------ */
/* Executions (the non-blocking core)                                        */

typedef struct {
    PyObject_HEAD
    eryx_exec *ex;
    pyeryx_sandbox *owner;
    pthread_mutex_t notify_mu; /* notify_fd's: see exec_notify */
    int notify_fd;
    int done;       /* a step returned a final status */
    int final_rc;
    PyObject *on_stdout, *on_stderr;
    pyeryx_run stream;     /* between steps: a character a write cut */
    eryx_journal *journal; /* recorded into and replayed (owned), or NULL */
    size_t replayed;       /* eryx_exec_replayed, kept once ex is freed */
} pyeryx_exec;

typedef struct {
    PyObject_HEAD
    eryx_call *call;
    PyObject *name, *args;
    unsigned long long id;
} pyeryx_callobj;

/* Runs on the thread of a reply or a stop (eryx_exec_set_notify), while
 * the loop's thread may change notify_fd. A reply from Python (call.reply)
 * holds the GIL throughout, as set_notify_fd does, so those two never
 * overlap; but a network operation completes on the network layer's
 * thread and a stop (the time limit's watchdog) notifies from its own,
 * without the GIL. Read unlocked, notify_fd was a data race with them,
 * and a notify that had read the fd just before set_notify_fd(-1) could
 * write 8 bytes to whatever reused the number once the caller closed it.
 * eryx_exec_finish waits for notifies in flight, which makes the drivers'
 * usual order safe (finish or suspend, then close), but the journal's
 * driver closes its eventfd even when suspend() failed in its cleanup
 * and the execution lives on. So the fd is read and written to under
 * notify_mu, which set_notify_fd takes to change it: once
 * set_notify_fd(-1) returns, no notify writes to the old fd, and the
 * caller may close it. The section never blocks (the eventfd is
 * non-blocking) and takes nothing else. */
static void exec_notify(void *ud)
{
    pyeryx_exec *e = ud;
    uint64_t one = 1;
    pthread_mutex_lock(&e->notify_mu);
    int fd = e->notify_fd;
    if (fd >= 0) {
        ssize_t w = write(fd, &one, sizeof one);
        (void)w; /* EAGAIN: the counter is already non-zero, the loop will wake */
    }
    pthread_mutex_unlock(&e->notify_mu);
}

/* An Exec holding self (which must have been entered: its dealloc clears
 * the busy flag), with nothing started yet. */
static pyeryx_exec *exec_alloc(pyeryx_sandbox *self, const run_args *a)
{
    pyeryx_exec *e = PyObject_New(pyeryx_exec, &pyeryx_ExecType);
    if (!e) {
        self->busy = 0;
        return NULL;
    }
    e->ex = NULL;
    e->owner = self;
    Py_INCREF(self);
    pthread_mutex_init(&e->notify_mu, NULL);
    e->notify_fd = -1;
    e->done = 0;
    e->final_rc = ERYX_OK;
    memset(&e->stream, 0, sizeof e->stream);
    e->on_stdout = a->on_stdout && a->on_stdout != Py_None ? a->on_stdout : NULL;
    e->on_stderr = a->on_stderr && a->on_stderr != Py_None ? a->on_stderr : NULL;
    Py_XINCREF(e->on_stdout);
    Py_XINCREF(e->on_stderr);
    e->journal = NULL;
    e->replayed = 0;
    return e;
}

static PyObject *sandbox_exec_start(pyeryx_sandbox *self, PyObject *args, PyObject *kw)
{
    run_args a;
    if (run_args_parse(&a, args, kw, "exec_start") < 0)
        return NULL;
    if (sandbox_enter(self) < 0) {
        run_args_clear(&a);
        return NULL;
    }
    pyeryx_exec *e = exec_alloc(self, &a);
    if (!e) {
        run_args_clear(&a);
        return NULL;
    }
    int rc = ERYX_OK;
    eryx_sandbox *sb = self->sb;
    int fresh = self->stateless && eryx_sandbox_run_count(sb) > 0;
    Py_BEGIN_ALLOW_THREADS
    if (fresh)
        rc = eryx_sandbox_reset(sb);
    if (rc == ERYX_OK)
        rc = eryx_exec_start(sb, a.src, (size_t)a.len, &a.opts, &e->ex);
    Py_END_ALLOW_THREADS
    run_args_clear(&a);
    if (rc != ERYX_OK) {
        Py_DECREF(e); /* dealloc clears owner->busy */
        return pyeryx_raise_status(rc, eryx_errmsg(sb));
    }
    eryx_exec_set_notify(e->ex, exec_notify, e);
    return (PyObject *)e;
}

/* exec_start_journaled(journal, code, ...): exec_start recording into a
 * journal and replaying what it holds. journal: the bytes of a saved
 * journal (untrusted: eryx_journal_load checks them), or None for a new
 * one. A journal that does not load, or does not fit this execution
 * (other code, more entries than the sandbox's max_callbacks), raises
 * JournalError and nothing runs. */
static PyObject *sandbox_exec_start_journaled(pyeryx_sandbox *self, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "exec_start_journaled(journal, code, ...): journal is bytes or None");
        return NULL;
    }
    PyObject *jarg = PyTuple_GET_ITEM(args, 0);
    Py_buffer jview = {0};
    if (jarg != Py_None && PyObject_GetBuffer(jarg, &jview, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *rest = PyTuple_GetSlice(args, 1, PY_SSIZE_T_MAX);
    run_args a;
    int prc = rest ? run_args_parse(&a, rest, kw, "exec_start_journaled") : -1;
    Py_XDECREF(rest);
    if (prc < 0) {
        if (jview.obj)
            PyBuffer_Release(&jview);
        return NULL;
    }
    pyeryx_exec *e = sandbox_enter(self) < 0 ? NULL : exec_alloc(self, &a);
    if (!e) {
        run_args_clear(&a);
        if (jview.obj)
            PyBuffer_Release(&jview);
        return NULL;
    }
    eryx_sandbox *sb = self->sb;
    int fresh = self->stateless && eryx_sandbox_run_count(sb) > 0;
    int rc, journal_ok;
    char msg[1024] = "";
    Py_BEGIN_ALLOW_THREADS
    if (jview.obj) {
        rc = eryx_journal_load(jview.buf, (size_t)jview.len, &e->journal);
        if (rc != ERYX_OK)
            snprintf(msg, sizeof msg, "%s", eryx_errmsg(NULL));
    } else {
        rc = eryx_journal_new(&e->journal);
    }
    journal_ok = rc == ERYX_OK;
    if (rc == ERYX_OK && fresh)
        rc = eryx_sandbox_reset(sb);
    if (rc == ERYX_OK)
        rc = eryx_exec_start_journaled(sb, a.src, (size_t)a.len, &a.opts, e->journal, &e->ex);
    Py_END_ALLOW_THREADS
    run_args_clear(&a);
    if (jview.obj)
        PyBuffer_Release(&jview);
    if (rc != ERYX_OK) {
        if (!journal_ok && rc == ERYX_INVALID)
            PyErr_Format(pyeryx_JournalError, "the journal does not load: %s", msg);
        else if (rc == ERYX_INVALID)
            PyErr_Format(pyeryx_JournalError, "the journal does not fit this execution: %s",
                         eryx_errmsg(sb));
        else
            pyeryx_raise_status(rc, journal_ok ? eryx_errmsg(sb) : msg);
        Py_DECREF(e); /* dealloc clears owner->busy and frees the journal */
        return NULL;
    }
    eryx_exec_set_notify(e->ex, exec_notify, e);
    return (PyObject *)e;
}

static void exec_dealloc(pyeryx_exec *e)
{
    if (e->ex) {
        eryx_exec *ex = e->ex;
        e->ex = NULL;
        /* Abandoning an unfinished execution kills the sandbox (eryx.h). */
        Py_BEGIN_ALLOW_THREADS
        eryx_exec_finish(ex, NULL);
        Py_END_ALLOW_THREADS
    }
    eryx_journal_free(e->journal); /* after the execution that recorded into it */
    pthread_mutex_destroy(&e->notify_mu); /* no notify after the finish */
    if (e->owner) {
        e->owner->busy = 0;
        Py_CLEAR(e->owner);
    }
    Py_CLEAR(e->on_stdout);
    Py_CLEAR(e->on_stderr);
    PyObject_Free(e);
}

static int exec_check(pyeryx_exec *e)
{
    if (!e->ex) {
        PyErr_SetString(PyExc_ValueError, "this execution is finished");
        return -1;
    }
    return 0;
}

static PyObject *exec_step(pyeryx_exec *e, PyObject *args)
{
    int want_ctrl_c = 0;
    if (!PyArg_ParseTuple(args, "|p:step", &want_ctrl_c))
        return NULL;
    if (exec_check(e) < 0)
        return NULL;
    if (e->done)
        return PyLong_FromLong(e->final_rc);
    pyeryx_run run;
    pyeryx_run_begin(&run, e->owner->ctx);
    if (e->on_stdout)
        run.on_stdout = e->on_stdout;
    if (e->on_stderr)
        run.on_stderr = e->on_stderr;
    memcpy(run.held, e->stream.held, sizeof run.held);
    memcpy(run.n_held, e->stream.n_held, sizeof run.n_held);
    int rc;
    eryx_exec *ex = e->ex;
    /* Ctrl-C interrupts the guest, as during a blocking run; the caller
     * sees the KeyboardInterrupt as this step returns, before it takes the
     * step's calls (which it would otherwise drop unanswered). */
    sigint_run sr;
    int ctrl_c = want_ctrl_c && sigint_begin(e->owner->sb, &sr);
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_exec_step(ex);
    Py_END_ALLOW_THREADS
    int hit = ctrl_c && sigint_end(&sr);
    if (rc != ERYX_PENDING) {
        e->done = 1;
        e->final_rc = rc;
    }
    /* Until the last step, a character a write cut waits for the rest. */
    int failed = e->done ? pyeryx_run_end(&run) : pyeryx_run_pause(&run);
    memcpy(e->stream.held, run.held, sizeof run.held);
    memcpy(e->stream.n_held, run.n_held, sizeof run.n_held);
    if (failed < 0)
        return NULL;
    if (ctrl_c && sigint_raise(&sr, hit) < 0)
        return NULL;
    return PyLong_FromLong(rc);
}

static PyObject *exec_calls(pyeryx_exec *e, PyObject *u)
{
    if (exec_check(e) < 0)
        return NULL;
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    eryx_call *c;
    while ((c = eryx_exec_next_call(e->ex))) {
        pyeryx_callobj *o = PyObject_New(pyeryx_callobj, &pyeryx_CallType);
        if (!o) {
            eryx_call_fail(c, ERYX_CALL_FAILED, "host out of memory");
            Py_DECREF(list);
            return NULL;
        }
        o->call = c;
        o->id = eryx_call_id(c);
        o->name = PyUnicode_FromString(eryx_call_name(c));
        o->args = PyUnicode_DecodeUTF8(eryx_call_args(c), (Py_ssize_t)strlen(eryx_call_args(c)),
                                       "replace");
        if (!o->name || !o->args || PyList_Append(list, (PyObject *)o) < 0) {
            Py_DECREF(o);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(o);
    }
    return list;
}

static PyObject *exec_finish(pyeryx_exec *e, PyObject *u)
{
    if (exec_check(e) < 0)
        return NULL;
    if (!e->done) {
        PyErr_SetString(PyExc_ValueError, "the execution has not finished: step it until it "
                                          "returns a status other than PENDING");
        return NULL;
    }
    eryx_exec *ex = e->ex;
    e->ex = NULL;
    e->replayed = eryx_exec_replayed(ex);
    eryx_result *res = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_exec_finish(ex, &res);
    Py_END_ALLOW_THREADS
    if (rc == ERYX_OK)
        rc = e->final_rc;
    pyeryx_sandbox *owner = e->owner;
    e->owner = NULL;
    owner->busy = 0;
    PyObject *r = pyeryx_result_or_raise(rc, res, owner->sb ? eryx_errmsg(owner->sb) : "");
    Py_DECREF(owner);
    return r;
}

static PyObject *exec_suspend(pyeryx_exec *e, PyObject *u)
{
    if (exec_check(e) < 0)
        return NULL;
    if (!e->journal) {
        PyErr_SetString(PyExc_ValueError, "only a journaled execution can be suspended");
        return NULL;
    }
    if (e->done) {
        PyErr_SetString(PyExc_ValueError, "the execution has finished: take its result with "
                                          "finish()");
        return NULL;
    }
    eryx_exec *ex = e->ex;
    e->replayed = eryx_exec_replayed(ex);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_exec_suspend(ex);
    Py_END_ALLOW_THREADS
    pyeryx_sandbox *owner = e->owner;
    if (rc != ERYX_OK) /* nothing happened: the execution is still ours */
        return pyeryx_raise_status(rc, owner->sb ? eryx_errmsg(owner->sb) : "");
    e->ex = NULL;
    e->done = 1;
    e->final_rc = ERYX_PENDING;
    e->owner = NULL;
    owner->busy = 0;
    Py_DECREF(owner);
    Py_RETURN_NONE;
}

static PyObject *exec_journal(pyeryx_exec *e, PyObject *u)
{
    if (!e->journal) {
        PyErr_SetString(PyExc_ValueError, "this execution is not journaled");
        return NULL;
    }
    if (e->ex) {
        PyErr_SetString(PyExc_ValueError, "the execution still records into its journal: "
                                          "finish() or suspend() it first");
        return NULL;
    }
    void *data = NULL;
    size_t len = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_journal_save(e->journal, &data, &len);
    Py_END_ALLOW_THREADS
    if (rc != ERYX_OK)
        return pyeryx_raise_status(rc, eryx_errmsg(NULL));
    PyObject *b = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    eryx_free(data);
    return b;
}

static PyObject *exec_get_replayed(pyeryx_exec *e, void *u)
{
    return PyLong_FromSize_t(e->ex ? eryx_exec_replayed(e->ex) : e->replayed);
}

static PyObject *exec_set_notify_fd(pyeryx_exec *e, PyObject *arg)
{
    int fd = (int)PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    /* A notify may be writing to the old fd (exec_notify). Taken with the
     * GIL held: the holder never waits for anything. */
    pthread_mutex_lock(&e->notify_mu);
    e->notify_fd = fd;
    pthread_mutex_unlock(&e->notify_mu);
    Py_RETURN_NONE;
}

static PyObject *exec_get_deadline(pyeryx_exec *e, void *u)
{
    return PyLong_FromUnsignedLongLong(e->ex ? eryx_exec_deadline_ns(e->ex) : 0);
}

static PyObject *exec_get_ready(pyeryx_exec *e, void *u)
{
    return PyBool_FromLong(e->ex ? eryx_exec_ready(e->ex) : 0);
}

static PyObject *exec_get_done(pyeryx_exec *e, void *u)
{
    return PyBool_FromLong(e->done);
}

static PyMethodDef exec_methods[] = {
    {"step", (PyCFunction)exec_step, METH_VARARGS,
     "step(ctrl_c=False): runs the guest until it finishes or waits (GIL released); returns "
     "the status (PENDING while it waits). ctrl_c: on the main thread, Ctrl-C interrupts "
     "the guest."},
    {"suspend", (PyCFunction)exec_suspend, METH_NOARGS,
     "Ends a journaled execution that waits (eryx_exec_suspend): the sandbox is dead, the "
     "journal keeps the unanswered calls as pending."},
    {"journal", (PyCFunction)exec_journal, METH_NOARGS,
     "The journal's bytes (eryx_journal_save), once finished or suspended."},
    {"calls", (PyCFunction)exec_calls, METH_NOARGS,
     "The calls the guest issued since the last time they were asked for."},
    {"finish", (PyCFunction)exec_finish, METH_NOARGS,
     "The ExecuteResult of a finished execution, or the exception it raised."},
    {"set_notify_fd", (PyCFunction)exec_set_notify_fd, METH_O,
     "An eventfd written to when stepping becomes worthwhile (a reply, a stop); -1: "
     "none. Once it returns, nothing writes to the previous fd: it may be closed."},
    {NULL}};

static PyGetSetDef exec_getset[] = {
    {"deadline_ns", (getter)exec_get_deadline, NULL,
     "CLOCK_MONOTONIC time (ns) at which to step even without replies, or 0.", NULL},
    {"ready", (getter)exec_get_ready, NULL, "True if worth stepping now.", NULL},
    {"done", (getter)exec_get_done, NULL, "True once a step returned a final status.", NULL},
    {"replayed", (getter)exec_get_replayed, NULL,
     "The journal's answered calls given back so far (eryx_exec_replayed).", NULL},
    {NULL}};

PyTypeObject pyeryx_ExecType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eryx._eryx.Exec",
    .tp_basicsize = sizeof(pyeryx_exec),
    .tp_dealloc = (destructor)exec_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One execution driven step by step (eryx_exec_*).",
    .tp_methods = exec_methods,
    .tp_getset = exec_getset,
};

/* Calls */

static void call_dealloc(pyeryx_callobj *o)
{
    if (o->call)
        eryx_call_fail(o->call, ERYX_CALL_FAILED, "the host dropped the call unanswered");
    Py_XDECREF(o->name);
    Py_XDECREF(o->args);
    PyObject_Free(o);
}

static PyObject *call_reply(pyeryx_callobj *o, PyObject *arg)
{
    if (!o->call) {
        PyErr_SetString(PyExc_ValueError, "this call was already answered");
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_Check(arg) ? PyUnicode_AsUTF8AndSize(arg, &n) : NULL;
    if (!s) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "reply takes JSON text (str)");
        return NULL;
    }
    eryx_call *c = o->call;
    o->call = NULL;
    return PyLong_FromLong(eryx_call_reply(c, s, (size_t)n));
}

/* The message may hold NUL characters (a callback's exception quoting what
 * the guest sent): the guest gets it up to the first, as on the blocking
 * path, rather than the answer failing and the call being lost. A lone
 * surrogate is sent as its escape (pyeryx_utf8_lenient): refused, it made
 * the asyncio driver raise UnicodeEncodeError, which killed the session
 * (a plain callback) or left the call to time out (an async one). */
static PyObject *call_fail(pyeryx_callobj *o, PyObject *args)
{
    int kind;
    PyObject *text;
    if (!PyArg_ParseTuple(args, "iU:fail", &kind, &text))
        return NULL;
    if (!o->call) {
        PyErr_SetString(PyExc_ValueError, "this call was already answered");
        return NULL;
    }
    PyObject *msg = pyeryx_utf8_lenient(text);
    if (!msg)
        return NULL;
    eryx_call *c = o->call;
    o->call = NULL;
    int rc = eryx_call_fail(c, kind, PyBytes_AS_STRING(msg));
    Py_DECREF(msg);
    return PyLong_FromLong(rc);
}

static PyObject *call_get_pending(pyeryx_callobj *o, void *u)
{
    return PyBool_FromLong(o->call ? eryx_call_pending(o->call) : 0);
}

static PyMemberDef call_members[] = {
    {"name", T_OBJECT, offsetof(pyeryx_callobj, name), READONLY, "The callback's name."},
    {"args", T_OBJECT, offsetof(pyeryx_callobj, args), READONLY,
     "The arguments, a JSON object (str)."},
    {"id", T_ULONGLONG, offsetof(pyeryx_callobj, id), READONLY,
     "The call's id, unique within its execution."},
    {NULL}};

static PyMethodDef call_methods[] = {
    {"reply", (PyCFunction)call_reply, METH_O, "Completes the call with JSON text."},
    {"fail", (PyCFunction)call_fail, METH_VARARGS,
     "fail(kind, message): completes the call with an error."},
    {NULL}};

static PyGetSetDef call_getset[] = {
    {"pending", (getter)call_get_pending, NULL, "True while the guest waits for the reply.",
     NULL},
    {NULL}};

PyTypeObject pyeryx_CallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eryx._eryx.Call",
    .tp_basicsize = sizeof(pyeryx_callobj),
    .tp_dealloc = (destructor)call_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One invocation of a callback by the guest (eryx_call).",
    .tp_members = call_members,
    .tp_methods = call_methods,
    .tp_getset = call_getset,
};

/* ------------------------------------------------------------------------ */
/* Sandbox type                                                              */

static PyMethodDef sandbox_methods[] = {
    {"run", (PyCFunction)(void (*)(void))sandbox_run, METH_VARARGS | METH_KEYWORDS,
     "run(code, timeout_ns=0, fuel=0, mode=0, filename=None, argv=None, stdin=None, "
     "on_stdout=None, on_stderr=None) -> ExecuteResult. The GIL is released while the "
     "guest runs."},
    {"exec_start", (PyCFunction)(void (*)(void))sandbox_exec_start,
     METH_VARARGS | METH_KEYWORDS, "Starts an execution to drive with step(): an Exec."},
    {"exec_start_journaled", (PyCFunction)(void (*)(void))sandbox_exec_start_journaled,
     METH_VARARGS | METH_KEYWORDS,
     "exec_start_journaled(journal, code, ...): exec_start recording into a journal (bytes "
     "of a saved one to replay, or None for a new one); JournalError if it does not load "
     "or fit."},
    {"interrupt", (PyCFunction)sandbox_interrupt, METH_NOARGS,
     "Stops the run in progress (from any thread)."},
    {"reset", (PyCFunction)sandbox_reset, METH_NOARGS, "Back to the runtime's image."},
    {"clear", (PyCFunction)sandbox_clear, METH_NOARGS, "Drops the user's globals."},
    {"fork", (PyCFunction)sandbox_fork, METH_NOARGS, "A copy of this sandbox's whole state."},
    {"save", (PyCFunction)(void (*)(void))sandbox_save, METH_VARARGS | METH_KEYWORDS,
     "save(path, *, dir_fd=None): saves the state to a file, atomically (path relative "
     "to the directory open at dir_fd when given)."},
    {"save_bytes", (PyCFunction)sandbox_save_bytes, METH_NOARGS,
     "The whole state as bytes (a session file, through a memfd)."},
    {"export_state", (PyCFunction)sandbox_export_state, METH_NOARGS,
     "(bytes, skipped_names_json)."},
    {"import_state", (PyCFunction)sandbox_import_state, METH_O,
     "Adds exported globals; returns the JSON list of names that failed."},
    {"close", (PyCFunction)sandbox_close, METH_NOARGS, "Frees the sandbox (idempotent)."},
    {"load", (PyCFunction)(void (*)(void))sandbox_load,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "load(runtime, path_or_fd, **config): a sandbox in a saved state."},
    {NULL}};

static PyGetSetDef sandbox_getset[] = {
    {"dead", (getter)sandbox_get_dead, NULL, "True if it can no longer run code.", NULL},
    {"closed", (getter)sandbox_get_closed, NULL, "True once closed or released.", NULL},
    {"busy", (getter)sandbox_get_busy, NULL, "True while it runs code.", NULL},
    {"run_count", (getter)sandbox_get_run_count, NULL, "Runs started in it.", NULL},
    {"stateless", (getter)sandbox_get_stateless, (setter)sandbox_set_stateless,
     "If true, every run after the first starts from the runtime's image.", NULL},
    {NULL}};

PyTypeObject pyeryx_SandboxType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eryx._eryx.SandboxHandle",
    .tp_basicsize = sizeof(pyeryx_sandbox),
    .tp_dealloc = (destructor)sandbox_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SandboxHandle(runtime, **config): one liberyx sandbox (eryx_sandbox).\n\n"
              "config: env (list of 'NAME=value'), mounts (list of (host, guest, "
              "writable)), max_memory, max_output, tmp_quota, callbacks (list of (name, "
              "description, schema_json)), dispatch (callable(name, args_json) -> json "
              "str or (kind, message)), callback_timeout_ns, max_callbacks, timeout_ns, "
              "interrupt_grace_ns, fuel, output_limit_stops, host_write_quota, on_stdout, "
              "on_stderr, net, secrets.",
    .tp_traverse = (traverseproc)sandbox_traverse,
    .tp_clear = (inquiry)sandbox_gc_clear,
    .tp_weaklistoffset = offsetof(pyeryx_sandbox, weakreflist),
    .tp_methods = sandbox_methods,
    .tp_getset = sandbox_getset,
    .tp_new = sandbox_new,
};

/* ------------------------------------------------------------------------ */
/* Pool                                                                      */

typedef struct {
    PyObject_HEAD
    eryx_pool *pool;
    PyObject *runtime;
    pyeryx_config cfg;
    eryx_pool_config pcfg;
    uint32_t max_size;
    int closed;
    long leased;
    eryx_pool_stats last; /* the counters as the pool was freed (stats() after close) */
} pyeryx_pool;

static PyObject *pool_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *runtime;
    if (!PyArg_ParseTuple(args, "O!:Pool", &pyeryx_RuntimeType, &runtime))
        return NULL;
    /* Pool keywords come out of kw; the rest is the sandbox config. */
    PyObject *rest = kw ? PyDict_Copy(kw) : PyDict_New();
    if (!rest)
        return NULL;
    uint64_t max_size = 16, min_idle = 1, idle_ns = 0;
    PyObject *v;
    if (((v = PyDict_GetItemString(rest, "max_size")) &&
         pyeryx_u64(v, "max_size", 16, &max_size) < 0) ||
        ((v = PyDict_GetItemString(rest, "min_idle")) &&
         pyeryx_u64(v, "min_idle", 1, &min_idle) < 0) ||
        ((v = PyDict_GetItemString(rest, "idle_timeout_ns")) &&
         pyeryx_u64(v, "idle_timeout_ns", 0, &idle_ns) < 0)) {
        Py_DECREF(rest);
        return NULL;
    }
    if (max_size == 0 || max_size > 100000 || min_idle > max_size) {
        Py_DECREF(rest);
        PyErr_SetString(PyExc_ValueError,
                        "max_size must be 1..100000 and min_idle at most max_size");
        return NULL;
    }
    PyDict_DelItemString(rest, "max_size");
    PyDict_DelItemString(rest, "min_idle");
    PyDict_DelItemString(rest, "idle_timeout_ns");
    PyErr_Clear();
    pyeryx_pool *self = (pyeryx_pool *)type->tp_alloc(type, 0);
    if (!self) {
        Py_DECREF(rest);
        return NULL;
    }
    int prc = pyeryx_config_parse(&self->cfg, rest);
    Py_DECREF(rest);
    if (prc < 0) {
        Py_DECREF(self);
        return NULL;
    }
    eryx_pool_config_default(&self->pcfg);
    self->pcfg.sandbox = &self->cfg.cfg;
    self->pcfg.max_size = (uint32_t)max_size;
    self->pcfg.min_idle = (uint32_t)min_idle;
    if (idle_ns)
        self->pcfg.idle_timeout_ns = idle_ns;
    self->max_size = (uint32_t)max_size;
    self->runtime = runtime;
    Py_INCREF(runtime);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_pool_new(((pyeryx_runtime *)runtime)->rt, &self->pcfg, &self->pool);
    Py_END_ALLOW_THREADS
    if (rc != ERYX_OK) {
        PyErr_Format(pyeryx_InitializationError, "could not create the pool: %s: %s",
                     eryx_errstr(rc), eryx_errmsg(NULL));
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void pool_free_now(pyeryx_pool *self)
{
    if (self->pool && self->leased == 0) {
        eryx_pool *p = self->pool;
        self->pool = NULL;
        self->last.size = sizeof self->last;
        eryx_pool_get_stats(p, &self->last);
        self->last.idle = self->last.in_use = 0; /* freed with the pool */
        Py_BEGIN_ALLOW_THREADS
        eryx_pool_free(p);
        Py_END_ALLOW_THREADS
    }
}

static void pool_dealloc(pyeryx_pool *self)
{
    /* Leases hold a reference to the pool: none is left here. */
    pool_free_now(self);
    if (self->cfg.ctx || self->cfg.strings)
        pyeryx_config_clear(&self->cfg);
    Py_CLEAR(self->runtime);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int pool_give_back(PyObject *pool, eryx_sandbox *sb)
{
    pyeryx_pool *self = (pyeryx_pool *)pool;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_pool_release(self->pool, sb);
    Py_END_ALLOW_THREADS
    self->leased--;
    if (self->closed)
        pool_free_now(self);
    return rc;
}

static PyObject *pool_acquire(pyeryx_pool *self, PyObject *args)
{
    PyObject *t = NULL;
    if (!PyArg_ParseTuple(args, "|O:acquire", &t))
        return NULL;
    uint64_t timeout_ns;
    if (pyeryx_u64(t, "timeout_ns", 0, &timeout_ns) < 0)
        return NULL;
    if (self->closed || !self->pool) {
        PyErr_SetString(pyeryx_EryxError, "the pool is closed");
        return NULL;
    }
    eryx_sandbox *sb = NULL;
    int rc;
    eryx_pool *p = self->pool;
    self->leased++; /* the pool cannot be freed while we wait */
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_pool_acquire(p, timeout_ns, &sb);
    Py_END_ALLOW_THREADS
    if (rc != ERYX_OK) {
        self->leased--;
        if (self->closed)
            pool_free_now(self);
        if (rc == ERYX_TIMEOUT)
            Py_RETURN_NONE;
        if (self->closed) {
            PyErr_SetString(pyeryx_EryxError, "the pool is closed");
            return NULL;
        }
        PyErr_Format(pyeryx_EryxError, "acquire failed: %s: %s", eryx_errstr(rc),
                     eryx_errmsg(NULL));
        return NULL;
    }
    return pyeryx_sandbox_wrap(sb, self->runtime, self->cfg.ctx, (PyObject *)self);
}

static PyObject *pool_stats(pyeryx_pool *self, PyObject *u)
{
    eryx_pool_stats st = self->last;
    st.size = sizeof st;
    if (self->pool)
        eryx_pool_get_stats(self->pool, &st);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:I,s:I,s:I}", "acquisitions",
                         (unsigned long long)st.acquisitions, "creations",
                         (unsigned long long)st.creations, "waits",
                         (unsigned long long)st.waits, "evictions",
                         (unsigned long long)st.evictions, "idle", st.idle, "in_use",
                         st.in_use, "max_size", self->max_size);
}

static PyObject *pool_close(pyeryx_pool *self, PyObject *u)
{
    self->closed = 1;
    if (self->pool)
        eryx_pool_close(self->pool); /* wakes the acquires waiting */
    pool_free_now(self);
    Py_RETURN_NONE;
}

static PyObject *pool_get_closed(pyeryx_pool *self, void *u)
{
    return PyBool_FromLong(self->closed);
}

static PyMethodDef pool_methods[] = {
    {"acquire", (PyCFunction)pool_acquire, METH_VARARGS,
     "acquire(timeout_ns=0) -> SandboxHandle or None on timeout (GIL released while "
     "waiting)."},
    {"stats", (PyCFunction)pool_stats, METH_NOARGS, "The pool's counters, as a dict."},
    {"close", (PyCFunction)pool_close, METH_NOARGS,
     "No more acquires; freed once every lease is back."},
    {NULL}};

static PyGetSetDef pool_getset[] = {
    {"closed", (getter)pool_get_closed, NULL, "True once closed.", NULL}, {NULL}};

PyTypeObject pyeryx_PoolType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eryx._eryx.Pool",
    .tp_basicsize = sizeof(pyeryx_pool),
    .tp_dealloc = (destructor)pool_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pool(runtime, max_size=16, min_idle=1, idle_timeout_ns=0, **config): "
              "liberyx's thread-safe pool (eryx_pool).",
    .tp_methods = pool_methods,
    .tp_getset = pool_getset,
    .tp_new = pool_new,
};
