/*
 * eryx — run untrusted Python inside a WebAssembly sandbox, in this process.
 *
 * This header is the whole public interface and its reference manual.
 *
 * Objects
 *   eryx_runtime   The interpreter image: shared, immutable once created, used
 *                  by any number of sandboxes on any number of threads.
 *   eryx_sandbox   One isolated Python interpreter with its own linear memory,
 *                  file tree and limits. Runs code with eryx_sandbox_run().
 *   eryx_result    What one execution produced (output, exception, status).
 *
 * Ownership
 *   Every object you get from an eryx_*_new() or a run is yours; free it with
 *   the matching *_free(), which accepts NULL. Inputs (strings, buffers,
 *   configs) are copied before the call returns unless stated otherwise.
 *   Strings returned by eryx_errmsg() are borrowed until the next call on the
 *   same handle (or, for eryx_errmsg(NULL), the next eryx call on the thread).
 *
 * Handles
 *   eryx_runtime, eryx_sandbox, eryx_exec, eryx_call and eryx_pool pointers
 *   are handles, not addresses: never dereference them. A handle dies with
 *   its free (or, for a call, its reply; for an execution, its finish; for a
 *   sandbox given back to a pool, the release). Every function given a dead
 *   handle, or one of the wrong type, returns ERYX_MISUSE (0, NULL or ""
 *   for functions without a status; eryx_sandbox_is_dead: 1; eryx_errmsg:
 *   a message saying so) and does nothing, also when the object behind it
 *   was reused for another owner.
 *
 * Threading
 *   A runtime may be used from any number of threads at once. A sandbox is
 *   used by one thread at a time (any thread, one after the other); using one
 *   sandbox from two threads at once is detected and fails with ERYX_MISUSE,
 *   with the message in eryx_errmsg(NULL) of the refused thread (the
 *   sandbox's own message belongs to the thread inside).
 *   The exceptions: eryx_sandbox_interrupt() may be called from any thread
 *   while another runs the sandbox, eryx_call_*() from any thread, and the
 *   pool functions from any thread. Results are plain data: read and free
 *   them anywhere.
 *   A thread inside a sandbox's guest code (in its on_output, or another
 *   function the guest's run calls on that thread) cannot run a second
 *   sandbox: that run fails with ERYX_MISUSE and leaves the second sandbox
 *   as it was. A callback's handler runs outside the guest and may.
 *   Nor can it step, suspend, finish or take the calls of the execution
 *   that runs there (eryx_exec_*): ERYX_MISUSE (NULL from
 *   eryx_exec_next_call), and the execution goes on.
 *
 * fork(2)
 *   The child of a fork (a multiprocessing worker) may go on using the
 *   parent's runtime and its idle sandboxes, and make new ones: the
 *   library's own threads (the time limits' watchdog, the callback
 *   workers, the network's poller) are started again there as needed.
 *   What other threads were doing at the fork is not in the child: a
 *   sandbox another thread was running, its calls, a connection's socket
 *   (shared with the parent) are not to be used there.
 *
 * Versions of structs
 *   Configs and options start with their own size, filled by *_default():
 *   a library reads only the fields the caller's size covers and defaults
 *   the rest, so a program built against an older header keeps working.
 *   Structs passed in arrays (eryx_callback, eryx_mount) and
 *   eryx_pool_stats also start with a size: 0 means this first version's
 *   layout (so `{.name = ...}` initialisers stay valid); every element of
 *   one array has the size of the first.
 *
 * Limits
 *   One convention for every limit (timeouts, fuel): 0 means "not set" (the
 *   default in a config, the sandbox's value in run options) and
 *   ERYX_NO_LIMIT means none.
 *
 * Signals
 *   eryx installs a SIGSEGV/SIGBUS handler (once, at the first
 *   eryx_runtime_new) that turns faults in sandboxed code into traps and
 *   passes every other fault on to the handler that was installed before it.
 *   Threads that run sandboxed code get an alternate signal stack of their own
 *   unless they already have one.
 *
 * Status codes
 *   Every function that can fail returns an int: ERYX_OK (0) or one of the
 *   codes below. eryx_errstr(rc) names the code; eryx_errmsg(sb) gives the
 *   message of the last failure on that sandbox.
 */
#ifndef ERYX_H
#define ERYX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ERYX_BUILDING) && defined(__GNUC__)
#define ERYX_API __attribute__((visibility("default")))
#else
#define ERYX_API
#endif

#define ERYX_VERSION_MAJOR 0
#define ERYX_VERSION_MINOR 1
#define ERYX_VERSION_PATCH 0
#define ERYX_VERSION_STRING "0.1.0"

/* No limit, for any limit field (see "Limits" above). */
#define ERYX_NO_LIMIT UINT64_MAX

/* The status codes: X(NAME, value, description). */
#define ERYX_STATUS_MAP(X)                                                          \
    X(OK, 0, "success")                                                             \
    X(NOMEM, 1, "out of memory (host allocation or address space)")                 \
    X(MISUSE, 2, "API misuse: NULL or freed handle, a sandbox used by two "         \
                 "threads at once, or run inside another's guest code")             \
    X(INVALID, 3, "invalid argument")                                               \
    X(PYTHON_EXCEPTION, 4, "the Python code raised an uncaught exception")          \
    X(TRAP, 5, "the sandboxed code trapped (out-of-bounds access, stack "           \
               "exhaustion, ...); the sandbox is now dead")                         \
    X(DEAD, 6, "the sandbox can no longer run code (an earlier run trapped or "     \
               "called os._exit); reset or free it")                                \
    X(INIT, 7, "the interpreter could not be started or does not match this "       \
               "library")                                                           \
    X(IO, 8, "a host file or directory could not be used")                          \
    X(INTERNAL, 9, "internal error in the sandbox glue")                            \
    X(PENDING, 10, "the execution waits for callback replies or a timer: reply, "   \
                   "then step again")                                               \
    X(NOTFOUND, 11, "no such callback, or the call was already answered")          \
    X(TIMEOUT, 12, "the run exceeded its time limit and was stopped")               \
    X(INTERRUPTED, 13, "the run was stopped by eryx_sandbox_interrupt()")          \
    X(FUEL, 14, "the run used up its fuel and was stopped; the sandbox is dead")  \
    X(DIVERGED, 15, "the code did not repeat the calls of the journal it was "       \
                    "replayed from (eryx_exec_start_journaled)")

enum {
#define ERYX__STATUS_ENUM(name, value, text) ERYX_##name = value,
    ERYX_STATUS_MAP(ERYX__STATUS_ENUM)
#undef ERYX__STATUS_ENUM
};

/* Name and description of a status code ("ERYX_TRAP: the sandboxed code ...").
 * Static storage; never NULL (unknown codes give "unknown status"). */
ERYX_API const char *eryx_errstr(int rc);

/* Library version, e.g. "0.1.0" (static storage). */
ERYX_API const char *eryx_version(void);

/* 1 if this build counts fuel (its guest was built with ERYX_GUEST_FUEL=1,
 * which costs ~20 % of guest speed: docs/limits.md), else 0. */
ERYX_API int eryx_build_has_fuel(void);

/* ------------------------------------------------------------------------ */
/* Runtime                                                                   */

typedef struct eryx_runtime eryx_runtime;

/* Configs start with their own size so fields can be appended without new
 * function versions: fill them with the matching *_default() first. */
