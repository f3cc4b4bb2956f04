/*
 * The cryptography `eryx serve` and `eryx --remote` use, in one place:
 * TLS contexts and connections (server side with an optional client CA for
 * mTLS, client side verifying the server), SHA-1 (the WebSocket handshake)
 * and HMAC-SHA256 (signed journals). OpenSSL does the work.
 */
#ifndef ERYX_CLI_SERVE_TLS_H
#define ERYX_CLI_SERVE_TLS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tls_ctx tls_ctx;
typedef struct tls_conn tls_conn;

/* A server context from a PEM certificate chain and key; with client_ca,
 * clients must present a certificate it signed. NULL + err on failure. */
tls_ctx *tls_server_ctx(const char *cert_file, const char *key_file, const char *client_ca,
                        char *err, size_t errlen);
/* A client context verifying servers against the system store plus
 * ca_file (may be NULL); cert/key (may be NULL) for mTLS. */
tls_ctx *tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
                        char *err, size_t errlen);
void tls_ctx_free(tls_ctx *ctx);

/* A connection over the connected socket fd (not owned). host: the name
 * the client verifies and sends as SNI (NULL on the server side). */
tls_conn *tls_conn_new(tls_ctx *ctx, int fd, const char *host);
void tls_conn_free(tls_conn *c);

/* Results of the operations below besides a byte count. */
enum { TLS_WANT_READ = -2, TLS_WANT_WRITE = -3, TLS_ERROR = -1 };

/* One step of the handshake: 1 done, TLS_WANT_*, TLS_ERROR (message in
 * err). */
int tls_conn_handshake(tls_conn *c, char *err, size_t errlen);
/* >0 bytes, 0 the peer closed, TLS_WANT_*, TLS_ERROR. */
long tls_conn_read(tls_conn *c, void *buf, size_t n);
long tls_conn_write(tls_conn *c, const void *buf, size_t n);
/* Why the last read or write gave TLS_ERROR (OpenSSL's reason), or "". */
const char *tls_conn_error(const tls_conn *c);
/* Decrypted bytes buffered inside OpenSSL (readable without the socket). */
size_t tls_conn_pending(tls_conn *c);

int crypto_sha1(const void *p, size_t n, uint8_t out[20]);
int crypto_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
                       uint8_t out[32]);
/* Constant-time equality of two n-byte strings. */
int crypto_equal(const void *a, const void *b, size_t n);

#endif
