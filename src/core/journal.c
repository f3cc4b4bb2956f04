/*
 * Callback journals: the entries exec.c records, and their bytes.
 *
 * The format ("ERYXJNL1", little endian; docs/journal.md):
 *   header (40 bytes): magic[8], checksum u64 (XXH3-64 of every byte after
 *     it), mode u32, n_entries u32, filename_len u32 (NO_FILENAME: none),
 *     flags u32 (HAS_CODE, RESEEDED, RANDOM_CUT, CLOCK_CUT, DRAWS, NET),
 *     code_len u64
 *   filename, code
 *   n_entries entries: state u8, kind u8, zero u16, name_len u32,
 *     args_len u32, out_len u32 (the reply or the message), batch u32, then
 *     the bytes
 *   with DRAWS (only when something was drawn): random_len u32, the random
 *     bytes, n_clock u32, the realtime clock reads (u64 each)
 * The flags after HAS_CODE came later without a new version: every journal
 * of the first spelling is one of this, and a build that predates them
 * refuses their journals as having unknown flags.
 * The loader reads untrusted bytes: every length is checked against what
 * is left before it is used, the entry count against the bytes an entry
 * needs at least before anything is allocated, and every text against what
 * the recorder could have written (a reply is JSON, a message UTF-8).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "config.h"
#include "core/call_record.h"
#include "core/internal.h"
#include "core/journal.h"
#include "core/json_wide.h"
#include "le.h"
#include "net/net.h"

#define MAGIC "ERYXJNL1"
#define HEADER_SIZE 40u
#define ENTRY_HEADER 20u
#define HAS_CODE 1u
#define RESEEDED 2u       /* the recorded run began by reseeding random */
#define RANDOM_CUT 4u     /* the random record stopped at its bound */
#define CLOCK_CUT 8u      /* the clock record stopped at its bound */
#define DRAWS 16u         /* the random and clock records follow the entries */
#define NET 32u           /* some entries are network operations */
#define ALL_FLAGS 63u
#define NO_FILENAME UINT32_MAX
#define MAX_FILENAME 4096u
/* A reply eryx_call_reply accepts (exec.c): 64 MiB of JSON. */
#define MAX_VALUE (64u << 20)

static const char *const kind_names[] = {"failed", "invalid_arguments", "timeout"};

int eryx__call_error_kind(const char *kind)
{
    for (int i = 0; i <= ERYX_CALL_TIMEOUT; i++)
        if (kind && strcmp(kind, kind_names[i]) == 0)
            return i;
    int net = eryx__net_kind_code(kind);
    return net >= 0 ? ERYX__JKIND_NET + net : ERYX_CALL_FAILED;
}

const char *eryx__call_error_name(int kind)
{
    const char *net = eryx__net_kind_name(kind - ERYX__JKIND_NET);
    if (net)
        return net;
    return kind >= 0 && kind <= ERYX_CALL_TIMEOUT ? kind_names[kind] : kind_names[0];
}

int eryx__journal_is_net(const char *name)
{
    return strncmp(name, ERYX__NET_PREFIX, strlen(ERYX__NET_PREFIX)) == 0;
}

static void entry_clear(eryx__jentry *e)
{
    free(e->name);
    free(e->args);
    free(e->value);
    free(e->message);
}

void eryx__journal_free(eryx_journal *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++)
        entry_clear(&j->e[i]);
    free(j->e);
    free(j->code);
    free(j->filename);
    free(j->random);
    free(j->clock);
    free(j);
}

static void drop_draws(eryx_journal *j)
{
    free(j->random);
    free(j->clock);
    j->random = NULL;
    j->clock = NULL;
    j->random_len = j->random_cap = j->n_clock = j->clock_cap = 0;
    j->reseeded = j->random_cut = j->clock_cut = 0;
}

size_t eryx__journal_pending(const eryx_journal *j)
{
    size_t n = 0;
    for (size_t i = 0; i < j->n; i++)
        n += j->e[i].state == ERYX__JE_PENDING;
    return n;
}

/* ---- recording (exec.c, under its hub's mutex) ----------------------------- */

