/*
 * Sessions as data: the user's globals exported and imported, and cleared.
 * Each is an internal run of the guest's glue (guest/abi.h modes "x", "y",
 * "z") that makes no callbacks.
 */
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"

/* Takes the JSON `result` of an internal run out of its result. */
static char *take_result_json(eryx_exec *ex)
{
    char *json = ex->result ? ex->result->result_json : NULL;
    if (ex->result)
        ex->result->result_json = NULL;
    return json ? json : strdup("[]");
}

int eryx__sandbox_export_state(eryx_sandbox *sb, void **data, size_t *len, char **skipped)
{
    eryx_exec *ex;
    int rc = eryx__exec_run_internal(sb, 'x', "", 0, NULL, &ex);
    if (!ex)
        return rc;
    eryx_result *r = ex->result;
    if (rc == ERYX_OK && ex->exported) {
        *data = ex->exported;
        *len = ex->exported_len;
        ex->exported = NULL;
        *skipped = take_result_json(ex);
    } else if ((rc == ERYX_OK || rc == ERYX_PYTHON_EXCEPTION) && r && r->exited) {
        /* The session's own code ran in the export (a copyreg reducer, a
         * __reduce__) and exited: its doing, not the glue's. os._exit
         * ended the interpreter; SystemExit was caught, and the sandbox
         * goes on. */
        int dead = sb->state == ERYX__SB_DEAD;
        eryx__set_errmsg(sb, "the session's code %s(%d) during the export (in a __reduce__ or "
                             "copyreg function of its objects)%s",
                         dead ? "called os._exit" : "raised SystemExit", r->exit_code,
                         dead ? ": the sandbox is dead" : "");
        rc = dead ? ERYX_DEAD : ERYX_PYTHON_EXCEPTION;
    } else if (rc == ERYX_OK) {
        eryx__set_errmsg(sb, "the sandbox exported no state");
        rc = ERYX_INTERNAL;
    } else if (rc == ERYX_PYTHON_EXCEPTION && r) {
        eryx__set_errmsg(sb, "exporting the state failed: %s",
                         r->exc_message ? r->exc_message : r->exc_type ? r->exc_type : "?");
        rc = ERYX_INTERNAL;
    }
    eryx__exec_finish(ex, NULL);
    return rc;
}

int eryx__sandbox_import_state(eryx_sandbox *sb, const void *data, size_t len, char **failed)
{
    eryx_exec *ex;
    int rc = eryx__exec_run_internal(sb, 'y', data, len, NULL, &ex);
    if (!ex)
        return rc;
    if (rc == ERYX_OK) {
        *failed = take_result_json(ex);
    } else if (rc == ERYX_PYTHON_EXCEPTION && ex->result) {
        const eryx_result *r = ex->result;
        eryx__set_errmsg(sb, "%s", r->exc_message ? r->exc_message
                                   : r->exc_type   ? r->exc_type
                                                   : "the state could not be imported");
        rc = ERYX_INVALID;
    }
    eryx__exec_finish(ex, NULL);
    return rc;
}

int eryx__sandbox_clear(eryx_sandbox *sb)
{
    eryx_exec *ex;
    int rc = eryx__exec_run_internal(sb, 'z', "", 0, NULL, &ex);
    if (ex)
        eryx__exec_finish(ex, NULL);
    return rc;
}
