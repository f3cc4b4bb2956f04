/*
 * Base64 (base64.h).
 */
#include "net/base64.h"

#include <stdlib.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *eryx__b64_encode(const uint8_t *p, size_t n, size_t *outlen)
{
    size_t len = (n + 2) / 3 * 4;
    char *o = malloc(len + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        o[j++] = alphabet[(v >> 18) & 63];
        o[j++] = alphabet[(v >> 12) & 63];
        o[j++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        o[j++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    o[j] = '\0';
    *outlen = j;
    return o;
}

static int value_of(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int eryx__b64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    if (n % 4)
        return -1;
    uint8_t *o = malloc(n / 4 * 3 + 1);
    if (!o)
        return -1;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)s[i + k];
            if (ch == '=' && i + 4 == n && k >= 2 && (k == 3 || s[i + 3] == '=')) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = value_of(ch)) < 0) {
                free(o);
                return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))) {
            free(o); /* bits past the end: not the canonical encoding */
            return -1;
        }
        o[j++] = (uint8_t)(w >> 16);
        if (pad < 2)
            o[j++] = (uint8_t)(w >> 8);
        if (pad < 1)
            o[j++] = (uint8_t)w;
    }
    *out = o;
    *outlen = j;
    return 0;
}
