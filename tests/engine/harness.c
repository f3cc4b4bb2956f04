#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

void Z_hostZ_exit(struct Z_host_instance_t *host, u32 code)
{
    eryx__engine_exit((int)code);
}

void Z_hostZ_abort(struct Z_host_instance_t *host, u32 reason)
{
    eryx__engine_abort((int)reason);
}

u32 Z_hostZ_ping(struct Z_host_instance_t *host, u32 x)
{
    eryx__engine_enter_host();
    host->pings++;
    u32 r = host->on_ping ? host->on_ping(host, x) : 2 * x;
    eryx__engine_leave_host();
    return r;
}

u32 Z_hostZ_wait(struct Z_host_instance_t *host, u32 x)
{
    eryx__engine_enter_host();
    host->waits++;
    if (host->on_wait)
        host->on_wait(host);
    if (eryx__engine_suspend() != 0)
        host->suspend_failed++;
    u32 r = host->reply;
    eryx__engine_leave_host();
    return r;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

/* The linker's bounds of the section holding eng.wat's generated code and
 * the tests' GUEST_CODE functions (CMakeLists.txt). */
extern const char __start_eryx_guest_code[];
extern const char __stop_eryx_guest_code[];

static void global(void)
{
    CHECK_EQ(eryx__engine_global_init(), 0);
    eryx__engine_set_guest_code(__start_eryx_guest_code, __stop_eryx_guest_code);
    CHECK(wasm_rt_is_initialized());
#if ERYX_TEST_SEGMENT
    /* The module was built to address memory through %gs. */
    CHECK_EQ(eryx__engine_use_segment_base(), 0);
#endif
    Z_eng_init_module();
}

void eng_global(void)
{
    pthread_once(&global_once, global);
}

static void instantiate(void *arg)
{
    eng *e = arg;
    Z_eng_instantiate(&e->inst, &e->host);
}

void eng_new(eng *e)
{
    eng_global();
    memset(e, 0, sizeof *e);
    CHECK_RC(eryx__engine_call(NULL, instantiate, e, NULL), ERYX__CALL_OK);
    CHECK(e->inst.w2c_memory.data != NULL);
    CHECK_EQ(e->inst.w2c_memory.pages, 1);
}

void eng_free(eng *e)
{
    Z_eng_free(&e->inst);
}

void eng_job_run(void *arg)
{
    job *j = arg;
    Z_eng_instance_t *in = &j->e->inst;
    switch (j->op) {
    case OP_LOAD32: j->r = Z_engZ_load32(in, j->a); break;
    case OP_STORE32: Z_engZ_store32(in, j->a, j->b); break;
    case OP_LOAD_FAR: j->r = Z_engZ_load_far(in, j->a); break;
    case OP_STORE_FAR: Z_engZ_store_far(in, j->a, j->b); break;
    case OP_LOAD64_FAR: j->r = Z_engZ_load64_far(in, j->a); break;
    case OP_PUN: j->r = Z_engZ_pun(in, j->a, j->b, j->c); break;
    case OP_STORE8: Z_engZ_store8(in, j->a, j->b); break;
    case OP_FILL: Z_engZ_fill(in, j->a, j->b, j->c); break;
    case OP_UNREACHABLE: Z_engZ_trap_unreachable(in); break;
    case OP_DIV_S: j->r = Z_engZ_div_s(in, j->a, j->b); break;
    case OP_REM_U: j->r = Z_engZ_rem_u(in, j->a, j->b); break;
    case OP_TRUNC: j->r = Z_engZ_trunc(in, j->d); break;
    case OP_CALL_IND: j->r = Z_engZ_call_ind(in, j->a); break;
    case OP_RECURSE: j->r = Z_engZ_recurse(in, j->a); break;
    case OP_GROW: j->r = Z_engZ_grow(in, j->a); break;
    case OP_SIZE: j->r = Z_engZ_size(in); break;
    case OP_THROW: Z_engZ_throw_it(in, j->a); break;
    case OP_CATCH: j->r = Z_engZ_catch_it(in, j->a); break;
    case OP_EXIT: Z_engZ_call_exit(in, j->a); break;
    case OP_ABORT: Z_engZ_call_abort(in, j->a); break;
    case OP_PING: j->r = Z_engZ_ping(in, j->a); break;
    case OP_ROUNDTRIPS: j->r = Z_engZ_roundtrips(in, j->a); break;
    case OP_WAIT_THEN: j->r = Z_engZ_wait_then(in, j->a, j->b); break;
    case OP_COUNT: j->r = Z_engZ_count(in, j->a); break;
    case OP_INTERP: j->r = Z_engZ_interp(in, j->a); break;
    }
}

int eng_run3(eng *e, enum op op, uint32_t a, uint32_t b, uint32_t c, double d, uint64_t *out,
             eryx__call_info *info)
{
    job j = {e, op, a, b, c, d, UINT64_MAX};
    int rc = eryx__engine_call(&e->inst.w2c_memory, eng_job_run, &j, info);
    if (out != NULL)
        *out = j.r;
    return rc;
}

int eng_run(eng *e, enum op op, uint32_t a, uint32_t b, uint64_t *out)
{
    return eng_run3(e, op, a, b, 0, 0.0, out, NULL);
}

int maps_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, ch;
    CHECK(f != NULL);
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}
