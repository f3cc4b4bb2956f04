/*
 * serve_tls.h over OpenSSL, opened on first use (src/net/ssl_lib.h: `eryx
 * -c` does not pay the loader for it). Verification is always on for
 * clients (the system store plus an optional CA file) and, with a client
 * CA, on the server too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ssl_lib.h"
#include "serve_tls.h"

/* The table; the context functions load it and report why they cannot, the
 * others run only once a context exists. */
static const eryx__ssl_lib *_Atomic L;

static int load(char *err, size_t errlen)
{
    const char *why = NULL;
    if (!L && !(L = eryx__ssl_load(&why))) {
        snprintf(err, errlen, "OpenSSL cannot be loaded: %s", why ? why : "?");
        return -1;
    }
    return 0;
}

struct tls_ctx {
    SSL_CTX *ssl;
};

struct tls_conn {
    SSL *ssl;
    char why[256];              /* the last TLS_ERROR's reason, or "" */
};

static void ssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = L->ERR_get_error();
    char buf[256] = "";
    if (e)
        L->ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
    L->ERR_clear_error();
}

static tls_ctx *wrap(SSL_CTX *ssl, char *err, size_t errlen)
{
    tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        L->SSL_CTX_free(ssl);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->ssl = ssl;
    return c;
}

tls_ctx *tls_server_ctx(const char *cert_file, const char *key_file, const char *client_ca,
                        char *err, size_t errlen)
{
    if (load(err, errlen) < 0)
        return NULL;
    SSL_CTX *s = L->SSL_CTX_new(L->TLS_server_method());
    if (!s) {
        ssl_error(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    eryx__ssl_ctx_set_min_proto(L, s, TLS1_2_VERSION);
    if (L->SSL_CTX_use_certificate_chain_file(s, cert_file) != 1) {
        ssl_error(err, errlen, "cannot load the certificate chain");
        goto fail;
    }
    if (L->SSL_CTX_use_PrivateKey_file(s, key_file, SSL_FILETYPE_PEM) != 1 ||
        L->SSL_CTX_check_private_key(s) != 1) {
        ssl_error(err, errlen, "cannot load the private key (or it does not match)");
        goto fail;
    }
    if (client_ca) {
        if (L->SSL_CTX_load_verify_locations(s, client_ca, NULL) != 1) {
            ssl_error(err, errlen, "cannot load the client CA");
            goto fail;
        }
        L->SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return wrap(s, err, errlen);
fail:
    L->SSL_CTX_free(s);
    return NULL;
}

tls_ctx *tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
                        char *err, size_t errlen)
{
    if (load(err, errlen) < 0)
        return NULL;
    SSL_CTX *s = L->SSL_CTX_new(L->TLS_client_method());
    if (!s) {
        ssl_error(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    eryx__ssl_ctx_set_min_proto(L, s, TLS1_2_VERSION);
    L->SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    if (L->SSL_CTX_set_default_verify_paths(s) != 1 ||
        (ca_file && L->SSL_CTX_load_verify_locations(s, ca_file, NULL) != 1)) {
        ssl_error(err, errlen, "cannot load the CA certificates");
        goto fail;
    }
    if (cert_file && (L->SSL_CTX_use_certificate_chain_file(s, cert_file) != 1 ||
                      L->SSL_CTX_use_PrivateKey_file(s, key_file ? key_file : cert_file,
                                                  SSL_FILETYPE_PEM) != 1)) {
        ssl_error(err, errlen, "cannot load the client certificate or key");
        goto fail;
    }
    return wrap(s, err, errlen);
fail:
    L->SSL_CTX_free(s);
    return NULL;
}

void tls_ctx_free(tls_ctx *ctx)
{
    if (ctx) {
        L->SSL_CTX_free(ctx->ssl);
        free(ctx);
    }
}

tls_conn *tls_conn_new(tls_ctx *ctx, int fd, const char *host)
{
    tls_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->ssl = L->SSL_new(ctx->ssl)))
        goto fail;
    if (L->SSL_set_fd(c->ssl, fd) != 1)
        goto fail;
    /* A write that must be repeated may be repeated from a copy of its
     * bytes: ws_conn.c keeps the rest of a message it gave up on. */
    L->SSL_ctrl(c->ssl, SSL_CTRL_MODE, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, NULL);
    if (host) {
        L->SSL_set_connect_state(c->ssl);
        if (eryx__ssl_set_sni(L, c->ssl, host) != 1 || L->SSL_set1_host(c->ssl, host) != 1)
            goto fail;
    } else {
        L->SSL_set_accept_state(c->ssl);
    }
    return c;
fail:
    tls_conn_free(c);
    L->ERR_clear_error();
    return NULL;
}

void tls_conn_free(tls_conn *c)
{
    if (c) {
        L->SSL_free(c->ssl);
        free(c);
    }
}

static int map_error(tls_conn *c, int r)
{
    switch (L->SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        return TLS_ERROR;
    }
}

int tls_conn_handshake(tls_conn *c, char *err, size_t errlen)
{
    int r = L->SSL_do_handshake(c->ssl);
    if (r == 1)
        return 1;
    int m = map_error(c, r);
    if (m == TLS_WANT_READ || m == TLS_WANT_WRITE)
        return m;
    long v = L->SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK)
        snprintf(err, errlen, "TLS handshake failed: certificate: %s",
                 L->X509_verify_cert_error_string(v));
    else
        ssl_error(err, errlen, "TLS handshake failed");
    return TLS_ERROR;
}

/* Why a read or write failed, kept for tls_conn_error. With TLS 1.3 a
 * server that wants a client certificate says so only after the client's
 * handshake is over, at its first read or write: said plainly (it was
 * "the connection failed while sending"). */
static void keep_why(tls_conn *c)
{
    unsigned long e = L->ERR_get_error();
    char buf[160] = "";
    if (e)
        L->ERR_error_string_n(e, buf, sizeof buf);
    if (e && ERR_GET_REASON(e) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
        snprintf(c->why, sizeof c->why, "the server requires a client certificate (%s)", buf);
    else
        snprintf(c->why, sizeof c->why, "%s%s", e ? "TLS: " : "", buf);
}

long tls_conn_read(tls_conn *c, void *buf, size_t n)
{
    int r = L->SSL_read(c->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    if (r > 0)
        return r;
    int m = map_error(c, r);
    if (m == TLS_ERROR)
        keep_why(c);
    L->ERR_clear_error();
    return m;
}

long tls_conn_write(tls_conn *c, const void *buf, size_t n)
{
    int r = L->SSL_write(c->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    if (r > 0)
        return r;
    int m = map_error(c, r);
    if (m != TLS_WANT_READ && m != TLS_WANT_WRITE)
        keep_why(c);
    L->ERR_clear_error();
    return m == 0 ? TLS_ERROR : m;
}

const char *tls_conn_error(const tls_conn *c)
{
    return c->why;
}

size_t tls_conn_pending(tls_conn *c)
{
    int n = L->SSL_pending(c->ssl);
    return n > 0 ? (size_t)n : 0;
}

int crypto_sha1(const void *p, size_t n, uint8_t out[20])
{
    char err[128];
    return load(err, sizeof err) == 0 && L->SHA1(p, n, out) ? 0 : -1;
}

int crypto_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
                       uint8_t out[32])
{
    unsigned len = 32;
    char err[128];
    if (load(err, sizeof err) < 0)
        return -1;
    return L->HMAC(L->EVP_sha256(), key, (int)keylen, p, n, out, &len) && len == 32 ? 0 : -1;
}

int crypto_equal(const void *a, const void *b, size_t n)
{
    /* By hand: a token check must not depend on loading a library. */
    const unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}
