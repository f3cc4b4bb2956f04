/*
 * Sessions of `eryx serve`: a named sandbox state in the store (memory or
 * Redis), used under the store's lock so that requests to one session are
 * serialised across replicas. Each replica keeps the sandboxes of the
 * sessions it served last (--cache), tagged with the version they hold: a
 * request whose session is still at that version skips the load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "net/base64.h"
#include "serve.h"

struct cached_session {
    char name[129];
    uint64_t version;
    eryx_sandbox *sb;
    cached_session *next;
};

enum { SESSION_DISCARD, SESSION_KEEP, SESSION_SAVE };

int session_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return 0;
    }
    return 1;
}

static const char *store_code(int rc)
{
    switch (rc) {
    case STORE_NOTFOUND: return "not_found";
    case STORE_EXISTS: return "exists";
    case STORE_BUSY: return "locked";
    case STORE_CONFLICT: return "conflict";
    case STORE_UNAVAILABLE: return "store_unavailable";
    case STORE_INVALID: return "bad_request";
    case STORE_FULL: return "store_full";
    case STORE_STOPPED: return "busy"; /* elsewhere, or later */
    default: return "internal";
    }
}

static int store_failed(int rc, const char **code, char *msg, size_t msglen, const char *what)
{
    *code = store_code(rc);
    snprintf(msg, msglen, "%s: %s", what,
             rc == STORE_NOTFOUND ? "no such session"
             : rc == STORE_EXISTS ? "the session exists already"
             : rc == STORE_BUSY   ? "the session is busy with another request"
             : rc == STORE_STOPPED
                 ? "the server is stopping (try again: another replica may take it)"
                 : store_errmsg());
    return -1;
}

/* After a create (a first version) of name failed, with name's lock held
 * and no session of that name: the chunks stored before the failure (the
 * store full part way, say) stayed counted against --store-max-bytes under
 * a name with no session, freed only by a delete of it, which a client
 * that had picked a random name never sends (an audit's finding). Called
 * after store_failed has read the failure's message. */
static void drop_failed_create(server *sv, const char *name, int rc)
{
    /* (Not when the store cannot be reached: the delete would wait as
     * long again, and fail.) */
    if (rc != STORE_OK && rc != STORE_EXISTS && rc != STORE_UNAVAILABLE && rc != STORE_STOPPED)
        (void)store_delete(sv->st, name);
}

/* ---- the replica's cache ------------------------------------------------------ */

/* Takes the cached sandbox of name if it holds version. */
static eryx_sandbox *cache_take(server *sv, const char *name, uint64_t version)
{
    eryx_sandbox *sb = NULL, *stale = NULL;
    pthread_mutex_lock(&sv->lock);
    for (cached_session **p = &sv->cache; *p; p = &(*p)->next) {
        cached_session *e = *p;
        if (strcmp(e->name, name) != 0)
            continue;
        *p = e->next;
        sv->n_cached--;
        if (e->version == version)
            sb = e->sb;
        else
            stale = e->sb;
        free(e);
        break;
    }
    pthread_mutex_unlock(&sv->lock);
    eryx_sandbox_free(stale);
    atomic_fetch_add(sb ? &sv->m.cache_hits : &sv->m.cache_misses, 1);
    return sb;
}

