/*
 * OpenSSL, opened with dlopen on first use instead of linked.
 *
 * Linking libssl and libcrypto made every process that links liberyx pay
 * for their relocations at start (LD_DEBUG=statistics on `eryx -c pass`:
 * 7.1 M cycles in the dynamic loader against 1.7 M without them), while
 * most processes never make a TLS connection. The functions eryx uses are
 * a table of pointers, filled once per process; each field has the type of
 * the OpenSSL function of the same name (the headers are read at build
 * time), so a call is `L->SSL_read(ssl, buf, n)`. OpenSSL's function-like
 * macros are not in the table: call what they expand to (SSL_CTX_ctrl,
 * SSL_ctrl, OPENSSL_sk_*, CRYPTO_free), see the helpers below.
 */
#ifndef ERYX_SSL_LIB_H
#define ERYX_SSL_LIB_H

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* From libcrypto. */
#define ERYX__SSL_CRYPTO_FUNCS(X)                                                                  \
    X(ERR_get_error) X(ERR_clear_error) X(ERR_error_string_n)                                      \
    X(BIO_new) X(BIO_s_mem) X(BIO_new_mem_buf) X(BIO_new_file) X(BIO_read) X(BIO_write)           \
    X(BIO_free) X(PEM_read_bio_X509) X(X509_free) X(X509_STORE_add_cert)                           \
    X(X509_get_subject_name) X(X509_get_issuer_name) X(X509_get_version)                           \
    X(X509_get0_notBefore) X(X509_get0_notAfter) X(X509_get0_serialNumber)                         \
    X(X509_get_ext_d2i) X(X509_NAME_entry_count) X(X509_NAME_get_entry)                            \
    X(X509_NAME_ENTRY_get_object) X(X509_NAME_ENTRY_get_data) X(X509_verify_cert_error_string)     \
    X(X509_VERIFY_PARAM_set1_ip_asc) X(OBJ_obj2txt) X(ASN1_STRING_to_UTF8)                         \
    X(ASN1_STRING_get0_data) X(ASN1_STRING_length) X(ASN1_TIME_print) X(ASN1_INTEGER_to_BN)        \
    X(BN_bn2hex) X(BN_free) X(GENERAL_NAMES_free) X(i2d_X509) X(EVP_EncodeBlock)                   \
    X(OPENSSL_sk_num) X(OPENSSL_sk_value) X(CRYPTO_free)                                           \
    X(HMAC) X(EVP_sha256) X(CRYPTO_memcmp) X(RAND_bytes) X(SHA1)

/* From libssl: the client side tls.c uses, and the server side (a TLS
 * listener: a context with a certificate chain and key, optional client
 * certificates, accept/read/write/shutdown on a socket). */
#define ERYX__SSL_SSL_FUNCS(X)                                                                     \
    X(TLS_client_method) X(TLS_server_method) X(SSL_CTX_new) X(SSL_CTX_free) X(SSL_CTX_ctrl)       \
    X(SSL_CTX_set_options) X(SSL_CTX_set_verify) X(SSL_CTX_set_default_verify_paths)               \
    X(SSL_CTX_load_verify_locations) X(SSL_CTX_get_cert_store)                                     \
    X(SSL_CTX_use_certificate_chain_file) X(SSL_CTX_use_PrivateKey_file)                           \
    X(SSL_CTX_check_private_key) X(SSL_load_client_CA_file) X(SSL_CTX_set_client_CA_list)          \
    X(SSL_new) X(SSL_free) X(SSL_ctrl) X(SSL_set_bio) X(SSL_set_fd) X(SSL_set_connect_state)       \
    X(SSL_set_accept_state) X(SSL_get0_param) X(SSL_set1_host) X(SSL_set_alpn_protos)             \
    X(SSL_do_handshake) X(SSL_accept) X(SSL_read) X(SSL_write) X(SSL_pending) X(SSL_shutdown)      \
    X(SSL_get_error) X(SSL_get_verify_result) X(SSL_get1_peer_certificate)                         \
    X(SSL_get_current_cipher) X(SSL_get0_alpn_selected) X(SSL_get_version)                         \
    X(SSL_CIPHER_get_name) X(SSL_CIPHER_get_version) X(SSL_CIPHER_get_bits)

#define ERYX__SSL_FIELD(name) __typeof__(name) *name;
typedef struct eryx__ssl_lib {
    ERYX__SSL_CRYPTO_FUNCS(ERYX__SSL_FIELD)
    ERYX__SSL_SSL_FUNCS(ERYX__SSL_FIELD)
} eryx__ssl_lib;
#undef ERYX__SSL_FIELD

/* The table, loading libcrypto and libssl (by the sonames the build found)
 * on the first call in the process; later calls cost an atomic load.
 * Thread-safe. NULL if they cannot be loaded: then *why (if why is not
 * NULL) is a message owned by this module, for the process's life. The
 * libraries stay loaded until the process exits. */
const eryx__ssl_lib *eryx__ssl_load(const char **why);

/* OpenSSL's macros, over the table. */
static inline long eryx__ssl_ctx_set_min_proto(const eryx__ssl_lib *L, SSL_CTX *ctx, int v)
{
    return L->SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, v, NULL);
}

static inline long eryx__ssl_set_sni(const eryx__ssl_lib *L, SSL *ssl, const char *name)
{
    return L->SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                       (void *)name);
}

static inline void eryx__ssl_free(const eryx__ssl_lib *L, void *p)
{
    L->CRYPTO_free(p, OPENSSL_FILE, OPENSSL_LINE);
}

#endif
