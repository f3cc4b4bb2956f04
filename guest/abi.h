/*
 * The host–guest ABI: shared by guest/eryx_guest.c (compiled to wasm) and the
 * host (src/core/). Bump ERYX_GUEST_ABI_VERSION on any change; the host checks
 * it when a runtime is created.
 *
 * Guest exports (all wasm i32):
 *   eryx_abi_version() -> version
 *   eryx_alloc(size) -> ptr | 0          malloc in guest memory
 *   eryx_dealloc(ptr)
 *   eryx_init() -> 0 | -1               start the interpreter, import _eryx
 *   eryx_exec(req, req_len) -> result*  run one request (see below)
 *   eryx_interrupt_info() -> {eval_breaker*, async_exc*, exception, bit}
 *
 * Guest imports (module "eryx"), implemented by src/core/host_imports.c:
 *   wait(req, len) -> reply_len     the host handles a JSON request (calls
 *                                   to make, next timer) and may suspend the
 *                                   guest until it has replies
 *   read_reply(buf, len) -> copied  copies the reply out (after wait)
 *   event(kind, data, len)          a report: ERYX_EVENT_* below
 *   memchr(s, c, n) -> index        the first byte c in [s, s + n), or
 *                                   UINT32_MAX (guest/host_string.c: the
 *                                   host's libc scans long ranges)
 *   memrchr(s, c, n) -> index       the last one, or UINT32_MAX
 *   memcmp(a, b, n) -> -1 | 0 | 1   memcmp's sign
 *
 * A request is NUL-terminated fields, then the code bytes:
 *   mode "\0" flags "\0" filename "\0" callbacks "\0" setup "\0"
 *   argc "\0" argv[0] "\0" ... argv[argc-1] "\0" code
 * where argc is a decimal count (argv entries may be empty), flags holds "t"
 * to trace and "s" when the run has stdin bytes, callbacks is the JSON list of host functions and setup is "" or
 * the JSON of first-run work ({"seed": true, "env": {...}}). Both ends of
 * this format ship together (src/core/run.c, guest/python/_eryx).
 * mode is "c" (code: exec it as __main__), "m" (code is a module name: run
 * it as __main__ like `python -m`), "i" (one interactive statement), "x"
 * (export the session's globals: ERYX_EVENT_STATE) or "y" (code is such an
 * export: import it).
 */
#ifndef ERYX_GUEST_ABI_H
#define ERYX_GUEST_ABI_H

#include <stdint.h>

#define ERYX_GUEST_ABI_VERSION 5

/* Kinds of eryx.event reports. */
enum eryx_guest_event {
    ERYX_EVENT_TRACE = 1,       /* a line of user code: ERYX_TRACE_HEADER */
    ERYX_EVENT_RESULT = 2,      /* JSON of the global `result` */
    ERYX_EVENT_RESULT_ERROR = 3,/* why `result` could not be serialised */
    ERYX_EVENT_STATE = 4        /* exported session state (mode "x") */
};

/* An ERYX_EVENT_TRACE: the line (int32) and the file name's length in
 * bytes (uint32), little endian, then "file\0function\0" (UTF-8, lone
 * surrogates escaped as surrogateescape does). The lengths make the event
 * checkable in constant time and both names usable in place: a traced loop
 * sends millions (src/core/trace_event.c). */
#define ERYX_TRACE_HEADER 8

/* Outcome of an execution, as the guest reports it. */
enum eryx_guest_status {
    ERYX_GUEST_OK = 0,          /* code ran to the end */
    ERYX_GUEST_EXCEPTION = 1,   /* uncaught exception: type/message/traceback */
    ERYX_GUEST_EXIT = 2,        /* SystemExit: exit_code */
    ERYX_GUEST_INTERNAL = 3     /* the glue itself failed: message says why */
};

/* Result record in guest memory, little endian, written by eryx_exec. The
 * strings are UTF-8, valid until the next eryx_exec. The host reads it with
 * bounds checks like any other guest data. */
typedef struct eryx_guest_result {
    uint32_t status;
    int32_t exit_code;
    uint32_t type_ptr, type_len;     /* "ValueError", "json.decoder.JSONDecodeError" */
    uint32_t msg_ptr, msg_len;       /* str(exception) */
    uint32_t tb_ptr, tb_len;         /* formatted traceback, user frames only */
} eryx_guest_result;

#define ERYX_GUEST_RESULT_SIZE 32

#endif
