/*
 * The guest's "eryx" imports (guest/abi.h): wait, read_reply, event, and
 * the long memory scans memchr, memrchr, memcmp. They run inside guest
 * calls, on the sandbox's fiber; wait may suspend it. Every pointer and
 * length from the guest is checked before use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"
#include "core/guest_scan.h"
#include "core/trace_event.h"
#include "core/wait_request.h"
#include "guest/abi.h"
#include "engine/engine.h"

/* Records the calls of a decoded request; returns an error text for the
 * guest, or NULL. A call whose arguments are over the limit fails alone. */
static const char *record_calls(eryx_exec *ex, const eryx__wait_request *r, int *to_embedder)
{
    for (size_t i = 0; i < r->n_calls; i++) {
        const eryx__wait_call *c = &r->calls[i];
        if (!c->args) {
            char msg[400];
            snprintf(msg, sizeof msg,
                     "the arguments of '%.200s' are %zu bytes of JSON; the limit is %u MiB",
                     c->name, c->args_size, (unsigned)(ERYX_MAX_CALL_ARGS >> 20));
            eryx__exec_fail_now(ex, c->id, "invalid_arguments", msg);
        } else {
            int rc = eryx__exec_add_call(ex, c->id, c->name, c->args);
            if (rc < 0)
                return "out of memory on the host";
            *to_embedder += rc;
        }
    }
    return NULL;
}

/* Sets the guest's next timer from the request's timeout (seconds). */
static void set_timer(eryx_exec *ex, const eryx__wait_request *r)
{
    ex->timer_deadline_ns = 0;
    if (!r->has_timeout)
        return;
    double s = r->timeout_s;
    if (!(s >= 0))
        s = 0;
    if (s > 1e9)
        s = 1e9;
    ex->timer_deadline_ns = eryx__now_ns() + (uint64_t)(s * 1e9) + 1;
}

/* Each import brackets its body with eryx__engine_enter_host/_leave_host:
 * a hard interrupt never jumps out of host code (a held lock, a half-built
 * JSON value), it takes effect when the import returns to the guest. */

static u32 wait_for_host(eryx_sandbox *sb, u32 ptr, u32 len);

u32 Z_eryxZ_wait(struct Z_eryx_instance_t *host, u32 ptr, u32 len)
{
    eryx__engine_import_entry();
    eryx__engine_enter_host();
    u32 n = wait_for_host(host->sb, ptr, len);
    eryx__engine_leave_host();
    return n;
}

static u32 wait_for_host(eryx_sandbox *sb, u32 ptr, u32 len)
{
    eryx_exec *ex = sb->exec;
    const char *error = NULL;
    if (!ex)
        return 0; /* no execution (start-up code): an empty reply */
    size_t before = ex->n_calls;
    int to_embedder = 0;
    char too_large[200];
    /* Checked before the guest's bytes are touched: the decoder's cost is
     * linear in len, and len is bounded first. */
    if (len > ERYX_MAX_WAIT_REQUEST) {
        snprintf(too_large, sizeof too_large,
                 "request to the host too large: %u bytes of JSON in one turn of the "
                 "event loop (the limit is %u MiB)",
                 (unsigned)len, (unsigned)(ERYX_MAX_WAIT_REQUEST >> 20));
        error = too_large;
    } else {
        const uint8_t *req = eryx__guest_span(sb, ptr, len);
        eryx__wait_request r;
        error = req ? eryx__wait_request_decode(req, len, &r) : "malformed request";
        if (!error) {
            error = record_calls(ex, &r, &to_embedder);
            set_timer(ex, &r);
            eryx__wait_request_clear(&r);
        }
    }
    if (!error)
        eryx__exec_replay_wait(ex);
    if (ex->diverged) {
        /* A call differed from the journal's: this guest must not go on
         * (it would make calls, or network operations, the journal does
         * not vouch for). The step drops its stack. */
        eryx__engine_suspend();
        return 0;
    }
    int new_calls = ex->n_calls > before;
    if (!error && !new_calls && !ex->timer_deadline_ns && eryx__exec_awaits_nothing(ex))
        error = "deadlock: the event loop waits, but no callback or timer is pending";
    /* Suspend unless the guest can go on at once: new calls must reach the
     * embedder, and waiting only makes sense with something to wait for
     * (a network operation that completed at once does not suspend). */
    if (!error && (to_embedder || !eryx__exec_has_completed(ex)))
        eryx__engine_suspend();
    else if (eryx__exec_take_reply(ex, error) < 0)
        return 0;
    /* On resume, the step has put the reply in ex->reply. */
    return (u32)ex->reply_len;
}

u32 Z_eryxZ_read_reply(struct Z_eryx_instance_t *host, u32 ptr, u32 len)
{
    eryx__engine_import_entry();
    eryx_sandbox *sb = host->sb;
    eryx_exec *ex = sb->exec;
    if (!ex || !ex->reply)
        return 0;
    size_t n = len < ex->reply_len ? len : ex->reply_len;
    uint8_t *dst = eryx__guest_span(sb, ptr, n);
    if (!dst)
        return 0;
    eryx__engine_enter_host();
    memcpy(dst, ex->reply, n);
    free(ex->reply);
    ex->reply = NULL;
    ex->reply_len = 0;
    eryx__engine_leave_host();
    return (u32)n;
}

