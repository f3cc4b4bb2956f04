/*
 * Calls into the guest's exports (guest/abi.h), each on the sandbox's fiber
 * inside the engine's guarded frame, and reads what they return out of
 * linear memory with bounds checks: a guest that lies about pointers gets an
 * error, never a host fault.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "engine/engine.h"
#include "guest/abi.h"
#include "wasi/guest_mem.h"

int eryx__in_guest_code(void) { return eryx__engine_thread_in_guest(); }

int eryx__guest_thread_free(eryx_sandbox *sb, const char *what)
{
    if (!eryx__in_guest_code())
        return ERYX_OK;
    eryx__set_errmsg(sb, "%s refused: this thread is inside another sandbox's guest code (an "
                         "output handler or a host function of it may not run a sandbox; a "
                         "callback may)", what);
    return ERYX_MISUSE;
}

/* Turns how a guarded call ended into a status. A trap kills the sandbox:
 * the interpreter's state is unknown from then on. */
static int call_status(eryx_sandbox *sb, int how, const eryx__call_info *info,
                       const char *what)
{
    switch (how) {
    case ERYX__CALL_OK:
        return ERYX_OK;
    case ERYX__CALL_SUSPENDED:
        return ERYX_PENDING;
    case ERYX__CALL_EXIT:
        sb->state = ERYX__SB_DEAD;
        sb->exit_code = info->exit_code;
        eryx__set_errmsg(sb, "the guest exited with status %d during %s", info->exit_code,
                         what);
        return ERYX_DEAD;
    case ERYX__CALL_ABORTED:
        if (info->abort_reason == ERYX__ABORT_FUEL) {
            sb->state = ERYX__SB_DEAD;
            eryx__set_errmsg(sb, "%s used up its fuel and was stopped (the sandbox is dead)",
                             what);
            return ERYX_FUEL;
        }
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "%s was aborted", what);
        return ERYX_INTERNAL;
    case ERYX__CALL_INTERRUPTED:
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "%s was stopped hard", what);
        return ERYX_INTERRUPTED;
    case ERYX__CALL_NOMEM:
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "out of memory or address space during %s", what);
        return ERYX_NOMEM;
    default:
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "%s trapped: %s", what, eryx__engine_strerror(how));
        return ERYX_TRAP;
    }
}

int eryx__guest_call(eryx_sandbox *sb, eryx__guest_fn fn, void *arg, const char *what)
{
    eryx__call_info info = {0};
    /* Refused before anything: the sandbox is as it was (runs are refused
     * sooner, in exec_start, before they take the sandbox's set-up). */
    int rc = eryx__guest_thread_free(sb, what);
    if (rc != ERYX_OK)
        return rc;
    eryx__sandbox_drop_fork_base(sb);
    eryx__wasi_cpu_enter(sb->wasi);     /* the guest's CPU clocks count from here */
    int how = eryx__engine_call_on(sb->in.fiber, &sb->in.inst.w2c_memory, fn, arg, &info);
    eryx__wasi_cpu_leave(sb->wasi);
    return call_status(sb, how, &info, what);
}

int eryx__guest_resume(eryx_sandbox *sb, const char *what)
{
    eryx__call_info info = {0};
    eryx__sandbox_drop_fork_base(sb);
    eryx__wasi_cpu_enter(sb->wasi);
    int how = eryx__engine_resume(sb->in.fiber, &info);
    eryx__wasi_cpu_leave(sb->wasi);
    if (how == -1) {
        /* A half-run execution cannot wait for a better thread: the
         * execution ends, and its interpreter with it (and its stack). */
        eryx__fiber_abandon(sb->in.fiber);
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "resuming %s was refused: this thread is inside another "
                             "sandbox's guest code; the sandbox is dead", what);
        return ERYX_MISUSE;
    }
    return call_status(sb, how, &info, what);
}

/* The one bounds check of guest ranges, shared with the WASI layer. */
uint8_t *eryx__guest_span(eryx_sandbox *sb, uint32_t ptr, uint64_t len)
{
    return gm_span(&sb->in.inst.w2c_memory, ptr, len);
}

static void do_instantiate(void *arg)
{
    eryx_sandbox *sb = arg;
    Z_python_instantiate(&sb->in.inst, &sb->in.host, sb->wasi);
}

int eryx__guest_instantiate(eryx_sandbox *sb)
{
    int rc = eryx__guest_call(sb, do_instantiate, sb, "instantiation");
    sb->in.instantiated = 1;
    return rc;
}

struct u32_call {
    eryx_sandbox *sb;
    u32 arg, ret;
};

