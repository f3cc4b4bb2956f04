/*
 * TLS for the guest's connections, terminated on the host with OpenSSL.
 *
 * OpenSSL works on memory BIOs: net.c moves the bytes between them and the
 * socket with send(MSG_NOSIGNAL), so a peer that closes never raises
 * SIGPIPE in the embedder's process. Verification is always on: the
 * chain against the system store plus the configured CAs, and the name
 * the guest gave (server_hostname) or the one it connected to. The guest's
 * ssl module cannot turn it off (CERT_NONE is accepted and changes
 * nothing: docs/networking.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "net/net_internal.h"
#include "net/ssl_lib.h"

/* The OpenSSL table in the functions that run only after the CA check or
 * eryx__tls_start has loaded it (ssl_lib.h). */
static const eryx__ssl_lib *loaded_lib(void)
{
    return eryx__ssl_load(NULL);
}

/* ---- the CA configuration --------------------------------------------------- */

/* Number of certificates in PEM text, or -1 if it holds something else. */
static int count_pem(BIO *b)
{
    const eryx__ssl_lib *L = loaded_lib();
    int n = 0;
    X509 *x;
    while ((x = L->PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        L->X509_free(x);
        n++;
    }
    L->ERR_clear_error();
    return n;
}

int eryx__tls_conf_init(eryx__net_conf *c, const eryx_net_config *cfg, char *err,
                        size_t errsize)
{
    if (!cfg->n_ca_files && !cfg->ca_pem)
        return 0; /* OpenSSL stays unloaded until a connection asks for TLS */
    const char *why = NULL;
    const eryx__ssl_lib *L = eryx__ssl_load(&why);
    if (!L) {
        snprintf(err, errsize, "%s", why);
        return -1;
    }
    if (cfg->n_ca_files && !(c->ca_files = calloc(cfg->n_ca_files, sizeof *c->ca_files))) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_ca_files; i++) {
        const char *path = cfg->ca_files[i];
        BIO *b = path ? L->BIO_new_file(path, "r") : NULL;
        int n = b ? count_pem(b) : -1;
        L->BIO_free(b);
        if (n <= 0) {
            /* A directory opens, and reads as no certificate at all. */
            struct stat st;
            int dir = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
            snprintf(err, errsize, "CA file %.200s: %s", path ? path : "(null)",
                     dir     ? "is a directory (a file of PEM certificates is wanted)"
                     : n < 0 ? "cannot be read"
                             : "holds no PEM certificate");
            return -1;
        }
        if (!(c->ca_files[i] = strdup(path))) {
            snprintf(err, errsize, "out of memory");
            return -1;
        }
        c->n_ca_files = i + 1;
    }
    if (cfg->ca_pem) {
        BIO *b = L->BIO_new_mem_buf(cfg->ca_pem, -1);
        int n = b ? count_pem(b) : -1;
        L->BIO_free(b);
        if (n <= 0) {
            snprintf(err, errsize, "ca_pem holds no PEM certificate");
            return -1;
        }
        if (!(c->ca_pem = strdup(cfg->ca_pem))) {
            snprintf(err, errsize, "out of memory");
            return -1;
        }
    }
    return 0;
}

void eryx__tls_conf_clear(eryx__net_conf *c)
{
    for (size_t i = 0; i < c->n_ca_files; i++)
        free(c->ca_files[i]);
    free(c->ca_files);
    free(c->ca_pem);
    if (c->ctx)
        loaded_lib()->SSL_CTX_free(c->ctx);
}

/* The context, made on first use: loading the system store costs
 * milliseconds, which a sandbox that never uses TLS should not pay. */
static SSL_CTX *conf_ctx(const eryx__ssl_lib *L, eryx__net_conf *c)
{
    if (c->ctx)
        return c->ctx;
    SSL_CTX *ctx = L->SSL_CTX_new(L->TLS_client_method());
    if (!ctx)
        return NULL;
    eryx__ssl_ctx_set_min_proto(L, ctx, TLS1_2_VERSION);
    L->SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = L->SSL_CTX_set_default_verify_paths(ctx);
    for (size_t i = 0; ok && i < c->n_ca_files; i++)
        ok = L->SSL_CTX_load_verify_locations(ctx, c->ca_files[i], NULL);
    if (ok && c->ca_pem) {
        BIO *b = L->BIO_new_mem_buf(c->ca_pem, -1);
        X509 *x;
        X509_STORE *store = L->SSL_CTX_get_cert_store(ctx);
        while (b && (x = L->PEM_read_bio_X509(b, NULL, NULL, NULL))) {
            L->X509_STORE_add_cert(store, x);
            L->X509_free(x);
        }
        L->BIO_free(b);
    }
    L->ERR_clear_error();
    if (!ok) {
        L->SSL_CTX_free(ctx);
        return NULL;
    }
    c->ctx = ctx;
    return ctx;
}