typedef struct eryx_runtime_config {
    size_t size;    /* sizeof(eryx_runtime_config) */
    unsigned flags; /* ERYX_RUNTIME_* */

    /* Packages, imports and setup code, built into the runtime's image
     * (docs/packages.md). Each needs the image: with ERYX_RUNTIME_NO_IMAGE
     * any of them is ERYX_INVALID. Everything is read during
     * eryx_runtime_new only (nothing is kept). */
    const char *const *site_packages; /* host directories whose files every
                                         sandbox finds at
                                         /usr/lib/python3.13/site-packages
                                         (on sys.path); __pycache__ and native
                                         extensions (.so) are left out, so a
                                         module needing one fails to import
                                         with ImportError. Every module is
                                         compiled once while the image is
                                         built, and sandboxes import its
                                         bytecode (docs/packages.md,
                                         "Bytecode") */
    size_t n_site_packages;
    const char *const *wheels;        /* pure-Python .whl files, unpacked
                                         into the same place when the image
                                         is built (never per sandbox). A
                                         wheel with native code (a .so/.pyd,
                                         or Root-Is-Purelib not true), a
                                         member outside its root or damage
                                         is ERYX_INVALID. When two sources
                                         hold one file, the first given wins
                                         (site_packages, then wheels) */
    size_t n_wheels;
    const char *const *imports;       /* modules imported before the image is
                                         captured: every sandbox starts with
                                         them in sys.modules (not bound in
                                         __main__) */
    size_t n_imports;
    const char *setup_code;           /* Python run as __main__ after the
                                         imports, before the capture: its
                                         globals (functions, values, imported
                                         names) are in every sandbox's
                                         __main__ (eryx_sandbox_clear drops
                                         them with the user's). If it raises,
                                         eryx_runtime_new fails with
                                         ERYX_PYTHON_EXCEPTION and the
                                         traceback in eryx_errmsg(NULL) */
    uint64_t setup_timeout_ns;        /* time limit of the packages'
                                         compilation (at most half of it;
                                         modules left over compile at
                                         import), the imports and the setup
                                         code together: 0 = 60 s,
                                         ERYX_NO_LIMIT = none; past it,
                                         ERYX_TIMEOUT */
    const char *image_path;           /* load the runtime's image from this
                                         file (eryx_runtime_save_image)
                                         instead of building it; the fields
                                         above must then be empty and the
                                         flags 0, else ERYX_INVALID. The
                                         memory is mapped from the file
                                         (copy-on-write) after the file is
                                         checked: replace the file by
                                         renaming a new one over it, never
                                         rewrite it in place, while a runtime
                                         uses it. Sandboxes cannot: writes to
                                         it through a mount fail with ETXTBSY
                                         while it is mapped */
} eryx_runtime_config;

/* Do not build the runtime's copy-on-write image (100–150 ms at creation):
 * every sandbox then starts CPython itself (~35 ms), and eryx_sandbox_reset
 * is not available (ERYX_INVALID). eryx_sandbox_fork and eryx_sandbox_load
 * work as with an image. For a process that makes one sandbox, like the
 * eryx command. */
#define ERYX_RUNTIME_NO_IMAGE 1u

/* With image_path: the caller vouches that the file's memory is what its
 * checksum was computed over, and the memory is not read and hashed (0.6 to
 * 2.2 ms of the eryx command's 15-18 ms start, measured: BENCHMARKS.md). Everything else is still
 * checked as without the flag: the magic, the build id, the layout, every
 * size and limit, the saved globals, and the parts after the memory
 * (packages, files, hot pages) before they are used. For a file this
 * caller loaded with the full check before and knows unchanged since: the
 * eryx command keeps its default image's identity, size and times from such
 * a load (docs/packages.md, "Image files"). Damage to the memory since then
 * goes unnoticed: the guest sees the damaged bytes (the host trusts no
 * guest memory in any case). */
#define ERYX_RUNTIME_IMAGE_TRUSTED 2u

/* Do not compile the packages (site_packages, wheels) while the image is
 * built: each sandbox then compiles a module from its source when it
 * imports it, every time (jinja2: 76 ms against 16 ms with its bytecode).
 * Compiling takes the build about 2 ms per module (Debian's 2,005
 * dist-packages modules: 4.1–5.6 s instead of 0.4 s); for a runtime with
 * many packages of which its sandboxes import few (docs/packages.md, "Bytecode"). */
#define ERYX_RUNTIME_NO_BYTECODE 4u

ERYX_API void eryx_runtime_config_default(eryx_runtime_config *cfg);

/* Creates a runtime. cfg may be NULL (defaults). Checks the embedded guest
 * and standard library and their ABI version. On failure *out is NULL and
 * eryx_errmsg(NULL) says why. Thread-safe. */
ERYX_API int eryx_runtime_new(const eryx_runtime_config *cfg, eryx_runtime **out);

/* Saves the runtime's image (its memory, its packages, its template's /tmp
 * and the pages a first run writes) to path, atomically (a temporary file
 * in the same directory renamed over path), for eryx_runtime_config's
 * image_path in another process of the same build. ERYX_INVALID for a
 * runtime made with ERYX_RUNTIME_NO_IMAGE, ERYX_IO if the file cannot be
 * written (message in eryx_errmsg(NULL)). Thread-safe.
 *
 * A loaded file is checked before anything of it is used: its format, the
 * build id (eryx_build_id()) and that its sizes add up to the file's size
 * and fit their limits before it is mapped, then an XXH3 checksum of every
 * byte; a file from another build, truncated, damaged or whose sizes lie is
 * refused with ERYX_INVALID and a message naming the reason. The checksum
 * finds damage, not tampering: an image is the interpreter every sandbox of
 * the runtime starts from, so load only files you (or whom you trust as
 * much as your own code) wrote, kept where only you may write. */
ERYX_API int eryx_runtime_save_image(eryx_runtime *rt, const char *path);

/* The size in bytes of the runtime's image: its memory pages that are not
 * zero plus its packages' file image (what it costs in memory, shared by
 * every sandbox; its file also holds a 4 KiB header, the template's /tmp
 * and the list of hot pages). ERYX_INVALID for a runtime without an image.
 * Thread-safe. */
ERYX_API int eryx_runtime_image_size(eryx_runtime *rt, uint64_t *bytes);

/* Defined by headers that have the image fields of eryx_runtime_config,
 * eryx_runtime_save_image and eryx_runtime_image_size. */
#define ERYX_HAVE_IMAGE_FILES 1

/* The id of this build of the guest (a hash of the interpreter and the
 * standard library it was built from): images and session files carry it,
 * and only a library of the same id loads them. Static storage. */
ERYX_API const char *eryx_build_id(void);

/* Frees a runtime. Every sandbox made from it must be freed first (otherwise
 * ERYX_MISUSE is returned and nothing is freed). NULL is accepted. */
ERYX_API int eryx_runtime_free(eryx_runtime *rt);

/* ------------------------------------------------------------------------ */
/* Sandbox                                                                   */

typedef struct eryx_sandbox eryx_sandbox;

/* One invocation of a callback by the sandboxed code. The handler receives it
 * and must complete it exactly once, now or later, from any thread, with
 * eryx_call_reply() or eryx_call_fail(); that also releases it. A call stays
 * valid until then, even if its sandbox is freed meanwhile (the reply then
 * returns ERYX_NOTFOUND and is dropped). */
typedef struct eryx_call eryx_call;

typedef enum eryx_call_error {
    ERYX_CALL_FAILED = 0,        /* the host function failed */
    ERYX_CALL_INVALID_ARGS = 1,  /* the arguments were not acceptable */
    ERYX_CALL_TIMEOUT = 2        /* the host function timed out */
} eryx_call_error;

typedef void (*eryx_callback_fn)(void *user_data, eryx_call *call);

/* A host function offered to the sandbox. Inside, it is an async function in
 * the globals of __main__: `await name(...)`. Dotted names ("http.get") form
 * namespaces (`await http.get(url=...)`). Keyword arguments arrive as a JSON
 * object; positional ones are mapped to the schema's "properties" in order.
 * Names that would shadow a builtin are refused. */
