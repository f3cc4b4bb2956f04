/*
 * The guest module's C side: CPython linked as a library into a WASI reactor
 * that exports the small ABI of abi.h. Everything Python-level lives in the
 * _eryx package (guest/python/_eryx), which this file only calls.
 */
#include <Python.h>
#include <stdlib.h>
#include <string.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

#include "abi.h"

#define EXPORT(name) __attribute__((export_name(#name)))
#define IMPORT(name) __attribute__((import_module("eryx"), import_name(#name)))

/* Host functions (src/core/host_imports.c). */
IMPORT(wait) uint32_t host_wait(const char *req, uint32_t len);
IMPORT(read_reply) uint32_t host_read_reply(char *buf, uint32_t len);
IMPORT(event) void host_event(uint32_t kind, const char *data, uint32_t len);

/* sqlite_locks.c */
int eryx_sqlite_use_unix_locks(void);

/* The stdlib image is mounted here by the host (see src/core/runtime.c). */
#define PY_STR2(x) #x
#define PY_STR1(x) PY_STR2(x)
#define STDLIB_DIR L"/usr/lib/python" PY_STR1(PY_MAJOR_VERSION) "." PY_STR1(PY_MINOR_VERSION)

/*
 * CPU clocks. wasi-libc's emulated clock(), times() and getrusage()
 * (libwasi-emulated-process-clocks) count the monotonic clock from a start
 * taken by a constructor, which ran when the image was built: so
 * time.process_time() was the wall time since then, sleeps included, and
 * os.times() was that in nanoseconds read as ticks of 1/100 s. These read
 * WASI's process CPU clock, which the host keeps as the sandbox's own
 * running time (src/wasi/wasi_clock.c). Defining __clock and clock here
 * keeps the archive's clock.c out of the link; its getrusage() calls this
 * __clock.
 */
static __wasi_timestamp_t cpu_ns(void)
{
    __wasi_timestamp_t t = 0;
    (void)__wasi_clock_time_get(__WASI_CLOCKID_PROCESS_CPUTIME_ID, 0, &t);
    return t;
}

clock_t __clock(void)
{
    return (clock_t)cpu_ns();   /* CLOCKS_PER_SEC is 10^9 */
}

clock_t clock(void)
{
    return __clock();
}

/* In ticks of sysconf(_SC_CLK_TCK), which is what os.times() divides by. */
clock_t times(struct tms *buf)
{
    uint64_t ns_per_tick = 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);
    __wasi_timestamp_t now = 0;
    (void)__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 0, &now);
    if (buf)
        *buf = (struct tms){.tms_utime = (clock_t)(cpu_ns() / ns_per_tick)};
    return (clock_t)(now / ns_per_tick);
}

static PyObject *run_fn;            /* _eryx.run */
static PyObject *last_result;       /* keeps the result strings alive */
static eryx_guest_result result;

EXPORT(eryx_abi_version) int32_t eryx_abi_version(void)
{
    return ERYX_GUEST_ABI_VERSION;
}

EXPORT(eryx_alloc) void *eryx_alloc(size_t size)
{
    return malloc(size ? size : 1);
}

EXPORT(eryx_dealloc) void eryx_dealloc(void *p)
{
    free(p);
}

/* _eryx_host.wait(request: bytes) -> bytes
 * Hands the host a request (callbacks to run, the next timer) and returns its
 * reply. The host may suspend this call for as long as it likes: the guest
 * runs on a stack of its own (see src/engine/fiber.c), so even a wait deep
 * inside synchronous frames (asyncio.run) returns control to the embedder. */
static PyObject *host_wait_py(PyObject *self, PyObject *arg)
{
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(arg, &data, &len) < 0)
        return NULL;
    if ((size_t)len > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "request too large");
        return NULL;
    }
    uint32_t n = host_wait(data, (uint32_t)len);
    PyObject *reply = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!reply)
        return NULL;
    if (host_read_reply(PyBytes_AS_STRING(reply), n) != n) {
        Py_DECREF(reply);
        PyErr_SetString(PyExc_RuntimeError, "the host lost the reply");
        return NULL;
    }
    return reply;
}