static void do_start(void *arg)
{
    struct u32_call *c = arg;
    Z_pythonZ__initialize(&c->sb->in.inst); /* the reactor's constructors */
    c->ret = Z_pythonZ_eryx_init(&c->sb->in.inst);
}

int eryx__guest_start(eryx_sandbox *sb)
{
    struct u32_call c = {sb, 0, 0};
    int rc = eryx__guest_call(sb, do_start, &c, "interpreter start-up");
    if (rc == ERYX_OK && c.ret != 0) {
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "the interpreter failed to start");
        rc = ERYX_INIT;
    }
    return rc;
}

static void do_abi_version(void *arg)
{
    struct u32_call *c = arg;
    c->ret = Z_pythonZ_eryx_abi_version(&c->sb->in.inst);
}

int eryx__guest_abi_version(eryx_sandbox *sb, int32_t *version)
{
    struct u32_call c = {sb, 0, 0};
    int rc = eryx__guest_call(sb, do_abi_version, &c, "eryx_abi_version");
    *version = (int32_t)c.ret;
    return rc;
}

static void do_alloc(void *arg)
{
    struct u32_call *c = arg;
    c->ret = Z_pythonZ_eryx_alloc(&c->sb->in.inst, c->arg);
}

uint32_t eryx__guest_alloc(eryx_sandbox *sb, uint32_t size, int *rc)
{
    struct u32_call c = {sb, size, 0};
    *rc = eryx__guest_call(sb, do_alloc, &c, "eryx_alloc");
    if (*rc == ERYX_OK && (c.ret == 0 || !eryx__guest_span(sb, c.ret, size))) {
        eryx__set_errmsg(sb, "no room for %u bytes in the sandbox's memory", size);
        *rc = ERYX_NOMEM;
    }
    return c.ret;
}

char *eryx__text_cut(const char *text, size_t len, uint64_t max, size_t *out_len)
{
    static const char mark[] = "\n[eryx: %zu bytes more cut: max_output]\n";
    uint64_t cap = max < 1024 ? 1024 : max;
    if (len <= cap) {
        char *s = malloc(len + 1);
        if (s) {
            memcpy(s, text, len);
            s[len] = '\0';
            *out_len = len;
        }
        return s;
    }
    size_t keep = (size_t)cap;
    while (keep > 0 && ((unsigned char)text[keep] & 0xc0) == 0x80)
        keep--; /* not inside a UTF-8 sequence */
    char *s = malloc(keep + sizeof mark + 20);
    if (!s)
        return NULL;
    memcpy(s, text, keep);
    int n = snprintf(s + keep, sizeof mark + 20, mark, len - keep);
    *out_len = keep + (size_t)n;
    return s;
}

/* A string of the guest's outcome, at most max_output (eryx__text_cut). */
static char *copy_guest_string(eryx_sandbox *sb, uint32_t ptr, uint32_t len, size_t *out_len)
{
    const uint8_t *src = eryx__guest_span(sb, ptr, len);
    return src ? eryx__text_cut((const char *)src, len, sb->cfg.max_output, out_len) : NULL;
}

int eryx__guest_read_outcome(eryx_sandbox *sb, uint32_t ptr, eryx__exec_outcome *o)
{
    uint32_t f[8];
    const uint8_t *rec = eryx__guest_span(sb, ptr, sizeof f);
    if (!rec) {
        eryx__set_errmsg(sb, "the guest returned a result outside its memory");
        return ERYX_INTERNAL;
    }
    memcpy(f, rec, sizeof f); /* little endian, like wasm */
    o->status = f[0];
    o->exit_code = (int32_t)f[1];
    /* The message and traceback are output too: a raise of a 300 MB text
     * made the host hold three copies of it (1.5 GB of RSS). */
    size_t type_len;
    o->type = copy_guest_string(sb, f[2], f[3], &type_len);
    o->message = copy_guest_string(sb, f[4], f[5], &o->message_len);
    o->traceback = copy_guest_string(sb, f[6], f[7], &o->traceback_len);
    if (!o->type || !o->message || !o->traceback) {
        eryx__exec_outcome_clear(o);
        eryx__set_errmsg(sb, "the guest returned a malformed result");
        return ERYX_INTERNAL;
    }
    return ERYX_OK;
}

void eryx__exec_outcome_clear(eryx__exec_outcome *o)
{
    free(o->type);
    free(o->message);
    free(o->traceback);
    memset(o, 0, sizeof *o);
}

/* The generated code ran out of fuel (guest/w2c_hooks.h): end the call. It
 * stopped at an arbitrary instruction, so the sandbox is dead after it. */
_Noreturn void eryx__fuel_out(struct Z_eryx_instance_t *host)
{
    (void)host;
    eryx__engine_abort(ERYX__ABORT_FUEL);
}
