/*
 * The virtual filesystem the guest sees through WASI.
 *
 * One tree per sandbox, made of:
 * - read-only file images in memory (the stdlib image embedded in liberyx),
 *   shared by every sandbox and never copied;
 * - an in-memory writable directory (/tmp), with a byte quota;
 * - host directories mounted read-only or read-write, resolved with
 *   openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) so no path leaves them.
 *
 * The WASI layer (src/wasi/) is the only user. Paths given here are absolute
 * guest paths, already normalised by the caller or not: the VFS normalises
 * ".", ".." and repeated slashes itself and never lets ".." climb above "/".
 */
#ifndef ERYX_VFS_H
#define ERYX_VFS_H

#include <stddef.h>
#include <stdint.h>

/* Read-only file image format ("ERYXIMG1"), produced by guest/pack_stdlib.py:
 *   char magic[8] = "ERYXIMG1";
 *   uint32_t count, reserved;               little endian
 *   struct { uint32_t path_off, path_len, data_off, data_len; } entry[count];
 *   then path bytes and file data, at the offsets given (from image start).
 * Entries are regular files, sorted by path (bytewise), paths relative to the
 * mount point without a leading slash ("json/__init__.pyc"). Directories are
 * implied by the paths. */
#define ERYX_IMAGE_MAGIC "ERYXIMG1"

typedef struct eryx__vfs eryx__vfs;

/* Checks an image's header and every entry's bounds and order. Returns 0 if
 * it is well formed, -1 otherwise. */
int eryx__image_validate(const void *image, size_t size);

/* Of an image that validated: its entry count; entry i's path (not
 * NUL-terminated) and data, pointing into the image; the index of the
 * file at path[0..len), or -1. */
uint32_t eryx__image_count(const void *image);
void eryx__image_entry(const void *image, uint32_t i, const char **path, size_t *path_len,
                       const uint8_t **data, size_t *data_len);
int eryx__image_find(const void *image, const char *path, size_t len);

eryx__vfs *eryx__vfs_new(uint64_t tmp_quota_bytes);

/* The process's test of a host inode that no sandbox may write through a
 * mount (opened for writing or truncation, written, truncated: ETXTBSY),
 * or NULL (the default) for none. Thread-safe; the core sets it when it
 * first maps a runtime image from a file (core/image_file.c). */
void eryx__vfs_set_write_guard(int (*refused)(uint64_t dev, uint64_t ino));

/* Changes the /tmp quota (a clone's new owner sets its own). What is already
 * stored stays, even above the new quota. */
void eryx__vfs_set_tmp_quota(eryx__vfs *vfs, uint64_t tmp_quota_bytes);
void eryx__vfs_free(eryx__vfs *vfs);

/* Host memory all directory snapshots of one vfs may hold together, on top
 * of the /tmp quota (each open directory being listed keeps one: names,
 * inode numbers, types; ~70 bytes an entry). Past it, listing fails with
 * ENOMEM. Listings the host makes itself (saving a session) are not
 * counted. */
#define ERYX__VFS_LIST_QUOTA_DEFAULT (16u << 20)
void eryx__vfs_set_list_quota(eryx__vfs *vfs, uint64_t bytes);

/* What the guest may add to the writable host mounts of one vfs, together:
 * file growth, plus 4 KiB per file or directory it creates; shrinking and
 * removing give back (never below zero). Past it, the write, truncate,
 * create or mkdir fails with EDQUOT. eryx__vfs_host_used tells the count. */
#define ERYX__VFS_HOST_QUOTA_DEFAULT (1ull << 30)
void eryx__vfs_set_host_quota(eryx__vfs *vfs, uint64_t bytes);
uint64_t eryx__vfs_host_used(const eryx__vfs *vfs);

/* Mounts. The image memory is borrowed and must outlive the vfs; host_dir is
 * opened now (O_PATH|O_DIRECTORY) and kept open. Return 0, or a negative errno. */
int eryx__vfs_mount_image(eryx__vfs *vfs, const char *guest_path,
                          const void *image, size_t size);
int eryx__vfs_mount_tmp(eryx__vfs *vfs, const char *guest_path);
/* Serves another image at the image mount guest_path (normalised, as it
 * was mounted) from now on; the old image is no longer referenced. Open
 * files of that mount name entries by index, so none may be open
 * (eryx__wasi_replace_image checks a sandbox's fd table). Clones made
 * before still borrow the old image. 0, -EINVAL for a malformed image, or -ENOENT
 * when no image is mounted there. */
int eryx__vfs_replace_image(eryx__vfs *vfs, const char *guest_path, const void *image,
                            size_t size);
int eryx__vfs_mount_host(eryx__vfs *vfs, const char *guest_path,
                         const char *host_dir, int read_only);

/* The file operations the WASI layer needs are declared in vfs_ops.h, which
 * the vfs/wasi implementation owns. */

#endif