int eryx__journal_set_code(eryx_journal *j, const char *code, size_t len, int mode,
                           const char *filename)
{
    free(j->code);
    free(j->filename);
    j->code = j->filename = NULL;
    j->code_len = 0;
    j->has_code = j->mode = 0;
    j->bytes = 0;
    drop_draws(j);
    if (!code)
        return ERYX_OK;
    if (len > ERYX__JOURNAL_MAX_BYTES)
        return ERYX_INVALID;
    char *c = malloc(len ? len : 1);
    char *f = filename ? strdup(filename) : NULL;
    if (!c || (filename && !f)) {
        free(c);
        free(f);
        return ERYX_NOMEM;
    }
    memcpy(c, code, len);
    j->code = c;
    j->code_len = len;
    j->filename = f;
    j->mode = mode;
    j->has_code = 1;
    j->bytes = len;
    return ERYX_OK;
}

int eryx__journal_append(eryx_journal *j, const char *name, const char *args)
{
    size_t name_len = strlen(name), args_len = strlen(args);
    if (name_len > ERYX__JOURNAL_MAX_NAME ||
        name_len + args_len > ERYX__JOURNAL_MAX_BYTES - j->bytes)
        return -2;
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 16;
        eryx__jentry *bigger = realloc(j->e, cap * sizeof *bigger);
        if (!bigger)
            return -1;
        j->e = bigger;
        j->cap = cap;
    }
    eryx__jentry *e = &j->e[j->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->args = strdup(args);
    if (!e->name || !e->args) {
        entry_clear(e);
        return -1;
    }
    e->args_len = args_len;
    j->bytes += name_len + args_len;
    j->n_net += eryx__journal_is_net(name);
    j->n++;
    return 0;
}

int eryx__journal_answer_ok(eryx_journal *j, size_t i, char *text, size_t len)
{
    eryx__jentry *e = &j->e[i];
    if (e->state != ERYX__JE_PENDING || len > ERYX__JOURNAL_MAX_BYTES - j->bytes)
        return -1;
    e->state = ERYX__JE_OK;
    e->value = text;
    e->value_len = len;
    j->bytes += len;
    return 0;
}

void eryx__journal_answer_error(eryx_journal *j, size_t i, int kind, const char *message)
{
    eryx__jentry *e = &j->e[i];
    if (e->state != ERYX__JE_PENDING)
        return;
    /* The message counts in the bound as a reply does; one that does not
     * fit in what is left is cut, between characters (the loader wants
     * UTF-8). The guest saw it whole: a replay that depends on the part
     * cut off diverges, which is detected. */
    const char *text = message ? message : "";
    size_t len = strnlen(text, ERYX__JOURNAL_MAX_MESSAGE), room = ERYX__JOURNAL_MAX_BYTES - j->bytes;
    if (len > room)
        len = room;
    while (len > 0 && text[len] && ((uint8_t)text[len] & 0xC0) == 0x80)
        len--;
    /* Out of memory, the entry stays pending: a replay asks the embedder
     * again instead of inventing an outcome. */
    char *m = strndup(text, len);
    if (!m)
        return;
    e->state = ERYX__JE_ERROR;
    e->kind = kind;
    e->message = m;
    j->bytes += len;
}

/* ---- the guest's draws (the thread running the guest) ---------------------- */

/* Makes room for n more elements of size el in *buf (cap elements now);
 * 0, or -1 out of memory. */
static int grow(void **buf, size_t *cap, size_t len, size_t n, size_t el)
{
    if (len + n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < len + n)
        c *= 2;
    void *bigger = realloc(*buf, c * el);
    if (!bigger)
        return -1;
    *buf = bigger;
    *cap = c;
    return 0;
}

