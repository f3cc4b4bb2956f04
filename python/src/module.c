/*
 * eryx._eryx: module, exceptions, results, runtimes, configs, streaming.
 */
#include "pyeryx.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <structmember.h>

PyObject *pyeryx_EryxError, *pyeryx_ExecutionError, *pyeryx_TimeoutError,
    *pyeryx_ResourceLimitError, *pyeryx_CancelledError, *pyeryx_InitializationError,
    *pyeryx_JournalError;

PyObject *pyeryx_fetch_exc(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t)
        return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb && v)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

PyObject *pyeryx_utf8_lenient(PyObject *s)
{
    return PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
}

void pyeryx_restore_exc(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore((PyObject *)Py_TYPE(exc), exc, tb);
    Py_INCREF(Py_TYPE(exc));
#endif
}

int pyeryx_is_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

int pyeryx_u64(PyObject *o, const char *name, uint64_t dflt, uint64_t *out)
{
    if (o == NULL || o == Py_None) {
        *out = dflt;
        return 0;
    }
    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int or None, not %.100s", name,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    PyObject *zero = PyLong_FromLong(0);
    int neg = zero ? PyObject_RichCompareBool(o, zero, Py_LT) : -1;
    Py_XDECREF(zero);
    if (neg != 0) {
        if (neg > 0)
            PyErr_Format(PyExc_ValueError, "%s must not be negative", name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s is too large (at most 2**64 - 1)", name);
        return -1;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Callback context, streaming                                               */

pyeryx_ctx *pyeryx_ctx_new(PyObject *dispatch, PyObject *on_stdout, PyObject *on_stderr)
{
    pyeryx_ctx *c = PyMem_RawCalloc(1, sizeof *c);
    if (!c) {
        PyErr_NoMemory();
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->dispatch = dispatch == Py_None ? NULL : dispatch;
    c->on_stdout = on_stdout == Py_None ? NULL : on_stdout;
    c->on_stderr = on_stderr == Py_None ? NULL : on_stderr;
    Py_XINCREF(c->dispatch);
    Py_XINCREF(c->on_stdout);
    Py_XINCREF(c->on_stderr);
    return c;
}

void pyeryx_ctx_incref(pyeryx_ctx *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
}

void pyeryx_ctx_decref(pyeryx_ctx *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (pyeryx_is_finalizing())
        return; /* the objects go with the interpreter; the struct is leaked */
    Py_XDECREF(c->dispatch);
    Py_XDECREF(c->on_stdout);
    Py_XDECREF(c->on_stderr);
    PyMem_RawFree(c);
}

_Thread_local pyeryx_run *pyeryx_current_run;

void pyeryx_run_begin(pyeryx_run *r, pyeryx_ctx *ctx)
{
    memset(r, 0, sizeof *r);
    if (ctx) {
        r->on_stdout = ctx->on_stdout;
        r->on_stderr = ctx->on_stderr;
    }
    r->outer = pyeryx_current_run;
    pyeryx_current_run = r;
}

static void stream_text(pyeryx_run *r, PyObject *fn, const char *data, size_t len)
{
    PyObject *text = PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "replace");
    PyObject *ret = text ? PyObject_CallOneArg(fn, text) : NULL;
    Py_XDECREF(text);
    if (ret)
        Py_DECREF(ret);
    else
        r->exc = pyeryx_fetch_exc();
}

int pyeryx_run_end(pyeryx_run *r)
{
    /* A character cut at the very end stays cut (as U+FFFD). */
    for (int i = 0; i < 2 && !pyeryx_is_finalizing(); i++) {
        PyObject *fn = i ? r->on_stderr : r->on_stdout;
        if (r->n_held[i] && fn && !r->exc)
            stream_text(r, fn, r->held[i], r->n_held[i]);
        r->n_held[i] = 0;
    }
    return pyeryx_run_pause(r);
}

int pyeryx_run_pause(pyeryx_run *r)
{
    pyeryx_current_run = r->outer;
    if (r->exc) {
        pyeryx_restore_exc(r->exc);
        r->exc = NULL;
        return -1;
    }
    return 0;
}

/* How many bytes at the end of p[0..n) begin a UTF-8 character that
 * needs more (0 if none). */
static size_t cut_character(const char *p, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)p[n - k];
        if ((c & 0xC0) == 0x80)
            continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

/* Called by eryx on the thread running the code, which released the GIL.
 * A write may end in the middle of a character (os.write of part of it):
 * those bytes wait for the next write of the stream, so that on_stdout
 * gets the character whole rather than two U+FFFD. */
void pyeryx_on_output(void *ud, int fd, const char *data, size_t len)
{
    (void)ud;
    pyeryx_run *r = pyeryx_current_run;
    if (!r)
        return;
    int i = fd == 2;
    PyObject *fn = i ? r->on_stderr : r->on_stdout;
    if (!fn || r->exc || pyeryx_is_finalizing())
        return;
    char *joined = NULL;
    if (r->n_held[i]) {
        joined = malloc(r->n_held[i] + len);
        if (joined) {
            memcpy(joined, r->held[i], r->n_held[i]);
            memcpy(joined + r->n_held[i], data, len);
            data = joined;
            len += r->n_held[i];
        }
        r->n_held[i] = 0; /* (out of memory: they are dropped) */
    }
    size_t keep = cut_character(data, len);
    memcpy(r->held[i], data + len - keep, keep);
    r->n_held[i] = keep;
    if (len > keep) {
        PyGILState_STATE g = PyGILState_Ensure();
        stream_text(r, fn, data, len - keep);
        PyGILState_Release(g);
    }
    free(joined);
}

/* A Python thread state kept for each of eryx's worker threads that ran a
 * callback: PyGILState_Ensure on a thread Python does not know creates one
 * and its Release deletes it again, for every call. Holding one outer
 * Ensure makes the per-call pair a counter and the GIL. The state is
 * dropped when the worker exits (a thread-specific key's destructor; eryx's
 * idle workers exit after 2 s), not at all once Python is finalizing. */
static pthread_key_t worker_key;
static pthread_once_t worker_once = PTHREAD_ONCE_INIT;

static void worker_state_drop(void *p)
{
    PyThreadState *ts = p;
    if (!ts || !Py_IsInitialized() || pyeryx_is_finalizing())
        return;
    /* Python's own thread-specific value may already be gone (destructors
     * run in no fixed order), so not PyGILState_Release: the state is
     * cleared and deleted directly. */
    PyEval_RestoreThread(ts);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
}

static void worker_key_init(void)
{
    if (pthread_key_create(&worker_key, worker_state_drop) != 0)
        worker_key = (pthread_key_t)-1;
}

static void worker_state_keep(void)
{
    pthread_once(&worker_once, worker_key_init);
    if (worker_key == (pthread_key_t)-1 || pthread_getspecific(worker_key) ||
        PyGILState_GetThisThreadState())
        return; /* a Python thread, or already kept */
    PyGILState_Ensure();
    PyThreadState *ts = PyEval_SaveThread();
    if (pthread_setspecific(worker_key, ts) != 0) {
        PyEval_RestoreThread(ts);
        PyGILState_Release(PyGILState_UNLOCKED);
    }
}

/* Runs on one of eryx's worker threads (the handler of every callback of a
 * blocking run): the dispatcher answers with JSON text, or with a
 * (kind, message) tuple for a failure. */
static void pyeryx_callback_handler(void *ud, eryx_call *call)
{
    pyeryx_ctx *c = ud;
    if (!c || !c->dispatch || pyeryx_is_finalizing()) {
        eryx_call_fail(call, ERYX_CALL_FAILED, "the host interpreter is shutting down");
        return;
    }
    pyeryx_ctx_incref(c);
    worker_state_keep();
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallFunction(c->dispatch, "ss", eryx_call_name(call),
                                        eryx_call_args(call));
    if (r && PyUnicode_Check(r)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(r, &n);
        if (s)
            eryx_call_reply(call, s, (size_t)n);
        else
            eryx_call_fail(call, ERYX_CALL_FAILED, "the callback's reply is not UTF-8");
    } else if (r && PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2) {
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
        PyObject *msg = PyUnicode_Check(PyTuple_GET_ITEM(r, 1))
                            ? pyeryx_utf8_lenient(PyTuple_GET_ITEM(r, 1))
                            : NULL;
        eryx_call_fail(call, (int)(kind < 0 ? 0 : kind),
                       msg ? PyBytes_AS_STRING(msg) : "the callback failed");
        Py_XDECREF(msg);
    } else {
        PyObject *msg = NULL, *utf8 = NULL;
        if (PyErr_Occurred()) {
            PyObject *v = pyeryx_fetch_exc();
            msg = v ? PyObject_Str(v) : NULL;
            Py_XDECREF(v);
        }
        utf8 = msg ? pyeryx_utf8_lenient(msg) : NULL;
        eryx_call_fail(call, ERYX_CALL_FAILED,
                       utf8 ? PyBytes_AS_STRING(utf8) : "the callback's dispatcher failed");
        Py_XDECREF(utf8);
        Py_XDECREF(msg);
    }
    PyErr_Clear();
    Py_XDECREF(r);
    pyeryx_ctx_decref(c);
    PyGILState_Release(g);
}

/* ------------------------------------------------------------------------ */
/* Configs                                                                   */

static char *own(pyeryx_config *c, const char *s, Py_ssize_t n)
{
    if (c->n_strings == c->cap_strings) {
        size_t cap = c->cap_strings ? c->cap_strings * 2 : 16;
        char **p = PyMem_RawRealloc(c->strings, cap * sizeof *p);
        if (!p) {
            PyErr_NoMemory();
            return NULL;
        }
        c->strings = p;
        c->cap_strings = cap;
    }
    char *d = PyMem_RawMalloc((size_t)n + 1);
    if (!d) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(d, s, (size_t)n);
    d[n] = 0;
    c->strings[c->n_strings++] = d;
    return d;
}

/* n zeroed bytes owned by the config. */
static void *own_zeroed(pyeryx_config *c, size_t n)
{
    char *d = own(c, "", 0);
    if (!d)
        return NULL;
    d = PyMem_RawCalloc(1, n ? n : 1);
    if (!d) {
        PyErr_NoMemory();
        return NULL;
    }
    PyMem_RawFree(c->strings[c->n_strings - 1]);
    c->strings[c->n_strings - 1] = d;
    return d;
}

/* A str without NUL bytes, copied into the config. */
static char *own_str(pyeryx_config *c, PyObject *o, const char *what)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s)
        return NULL;
    if ((Py_ssize_t)strlen(s) != n) {
        PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters", what);
        return NULL;
    }
    return own(c, s, n);
}

static PyObject *kwget(PyObject *kw, const char *name)
{
    return kw ? PyDict_GetItemString(kw, name) : NULL; /* borrowed */
}

static int parse_u64(PyObject *kw, const char *name, uint64_t *field)
{
    return pyeryx_u64(kwget(kw, name), name, *field, field);
}

/* Accepted keywords; anything else is a TypeError (a typo must not pass
 * silently as "no limit"). */
static const char *const config_keys[] = {
    "env", "mounts", "max_memory", "max_output", "tmp_quota", "callbacks", "dispatch",
    "callback_timeout_ns", "max_callbacks", "timeout_ns", "interrupt_grace_ns", "fuel",
    "output_limit_stops", "host_write_quota", "on_stdout", "on_stderr", "net", "secrets",
    "stream",
    NULL};

static int str_list(pyeryx_config *c, PyObject *o, const char *what,
                    const char *const **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!o || o == Py_None)
        return 0;
    PyObject *seq = PySequence_Fast(o, "must be a list of str");
    if (!seq)
        return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    char **arr = k ? own_zeroed(c, sizeof(char *) * (size_t)k) : NULL;
    if (k && !arr) {
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        arr[i] = own_str(c, PySequence_Fast_GET_ITEM(seq, i), what);
        if (!arr[i]) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    *out = (const char *const *)arr;
    *n = (size_t)k;
    return 0;
}

#ifdef ERYX_HAVE_NET
typedef struct net_holder {
    eryx_net_config net;
    eryx_secret *secrets;
    size_t n_secrets;
} net_holder;

/* net: a dict with allow, deny, resolve, ca_files (lists of str), ca_pem
 * (str), max_connections, connect_timeout_ns, idle_timeout_ns,
 * max_bytes_sent, max_bytes_received. secrets: a list of (name, value,
 * hosts). */
static int parse_net(pyeryx_config *c, PyObject *net, PyObject *secrets)
{
    net_holder *h = own_zeroed(c, sizeof *h);
    if (!h)
        return -1;
    memset(h, 0, sizeof *h);
    c->net = h;
    if (net && net != Py_None) {
        if (!PyDict_Check(net)) {
            PyErr_SetString(PyExc_TypeError, "net must be a dict (use eryx.NetConfig)");
            return -1;
        }
        h->net.size = sizeof h->net;
        uint64_t v;
        if (str_list(c, PyDict_GetItemString(net, "allow"), "net allow rule", &h->net.allow,
                     &h->net.n_allow) < 0 ||
            str_list(c, PyDict_GetItemString(net, "deny"), "net deny rule", &h->net.deny,
                     &h->net.n_deny) < 0 ||
            str_list(c, PyDict_GetItemString(net, "resolve"), "net resolve pin",
                     &h->net.resolve, &h->net.n_resolve) < 0 ||
            str_list(c, PyDict_GetItemString(net, "ca_files"), "net CA file",
                     &h->net.ca_files, &h->net.n_ca_files) < 0)
            return -1;
        PyObject *pem = PyDict_GetItemString(net, "ca_pem");
        if (pem && pem != Py_None && !(h->net.ca_pem = own_str(c, pem, "ca_pem")))
            return -1;
        if (pyeryx_u64(PyDict_GetItemString(net, "max_connections"), "max_connections", 0,
                       &v) < 0)
            return -1;
        if (v > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "max_connections is too large");
            return -1;
        }
        h->net.max_connections = (uint32_t)v;
        if (pyeryx_u64(PyDict_GetItemString(net, "connect_timeout_ns"), "connect_timeout", 0,
                       &h->net.connect_timeout_ns) < 0 ||
            pyeryx_u64(PyDict_GetItemString(net, "idle_timeout_ns"), "idle_timeout", 0,
                       &h->net.idle_timeout_ns) < 0 ||
            pyeryx_u64(PyDict_GetItemString(net, "max_bytes_sent"), "max_bytes_sent", 0,
                       &h->net.max_bytes_sent) < 0 ||
            pyeryx_u64(PyDict_GetItemString(net, "max_bytes_received"), "max_bytes_received",
                       0, &h->net.max_bytes_received) < 0)
            return -1;
        c->cfg.net = &h->net;
    }
    if (secrets && secrets != Py_None) {
        PyObject *seq = PySequence_Fast(secrets, "secrets must be a list of (name, value, hosts)");
        if (!seq)
            return -1;
        Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
        h->secrets = k ? own_zeroed(c, sizeof(eryx_secret) * (size_t)k) : NULL;
        if (k && !h->secrets) {
            Py_DECREF(seq);
            return -1;
        }
        for (Py_ssize_t i = 0; i < k; i++) {
            PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
            eryx_secret *s = &h->secrets[i];
            memset(s, 0, sizeof *s);
            s->size = sizeof *s;
            if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
                PyErr_SetString(PyExc_TypeError, "a secret must be a (name, value, hosts) tuple");
                Py_DECREF(seq);
                return -1;
            }
            if (!(s->name = own_str(c, PyTuple_GET_ITEM(t, 0), "secret name")) ||
                !(s->value = own_str(c, PyTuple_GET_ITEM(t, 1), "secret value")) ||
                str_list(c, PyTuple_GET_ITEM(t, 2), "secret host", &s->hosts, &s->n_hosts) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
        c->cfg.secrets = h->secrets;
        c->cfg.n_secrets = (size_t)k;
    }
    return 0;
}
#endif

int pyeryx_config_parse(pyeryx_config *c, PyObject *kw)
{
    memset(c, 0, sizeof *c);
    eryx_sandbox_config_default(&c->cfg);
    if (kw) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kw, &pos, &key, &value)) {
            const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
            int known = 0;
            for (int i = 0; k && config_keys[i]; i++)
                known |= strcmp(k, config_keys[i]) == 0;
            if (!known) {
                PyErr_Format(PyExc_TypeError, "unexpected keyword argument %R", key);
                return -1;
            }
        }
    }
    /* Limits. */
    uint64_t max_callbacks = c->cfg.max_callbacks, stops = 0;
    if (parse_u64(kw, "max_memory", &c->cfg.max_memory) < 0 ||
        parse_u64(kw, "max_output", &c->cfg.max_output) < 0 ||
        parse_u64(kw, "tmp_quota", &c->cfg.tmp_quota) < 0 ||
        parse_u64(kw, "callback_timeout_ns", &c->cfg.callback_timeout_ns) < 0 ||
        parse_u64(kw, "timeout_ns", &c->cfg.timeout_ns) < 0 ||
        parse_u64(kw, "interrupt_grace_ns", &c->cfg.interrupt_grace_ns) < 0 ||
        parse_u64(kw, "fuel", &c->cfg.fuel) < 0 ||
        parse_u64(kw, "host_write_quota", &c->cfg.host_write_quota) < 0 ||
        pyeryx_u64(kwget(kw, "max_callbacks"), "max_callbacks", max_callbacks,
                   &max_callbacks) < 0 ||
        pyeryx_u64(kwget(kw, "output_limit_stops"), "output_limit_stops", 0, &stops) < 0)
        goto fail;
    if (max_callbacks > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "max_callbacks is too large (at most 2**32 - 1)");
        goto fail;
    }
    c->cfg.max_callbacks = (uint32_t)max_callbacks;
    c->cfg.output_limit_stops = stops != 0;

    /* Environment: a list of "NAME=value". */
    PyObject *env = kwget(kw, "env");
    if (env && env != Py_None) {
        PyObject *seq = PySequence_Fast(env, "env must be a list of 'NAME=value' strings");
        if (!seq)
            goto fail;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        c->env = PyMem_RawCalloc((size_t)n + 1, sizeof(char *));
        if (!c->env) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            c->env[i] = own_str(c, PySequence_Fast_GET_ITEM(seq, i), "an environment entry");
            if (!c->env[i]) {
                Py_DECREF(seq);
                goto fail;
            }
        }
        Py_DECREF(seq);
        c->cfg.env = (const char *const *)c->env;
    }
    /* Mounts: a list of (host_path, guest_path, writable). */
    PyObject *mounts = kwget(kw, "mounts");
    if (mounts && mounts != Py_None) {
        PyObject *seq = PySequence_Fast(mounts, "mounts must be a list of tuples");
        if (!seq)
            goto fail;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        c->mounts = PyMem_RawCalloc((size_t)n + 1, sizeof(eryx_mount));
        if (!c->mounts) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
            if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
                Py_DECREF(seq);
                PyErr_SetString(PyExc_TypeError,
                                "a volume must be a (host_path, guest_path, writable) tuple");
                goto fail;
            }
            c->mounts[i].size = sizeof(eryx_mount);
            c->mounts[i].host_path = own_str(c, PyTuple_GET_ITEM(t, 0), "a volume's host path");
            c->mounts[i].guest_path =
                c->mounts[i].host_path ? own_str(c, PyTuple_GET_ITEM(t, 1), "a volume's guest path")
                                       : NULL;
            int w = c->mounts[i].guest_path ? PyObject_IsTrue(PyTuple_GET_ITEM(t, 2)) : -1;
            if (w < 0) {
                Py_DECREF(seq);
                goto fail;
            }
            c->mounts[i].writable = w;
        }
        Py_DECREF(seq);
        c->cfg.mounts = c->mounts;
        c->cfg.n_mounts = (size_t)n;
    }
    /* Callbacks: a list of (name, description, schema_json); the
     * dispatcher answers them all. */
    PyObject *dispatch = kwget(kw, "dispatch");
    PyObject *cbs = kwget(kw, "callbacks");
    if (dispatch && dispatch != Py_None && !PyCallable_Check(dispatch)) {
        PyErr_SetString(PyExc_TypeError, "dispatch must be callable");
        goto fail;
    }
    PyObject *outs[2] = {kwget(kw, "on_stdout"), kwget(kw, "on_stderr")};
    for (int i = 0; i < 2; i++)
        if (outs[i] && outs[i] != Py_None && !PyCallable_Check(outs[i])) {
            PyErr_Format(PyExc_TypeError, "%s must be callable or None",
                         i ? "on_stderr" : "on_stdout");
            goto fail;
        }
    c->ctx = pyeryx_ctx_new(dispatch ? dispatch : Py_None, outs[0] ? outs[0] : Py_None,
                            outs[1] ? outs[1] : Py_None);
    if (!c->ctx)
        goto fail;
    /* Streaming only when someone listens (a run with on_output set pays a
     * host call per write it would not otherwise); "stream" asks for it
     * when the functions come per run (a pool's leases). */
    PyObject *stream = kwget(kw, "stream");
    int want_stream = stream ? PyObject_IsTrue(stream) : 0;
    if (want_stream < 0)
        goto fail;
    if (want_stream || c->ctx->on_stdout || c->ctx->on_stderr)
        c->cfg.on_output = pyeryx_on_output;
    c->cfg.output_user_data = NULL;
    if (cbs && cbs != Py_None) {
        PyObject *seq = PySequence_Fast(cbs, "callbacks must be a list of tuples");
        if (!seq)
            goto fail;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (n && !c->ctx->dispatch) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "callbacks need a dispatch function");
            goto fail;
        }
        c->callbacks = PyMem_RawCalloc((size_t)n + 1, sizeof(eryx_callback));
        if (!c->callbacks) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
            eryx_callback *cb = &c->callbacks[i];
            if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 3 || PyTuple_GET_SIZE(t) > 4) {
                Py_DECREF(seq);
                PyErr_SetString(PyExc_TypeError, "a callback must be a (name, description, "
                                                 "schema_json[, inline]) tuple");
                goto fail;
            }
            if (PyTuple_GET_SIZE(t) == 4) {
                int inl = PyObject_IsTrue(PyTuple_GET_ITEM(t, 3));
                if (inl < 0) {
                    Py_DECREF(seq);
                    goto fail;
                }
                cb->flags = inl ? ERYX_CALLBACK_INLINE : 0;
            }
            cb->size = sizeof *cb;
            cb->name = own_str(c, PyTuple_GET_ITEM(t, 0), "a callback's name");
            if (!cb->name) {
                Py_DECREF(seq);
                goto fail;
            }
            for (int j = 1; j < 3; j++) {
                PyObject *o = PyTuple_GET_ITEM(t, j);
                const char *s = NULL;
                if (o != Py_None &&
                    !(s = own_str(c, o, j == 1 ? "a callback's description"
                                               : "a callback's schema"))) {
                    Py_DECREF(seq);
                    goto fail;
                }
                if (j == 1)
                    cb->description = s;
                else
                    cb->schema = s;
            }
            cb->handler = pyeryx_callback_handler;
            cb->user_data = c->ctx;
        }
        Py_DECREF(seq);
        c->cfg.callbacks = c->callbacks;
        c->cfg.n_callbacks = (size_t)n;
    }
    PyObject *net = kwget(kw, "net"), *secrets = kwget(kw, "secrets");
    int want_net = (net && net != Py_None) ||
                   (secrets && secrets != Py_None && PyObject_Length(secrets) > 0);