/* Hands a trace event to on_trace; a malformed one (the guest is not
 * trusted) is dropped. Both names are read in place, NUL-terminated there:
 * the guest waits while the host runs. */
static void trace_event(eryx_sandbox *sb, const char *data, size_t len)
{
    eryx__trace_event ev;
    if (eryx__trace_event_decode(data, len, &ev) == 0)
        sb->on_trace(sb->trace_user_data, ev.file, ev.line, ev.function);
}

void Z_eryxZ_event(struct Z_eryx_instance_t *host, u32 kind, u32 ptr, u32 len)
{
    eryx__engine_import_entry();
    eryx_sandbox *sb = host->sb;
    eryx_exec *ex = sb->exec;
    const char *data = (const char *)eryx__guest_span(sb, ptr, len);
    if (!data || !ex)
        return;
    eryx__engine_enter_host();
    if (kind == ERYX_EVENT_TRACE && sb->on_trace) {
        trace_event(sb, data, len);
    } else if (kind == ERYX_EVENT_STATE) {
        free(ex->exported);
        ex->exported = malloc(len ? len : 1);
        ex->exported_len = ex->exported ? len : 0;
        if (ex->exported)
            memcpy(ex->exported, data, len);
    } else if (kind == ERYX_EVENT_RESULT && len > sb->cfg.max_output) {
        /* The result is output too: a host that parses it (the service, the
         * MCP server) holds what max_output allows, not all of memory. */
        char why[160];
        snprintf(why, sizeof why, "the result is %u bytes of JSON, more than max_output (%llu)",
                 len, (unsigned long long)sb->cfg.max_output);
        free(ex->result_json);
        free(ex->result_error);
        ex->result_json = NULL;
        ex->result_error = strdup(why);
    } else if (kind == ERYX_EVENT_RESULT || kind == ERYX_EVENT_RESULT_ERROR) {
        char **slot = kind == ERYX_EVENT_RESULT ? &ex->result_json : &ex->result_error;
        size_t n;
        free(*slot);
        *slot = kind == ERYX_EVENT_RESULT ? strndup(data, len)
                                          : eryx__text_cut(data, len, sb->cfg.max_output, &n);
    }
    eryx__engine_leave_host();
}

/* The memory scans (guest/host_string.c) are leaves that hold nothing and
 * take microseconds, so they skip enter/leave_host: an interrupt that lands
 * in the host's memchr is outside the guest's code and is sent again
 * (eryx__engine_set_guest_code). A range the guest's own loop would have
 * read past the memory's end traps as that loop would have. In builds that
 * count fuel, a scan costs one unit per 16 bytes it read, and one. */
static void scan_done(struct Z_eryx_instance_t *host, int rc, uint64_t scanned)
{
#if ERYX_HAVE_FUEL
    host->fuel -= (int64_t)(scanned / 16 + 1);
    if (host->fuel < 0)
        eryx__fuel_out(host);
#else
    (void)host;
    (void)scanned;
#endif
    if (rc == ERYX__SCAN_OOB)
        wasm_rt_trap(WASM_RT_TRAP_OOB);
}

/* memchr and memrchr: the index of the byte found, or UINT32_MAX. */
typedef int byte_scan_fn(const uint8_t *mem, uint64_t size, uint32_t ptr, uint32_t c,
                         uint32_t n, uint32_t *index, uint64_t *scanned);

static u32 byte_scan(struct Z_eryx_instance_t *host, byte_scan_fn *scan, u32 ptr, u32 c, u32 n)
{
    eryx__engine_import_entry();
    const wasm_rt_memory_t *m = &host->sb->in.inst.w2c_memory;
    u32 index;
    uint64_t scanned;
    int rc = scan(m->data, m->size, ptr, c, n, &index, &scanned);
    scan_done(host, rc, scanned);
    return index;
}

u32 Z_eryxZ_memchr(struct Z_eryx_instance_t *host, u32 ptr, u32 c, u32 n)
{
    return byte_scan(host, eryx__scan_memchr, ptr, c, n);
}

u32 Z_eryxZ_memrchr(struct Z_eryx_instance_t *host, u32 ptr, u32 c, u32 n)
{
    return byte_scan(host, eryx__scan_memrchr, ptr, c, n);
}

u32 Z_eryxZ_memcmp(struct Z_eryx_instance_t *host, u32 a, u32 b, u32 n)
{
    eryx__engine_import_entry();
    const wasm_rt_memory_t *m = &host->sb->in.inst.w2c_memory;
    int32_t sign;
    uint64_t scanned;
    int rc = eryx__scan_memcmp(m->data, m->size, a, b, n, &sign, &scanned);
    scan_done(host, rc, scanned);
    return (u32)sign;
}