int eryx__journal_random(eryx_journal *j, size_t *pos, uint8_t *p, size_t len)
{
    size_t have = *pos < j->random_len ? j->random_len - *pos : 0;
    size_t n = have < len ? have : len;
    if (n)
        memcpy(p, j->random + *pos, n);
    size_t fresh = len - n;
    if (fresh && eryx__wasi_host_random(p + n, fresh) != 0)
        return -1;
    /* Past the record, the host's bytes extend it, unless it was cut (then
     * the positions after it are not the record's any more). Out of
     * memory or over the bound the record is cut: a replay draws from the
     * host there, and diverges if the code's calls depend on it. */
    if (fresh && !j->random_cut) {
        if (j->random_len + fresh > ERYX__JOURNAL_MAX_RANDOM ||
            grow((void **)&j->random, &j->random_cap, j->random_len, fresh, 1) != 0) {
            j->random_cut = 1;
        } else {
            memcpy(j->random + j->random_len, p + n, fresh);
            j->random_len += fresh;
        }
    }
    *pos += len;
    return 0;
}

uint64_t eryx__journal_realtime(eryx_journal *j, size_t *pos, uint64_t host_ns)
{
    size_t i = (*pos)++;
    if (i < j->n_clock)
        return j->clock[i];
    if (!j->clock_cut) {
        if (j->n_clock >= ERYX__JOURNAL_MAX_CLOCK ||
            grow((void **)&j->clock, &j->clock_cap, j->n_clock, 1, sizeof *j->clock) != 0)
            j->clock_cut = 1;
        else
            j->clock[j->n_clock++] = host_ns;
    }
    return host_ns;
}

void eryx__journal_mark_draws(const eryx_journal *j, eryx__jdraws_mark *m)
{
    m->random_len = j->random_len;
    m->n_clock = j->n_clock;
    m->random_cut = j->random_cut;
    m->clock_cut = j->clock_cut;
}

void eryx__journal_reset_draws(eryx_journal *j, const eryx__jdraws_mark *m)
{
    j->random_len = m->random_len;
    j->n_clock = m->n_clock;
    j->random_cut = m->random_cut;
    j->clock_cut = m->clock_cut;
}

eryx__record eryx__journal_result(const eryx_journal *j, size_t i, uint64_t id, size_t *tree)
{
    const eryx__jentry *e = &j->e[i];
    eryx__record r = {0};
    *tree = 0;
    if (e->state == ERYX__JE_ERROR) {
        r.tree = eryx__call_error_record(id, eryx__call_error_name(e->kind), e->message);
        return r;
    }
    /* As a live reply: copied as text when the strict reader takes it, a
     * tree only for what it does not (a reply of [{},{},...] recorded in a
     * client's journal made a 1 GB tree at every replay), built by
     * eryx__journal_result_tree once the caller counted it. The loader
     * checked that it fits ERYX_MAX_HELD_TREES. */
    r.text = eryx__call_ok_text(id, e->value, e->value_len, &r.len);
    if (!r.text) {
        size_t t = eryx__json_tree_bytes(e->value, e->value_len);
        *tree = t ? t : 1;
    }
    return r;
}

json_t *eryx__journal_result_tree(const eryx_journal *j, size_t i, uint64_t id)
{
    const eryx__jentry *e = &j->e[i];
    return eryx__call_ok_record(id, e->value, e->value_len);
}

