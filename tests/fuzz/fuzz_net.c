/*
 * The network layer's decoders of untrusted bytes (src/net/): the base64
 * of the guest's operations, the scrubbing of what peers send (a secret's
 * value replaced, a possible start held back), and the parsers of rules,
 * pins and addresses (embedder input, and the guest's host names).
 *
 * Input: a selector byte, then the data.
 * Properties: base64 decodes what it encoded and nothing else crashes;
 * after replacing a value nothing of it is left; the held-back tail is a
 * proper prefix of the value; a parsed rule matches consistently.
 */
#include <string.h>

#include "fuzz.h"
#include "net/base64.h"
#include "net/policy.h"
#include "net/secrets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t op = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char text[512];
    size_t tn = n < sizeof text - 1 ? n : sizeof text - 1;
    memcpy(text, p, tn);
    text[tn] = '\0';
    switch (op % 5) {
    case 0: { /* base64 from the guest, and back */
        uint8_t *out;
        size_t len;
        if (eryx__b64_decode((const char *)p, n, &out, &len) == 0) {
            size_t elen;
            char *again = eryx__b64_encode(out, len, &elen);
            FUZZ_CHECK(again && elen == n && memcmp(again, p, n) == 0);
            free(again);
            free(out);
        }
        break;
    }
    case 1: { /* bytes from a peer: the value scrubbed */
        static const char value[] = "tok-0123456789";
        static const char ph[] = "ERYX_SECRET_abcdefghijkl";
        size_t len;
        uint8_t *r = eryx__replace_all(p, n, value, sizeof value - 1, ph, sizeof ph - 1, &len);
        if (r) {
            FUZZ_CHECK(memmem(r, len, value, sizeof value - 1) == NULL);
            if (r != p)
                free(r);
        }
        break;
    }
    case 2: { /* a rule */
        eryx__rule r;
        if (eryx__rule_parse(text, &r) == 0) {
            eryx__addr a;
            memset(&a, 0, sizeof a);
            int m1 = eryx__rule_matches(&r, "api.example.com", &a, 443);
            int m2 = eryx__rule_matches(&r, "api.example.com", &a, 443);
            FUZZ_CHECK(m1 == m2);
            eryx__rule_clear(&r);
        }
        break;
    }
    case 3: { /* an address in any spelling */
        eryx__addr a;
        if (eryx__addr_parse(text, &a)) {
            char back[64];
            eryx__addr_format(&a, back, sizeof back);
            eryx__addr b;
            FUZZ_CHECK(eryx__addr_parse(back, &b) && memcmp(&a, &b, sizeof a) == 0);
            (void)eryx__addr_special(&a);
        }
        char out[300];
        if (eryx__host_normalise(text, out, sizeof out) == 0)
            FUZZ_CHECK(strlen(out) <= 253);
        break;
    }
    default: { /* a pin and a policy decision */
        eryx__policy pol;
        char err[300], why[400];
        const char *pins[] = {text};
        const char *allow[] = {"*.example.com", "10.0.0.0/8"};
        if (!eryx__policy_init(&pol, allow, 2, NULL, 0, pins, 1, err, sizeof err)) {
            const eryx__addr *a = eryx__policy_pin(&pol, pol.pins[0].name, pol.pins[0].port);
            FUZZ_CHECK(a != NULL);
            (void)eryx__policy_check(&pol, pol.pins[0].name, a, pol.pins[0].port, why,
                                     sizeof why);
            eryx__policy_clear(&pol);
        }
        break;
    }
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
