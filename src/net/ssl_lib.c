/*
 * OpenSSL's table of functions, filled once per process (ssl_lib.h says
 * why OpenSSL is opened rather than linked).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "net/ssl_lib.h"

static eryx__ssl_lib lib;
static const eryx__ssl_lib *loaded; /* &lib once every field is set */
static char why_not[300];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* RTLD_LOCAL: the embedder may link an OpenSSL of its own, which ours must
 * not interpose on (or be interposed on by) through the global scope. */
static void *open_lib(const char *soname)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        snprintf(why_not, sizeof why_not, "cannot load OpenSSL: %s", dlerror());
    return h;
}

static void load(void)
{
    void *crypto = open_lib(ERYX_LIBCRYPTO_SONAME);
    void *ssl = crypto ? open_lib(ERYX_LIBSSL_SONAME) : NULL;
    if (!ssl)
        return;
#define SYM(h, soname, name)                                                        \
    if (!(*(void **)&lib.name = dlsym(h, #name))) {                                 \
        snprintf(why_not, sizeof why_not, "cannot load OpenSSL: %s has no %s",       \
                 soname, #name);                                                    \
        return;                                                                     \
    }
#define CRYPTO_SYM(name) SYM(crypto, ERYX_LIBCRYPTO_SONAME, name)
#define SSL_SYM(name) SYM(ssl, ERYX_LIBSSL_SONAME, name)
    ERYX__SSL_CRYPTO_FUNCS(CRYPTO_SYM)
    ERYX__SSL_SSL_FUNCS(SSL_SYM)
#undef SSL_SYM
#undef CRYPTO_SYM
#undef SYM
    loaded = &lib; /* published by pthread_once's own synchronisation */
}

const eryx__ssl_lib *eryx__ssl_load(const char **why)
{
    pthread_once(&once, load);
    if (!loaded && why)
        *why = why_not;
    return loaded;
}
