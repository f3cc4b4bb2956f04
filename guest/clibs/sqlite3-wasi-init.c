/*
 * Linked into the guest's SQLite (guest/clibs/sqlite3.sh): SQLite calls
 * eryx_sqlite3_wasi_init at the end of sqlite3_initialize
 * (SQLITE_EXTRA_INIT).
 *
 * SQLite's unix VFSes seed their random generator from /dev/urandom, which a
 * sandbox does not have; without it they fall back to the time of day, so
 * two sandboxes started in the same second would draw the same random(),
 * randomblob() and temporary file names. This gives every unix VFS a
 * randomness source backed by WASI's random_get (getentropy) instead.
 */
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "sqlite3.h"

int eryx_sqlite3_wasi_init(const char *unused);

static int wasi_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    if (n <= 0)
        return 0;
    memset(out, 0, (size_t)n);
    /* getentropy fills at most 256 bytes a call. */
    for (int done = 0; done < n;) {
        size_t chunk = (size_t)(n - done) > 256 ? 256 : (size_t)(n - done);
        if (getentropy(out + done, chunk) != 0)
            break;
        done += (int)chunk;
    }
    return n;
}

int eryx_sqlite3_wasi_init(const char *unused)
{
    static const char *const names[] = {"unix", "unix-none", "unix-dotfile", "unix-excl"};
    (void)unused;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        sqlite3_vfs *vfs = sqlite3_vfs_find(names[i]);
        if (vfs)
            vfs->xRandomness = wasi_randomness;
    }
    return SQLITE_OK;
}
