/*
 * The WASI state of a session file: /tmp and the fd table (see
 * src/vfs/vfs_persist.h for how files are saved and reopened).
 *
 * Format, after the magic: the /tmp tree records; u32 slot count; per slot
 * u8 kind, and unless free: u64 offset, u32 fdflags, u64 rights, u64
 * inherit, u8 preopen, and for a file its file record. Arguments,
 * environment, stdin and the output cap are the loading sandbox's own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vfs/vfs_persist.h"
#include "wasi_internal.h"

/* ERYXWS01 wrote whole paths in tree records (up to 32 times the quota). */
#define STATE_MAGIC "ERYXWS02"

int eryx__wasi_save_state(eryx__wasi *w, eryx__blob *b)
{
    eryx__vfs_saved *saved = NULL;
    eryx__blob_put(b, STATE_MAGIC, 8);
    int rc = eryx__vfs_save_tmp(w->vfs, b, &saved);
    eryx__blob_u32(b, w->nfds);
    for (uint32_t i = 0; rc == 0 && i < w->nfds; i++) {
        const wasi_fd *fd = &w->fds[i];
        eryx__blob_u8(b, (uint8_t)fd->kind);
        if (fd->kind == WASI_FD_FREE)
            continue;
        eryx__blob_u64(b, fd->offset);
        eryx__blob_u32(b, fd->fdflags);
        eryx__blob_u64(b, fd->rights);
        eryx__blob_u64(b, fd->inherit);
        eryx__blob_u8(b, (uint8_t)fd->preopen);
        if (fd->kind == WASI_FD_FILE)
            rc = eryx__vfs_save_file(fd->file, saved, b);
    }
    eryx__vfs_saved_free(saved);
    if (rc == 0 && b->err)
        rc = -b->err;
    return rc;
}

#define LOST_MAX 2048u

/* Adds "fd N (path): reason" to the list of files that did not come back.
 * 0, or -ENOMEM: a file is never dropped silently (past LOST_MAX it is
 * noted as a final "..."). */
static int note_lost(char **lost, uint32_t fd, const char *path, int err)
{
    size_t old = *lost ? strlen(*lost) : 0;
    /* It ends up in a message (eryx_errmsg keeps ~500 bytes): past
     * LOST_MAX the rest is "...", which also keeps a crafted table of a
     * thousand 4 KiB paths from costing a quadratic amount of copying. */
    if (old >= LOST_MAX) {
        if (strcmp(*lost + old - 5, "; ...") == 0)
            return 0;
        char *s = realloc(*lost, old + 6);
        if (!s)
            return -ENOMEM;
        memcpy(s + old, "; ...", 6);
        *lost = s;
        return 0;
    }
    size_t add = strlen(path) + 64 + strlen(strerror(-err));
    char *s = realloc(*lost, old + add);
    if (!s)
        return -ENOMEM;
    snprintf(s + old, add, "%sfd %u (%s): %s", old ? "; " : "", fd, path, strerror(-err));
    *lost = s;
    return 0;
}

static int restore_slot(eryx__wasi *w, eryx__blob_reader *r, uint32_t i, char *path,
                        char **lost)
{
    wasi_fd *fd = &w->fds[i];
    uint8_t kind, preopen;
    uint32_t fdflags;
    if (eryx__blob_get_u8(r, &kind) < 0 || kind > WASI_FD_FILE)
        return -EINVAL;
    if (kind == WASI_FD_FREE)
        return 0;
    if (eryx__blob_get_u64(r, &fd->offset) < 0 || eryx__blob_get_u32(r, &fdflags) < 0 ||
        fdflags > UINT16_MAX || eryx__blob_get_u64(r, &fd->rights) < 0 ||
        eryx__blob_get_u64(r, &fd->inherit) < 0 || eryx__blob_get_u8(r, &preopen) < 0 ||
        preopen > 1)
        return -EINVAL;
    fd->fdflags = (uint16_t)fdflags;
    fd->preopen = preopen;
    if (kind != WASI_FD_FILE) {
        fd->kind = kind;
        return 0;
    }
    eryx__vfs_file *f;
    int rc = eryx__vfs_restore_file(w->vfs, r, path, &f);
    /* A malformed record, or no memory (or quota) to restore with, fails
     * the load; a file this sandbox's tree cannot give back is reported. */
    if ((rc == -EINVAL && r->bad) || rc == -ENOMEM || rc == -ENOSPC)
        return rc;
    if (rc < 0) {
        *fd = (wasi_fd){0};
        return note_lost(lost, i, path, rc);
    }
    fd->kind = WASI_FD_FILE;
    fd->file = f;
    return 0;
}

/* What a state that fits tmp_quota can take: every byte of a restored file
 * is charged to the quota (orphans too, each copy), so is every name, and
 * every node NODE_COST more (vfs_memfs.c: 128 bytes; 64 here leaves room
 * for that to change). A tree record is then its name and a slash (paths
 * are prefix-coded: vfs_persist.c), its data and at most 42 bytes; a slot
 * is at most a file record with a whole path and 64 bytes. With the
 * default 64 MiB quota that is ~180 MiB: a session file claiming more is
 * refused before anything is read (the loader also checks the file's real
 * size). Saturates instead of wrapping. */
#define STATE_MIN_NODE_COST 64u
#define STATE_TREE_RECORD 44u
#define STATE_SLOT_MAX (ERYX__VFS_PATH_MAX + 64u)

uint64_t eryx__wasi_state_max(uint64_t tmp_quota)
{
    uint64_t fixed = 64 + (uint64_t)WASI_MAX_FDS * STATE_SLOT_MAX;
    if (tmp_quota > (UINT64_MAX - fixed) / 4)
        return UINT64_MAX;
    uint64_t nodes = tmp_quota / STATE_MIN_NODE_COST + 1;
    return 2 * tmp_quota /* file bytes and names, with room */ + nodes * STATE_TREE_RECORD +
           fixed;
}

int eryx__wasi_restore_state(eryx__wasi *w, const uint8_t *p, size_t len, char **lost)
{
    eryx__blob_reader r = {p, len, 0, 0};
    char magic[8];
    uint32_t n;
    *lost = NULL;
    if (!w->vfs || eryx__blob_get(&r, magic, 8) < 0 || memcmp(magic, STATE_MAGIC, 8) != 0)
        return -EINVAL;
    int rc = eryx__vfs_restore_tmp(w->vfs, &r);
    if (rc < 0)
        return rc;
    if (eryx__blob_get_u32(&r, &n) < 0 || n < 4 || n > WASI_MAX_FDS)
        return -EINVAL;
    /* The loading sandbox's table (stdio and the "/" preopen) gives way. */
    eryx__wasi_fd_close_all(w);
    wasi_fd *fds = calloc(n, sizeof *fds);
    char *path = malloc(ERYX__VFS_PATH_MAX);
    if (!fds || !path) {
        free(fds);
        free(path);
        memset(w->fds, 0, w->nfds * sizeof *w->fds);
        return -ENOMEM;
    }
    free(w->fds);
    w->fds = fds;
    w->nfds = n;
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        rc = restore_slot(w, &r, i, path, lost);
    free(path);
    if (rc == 0 && r.pos != r.len)
        rc = -EINVAL;           /* trailing bytes: not what we wrote */
    return rc;
}
