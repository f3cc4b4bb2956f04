/*
 * SQLite's file locks inside a sandbox (docs/batteries.md, "Locking").
 *
 * The guest's SQLite is built with "unix-none" as its default VFS: WASI has
 * no fcntl locks, and the dot-file locks of SQLite's WASI default outlive a
 * sandbox stopped in the middle of a write. But without locks two
 * connections of one sandbox to one file are not kept apart either.
 *
 * The plain "unix" VFS fixes that. It settles the locks between the
 * connections of one process itself, in a table of its own keyed by the
 * file's device and inode, and asks fcntl only about other processes. A
 * sandbox is one process that shares nothing with the others: the fcntl
 * given to SQLite here grants every byte-range lock and reports every range
 * free. Each sandbox then locks correctly inside, and a stopped one leaves
 * nothing behind but a hot journal, which the next connection rolls back.
 *
 * Done here, at the guest's start, rather than in the SQLite build
 * (guest/clibs): that is part of the key of the CPython build, which this
 * change would then redo in full.
 */
#include <fcntl.h>
#include <stdarg.h>

#include "sqlite3.h"

int eryx_sqlite_use_unix_locks(void);

/* WASI's headers have no lock commands; SQLite's os_unix.c then defines
 * them (SQLITE_WASI), as these lines do from the same headers. */
#ifndef F_RDLCK
#define F_RDLCK 0
#define F_WRLCK 1
#define F_UNLCK 2
#if __LONG_MAX == 0x7fffffffL
#define F_GETLK 12
#define F_SETLK 13
#define F_SETLKW 14
#else
#define F_GETLK 5
#define F_SETLK 6
#define F_SETLKW 7
#endif
#endif

/* fcntl as SQLite calls it: the lock commands are granted, every other
 * command (F_GETFD and F_SETFD when it opens a file) goes to WASI's. */
static int sandbox_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int rc;
    if (cmd == F_GETLK) {
        struct flock *lock = va_arg(ap, struct flock *);
        lock->l_type = F_UNLCK; /* no other process holds any of it */
        rc = 0;
    } else if (cmd == F_SETLK || cmd == F_SETLKW) {
        rc = 0;
    } else {
        rc = fcntl(fd, cmd, va_arg(ap, int));
    }
    va_end(ap);
    return rc;
}

/* Makes "unix" with the fcntl above the default VFS. 0, or -1 if this
 * SQLite lacks it (a build error: guest/clibs/sqlite3.sh). */
int eryx_sqlite_use_unix_locks(void)
{
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
    if (!unix_vfs || !unix_vfs->xSetSystemCall)
        return -1;
    if (unix_vfs->xSetSystemCall(unix_vfs, "fcntl", (sqlite3_syscall_ptr)sandbox_fcntl) != SQLITE_OK)
        return -1;
    return sqlite3_vfs_register(unix_vfs, 1) == SQLITE_OK ? 0 : -1;
}