typedef struct eryx_callback {
    size_t size;                /* 0 or sizeof(eryx_callback) */
    const char *name;           /* identifiers separated by dots */
    const char *description;    /* may be NULL */
    const char *schema;         /* JSON Schema of the arguments (an object with
                                   "properties"), or NULL for none */
    eryx_callback_fn handler;   /* called by eryx_sandbox_run; may be NULL
                                   with the non-blocking API */
    void *user_data;
    unsigned flags;             /* ERYX_CALLBACK_* */
} eryx_callback;

/* The handler never blocks (it replies at once, or hands the call to work of
 * its own): eryx_sandbox_run calls it on the running thread, one call after
 * the other, instead of on worker threads. Much cheaper per call. */
#define ERYX_CALLBACK_INLINE 1u

/* Name, arguments (a JSON object, NUL-terminated) and id of a call. The
 * guest chooses ids: its glue numbers each execution's calls uniquely, but
 * code that calls the raw _eryx_host module can repeat one, so do not key
 * anything but that guest's own calls by id (each call has its own
 * eryx_call; the service matches a client's reply by id within its
 * request). Borrowed until the call is completed. A string value
 * in the arguments may hold NUL characters, escaped as \u0000 (JSON allows
 * it: read with jansson's JSON_ALLOW_NUL; a key holding one is refused in
 * the guest, as jansson reads none). The arguments
 * of one call are at most 4 MiB of JSON (larger ones fail in the guest with
 * a CallbackError of kind "invalid_arguments" and never reach the handler),
 * and one request of the guest's event loop at most 8 MiB (its loop splits
 * a larger turn's calls into several). The arguments of one
 * execution's calls that are not yet done (answered, and released by the
 * embedder or its handler) are at most 64 MiB together: a call beyond
 * fails in the guest with a CallbackError of kind "failed" and never
 * reaches the handler. */
ERYX_API const char *eryx_call_name(const eryx_call *call);
ERYX_API const char *eryx_call_args(const eryx_call *call);
ERYX_API uint64_t eryx_call_id(const eryx_call *call);

/* Completes a call with a JSON value (copied), or with an error the guest
 * sees as eryx.CallbackError (message copied; kind is eryx_call_error).
 * Integers have no size limit, as in JSON and Python: 10**30 arrives as
 * that int.
 * Thread-safe. Returns ERYX_OK; ERYX_INVALID for malformed JSON, more
 * than 64 MiB of it, or JSON whose tree would take the host more than
 * 256 MiB together with the trees of the execution's other calls not yet
 * delivered (only a value the host cannot copy as text is read as a tree:
 * one holding a \u0000, a number of 19 characters or more, or arrays
 * and objects nested over 512 deep; `[{},{},...]` takes 77 times its
 * text) (the guest
 * then sees a failed call, and the call is completed all the same);
 * ERYX_NOTFOUND when the call had already timed out (its deadline passed,
 * whether or not the guest has looked since: the guest then sees the
 * timeout) or its sandbox is gone (the reply is dropped). Either way the
 * call is released: do not use it again. */
ERYX_API int eryx_call_reply(eryx_call *call, const char *json, size_t len);
/* kind is an eryx_call_error; another value fails the call as
 * ERYX_CALL_FAILED and returns ERYX_MISUSE. */
ERYX_API int eryx_call_fail(eryx_call *call, int kind, const char *message);

/* 1 while the guest still waits for this call's reply; 0 once it timed
 * out, its execution ended, or for a dead handle. A handler with queued
 * work can skip calls nobody waits for (it must still complete them). */
ERYX_API int eryx_call_pending(const eryx_call *call);

/* A host directory made visible to the guest at guest_path. Read-only unless
 * writable is set. Paths inside are resolved beneath host_path: "..",
 * absolute symlinks, /proc links and other mounts below it cannot leave
 * it. A directory on one of the kernel's own file systems (/proc, /sys,
 * cgroup, debugfs, ...: their files are the host process and machine) is
 * refused: ERYX_IO, saying so. */
typedef struct eryx_mount {
    size_t size;            /* 0 or sizeof(eryx_mount) */
    const char *host_path;
    const char *guest_path; /* absolute, e.g. "/data" */
    int writable;
} eryx_mount;

/* The network a sandbox may reach (docs/networking.md). Without one
 * (eryx_sandbox_config.net NULL, the default) the sandbox has no network:
 * socket.connect raises PermissionError. With one, TCP client sockets,
 * TLS (terminated on the host by OpenSSL, verifying against the system CA
 * store plus ca_files / ca_pem), urllib, http.client, requests, httpx and
 * asyncio streams work, for the destinations the rules allow:
 *
 * - Deny by default. Rules: "api.example.com", "*.example.com" (names under
 *   it, not example.com itself), "*" (every name), an IP address or CIDR
 *   range ("203.0.113.7", "10.0.0.0/8", "2001:db8::/32"), each with an
 *   optional ":PORT" (IPv6 in brackets: "[::1]:8080").
 * - Names are resolved on the host and every address is checked again:
 *   loopback, private, link-local (cloud metadata), CGNAT, multicast,
 *   reserved ranges and the IPv6 forms of all of them are refused unless
 *   an address rule covers them, whatever name led there.
 * - A refused connection is PermissionError in Python, its message naming
 *   the rule (or the missing one).
 *
 * Every limit: 0 = the default; ERYX_NO_LIMIT = none where stated. All
 * strings are copied. */
typedef struct eryx_net_config {
    size_t size;                     /* 0 or sizeof(eryx_net_config) */
    const char *const *allow;        /* n_allow allow rules */
    size_t n_allow;
    const char *const *deny;         /* n_deny rules checked before allow */
    size_t n_deny;
    const char *const *resolve;      /* "HOST:PORT:ADDRESS": HOST at PORT
                                        resolves to ADDRESS (curl's
                                        --resolve); the address is still
                                        checked by the rules */
    size_t n_resolve;
    const char *const *ca_files;     /* PEM files of CA certificates trusted
                                        besides the system store */
    size_t n_ca_files;
    const char *ca_pem;              /* more CA certificates as PEM text, or
                                        NULL */
    uint32_t max_connections;        /* open at once (default 10) */
    uint64_t connect_timeout_ns;     /* default 10 s */
    uint64_t idle_timeout_ns;        /* a read or write that waits longer
                                        fails (default 30 s; the socket's own
                                        timeout may be shorter) */
    uint64_t max_bytes_sent;         /* per run (default 1 GiB; ERYX_NO_LIMIT
                                        = none): beyond, the write fails */
    uint64_t max_bytes_received;     /* per run (default 1 GiB; ERYX_NO_LIMIT
                                        = none): beyond, the read fails */
} eryx_net_config;

/* A secret the sandbox's code may send but never read. Inside the
 * sandbox, os.environ[name] holds a placeholder (random, different in every
 * sandbox, as long as the value and at least 24 characters). On
 * connections to the hosts given (rules as above), eryx replaces the
 * placeholder by the value in the bytes the code sends (anywhere: headers
 * and bodies, plain TCP and inside TLS); sending the placeholder to any
 * other host fails the write with PermissionError. The value in what a
 * server sends back reaches the code as the placeholder. eryx never puts
 * the value in the sandbox's memory, so no output, result, trace, file or
 * message of eryx's holds it; but a host given the secret that sends it
 * back in another form (chunked, escaped, encoded) or stores it where
 * another allowed name reads it hands it to the code: give a secret only
 * hosts that consume it (docs/networking.md, "A secret is as safe as its
 * hosts"). */
typedef struct eryx_secret {
    size_t size;                     /* 0 or sizeof(eryx_secret) */
    const char *name;                /* environment variable name; one
                                        secret per name (a second is
                                        ERYX_INVALID) */
    const char *value;               /* the real value (not empty) */
    const char *const *hosts;        /* where it may be sent */
    size_t n_hosts;
} eryx_secret;

