/*
 * Secrets the guest may use but never see (src/net/net.c applies them).
 *
 * Inside the sandbox a secret's environment variable holds a placeholder:
 * "ERYX_SECRET_" and random letters and digits, as long as the real value
 * (at least 24 characters), different in every sandbox. On a connection to
 * a host the secret is allowed for, the host writes the real value in place
 * of the placeholder wherever it appears in the bytes the guest sends
 * (headers and bodies alike: the same length keeps Content-Length right for
 * values of 24 characters or more); the placeholder sent anywhere else
 * fails the write. In what comes back on a connection to one of its hosts,
 * the real value is replaced by the placeholder before the guest reads it
 * (net.c's scrub_in).
 */
#ifndef ERYX_NET_SECRETS_H
#define ERYX_NET_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "net/policy.h"

#define ERYX__PLACEHOLDER_PREFIX "ERYX_SECRET_"
#define ERYX__PLACEHOLDER_MIN 24

typedef struct eryx__secret {
    char *name;                 /* the environment variable */
    char *value;
    size_t value_len;
    char *placeholder;          /* NUL-terminated, placeholder_len bytes */
    size_t placeholder_len;
    eryx__rule *hosts;          /* where the value may go */
    size_t n_hosts;
} eryx__secret;

/* Copies a secret and makes its placeholder from the host's entropy.
 * 0, or -1 with err set (a bad name, an empty value, a host rule that
 * does not parse). */
int eryx__secret_init(eryx__secret *s, const char *name, const char *value,
                      const char *const *hosts, size_t n_hosts, char *err, size_t errsize);
void eryx__secret_clear(eryx__secret *s);

/* 1 if the secret may go to host (normalised name or NULL) / a / port. */
int eryx__secret_allowed(const eryx__secret *s, const char *host, const eryx__addr *a,
                         uint16_t port);

/* Replaces every occurrence of from (flen > 0) in data by to. Returns the
 * new buffer (malloc'd, *outlen set) when something was replaced, data
 * itself when nothing was, NULL when out of memory. */
uint8_t *eryx__replace_all(const uint8_t *data, size_t len, const char *from, size_t flen,
                           const char *to, size_t tlen, size_t *outlen);

#endif
