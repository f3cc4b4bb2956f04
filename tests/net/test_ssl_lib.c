/*
 * The OpenSSL table (src/net/ssl_lib.h): nothing of OpenSSL is loaded
 * before the first use, the table is filled once for every thread, and its
 * entry points work: HMAC-SHA256 against RFC 4231, and a TLS server with a
 * certificate chain that requires a client certificate, handshaking over a
 * socket pair with a client made from the same table.
 */
#include <link.h>
#include <pthread.h>
#include <sys/socket.h>

#include "../check.h"
#include "net/ssl_lib.h"

static int found_openssl(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    return strstr(info->dlpi_name, "libssl") || strstr(info->dlpi_name, "libcrypto");
}

static void *load_on_thread(void *arg)
{
    (void)arg;
    return (void *)eryx__ssl_load(NULL);
}

TEST_CASE(loaded_on_first_use_once)
{
    CHECK_INT(dl_iterate_phdr(found_openssl, NULL), 0);
    pthread_t t[8];
    void *got[8];
    for (int i = 0; i < 8; i++)
        REQUIRE_INT(pthread_create(&t[i], NULL, load_on_thread, NULL), 0);
    for (int i = 0; i < 8; i++)
        REQUIRE_INT(pthread_join(t[i], &got[i]), 0);
    const char *why = "unset";
    const eryx__ssl_lib *L = eryx__ssl_load(&why);
    REQUIRE(L != NULL);
    CHECK_STR(why, "unset"); /* left alone on success */
    for (int i = 0; i < 8; i++)
        CHECK(got[i] == (void *)L);
    CHECK_INT(dl_iterate_phdr(found_openssl, NULL), 1);
}

TEST_CASE(hmac_sha256_rfc4231)
{
    const eryx__ssl_lib *L = eryx__ssl_load(NULL);
    REQUIRE(L != NULL);
    static const char msg[] = "what do ya want for nothing?";
    static const unsigned char want[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
        0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
        0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    REQUIRE(L->HMAC(L->EVP_sha256(), "Jefe", 4, (const unsigned char *)msg, sizeof msg - 1, mac,
                    &len) != NULL);
    CHECK_INT(len, 32);
    CHECK_MEM(mac, want, 32);
    CHECK_INT(L->CRYPTO_memcmp(mac, want, 32), 0);
    mac[31] ^= 1;
    CHECK(L->CRYPTO_memcmp(mac, want, 32) != 0);
    unsigned char r1[16], r2[16];
    CHECK_INT(L->RAND_bytes(r1, sizeof r1), 1);
    CHECK_INT(L->RAND_bytes(r2, sizeof r2), 1);
    CHECK(memcmp(r1, r2, sizeof r1) != 0);
}

static char dir[] = "/tmp/eryx-ssl-lib-XXXXXX";
static char cert[64], key[64];

/* A self-signed certificate for test.eryx: the server's chain, the client's
 * certificate and both sides' CA at once. */
static void make_cert(void)
{
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-subj /CN=test.eryx -addext subjectAltName=DNS:test.eryx -days 2 "
             "-keyout %s -out %s 2>/dev/null",
             key, cert);
    REQUIRE_INT(system(cmd), 0);
}

static SSL_CTX *make_ctx(const eryx__ssl_lib *L, int server)
{
    SSL_CTX *ctx = L->SSL_CTX_new(server ? L->TLS_server_method() : L->TLS_client_method());
    REQUIRE(ctx != NULL);
    REQUIRE_INT(eryx__ssl_ctx_set_min_proto(L, ctx, TLS1_2_VERSION), 1);
    REQUIRE_INT(L->SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
    REQUIRE_INT(L->SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    REQUIRE_INT(L->SSL_CTX_check_private_key(ctx), 1);
    REQUIRE_INT(L->SSL_CTX_load_verify_locations(ctx, cert, NULL), 1);
    L->SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                          NULL);
    if (server) {
        STACK_OF(X509_NAME) *names = L->SSL_load_client_CA_file(cert);
        REQUIRE(names != NULL);
        L->SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
    }
    return ctx;
}

struct client {
    const eryx__ssl_lib *L;
    int fd;
    int handshake, verify;
    char got[32];
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    const eryx__ssl_lib *L = c->L;
    SSL_CTX *ctx = make_ctx(L, 0);
    SSL *ssl = L->SSL_new(ctx);
    L->SSL_set_fd(ssl, c->fd);
    L->SSL_set_connect_state(ssl);
    eryx__ssl_set_sni(L, ssl, "test.eryx");
    L->SSL_set1_host(ssl, "test.eryx");
    c->handshake = L->SSL_do_handshake(ssl);
    c->verify = (int)L->SSL_get_verify_result(ssl);
    if (c->handshake == 1) {
        L->SSL_write(ssl, "ping", 4);
        int n = L->SSL_read(ssl, c->got, sizeof c->got - 1);
        c->got[n > 0 ? n : 0] = '\0';
        L->SSL_shutdown(ssl);
    }
    L->SSL_free(ssl);
    L->SSL_CTX_free(ctx);
    return NULL;
}

TEST_CASE(server_requires_client_certificate)
{
    const eryx__ssl_lib *L = eryx__ssl_load(NULL);
    REQUIRE(L != NULL);
    make_cert();
    int sv[2];
    REQUIRE_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct client c = {.L = L, .fd = sv[1]};
    pthread_t t;
    REQUIRE_INT(pthread_create(&t, NULL, client_main, &c), 0);

    SSL_CTX *ctx = make_ctx(L, 1);
    SSL *ssl = L->SSL_new(ctx);
    L->SSL_set_fd(ssl, sv[0]);
    CHECK_INT(L->SSL_accept(ssl), 1);
    X509 *peer = L->SSL_get1_peer_certificate(ssl);
    CHECK(peer != NULL);
    L->X509_free(peer);
    char buf[16] = "";
    int n = L->SSL_read(ssl, buf, sizeof buf - 1);
    CHECK_INT(n, 4);
    CHECK_MEM(buf, "ping", 4);
    CHECK_INT(L->SSL_pending(ssl), 0);
    CHECK_INT(L->SSL_write(ssl, "pong", 4), 4);
    L->SSL_shutdown(ssl);
    REQUIRE_INT(pthread_join(t, NULL), 0);
    CHECK_INT(c.handshake, 1);
    CHECK_INT(c.verify, X509_V_OK);
    CHECK_STR(c.got, "pong");
    L->SSL_free(ssl);
    L->SSL_CTX_free(ctx);
    close(sv[0]);
    close(sv[1]);

    /* A key that does not exist is refused with OpenSSL's error queue set. */
    SSL_CTX *bad = L->SSL_CTX_new(L->TLS_server_method());
    CHECK_INT(L->SSL_CTX_use_PrivateKey_file(bad, "/nonexistent/key.pem", SSL_FILETYPE_PEM), 0);
    CHECK(L->ERR_get_error() != 0);
    L->ERR_clear_error();
    L->SSL_CTX_free(bad);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

TEST_MAIN()