#define ERYX_HAVE_NET 1

/* Receives the guest's output as it is written: fd is 1 (stdout) or 2
 * (stderr). Called on the thread running the code, during the run. The
 * complete output is also in the result. While it runs, the run is in
 * host code, which neither the time limit nor eryx_sandbox_interrupt
 * reaches: one that blocks (a write to a pipe nobody reads) holds the run
 * past its limit, and if it returns after the stop's grace, the sandbox is
 * stopped hard at once. Return quickly once a stop is due; the eryx
 * command drops what its stalled reader will not take then
 * (cli/out_stream.c). */
typedef void (*eryx_output_fn)(void *user_data, int fd, const char *data, size_t len);

typedef struct eryx_sandbox_config {
    size_t size;               /* sizeof(eryx_sandbox_config) */
    const char *const *env;    /* "NAME=value" strings, NULL-terminated; NULL =
                                  empty environment. Nothing is inherited.
                                  As python's start does, PYTHONPATH's
                                  directories (':'-separated) go first on
                                  sys.path: applied with the environment, on
                                  the first run of a new or reset sandbox
                                  (a fork or a loaded session keeps its own
                                  sys.path, as it keeps os.environ) */
    const eryx_mount *mounts;  /* n_mounts host directories; may be NULL */
    size_t n_mounts;
    uint64_t max_memory;       /* linear memory cap in bytes (default 128 MiB);
                                  growth beyond is refused: MemoryError */
    uint64_t max_output;       /* bytes of stdout and stderr together kept
                                  per run (default 10 MiB); beyond, output
                                  is dropped, the stream gets a one-line
                                  "[eryx: output truncated ...]" marker and
                                  the result's *_truncated flag is set.
                                  Also the most JSON `result` may take:
                                  beyond, result_json is NULL and
                                  result_error says so; and the most an
                                  exception's message and traceback and
                                  result_error keep (at least 1 KiB;
                                  then a line says how much was cut) */
    uint64_t tmp_quota;        /* bytes the in-memory /tmp may hold (64 MiB) */
    eryx_output_fn on_output;  /* optional streaming of stdout/stderr */
    void *output_user_data;
    const eryx_callback *callbacks; /* n_callbacks host functions (copied;
                                       what their user_data points to is
                                       not). A handler that is still running
                                       when its call timed out may outlive
                                       the eryx_sandbox_run that started it:
                                       keep its user_data valid until it
                                       returns. */
    size_t n_callbacks;
    uint64_t callback_timeout_ns;   /* per call (default 10 s): then the guest
                                       sees a timeout error and a late reply
                                       is dropped */
    uint32_t max_callbacks;         /* invocations per execution (default
                                       1000); beyond, calls fail at once */
    /* Line events of the user's code (not of the standard library): file,
     * line, function (borrowed for the call). Called during the run on the
     * running thread, through sys.monitoring (PEP 669) in the guest: a
     * traced hot loop runs up to ~2.5x slower, 1.7x on the benchmarks'
     * geomean (docs/performance.md, "Tracing"). The strings point into
     * the sandbox's memory: copy what must outlive the call. Events are
     * reported by code inside the sandbox, so the code being traced can
     * stop, forge or flood them (each is checked to be well formed, and
     * a bad one is dropped, as is one whose file or function name passes
     * 4096 bytes): a debugging aid, not an audit trail. */
    void (*on_trace)(void *user_data, const char *file, int line, const char *function);
    void *trace_user_data;
    uint64_t timeout_ns;         /* wall-clock limit of one run (default 30 s;
                                    ERYX_NO_LIMIT = none); eryx_run_options
                                    may override */
    uint64_t interrupt_grace_ns; /* after a timeout or interrupt, how long the
                                    Python code has to unwind before it is
                                    stopped hard (default 200 ms;
                                    ERYX_NO_LIMIT = never stopped hard:
                                    code that swallows the interruption
                                    then runs on) */
    uint64_t fuel;               /* budget of guest work per run: one unit per
                                    function call and loop iteration of the
                                    interpreter's code, per 16 bytes of a
                                    bulk memory fill or copy, and per 16
                                    bytes of a long memory scan the host
                                    does for it (docs/limits.md) (0 or ERYX_NO_LIMIT =
                                    unlimited, the default; the use is
                                    counted and reported anyway).
                                    Only in builds that count fuel
                                    (eryx_build_has_fuel()); elsewhere a
                                    non-zero value is ERYX_INVALID */
    int output_limit_stops;      /* 0: past max_output the run goes on (the
                                    rest is dropped); 1: the write that
                                    crosses it fails, Python raises
                                    OSError(EFBIG) */
    uint64_t host_write_quota;   /* bytes the guest may add to writable
                                    mounts, all of them together (default
                                    1 GiB; file growth, plus 4 KiB per file
                                    or directory created; deleting gives
                                    back only what it added): beyond,
                                    OSError(EDQUOT) */
    const eryx_net_config *net;  /* the network it may reach; NULL = none
                                    (copied) */
    const eryx_secret *secrets;  /* n_secrets secrets (copied; need net) */
    size_t n_secrets;
} eryx_sandbox_config;

ERYX_API void eryx_sandbox_config_default(eryx_sandbox_config *cfg);

/* Creates a sandbox: a fresh interpreter that shares nothing with other
 * sandboxes. cfg may be NULL. On failure *out is NULL and eryx_errmsg(NULL)
 * says why. Thread-safe with respect to the runtime. */
ERYX_API int eryx_sandbox_new(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                              eryx_sandbox **out);

/* Frees a sandbox and everything its user gave it or left in it. NULL is
 * accepted. A sandbox that is running code (another thread is inside
 * eryx_sandbox_run or a step on it, or this is one of its own handlers) is
 * not freed: the call does nothing but set eryx_errmsg(NULL), and the
 * handle stays valid: free it once the run has returned. Nor is a sandbox
 * acquired from a pool (give it back with eryx_pool_release). The runtime
 * may keep up to 4 freed sandboxes' guest instances (their memory
 * restored to the runtime image, ~1 MB private each) and
 * give them to the next eryx_sandbox_new, eryx_sandbox_fork or
 * eryx_sandbox_load: creation then takes microseconds, and when the freed
 * sandbox still mapped the image (it was not a fork or a loaded session) a
 * new sandbox's first run takes no page faults (docs/sessions.md). They are
 * released by eryx_runtime_free. */
ERYX_API void eryx_sandbox_free(eryx_sandbox *sb);

/* Replaces the host functions sb offers (as eryx_sandbox_config's
 * callbacks, copied and checked the same way; n == 0 removes them all), so
 * that a pooled, forked or loaded sandbox offers what the next request
 * declares. The guest sees the change at the start of its next run: the
 * new functions are bound in __main__, and the names of the ones no longer
 * offered are removed from it (unless the code rebound them to something
 * else). Between runs only: ERYX_MISUSE while an execution is in
 * progress (as for every call that needs an idle sandbox). On failure (ERYX_INVALID: a bad name or
 * schema) sb keeps the functions it had. */
ERYX_API int eryx_sandbox_set_callbacks(eryx_sandbox *sb, const eryx_callback *cbs, size_t n);

