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
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_internal.h"

/* ---- the CA configuration --------------------------------------------------- */

/* Number of certificates in PEM text, or -1 if it holds something else. */
static int count_pem(BIO *b)
{
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        X509_free(x);
        n++;
    }
    ERR_clear_error();
    return n;
}

int eryx__tls_conf_init(eryx__net_conf *c, const eryx_net_config *cfg, char *err,
                        size_t errsize)
{
    if (cfg->n_ca_files && !(c->ca_files = calloc(cfg->n_ca_files, sizeof *c->ca_files))) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_ca_files; i++) {
        const char *path = cfg->ca_files[i];
        BIO *b = path ? BIO_new_file(path, "r") : NULL;
        int n = b ? count_pem(b) : -1;
        BIO_free(b);
        if (n <= 0) {
            snprintf(err, errsize, "CA file %.200s: %s", path ? path : "(null)",
                     n < 0 ? "cannot be read" : "holds no PEM certificate");
            return -1;
        }
        if (!(c->ca_files[i] = strdup(path))) {
            snprintf(err, errsize, "out of memory");
            return -1;
        }
        c->n_ca_files = i + 1;
    }
    if (cfg->ca_pem) {
        BIO *b = BIO_new_mem_buf(cfg->ca_pem, -1);
        int n = b ? count_pem(b) : -1;
        BIO_free(b);
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
    SSL_CTX_free(c->ctx);
}

/* The context, made on first use: loading the system store costs
 * milliseconds, which a sandbox that never uses TLS should not pay. */
static SSL_CTX *conf_ctx(eryx__net_conf *c)
{
    if (c->ctx)
        return c->ctx;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = SSL_CTX_set_default_verify_paths(ctx);
    for (size_t i = 0; ok && i < c->n_ca_files; i++)
        ok = SSL_CTX_load_verify_locations(ctx, c->ca_files[i], NULL);
    if (ok && c->ca_pem) {
        BIO *b = BIO_new_mem_buf(c->ca_pem, -1);
        X509 *x;
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
            X509_STORE_add_cert(store, x);
            X509_free(x);
        }
        BIO_free(b);
    }
    ERR_clear_error();
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    c->ctx = ctx;
    return ctx;
}

/* ---- the peer's certificate as Python's getpeercert() gives it ----------- */

static json_t *name_json(X509_NAME *name)
{
    json_t *rdns = json_array();
    int n = X509_NAME_entry_count(name);
    for (int i = 0; i < n; i++) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        char key[80];
        OBJ_obj2txt(key, sizeof key, X509_NAME_ENTRY_get_object(e), 0);
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        if (len >= 0) {
            json_t *v = json_stringn(len ? (const char *)utf8 : "", (size_t)len);
            if (v)
                json_array_append_new(rdns, json_pack("[[s, o]]", key, v));
        }
        OPENSSL_free(utf8);
    }
    return rdns;
}

static json_t *time_json(const ASN1_TIME *t)
{
    char buf[64] = "";
    BIO *b = BIO_new(BIO_s_mem());
    if (b && ASN1_TIME_print(b, t)) {
        int n = BIO_read(b, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    return json_string(buf);
}

static json_t *cert_json(X509 *x)
{
    json_t *c = json_object();
    json_object_set_new(c, "subject", name_json(X509_get_subject_name(x)));
    json_object_set_new(c, "issuer", name_json(X509_get_issuer_name(x)));
    json_object_set_new(c, "version", json_integer(X509_get_version(x) + 1));
    json_object_set_new(c, "notBefore", time_json(X509_get0_notBefore(x)));
    json_object_set_new(c, "notAfter", time_json(X509_get0_notAfter(x)));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    json_object_set_new(c, "serialNumber", json_string(hex ? hex : ""));
    OPENSSL_free(hex);
    BN_free(bn);
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    json_t *san = json_array();
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            const ASN1_IA5STRING *s = g->d.dNSName;
            json_t *v = json_stringn((const char *)ASN1_STRING_get0_data(s),
                                     (size_t)ASN1_STRING_length(s));
            if (v)
                json_array_append_new(san, json_pack("[s, o]", "DNS", v));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = g->d.iPAddress;
            eryx__addr a;
            memset(&a, 0, sizeof a);
            if (ASN1_STRING_length(s) == 4) {
                a.b[10] = a.b[11] = 0xff;
                memcpy(a.b + 12, ASN1_STRING_get0_data(s), 4);
            } else if (ASN1_STRING_length(s) == 16) {
                memcpy(a.b, ASN1_STRING_get0_data(s), 16);
            } else {
                continue;
            }
            char text[64];
            eryx__addr_format(&a, text, sizeof text);
            json_array_append_new(san, json_pack("[s, s]", "IP Address", text));
        }
    }
    GENERAL_NAMES_free(names);
    json_object_set_new(c, "subjectAltName", san);
    return c;
}

