/*
 * eryx._eryx: the CPython extension over liberyx's public API (include/eryx.h).
 *
 * The extension is thin on purpose: handles, configs, runs, the non-blocking
 * core and results. Everything that is policy (the reference's names and
 * defaults, schema inference, the asyncio driver) is in the pure-Python
 * package around it (python/eryx/).
 */
#ifndef PYERYX_H
#define PYERYX_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <eryx.h>
#include <stdatomic.h>

/* Exceptions (created at module init). */
extern PyObject *pyeryx_EryxError, *pyeryx_ExecutionError, *pyeryx_TimeoutError,
    *pyeryx_ResourceLimitError, *pyeryx_CancelledError, *pyeryx_InitializationError,
    *pyeryx_JournalError;

extern PyTypeObject pyeryx_ResultType, pyeryx_RuntimeType, pyeryx_SandboxType,
    pyeryx_ExecType, pyeryx_CallType, pyeryx_PoolType;

/* Shared by every sandbox made from one Python config and by its forks: the
 * dispatcher of callbacks and the streaming functions. Reference counted
 * with an atomic count, because callback handlers run on eryx's worker
 * threads and may outlive the run (and the sandbox) that started them. */
typedef struct pyeryx_ctx {
    atomic_int refs;
    PyObject *dispatch;   /* callable(name, args_json) -> str, or NULL */
    PyObject *on_stdout;  /* callable(str) or NULL */
    PyObject *on_stderr;
} pyeryx_ctx;

pyeryx_ctx *pyeryx_ctx_new(PyObject *dispatch, PyObject *on_stdout, PyObject *on_stderr);
void pyeryx_ctx_incref(pyeryx_ctx *c);
void pyeryx_ctx_decref(pyeryx_ctx *c); /* with the GIL held, or at shutdown */

/* A sandbox config built from keyword arguments, with the memory its
 * pointers refer to. */
typedef struct pyeryx_config {
    eryx_sandbox_config cfg;
    char **env;              /* NULL-terminated */
    eryx_mount *mounts;
    char **strings;          /* every other string we own */
    size_t n_strings, cap_strings;
    eryx_callback *callbacks;
    pyeryx_ctx *ctx;
    void *net;               /* eryx_net_config with its arrays, when built with it */
    void *secrets;
} pyeryx_config;

/* Fills *out from keyword arguments (see _eryx.Sandbox's docstring). Returns
 * 0, or -1 with a Python exception set. */
int pyeryx_config_parse(pyeryx_config *out, PyObject *kw);
void pyeryx_config_clear(pyeryx_config *c);

/* The sandbox object. */
typedef struct {
    PyObject_HEAD
    eryx_sandbox *sb;
    PyObject *runtime;        /* keeps the runtime alive */
    PyObject *pool;           /* the pool it was acquired from, or NULL */
    pyeryx_ctx *ctx;
    int busy;                 /* a run or an execution holds it (GIL-protected) */
    int stateless;            /* reset before every run that follows another */
    PyObject *weakreflist;
} pyeryx_sandbox;

typedef struct {
    PyObject_HEAD
    eryx_runtime *rt;
    int is_default;
} pyeryx_runtime;

PyObject *pyeryx_sandbox_wrap(eryx_sandbox *sb, PyObject *runtime, pyeryx_ctx *ctx,
                              PyObject *pool);

/* The run in progress on this thread: where streamed output goes. */
typedef struct pyeryx_run {
    struct pyeryx_run *outer;   /* the thread's run this one is nested in (a
                                   callback running on that run's thread ran
                                   another sandbox), current again after it */
    PyObject *on_stdout, *on_stderr;
    PyObject *exc;  /* first failure of a stream function (exception object) */
    char held[2][4];      /* per stream: the start of a character a write cut */
    size_t n_held[2];
} pyeryx_run;
extern _Thread_local pyeryx_run *pyeryx_current_run;
void pyeryx_on_output(void *ud, int fd, const char *data, size_t len);
void pyeryx_run_begin(pyeryx_run *r, pyeryx_ctx *ctx);
/* Returns -1 with the stream function's exception set if one failed. */
int pyeryx_run_end(pyeryx_run *r);
/* pyeryx_run_end for a run that goes on in a later step: a character cut
 * by the last write stays held in r, for the next step's pyeryx_run. */
int pyeryx_run_pause(pyeryx_run *r);

/* Turns a run's status and result into an ExecuteResult (ERYX_OK) or an
 * exception carrying it. Takes ownership of res. msg: the handle's message. */
PyObject *pyeryx_result_or_raise(int rc, eryx_result *res, const char *msg);
/* Raises the exception fitting a status that gave no result. */
PyObject *pyeryx_raise_status(int rc, const char *msg);
/* Raises type(msg) with .status rc (and .result None): the status of a
 * failure liberyx reported, whatever the exception's type. */
PyObject *pyeryx_raise_as(PyObject *type, int rc, const char *msg);

int pyeryx_is_finalizing(void);
/* Records the main thread (at module init). */
void pyeryx_sigint_init(void);
/* The current exception (normalised, with its traceback), cleared; NULL if none. */
PyObject *pyeryx_fetch_exc(void);
/* Sets exc (stolen) as the current exception. */
void pyeryx_restore_exc(PyObject *exc);

/* s (a str) as UTF-8 bytes, a lone surrogate (an exception quoting bytes
 * that did not decode) written as its \udc80 escape: a failure's message
 * must answer the call even then. New reference, or NULL with the error set. */
PyObject *pyeryx_utf8_lenient(PyObject *s);

/* Reads a non-negative integer (or None = dflt) into *out. */
int pyeryx_u64(PyObject *o, const char *name, uint64_t dflt, uint64_t *out);

#endif