/* ---- bytes --------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)eryx__le32(p) | (uint64_t)eryx__le32(p + 4) << 32;
}

static const char *entry_out(const eryx__jentry *e, size_t *len)
{
    *len = e->state == ERYX__JE_OK ? e->value_len
           : e->state == ERYX__JE_ERROR ? strlen(e->message) : 0;
    return e->state == ERYX__JE_OK ? e->value : e->message;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

int eryx__journal_save(const eryx_journal *j, void **data, size_t *len)
{
    size_t flen = j->filename ? strlen(j->filename) : 0, total = HEADER_SIZE + flen + j->code_len;
    for (size_t i = 0; i < j->n; i++) {
        size_t out;
        entry_out(&j->e[i], &out);
        total += ENTRY_HEADER + strlen(j->e[i].name) + j->e[i].args_len + out;
    }
    int draws = j->random_len || j->n_clock;
    if (draws)
        total += 8 + j->random_len + 8 * j->n_clock;
    uint8_t *buf = malloc(total), *p = buf;
    if (!buf)
        return ERYX_NOMEM;
    memcpy(p, MAGIC, 8);
    put32(p + 16, (uint32_t)j->mode);
    put32(p + 20, (uint32_t)j->n);
    put32(p + 24, j->filename ? (uint32_t)flen : NO_FILENAME);
    put32(p + 28, (j->has_code ? HAS_CODE : 0) | (j->reseeded ? RESEEDED : 0) |
                      (j->random_cut ? RANDOM_CUT : 0) | (j->clock_cut ? CLOCK_CUT : 0) |
                      (draws ? DRAWS : 0) | (j->n_net ? NET : 0));
    put64(p + 32, j->code_len);
    p = put_bytes(p + HEADER_SIZE, j->filename, flen);
    p = put_bytes(p, j->code, j->code_len);
    for (size_t i = 0; i < j->n; i++) {
        const eryx__jentry *e = &j->e[i];
        size_t nlen = strlen(e->name), out;
        const char *o = entry_out(e, &out);
        p[0] = (uint8_t)e->state;
        p[1] = (uint8_t)(e->state == ERYX__JE_ERROR ? e->kind : 0);
        p[2] = p[3] = 0;
        put32(p + 4, (uint32_t)nlen);
        put32(p + 8, (uint32_t)e->args_len);
        put32(p + 12, (uint32_t)out);
        put32(p + 16, e->batch);
        p = put_bytes(p + ENTRY_HEADER, e->name, nlen);
        p = put_bytes(p, e->args, e->args_len);
        p = put_bytes(p, o, out);
    }
    if (draws) {
        put32(p, (uint32_t)j->random_len);
        p = put_bytes(p + 4, j->random, j->random_len);
        put32(p, (uint32_t)j->n_clock);
        p += 4;
        for (size_t i = 0; i < j->n_clock; i++, p += 8)
            put64(p, j->clock[i]);
    }
    put64(buf + 8, XXH3_64bits(buf + 16, total - 16));
    *data = buf;
    *len = total;
    return ERYX_OK;
}

/* A cursor over the bytes being loaded. */
typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

/* A NUL-terminated copy of the next n bytes, which must hold no NUL (the
 * entries compare and print them as C strings). NULL: *why says why. */
static char *take_text(reader *r, size_t n, const char **why)
{
    if (n > r->left) {
        *why = "it is truncated";
        return NULL;
    }
    if (memchr(r->p, '\0', n)) {
        *why = "a text holds a NUL byte";
        return NULL;
    }
    char *s = malloc(n + 1);
    if (!s) {
        *why = "out of memory";
        return NULL;
    }
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    r->left -= n;
    return s;
}

/* The outcome of an entry being loaded: a reply must read as JSON (a
 * replay hands it to the guest), a message must be UTF-8. A reply is read
 * as a live one is: by the strict reader, without a tree, and only what it
 * does not take with jansson, whose tree must then fit
 * ERYX_MAX_HELD_TREES (a journal is bytes a client may have made: 15 MB of
 * [{},{},...] built 1.2 GB at every load). */
static const char *check_outcome(const eryx__jentry *e)
{
    if (e->state == ERYX__JE_ERROR) {
        json_t *v = json_string(e->message);
        json_decref(v);
        return v ? NULL : "a message is not UTF-8";
    }
    if (e->state != ERYX__JE_OK)
        return NULL;
    size_t n;
    char *text = eryx__call_ok_text(0, e->value, e->value_len, &n);
    if (text) {
        free(text);
        return NULL;
    }
    if (!eryx__json_tree_fits(e->value, e->value_len, ERYX_MAX_HELD_TREES, NULL))
        return "a reply is too wide to read";
    int inexact;
    json_t *v = eryx__json_read(e->value, e->value_len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                                &inexact);
    json_decref(v);
    return v ? NULL : "a reply is not JSON";
}

