/*
 * What net.c and tls.c share: the connection and the sandbox's network.
 */
#ifndef ERYX_NET_INTERNAL_H
#define ERYX_NET_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/internal.h"
#include "net/net.h"
#include "net/policy.h"
#include "net/secrets.h"

/* Errors that are not errnos, for the guest's exception types. */
#define EAI_NONAME_ERRNO 100001 /* socket.gaierror */
#define ERYX__ETLS 100002       /* ssl.SSLError */
#define ERYX__ETLS_VERIFY 100003 /* ssl.SSLCertVerificationError */

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

/* What a network config says, shared by a sandbox and its forks. */
typedef struct eryx__net_conf {
    atomic_int refs;
    eryx__policy policy;
    eryx__secret *secrets;
    size_t n_secrets;
    uint32_t max_connections;
    uint64_t connect_timeout_ns, idle_timeout_ns; /* UINT64_MAX = none */
    uint64_t max_sent, max_received;
    char **ca_files;            /* copies */
    size_t n_ca_files;
    char *ca_pem;
    SSL_CTX *ctx;               /* made on first use, under G.mu */
} eryx__net_conf;

enum eryx__op_kind { ERYX__OP_NONE, ERYX__OP_CONNECT, ERYX__OP_SEND, ERYX__OP_RECV,
                     ERYX__OP_TLS };

/* A guest's operation in progress on a connection: the reference to its
 * call is the network layer's. */
typedef struct eryx__op {
    struct eryx_call *call;     /* NULL: none */
    enum eryx__op_kind kind;
    size_t max;                 /* recv: most bytes; send: bytes taken */
} eryx__op;

typedef struct eryx__conn {
    struct eryx__conn *next;    /* the network's list */
    struct eryx__net *net;
    uint64_t id;                /* the guest's name for it */
    uint32_t slot;              /* in G.slots: the poller's name for it */
    int fd;
    int registered;             /* with epoll */
    int local_wait;             /* a blocking run's thread polls it, not
                                   the poller (eryx__net_pollfds) */
    int poll_in;                /* a waiting poll asks whether it is readable */
    int poll_out;               /* ...or writable */
    int connecting, eof;
    int shut_wr;                /* the guest shut its writing side: no more
                                   sends; the FIN goes once out is empty */
    int fin_sent;               /* ...and it went (after TLS's close_notify) */
    int err;                    /* a failure every later operation gets */
    const char *err_why;        /* ...and its message, when strerror's and
                                   TLS's are not it (a static string) */
    eryx__addr addr;
    uint16_t port;
    char host[256];             /* the name it was resolved from, or "" */
    char tls_name[256];         /* the name TLS verified, or "" */
    eryx__op rd, wr;            /* the reading and the writing operation */
    uint8_t *in;                /* plain bytes for the guest */
    size_t in_len, in_cap;
    size_t in_clean;            /* in[0..in_clean) may go to the guest */
    uint64_t hold_until;        /* a held-back tail goes by then, unless
                                   more bytes arrive first */
    int hold_release;           /* ...it is due, at the next read */
    uint8_t *out;               /* bytes for the wire */
    size_t out_len, out_off, out_cap;
    int out_secret;             /* out holds a secret's value (plain TCP) */
    uint8_t *sent_tail;         /* the end of what the guest sent, as long
                                   as the longest placeholder less one */
    size_t sent_tail_len;
    SSL *ssl;                   /* TLS over memory BIOs (tls.c) */
    BIO *rbio, *wbio;
    int tls_handshaking;
    int tls_notified;           /* close_notify is queued (shut_wr) */
    int tls_inband;             /* asked for in the byte stream (the guest's
                                   ssl.SSLObject): the outcome is the first
                                   line it reads */
    char tls_nonce[40];
    char tls_err[300];
} eryx__conn;

#define RESOLVE_CACHE_N 64

typedef struct eryx__resolved {
    eryx__addr addr;
    uint16_t port;
    char name[256];
} eryx__resolved;

struct eryx__net {
    eryx__net_conf *conf;
    int refs;                   /* the sandbox's and each lookup's; G.mu */
    int dead;                   /* the sandbox is gone */
    eryx__conn *conns;
    uint32_t n_conns, n_lookups;
    uint64_t next_id;
    uint64_t sent, received;    /* this run */
    eryx__resolved resolved[RESOLVE_CACHE_N]; /* which name gave which address */
    size_t n_resolved;
    eryx__op poll;              /* the guest's select/poll waiting on its
                                   sockets (one at most: it is synchronous) */
    json_t *poll_entries;       /* ...its [[conn, events], ...] */
};

typedef struct eryx__net_global {
    pthread_mutex_t mu;
    int started;
    int epfd, wakefd;
    eryx__conn **slots;
    uint32_t *gens;
    uint32_t n_slots;
} eryx__net_global;

extern eryx__net_global eryx__net_g;

/* net.c, for tls.c. list is a done_list: completions delivered later. */
void eryx__op_ok(void *list, eryx__op *op, json_t *value);
void eryx__op_fail(void *list, eryx__op *op, int err, const char *msg);
void eryx__op_drop(eryx__op *op);
void eryx__conn_progress(eryx__conn *c, void *list);
int eryx__conn_queue_plain(eryx__conn *c, const uint8_t *p, size_t n);
int eryx__conn_take_plain(eryx__conn *c, const uint8_t *p, size_t n);
void eryx__net_unref_locked(eryx__net *net);
const char *eryx__net_errname(int err);

/* tls.c */
int eryx__tls_conf_init(eryx__net_conf *c, const eryx_net_config *cfg, char *err,
                        size_t errsize);
void eryx__tls_conf_clear(eryx__net_conf *c);
void eryx__tls_start(eryx__conn *c, eryx__op *op, json_t *args, void *list);
/* TLS asked for in band: a send that begins with ERYX__TLS_REQUEST and a
 * JSON line {"server_hostname", "alpn", "nonce"}; the outcome reaches the
 * guest as the first line it reads, ERYX__TLS_STATUS and a JSON line
 * {"nonce", "status": "ok", "info"} or {"nonce", "status": "fail", "kind",
 * "message"} (guest/python/_eryx/ssl.py, SSLObject). 0 or an errno. */
int eryx__tls_start_inband(eryx__conn *c, const uint8_t *line, size_t len);
#define ERYX__TLS_REQUEST "\0ERYX-STARTTLS "
#define ERYX__TLS_STATUS "\0ERYX-TLS "
/* Feeds wire bytes (NULL, 0: the peer closed). 0 or an error. */
int eryx__tls_feed(eryx__conn *c, const uint8_t *p, size_t n);
int eryx__tls_write(eryx__conn *c, const uint8_t *p, size_t n);
/* Queues close_notify after the handshake. 0 or an error. */
int eryx__tls_close_notify(eryx__conn *c);
/* Drives the handshake and moves bytes between OpenSSL and the buffers. */
int eryx__tls_progress(eryx__conn *c, void *list);
const char *eryx__tls_errmsg(eryx__conn *c, int err);
void eryx__tls_conn_free(eryx__conn *c);

#endif
