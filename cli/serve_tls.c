/*
 * serve_tls.h over OpenSSL. Verification is always on for clients (the
 * system store plus an optional CA file) and, with a client CA, on the
 * server too.
 */
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "serve_tls.h"

struct tls_ctx {
    SSL_CTX *ssl;
};

struct tls_conn {
    SSL *ssl;
};

static void ssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
    ERR_clear_error();
}

static tls_ctx *wrap(SSL_CTX *ssl, char *err, size_t errlen)
{
    tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        SSL_CTX_free(ssl);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->ssl = ssl;
    return c;
}

tls_ctx *tls_server_ctx(const char *cert_file, const char *key_file, const char *client_ca,
                        char *err, size_t errlen)
{
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    if (!s) {
        ssl_error(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(s, cert_file) != 1) {
        ssl_error(err, errlen, "cannot load the certificate chain");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(s, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s) != 1) {
        ssl_error(err, errlen, "cannot load the private key (or it does not match)");
        goto fail;
    }
    if (client_ca) {
        if (SSL_CTX_load_verify_locations(s, client_ca, NULL) != 1) {
            ssl_error(err, errlen, "cannot load the client CA");
            goto fail;
        }
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return wrap(s, err, errlen);
fail:
    SSL_CTX_free(s);
    return NULL;
}

tls_ctx *tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
                        char *err, size_t errlen)
{
    SSL_CTX *s = SSL_CTX_new(TLS_client_method());
    if (!s) {
        ssl_error(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(s) != 1 ||
        (ca_file && SSL_CTX_load_verify_locations(s, ca_file, NULL) != 1)) {
        ssl_error(err, errlen, "cannot load the CA certificates");
        goto fail;
    }
    if (cert_file && (SSL_CTX_use_certificate_chain_file(s, cert_file) != 1 ||
                      SSL_CTX_use_PrivateKey_file(s, key_file ? key_file : cert_file,
                                                  SSL_FILETYPE_PEM) != 1)) {
        ssl_error(err, errlen, "cannot load the client certificate or key");
        goto fail;
    }
    return wrap(s, err, errlen);
fail:
    SSL_CTX_free(s);
    return NULL;
}

void tls_ctx_free(tls_ctx *ctx)
{
    if (ctx) {
        SSL_CTX_free(ctx->ssl);
        free(ctx);
    }
}

tls_conn *tls_conn_new(tls_ctx *ctx, int fd, const char *host)
{
    tls_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->ssl = SSL_new(ctx->ssl)))
        goto fail;
    if (SSL_set_fd(c->ssl, fd) != 1)
        goto fail;
    if (host) {
        SSL_set_connect_state(c->ssl);
        if (SSL_set_tlsext_host_name(c->ssl, host) != 1 || SSL_set1_host(c->ssl, host) != 1)
            goto fail;
    } else {
        SSL_set_accept_state(c->ssl);
    }
    return c;
fail:
    tls_conn_free(c);
    ERR_clear_error();
    return NULL;
}

void tls_conn_free(tls_conn *c)
{
    if (c) {
        SSL_free(c->ssl);
        free(c);
    }
}

static int map_error(tls_conn *c, int r)
{
    switch (SSL_get_error(c->ssl, r)) {
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
    int r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return 1;
    int m = map_error(c, r);
    if (m == TLS_WANT_READ || m == TLS_WANT_WRITE)
        return m;
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK)
        snprintf(err, errlen, "TLS handshake failed: certificate: %s",
                 X509_verify_cert_error_string(v));
    else
        ssl_error(err, errlen, "TLS handshake failed");
    return TLS_ERROR;
}

long tls_conn_read(tls_conn *c, void *buf, size_t n)
{
    int r = SSL_read(c->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    if (r > 0)
        return r;
    int m = map_error(c, r);
    ERR_clear_error();
    return m;
}

long tls_conn_write(tls_conn *c, const void *buf, size_t n)
{
    int r = SSL_write(c->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    if (r > 0)
        return r;
    int m = map_error(c, r);
    ERR_clear_error();
    return m == 0 ? TLS_ERROR : m;
}

size_t tls_conn_pending(tls_conn *c)
{
    int n = SSL_pending(c->ssl);
    return n > 0 ? (size_t)n : 0;
}

int crypto_sha1(const void *p, size_t n, uint8_t out[20])
{
    return SHA1(p, n, out) ? 0 : -1;
}

int crypto_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
                       uint8_t out[32])
{
    unsigned len = 32;
    return HMAC(EVP_sha256(), key, (int)keylen, p, n, out, &len) && len == 32 ? 0 : -1;
}

int crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
