/*
 * One execution: the request the guest understands (guest/abi.h), the call,
 * and the eryx_result built from what the guest reported and wrote.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "guest/abi.h"

void eryx_run_options_default(eryx_run_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

/* mode \0 filename \0 argc \0 argv[0] \0 ... argv[argc-1] \0 code */
static char *build_request(const eryx_run_options *o, const char *code, size_t len,
                           size_t *req_len)
{
    static const char *const default_argv[] = {"", NULL};
    const char *filename = o->filename ? o->filename : "<string>";
    const char *const *argv = o->argv && o->argv[0] ? o->argv : default_argv;
    size_t argc = 0;
    char count[24];
    size_t n = 2 + strlen(filename) + 1 + len;
    for (; argv[argc]; argc++)
        n += strlen(argv[argc]) + 1;
    n += (size_t)snprintf(count, sizeof count, "%zu", argc) + 1;
    char *req = malloc(n);
    if (!req)
        return NULL;
    char *p = req;
    *p++ = o->mode == ERYX_RUN_MODULE ? 'm' : 'c';
    *p++ = '\0';
    p = stpcpy(p, filename) + 1;
    p = stpcpy(p, count) + 1;
    for (size_t i = 0; i < argc; i++)
        p = stpcpy(p, argv[i]) + 1;
    memcpy(p, code, len);
    *req_len = n;
    return req;
}

static int check_options(eryx_sandbox *sb, const eryx_run_options *o)
{
    if (o->filename && !o->filename[0]) {
        eryx__set_errmsg(sb, "filename must not be empty");
        return ERYX_INVALID;
    }
    if (o->mode != ERYX_RUN_CODE && o->mode != ERYX_RUN_MODULE) {
        eryx__set_errmsg(sb, "unknown run mode %d", (int)o->mode);
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

static void take_output(eryx_sandbox *sb, eryx_result *r)
{
    int t;
    eryx__wasi_output(sb->wasi, 1, &r->out_len, &t);
    r->out_truncated = t;
    eryx__wasi_output(sb->wasi, 2, &r->err_len, &t);
    r->err_truncated = t;
    r->out = eryx__wasi_take_output(sb->wasi, 1, &r->out_len);
    r->err = eryx__wasi_take_output(sb->wasi, 2, &r->err_len);
}

/* Fills r from the guest's outcome; returns the run's status. */
static int apply_outcome(eryx_result *r, eryx__exec_outcome *o, int rc)
{
    r->exit_code = o->exit_code;
    r->exited = o->status == ERYX_GUEST_EXIT;
    if (o->status == ERYX_GUEST_EXCEPTION || o->status == ERYX_GUEST_INTERNAL) {
        r->exc_type = o->type;
        r->exc_message = o->message;
        r->traceback = o->traceback;
        o->type = o->message = o->traceback = NULL;
        if (rc == ERYX_OK)
            rc = o->status == ERYX_GUEST_EXCEPTION ? ERYX_PYTHON_EXCEPTION : ERYX_INTERNAL;
    }
    eryx__exec_outcome_clear(o);
    return rc;
}

int eryx__sandbox_run(eryx_sandbox *sb, const char *code, size_t len,
                      const eryx_run_options *opts, eryx_result **out)
{
    eryx_run_options defaults;
    if (!opts) {
        eryx_run_options_default(&defaults);
        opts = &defaults;
    }
    int rc = check_options(sb, opts);
    if (rc != ERYX_OK)
        return rc;
    eryx_result *r = calloc(1, sizeof *r);
    size_t req_len = 0;
    char *req = r ? build_request(opts, code, len, &req_len) : NULL;
    if (!req || eryx__wasi_set_stdin(sb->wasi, opts->stdin_data, opts->stdin_len) != 0) {
        free(req);
        free(r);
        eryx__set_errmsg(sb, "out of memory preparing the run");
        return ERYX_NOMEM;
    }
    uint64_t t0 = eryx__now_ns();
    eryx__wasi_begin_run(sb->wasi);
    eryx__exec_outcome o = {0};
    rc = eryx__guest_exec(sb, req, req_len, &o);
    free(req);
    r->duration_ns = eryx__now_ns() - t0;
    r->memory_bytes = sb->inst.w2c_memory.size;
    take_output(sb, r);
    if (!r->out || !r->err) {
        eryx__exec_outcome_clear(&o);
        eryx_result_free(r);
        eryx__set_errmsg(sb, "out of memory collecting the output");
        return ERYX_NOMEM;
    }
    if (rc == ERYX_OK) {
        rc = apply_outcome(r, &o, rc);
    } else if (rc == ERYX_TRAP) {
        r->exit_code = 1;
    } else {
        eryx_result_free(r);
        return rc;
    }
    *out = r;
    return rc;
}

void eryx_result_free(eryx_result *r)
{
    if (!r)
        return;
    free(r->out);
    free(r->err);
    free(r->exc_type);
    free(r->exc_message);
    free(r->traceback);
    free(r);
}