/* The JSON value that is exactly the n bytes at v, read with scan (json's
 * scanner: scan(text, 0) -> (value, end)); NULL with an exception if it
 * does not read or does not end there. */
static PyObject *read_value(const char *v, size_t n, PyObject *scan)
{
    if (n == 4 && memcmp(v, "null", 4) == 0)
        Py_RETURN_NONE;
    if (n == 4 && memcmp(v, "true", 4) == 0)
        Py_RETURN_TRUE;
    if (n == 5 && memcmp(v, "false", 5) == 0)
        Py_RETURN_FALSE;
    PyObject *text = PyUnicode_DecodeUTF8(v, (Py_ssize_t)n, NULL);
    PyObject *zero = PyLong_FromLong(0);
    PyObject *argv[2] = {text, zero};
    PyObject *got = text && zero ? PyObject_Vectorcall(scan, argv, 2, NULL) : NULL;
    PyObject *value = NULL;
    if (got && PyTuple_Check(got) && PyTuple_GET_SIZE(got) == 2 &&
        PyLong_AsSsize_t(PyTuple_GET_ITEM(got, 1)) == PyUnicode_GET_LENGTH(text))
        value = Py_NewRef(PyTuple_GET_ITEM(got, 0));
    else if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "not one JSON value");
    Py_XDECREF(got);
    Py_XDECREF(zero);
    Py_XDECREF(text);
    return value;
}

/* Writes v in decimal at p (room for 20 digits); returns the digits'
 * count. snprintf took half a microsecond of each call's two uses (its
 * format parsing and stdio set-up, in the guest). */
static size_t put_decimal(char *p, unsigned long long v)
{
    char d[20];
    size_t n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = d[n - 1 - i];
    return n;
}

/* _eryx_host.call(head, args, cid, scan) -> (True, value) | (False, reply)
 * One host function called on its own, hostcall.call_sync's common case,
 * in C: building the request and reading the reply in Python was most of
 * an `await noop()` (docs/performance.md, "Callback round trip"). The
 * request is head + args + ',"id":cid}],"timeout":null}', head being
 * '{"calls":[{"name":<JSON>,"args":' and args the arguments' JSON text.
 * The reply to this call alone, a value, is the host's exact text
 * {"results":[{"id":cid,"ok":true,"value":V}]}: V is read (null, true and
 * false at once, anything else with scan, json's scanner) and (True, V)
 * returned. Any other reply, or a V that does not read, comes back whole:
 * (False, reply as str), for the caller to read as it reads every reply. */
