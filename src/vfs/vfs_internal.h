/*
 * Shared between the VFS files: the mount table, the open-file structure and
 * the interface of each backend (image, memfs, host). vfs.c resolves a guest
 * path to (mount, relative path) and dispatches; relative paths are
 * normalised, have no leading slash, and are "" for the mount's root.
 */
#ifndef ERYX_VFS_INTERNAL_H
#define ERYX_VFS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "vfs.h"
#include "vfs_ops.h"

enum { VFS_MNT_IMAGE, VFS_MNT_TMP, VFS_MNT_HOST };

typedef struct vfs_image {
    const uint8_t *base;
    size_t size;
    uint32_t count;
} vfs_image;

typedef struct memfs_node memfs_node;

typedef struct vfs_mount {
    char *path;                 /* normalised absolute guest path */
    size_t len;
    int kind;
    uint64_t dev;               /* st_dev reported for everything in it */
    union {
        vfs_image img;
        memfs_node *mroot;
        struct {
            int dirfd;          /* O_PATH directory: the resolution root */
            int read_only;
        } host;
    } u;
} vfs_mount;

struct eryx__vfs {
    vfs_mount **mounts;
    size_t nmounts;
    uint64_t tmp_quota, tmp_used;
    uint64_t next_ino;          /* memfs inode numbers */
    uint64_t list_quota, list_used;     /* host memory of directory snapshots */
    uint64_t host_quota, host_used;     /* growth of writable host mounts */
    eryx__vfs_file *host_files;         /* open host regular files (vfs_host.c) */
};

/* A growable directory snapshot (for cookie-based readdir). Its host
 * memory is charged to acct's list quota (when acct is set): every open
 * directory may hold one, and the guest decides how many are open. */
typedef struct vfs_dirlist {
    eryx__vfs_dirent *ents;
    size_t n, cap;
    eryx__vfs *acct;
    uint64_t charged;
} vfs_dirlist;

int vfs_dirlist_add(vfs_dirlist *l, const char *name, size_t len, uint8_t type, uint64_t ino);
int vfs_dirlist_has(const vfs_dirlist *l, const char *name, size_t len);
void vfs_dirlist_free(vfs_dirlist *l);

enum { VFS_F_VIRTUAL, VFS_F_IMG_FILE, VFS_F_IMG_DIR, VFS_F_MEM, VFS_F_HOST };

struct eryx__vfs_file {
    eryx__vfs *vfs;
    vfs_mount *mnt;             /* NULL for a virtual directory */
    char *path;                 /* normalised absolute guest path */
    int kind;                   /* VFS_F_* */
    uint8_t type;               /* ERYX__VFS_T_* */
    int writable;
    int saving;                 /* opened by the host to save a session: its
                                 * listings are not the guest's to pay for,
                                 * and hold only its own entries, not the
                                 * mount points below it (the host's) */
    union {
        uint32_t img_index;     /* VFS_F_IMG_FILE: entry index */
        memfs_node *node;       /* VFS_F_MEM: holds one reference */
        int hostfd;             /* VFS_F_HOST */
    } u;
    vfs_dirlist list;           /* readdir snapshot */
    /* A host regular file is on its vfs's host_files list, by host inode:
     * while any is open, an unlinked file's bytes stay on disk. */
    eryx__vfs_file *host_prev, *host_next;
    uint64_t host_dev, host_ino;
    int host_tracked;
};

/* 1 if path is already normalised and lies in an in-memory (/tmp) mount. */
int vfs_path_is_tmp(const eryx__vfs *vfs, const char *path);

/* Relative path of f inside its mount ("" for the root). */
const char *vfs_file_rel(const eryx__vfs_file *f);

/* Cheap stable inode number for names without a real inode. */
uint64_t vfs_hash_ino(const char *s, size_t len);

/* Image backend (vfs_image.c). */
int vfs_img_init(vfs_image *img, const void *image, size_t size);
int vfs_img_stat(const vfs_mount *m, const char *rel, eryx__vfs_attr *st);
int vfs_img_open(eryx__vfs_file *f, const char *rel, int flags);
int vfs_img_pread(const eryx__vfs_file *f, void *buf, size_t len, uint64_t off, size_t *n);
int vfs_img_fstat(const eryx__vfs_file *f, eryx__vfs_attr *st);
int vfs_img_list(const eryx__vfs_file *f, vfs_dirlist *l);

/* In-memory tree (vfs_memfs.c). */
memfs_node *vfs_mem_new_root(eryx__vfs *vfs);
void vfs_mem_free_root(memfs_node *root);
int vfs_mem_open(eryx__vfs_file *f, const char *rel, int flags);
int vfs_mem_open_unlinked(eryx__vfs_file *f);
/* A new file open for reading and writing in the in-memory tree mounted
 * at mount (its path exactly), linked in no directory: an unlinked open
 * file of a session made again. */