#ifdef ERYX_HAVE_NET
    if (want_net && parse_net(c, net, secrets) < 0)
        goto fail;
#else
    if (want_net) {
        PyErr_SetString(pyeryx_EryxError,
                        "this build of eryx has no networking: network= and secrets= "
                        "need a liberyx with ERYX_HAVE_NET");
        goto fail;
    }
#endif
    return 0;
fail:
    pyeryx_config_clear(c);
    return -1;
}

void pyeryx_config_clear(pyeryx_config *c)
{
    for (size_t i = 0; i < c->n_strings; i++)
        PyMem_RawFree(c->strings[i]);
    PyMem_RawFree(c->strings);
    PyMem_RawFree(c->env);
    PyMem_RawFree(c->mounts);
    PyMem_RawFree(c->callbacks);
    pyeryx_ctx_decref(c->ctx);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------------ */
/* ExecuteResult                                                             */

typedef struct {
    PyObject_HEAD
    PyObject *stdout_, *stderr_;
    double duration_ms;
    unsigned long callback_invocations;
    unsigned long long peak_memory_bytes, fuel_consumed;
    PyObject *result_json, *result_error, *exc_type, *exc_message, *traceback;
    PyObject *result;   /* decoded lazily; NULL until asked */
    int exit_code, exited, stdout_truncated, stderr_truncated, hard_stopped, status;
    int stop_cause; /* eryx_result.stop_cause */
} pyeryx_result;

static PyObject *text_or_none(const char *s, size_t n)
{
    if (!s)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
}

static PyObject *str_or_none(const char *s) { return text_or_none(s, s ? strlen(s) : 0); }

static PyObject *result_new_from(int rc, eryx_result *res)
{
    pyeryx_result *r = PyObject_New(pyeryx_result, &pyeryx_ResultType);
    if (!r)
        return NULL;
    r->stdout_ = PyUnicode_DecodeUTF8(res->out, (Py_ssize_t)res->out_len, "replace");
    r->stderr_ = PyUnicode_DecodeUTF8(res->err, (Py_ssize_t)res->err_len, "replace");
    r->duration_ms = (double)res->duration_ns / 1e6;
    r->callback_invocations = res->n_callbacks;
    r->peak_memory_bytes = res->memory_bytes;
    r->fuel_consumed = res->fuel_used;
    r->result_json = str_or_none(res->result_json);
    r->result_error = str_or_none(res->result_error);
    r->exc_type = str_or_none(res->exc_type);
    r->exc_message = text_or_none(res->exc_message, res->exc_message_len);
    r->traceback = text_or_none(res->traceback, res->traceback_len);
    r->result = NULL;
    r->exit_code = res->exit_code;
    r->exited = res->exited;
    r->stdout_truncated = res->out_truncated;
    r->stderr_truncated = res->err_truncated;
    r->hard_stopped = res->hard_stopped;
    r->stop_cause = res->stop_cause;
    r->status = rc;
    if (!r->stdout_ || !r->stderr_ || !r->result_json || !r->result_error || !r->exc_type ||
        !r->exc_message || !r->traceback) {
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

static void result_dealloc(pyeryx_result *r)
{
    Py_XDECREF(r->stdout_);
    Py_XDECREF(r->stderr_);
    Py_XDECREF(r->result_json);
    Py_XDECREF(r->result_error);
    Py_XDECREF(r->exc_type);
    Py_XDECREF(r->exc_message);
    Py_XDECREF(r->traceback);
    Py_XDECREF(r->result);
    PyObject_Free(r);
}

static PyObject *json_loads, *json_error; /* json.loads, json.JSONDecodeError */

/* Decodes result_json, once, on first use. The sandbox's code can hand
 * the host any text as its result: text json.loads refuses gives no result
 * and says so in result_error, as the service and the MCP server do,
 * rather than raise from an attribute. */
static int decode_result(pyeryx_result *r)
{
    if (r->result)
        return 0;
    if (r->result_json == Py_None) {
        r->result = Py_NewRef(Py_None);
        return 0;
    }
    if (!json_loads) {
        PyObject *json = PyImport_ImportModule("json");
        if (!json)
            return -1;
        json_loads = PyObject_GetAttrString(json, "loads");
        json_error = PyObject_GetAttrString(json, "JSONDecodeError");
        Py_DECREF(json);
        if (!json_loads || !json_error) {
            Py_CLEAR(json_loads);
            Py_CLEAR(json_error);
            return -1;
        }
    }
    PyObject *v = PyObject_CallOneArg(json_loads, r->result_json);
    if (!v) {
        /* Not JSON (forged), or JSON this Python will not read: nested
         * deeper than its recursion limit (honest code makes that: it
         * raised RecursionError from the attribute until 2026-12-07), an
         * int past sys.get_int_max_str_digits(). */
        if (!PyErr_ExceptionMatches(PyExc_ValueError) &&
            !PyErr_ExceptionMatches(PyExc_RecursionError))
            return -1;
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *why = r->result_error != Py_None ? NULL
                        : PyObject_IsInstance(value, json_error) == 1
                            ? PyUnicode_FromString("the sandbox reported a result that is not JSON")
                            : PyUnicode_FromFormat("the sandbox reported a result this Python "
                                                   "cannot read: %S", value);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        if (r->result_error == Py_None) {
            if (!why)
                return -1;
            Py_SETREF(r->result_error, why);
        }
        v = Py_NewRef(Py_None);
    }
    r->result = v;
    return 0;
}

static PyObject *result_get_result(pyeryx_result *r, void *unused)
{
    return decode_result(r) < 0 ? NULL : Py_NewRef(r->result);
}

static PyObject *result_get_error(pyeryx_result *r, void *unused)
{
    return decode_result(r) < 0 ? NULL : Py_NewRef(r->result_error);
}

/* Used by the package for result_variable other than "result". */
static PyObject *result_set_result(pyeryx_result *r, PyObject *args)
{
    PyObject *js, *err;
    if (!PyArg_ParseTuple(args, "OO:_set_result", &js, &err))
        return NULL;
    Py_INCREF(js);
    Py_SETREF(r->result_json, js);
    Py_INCREF(err);
    Py_SETREF(r->result_error, err);
    Py_CLEAR(r->result);
    Py_RETURN_NONE;
}

static PyObject *result_str(pyeryx_result *r)
{
    Py_INCREF(r->stdout_);
    return r->stdout_;
}

static PyObject *result_repr(pyeryx_result *r)
{
    PyObject *d = PyFloat_FromDouble(r->duration_ms);
    if (!d)
        return NULL;
    PyObject *s = PyUnicode_FromFormat("ExecuteResult(stdout=%R, stderr=%R, duration_ms=%R, "
                                       "callback_invocations=%lu, result_json=%R)",
                                       r->stdout_, r->stderr_, d, r->callback_invocations,
                                       r->result_json);
    Py_DECREF(d);
    return s;
}

static PyObject *result_peak(pyeryx_result *r, void *u)
{
    return PyLong_FromUnsignedLongLong(r->peak_memory_bytes);
}
static PyObject *result_fuel(pyeryx_result *r, void *u)
{
    if (!eryx_build_has_fuel() && r->fuel_consumed == 0)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(r->fuel_consumed);
}
static PyObject *result_calls(pyeryx_result *r, void *u)
{
    return PyLong_FromUnsignedLong(r->callback_invocations);
}
static PyObject *result_duration(pyeryx_result *r, void *u)
{
    return PyFloat_FromDouble(r->duration_ms);
}

static PyMemberDef result_members[] = {
    {"stdout", T_OBJECT, offsetof(pyeryx_result, stdout_), READONLY,
     "Everything the code wrote to stdout (str; invalid UTF-8 replaced)."},
    {"stderr", T_OBJECT, offsetof(pyeryx_result, stderr_), READONLY,
     "Everything the code wrote to stderr (str)."},
    {"result_json", T_OBJECT, offsetof(pyeryx_result, result_json), READONLY,
     "JSON text of the result variable if the run assigned it, else None (as the "
     "sandbox reported it: its code can forge it)."},
    {"exception_type", T_OBJECT, offsetof(pyeryx_result, exc_type), READONLY,
     "Qualified name of the uncaught exception, or None."},
    {"exception_message", T_OBJECT, offsetof(pyeryx_result, exc_message), READONLY,
     "str() of the uncaught exception, or None."},
    {"traceback", T_OBJECT, offsetof(pyeryx_result, traceback), READONLY,
     "The uncaught exception's traceback, formatted as Python does, or None."},
    {"exit_code", T_INT, offsetof(pyeryx_result, exit_code), READONLY,
     "0, 1 after an uncaught exception, or SystemExit's / os._exit's code."},
    {"exited", T_BOOL, offsetof(pyeryx_result, exited), READONLY,
     "True if the code raised SystemExit or called os._exit."},
    {"stdout_truncated", T_BOOL, offsetof(pyeryx_result, stdout_truncated), READONLY,
     "True if stdout went past the output limit."},
    {"stderr_truncated", T_BOOL, offsetof(pyeryx_result, stderr_truncated), READONLY,
     "True if stderr went past the output limit."},
    {"hard_stopped", T_BOOL, offsetof(pyeryx_result, hard_stopped), READONLY,
     "True if a timeout or interrupt had to stop the code hard (the sandbox is then dead)."},
    {"status", T_INT, offsetof(pyeryx_result, status), READONLY,
     "liberyx's status code of the run (0 = ERYX_OK)."},
    {NULL}};

static PyObject *result_stopped(pyeryx_result *r, void *unused)
{
    (void)unused;
    if (r->stop_cause == ERYX_TIMEOUT)
        return PyUnicode_FromString("timeout");
    if (r->stop_cause == ERYX_INTERRUPTED)
        return PyUnicode_FromString("interrupted");
    Py_RETURN_NONE;
}

static PyGetSetDef result_getset[] = {
    {"result", (getter)result_get_result, NULL,
     "The value of the result variable, decoded from JSON, or None if the run did not "
     "set it (or it was not JSON-serialisable: see result_error).",
     NULL},
    {"result_error", (getter)result_get_error, NULL,
     "Why there is no result: the result variable was not JSON-serialisable, or the "
     "sandbox reported text that is not JSON. None otherwise.",
     NULL},
    {"duration_ms", (getter)result_duration, NULL, "Wall time of the run, in milliseconds.",
     NULL},
    {"stopped", (getter)result_stopped, NULL,
     "'timeout' or 'interrupted' if the run's time limit passed or it was interrupted, even "
     "when the code caught the KeyboardInterrupt and ended normally (status 0); else None.",
     NULL},
    {"callback_invocations", (getter)result_calls, NULL,
     "Number of callback invocations during the run.", NULL},
    {"peak_memory_bytes", (getter)result_peak, NULL,
     "The sandbox's linear memory size after the run: its peak (it never shrinks).", NULL},
    {"fuel_consumed", (getter)result_fuel, NULL,
     "Guest work done by the run (eryx's fuel units), or None in builds that do not count "
     "fuel.",
     NULL},
    {NULL}};

/* Pickling: results and the errors that carry them cross process
 * boundaries (multiprocessing, ProcessPoolExecutor); they raised
 * "cannot pickle 'eryx.ExecuteResult' object". The state is every field as
 * the run gave it; the result is decoded again, lazily, from its JSON. */
#define RESULT_STATE "(OOdkKKOOOOOiiiiiii)"

static PyObject *result_reduce(pyeryx_result *r, PyObject *unused)
{
    (void)unused;
    PyObject *mod = PyImport_ImportModule("eryx._eryx");
    PyObject *restore = mod ? PyObject_GetAttrString(mod, "_result_restore") : NULL;
    Py_XDECREF(mod);
    if (!restore)
        return NULL;
    PyObject *state = Py_BuildValue(
        RESULT_STATE, r->stdout_, r->stderr_, r->duration_ms, r->callback_invocations,
        r->peak_memory_bytes, r->fuel_consumed, r->result_json, r->result_error, r->exc_type,
        r->exc_message, r->traceback, r->exit_code, r->exited, r->stdout_truncated,
        r->stderr_truncated, r->hard_stopped, r->status, r->stop_cause);
    PyObject *out = state ? Py_BuildValue("(O(N))", restore, state) : NULL;
    Py_DECREF(restore);
    return out;
}

static PyObject *mod_result_restore(PyObject *self, PyObject *args)
{
    (void)self;
    pyeryx_result *r = PyObject_New(pyeryx_result, &pyeryx_ResultType);
    if (!r)
        return NULL;
    r->stdout_ = r->stderr_ = r->result_json = r->result_error = NULL;
    r->exc_type = r->exc_message = r->traceback = r->result = NULL;
    PyObject *o[7];
    if (!PyArg_ParseTuple(args, RESULT_STATE ":_result_restore", &o[0], &o[1], &r->duration_ms,
                          &r->callback_invocations, &r->peak_memory_bytes, &r->fuel_consumed,
                          &o[2], &o[3], &o[4], &o[5], &o[6], &r->exit_code, &r->exited,
                          &r->stdout_truncated, &r->stderr_truncated, &r->hard_stopped,
                          &r->status, &r->stop_cause)) {
        Py_DECREF(r);
        return NULL;
    }
    for (int i = 0; i < 7; i++) {
        int text = i < 2;
        if (!(text ? PyUnicode_Check(o[i]) : o[i] == Py_None || PyUnicode_Check(o[i]))) {
            Py_DECREF(r);
            PyErr_SetString(PyExc_TypeError, "_result_restore: not an ExecuteResult's state");
            return NULL;
        }
    }
    r->stdout_ = Py_NewRef(o[0]);
    r->stderr_ = Py_NewRef(o[1]);
    r->result_json = Py_NewRef(o[2]);
    r->result_error = Py_NewRef(o[3]);
    r->exc_type = Py_NewRef(o[4]);
    r->exc_message = Py_NewRef(o[5]);
    r->traceback = Py_NewRef(o[6]);
    return (PyObject *)r;
}

static PyMethodDef result_methods[] = {
    {"_set_result", (PyCFunction)result_set_result, METH_VARARGS, NULL},
    {"__reduce__", (PyCFunction)result_reduce, METH_NOARGS, NULL},
    {NULL}};

PyTypeObject pyeryx_ResultType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eryx.ExecuteResult",
    .tp_basicsize = sizeof(pyeryx_result),
    .tp_dealloc = (destructor)result_dealloc,
    .tp_str = (reprfunc)result_str,
    .tp_repr = (reprfunc)result_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What one execution produced.\n\n"
              "stdout and stderr are str; str(result) is stdout. result is the value of\n"
              "the result variable (JSON-decoded) when the code assigned one.",
    .tp_members = result_members,
    .tp_getset = result_getset,
    .tp_methods = result_methods,
};

/* ------------------------------------------------------------------------ */
/* Statuses to exceptions                                                    */

static PyObject *raise_with(PyObject *type, PyObject *msg, PyObject *result, int rc)
{
    PyObject *exc = PyObject_CallOneArg(type, msg);
    if (!exc)
        return NULL;
    PyObject *status = PyLong_FromLong(rc);
    if (!status || PyObject_SetAttrString(exc, "result", result ? result : Py_None) < 0 ||
        PyObject_SetAttrString(exc, "status", status) < 0) {
        Py_XDECREF(status);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(status);
    PyErr_SetObject(type, exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *pyeryx_raise_as(PyObject *type, int rc, const char *msg)
{
    PyObject *m = PyUnicode_FromString(msg);
    if (m) {
        raise_with(type, m, NULL, rc);
        Py_DECREF(m);
    }
    return NULL;
}

PyObject *pyeryx_raise_status(int rc, const char *msg)
{
    PyObject *type = pyeryx_EryxError;
    switch (rc) {
    case ERYX_TIMEOUT: type = pyeryx_TimeoutError; break;
    case ERYX_INTERRUPTED: type = pyeryx_CancelledError; break;
    case ERYX_FUEL: case ERYX_NOMEM: type = pyeryx_ResourceLimitError; break;
    case ERYX_INIT: type = pyeryx_InitializationError; break;
    case ERYX_INVALID: type = PyExc_ValueError; break;
    case ERYX_DIVERGED: type = pyeryx_JournalError; break;
    default: break;
    }
    PyObject *m = rc == ERYX_DEAD
                      ? PyUnicode_FromString("the sandbox can no longer run code (an earlier "
                                             "run trapped, was stopped hard or called "
                                             "os._exit): reset() the session, or make a new "
                                             "one")
                      : PyUnicode_FromFormat("%s%s%s", eryx_errstr(rc),
                                             msg && *msg ? ": " : "", msg ? msg : "");
    if (!m)
        return NULL;
    if (type == PyExc_ValueError) {
        PyErr_SetObject(type, m);
        Py_DECREF(m);
        return NULL;
    }
    raise_with(type, m, NULL, rc);
    Py_DECREF(m);
    return NULL;
}

PyObject *pyeryx_result_or_raise(int rc, eryx_result *res, const char *msg)
{
    if (!res)
        return pyeryx_raise_status(rc == ERYX_OK ? ERYX_INTERNAL : rc, msg);
    PyObject *r = result_new_from(rc, res);
    eryx_result_free(res);
    if (!r || rc == ERYX_OK)
        return r;
    pyeryx_result *pr = (pyeryx_result *)r;
    PyObject *type = pyeryx_EryxError, *m = NULL;
    switch (rc) {
    case ERYX_PYTHON_EXCEPTION:
        type = pyeryx_ExecutionError;
        if (pr->exc_type != Py_None && PyUnicode_CompareWithASCIIString(pr->exc_type,
                                                                         "MemoryError") == 0)
            type = pyeryx_ResourceLimitError;
        if (pr->traceback != Py_None) {
            m = pr->traceback;
            Py_INCREF(m);
        } else {
            m = PyUnicode_FromFormat("%S: %S", pr->exc_type, pr->exc_message);
        }
        break;
    case ERYX_TIMEOUT:
        type = pyeryx_TimeoutError;
        m = PyUnicode_FromFormat("execution timed out%s",
                                 pr->hard_stopped ? " (stopped hard: the sandbox is dead)" : "");
        break;
    case ERYX_INTERRUPTED:
        type = pyeryx_CancelledError;
        m = PyUnicode_FromFormat("execution interrupted%s",
                                 pr->hard_stopped ? " (stopped hard: the sandbox is dead)" : "");
        break;
    case ERYX_FUEL:
        type = pyeryx_ResourceLimitError;
        m = PyUnicode_FromString("execution ran out of fuel (the sandbox is dead)");
        break;
    case ERYX_TRAP:
        type = pyeryx_ExecutionError;
        m = PyUnicode_FromFormat("the sandboxed code trapped (the sandbox is dead)%s%s",
                                 msg && *msg ? ": " : "", msg ? msg : "");
        break;
    case ERYX_DEAD:
        m = PyUnicode_FromString("the sandbox can no longer run code (an earlier run trapped, "
                                 "was stopped hard or called os._exit); reset it");
        break;
    case ERYX_DIVERGED:
        /* liberyx's message names the call that differed. */
        type = pyeryx_JournalError;
        m = msg && *msg ? PyUnicode_FromString(msg)
                        : PyUnicode_FromString("the code did not repeat the journal's calls");
        break;
    default:
        m = PyUnicode_FromFormat("%s%s%s", eryx_errstr(rc), msg && *msg ? ": " : "",
                                 msg ? msg : "");
    }
    if (m)
        raise_with(type, m, r, rc);
    Py_XDECREF(m);
    Py_DECREF(r);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Runtime                                                                   */

static PyObject *default_runtime;

static PyObject *runtime_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"flags", "site_packages", "wheels", "imports", "setup_code",
                             "setup_timeout_ns", "image_path", NULL};
    unsigned flags = 0;
    PyObject *site = NULL, *wheels = NULL, *imports = NULL, *setup = NULL, *timeout = NULL,
             *image = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|IOOOOOO:Runtime", kwlist, &flags, &site,
                                     &wheels, &imports, &setup, &timeout, &image))
        return NULL;
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    cfg.flags = flags;
    pyeryx_config own_cfg; /* owns the strings */
    memset(&own_cfg, 0, sizeof own_cfg);
    int want_image = (site && site != Py_None) || (wheels && wheels != Py_None) ||
                     (imports && imports != Py_None) || (setup && setup != Py_None) ||
                     (image && image != Py_None);
#ifdef ERYX_HAVE_IMAGE_FILES
    if (want_image) {
        if (str_list(&own_cfg, site, "a site-packages directory", &cfg.site_packages,
                     &cfg.n_site_packages) < 0 ||
            str_list(&own_cfg, wheels, "a wheel path", &cfg.wheels, &cfg.n_wheels) < 0 ||
            str_list(&own_cfg, imports, "a module name", &cfg.imports, &cfg.n_imports) < 0 ||
            pyeryx_u64(timeout, "setup_timeout_ns", 0, &cfg.setup_timeout_ns) < 0)
            goto fail;
        if (setup && setup != Py_None &&
            !(cfg.setup_code = own_str(&own_cfg, setup, "setup_code")))
            goto fail;
        if (image && image != Py_None && !(cfg.image_path = own_str(&own_cfg, image, "image_path")))
            goto fail;
    }
#else
    (void)timeout;
    if (want_image) {
        PyErr_SetString(pyeryx_EryxError, "this liberyx cannot build runtime images with "
                                          "packages (ERYX_HAVE_IMAGE_FILES)");
        goto fail;
    }
#endif
    eryx_runtime *rt = NULL;
    int rc;
    char msg[8192];
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_runtime_new(&cfg, &rt);
    if (rc != ERYX_OK)
        snprintf(msg, sizeof msg, "%s", eryx_errmsg(NULL));
    Py_END_ALLOW_THREADS
    pyeryx_config_clear(&own_cfg);
    if (rc != ERYX_OK) {
        PyObject *m = PyUnicode_FromFormat("could not create the eryx runtime: %s: %s",
                                           eryx_errstr(rc), msg);
        if (m)
            raise_with(rc == ERYX_TIMEOUT ? pyeryx_TimeoutError : pyeryx_InitializationError, m,
                       NULL, rc);
        Py_XDECREF(m);
        return NULL;
    }
    pyeryx_runtime *self = (pyeryx_runtime *)type->tp_alloc(type, 0);
    if (!self) {
        eryx_runtime_free(rt);
        return NULL;
    }
    self->rt = rt;
    return (PyObject *)self;
fail:
    pyeryx_config_clear(&own_cfg);
    return NULL;
}

static PyObject *runtime_save_image(pyeryx_runtime *self, PyObject *arg)
{
#ifdef ERYX_HAVE_IMAGE_FILES
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    int rc;
    char msg[1024];
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_runtime_save_image(self->rt, p);
    snprintf(msg, sizeof msg, "%s", rc == ERYX_OK ? "" : eryx_errmsg(NULL));
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (rc != ERYX_OK) {
        PyErr_Format(rc == ERYX_IO ? PyExc_OSError : pyeryx_EryxError,
                     "could not save the image: %s: %s", eryx_errstr(rc), msg);
        return NULL;
    }
    Py_RETURN_NONE;
#else
    PyErr_SetString(pyeryx_EryxError, "this liberyx cannot save runtime images "
                                      "(ERYX_HAVE_IMAGE_FILES)");
    return NULL;
#endif
}

static PyObject *runtime_get_image_size(pyeryx_runtime *self, void *u)
{
#ifdef ERYX_HAVE_IMAGE_FILES
    uint64_t n = 0;
    int rc = eryx_runtime_image_size(self->rt, &n);
    if (rc != ERYX_OK)
        return pyeryx_raise_status(rc, "the runtime has no image");
    return PyLong_FromUnsignedLongLong(n);
#else
    PyErr_SetString(pyeryx_EryxError, "this liberyx has no image size query "
                                      "(ERYX_HAVE_IMAGE_FILES)");
    return NULL;
#endif
}

static PyMethodDef runtime_methods[] = {
    {"save_image", (PyCFunction)runtime_save_image, METH_O,
     "Saves the runtime's image to a file (eryx_runtime_save_image)."},
    {NULL}};

static PyGetSetDef runtime_getset[] = {
    {"image_size", (getter)runtime_get_image_size, NULL,
     "Bytes of the runtime's image (eryx_runtime_image_size).", NULL},
    {NULL}};

static void runtime_dealloc(pyeryx_runtime *self)
{
    /* Sandboxes hold a reference to their runtime, so none is left here;
     * a runtime alive at interpreter exit is simply not freed. */
    if (self->rt && !pyeryx_is_finalizing())
        eryx_runtime_free(self->rt);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyTypeObject pyeryx_RuntimeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eryx._eryx.Runtime",
    .tp_basicsize = sizeof(pyeryx_runtime),
    .tp_dealloc = (destructor)runtime_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = runtime_new,
    .tp_methods = runtime_methods,
    .tp_getset = runtime_getset,
    .tp_doc = "Runtime(flags=0, site_packages=None, wheels=None, imports=None, "
              "setup_code=None, setup_timeout_ns=0, image_path=None): liberyx's "
              "interpreter image (eryx_runtime), shared by sandboxes on any thread. "
              "Creating one boots CPython once (~150-250 ms). The package fields need "
              "a liberyx with ERYX_HAVE_IMAGE_FILES.",
};

static PyObject *mod_default_runtime(PyObject *m, PyObject *unused)
{
    if (!default_runtime) {
        default_runtime = PyObject_CallNoArgs((PyObject *)&pyeryx_RuntimeType);
        if (!default_runtime)
            return NULL;
        ((pyeryx_runtime *)default_runtime)->is_default = 1;
    }
    Py_INCREF(default_runtime);
    return default_runtime;
}

static PyObject *mod_has_fuel(PyObject *m, PyObject *unused)
{
    return PyBool_FromLong(eryx_build_has_fuel());
}

static PyObject *mod_errstr(PyObject *m, PyObject *arg)
{
    long rc = PyLong_AsLong(arg);
    if (rc == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(eryx_errstr((int)rc));
}

/* journal_info(data) -> (entries, pending) of a journal's bytes, or
 * JournalError for bytes eryx_journal_load refuses. */
static PyObject *mod_journal_info(PyObject *m, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    eryx_journal *j = NULL;
    size_t n = 0, pending = 0;
    int rc;
    char msg[1024] = "";
    Py_BEGIN_ALLOW_THREADS
    rc = eryx_journal_load(view.buf, (size_t)view.len, &j);
    if (rc == ERYX_OK) {
        n = eryx_journal_count(j);
        pending = eryx_journal_pending(j);
        eryx_journal_free(j);
    } else {
        snprintf(msg, sizeof msg, "%s", eryx_errmsg(NULL));
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (rc == ERYX_INVALID) {
        PyErr_Format(pyeryx_JournalError, "the journal does not load: %s", msg);
        return NULL;
    }
    if (rc != ERYX_OK)
        return pyeryx_raise_status(rc, msg);
    return Py_BuildValue("(nn)", (Py_ssize_t)n, (Py_ssize_t)pending);
}

static PyMethodDef module_methods[] = {
    {"default_runtime", mod_default_runtime, METH_NOARGS,
     "The process's shared Runtime, created on first use and never freed."},
    {"build_has_fuel", mod_has_fuel, METH_NOARGS,
     "True if this liberyx counts fuel (ResourceLimits.max_fuel works)."},
    {"errstr", mod_errstr, METH_O, "Name and description of a liberyx status code."},
    {"_result_restore", mod_result_restore, METH_VARARGS,
     "An ExecuteResult from its pickled state (ExecuteResult.__reduce__)."},
    {"journal_info", mod_journal_info, METH_O,
     "journal_info(data) -> (entries, pending): checks a journal's bytes "
     "(eryx_journal_load); JournalError if they are not one."},
    {NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "eryx._eryx",
    "The C extension of the eryx package: a thin layer over liberyx's public API.\n"
    "Use the names of the eryx package; this module is its implementation.",
    -1, module_methods, NULL, NULL, NULL, NULL};

static PyObject *new_exc(PyObject *m, const char *name, PyObject *base, const char *doc)
{
    char full[64];
    snprintf(full, sizeof full, "eryx.%s", name);
    PyObject *e = PyErr_NewExceptionWithDoc(full, doc, base, NULL);
    if (!e || PyModule_AddObjectRef(m, name, e) < 0)
        return NULL;
    return e;
}

PyMODINIT_FUNC PyInit__eryx(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    pyeryx_sigint_init();
    PyTypeObject *types[] = {&pyeryx_ResultType, &pyeryx_RuntimeType, &pyeryx_SandboxType,
                             &pyeryx_ExecType, &pyeryx_CallType, &pyeryx_PoolType};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        if (PyType_Ready(types[i]) < 0)
            goto fail;
        const char *dot = strrchr(types[i]->tp_name, '.');
        if (PyModule_AddObjectRef(m, dot + 1, (PyObject *)types[i]) < 0)
            goto fail;
    }
    if (!(pyeryx_EryxError = new_exc(m, "EryxError", PyExc_Exception,
                                     "Base class of every error eryx raises.")))
        goto fail;
    /* Defaults for the errors the package raises itself (a pool's, an MCP
     * call's): those of a run set both on the instance. */
    if (PyObject_SetAttrString(pyeryx_EryxError, "result", Py_None) < 0 ||
        PyObject_SetAttrString(pyeryx_EryxError, "status", Py_None) < 0)
        goto fail;
    if (!(pyeryx_ExecutionError = new_exc(m, "ExecutionError", pyeryx_EryxError,
                                          "The sandboxed code raised an exception (its "
                                          "traceback is the message; .result holds the "
                                          "output), or the sandbox trapped.")))
        goto fail;
    PyObject *bases = PyTuple_Pack(2, PyExc_TimeoutError, pyeryx_EryxError);
    if (!bases)
        goto fail;
    pyeryx_TimeoutError = new_exc(m, "TimeoutError", bases,
                                  "The run exceeded its time limit. Also a builtin "
                                  "TimeoutError.");
    Py_DECREF(bases);
    if (!pyeryx_TimeoutError)
        goto fail;
    if (!(pyeryx_ResourceLimitError =
              new_exc(m, "ResourceLimitError", pyeryx_EryxError,
                      "A resource limit was hit: memory (an uncaught MemoryError), fuel.")) ||
        !(pyeryx_CancelledError = new_exc(m, "CancelledError", pyeryx_EryxError,
                                          "The run was stopped by interrupt() (or by "
                                          "cancelling execute_async).")) ||
        !(pyeryx_InitializationError = new_exc(m, "InitializationError", pyeryx_EryxError,
                                               "A runtime, sandbox or session could not "
                                               "be created or loaded.")) ||
        !(pyeryx_JournalError = new_exc(m, "JournalError", pyeryx_EryxError,
                                        "A journal that cannot be used: it does not "
                                        "load (damaged, another format), does not fit "
                                        "the execution (other code), or the code did "
                                        "not repeat its calls (diverged).")))
        goto fail;
    if (PyModule_AddStringConstant(m, "LIB_VERSION", eryx_version()) < 0 ||
        PyModule_AddIntConstant(m, "PENDING", ERYX_PENDING) < 0 ||
        PyModule_AddIntConstant(m, "OK", ERYX_OK) < 0 ||
        PyModule_AddIntConstant(m, "DIVERGED", ERYX_DIVERGED) < 0 ||
        PyModule_AddIntConstant(m, "CALL_FAILED", ERYX_CALL_FAILED) < 0 ||
        PyModule_AddIntConstant(m, "CALL_INVALID_ARGS", ERYX_CALL_INVALID_ARGS) < 0 ||
        PyModule_AddIntConstant(m, "CALL_TIMEOUT", ERYX_CALL_TIMEOUT) < 0 ||
        PyModule_AddIntConstant(m, "RUNTIME_NO_IMAGE", ERYX_RUNTIME_NO_IMAGE) < 0 ||
        PyModule_AddIntConstant(m, "RUNTIME_NO_BYTECODE", ERYX_RUNTIME_NO_BYTECODE) < 0 ||
#ifdef ERYX_HAVE_NET
        PyModule_AddIntConstant(m, "HAVE_NET", 1) < 0 ||
#else
        PyModule_AddIntConstant(m, "HAVE_NET", 0) < 0 ||
#endif
#ifdef ERYX_HAVE_IMAGE_FILES
        PyModule_AddIntConstant(m, "HAVE_IMAGE_FILES", 1) < 0 ||
#else
        PyModule_AddIntConstant(m, "HAVE_IMAGE_FILES", 0) < 0 ||
#endif
        PyModule_AddObject(m, "NO_LIMIT", PyLong_FromUnsignedLongLong(ERYX_NO_LIMIT)) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