static PyObject *host_call_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const char tail[] = "}],\"timeout\":null}";
    if (nargs != 4 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "call(head: str, args: str, cid: int, scan)");
        return NULL;
    }
    Py_ssize_t hlen, alen;
    const char *head = PyUnicode_AsUTF8AndSize(args[0], &hlen);
    const char *argj = PyUnicode_AsUTF8AndSize(args[1], &alen);
    unsigned long long cid = PyLong_AsUnsignedLongLong(args[2]);
    if (!head || !argj || PyErr_Occurred())
        return NULL;
    static const char id_key[] = ",\"id\":";
    char id[32], small[1024], *req = small;
    memcpy(id, id_key, sizeof id_key - 1);
    size_t idlen = sizeof id_key - 1 + put_decimal(id + sizeof id_key - 1, cid);
    size_t rlen = (size_t)hlen + (size_t)alen + (size_t)idlen + sizeof tail - 1;
    if (rlen > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "request too large");
        return NULL;
    }
    if (rlen > sizeof small && !(req = PyMem_Malloc(rlen)))
        return PyErr_NoMemory();
    memcpy(req, head, (size_t)hlen);
    memcpy(req + hlen, argj, (size_t)alen);
    memcpy(req + hlen + alen, id, (size_t)idlen);
    memcpy(req + hlen + alen + idlen, tail, sizeof tail - 1);
    uint32_t n = host_wait(req, (uint32_t)rlen);
    if (req != small)
        PyMem_Free(req);

    char *reply = n <= sizeof small ? small : PyMem_Malloc(n);
    if (!reply)
        return PyErr_NoMemory();
    PyObject *out = NULL;
    if (host_read_reply(reply, n) != n) {
        PyErr_SetString(PyExc_RuntimeError, "the host lost the reply");
        goto done;
    }
    static const char results[] = "{\"results\":[{\"id\":", ok[] = ",\"ok\":true,\"value\":";
    char want[64];
    size_t wlen = sizeof results - 1;
    memcpy(want, results, wlen);
    wlen += put_decimal(want + wlen, cid);
    memcpy(want + wlen, ok, sizeof ok - 1);
    wlen += sizeof ok - 1;
    if (n > (uint32_t)wlen + 3 && memcmp(reply, want, (size_t)wlen) == 0 &&
        memcmp(reply + n - 3, "}]}", 3) == 0) {
        PyObject *value = read_value(reply + wlen, n - (uint32_t)wlen - 3, args[3]);
        if (value) {
            out = PyTuple_Pack(2, Py_True, value);
            Py_DECREF(value);
            goto done;
        }
        PyErr_Clear();  /* read whole by the caller, which says what is wrong */
    }
    PyObject *text = PyUnicode_DecodeUTF8(reply, n, NULL);
    if (text) {
        out = PyTuple_Pack(2, Py_False, text);
        Py_DECREF(text);
    }
done:
    if (reply != small)
        PyMem_Free(reply);
    return out;
}

/* _eryx_host.event(kind: int, data: bytes): a report to the host (trace
 * line, value of `result`, ...); see guest/abi.h. */
static PyObject *host_event_py(PyObject *self, PyObject *args)
{
    unsigned int kind;
    const char *data;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "Iy#", &kind, &data, &len))
        return NULL;
    host_event(kind, data, (uint32_t)len);
    Py_RETURN_NONE;
}

/* Line tracing (docs/performance.md, "Tracing"). _eryx_host.trace_line is
 * the sys.monitoring LINE callback of a traced run: in C, because a Python
 * callback's frame alone made a line-dense loop 2.6x slower. A line of the
 * run's own file becomes one ERYX_EVENT_TRACE (guest/abi.h) in one buffer:
 * the "file\0" after the header is made once per run, the "function\0"
 * after it once per change of code object, so that most lines only write
 * their number. A line of any other file gets sys.monitoring.DISABLE, so
 * it is not reported again. */
static struct {
    PyObject *filename;     /* the traced run's filename; NULL between runs */
    PyObject *disable;      /* sys.monitoring.DISABLE */
    PyObject *code;         /* the code object whose name buf holds */
    char *buf;              /* the event: header, "file\0", "function\0" */
    size_t prefix;          /* the header and "file\0" */
    size_t len, cap;        /* the event's bytes (with code's name); buf's */
} trace;

static int trace_reserve(size_t need)
{
    if (need <= trace.cap)
        return 0;
    size_t cap = need < 256 ? 256 : need <= SIZE_MAX / 2 ? need * 2 : need;
    char *p = realloc(trace.buf, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    trace.buf = p;
    trace.cap = cap;
    return 0;
}

static void put_le32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)(v >> (8 * i));
}