int vfs_open_unlinked(eryx__vfs *vfs, const char *mount, eryx__vfs_file **out);
void vfs_mem_close(eryx__vfs_file *f);
int vfs_mem_pread(const eryx__vfs_file *f, void *buf, size_t len, uint64_t off, size_t *n);
int vfs_mem_pwrite(eryx__vfs_file *f, const void *buf, size_t len, uint64_t off, size_t *n);
int vfs_mem_fstat(const eryx__vfs_file *f, eryx__vfs_attr *st);
int vfs_mem_ftruncate(eryx__vfs_file *f, uint64_t size);
int vfs_mem_futimes(eryx__vfs_file *f, uint64_t atim, uint64_t mtim, int flags);
int vfs_mem_list(const eryx__vfs_file *f, vfs_dirlist *l);
int vfs_mem_stat(const vfs_mount *m, const char *rel, eryx__vfs_attr *st);
int vfs_mem_utimes(const vfs_mount *m, const char *rel, uint64_t atim, uint64_t mtim,
                   int flags);
int vfs_mem_mkdir(const vfs_mount *m, const char *rel);
int vfs_mem_rmdir(const vfs_mount *m, const char *rel);
int vfs_mem_unlink(const vfs_mount *m, const char *rel);
int vfs_mem_rename(const vfs_mount *m, const char *from, const char *to);

/* Cloning the in-memory tree (vfs_memfs.c, for eryx__vfs_clone): the map
 * remembers which copy belongs to which source node, so that open files of
 * the copy refer to the copies of the nodes the originals refer to. Clone
 * the root, seal the map, then clone the files. */
typedef struct vfs_node_map vfs_node_map;
vfs_node_map *vfs_node_map_new(void);
void vfs_node_map_free(vfs_node_map *map);
void vfs_node_map_seal(vfs_node_map *map);
/* A copy of the tree under root, charged to vfs's quota, holding the mount's
 * reference; NULL on failure (ENOMEM, or ENOSPC if vfs's quota is smaller). */
memfs_node *vfs_mem_clone_root(eryx__vfs *vfs, const memfs_node *root, vfs_node_map *map);
/* Points `to` (vfs and mnt set) at the copy of from's node, taking a
 * reference; an unlinked node is copied on first use. 0 or -ENOMEM. */
int vfs_mem_clone_file(eryx__vfs_file *to, const eryx__vfs_file *from, vfs_node_map *map);

/* Host directories (vfs_host.c). */
int vfs_host_mount(vfs_mount *m, const char *host_dir, int read_only);
void vfs_host_unmount(vfs_mount *m);
int vfs_host_open(eryx__vfs_file *f, const char *rel, int flags);
void vfs_host_close_fd(eryx__vfs_file *f);
/* Puts a copy of the open host file from (u.hostfd already dup'ed) on its
 * own vfs's list (for eryx__vfs_clone). */
void vfs_host_track_copy(eryx__vfs_file *to, const eryx__vfs_file *from);
int vfs_host_pread(const eryx__vfs_file *f, void *buf, size_t len, uint64_t off, size_t *n);
int vfs_host_pwrite(eryx__vfs_file *f, const void *buf, size_t len, uint64_t off,
                    size_t *n);
int vfs_host_fstat(const eryx__vfs_file *f, eryx__vfs_attr *st);
int vfs_host_ftruncate(eryx__vfs_file *f, uint64_t size);
int vfs_host_futimes(eryx__vfs_file *f, uint64_t atim, uint64_t mtim, int flags);
int vfs_host_list(const eryx__vfs_file *f, vfs_dirlist *l);
int vfs_host_stat(const vfs_mount *m, const char *rel, int follow, eryx__vfs_attr *st);
int vfs_host_utimes(const vfs_mount *m, const char *rel, int follow, uint64_t atim,
                    uint64_t mtim, int flags);
int vfs_host_mkdir(eryx__vfs *vfs, const vfs_mount *m, const char *rel);
int vfs_host_rmdir(eryx__vfs *vfs, const vfs_mount *m, const char *rel);
int vfs_host_unlink(eryx__vfs *vfs, const vfs_mount *m, const char *rel);
int vfs_host_rename(const vfs_mount *m, const char *from, const char *to);
int vfs_host_readlink(const vfs_mount *m, const char *rel, char *buf, size_t cap,
                      size_t *len);

/* Current realtime clock in nanoseconds (memfs timestamps). */
uint64_t vfs_now_ns(void);

#endif