/* ------------------------------------------------------------------------ */
/* Sessions: a sandbox lives between runs                                    */
/*
 * A runtime boots CPython once, imports the common modules (json, re,
 * asyncio, collections, dataclasses, datetime, decimal, functools, itertools,
 * math, random, typing) and keeps that state as a copy-on-write image: a new
 * sandbox maps it instead of starting Python. Each sandbox is a session: the
 * globals of __main__ persist from run to run. Every sandbox made from the
 * image reseeds `random` on its first run; os.urandom, secrets and uuid4
 * draw from the host's entropy on every call. The image's objects are
 * immortal (runs do not write their reference counts, which keeps the
 * pages a run dirties few): they are never freed, sys.getrefcount of one
 * reads as huge, and a weakref.finalize on one never runs. Objects a
 * sandbox creates behave as usual.
 */

/* Drops the user's globals (variables, functions, classes, imported names)
 * and keeps everything else: imported modules stay loaded, /tmp stays.
 * Finalizers (__del__) run as the globals go. eryx_sandbox_interrupt may
 * stop it part way: ERYX_INTERRUPTED, with some globals dropped and the
 * rest kept (call it again to finish). */
ERYX_API int eryx_sandbox_clear(eryx_sandbox *sb);

/* Back to the runtime's image: user state dropped, in microseconds. The
 * sandbox keeps its config; a dead sandbox comes back to life. */
ERYX_API int eryx_sandbox_reset(eryx_sandbox *sb);

/* A new sandbox with a copy of sb's whole state (memory copy-on-write, /tmp
 * files, open files, callbacks, limits). sb must be idle. The fork reseeds
 * `random` on its first run. The first fork after sb ran copies its memory
 * once (milliseconds for tens of MB); further forks of the same state reuse
 * that copy (tens of microseconds), which sb keeps until it next runs or is
 * freed. A sandbox just made, reset, forked or loaded forks without a copy. */
ERYX_API int eryx_sandbox_fork(eryx_sandbox *sb, eryx_sandbox **out);

/* Saves sb's state to path (atomically: a temporary file, made beside it
 * with O_EXCL, synced and renamed over it): the guest's memory, the
 * contents of /tmp (directories, files, timestamps) and the open files (by
 * their current path, or by contents for a /tmp file unlinked while open;
 * positions and flags kept). A path that is a symbolic link is not
 * followed: the link is replaced (a link the code put there, in a writable
 * mount, must not send the write elsewhere; resolve one you trust first, as
 * the CLI's --session does). The directories of path are resolved at the
 * save: when the code can replace one with a link (a writable mount holding
 * it), use eryx_sandbox_save_at with the directory opened before the run.
 * Only the same build of eryx loads it. ERYX_IO if the file cannot be
 * written. */
ERYX_API int eryx_sandbox_save(eryx_sandbox *sb, const char *path);

/* eryx_sandbox_save to name relative to the directory open at dirfd (as
 * openat and renameat resolve it; AT_FDCWD, from <fcntl.h>: the working
 * directory): the temporary file is made and renamed in that directory,
 * whatever its path leads to by then. Open the directory before the code
 * runs and give a name without '/' to save where the path led then, even if
 * the code, holding a writable mount above it, swaps a directory of the
 * path for a link during the run (the CLI's --session does so). dirfd
 * stays the caller's; ERYX_MISUSE if it is negative (not AT_FDCWD) or name
 * is NULL. */
ERYX_API int eryx_sandbox_save_at(eryx_sandbox *sb, int dirfd, const char *name);

/* A sandbox in the state saved at path, with cfg (may be NULL) for its
 * limits, mounts and callbacks. A file that is not a session, was saved by
 * another build, is truncated, damaged or larger than cfg->max_memory, or
 * whose /tmp does not fit in cfg->tmp_quota or names paths outside /tmp, is
 * refused with ERYX_INVALID (message in eryx_errmsg(NULL)) and never mapped;
 * a path that cannot be opened or is no regular file (a directory, a FIFO:
 * refused at once, not waited on) is ERYX_IO. Open files are reopened by
 * path in the new sandbox's tree: one that cannot be (a host mount cfg
 * does not have) stays closed (the guest gets EBADF),
 * and eryx_errmsg(*out) then names each such file; it is empty otherwise. */
ERYX_API int eryx_sandbox_load(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                               const char *path, eryx_sandbox **out);

/* eryx_sandbox_save into an open file descriptor instead of a path (a
 * memfd, a regular file): the session is written at fd's current offset,
 * the file is cut (or extended) to end where the session ends, and the
 * offset is left there. fd must be seekable: a pipe or socket is
 * ERYX_IO. Nothing is synced to disk (fsync fd yourself) and nothing is
 * atomic: a failure leaves a partial session behind, which
 * eryx_sandbox_load_fd refuses (its checksum). fd stays the caller's. */
ERYX_API int eryx_sandbox_save_fd(eryx_sandbox *sb, int fd);

/* eryx_sandbox_load from an open file descriptor: the session is read from
 * fd's current offset to the end of the file (rewind a memfd you just
 * wrote with lseek(fd, 0, SEEK_SET) first), with every check of
 * eryx_sandbox_load (trailing bytes are refused like a truncation); on
 * success the offset is left at the end. The file must not change while
 * it is read. The messages name the session "fd N". fd stays the
 * caller's. */
ERYX_API int eryx_sandbox_load_fd(eryx_runtime *rt, const eryx_sandbox_config *cfg, int fd,
                                  eryx_sandbox **out);

/* Defined by headers that have eryx_sandbox_save_at. */
#define ERYX_HAVE_SAVE_AT 1

/* Defined by headers that have eryx_sandbox_save_fd / _load_fd,
 * eryx_sandbox_set_callbacks and the journal functions. */
#define ERYX_HAVE_JOURNAL 1

/* The user's globals of the session as bytes: values (pickled inside the
 * sandbox) and functions defined in the session (their code); *skipped is a
 * JSON list of the names that could not be exported (classes defined in
 * the session and their instances, closures, open files, ...), never
 * silently lost. Modules bound to globals (`import json`) are left out and
 * not listed: import them again after eryx_sandbox_import_state (dunder
 * names and the callback glue are left out too). Free *data and *skipped
 * with eryx_free(). Pickling runs the session's own code (its __reduce__
 * and copyreg functions), under the sandbox's time limit: ERYX_TIMEOUT
 * when it loops, ERYX_DEAD when it calls os._exit (the sandbox is then
 * dead), ERYX_PYTHON_EXCEPTION when it raises SystemExit (the sandbox goes
 * on), ERYX_INTERNAL when the export itself fails. */
ERYX_API int eryx_sandbox_export_state(eryx_sandbox *sb, void **data, size_t *len,
                                       char **skipped);

/* Adds exported globals to sb's session. The bytes are decoded inside the
 * sandbox (the host never unpickles them); corrupt or foreign bytes give
 * ERYX_INVALID, bytes over 64 MiB too. *failed (eryx_free) lists the names
 * that could not be rebuilt here. */
ERYX_API int eryx_sandbox_import_state(eryx_sandbox *sb, const void *data, size_t len,
                                       char **failed);

/* Frees memory the library handed over (eryx_sandbox_export_state). */
ERYX_API void eryx_free(void *p);

/* 1 if sb can no longer run code (a run trapped, was stopped hard or called
 * os._exit; eryx_sandbox_reset revives it), else 0. 1 also for a handle
 * that is no live sandbox (freed, NULL, another type): it cannot run code
 * either (the one function that gives a dead handle something but 0). */
ERYX_API int eryx_sandbox_is_dead(const eryx_sandbox *sb);

/* Runs started in this sandbox (or its saved/forked ancestors since their
 * last reset). */
ERYX_API uint64_t eryx_sandbox_run_count(const eryx_sandbox *sb);

/* ------------------------------------------------------------------------ */
/* Pool: warm sandboxes for many short jobs                                   */

typedef struct eryx_pool eryx_pool;