/* _eryx_host.trace_begin(filename: str, disable) */
static PyObject *trace_begin_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "trace_begin(filename: str, disable)");
        return NULL;
    }
    PyObject *name = PyUnicode_AsEncodedString(args[0], "utf-8", "surrogateescape");
    if (!name)
        return NULL;
    size_t n = (size_t)PyBytes_GET_SIZE(name);
    if (trace_reserve(ERYX_TRACE_HEADER + n + 1) < 0) { /* n < 2 GiB in wasm32 */
        Py_DECREF(name);
        return NULL;
    }
    put_le32(trace.buf + 4, (uint32_t)n);
    memcpy(trace.buf + ERYX_TRACE_HEADER, PyBytes_AS_STRING(name), n + 1); /* with its NUL */
    Py_DECREF(name);
    trace.prefix = trace.len = ERYX_TRACE_HEADER + n + 1;
    Py_CLEAR(trace.code);
    Py_XSETREF(trace.filename, Py_NewRef(args[0]));
    Py_XSETREF(trace.disable, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* _eryx_host.trace_end() */
static PyObject *trace_end_py(PyObject *self, PyObject *unused)
{
    Py_CLEAR(trace.filename);
    Py_CLEAR(trace.disable);
    Py_CLEAR(trace.code);
    Py_RETURN_NONE;
}

static int is_traced_file(PyObject *filename)
{
    if (filename == trace.filename)
        return 1;
    if (!PyUnicode_Check(filename))
        return 0;
    return PyUnicode_Compare(filename, trace.filename) == 0;
}

/* Puts code's name after the file in the event; 0, or -1 with an
 * exception set. */
static int trace_set_function(PyCodeObject *code)
{
    Py_ssize_t name_len;
    const char *name = PyUnicode_AsUTF8AndSize(code->co_name, &name_len);
    PyObject *encoded = NULL;
    if (!name) { /* lone surrogates: as the filename */
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(code->co_name, "utf-8", "surrogateescape");
        if (!encoded)
            return -1;
        name = PyBytes_AS_STRING(encoded);
        name_len = PyBytes_GET_SIZE(encoded);
    }
    int rc = trace_reserve(trace.prefix + (size_t)name_len + 1);
    if (rc == 0) {
        memcpy(trace.buf + trace.prefix, name, (size_t)name_len);
        trace.buf[trace.prefix + (size_t)name_len] = '\0';
        trace.len = trace.prefix + (size_t)name_len + 1;
        Py_XSETREF(trace.code, Py_NewRef((PyObject *)code));
    }
    Py_XDECREF(encoded);
    return rc;
}

/* The line number of a LINE event: 1, 0 for one outside int32 (not
 * reported: the host could not pass it on), or -1 with an exception (one
 * that is no int: TypeError). */
static int trace_line_number(PyObject *obj, int32_t *line)
{
    if (PyLong_CheckExact(obj) && PyUnstable_Long_IsCompact((PyLongObject *)obj)) {
        *line = (int32_t)PyUnstable_Long_CompactValue((PyLongObject *)obj); /* 30 bits */
        return 1;
    }
    long long v = PyLong_AsLongLong(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < INT32_MIN || v > INT32_MAX)
        return 0;
    *line = (int32_t)v;
    return 1;
}

/* _eryx_host.trace_line(code, line): the LINE callback. */
static PyObject *trace_line_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyCode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "trace_line(code, line: int)");
        return NULL;
    }
    if (!trace.filename)
        Py_RETURN_NONE;
    PyCodeObject *code = (PyCodeObject *)args[0];
    if (!is_traced_file(code->co_filename)) {
        PyErr_Clear(); /* a comparison that failed is "not this file" */
        return Py_NewRef(trace.disable);
    }
    int32_t line;
    int ok = trace_line_number(args[1], &line);
    if (ok <= 0)
        return ok < 0 ? NULL : Py_NewRef(Py_None);
    if ((PyObject *)code != trace.code && trace_set_function(code) < 0)
        return NULL;
    put_le32(trace.buf, (uint32_t)line);
    host_event(ERYX_EVENT_TRACE, trace.buf, (uint32_t)trace.len);
    Py_RETURN_NONE;
}

