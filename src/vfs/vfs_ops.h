/*
 * File operations of the VFS, as the WASI layer uses them.
 *
 * Paths are absolute guest paths ("/tmp/x"); every entry point normalises
 * them again (".", "..", repeated slashes; ".." never climbs above "/"), so a
 * caller cannot reach outside the tree by any spelling. Errors are negative
 * host errno values (-ENOENT, ...); the WASI layer maps them to WASI errnos.
 *
 * Resolution: a path belongs to the mount with the longest matching prefix.
 * A path that is an ancestor of a mount point ("/", "/usr") but holds nothing
 * else is a virtual, read-only directory whose children are the next
 * components of the mount points below it.
 *
 * Lifetime: an eryx__vfs_file borrows its vfs, so every file is closed
 * before eryx__vfs_free(). A file of the in-memory tree keeps working after
 * it is unlinked.
 */
#ifndef ERYX_VFS_OPS_H
#define ERYX_VFS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "vfs.h"

/* Longest guest path, in bytes, including the terminating NUL. */
#define ERYX__VFS_PATH_MAX 4096
/* Longest single path component. */
#define ERYX__VFS_NAME_MAX 255
/* Deepest directory in an in-memory tree, counted from the mount point:
 * mkdir or rename past it fails with ENAMETOOLONG. Without a bound, mkdir
 * and rename in a loop build chains deeper than any path could name (and
 * a session holding one could not be saved, its paths being too long);
 * 1024 levels of one-byte names still fit in ERYX__VFS_PATH_MAX. */
#define ERYX__VFS_MAX_DEPTH 1024

/* File types: the same numbers as WASI filetype, so the WASI layer passes
 * them through. */
enum {
    ERYX__VFS_T_UNKNOWN = 0,
    ERYX__VFS_T_DIR = 3,
    ERYX__VFS_T_REG = 4,
    ERYX__VFS_T_SYMLINK = 7
};

/* eryx__vfs_open flags. */
enum {
    ERYX__VFS_O_READ = 1,
    ERYX__VFS_O_WRITE = 2,
    ERYX__VFS_O_CREAT = 4,
    ERYX__VFS_O_EXCL = 8,
    ERYX__VFS_O_TRUNC = 16,
    ERYX__VFS_O_DIRECTORY = 32,
    ERYX__VFS_O_NOFOLLOW = 64
};

/* eryx__vfs_futimes / eryx__vfs_utimes flags: the same bits as WASI fstflags. */
enum {
    ERYX__VFS_SET_ATIM = 1,
    ERYX__VFS_SET_ATIM_NOW = 2,
    ERYX__VFS_SET_MTIM = 4,
    ERYX__VFS_SET_MTIM_NOW = 8
};

typedef struct eryx__vfs_attr {
    uint64_t dev, ino, nlink, size;
    uint64_t atim, mtim, ctim;      /* nanoseconds since the Unix epoch */
    uint8_t type;                   /* ERYX__VFS_T_* */
} eryx__vfs_attr;

typedef struct eryx__vfs_dirent {
    const char *name;               /* borrowed: see eryx__vfs_readdir */
    size_t name_len;
    uint64_t ino;
    uint8_t type;
} eryx__vfs_dirent;

typedef struct eryx__vfs_file eryx__vfs_file;

/* Joins `path` (path_len bytes, not NUL-terminated, from the guest) onto the
 * absolute directory `base` and normalises the result into out[cap]. A path
 * starting with "/" ignores base. *trailing_slash (may be NULL) tells whether
 * the path ended in "/" (POSIX: it must then name a directory). Returns the
 * length, -ENAMETOOLONG, or -EINVAL for an embedded NUL. */
int eryx__vfs_path_join(const char *base, const char *path, size_t path_len,
                        char *out, size_t cap, int *trailing_slash);

/* Opens a file or directory. */
int eryx__vfs_open(eryx__vfs *vfs, const char *path, int flags, eryx__vfs_file **out);
void eryx__vfs_close(eryx__vfs_file *f);

/* The normalised absolute guest path the file was opened by (owned by f). */
const char *eryx__vfs_file_path(const eryx__vfs_file *f);
uint8_t eryx__vfs_file_type(const eryx__vfs_file *f);
/* Whether writes through f are possible at all (writable mount and opened
 * for writing). */
int eryx__vfs_file_writable(const eryx__vfs_file *f);

/* Positional I/O; *n receives the byte count (0 at end of file). */
int eryx__vfs_pread(eryx__vfs_file *f, void *buf, size_t len, uint64_t off, size_t *n);
int eryx__vfs_pwrite(eryx__vfs_file *f, const void *buf, size_t len, uint64_t off,
                     size_t *n);
int eryx__vfs_fstat(eryx__vfs_file *f, eryx__vfs_attr *st);
int eryx__vfs_ftruncate(eryx__vfs_file *f, uint64_t size);
int eryx__vfs_futimes(eryx__vfs_file *f, uint64_t atim, uint64_t mtim, int flags);

/* Directory listing by cookie: cookie 0 takes a fresh snapshot of the
 * directory, cookie n is the n-th entry of the current snapshot, so cookies
 * stay stable while the guest pages through. "." and ".." are not listed.
 * Returns 0 with *ent filled (ent->name valid until the next cookie-0 call or
 * close), 1 past the end, or a negative errno. */
int eryx__vfs_readdir(eryx__vfs_file *f, uint64_t cookie, eryx__vfs_dirent *ent);

/* Path operations. `follow` follows a final symlink (host mounts only). */
int eryx__vfs_stat(eryx__vfs *vfs, const char *path, int follow, eryx__vfs_attr *st);
int eryx__vfs_utimes(eryx__vfs *vfs, const char *path, int follow, uint64_t atim,
                     uint64_t mtim, int flags);
int eryx__vfs_mkdir(eryx__vfs *vfs, const char *path);
int eryx__vfs_rmdir(eryx__vfs *vfs, const char *path);
int eryx__vfs_unlink(eryx__vfs *vfs, const char *path);
int eryx__vfs_rename(eryx__vfs *vfs, const char *from, const char *to);
/* Reads a symlink's target (not NUL-terminated) into buf[cap]; -EINVAL if
 * the path is not a symlink. */
int eryx__vfs_readlink(eryx__vfs *vfs, const char *path, char *buf, size_t cap,
                       size_t *len);

/* A deep copy of src with copies of the given files open in it (see
 * vfs_clone.c for what is shared, copied or dup'ed): out_files[i] is the copy
 * of files[i] (NULL entries stay NULL). The copy shares nothing mutable with
 * src. Only reads src: several threads may clone one vfs at once while
 * nothing modifies it. NULL on failure (nothing is left open). */
eryx__vfs *eryx__vfs_clone(const eryx__vfs *src, eryx__vfs_file *const *files, size_t nfiles,
                           eryx__vfs_file **out_files);

/* Bytes the in-memory trees currently hold against the quota. */
uint64_t eryx__vfs_tmp_used(const eryx__vfs *vfs);

#endif
