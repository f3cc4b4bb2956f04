/*
 * Saving the in-memory trees (/tmp) and open files to bytes and back, for
 * session files (src/core/session_file.c via src/wasi/wasi_persist.c).
 *
 * Files are saved by what they are, not by pointer: a /tmp file by its
 * contents and timestamps, an open file by the path that names it now (found
 * by inode for /tmp files, which may have been renamed since they were
 * opened) or, for a /tmp file no name reaches any more (unlinked while
 * open), by its contents as an "orphan". Loading recreates the tree through
 * the ordinary VFS operations, so the loading sandbox's quota applies, and
 * reopens files by path in the loading sandbox's tree (its mounts may
 * differ: a file that cannot be reopened is reported, not invented).
 *
 * The byte format is little endian and versioned by the session file that
 * holds it; every length and count is checked on reading, and a path is
 * only ever created inside an in-memory mount.
 */
#ifndef ERYX_VFS_PERSIST_H
#define ERYX_VFS_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "vfs_ops.h"

/* A growable output buffer; after a failed allocation `err` is set and
 * further puts do nothing. */
typedef struct eryx__blob {
    uint8_t *p;
    size_t len, cap;
    int err;
} eryx__blob;

void eryx__blob_put(eryx__blob *b, const void *data, size_t n);
void eryx__blob_u8(eryx__blob *b, uint8_t v);
void eryx__blob_u32(eryx__blob *b, uint32_t v);
void eryx__blob_u64(eryx__blob *b, uint64_t v);
void eryx__blob_str(eryx__blob *b, const char *s);      /* u32 length + bytes */

/* Reading: every get fails (returns -1, sets `bad`) past the end. */
typedef struct eryx__blob_reader {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} eryx__blob_reader;

int eryx__blob_get(eryx__blob_reader *r, void *out, size_t n);
int eryx__blob_get_u8(eryx__blob_reader *r, uint8_t *v);
int eryx__blob_get_u32(eryx__blob_reader *r, uint32_t *v);
int eryx__blob_get_u64(eryx__blob_reader *r, uint64_t *v);
/* A string of at most cap - 1 bytes, without NUL bytes, NUL-terminated. */
int eryx__blob_get_str(eryx__blob_reader *r, char *out, size_t cap);

/* What the saving side knows about the /tmp files it wrote: inode -> path,
 * to name open files. */
typedef struct eryx__vfs_saved eryx__vfs_saved;

/* Appends every in-memory tree of vfs to b. *saved (free with
 * eryx__vfs_saved_free) is then used to describe open files. 0 or a
 * negative errno. */
int eryx__vfs_save_tmp(eryx__vfs *vfs, eryx__blob *b, eryx__vfs_saved **saved);
void eryx__vfs_saved_free(eryx__vfs_saved *saved);

/* Appends how to reopen f: its current path, or its contents as an orphan. */
int eryx__vfs_save_file(eryx__vfs_file *f, const eryx__vfs_saved *saved, eryx__blob *b);

/* Recreates the trees saved by eryx__vfs_save_tmp in vfs, whose in-memory
 * trees are empty. 0, -EINVAL for a malformed or hostile blob (also for
 * records out of the order eryx__vfs_save_tmp writes, or with paths not
 * in canonical form: see in_order in vfs_persist.c), or the error of the
 * operation that failed (-ENOSPC past the quota). Linear in the blob. */
int eryx__vfs_restore_tmp(eryx__vfs *vfs, eryx__blob_reader *r);

/* Reopens a file saved by eryx__vfs_save_file (an unlinked one made again
 * in no directory, as it was). Returns 0 with *out set, a negative errno
 * if it could not be reopened (the record was still consumed: *path tells
 * which file it was), or -EINVAL for a malformed record (the reader is
 * then unusable). path must hold ERYX__VFS_PATH_MAX. */
int eryx__vfs_restore_file(eryx__vfs *vfs, eryx__blob_reader *r, char *path,
                           eryx__vfs_file **out);

#endif