/* ---- the peer's certificate as Python's getpeercert() gives it ----------- */

static json_t *name_json(X509_NAME *name)
{
    const eryx__ssl_lib *L = loaded_lib();
    json_t *rdns = json_array();
    int n = L->X509_NAME_entry_count(name);
    for (int i = 0; i < n; i++) {
        X509_NAME_ENTRY *e = L->X509_NAME_get_entry(name, i);
        char key[80];
        L->OBJ_obj2txt(key, sizeof key, L->X509_NAME_ENTRY_get_object(e), 0);
        unsigned char *utf8 = NULL;
        int len = L->ASN1_STRING_to_UTF8(&utf8, L->X509_NAME_ENTRY_get_data(e));
        if (len >= 0) {
            json_t *v = json_stringn(len ? (const char *)utf8 : "", (size_t)len);
            if (v)
                json_array_append_new(rdns, json_pack("[[s, o]]", key, v));
        }
        eryx__ssl_free(L, utf8);
    }
    return rdns;
}

static json_t *time_json(const ASN1_TIME *t)
{
    const eryx__ssl_lib *L = loaded_lib();
    char buf[64] = "";
    BIO *b = L->BIO_new(L->BIO_s_mem());
    if (b && L->ASN1_TIME_print(b, t)) {
        int n = L->BIO_read(b, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    L->BIO_free(b);
    return json_string(buf);
}

static json_t *cert_json(X509 *x)
{
    const eryx__ssl_lib *L = loaded_lib();
    json_t *c = json_object();
    json_object_set_new(c, "subject", name_json(L->X509_get_subject_name(x)));
    json_object_set_new(c, "issuer", name_json(L->X509_get_issuer_name(x)));
    json_object_set_new(c, "version", json_integer(L->X509_get_version(x) + 1));
    json_object_set_new(c, "notBefore", time_json(L->X509_get0_notBefore(x)));
    json_object_set_new(c, "notAfter", time_json(L->X509_get0_notAfter(x)));
    BIGNUM *bn = L->ASN1_INTEGER_to_BN(L->X509_get0_serialNumber(x), NULL);
    char *hex = bn ? L->BN_bn2hex(bn) : NULL;
    json_object_set_new(c, "serialNumber", json_string(hex ? hex : ""));
    eryx__ssl_free(L, hex);
    L->BN_free(bn);
    GENERAL_NAMES *names = L->X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    json_t *san = json_array();
    for (int i = 0; names && i < L->OPENSSL_sk_num((const OPENSSL_STACK *)names); i++) {
        const GENERAL_NAME *g = L->OPENSSL_sk_value((const OPENSSL_STACK *)names, i);
        if (g->type == GEN_DNS) {
            const ASN1_IA5STRING *s = g->d.dNSName;
            json_t *v = json_stringn((const char *)L->ASN1_STRING_get0_data(s),
                                     (size_t)L->ASN1_STRING_length(s));
            if (v)
                json_array_append_new(san, json_pack("[s, o]", "DNS", v));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = g->d.iPAddress;
            eryx__addr a;
            memset(&a, 0, sizeof a);
            if (L->ASN1_STRING_length(s) == 4) {
                a.b[10] = a.b[11] = 0xff;
                memcpy(a.b + 12, L->ASN1_STRING_get0_data(s), 4);
            } else if (L->ASN1_STRING_length(s) == 16) {
                memcpy(a.b, L->ASN1_STRING_get0_data(s), 16);
            } else {
                continue;
            }
            char text[64];
            eryx__addr_format(&a, text, sizeof text);
            json_array_append_new(san, json_pack("[s, s]", "IP Address", text));
        }
    }
    L->GENERAL_NAMES_free(names);
    json_object_set_new(c, "subjectAltName", san);
    return c;
}

static json_t *der_b64(X509 *x)
{
    const eryx__ssl_lib *L = loaded_lib();
    unsigned char *der = NULL;
    int n = L->i2d_X509(x, &der);
    if (n <= 0)
        return json_null();
    int outn = 4 * ((n + 2) / 3);
    char *o = malloc((size_t)outn + 1);
    json_t *v = json_null();
    if (o && L->EVP_EncodeBlock((unsigned char *)o, der, n) == outn)
        v = json_stringn(o, (size_t)outn);
    free(o);
    eryx__ssl_free(L, der);
    return v;
}

static json_t *session_info(SSL *ssl)
{
    const eryx__ssl_lib *L = loaded_lib();
    const SSL_CIPHER *ciph = L->SSL_get_current_cipher(ssl);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    L->SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    json_t *info = json_pack("{s:s, s:[s, s, i]}", "version", L->SSL_get_version(ssl), "cipher",
                             ciph ? L->SSL_CIPHER_get_name(ciph) : "",
                             ciph ? L->SSL_CIPHER_get_version(ciph) : "",
                             ciph ? L->SSL_CIPHER_get_bits(ciph, NULL) : 0);
    if (!info)
        return NULL;
    json_object_set_new(info, "alpn", alpn_len ? json_stringn((const char *)alpn, alpn_len)
                                               : json_null());
    X509 *peer = L->SSL_get1_peer_certificate(ssl);
    if (peer) {
        json_object_set_new(info, "cert", cert_json(peer));
        json_object_set_new(info, "der", der_b64(peer));
        L->X509_free(peer);
    }
    return info;
}

/* ---- a connection's TLS ------------------------------------------------------ */

/* The ALPN protocols the guest offers, in wire format. */
static int set_alpn(SSL *ssl, json_t *list)
{
    const eryx__ssl_lib *L = loaded_lib();
    unsigned char wire[256];
    size_t n = 0, i;
    json_t *p;
    json_array_foreach(list, i, p) {
        const char *s = json_string_value(p);
        size_t len = s ? strlen(s) : 0;
        if (!len || len > 255 || n + 1 + len > sizeof wire)
            return -1;
        wire[n++] = (unsigned char)len;
        memcpy(wire + n, s, len);
        n += len;
    }
    return n && L->SSL_set_alpn_protos(ssl, wire, (unsigned)n) != 0 ? -1 : 0;
}

/* The handshake's outcome as the first line the guest reads, for TLS asked
 * in band (eryx__tls_start_inband). */
static int inband_status(eryx__conn *c, json_t *info, const char *kind, const char *msg)
{
    json_t *line = info ? json_pack("{s:s, s:s, s:o}", "nonce", c->tls_nonce, "status", "ok",
                                    "info", info)
                        : json_pack("{s:s, s:s, s:s, s:s}", "nonce", c->tls_nonce, "status",
                                    "fail", "kind", kind, "message", msg);
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (!text)
        return ENOMEM;
    static const char prefix[] = ERYX__TLS_STATUS;
    int rc = eryx__conn_take_plain(c, (const uint8_t *)prefix, sizeof prefix - 1) < 0 ||
                     eryx__conn_take_plain(c, (const uint8_t *)text, strlen(text)) < 0 ||
                     eryx__conn_take_plain(c, (const uint8_t *)"\n", 1) < 0
                 ? ENOMEM
                 : 0;
    /* The host's own line, nothing of the peer's: never held back (the
     * guest's TLS object waits for it before anything else). */
    c->in_clean = c->in_len;
    free(text);
    return rc;
}

/* A failed start. Asked by an operation, that operation fails with why.
 * Asked in band (op NULL: the guest's TLS object wrote a request on the
 * socket), there is no operation and no list: the connection keeps the
 * error and why, the send that carried the request fails with them, and so
 * does every later operation on the socket. */
static void start_failed(eryx__conn *c, eryx__op *op, void *list, int err, const char *why)
{
    if (op) {
        eryx__op_fail(list, op, err, why);
        return;
    }
    c->err = err;
    snprintf(c->tls_err, sizeof c->tls_err, "%s", why);
}

void eryx__tls_start(eryx__conn *c, eryx__op *op, json_t *args, void *list)
{
    const char *given = json_string_value(json_object_get(args, "server_hostname"));
    char name[256];
    int inband = op == NULL;
    if (c->ssl || c->connecting || (!inband && (c->rd.call || c->wr.call))) {
        start_failed(c, op, list, EINVAL, "TLS must start on a connected socket with no "
                                          "read or write in progress, once");
        return;
    }
    eryx__addr a;
    int is_ip = 0;
    if (given && *given) {
        is_ip = eryx__addr_parse(given, &a);
        if (!is_ip && eryx__host_normalise(given, name, sizeof name) < 0) {
            start_failed(c, op, list, EINVAL, "server_hostname is not a valid ASCII host name");
            return;
        }
        if (is_ip)
            eryx__addr_format(&a, name, sizeof name);
        /* The name decides which site behind a shared address answers
         * (SNI; HTTP's Host after it): the policy must allow it here too,
         * or a rule for one name would open every site of its CDN. */
        char why[sizeof c->tls_err];
        if (!is_ip && !eryx__policy_check(&c->net->conf->policy, name, &c->addr, c->port, why,
                                          sizeof why)) {
            start_failed(c, op, list, EACCES, why);
            return;
        }
    } else if (c->host[0]) {
        snprintf(name, sizeof name, "%s", c->host);
    } else {
        is_ip = 1;
        eryx__addr_format(&c->addr, name, sizeof name);
    }
    const char *why = NULL;
    const eryx__ssl_lib *L = eryx__ssl_load(&why);
    if (!L) {
        start_failed(c, op, list, ERYX__ETLS, why);
        return;
    }
    SSL_CTX *ctx = conf_ctx(L, c->net->conf);
    SSL *ssl = ctx ? L->SSL_new(ctx) : NULL;
    BIO *rb = L->BIO_new(L->BIO_s_mem()), *wb = L->BIO_new(L->BIO_s_mem());
    if (!ssl || !rb || !wb) {
        L->SSL_free(ssl);
        L->BIO_free(rb);
        L->BIO_free(wb);
        start_failed(c, op, list, ERYX__ETLS, "cannot set up TLS (the CA store did not load)");
        return;
    }
    L->SSL_set_bio(ssl, rb, wb);
    L->SSL_set_connect_state(ssl);
    int ok = 1;
    if (is_ip) {
        ok = L->X509_VERIFY_PARAM_set1_ip_asc(L->SSL_get0_param(ssl), name);
    } else {
        ok = eryx__ssl_set_sni(L, ssl, name) && L->SSL_set1_host(ssl, name);
    }
    json_t *alpn = json_object_get(args, "alpn");
    if (ok && json_is_array(alpn) && set_alpn(ssl, alpn) < 0)
        ok = 0;
    if (!ok) {
        L->SSL_free(ssl);
        start_failed(c, op, list, ERYX__ETLS, "cannot configure TLS for this name or ALPN list");
        return;
    }
    c->ssl = ssl;
    c->rbio = rb;
    c->wbio = wb;
    /* Plain bytes the guest has not read yet came before TLS: delivered
     * after the handshake, they would read as if they had come through it
     * (a man in the middle's injection, as in STARTTLS attacks); in band,
     * the guest's TLS object also expects the host's status line first. */
    c->in_len = c->in_clean = 0;
    c->hold_until = 0;
    snprintf(c->tls_name, sizeof c->tls_name, "%s", is_ip ? "" : name);
    c->tls_handshaking = 1;
    if (inband) {
        c->tls_inband = 1;
        return; /* the send that asked goes on, then progress */
    }
    c->rd = *op;
    c->rd.kind = ERYX__OP_TLS;
    op->call = NULL;
    eryx__conn_progress(c, list);
}

/* The longest in-band request: three short fields (a host name of at
 * most 253 bytes, ALPN's names, a nonce). A longer line is refused before
 * jansson builds whatever it asks for: the guest's sends are up to 1 MiB,
 * and 1 MiB of `[{},{},...]` is a 77 MiB tree (core/json_wide.h). */
#define MAX_INBAND_REQUEST (64u << 10)

int eryx__tls_start_inband(eryx__conn *c, const uint8_t *line, size_t len)
{
    if (len > MAX_INBAND_REQUEST)
        return EINVAL;
    json_t *args = json_loadb((const char *)line, len, 0, NULL);
    const char *nonce = json_string_value(json_object_get(args, "nonce"));
    if (!args || !nonce || strlen(nonce) >= sizeof c->tls_nonce) {
        json_decref(args);
        return EINVAL;
    }
    snprintf(c->tls_nonce, sizeof c->tls_nonce, "%s", nonce);
    eryx__tls_start(c, NULL, args, NULL);
    json_decref(args);
    return c->err;
}

/* Moves what OpenSSL wrote into the connection's wire buffer. */
static int drain(eryx__conn *c)
{
    const eryx__ssl_lib *L = loaded_lib();
    uint8_t buf[16384];
    int n;
    while ((n = L->BIO_read(c->wbio, buf, sizeof buf)) > 0)
        if (eryx__conn_queue_plain(c, buf, (size_t)n) < 0)
            return ENOMEM;
    return 0;
}

int eryx__tls_feed(eryx__conn *c, const uint8_t *p, size_t n)
{
    const eryx__ssl_lib *L = loaded_lib();
    if (!n)
        return 0; /* the peer closed: SSL_read sees the end of its input */
    return L->BIO_write(c->rbio, p, (int)n) == (int)n ? 0 : ENOMEM;
}

/* Keeps OpenSSL's first queued error (or fallback) as the connection's
 * message, after prefix, and empties the queue. */
static int keep_error(eryx__conn *c, const char *prefix, const char *fallback)
{
    const eryx__ssl_lib *L = loaded_lib();
    unsigned long e = L->ERR_get_error();
    char buf[200];
    snprintf(buf, sizeof buf, "%s", fallback);
    if (e)
        L->ERR_error_string_n(e, buf, sizeof buf);
    snprintf(c->tls_err, sizeof c->tls_err, "%s%s", prefix, buf);
    L->ERR_clear_error();
    return ERYX__ETLS;
}

int eryx__tls_write(eryx__conn *c, const uint8_t *p, size_t n)
{
    const eryx__ssl_lib *L = loaded_lib();
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? 1u << 30 : n - done;
        int w = L->SSL_write(c->ssl, p + done, (int)chunk);
        if (w <= 0)
            return keep_error(c, "TLS write failed: ", "the connection is broken");
        done += (size_t)w;
    }
    return drain(c);
}

/* Queues TLS's close_notify (the guest shut its writing side): without it
 * the peer cannot tell the end of the stream from a truncation. 0, or the
 * connection's error. */
int eryx__tls_close_notify(eryx__conn *c)
{
    const eryx__ssl_lib *L = loaded_lib();
    /* 0: sent, the peer's own not read yet (reading goes on as before); 1:
     * both sent; < 0: the connection is broken, which the next read or
     * write reports. */
    (void)L->SSL_shutdown(c->ssl);
    L->ERR_clear_error();
    return drain(c);
}

static int handshake_error(eryx__conn *c)
{
    const eryx__ssl_lib *L = loaded_lib();
    long v = L->SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        snprintf(c->tls_err, sizeof c->tls_err, "certificate verify failed: %s (for %s)",
                 L->X509_verify_cert_error_string(v), c->tls_name[0] ? c->tls_name : "the address");
        L->ERR_clear_error();
        return ERYX__ETLS_VERIFY;
    }
    return keep_error(c, "TLS handshake failed: ",
                      "the peer closed the connection during the handshake");
}

