/*
 * Calls into the guest's exports (guest/abi.h), each inside the engine's
 * guarded frame, and reads what they return out of linear memory with bounds
 * checks: a guest that lies about pointers gets an error, never a host fault.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "engine/engine.h"
#include "guest/abi.h"

/* Turns how a guarded call ended into a status; a trap kills the sandbox
 * because the interpreter's state is unknown from then on. */
static int call_status(eryx_sandbox *sb, int how, const eryx__call_info *info,
                       const char *what)
{
    if (how == ERYX__CALL_OK)
        return ERYX_OK;
    sb->state = ERYX__SB_DEAD;
    if (how == ERYX__CALL_NOMEM) {
        eryx__set_errmsg(sb, "out of memory or address space during %s", what);
        return ERYX_NOMEM;
    }
    if (how == ERYX__CALL_EXIT) {
        eryx__set_errmsg(sb, "the guest exited with status %d during %s",
                         info->exit_code, what);
        return ERYX_DEAD;
    }
    eryx__set_errmsg(sb, "%s trapped: %s", what, eryx__engine_strerror(how));
    return ERYX_TRAP;
}

static void do_instantiate(void *arg)
{
    eryx_sandbox *sb = arg;
    Z_python_instantiate(&sb->inst, sb->wasi);
}

int eryx__guest_instantiate(eryx_sandbox *sb)
{
    eryx__call_info info;
    int how = eryx__engine_call(&sb->inst.w2c_memory, do_instantiate, sb, &info);
    sb->instantiated = 1;
    return call_status(sb, how, &info, "instantiation");
}

struct init_call {
    eryx_sandbox *sb;
    u32 ret;
};

static void do_start(void *arg)
{
    struct init_call *c = arg;
    Z_pythonZ__initialize(&c->sb->inst);      /* the reactor's constructors */
    c->ret = Z_pythonZ_eryx_init(&c->sb->inst);
}

int eryx__guest_start(eryx_sandbox *sb)
{
    struct init_call c = {sb, 0};
    eryx__call_info info;
    int rc = call_status(sb, eryx__engine_call(&sb->inst.w2c_memory, do_start, &c, &info),
                         &info, "interpreter start-up");
    if (rc == ERYX_OK && c.ret != 0) {
        sb->state = ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "the interpreter failed to start");
        rc = ERYX_INIT;
    }
    return rc;
}

static void do_abi_version(void *arg)
{
    struct init_call *c = arg;
    c->ret = Z_pythonZ_eryx_abi_version(&c->sb->inst);
}

int eryx__guest_abi_version(eryx_sandbox *sb, int32_t *version)
{
    struct init_call c = {sb, 0};
    eryx__call_info info;
    int rc = call_status(sb, eryx__engine_call(&sb->inst.w2c_memory, do_abi_version, &c, &info),
                         &info, "eryx_abi_version");
    *version = (int32_t)c.ret;
    return rc;
}

/* Guest memory access: every range is checked against the current size. */
static int guest_range_ok(const wasm_rt_memory_t *mem, uint64_t ptr, uint64_t len)
{
    return ptr <= mem->size && len <= mem->size - ptr;
}

static char *copy_guest_string(const wasm_rt_memory_t *mem, uint32_t ptr, uint32_t len)
{
    if (!guest_range_ok(mem, ptr, len))
        return NULL;
    char *s = malloc((size_t)len + 1);
    if (s) {
        memcpy(s, mem->data + ptr, len);
        s[len] = '\0';
    }
    return s;
}

struct exec_call {
    eryx_sandbox *sb;
    u32 size;           /* in: bytes to allocate / request length */
    u32 ptr;            /* in/out: guest pointer */
};

static void do_alloc(void *arg)
{
    struct exec_call *c = arg;
    c->ptr = Z_pythonZ_eryx_alloc(&c->sb->inst, c->size);
}

static void do_exec(void *arg)
{
    struct exec_call *c = arg;
    u32 req = c->ptr;
    c->ptr = Z_pythonZ_eryx_exec(&c->sb->inst, req, c->size);
    Z_pythonZ_eryx_dealloc(&c->sb->inst, req);
}

static int read_outcome(eryx_sandbox *sb, uint32_t ptr, eryx__exec_outcome *o)
{
    const wasm_rt_memory_t *mem = &sb->inst.w2c_memory;
    uint32_t f[8];
    if (!guest_range_ok(mem, ptr, sizeof f)) {
        eryx__set_errmsg(sb, "the guest returned a result outside its memory");
        return ERYX_INTERNAL;
    }
    memcpy(f, mem->data + ptr, sizeof f); /* little endian, like wasm */
    o->status = f[0];
    o->exit_code = (int32_t)f[1];
    o->type = copy_guest_string(mem, f[2], f[3]);
    o->message = copy_guest_string(mem, f[4], f[5]);
    o->traceback = copy_guest_string(mem, f[6], f[7]);
    if (!o->type || !o->message || !o->traceback) {
        eryx__exec_outcome_clear(o);
        eryx__set_errmsg(sb, "the guest returned a malformed result");
        return ERYX_INTERNAL;
    }
    return ERYX_OK;
}

int eryx__guest_exec(eryx_sandbox *sb, const char *req, size_t len, eryx__exec_outcome *out)
{
    wasm_rt_memory_t *mem = &sb->inst.w2c_memory;
    eryx__call_info info;
    if (len > UINT32_MAX - 1) {
        eryx__set_errmsg(sb, "code too large");
        return ERYX_INVALID;
    }
    struct exec_call c = {sb, (u32)len, 0};
    int rc = call_status(sb, eryx__engine_call(mem, do_alloc, &c, &info), &info, "eryx_alloc");
    if (rc != ERYX_OK)
        return rc;
    if (c.ptr == 0 || !guest_range_ok(mem, c.ptr, len)) {
        eryx__set_errmsg(sb, "no room for the code in the sandbox's memory");
        return ERYX_NOMEM;
    }
    memcpy(mem->data + c.ptr, req, len);
    rc = call_status(sb, eryx__engine_call(mem, do_exec, &c, &info), &info, "the code");
    if (rc == ERYX_DEAD) {
        /* os._exit(): the code ended its "process". This run succeeded; the
         * sandbox is dead for the next ones (call_status marked it). */
        memset(out, 0, sizeof *out);
        out->status = ERYX_GUEST_EXIT;
        out->exit_code = info.exit_code;
        return ERYX_OK;
    }
    if (rc != ERYX_OK)
        return rc;
    return read_outcome(sb, c.ptr, out);
}

void eryx__exec_outcome_clear(eryx__exec_outcome *o)
{
    free(o->type);
    free(o->message);
    free(o->traceback);
    memset(o, 0, sizeof *o);
}