typedef struct eryx_pool_config {
    size_t size;                        /* sizeof(eryx_pool_config) */
    const eryx_sandbox_config *sandbox; /* for every sandbox; NULL = defaults.
                                           Kept as given: what it points to
                                           must outlive the pool */
    uint32_t max_size;                  /* sandboxes at most, idle or not (16) */
    uint32_t min_idle;                  /* kept ready (1) */
    uint64_t idle_timeout_ns;           /* idle ones beyond min_idle are freed
                                           after this (60 s; 0 = that default,
                                           ERYX_NO_LIMIT = never) */
} eryx_pool_config;

typedef struct eryx_pool_stats {
    size_t size;                        /* 0 or sizeof(eryx_pool_stats): set
                                           it before eryx_pool_get_stats */
    uint64_t acquisitions;              /* successful acquires */
    uint64_t creations;                 /* sandboxes created */
    uint64_t waits;                     /* acquires that had to wait */
    uint64_t evictions;                 /* idle sandboxes freed */
    uint32_t idle, in_use;
} eryx_pool_stats;

ERYX_API void eryx_pool_config_default(eryx_pool_config *cfg);

/* A thread-safe pool over rt (cfg may be NULL). All its functions may be
 * called from any thread, eryx_pool_free only once no other call on the
 * pool is in progress or can start (as with eryx_sandbox_free). Over a
 * runtime made with ERYX_RUNTIME_NO_IMAGE, which has no image to reset a
 * sandbox to, a release frees the sandbox: an acquire that finds none idle
 * makes one (~35 ms without an image). ERYX_INVALID for a config out of
 * range. */
ERYX_API int eryx_pool_new(eryx_runtime *rt, const eryx_pool_config *cfg, eryx_pool **out);

/* Frees the pool and its idle sandboxes; every acquired sandbox must have
 * been released (else ERYX_MISUSE and nothing is freed). NULL is accepted. */
ERYX_API int eryx_pool_free(eryx_pool *pool);

/* No more acquires: eryx_pool_acquire returns ERYX_MISUSE from now on, and
 * those waiting for a sandbox return it at once (a waiter otherwise
 * waited its whole timeout for a pool being shut down). Releases still
 * work; eryx_pool_free is still needed. Idempotent. */
ERYX_API int eryx_pool_close(eryx_pool *pool);

/* A clean sandbox: idle, or new while fewer than max_size exist, or the
 * first one released within timeout_ns (ERYX_TIMEOUT after that; 0 = do
 * not wait; ERYX_NO_LIMIT = wait as long as it takes). ERYX_MISUSE once the
 * pool is closed (eryx_pool_close). */
ERYX_API int eryx_pool_acquire(eryx_pool *pool, uint64_t timeout_ns, eryx_sandbox **out);

/* Gives a sandbox back: it is reset to the runtime image (nothing of this
 * user's state reaches the next one), dead ones included, its callbacks
 * are the pool's sandbox config's again (eryx_sandbox_set_callbacks
 * replaced them for this user only), and it runs `pass`
 * once so that the next user's first run is as quick as any other (the
 * first run of a sandbox pays ~3 ms of page faults; docs/sessions.md). The
 * release thus takes ~0.2 ms; the acquire stays sub-microsecond when a
 * sandbox is idle. The handle sb dies with the release (ERYX_MISUSE from
 * then on, even while the pool hands the sandbox to someone else under a
 * new handle). ERYX_MISUSE, and the sandbox stays the caller's, while it
 * runs or another thread is inside it, and for a sandbox this pool did not
 * hand out (made by eryx_sandbox_new, forked, loaded, another pool's). On
 * a thread inside a sandbox's guest code (its on_output), where `pass`
 * cannot run, the sandbox is freed instead of kept (ERYX_OK: the pool
 * makes another when one is wanted). A sandbox that cannot be cleaned (its
 * reset, callbacks or warm-up failed: ERYX_NOMEM, ERYX_TIMEOUT...) is
 * freed too, and that status returned, with the reason in
 * eryx_errmsg(NULL): the handle is dead either way. */
ERYX_API int eryx_pool_release(eryx_pool *pool, eryx_sandbox *sb);

/* Fills the fields of *out that its size covers (set out->size, or zero
 * the struct, first); the others are left as they are. */
ERYX_API void eryx_pool_get_stats(eryx_pool *pool, eryx_pool_stats *out);

/* ------------------------------------------------------------------------ */
/* Running code                                                              */

typedef struct eryx_result {
    char *out;               /* stdout bytes, NUL-terminated (may contain NULs) */
    size_t out_len;
    char *err;               /* stderr bytes, NUL-terminated */
    size_t err_len;
    int out_truncated;       /* 1 if stdout exceeded max_output */
    int err_truncated;
    int exit_code;           /* 0 on success, 1 after an uncaught exception,
                                SystemExit's code, os._exit's code */
    int exited;              /* 1 if the code raised SystemExit or called
                                os._exit */
    char *exc_type;          /* "ValueError", "json.decoder.JSONDecodeError":
                                the exception that ended the code; NULL
                                unless rc was ERYX_PYTHON_EXCEPTION, or
                                ERYX_TIMEOUT or ERYX_INTERRUPTED when the
                                stop's KeyboardInterrupt ended it
                                ("KeyboardInterrupt"), or ERYX_INTERNAL
                                (the glue's own, "InternalError") */
    char *exc_message;       /* str(exception), or NULL */
    char *traceback;         /* formatted like Python's, or NULL */
    uint64_t duration_ns;    /* wall time of the run */
    uint64_t memory_bytes;   /* linear memory size after the run (its peak:
                                linear memory never shrinks) */
    char *result_json;       /* JSON of the global `result` if the code set
                                one, else NULL: strict JSON (no NaN or
                                Infinity) as the guest's glue writes it, but
                                the guest's code can forge it: parse it as
                                untrusted text */
    char *result_error;      /* why `result` could not be serialised, or NULL */
    uint32_t n_callbacks;    /* callback invocations during the run */
    uint64_t fuel_used;      /* guest work done by the run (see
                                eryx_sandbox_config.fuel): the same code on
                                the same input uses the same fuel; 0 in
                                builds that do not count fuel */
    int hard_stopped;        /* 1 if a timeout or interrupt had to stop the
                                code hard (stuck in C, or catching the
                                interruption): the sandbox is then dead */
    size_t exc_message_len;  /* bytes in exc_message and traceback, without */
    size_t traceback_len;    /* the final NUL: an exception's text may hold
                                NUL characters ("x\0y"), which strlen would
                                stop at; 0 when the field is NULL */
    int stop_cause;          /* ERYX_TIMEOUT or ERYX_INTERRUPTED if the run's
                                time limit passed or it was interrupted,
                                whatever the code did then; else 0. Code
                                that catches the KeyboardInterrupt and ends
                                within the grace returns as it ended (rc
                                ERYX_OK, say): this says the stop came all
                                the same, which the code cannot hide */
} eryx_result;

typedef enum eryx_run_mode {
    ERYX_RUN_CODE = 0,       /* code is Python source, run as __main__ */
    ERYX_RUN_MODULE = 1,     /* code is a module name, run like `python -m` */
    ERYX_RUN_INTERACTIVE = 2 /* code is one statement or block typed at a
                                prompt: the value of an expression statement
                                is printed, as by Python's REPL */
} eryx_run_mode;

