/*
 * Journal tokens: what a client keeps of a suspended execution, and brings
 * back to resume it on any replica. A token is base64 of
 *
 *   "EXJ1" | u32 meta length | meta (JSON) | u32 journal length | journal
 *          | HMAC-SHA256 of everything before it
 *
 * under the key the replicas share (--journal-key-file). The meta names the
 * session and the version its state had when the execution started, the
 * build, a random id and the time. The client can read a token but not
 * forge or alter one; the server refuses it once used (the id is marked in
 * the store), once older than --journal-ttl, from another build, or when
 * the session has moved on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "net/base64.h"
#include "serve.h"

#define MAGIC "EXJ1"
#define MAC_LEN 32

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

char *journal_token(server *sv, const journal_meta *meta, eryx_journal *j)
{
    uint8_t rnd[16];
    char id[33];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
        return NULL;
    for (int i = 0; i < 16; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    json_t *m = json_pack("{ss sI ss ss sI sO}", "session", meta->session, "version",
                          (json_int_t)meta->version, "build", eryx_build_id(), "jid", id, "time",
                          (json_int_t)wall_ms(), "pending", meta->pending);
    char *ms = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    void *jb = NULL;
    size_t jlen = 0;
    char *token = NULL;
    if (ms && eryx_journal_save(j, &jb, &jlen) == ERYX_OK) {
        size_t mlen = strlen(ms), total = 4 + 4 + mlen + 4 + jlen + MAC_LEN;
        uint8_t *blob = malloc(total);
        if (blob) {
            memcpy(blob, MAGIC, 4);
            put32(blob + 4, (uint32_t)mlen);
            memcpy(blob + 8, ms, mlen);
            put32(blob + 8 + mlen, (uint32_t)jlen);
            memcpy(blob + 12 + mlen, jb, jlen);
            size_t n;
            if (crypto_hmac_sha256(sv->journal_key, sv->journal_key_len, blob, total - MAC_LEN,
                                   blob + total - MAC_LEN) == 0)
                token = eryx__b64_encode(blob, total, &n);
            free(blob);
        }
    }
    free(ms);
    eryx_free(jb);
    return token;
}

static eryx_journal *invalid(const char **code, char *msg, size_t msglen, const char *why)
{
    *code = "journal_invalid";
    snprintf(msg, msglen, "the journal token is not valid: %s", why);
    return NULL;
}

/* Checks the metadata fields; fills meta. NULL or an error message. */
static const char *read_meta(server *sv, const uint8_t *p, size_t n, journal_meta *meta)
{
    json_t *m = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
    const char *why = NULL;
    const char *session = json_string_value(json_object_get(m, "session"));
    const char *build = json_string_value(json_object_get(m, "build"));
    const char *jid = json_string_value(json_object_get(m, "jid"));
    json_t *version = json_object_get(m, "version"), *t = json_object_get(m, "time");
    json_t *pending = json_object_get(m, "pending");
    if (!session || !build || !jid || strlen(jid) != 32 || !json_is_integer(version) ||
        !json_is_integer(t) || !json_is_array(pending) || strlen(session) >= sizeof meta->session)
        why = "its metadata is incomplete";
    else if (strcmp(build, eryx_build_id()) != 0)
        why = "it was made by another build of eryx";
    else if ((uint64_t)json_integer_value(t) + sv->cfg.journal_ttl_ms < wall_ms())
        why = "it expired (--journal-ttl)";
    if (!why) {
        snprintf(meta->session, sizeof meta->session, "%s", session);
        snprintf(meta->id, sizeof meta->id, "%s", jid);
        meta->version = (uint64_t)json_integer_value(version);
        meta->pending = json_incref(pending);
    }
    json_decref(m);
    return why;
}

eryx_journal *journal_open(server *sv, const char *token, journal_meta *meta, const char **code,
                           char *msg, size_t msglen)
{
    uint8_t *blob = NULL;
    size_t n = 0;
    memset(meta, 0, sizeof *meta);
    if (eryx__b64_decode(token, strlen(token), &blob, &n) != 0)
        return invalid(code, msg, msglen, "it is not base64");
    uint8_t mac[MAC_LEN];
    const char *why = NULL;
    uint32_t mlen = n >= 8 ? get32(blob + 4) : 0, jlen = 0;
    if (n < 12 + MAC_LEN || memcmp(blob, MAGIC, 4) != 0 || mlen > n - 12 - MAC_LEN)
        why = "it is truncated or not a journal token";
    else if ((jlen = get32(blob + 8 + mlen)) != n - 12 - MAC_LEN - mlen)
        why = "its lengths do not add up";
    else if (crypto_hmac_sha256(sv->journal_key, sv->journal_key_len, blob, n - MAC_LEN, mac) != 0 ||
             !crypto_equal(mac, blob + n - MAC_LEN, MAC_LEN))
        why = "its signature does not match (altered, or signed with another key)";
    else
        why = read_meta(sv, blob + 8, mlen, meta);
    eryx_journal *j = NULL;
    if (!why && eryx_journal_load(blob + 12 + mlen, jlen, &j) != ERYX_OK)
        why = "its journal does not decode";
    free(blob);
    if (why) {
        json_decref(meta->pending);
        meta->pending = NULL;
        return invalid(code, msg, msglen, why);
    }
    return j;
}

int journal_claim(server *sv, const journal_meta *meta, const char **code, char *msg,
                  size_t msglen)
{
    char key[64];
    snprintf(key, sizeof key, "journal:%s", meta->id);
    int rc = store_mark_once(sv->st, key, sv->cfg.journal_ttl_ms);
    if (rc == STORE_OK)
        return 0;
    *code = rc == STORE_EXISTS ? "journal_used" : "store_unavailable";
    snprintf(msg, msglen, "%s", rc == STORE_EXISTS ? "this journal was resumed before"
                                                   : store_errmsg());
    return -1;
}