/* _eryx_host.immortalize() -> int
 * Makes every object the garbage collector knows, and every object one of
 * them refers to, immortal (reference counting then leaves it alone), and
 * returns how many it changed. The runtime calls it on its template just
 * before the template's memory becomes the image (src/core/snapshot.c):
 * from then on a run writes no reference counts of the image's objects,
 * so it dirties, and a reset restores, far fewer pages. The price: an
 * object of the image is never freed, even once a sandbox drops every
 * reference to it (its memory is the image's, shared until written), and
 * its reference count reads as huge. */
static void make_immortal(PyObject *op, Py_ssize_t *changed)
{
    if (op == NULL || _Py_IsImmortal(op))
        return;
    Py_SET_REFCNT(op, _Py_IMMORTAL_REFCNT);
    (*changed)++;
}

static int immortalize_referent(PyObject *op, void *changed)
{
    make_immortal(op, changed);
    return 0;
}

static int immortalize_object(PyObject *op, void *changed)
{
    make_immortal(op, changed);
    traverseproc traverse = Py_TYPE(op)->tp_traverse;
    if (traverse)
        traverse(op, immortalize_referent, changed);
    return 1;   /* go on */
}

static PyObject *host_immortalize_py(PyObject *self, PyObject *unused)
{
    Py_ssize_t changed = 0;
    PyUnstable_GC_VisitObjects(immortalize_object, &changed);
    return PyLong_FromSsize_t(changed);
}

static PyMethodDef host_methods[] = {
    {"wait", host_wait_py, METH_O, "Hand a request to the host, return its reply."},
    {"call", (PyCFunction)(void (*)(void))host_call_py, METH_FASTCALL,
     "Call one host function: (True, its value) or (False, the reply)."},
    {"event", host_event_py, METH_VARARGS, "Report an event to the host."},
    {"trace_begin", (PyCFunction)(void (*)(void))trace_begin_py, METH_FASTCALL,
     "Start reporting the lines of the given file (trace_line)."},
    {"trace_end", trace_end_py, METH_NOARGS, "Stop reporting lines."},
    {"trace_line", (PyCFunction)(void (*)(void))trace_line_py, METH_FASTCALL,
     "The sys.monitoring LINE callback of a traced run."},
    {"immortalize", host_immortalize_py, METH_NOARGS,
     "Make every object reachable from the collector's lists immortal."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef host_module = {
    PyModuleDef_HEAD_INIT, "_eryx_host", "The host's functions.", -1, host_methods,
};

static PyObject *init_host_module(void)
{
    return PyModule_Create(&host_module);
}

/* Where the host writes to interrupt Python code from another thread: it
 * stores `exception` into *async_exc, then ORs `bit` into *eval_breaker; the
 * eval loop raises the exception at its next check, as
 * PyThreadState_SetAsyncExc would. KeyboardInterrupt is a static type, so it
 * is immortal and the eval loop's decref is harmless. */
static struct {
    uint32_t eval_breaker, async_exc, exception, bit;
} interrupt_info;

EXPORT(eryx_interrupt_info) void *eryx_interrupt_info(void)
{
    PyThreadState *ts = PyThreadState_Get();
    interrupt_info.eval_breaker = (uint32_t)(uintptr_t)&ts->eval_breaker;
    interrupt_info.async_exc = (uint32_t)(uintptr_t)&ts->async_exc;
    interrupt_info.exception = (uint32_t)(uintptr_t)PyExc_KeyboardInterrupt;
    interrupt_info.bit = 1u << 3; /* _PY_ASYNC_EXCEPTION_BIT in 3.13 */
    return &interrupt_info;
}

static int configure_and_start(void)
{
    if (PyImport_AppendInittab("_eryx_host", init_host_module) < 0)
        return -1;
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    if (PyStatus_Exception(Py_PreInitialize(&pre)))
        return -1;

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.write_bytecode = 0;
    config.parse_argv = 0;
    config.pathconfig_warnings = 0;
    config.safe_path = 1;
    /* A fixed string hash seed: the same code does the same work (the same
     * fuel count) on every run and machine, and every sandbox of an image
     * shares the template's seed anyway. Hash flooding can only slow the
     * attacker's own sandbox, which the limits bound. */
    config.use_hash_seed = 1;
    config.hash_seed = 0;
    PyStatus st = PyConfig_SetString(&config, &config.home, L"/usr");
    if (!PyStatus_Exception(st))
        st = PyConfig_SetString(&config, &config.program_name, L"python3");
    if (!PyStatus_Exception(st)) {
        config.module_search_paths_set = 1;
        st = PyWideStringList_Append(&config.module_search_paths, STDLIB_DIR);
    }
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    return PyStatus_Exception(st) ? -1 : 0;
}

EXPORT(eryx_init) int32_t eryx_init(void)
{
    if (run_fn)
        return 0;
    if (eryx_sqlite_use_unix_locks() < 0) {
        fputs("eryx: SQLite has no unix VFS to lock with\n", stderr);
        return -1;
    }
    if (configure_and_start() < 0)
        return -1;
    PyObject *mod = PyImport_ImportModule("_eryx");
    if (mod) {
        run_fn = PyObject_GetAttrString(mod, "run");
        Py_DECREF(mod);
    }
    if (!run_fn) {
        PyErr_Print();
        return -1;
    }
    return 0;
}

static uint32_t guest_ptr(const void *p)
{
    return (uint32_t)(uintptr_t)p;
}

/* Points the result record at three str items of a tuple. */
static int set_strings(PyObject *tuple)
{
    uint32_t *slots[3][2] = {
        {&result.type_ptr, &result.type_len},
        {&result.msg_ptr, &result.msg_len},
        {&result.tb_ptr, &result.tb_len},
    };
    for (int i = 0; i < 3; i++) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(tuple, 2 + i), &len);
        if (!s)
            return -1;
        *slots[i][0] = guest_ptr(s);
        *slots[i][1] = (uint32_t)len;
    }
    return 0;
}

