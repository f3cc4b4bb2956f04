/*
 * Wheels (src/core/packages.c): the fuzzer's bytes as a .whl file, unpacked
 * into a packages image as eryx_runtime_new does with
 * eryx_runtime_config.wheels. libzip parses the archive; what is ours is
 * what comes after: member names (outside the root, native code, the
 * .data directories), the WHEEL metadata, sizes against the limits, the
 * CRC check, the image. Property: a wheel is refused with a message, or it
 * gives an image that validates and whose every path is relative, without
 * "." or ".." components (eryx__image_validate checks that too).
 */
#include <unistd.h>

#include "core/packages.h"
#include "core/internal.h"
#include "fuzz.h"
#include "vfs/vfs.h"

static char dir[64], path[128];

static void remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/eryx-fuzz-wheel-XXXXXX");
    FUZZ_CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.whl", dir);
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && (size == 0 || fwrite(data, 1, size, f) == size) && fclose(f) == 0);
    const char *wheels[] = {path};
    uint8_t *img = NULL;
    size_t len = 0;
    eryx__clear_errmsg(NULL);
    int rc = eryx__packages_build(NULL, 0, wheels, 1, &img, &len);
    if (rc != ERYX_OK) {
        FUZZ_CHECK(img == NULL);
        FUZZ_CHECK(rc == ERYX_INVALID || rc == ERYX_IO || rc == ERYX_NOMEM);
        FUZZ_CHECK(eryx__errmsg(NULL)[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(img && eryx__image_validate(img, len) == 0);
    free(img);
    return 0;
}