typedef struct eryx_run_options {
    size_t size;               /* sizeof(eryx_run_options) */
    eryx_run_mode mode;
    const char *filename;      /* shown in tracebacks; default "<string>" */
    const char *const *argv;   /* sys.argv, NULL-terminated; default [""] */
    const void *stdin_data;    /* bytes sys.stdin reads, then EOF; default none */
    size_t stdin_len;
    uint64_t timeout_ns;       /* this run's time limit; 0 = the sandbox's,
                                  ERYX_NO_LIMIT = none */
    uint64_t fuel;             /* this run's fuel; 0 = the sandbox's,
                                  ERYX_NO_LIMIT = unlimited */
    /* sys.stdin read as the program reads it, after stdin_data's bytes
     * (NULL: none; then EOF): stdin_read fills up to cap bytes at buf and
     * returns how many, 0 at the end of the input, or -1 with errno EAGAIN
     * (nothing yet: it is called again at once, so it should have waited
     * for input a while first, or the thread spins) or another errno (the
     * program's read fails with EIO). It is called on the thread running
     * the sandbox, only while the program reads, never after the run has
     * ended (the sandbox keeps neither pointer). It may block, but a short
     * while at a time (50 ms is good): the time limit and
     * eryx_sandbox_interrupt() act when it returns (the program's read
     * then fails with OSError EIO, and the interruption's exception
     * follows). What it returns is not journaled: a replay
     * (eryx_exec_start_journaled) must be given the same bytes. */
    long (*stdin_read)(void *user_data, void *buf, size_t cap);
    void *stdin_user_data;
} eryx_run_options;

ERYX_API void eryx_run_options_default(eryx_run_options *opts);

/* Runs Python source (len bytes, need not be NUL-terminated; it may contain
 * anything: invalid UTF-8 or NUL bytes give a SyntaxError, as in Python).
 *
 * Returns ERYX_OK when the code ran to its end or raised SystemExit, and
 * ERYX_PYTHON_EXCEPTION for an uncaught exception; in both cases *out is a
 * result to free with eryx_result_free(). A run that started and was
 * stopped also gives a result (with the output produced so far):
 * ERYX_TIMEOUT, ERYX_INTERRUPTED, ERYX_TRAP, ERYX_FUEL; ERYX_INTERNAL may.
 * os._exit ends the run with ERYX_OK (result->exited). A run refused before
 * it started leaves *out NULL: ERYX_DEAD (the sandbox was already dead),
 * ERYX_MISUSE, ERYX_INVALID, ERYX_NOMEM (also when the code, with the
 * run's filename and argv, finds no room to be copied into the sandbox's
 * memory: max_memory). Code that is copied in but does not fit with what
 * reading it takes (the guest holds it as bytes, then as str) gives
 * ERYX_PYTHON_EXCEPTION with exc_type "MemoryError" ("the program does
 * not fit in the sandbox's memory ..."), as code that runs out does; the
 * sandbox goes on. (Until 2026-12-07 that was ERYX_INTERNAL.)
 * The globals of __main__ persist from one run to the next in one sandbox. */
ERYX_API int eryx_sandbox_run(eryx_sandbox *sb, const char *code, size_t len,
                              eryx_result **out);

/* eryx_sandbox_run with options (mode, filename, argv, stdin). opts may be
 * NULL. */
ERYX_API int eryx_sandbox_run_ex(eryx_sandbox *sb, const char *code, size_t len,
                                 const eryx_run_options *opts, eryx_result **out);

/* ------------------------------------------------------------------------ */
/* The non-blocking core                                                     */
/*
 * eryx_sandbox_run() is a loop over these calls. Use them directly to drive
 * executions from an event loop:
 *
 *   eryx_exec *ex;  eryx_exec_start(sb, code, len, NULL, &ex);
 *   for (;;) {
 *       int rc = eryx_exec_step(ex);
 *       if (rc != ERYX_PENDING) break;         // done: rc as eryx_sandbox_run
 *       eryx_call *c;
 *       while ((c = eryx_exec_next_call(ex)))  // new calls: start them
 *           start_my_async_work(c);            // reply later, any thread
 *       wait until a reply came (eryx_exec_set_notify) or
 *            eryx_exec_deadline_ns(ex) passed;
 *   }
 *   eryx_exec_finish(ex, &result);
 *
 * Steps never block: when every task of the guest waits for a call or a
 * timer, or the guest sleeps (time.sleep), the step returns ERYX_PENDING
 * (a step runs Python code, which takes as long as it takes, bounded by the
 * run's time limit). Callback handlers registered in the
 * config are NOT called by the step: the embedder starts each call it gets
 * from eryx_exec_next_call (eryx_sandbox_run calls the handlers). One
 * execution at a time per sandbox.
 */
typedef struct eryx_exec eryx_exec;

ERYX_API int eryx_exec_start(eryx_sandbox *sb, const char *code, size_t len,
                             const eryx_run_options *opts, eryx_exec **out);

/* Runs the guest until it finishes or waits. Returns ERYX_PENDING, or the
 * final status (as eryx_sandbox_run: ERYX_OK, ERYX_PYTHON_EXCEPTION, ...;
 * and ERYX_DIVERGED for a journaled execution, which gives a result too:
 * see "Journals" below). */
ERYX_API int eryx_exec_step(eryx_exec *ex);

/* The calls issued since they were last asked for, one at a time, in the
 * order the guest made them; NULL when there is none. */
ERYX_API eryx_call *eryx_exec_next_call(eryx_exec *ex);

/* CLOCK_MONOTONIC time (ns) at which the execution wants to be stepped even
 * without replies (a timer, a callback timeout), or 0 when there is none.
 * It may come early (the call whose timeout it was has been answered
 * since): a step then finds nothing to do, and the time moves on. While
 * the guest sleeps (time.sleep) it is the sleep's end: the calls' timeouts
 * are looked at when the guest wakes. */
ERYX_API uint64_t eryx_exec_deadline_ns(const eryx_exec *ex);

/* 1 if a reply arrived since the last step, or a stop was requested
 * (worth stepping now). */
ERYX_API int eryx_exec_ready(const eryx_exec *ex);

/* Called each time stepping becomes worthwhile: a reply arrived (called on
 * the replying thread) or a timeout or interrupt wants the guest stopped
 * (on the thread that asked for it, or eryx's notifier thread when a time
 * limit passed). Wake your loop here (write to an eventfd, signal a
 * condition) and return: while it runs on the notifier thread, the notifies
 * of other executions' time limits wait for it (their limits do not: the
 * guest is stopped all the same, and a parked execution's step at
 * eryx_exec_deadline_ns finds it stopped). Such a notify still queued when
 * its execution finishes is dropped. It is called with no lock of eryx held: it may
 * call eryx_exec_ready and eryx_exec_deadline_ns, but must not step or
 * finish the execution. eryx_exec_finish waits for a notify in flight to
 * return, so ud may be freed after it. May be NULL. */
ERYX_API void eryx_exec_set_notify(eryx_exec *ex, void (*notify)(void *ud), void *ud);

/* Takes the result of a finished execution (after a step returned something
 * other than ERYX_PENDING) and frees the execution; *out may be NULL for
 * statuses that give no result. Calling it on an unfinished execution
 * abandons it: the sandbox is reset to dead (ERYX_DEAD afterwards). Until
 * it, the execution holds its sandbox, finished or not: another run, a
 * fork, a save, a reset or a pool's release are ERYX_MISUSE, and freeing
 * the sandbox frees the execution too (its handle is then dead). */
ERYX_API int eryx_exec_finish(eryx_exec *ex, eryx_result **out);

/* Frees a result. NULL is accepted. */
ERYX_API void eryx_result_free(eryx_result *res);

/* Stops the run in progress on sb. Thread-safe: call it from any thread
 * while another thread is inside eryx_sandbox_run or eryx_exec_step (not
 * concurrently with eryx_sandbox_free).
 *
 * First gracefully: a KeyboardInterrupt is raised in the Python code at its
 * next bytecode boundary, sleeps and waits on callbacks are cut short, so
 * `finally` and `with` blocks run and the sandbox (its globals) survives; the
 * run returns ERYX_INTERRUPTED. If the code has not finished interrupt_grace_ns
 * later (stuck in C code: a regex, a huge multiplication; or it swallowed
 * the exception), it is stopped hard (an execution waiting between steps of
 * the non-blocking API gets its grace from the next step): the run returns ERYX_INTERRUPTED with
 * result->hard_stopped set and the sandbox is dead. Timeouts work the same
 * way and return ERYX_TIMEOUT. No-op (ERYX_OK) when nothing runs. */
