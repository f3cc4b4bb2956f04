/*
 * Deep copies of a VFS and of files open in it, for sandboxes created from a
 * template and for forked sessions (eryx__wasi_clone).
 *
 * What is copied how:
 * - image mounts: shared (the image memory is borrowed and never written);
 * - the in-memory tree: copied node by node, data included. Copy-on-write
 *   buffers were considered and rejected for now: a template's /tmp is
 *   normally empty or tiny, copying is a malloc + memcpy per file (measured
 *   in tests/wasi/test_wasi_clone.c on the development VM: an empty /tmp
 *   clones in < 1 us, ~0.9 us per node, but ~4 ms per MiB of file data,
 *   nearly all of it page faults on the fresh buffers), and sharing would
 *   put a reference count and a copy check on every write path of memfs.
 *   Sessions with big /tmp files are the case that would want it;
 * - host mounts and host files: the descriptors are dup'ed, so the copy sees
 *   the same host objects (they are the host's, not the sandbox's), also a
 *   file or directory renamed or unlinked since it was opened. Reads and
 *   writes are positional, so the shared file offset of a dup never matters.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfs_internal.h"

static int dup_fd(int fd)
{
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return d < 0 ? -errno : d;
}

static void free_mount(vfs_mount *m)
{
    if (m->kind == VFS_MNT_TMP && m->u.mroot)
        vfs_mem_free_root(m->u.mroot);
    else if (m->kind == VFS_MNT_HOST)
        vfs_host_unmount(m);
    free(m->path);
    free(m);
}

static vfs_mount *clone_mount(eryx__vfs *dst, const vfs_mount *src, vfs_node_map *map)
{
    vfs_mount *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    *m = *src;
    m->path = strdup(src->path);
    if (m->kind == VFS_MNT_TMP)
        m->u.mroot = NULL;
    else if (m->kind == VFS_MNT_HOST)
        m->u.host.dirfd = -1;
    if (!m->path) {
        free_mount(m);
        return NULL;
    }
    if (m->kind == VFS_MNT_TMP && !(m->u.mroot = vfs_mem_clone_root(dst, src->u.mroot, map))) {
        free_mount(m);
        return NULL;
    }
    if (m->kind == VFS_MNT_HOST && (m->u.host.dirfd = dup_fd(src->u.host.dirfd)) < 0) {
        m->u.host.dirfd = -1;
        free_mount(m);
        return NULL;
    }
    return m;
}

static int clone_list(vfs_dirlist *to, const vfs_dirlist *from)
{
    for (size_t i = 0; i < from->n; i++) {
        const eryx__vfs_dirent *e = &from->ents[i];
        if (vfs_dirlist_add(to, e->name, e->name_len, e->type, e->ino) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int clone_file(eryx__vfs *dst, const eryx__vfs *src, const eryx__vfs_file *from,
                      vfs_node_map *map, eryx__vfs_file **out)
{
    eryx__vfs_file *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->vfs = dst;
    f->kind = VFS_F_VIRTUAL;        /* nothing to release until set up */
    f->type = from->type;
    f->writable = from->writable;
    f->mnt = NULL;
    for (size_t i = 0; from->mnt && i < src->nmounts; i++)
        if (src->mounts[i] == from->mnt)
            f->mnt = dst->mounts[i];
    int rc = 0;
    f->list.acct = dst;
    if (!(f->path = strdup(from->path)) || clone_list(&f->list, &from->list) < 0)
        rc = -ENOMEM;
    else if (from->kind == VFS_F_MEM)
        rc = vfs_mem_clone_file(f, from, map);
    else if (from->kind == VFS_F_HOST) {
        rc = dup_fd(from->u.hostfd);
        if (rc >= 0) {
            f->u.hostfd = rc;
            rc = 0;
        }
    } else
        f->u = from->u;
    if (rc < 0) {
        eryx__vfs_close(f);
        return rc;
    }
    f->kind = from->kind;
    if (f->kind == VFS_F_HOST)
        vfs_host_track_copy(f, from);
    *out = f;
    return 0;
}

eryx__vfs *eryx__vfs_clone(const eryx__vfs *src, eryx__vfs_file *const *files, size_t nfiles,
                           eryx__vfs_file **out_files)
{
    for (size_t i = 0; i < nfiles; i++)
        out_files[i] = NULL;
    eryx__vfs *dst = eryx__vfs_new(src->tmp_quota);
    vfs_node_map *map = vfs_node_map_new();
    if (!dst || !map || (src->nmounts && !(dst->mounts = calloc(src->nmounts,
                                                                 sizeof *dst->mounts))))
        goto fail;
    dst->next_ino = src->next_ino;
    dst->list_quota = src->list_quota;
    dst->host_quota = src->host_quota;
    dst->host_used = src->host_used;
    for (size_t i = 0; i < src->nmounts; i++) {
        if (!(dst->mounts[i] = clone_mount(dst, src->mounts[i], map)))
            goto fail;
        dst->nmounts++;
    }
    vfs_node_map_seal(map);
    for (size_t i = 0; i < nfiles; i++)
        if (files[i] && clone_file(dst, src, files[i], map, &out_files[i]) < 0)
            goto fail;
    vfs_node_map_free(map);
    return dst;
fail:
    for (size_t i = 0; i < nfiles; i++) {
        eryx__vfs_close(out_files[i]);
        out_files[i] = NULL;
    }
    vfs_node_map_free(map);
    eryx__vfs_free(dst);
    return NULL;
}
