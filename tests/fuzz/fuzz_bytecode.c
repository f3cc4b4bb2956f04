/*
 * The packages' bytecode (src/core/packages.c, eryx__packages_add_bytecode):
 * the fuzzer's bytes as the image the template's compile step hands back
 * (guest/python/_eryx/bytecode.py), added to a fixed packages image of
 * three modules and a stale __pycache__ file. The guest writes those bytes,
 * so nothing is trusted: the image's structure, then every entry's path.
 * Property: a refusal has a message and no image; an accepted image
 * validates, keeps every file of the packages, and adds only bytecode
 * paths ("__pycache__/" + ERYX__PYC_SUFFIX).
 */
#include "core/packages.h"
#include "core/internal.h"
#include "fuzz.h"
#include "le.h"
#include "vfs/vfs.h"

static const char *const pkg_paths[] = {"__pycache__/t.cpython-313.pyc", "a/b.py",
                                        "a/c/d.py", "t.py"};
enum { N_PKG = sizeof pkg_paths / sizeof pkg_paths[0] };
static uint8_t packages[512];
static size_t packages_size;

/* The fixed packages: each path's data is the path itself. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    uint32_t at = 16 + 16 * N_PKG, n = N_PKG;
    memcpy(packages, ERYX_IMAGE_MAGIC, 8);
    memcpy(packages + 8, &n, 4);
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < N_PKG; i++) {
            uint32_t len = (uint32_t)strlen(pkg_paths[i]);
            memcpy(packages + 16 + 16 * i + 8 * pass, &at, 4);
            memcpy(packages + 20 + 16 * i + 8 * pass, &len, 4);
            memcpy(packages + at, pkg_paths[i], len);
            at += len;
        }
    }
    packages_size = at;
    FUZZ_CHECK(eryx__image_validate(packages, packages_size) == 0);
    return 0;
}

static int has(const uint8_t *img, const char *path, size_t len)
{
    for (uint32_t i = 0; i < eryx__le32(img + 8); i++) {
        const uint8_t *e = img + 16 + 16 * (size_t)i;
        if (eryx__le32(e + 4) == len && memcmp(img + eryx__le32(e), path, len) == 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *img = NULL;
    size_t len = 0, left = 0;
    eryx__clear_errmsg(NULL);
    int rc = eryx__packages_add_bytecode(packages, packages_size, data, size, &img, &len, &left);
    if (rc != ERYX_OK) {
        FUZZ_CHECK(img == NULL);
        FUZZ_CHECK(rc == ERYX_INIT || rc == ERYX_NOMEM || rc == ERYX_INVALID);
        FUZZ_CHECK(eryx__errmsg(NULL)[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(img && eryx__image_validate(img, len) == 0);
    FUZZ_CHECK(left == 0);
    for (uint32_t i = 0; i < N_PKG; i++)
        FUZZ_CHECK(has(img, pkg_paths[i], strlen(pkg_paths[i])));
    static const char suffix[] = ERYX__PYC_SUFFIX;
    for (uint32_t i = 0; i < eryx__le32(img + 8); i++) {
        const uint8_t *e = img + 16 + 16 * (size_t)i;
        const char *p = (const char *)img + eryx__le32(e);
        size_t plen = eryx__le32(e + 4);
        if (has(packages, p, plen))
            continue;
        FUZZ_CHECK(plen > sizeof suffix && memmem(p, plen, "__pycache__/", 12) &&
                   memcmp(p + plen - (sizeof suffix - 1), suffix, sizeof suffix - 1) == 0);
    }
    free(img);
    return 0;
}
