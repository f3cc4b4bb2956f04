/*
 * Secrets: placeholders, substitution and scrubbing (secrets.h).
 */
#include "net/secrets.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static int valid_env_name(const char *name)
{
    if (!name || !(isalpha((unsigned char)name[0]) || name[0] == '_'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return 0;
    return strlen(name) <= 128;
}

static int make_placeholder(eryx__secret *s)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t prefix = strlen(ERYX__PLACEHOLDER_PREFIX);
    size_t len = s->value_len > ERYX__PLACEHOLDER_MIN ? s->value_len : ERYX__PLACEHOLDER_MIN;
    s->placeholder = malloc(len + 1);
    if (!s->placeholder)
        return -1;
    memcpy(s->placeholder, ERYX__PLACEHOLDER_PREFIX, prefix);
    for (size_t i = prefix; i < len;) {
        uint8_t rnd[64];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            return -1;
        /* 62 letters: bytes of 248 and over are dropped (no bias). */
        for (size_t j = 0; j < sizeof rnd && i < len; j++)
            if (rnd[j] < 248)
                s->placeholder[i++] = alphabet[rnd[j] % 62];
    }
    s->placeholder[len] = '\0';
    s->placeholder_len = len;
    return 0;
}

int eryx__secret_init(eryx__secret *s, const char *name, const char *value,
                      const char *const *hosts, size_t n_hosts, char *err, size_t errsize)
{
    memset(s, 0, sizeof *s);
    if (!valid_env_name(name)) {
        snprintf(err, errsize, "secret name \"%.100s\" is not an environment variable name",
                 name ? name : "(null)");
        return -1;
    }
    if (!value || !*value) {
        snprintf(err, errsize, "secret %s has an empty value", name);
        return -1;
    }
    if (!(s->name = strdup(name)) || !(s->value = strdup(value)) ||
        !(s->hosts = calloc(n_hosts + 1, sizeof *s->hosts)))
        goto nomem;
    s->value_len = strlen(value);
    for (; s->n_hosts < n_hosts; s->n_hosts++)
        if (!hosts[s->n_hosts] || eryx__rule_parse(hosts[s->n_hosts], &s->hosts[s->n_hosts]) < 0) {
            snprintf(err, errsize, "secret %s: host rule \"%.100s\" does not parse%s", name,
                     hosts[s->n_hosts] ? hosts[s->n_hosts] : "(null)",
                     eryx__rule_hint(hosts[s->n_hosts]));
            eryx__secret_clear(s);
            return -1;
        }
    if (make_placeholder(s) < 0)
        goto nomem;
    return 0;
nomem:
    snprintf(err, errsize, "out of memory (or no entropy) copying secret %s", name);
    eryx__secret_clear(s);
    return -1;
}

void eryx__secret_clear(eryx__secret *s)
{
    if (s->value)
        memset(s->value, 0, s->value_len);
    free(s->value);
    free(s->name);
    free(s->placeholder);
    for (size_t i = 0; i < s->n_hosts; i++)
        eryx__rule_clear(&s->hosts[i]);
    free(s->hosts);
    memset(s, 0, sizeof *s);
}

int eryx__secret_allowed(const eryx__secret *s, const char *host, const eryx__addr *a,
                         uint16_t port)
{
    for (size_t i = 0; i < s->n_hosts; i++)
        if (eryx__rule_matches(&s->hosts[i], host, a, port))
            return 1;
    return 0;
}

uint8_t *eryx__replace_all(const uint8_t *data, size_t len, const char *from, size_t flen,
                           const char *to, size_t tlen, size_t *outlen)
{
    size_t count = 0;
    const uint8_t *p = data, *end = data + len;
    while ((p = memmem(p, (size_t)(end - p), from, flen))) {
        count++;
        p += flen;
    }
    *outlen = len;
    if (!count)
        return (uint8_t *)data;
    size_t n = len - count * flen + count * tlen;
    uint8_t *out = malloc(n ? n : 1), *o = out;
    if (!out)
        return NULL;
    p = data;
    const uint8_t *hit;
    while ((hit = memmem(p, (size_t)(end - p), from, flen))) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, to, tlen);
        o += tlen;
        p = hit + flen;
    }
    memcpy(o, p, (size_t)(end - p));
    *outlen = n;
    return out;
}