static json_t *der_b64(X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0)
        return json_null();
    int outn = 4 * ((n + 2) / 3);
    char *o = malloc((size_t)outn + 1);
    json_t *v = json_null();
    if (o && EVP_EncodeBlock((unsigned char *)o, der, n) == outn)
        v = json_stringn(o, (size_t)outn);
    free(o);
    OPENSSL_free(der);
    return v;
}

static json_t *session_info(SSL *ssl)
{
    const SSL_CIPHER *ciph = SSL_get_current_cipher(ssl);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    json_t *info = json_pack("{s:s, s:[s, s, i]}", "version", SSL_get_version(ssl), "cipher",
                             ciph ? SSL_CIPHER_get_name(ciph) : "",
                             ciph ? SSL_CIPHER_get_version(ciph) : "",
                             ciph ? SSL_CIPHER_get_bits(ciph, NULL) : 0);
    if (!info)
        return NULL;
    json_object_set_new(info, "alpn", alpn_len ? json_stringn((const char *)alpn, alpn_len)
                                               : json_null());
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer) {
        json_object_set_new(info, "cert", cert_json(peer));
        json_object_set_new(info, "der", der_b64(peer));
        X509_free(peer);
    }
    return info;
}

/* ---- a connection's TLS ------------------------------------------------------ */

/* The ALPN protocols the guest offers, in wire format. */
static int set_alpn(SSL *ssl, json_t *list)
{
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
    return n && SSL_set_alpn_protos(ssl, wire, (unsigned)n) != 0 ? -1 : 0;
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
    free(text);
    return rc;
}

void eryx__tls_start(eryx__conn *c, eryx__op *op, json_t *args, void *list)
{
    const char *given = json_string_value(json_object_get(args, "server_hostname"));
    char name[256];
    int inband = op == NULL;
    if (c->ssl || c->connecting || (!inband && (c->rd.call || c->wr.call))) {
        if (inband)
            c->err = EINVAL;
        else
            eryx__op_fail(list, op, EINVAL, "TLS must start on a connected socket with no "
                                            "read or write in progress, once");
        return;
    }
    eryx__addr a;
    int is_ip = 0;
    if (given && *given) {
        is_ip = eryx__addr_parse(given, &a);
        if (!is_ip && eryx__host_normalise(given, name, sizeof name) < 0) {
            eryx__op_fail(list, op, EINVAL, "server_hostname is not a valid ASCII host name");
            return;
        }
        if (is_ip)
            eryx__addr_format(&a, name, sizeof name);
    } else if (c->host[0]) {
        snprintf(name, sizeof name, "%s", c->host);
    } else {
        is_ip = 1;
        eryx__addr_format(&c->addr, name, sizeof name);
    }
    SSL_CTX *ctx = conf_ctx(c->net->conf);
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (!ssl || !rb || !wb) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        if (inband)
            c->err = ERYX__ETLS;
        else
            eryx__op_fail(list, op, ERYX__ETLS, "cannot set up TLS (the CA store did not load)");
        return;
    }
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    int ok = 1;
    if (is_ip) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    } else {
        ok = SSL_set_tlsext_host_name(ssl, name) && SSL_set1_host(ssl, name);
    }
    json_t *alpn = json_object_get(args, "alpn");
    if (ok && json_is_array(alpn) && set_alpn(ssl, alpn) < 0)
        ok = 0;
    if (!ok) {
        SSL_free(ssl);
        if (inband)
            c->err = ERYX__ETLS;
        else
            eryx__op_fail(list, op, ERYX__ETLS, "cannot configure TLS for this name or ALPN list");
        return;
    }
    c->ssl = ssl;
    c->rbio = rb;
    c->wbio = wb;
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