static void cache_put(server *sv, const char *name, uint64_t version, eryx_sandbox *sb)
{
    cached_session *e = calloc(1, sizeof *e), *evicted = NULL;
    if (!e) {
        eryx_sandbox_free(sb);
        return;
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->version = version;
    e->sb = sb;
    pthread_mutex_lock(&sv->lock);
    e->next = sv->cache;
    sv->cache = e;
    if (++sv->n_cached > sv->cfg.cache) {
        cached_session **p = &sv->cache;
        while ((*p)->next)
            p = &(*p)->next;
        evicted = *p;
        *p = NULL;
        sv->n_cached--;
    }
    pthread_mutex_unlock(&sv->lock);
    if (evicted) {
        eryx_sandbox_free(evicted->sb);
        free(evicted);
    }
}

void session_cache_free(server *sv)
{
    while (sv->cache) {
        cached_session *e = sv->cache;
        sv->cache = e->next;
        eryx_sandbox_free(e->sb);
        free(e);
    }
    sv->n_cached = 0;
}

/* ---- session bytes ------------------------------------------------------------ */

/* Stores sb's state as name: create (base 0, a first version) or compare-and-set
 * on base. Through a memfd: the store skips its holes unread. */
static int store_state(server *sv, const char *name, eryx_sandbox *sb, uint64_t base,
                       uint64_t *version)
{
    int fd = memfd_create("eryx-session", MFD_CLOEXEC), rc = STORE_NOMEM;
    if (fd >= 0 && eryx_sandbox_save_fd(sb, fd) == ERYX_OK)
        rc = store_put_fd(sv->st, name, fd, base, version);
    if (fd >= 0)
        close(fd);
    atomic_fetch_add(rc == STORE_OK ? &sv->m.session_saves : &sv->m.session_save_failures, 1);
    return rc;
}

static int load_state(server *sv, const char *name, eryx_sandbox **sb, uint64_t *version)
{
    int fd = memfd_create("eryx-session", MFD_CLOEXEC);
    if (fd < 0)
        return STORE_NOMEM;
    int rc = store_get(sv->st, name, fd, version);
    if (rc == STORE_OK) {
        lseek(fd, 0, SEEK_SET);
        if (eryx_sandbox_load_fd(sv->rt, &sv->sbcfg, fd, sb) != ERYX_OK)
            rc = STORE_CORRUPT;
    }
    close(fd);
    return rc;
}

/* ---- open and close --------------------------------------------------------- */

int session_open(server *sv, const char *name, int create, uint64_t want_version,
                 session_ref *ref, const char **code, char *msg, size_t msglen)
{
    memset(ref, 0, sizeof *ref);
    if (!session_name_ok(name)) {
        *code = "bad_request";
        snprintf(msg, msglen, "a session name is 1-128 characters of A-Z a-z 0-9 . _ : -");
        return -1;
    }
    snprintf(ref->name, sizeof ref->name, "%s", name);
    int rc = store_lock(sv->st, name, sv->cfg.lock_ttl_ms, sv->cfg.lock_wait_ms, &ref->lock);
    if (rc != STORE_OK)
        return store_failed(rc, code, msg, msglen, name);
    uint64_t v = 0;
    rc = store_version(sv->st, name, &v);
    if (rc == STORE_NOTFOUND && create && !want_version) {
        if (eryx_sandbox_new(sv->rt, &sv->sbcfg, &ref->sb) != ERYX_OK)
            rc = STORE_NOMEM;
        else if ((rc = store_state(sv, name, ref->sb, 0, &v)) != STORE_OK) {
            store_failed(rc, code, msg, msglen, name);
            drop_failed_create(sv, name, rc);
            goto fail;
        }
    } else if (rc == STORE_OK && want_version && v != want_version) {
        *code = "journal_stale";
        snprintf(msg, msglen, "session %s changed since the suspension (version %llu, now %llu)",
                 name, (unsigned long long)want_version, (unsigned long long)v);
        goto fail;
    } else if (rc == STORE_OK && !(ref->sb = cache_take(sv, name, v))) {
        rc = load_state(sv, name, &ref->sb, &v);
    }
    if (rc != STORE_OK) {
        store_failed(rc, code, msg, msglen, name);
        goto fail;
    }
    ref->version = v;
    return 0;
fail:
    eryx_sandbox_free(ref->sb);
    ref->sb = NULL;
    store_unlock(ref->lock);
    ref->lock = NULL;
    return -1;
}

/* Returns the store's status of the save (STORE_OK when none was asked). */
static int close_mode(server *sv, session_ref *ref, int mode, int *saved, char *msg,
                      size_t msglen)
{
    *saved = 0;
    int rc = STORE_OK;
    if (mode == SESSION_SAVE && ref->sb && !eryx_sandbox_is_dead(ref->sb)) {
        uint64_t v;
        rc = store_state(sv, ref->name, ref->sb, ref->version, &v);
        if (rc == STORE_OK) {
            ref->version = v;
            *saved = 1;
        } else {
            const char *code;
            store_failed(rc, &code, msg, msglen, "the session's new state was not stored");
        }
    }
    if (ref->sb && (*saved || mode == SESSION_KEEP) && !eryx_sandbox_is_dead(ref->sb))
        cache_put(sv, ref->name, ref->version, ref->sb);
    else
        eryx_sandbox_free(ref->sb);
    ref->sb = NULL;
    store_unlock(ref->lock);
    ref->lock = NULL;
    return rc;
}

void session_close(server *sv, session_ref *ref, int save, int *saved, char *msg, size_t msglen)
{
    close_mode(sv, ref, save ? SESSION_SAVE : SESSION_DISCARD, saved, msg, msglen);
}

int session_refresh_lock(session_ref *ref)
{
    return store_lock_refresh(ref->lock) == STORE_OK ? 0 : -1;
}

/* ---- the session requests ------------------------------------------------------ */

/* The answer, or too_large when it would be over --max-message (an
 * exported state can be): the client reads with that bound. */
static void reply_done(ws_conn *c, json_t *id, json_t *fields, size_t max_message)
{
    json_object_set(fields, "id", id ? id : json_null());
    json_object_set_new(fields, "ev", json_string("done"));
    if (ws_conn_send_json(c, fields) == WS_TOO_LARGE) {
        char msg[160];
        snprintf(msg, sizeof msg, "the answer is larger than one message to the client may be "
                                  "(--max-message %zu bytes)", max_message);
        send_error(c, id, "too_large", msg);
    }
}

/* Locks name only (no sandbox): for create, fork, reset, delete. */
static int lock_only(server *sv, const char *name, struct store_lock **lk, const char **code, char *msg,
                     size_t msglen)
{
    if (!name || !session_name_ok(name)) {
        *code = "bad_request";
        snprintf(msg, msglen, "a session name is 1-128 characters of A-Z a-z 0-9 . _ : -");
        return -1;
    }
    int rc = store_lock(sv->st, name, sv->cfg.lock_ttl_ms, sv->cfg.lock_wait_ms, lk);
    return rc == STORE_OK ? 0 : store_failed(rc, code, msg, msglen, name);
}

/* create (base 0) or reset (compare-and-set on the current version). */
static int fresh_state(server *sv, const char *name, int reset, uint64_t *v, const char **code,
                       char *msg, size_t msglen)
{
    uint64_t cur = 0;
    int rc = store_version(sv->st, name, &cur);
    if (reset ? rc != STORE_OK : rc != STORE_NOTFOUND)
        return store_failed(rc == STORE_OK ? STORE_EXISTS : rc, code, msg, msglen, name);
    eryx_sandbox *sb;
    if (eryx_sandbox_new(sv->rt, &sv->sbcfg, &sb) != ERYX_OK)
        return store_failed(STORE_NOMEM, code, msg, msglen, "cannot make a sandbox");
    rc = store_state(sv, name, sb, reset ? cur : 0, v);
    if (rc == STORE_OK) {
        cache_put(sv, name, *v, sb);
        return 0;
    }
    eryx_sandbox_free(sb);
    store_failed(rc, code, msg, msglen, name);
    if (!reset)
        drop_failed_create(sv, name, rc);
    return -1;
}

static int fork_session(server *sv, const char *from, const char *to, uint64_t *v,
                        const char **code, char *msg, size_t msglen)
{
    struct store_lock *lk;
    if (lock_only(sv, to, &lk, code, msg, msglen) < 0)
        return -1;
    int fd = memfd_create("eryx-session", MFD_CLOEXEC), rc = STORE_NOMEM, put = 0;
    uint64_t src_version;
    if (fd >= 0 && (rc = store_get(sv->st, from, fd, &src_version)) == STORE_OK) {
        rc = store_put_fd(sv->st, to, fd, 0, v);
        put = 1;
    }
    if (fd >= 0)
        close(fd);
    /* The message before the unlock, which clears the store's (it was
     * "a: " and nothing more), naming the session the failing step was
     * about: the copy's for the put. */
    if (rc != STORE_OK)
        store_failed(rc, code, msg, msglen, put ? to : from);
    if (put)
        drop_failed_create(sv, to, rc);
    store_unlock(lk);
    return rc == STORE_OK ? 0 : -1;
}

static int export_session(server *sv, const char *name, json_t *out, const char **code,
                          char *msg, size_t msglen)
{
    session_ref ref;
    if (session_open(sv, name, 0, 0, &ref, code, msg, msglen) < 0)
        return -1;
    void *data = NULL;
    size_t len = 0, blen = 0;
    char *skipped = NULL, *b64 = NULL;
    int rc = eryx_sandbox_export_state(ref.sb, &data, &len, &skipped);
    if (rc == ERYX_OK && (b64 = eryx__b64_encode(data, len, &blen))) {
        json_t *sk = skipped ? json_loads(skipped, 0, NULL) : NULL;
        json_object_set_new(out, "data", json_stringn(b64, blen));
        json_object_set_new(out, "skipped", sk ? sk : json_array());
        json_object_set_new(out, "version", json_integer((json_int_t)ref.version));
    } else {
        *code = "internal";
        snprintf(msg, msglen, "cannot export: %s", eryx_errmsg(ref.sb));
    }
    int saved;
    close_mode(sv, &ref, SESSION_KEEP, &saved, msg, msglen);
    eryx_free(data);
    eryx_free(skipped);
    free(b64);
    return rc == ERYX_OK && blen ? 0 : -1;
}

static int import_session(server *sv, const char *name, json_t *req, json_t *out,
                          const char **code, char *msg, size_t msglen)
{
    json_t *d = json_object_get(req, "data");
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (!json_is_string(d) ||
        eryx__b64_decode(json_string_value(d), json_string_length(d), &bytes, &len) != 0) {
        *code = "bad_request";
        snprintf(msg, msglen, "import needs \"data\": the base64 of an export");
        return -1;
    }
    session_ref ref;
    if (session_open(sv, name, json_is_true(json_object_get(req, "create")), 0, &ref, code, msg,
                     msglen) < 0) {
        free(bytes);
        return -1;
    }
    char *failed = NULL;
    int rc = eryx_sandbox_import_state(ref.sb, bytes, len, &failed);
    free(bytes);
    int saved = 0;
    if (rc != ERYX_OK) {
        /* Until 2026-12-07 every failure was bad_request, a slow import's
         * time limit too. */
        *code = rc == ERYX_INVALID       ? "bad_request"
                : rc == ERYX_TIMEOUT     ? "timeout"
                : rc == ERYX_INTERRUPTED ? "busy" /* the server is stopping */
                                         : "internal";
        snprintf(msg, msglen, "cannot import: %s", eryx_errmsg(ref.sb));
    }
    int src = close_mode(sv, &ref, rc == ERYX_OK ? SESSION_SAVE : SESSION_DISCARD, &saved, msg,
                         msglen);
    if (rc == ERYX_OK && !saved) /* a full store is store_full (it was store_unavailable) */
        *code = src != STORE_OK ? store_code(src) : "store_unavailable";
    json_t *f = failed ? json_loads(failed, 0, NULL) : NULL;
    json_object_set_new(out, "failed", f ? f : json_array());
    json_object_set_new(out, "version", json_integer((json_int_t)ref.version));
    eryx_free(failed);
    return rc == ERYX_OK && saved ? 0 : -1;
}

static int simple_op(server *sv, const char *op, const char *name, json_t *req, json_t *out,
                     const char **code, char *msg, size_t msglen)
{
    uint64_t v = 0;
    struct store_lock *lk = NULL;
    int r = -1;
    if (strcmp(op, "info") == 0) {
        int rc = store_version(sv->st, name, &v);
        r = rc == STORE_OK ? 0 : store_failed(rc, code, msg, msglen, name);
    } else if (strcmp(op, "fork") == 0) {
        const char *to = json_string_value(json_object_get(req, "to"));
        r = fork_session(sv, name, to, &v, code, msg, msglen);
    } else if (lock_only(sv, name, &lk, code, msg, msglen) == 0) {
        if (strcmp(op, "delete") == 0) {
            int rc = store_delete(sv->st, name);
            eryx_sandbox_free(cache_take(sv, name, 0));
            r = rc == STORE_OK ? 0 : store_failed(rc, code, msg, msglen, name);
        } else {
            r = fresh_state(sv, name, op[0] == 'r', &v, code, msg, msglen);
        }
        store_unlock(lk);
    }
    if (r == 0 && strcmp(op, "delete") != 0)
        json_object_set_new(out, "version", json_integer((json_int_t)v));
    return r;
}

void session_op(server *sv, ws_conn *c, json_t *id, const char *op, json_t *req)
{
    static const char *const ops[] = {"create", "fork", "reset", "delete", "info", "export",
                                      "import"};
    const char *name = json_string_value(json_object_get(req, "session"));
    const char *code = "bad_request";
    char msg[512] = "";
    size_t i = 0;
    while (i < sizeof ops / sizeof ops[0] && strcmp(op, ops[i]) != 0)
        i++;
    if (i == sizeof ops / sizeof ops[0]) {
        send_error(c, id, "bad_request", "unknown op");
        return;
    }
    if (!name || !session_name_ok(name)) {
        send_error(c, id, "bad_request", "\"session\": 1-128 characters of A-Z a-z 0-9 . _ : -");
        return;
    }
    json_t *out = json_object();
    int r = strcmp(op, "export") == 0   ? export_session(sv, name, out, &code, msg, sizeof msg)
            : strcmp(op, "import") == 0 ? import_session(sv, name, req, out, &code, msg, sizeof msg)
                                        : simple_op(sv, op, name, req, out, &code, msg, sizeof msg);
    if (r == 0) {
        json_object_set_new(out, "session", json_string(name));
        json_object_set_new(out, "replica", json_string(sv->replica));
        reply_done(c, id, out, sv->cfg.max_message);
    } else {
        json_decref(out);
        atomic_fetch_add(&sv->m.errors_total, 1);
        send_error(c, id, code, msg[0] ? msg : "failed");
    }
}