static void set_internal_error(const char *msg)
{
    static const char type[] = "InternalError";
    memset(&result, 0, sizeof result);
    result.status = ERYX_GUEST_INTERNAL;
    result.exit_code = 1;
    result.type_ptr = guest_ptr(type);
    result.type_len = sizeof type - 1;
    result.msg_ptr = guest_ptr(msg);
    result.msg_len = (uint32_t)strlen(msg);
}

EXPORT(eryx_exec) eryx_guest_result *eryx_exec(const char *req, uint32_t req_len)
{
    Py_CLEAR(last_result);
    if (!run_fn) {
        set_internal_error("interpreter not initialised");
        return &result;
    }
    PyObject *out = PyObject_CallFunction(run_fn, "y#", req, (Py_ssize_t)req_len);
    /* run() catches everything the user code raises; an exception here means
     * the glue itself failed, typically MemoryError while reporting. */
    if (!out || !PyTuple_Check(out) || PyTuple_GET_SIZE(out) != 5) {
        PyErr_Clear();
        Py_XDECREF(out);
        set_internal_error("the sandbox could not report the result (out of memory?)");
        return &result;
    }
    memset(&result, 0, sizeof result);
    result.status = (uint32_t)PyLong_AsLong(PyTuple_GET_ITEM(out, 0));
    result.exit_code = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(out, 1));
    if (PyErr_Occurred() || set_strings(out) < 0) {
        PyErr_Clear();
        Py_DECREF(out);
        set_internal_error("malformed result from _eryx.run");
        return &result;
    }
    last_result = out;
    return &result;
}

_Static_assert(sizeof(eryx_guest_result) == ERYX_GUEST_RESULT_SIZE, "ABI size");