int eryx__tls_start_inband(eryx__conn *c, const uint8_t *line, size_t len)
{
    json_t *args = json_loadb((const char *)line, len, 0, NULL);
    const char *nonce = json_string_value(json_object_get(args, "nonce"));
    if (!args || !nonce || strlen(nonce) >= sizeof c->tls_nonce) {
        json_decref(args);
        return EINVAL;
    }
    snprintf(c->tls_nonce, sizeof c->tls_nonce, "%s", nonce);
    /* Bytes the peer sent before TLS are not the guest's to read now: its
     * TLS object expects the host's status line first. */
    c->in_len = c->in_clean = 0;
    eryx__tls_start(c, NULL, args, NULL);
    json_decref(args);
    return c->err;
}

/* Moves what OpenSSL wrote into the connection's wire buffer. */
static int drain(eryx__conn *c)
{
    uint8_t buf[16384];
    int n;
    while ((n = BIO_read(c->wbio, buf, sizeof buf)) > 0)
        if (eryx__conn_queue_plain(c, buf, (size_t)n) < 0)
            return ENOMEM;
    return 0;
}

int eryx__tls_feed(eryx__conn *c, const uint8_t *p, size_t n)
{
    if (!n)
        return 0; /* the peer closed: SSL_read sees the end of its input */
    return BIO_write(c->rbio, p, (int)n) == (int)n ? 0 : ENOMEM;
}

int eryx__tls_write(eryx__conn *c, const uint8_t *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? 1u << 30 : n - done;
        int w = SSL_write(c->ssl, p + done, (int)chunk);
        if (w <= 0) {
            snprintf(c->tls_err, sizeof c->tls_err, "TLS write failed");
            return ERYX__ETLS;
        }
        done += (size_t)w;
    }
    return drain(c);
}

/* Keeps OpenSSL's first queued error (or fallback) as the connection's
 * message, after prefix, and empties the queue. */
static int keep_error(eryx__conn *c, const char *prefix, const char *fallback)
{
    unsigned long e = ERR_get_error();
    char buf[200];
    snprintf(buf, sizeof buf, "%s", fallback);
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(c->tls_err, sizeof c->tls_err, "%s%s", prefix, buf);
    ERR_clear_error();
    return ERYX__ETLS;
}

static int handshake_error(eryx__conn *c)
{
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        snprintf(c->tls_err, sizeof c->tls_err, "certificate verify failed: %s (for %s)",
                 X509_verify_cert_error_string(v), c->tls_name[0] ? c->tls_name : "the address");
        ERR_clear_error();
        return ERYX__ETLS_VERIFY;
    }
    return keep_error(c, "TLS handshake failed: ",
                      "the peer closed the connection during the handshake");
}

int eryx__tls_progress(eryx__conn *c, void *list)
{
    if (c->tls_handshaking) {
        int r = SSL_do_handshake(c->ssl);
        int err = drain(c);
        if (err)
            return err;
        if (r == 1) {
            c->tls_handshaking = 0;
            json_t *info = session_info(c->ssl);
            if (c->tls_inband)
                err = info ? inband_status(c, info, NULL, NULL) : ENOMEM;
            else if (info)
                eryx__op_ok(list, &c->rd, info);
            else
                eryx__op_fail(list, &c->rd, ENOMEM, NULL);
            if (err)
                return err;
        } else {
            int e = SSL_get_error(c->ssl, r);
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
        int r = SSL_read(c->ssl, buf, sizeof buf);
        if (r > 0) {
            if (eryx__conn_take_plain(c, buf, (size_t)r) < 0)
                return ENOMEM;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) {
            c->eof = 1; /* close_notify */
        } else if (e != SSL_ERROR_WANT_READ || c->eof) {
            /* A peer that closes without close_notify ends the stream as
             * Python's suppress_ragged_eofs (the default) would. */
            if (c->eof && (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ)) {
                ERR_clear_error();
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
    SSL_free(c->ssl); /* frees both BIOs */
    c->ssl = NULL;
}