/* One entry; NULL or why it is refused. */
static const char *load_entry(reader *r, eryx_journal *j, eryx__jentry *e)
{
    const char *why = NULL;
    if (r->left < ENTRY_HEADER)
        return "it is truncated";
    const uint8_t *h = r->p;
    uint32_t nlen = eryx__le32(h + 4), alen = eryx__le32(h + 8), olen = eryx__le32(h + 12);
    if (h[0] > ERYX__JE_ERROR || (h[0] != ERYX__JE_ERROR && h[1]) || h[2] || h[3])
        return "an entry has an unknown state or kind";
    e->state = h[0];
    e->kind = h[1];
    e->batch = eryx__le32(h + 16);
    /* A batch is one of the guest's replies, which delivered at least one
     * entry: there are no more of them than entries. A crafted order the
     * code cannot follow ends its replay as diverged (exec.c). */
    if (e->batch > j->cap || (e->state == ERYX__JE_PENDING && e->batch))
        return "an entry's delivery batch is out of bounds";
    if (nlen == 0 || nlen > ERYX__JOURNAL_MAX_NAME || alen > ERYX_MAX_CALL_ARGS ||
        (e->state == ERYX__JE_PENDING && olen) ||
        (e->state == ERYX__JE_OK && olen > MAX_VALUE) ||
        (e->state == ERYX__JE_ERROR && olen > ERYX__JOURNAL_MAX_MESSAGE))
        return "an entry's sizes are out of bounds";
    r->p += ENTRY_HEADER;
    r->left -= ENTRY_HEADER;
    if (!(e->name = take_text(r, nlen, &why)) || !(e->args = take_text(r, alen, &why)))
        return why;
    e->args_len = alen;
    if (e->state == ERYX__JE_OK && !(e->value = take_text(r, olen, &why)))
        return why;
    if (e->state == ERYX__JE_ERROR && !(e->message = take_text(r, olen, &why)))
        return why;
    int net = eryx__journal_is_net(e->name);
    j->n_net += net;
    /* A network kind is only a network operation's outcome. */
    if (e->state == ERYX__JE_ERROR && e->kind > ERYX_CALL_TIMEOUT &&
        (!net || !eryx__net_kind_name(e->kind - ERYX__JKIND_NET)))
        return "an entry has an unknown state or kind";
    e->value_len = e->state == ERYX__JE_OK ? olen : 0;
    j->bytes += (uint64_t)nlen + alen + olen; /* olen: the reply or the message */
    if (j->bytes > ERYX__JOURNAL_MAX_BYTES)
        return "its code and entries are over 256 MiB";
    return check_outcome(e);
}

/* The header's fields; NULL or why they are refused. */
static const char *load_header(reader *r, eryx_journal *j, uint32_t *n, uint32_t *flags_out)
{
    const uint8_t *h = r->p;
    uint32_t flen = eryx__le32(h + 24), flags = eryx__le32(h + 28);
    uint64_t code_len = get64(h + 32);
    const char *why = NULL;
    j->mode = (int)eryx__le32(h + 16);
    *n = eryx__le32(h + 20);
    r->p += HEADER_SIZE;
    r->left -= HEADER_SIZE;
    *flags_out = flags;
    if (flags > ALL_FLAGS || j->mode < ERYX_RUN_CODE || j->mode > ERYX_RUN_INTERACTIVE)
        return "its header has unknown flags or an unknown run mode";
    if (!(flags & HAS_CODE) && (j->mode || *n || flen != NO_FILENAME || code_len || flags))
        return "it records calls or draws but no code";
    if (flen != NO_FILENAME && (flen == 0 || flen > MAX_FILENAME))
        return "its filename is empty or too long";
    if (code_len > ERYX__JOURNAL_MAX_BYTES)
        return "its code is over 256 MiB";
    /* Before anything is allocated for them: every entry takes bytes. */
    if (*n > ERYX__JOURNAL_MAX_ENTRIES || *n > r->left / ENTRY_HEADER)
        return "its entry count is out of bounds";
    if (flen != NO_FILENAME && !(j->filename = take_text(r, flen, &why)))
        return why;
    if (code_len > r->left)
        return "it is truncated";
    j->has_code = (int)(flags & HAS_CODE);
    j->code = malloc(code_len ? (size_t)code_len : 1);
    if (!j->code)
        return "out of memory";
    memcpy(j->code, r->p, (size_t)code_len);
    j->code_len = (size_t)code_len;
    j->bytes = code_len;
    r->p += code_len;
    r->left -= (size_t)code_len;
    return NULL;
}

