/* The guest's records of calls' outcomes: call_record.h says what they hold. */
#include "core/call_record.h"

#include <stdlib.h>

#include "core/json_wide.h"
#include "core/json_write.h"
#include "core/wait_request.h"

json_t *eryx__call_record(uint64_t id, int ok, const char *key, json_t *value)
{
    json_t *r = value ? json_object() : NULL;
    if (!r || json_object_set_new_nocheck(r, "id", json_integer((json_int_t)id)) < 0 ||
        json_object_set_new_nocheck(r, "ok", json_boolean(ok)) < 0) {
        json_decref(value);
        json_decref(r);
        return NULL;
    }
    if (json_object_set_new_nocheck(r, key, value) < 0) { /* takes value all the same */
        json_decref(r);
        return NULL;
    }
    return r;
}

json_t *eryx__call_error_record(uint64_t id, const char *kind, const char *message)
{
    json_t *r = eryx__call_record(id, 0, "kind", json_string(kind));
    if (r && json_object_set_new_nocheck(r, "message", json_string(message)) < 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

json_t *eryx__call_ok_record(uint64_t id, const char *json, size_t len)
{
    int inexact;
    json_t *value = eryx__json_read(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &inexact);
    if (!value)
        return NULL;
    if (inexact) {
        /* jansson read it, so it is UTF-8: a string can hold it. */
        json_decref(value);
        return eryx__call_record(id, 1, "raw", json_stringn(json, len));
    }
    return eryx__call_record(id, 1, "value", value);
}

char *eryx__call_ok_text(uint64_t id, const char *json, size_t len, size_t *out_len)
{
    static const char ok[] = ",\"ok\":true,\"value\":";
    eryx__json_out o = {0};
    eryx__json_put(&o, "{\"id\":", 6);
    eryx__json_put_u64(&o, id);
    eryx__json_put(&o, ok, sizeof ok - 1);
    char *value = eryx__json_reserve(&o, len + 1);
    size_t vlen;
    if (!value || eryx__json_compact(json, len, value, &vlen) < 0) {
        free(o.p);
        return NULL;
    }
    o.len += vlen;
    eryx__json_put(&o, "}", 1);
    if (o.err) {
        free(o.p);
        return NULL;
    }
    *out_len = o.len;
    return o.p;
}
