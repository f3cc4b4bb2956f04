/*
 * Callback journals (eryx_journal): the code of an execution and its calls
 * with their outcomes, in the order the guest issued them; their bytes
 * (journal.c). exec.c records into one and replays from it, under its hub's
 * mutex: replies record their outcome on the replying thread.
 */
#ifndef ERYX_CORE_JOURNAL_H
#define ERYX_CORE_JOURNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "eryx.h"
#include "core/call_record.h"

typedef struct json_t json_t;

/* Code, and the entries' names, arguments, replies and failure messages,
 * of one journal together, at most. */
#define ERYX__JOURNAL_MAX_BYTES (256u << 20)
/* A call name longer than any callback's (200) is never journaled. */
#define ERYX__JOURNAL_MAX_NAME 255u
/* Entries a loaded journal may hold (sandboxes bound theirs further by
 * max_callbacks). */
#define ERYX__JOURNAL_MAX_ENTRIES (1u << 20)
/* Network operations a journal records (they are not callbacks: the
 * sandbox's max_callbacks does not bound them). */
#define ERYX__JOURNAL_MAX_NET (1u << 19)
/* A failure's message: eryx_call_fail keeps 4095 bytes of one. */
#define ERYX__JOURNAL_MAX_MESSAGE 4095u
/* Random bytes and realtime clock reads a journal records; past these the
 * record is cut (a replay then draws from the host). */
#define ERYX__JOURNAL_MAX_RANDOM (1u << 20)
#define ERYX__JOURNAL_MAX_CLOCK (1u << 17)

enum eryx__jentry_state { ERYX__JE_PENDING = 0, ERYX__JE_OK = 1, ERYX__JE_ERROR = 2 };

typedef struct eryx__jentry {
    char *name;                 /* NUL-terminated */
    char *args;                 /* the guest's JSON text, NUL-terminated */
    size_t args_len;
    enum eryx__jentry_state state;
    char *value;                /* ERYX__JE_OK: the reply's JSON text */
    size_t value_len;
    int kind;                   /* ERYX__JE_ERROR: an eryx_call_error, or
                                   ERYX__JKIND_NET + a network kind's number */
    char *message;              /* ERYX__JE_ERROR, NUL-terminated */
    uint32_t batch;             /* the guest's reply that delivered the
                                   outcome: 1 = the first reply that held
                                   journaled outcomes, ...; 0 = not delivered
                                   (pending, or answered too late) */
} eryx__jentry;

struct eryx_journal {
    int has_code;               /* code, mode and filename are set */
    char *code;
    size_t code_len;
    int mode;                   /* eryx_run_mode */
    char *filename;             /* NULL: the default */
    eryx__jentry *e;
    size_t n, cap;
    size_t n_net;               /* entries that are network operations */
    uint64_t bytes;             /* code + arguments + replies (the bound) */
    /* What the guest drew from the host, in order (docs/journal.md,
     * "Randomness and the wall clock"); touched only by the thread running
     * the guest, and saved only once no execution records into it. */
    int reseeded;               /* the recorded run began by reseeding random */
    uint8_t *random;            /* random_get's bytes */
    size_t random_len, random_cap;
    int random_cut;             /* draws past random_len were not recorded */
    uint64_t *clock;            /* realtime clock reads, ns */
    size_t n_clock, clock_cap;
    int clock_cut;              /* reads past n_clock were not recorded */
    atomic_int busy;            /* an execution records into it */
};

void eryx__journal_free(eryx_journal *j);
/* ERYX_OK, ERYX_NOMEM; the bytes are malloc'd. */
int eryx__journal_save(const eryx_journal *j, void **data, size_t *len);
/* ERYX_OK, ERYX_NOMEM, or ERYX_INVALID with the thread's message. */
int eryx__journal_load(const void *data, size_t len, eryx_journal **out);
size_t eryx__journal_pending(const eryx_journal *j);

/* Sets the code, mode and filename of a journal without entries (code
 * NULL: none): ERYX_OK, ERYX_NOMEM or ERYX_INVALID (over the bound). */
int eryx__journal_set_code(eryx_journal *j, const char *code, size_t len, int mode,
                           const char *filename);
/* Appends a pending entry: 0, -1 out of memory, -2 over the bound. */
int eryx__journal_append(eryx_journal *j, const char *name, const char *args);
/* Entry i's outcome: a reply (text taken on success) or a failure. 0, or -1
 * when the reply does not fit in the bound or memory (text stays the
 * caller's; record a failure instead). */
int eryx__journal_answer_ok(eryx_journal *j, size_t i, char *text, size_t len);
void eryx__journal_answer_error(eryx_journal *j, size_t i, int kind, const char *message);
/* The guest's draws in an execution journaled into j: what the record holds
 * at *pos (the execution's position, advanced), then the host's, appended
 * to the record while it is under its bound. random: 0, or -1 when the
 * host has no randomness to give. */
int eryx__journal_random(eryx_journal *j, size_t *pos, uint8_t *p, size_t len);
uint64_t eryx__journal_realtime(eryx_journal *j, size_t *pos, uint64_t host_ns);

/* The draw records' extent, to put them back as they were when a replay
 * diverges: what it drew past them belongs to another path. */
typedef struct eryx__jdraws_mark {
    size_t random_len, n_clock;
    int random_cut, clock_cut;
} eryx__jdraws_mark;
void eryx__journal_mark_draws(const eryx_journal *j, eryx__jdraws_mark *m);
void eryx__journal_reset_draws(eryx_journal *j, const eryx__jdraws_mark *m);

/* Whether a call's name is a network operation's ("@net."). */
int eryx__journal_is_net(const char *name);

/* Answered entry i's recorded outcome as the result the guest reads for
 * call id ({"id", "ok", "value" | "kind", "message"}): its text, or a
 * failure's tree; neither when out of memory, or for a value the strict
 * reader does not take: then *tree gets the bytes its tree takes to read
 * (eryx__json_tree_bytes, never 0), and eryx__journal_result_tree builds
 * it (NULL when out of memory) once the caller counted them. */
eryx__record eryx__journal_result(const eryx_journal *j, size_t i, uint64_t id, size_t *tree);
json_t *eryx__journal_result_tree(const eryx_journal *j, size_t i, uint64_t id);
/* The kind of a failure as a journal stores it: an eryx_call_error, or a
 * network operation's kind ("net:ECONNREFUSED", ...) as ERYX__JKIND_NET
 * plus its number (net.h); "failed" for unknown ones. And back. */
#define ERYX__JKIND_NET 16
int eryx__call_error_kind(const char *kind);
const char *eryx__call_error_name(int kind);

#endif