/* The random and clock records after the entries (flags & DRAWS); NULL or
 * why they are refused. */
static const char *load_draws(reader *r, eryx_journal *j, uint32_t flags)
{
    j->reseeded = !!(flags & RESEEDED);
    j->random_cut = !!(flags & RANDOM_CUT);
    j->clock_cut = !!(flags & CLOCK_CUT);
    if (!(flags & DRAWS))
        return NULL;
    if (r->left < 4)
        return "it is truncated";
    uint32_t nr = eryx__le32(r->p);
    if (nr > ERYX__JOURNAL_MAX_RANDOM)
        return "its random record is over its bound";
    if ((size_t)nr + 4 > r->left - 4)
        return "it is truncated";
    uint32_t nc = eryx__le32(r->p + 4 + nr);
    if (nc > ERYX__JOURNAL_MAX_CLOCK)
        return "its clock record is over its bound";
    if (nr == 0 && nc == 0)
        return "it has empty draw records"; /* saved without DRAWS */
    if ((uint64_t)nc * 8 != r->left - 8 - nr)
        return "its clock record does not fill the rest";
    if ((nr && !(j->random = malloc(nr))) || (nc && !(j->clock = malloc((size_t)nc * 8))))
        return "out of memory";
    if (nr)
        memcpy(j->random, r->p + 4, nr);
    for (uint32_t i = 0; i < nc; i++)
        j->clock[i] = get64(r->p + 8 + nr + 8 * (size_t)i);
    j->random_len = j->random_cap = nr;
    j->n_clock = j->clock_cap = nc;
    r->p += r->left;
    r->left = 0;
    return NULL;
}

/* Magic, version and checksum; NULL or why the bytes are refused. */
static const char *check_envelope(const uint8_t *p, size_t len)
{
    if (len < HEADER_SIZE || memcmp(p, MAGIC, 7) != 0)
        return len < HEADER_SIZE && len >= 7 && memcmp(p, MAGIC, 7) == 0
                   ? "it is truncated"
                   : "they are not an eryx journal";
    if (p[7] != MAGIC[7])
        return "they are a journal of another format version (this eryx reads " MAGIC ")";
    if (XXH3_64bits(p + 16, len - 16) != get64(p + 8))
        return "they are damaged or truncated (checksum mismatch)";
    return NULL;
}

int eryx__journal_load(const void *data, size_t len, eryx_journal **out)
{
    *out = NULL;
    const char *why = check_envelope(data, len);
    eryx_journal *j = why ? NULL : calloc(1, sizeof *j);
    reader r = {data, len};
    uint32_t n = 0, flags = 0;
    if (!why && !j)
        why = "out of memory";
    if (!why)
        why = load_header(&r, j, &n, &flags);
    if (!why && n && !(j->e = calloc(n, sizeof *j->e)))
        why = "out of memory";
    if (!why)
        j->cap = n; /* load_entry bounds the batches by it */
    for (uint32_t i = 0; !why && i < n; i++) {
        j->n = i + 1; /* what load_entry fills is freed with j */
        why = load_entry(&r, j, &j->e[i]);
    }
    if (!why && !!(flags & NET) != (j->n_net > 0))
        why = "its network flag does not match its entries";
    if (!why && j->n_net > ERYX__JOURNAL_MAX_NET)
        why = "it holds more network operations than a journal records";
    if (!why)
        why = load_draws(&r, j, flags);
    if (!why && r.left)
        why = "they have trailing bytes";
    if (why) {
        eryx__journal_free(j);
        eryx__set_errmsg(NULL, "journal bytes refused: %s", why);
        return strcmp(why, "out of memory") == 0 ? ERYX_NOMEM : ERYX_INVALID;
    }
    *out = j;
    return ERYX_OK;
}