ERYX_API int eryx_sandbox_interrupt(eryx_sandbox *sb);

/* ------------------------------------------------------------------------ */
/* Journals: suspend an execution that waits on calls, resume it anywhere    */
/*
 * A journaled execution records its code and every call its guest makes to
 * the host functions, in the order the guest issues them, with each call's
 * outcome once it has one (the reply, or the failure: kind and message,
 * timeouts included). To suspend an execution that waits on calls, save
 * the journal (eryx_journal_save) and end the execution with
 * eryx_exec_suspend. To resume it, here or in another process of the same
 * build: bring a sandbox back to the state it had before the execution
 * (eryx_sandbox_load of a session saved before it, or
 * eryx_sandbox_import_state), load the journal and start it again with
 * eryx_exec_start_journaled. The code runs from its start; its i-th call is
 * matched against the journal's i-th entry (same name, same arguments as
 * JSON text): an answered one is completed by eryx with its recorded
 * outcome (never returned by eryx_exec_next_call, no handler needed, not
 * counted in max_callbacks), in the same reply of the guest's event loop
 * as the first time (so tasks resume in the same order); an unanswered
 * one is returned by eryx_exec_next_call like a new call and its answer
 * is recorded (and given to the guest after the recorded ones), and the
 * calls past the journal's end are new calls, recorded too. The code thus
 * comes back to the point where it was suspended.
 *
 * The journal also records what the code drew from the host: the bytes of
 * its randomness (os.urandom, secrets, uuid4, and random's reseed on a
 * sandbox's first run; up to 1 MiB), its wall-clock reads (time.time,
 * datetime.now; up to 131072), and whether the run reseeded random. A
 * replay reseeds when the recorded run did (and, from the host, in a
 * sandbox made from an image that never ran, whose generator every such
 * sandbox shares) and draws the recorded values first, the host's after
 * them (recorded too, unless the replay diverges), so code that draws
 * before a call makes the same call again. The monotonic and CPU clocks
 * are not recorded (time.monotonic, perf_counter, asyncio's timers): they
 * measure, and a replay runs faster than the calls did. The journal thus
 * holds random bytes the code used, as it holds the replies: keep it as
 * private as they are.
 *
 * Replaying is only as faithful as the code is deterministic: timers
 * racing calls, what the code measures with the monotonic clock, draws
 * past the records' bounds, stdin and argv (pass the same ones) can make
 * the code call something else. That is detected, never accepted: a call that differs
 * from the journal's (name or arguments), or a wait for calls the code
 * does not make again, ends the execution with ERYX_DIVERGED at once (the
 * sandbox is then dead; the result holds the output so far), and so does
 * code that finishes before it made all of the journal's calls (the
 * sandbox then lives). Calls refused before they are made (arguments over
 * 4 MiB) are not journaled; they are refused again.
 *
 * Network operations (eryx_net_config) are journaled like calls, with
 * what they gave the code (the bytes received, the failures): a replay
 * gives the code the recorded outcomes and connects, sends and reads
 * nothing again (the policy is not asked again either: the outcome is
 * what it allowed the first time). They are not callbacks: max_callbacks,
 * n_callbacks and eryx_exec_replayed do not count them; a journal records
 * at most 524288 of them, and what they received counts in its 256 MiB. A
 * connection is not carried over a suspension: after the replay, the
 * code's next operation on a socket opened before it fails with EBADF
 * (OSError in Python).
 *
 * Bounds: a journal holds at most max_callbacks calls of the sandbox
 * that records into it (beyond, calls fail at once as over the callback
 * limit), and its code, calls and outcomes at most 256 MiB together: a
 * reply that does not fit reaches the guest as a failed call (that
 * failure is what is recorded; a failure's message that does not fit is
 * recorded cut). A journal is plain data owned by the
 * caller, used by one execution at a time and by nothing else meanwhile:
 * it must outlive the execution, and while one records into it the other
 * journal functions refuse it (ERYX_MISUSE, 0). */
typedef struct eryx_journal eryx_journal;

/* An empty journal. ERYX_NOMEM, else ERYX_OK. */
ERYX_API int eryx_journal_new(eryx_journal **out);

/* Frees a journal. NULL is accepted; a journal an execution still records
 * into is left alone (finish the execution first). */
ERYX_API void eryx_journal_free(eryx_journal *j);

/* The journal as bytes (free them with eryx_free): versioned ("ERYXJNL1"),
 * little endian, sizes first, an XXH3-64 checksum against damage (not
 * against forgery: sign the bytes if they travel through hands you do not
 * trust). docs/journal.md describes the format. */
ERYX_API int eryx_journal_save(const eryx_journal *j, void **data, size_t *len);

/* A journal from eryx_journal_save's bytes (copied). The bytes are
 * untrusted: anything but a whole, undamaged journal within the bounds
 * above is refused with ERYX_INVALID and the reason in eryx_errmsg(NULL). */
ERYX_API int eryx_journal_load(const void *data, size_t len, eryx_journal **out);

/* The entries of j: every call and network operation recorded, answered
 * or not; 0 for NULL. */
ERYX_API size_t eryx_journal_count(const eryx_journal *j);

/* The entries still unanswered (issued, then suspended before a reply),
 * network operations included. */
ERYX_API size_t eryx_journal_pending(const eryx_journal *j);

/* eryx_exec_start, recording into j and replaying what j holds. An empty
 * journal takes code (required), opts->mode and opts->filename. A journal
 * that holds code runs that code: code may then be NULL, else it must be
 * the same bytes; opts->mode must be the journal's and opts->filename
 * NULL or the journal's (else ERYX_INVALID, and nothing runs). The other
 * options (argv, stdin, limits) are the caller's. ERYX_INVALID too for a
 * journal with more calls than sb's max_callbacks. ERYX_MISUSE if another
 * execution uses j. */
ERYX_API int eryx_exec_start_journaled(eryx_sandbox *sb, const char *code, size_t len,
                                       const eryx_run_options *opts, eryx_journal *j,
                                       eryx_exec **out);

/* Ends a journaled execution that has not finished (its guest waits for
 * calls or a timer, or it never ran): like eryx_exec_finish on an
 * unfinished execution, the execution is freed and the sandbox is dead
 * (ERYX_DEAD until reset or freed); the journal keeps the calls still
 * unanswered as pending entries. Replies that arrive afterwards are
 * dropped (ERYX_NOTFOUND) and not recorded. ERYX_OK; ERYX_INVALID (and
 * nothing happens) for an execution that is not journaled or has finished
 * (take its result with eryx_exec_finish). */
ERYX_API int eryx_exec_suspend(eryx_exec *ex);

/* The journal's answered calls the code of a journaled execution has made
 * again so far: given their recorded outcome by eryx instead of being
 * returned by eryx_exec_next_call. 0 for an execution without a journal
 * and for NULL. Ask between steps, before eryx_exec_finish or
 * eryx_exec_suspend frees the execution. */
ERYX_API size_t eryx_exec_replayed(const eryx_exec *ex);

/* Message of the last failure on sb, or, with NULL, of the last failure on
 * this thread of a call that returns no handle (eryx_runtime_new,
 * eryx_sandbox_new). Never NULL ("" when there was none; "not a sandbox
 * (freed?)" for a dead handle). */
ERYX_API const char *eryx_errmsg(const eryx_sandbox *sb);

#ifdef __cplusplus
}
#endif

#endif /* ERYX_H */