int eryx__tls_progress(eryx__conn *c, void *list)
{
    const eryx__ssl_lib *L = loaded_lib();
    if (c->tls_handshaking) {
        int r = L->SSL_do_handshake(c->ssl);
        int err = drain(c);
        if (err)
            return err;
        if (r == 1) {
            c->tls_handshaking = 0;
            json_t *info = session_info(c->ssl);
            if (c->tls_inband)
                err = info ? inband_status(c, info, NULL, NULL) : ENOMEM;
            else if (c->rd.kind != ERYX__OP_TLS)
                /* The tls call timed out and a recv took its place: the
                 * recv waits for data, not for this. */
                json_decref(info);
            else if (info)
                eryx__op_ok(list, &c->rd, info);
            else
                eryx__op_fail(list, &c->rd, ENOMEM, NULL);
            if (err)
                return err;
        } else {
            int e = L->SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ && !c->eof)
                return 0;
            err = handshake_error(c);
            if (!c->tls_inband)
                return err;
            /* The guest reads why, then every operation fails. */
            c->tls_handshaking = 0;
            inband_status(c, NULL, eryx__net_errname(err), c->tls_err);
            c->err = err;
            return 0;
        }
    }
    uint8_t buf[16384];
    for (;;) {
        int r = L->SSL_read(c->ssl, buf, sizeof buf);
        if (r > 0) {
            if (eryx__conn_take_plain(c, buf, (size_t)r) < 0)
                return ENOMEM;
            continue;
        }
        int e = L->SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) {
            c->eof = 1; /* close_notify */
        } else if (e != SSL_ERROR_WANT_READ || c->eof) {
            /* A peer that closes without close_notify ends the stream as
             * Python's suppress_ragged_eofs (the default) would. */
            if (c->eof && (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ)) {
                L->ERR_clear_error();
            } else {
                return keep_error(c, "", "TLS record error");
            }
        }
        break;
    }
    return drain(c);
}

const char *eryx__tls_errmsg(eryx__conn *c, int err)
{
    if (err == ERYX__ETLS || err == ERYX__ETLS_VERIFY)
        return c->tls_err[0] ? c->tls_err : "TLS error";
    return NULL;
}

void eryx__tls_conn_free(eryx__conn *c)
{
    if (c->ssl)
        loaded_lib()->SSL_free(c->ssl); /* frees both BIOs */
    c->ssl = NULL;
}
