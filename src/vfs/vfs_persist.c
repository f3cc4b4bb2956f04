/*
 * Saving /tmp and open files to bytes and back: see vfs_persist.h.
 *
 * Tree records, in walk order (a directory before what it holds, the
 * entries of a directory by name), ended by a 0 byte:
 *   u8 type (ERYX__VFS_T_DIR or _REG), path, u64 atim, u64 mtim,
 *   and for a file u64 size + the bytes.
 * A path is u32 k + str rest: the first k bytes of the previous record's
 * path followed by rest. In walk order, rest is at most a name and a
 * slash, so a tree costs its names, not its paths (which may be 4 KiB each
 * for half a million files in 64 MiB of quota): the size of a state that
 * fits a quota is bounded by a small multiple of it (eryx__wasi_state_max).
 * File records:
 *   u8 how (REOPEN, ORPHAN, GONE), str path, u8 open flags,
 *   and for an orphan u64 atim, u64 mtim, u64 size + the bytes (its path is
 *   the mount it lived in).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfs_internal.h"
#include "vfs_persist.h"
#include "le.h"

enum { REOPEN = 1, ORPHAN = 2, GONE = 3 };

/* ---- the byte buffer -------------------------------------------------- */

void eryx__blob_put(eryx__blob *b, const void *data, size_t n)
{
    if (b->err || n == 0)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->err = ENOMEM;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->err = ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void eryx__blob_u8(eryx__blob *b, uint8_t v) { eryx__blob_put(b, &v, 1); }

void eryx__blob_u32(eryx__blob *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    eryx__blob_put(b, x, 4);
}

void eryx__blob_u64(eryx__blob *b, uint64_t v)
{
    eryx__blob_u32(b, (uint32_t)v);
    eryx__blob_u32(b, (uint32_t)(v >> 32));
}

void eryx__blob_str(eryx__blob *b, const char *s)
{
    size_t n = strlen(s);
    eryx__blob_u32(b, (uint32_t)n);
    eryx__blob_put(b, s, n);
}

int eryx__blob_get(eryx__blob_reader *r, void *out, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return -1;
    }
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

int eryx__blob_get_u8(eryx__blob_reader *r, uint8_t *v) { return eryx__blob_get(r, v, 1); }

int eryx__blob_get_u32(eryx__blob_reader *r, uint32_t *v)
{
    uint8_t x[4];
    if (eryx__blob_get(r, x, 4) < 0)
        return -1;
    *v = eryx__le32(x);
    return 0;
}

int eryx__blob_get_u64(eryx__blob_reader *r, uint64_t *v)
{
    uint32_t lo, hi;
    if (eryx__blob_get_u32(r, &lo) < 0 || eryx__blob_get_u32(r, &hi) < 0)
        return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

int eryx__blob_get_str(eryx__blob_reader *r, char *out, size_t cap)
{
    uint32_t n;
    if (eryx__blob_get_u32(r, &n) < 0 || n >= cap || eryx__blob_get(r, out, n) < 0 ||
        memchr(out, '\0', n) != NULL) {
        r->bad = 1;
        return -1;
    }
    out[n] = '\0';
    return 0;
}

/* Bytes of a counted payload, borrowed from the reader. */
static const uint8_t *get_bytes(eryx__blob_reader *r, uint64_t *size)
{
    if (eryx__blob_get_u64(r, size) < 0 || *size > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += (size_t)*size;
    return p;
}

/* ---- saving ----------------------------------------------------------- */

typedef struct saved_name {
    uint64_t ino;
    char *path;
    size_t seq;                 /* order of saving (index_saved) */
} saved_name;

struct eryx__vfs_saved {
    saved_name *names;
    size_t n, cap;
    char prev[ERYX__VFS_PATH_MAX]; /* the last tree record's path */
};

void eryx__vfs_saved_free(eryx__vfs_saved *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i].path);
    free(s->names);
    free(s);
}

static int remember(eryx__vfs_saved *s, uint64_t ino, const char *path)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        saved_name *n = realloc(s->names, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->names = n;
        s->cap = cap;
    }
    if (!(s->names[s->n].path = strdup(path)))
        return -ENOMEM;
    s->names[s->n++].ino = ino;
    return 0;
}

static int by_ino(const void *a, const void *b)
{
    const saved_name *x = a, *y = b;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorts the names by inode (first saved first among equals), so that
 * naming each open file is a binary search: a linear one made saving
 * 100 000 files and 1000 open fds 10^8 comparisons. */
static void index_saved(eryx__vfs_saved *s)
{
    for (size_t i = 0; i < s->n; i++)
        s->names[i].seq = i;
    if (s->n > 1)
        qsort(s->names, s->n, sizeof *s->names, by_ino);
}

/* Appends a tree record's path as the length of the prefix it shares with
 * the last one and the rest (see the top of this file). */
static void put_tree_path(eryx__blob *b, eryx__vfs_saved *s, const char *path)
{
    size_t k = 0, n = strlen(path);
    while (s->prev[k] != '\0' && s->prev[k] == path[k])
        k++;
    eryx__blob_u32(b, (uint32_t)k);
    eryx__blob_str(b, path + k);
    if (n < sizeof s->prev)
        memcpy(s->prev, path, n + 1);
}

/* Appends a file's bytes (u64 size + data), read through f. */
static int put_contents(eryx__vfs_file *f, uint64_t size, eryx__blob *b)
{
    eryx__blob_u64(b, size);
    char buf[65536];
    for (uint64_t off = 0; off < size;) {
        size_t want = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf, n;
        int rc = eryx__vfs_pread(f, buf, want, off, &n);
        if (rc < 0)
            return rc;
        if (n == 0)
            return -EIO;        /* shorter than fstat said: cannot happen in memfs */
        eryx__blob_put(b, buf, n);
        off += n;
    }
    return b->err ? -b->err : 0;
}

static int save_file_record(eryx__vfs *vfs, const char *path, const eryx__vfs_attr *st,
                            eryx__blob *b, eryx__vfs_saved *s)
{
    eryx__vfs_file *f;
    int rc = eryx__vfs_open(vfs, path, ERYX__VFS_O_READ, &f);
    if (rc < 0)
        return rc;
    eryx__blob_u8(b, ERYX__VFS_T_REG);
    put_tree_path(b, s, path);
    eryx__blob_u64(b, st->atim);
    eryx__blob_u64(b, st->mtim);
    rc = put_contents(f, st->size, b);
    eryx__vfs_close(f);
    return rc;
}

/* Appends a directory's record and opens it for listing. */
static int save_dir_record(eryx__vfs *vfs, const char *path, eryx__blob *b,
                           eryx__vfs_saved *s, eryx__vfs_file **dir)
{
    eryx__vfs_attr st;
    int rc = eryx__vfs_stat(vfs, path, 0, &st);
    if (rc < 0 || (rc = remember(s, st.ino, path)) < 0)
        return rc;
    eryx__blob_u8(b, ERYX__VFS_T_DIR);
    put_tree_path(b, s, path);
    eryx__blob_u64(b, st.atim);
    eryx__blob_u64(b, st.mtim);
    rc = eryx__vfs_open(vfs, path, ERYX__VFS_O_READ | ERYX__VFS_O_DIRECTORY, dir);
    /* Listed without charge (bounded by /tmp's quota, and the host's doing)
     * and without the mount points below: a host directory mounted under
     * /tmp is not /tmp's to save, and load refuses records outside it. */
    if (rc == 0)
        (*dir)->saving = 1;
    return rc;
}

/* One directory being listed: where its listing stands and the length of
 * its path in the shared path buffer. */
typedef struct save_level {
    eryx__vfs_file *dir;
    uint64_t cookie;
    size_t len;
} save_level;

typedef struct save_stack {
    save_level *v;
    size_t n, cap;
} save_stack;

static int push_level(save_stack *st, eryx__vfs_file *dir, size_t len)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 64;
        save_level *v = realloc(st->v, cap * sizeof *v);
        if (!v) {
            eryx__vfs_close(dir);
            return -ENOMEM;
        }
        st->v = v;
        st->cap = cap;
    }
    st->v[st->n++] = (save_level){dir, 0, len};
    return 0;
}

/* Appends "/name" to the directory path path[0..len) (len 1 for "/"). */
static int child_path(char *path, size_t len, const eryx__vfs_dirent *ent, size_t *out)
{
    size_t base = len == 1 ? 0 : len;
    if (base + 1 + ent->name_len >= ERYX__VFS_PATH_MAX)
        return -ENAMETOOLONG;
    path[base] = '/';
    memcpy(path + base + 1, ent->name, ent->name_len);
    *out = base + 1 + ent->name_len;
    path[*out] = '\0';
    return 0;
}

/* Saves the next entry of the directory on top of the stack, or pops it
 * when its listing is done. */
static int save_step(eryx__vfs *vfs, char *path, save_stack *st, eryx__blob *b,
                     eryx__vfs_saved *s)
{
    save_level *top = &st->v[st->n - 1];
    eryx__vfs_dirent ent;
    int rc = eryx__vfs_readdir(top->dir, top->cookie++, &ent);
    if (rc != 0) {
        eryx__vfs_close(top->dir);
        st->n--;
        return rc < 0 ? rc : 0;
    }
    size_t len;
    eryx__vfs_attr cst;
    if ((rc = child_path(path, top->len, &ent, &len)) < 0 ||
        (rc = eryx__vfs_stat(vfs, path, 0, &cst)) < 0)
        return rc;
    if (cst.type != ERYX__VFS_T_DIR) {
        rc = remember(s, cst.ino, path);
        return rc < 0 ? rc : save_file_record(vfs, path, &cst, b, s);
    }
    eryx__vfs_file *dir;
    if ((rc = save_dir_record(vfs, path, b, s, &dir)) < 0)
        return rc;
    return push_level(st, dir, len);
}

/* Saves the tree under root, a directory before what it holds. Iterative
 * with an explicit stack: the depth of a tree is the guest's to choose (up
 * to ERYX__VFS_MAX_DEPTH), the host stack is not. */
static int save_dir(eryx__vfs *vfs, const char *root, eryx__blob *b, eryx__vfs_saved *s)
{
    char *path = malloc(ERYX__VFS_PATH_MAX);
    save_stack st = {0};
    eryx__vfs_file *dir;
    int rc = path ? save_dir_record(vfs, root, b, s, &dir) : -ENOMEM;
    if (rc == 0) {
        size_t len = strlen(root);
        memcpy(path, root, len + 1);
        rc = push_level(&st, dir, len);
    }
    while (rc == 0 && st.n > 0 && !b->err)
        rc = save_step(vfs, path, &st, b, s);
    while (st.n > 0)
        eryx__vfs_close(st.v[--st.n].dir);
    free(st.v);
    free(path);
    return rc < 0 ? rc : (b->err ? -b->err : 0);
}

int eryx__vfs_save_tmp(eryx__vfs *vfs, eryx__blob *b, eryx__vfs_saved **saved)
{
    eryx__vfs_saved *s = calloc(1, sizeof *s);
    int rc = s ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < vfs->nmounts; i++)
        if (vfs->mounts[i]->kind == VFS_MNT_TMP)
            rc = save_dir(vfs, vfs->mounts[i]->path, b, s);
    eryx__blob_u8(b, 0);
    if (rc == 0 && b->err)
        rc = -b->err;
    if (rc < 0) {
        eryx__vfs_saved_free(s);
        s = NULL;
    } else {
        index_saved(s);
    }
    *saved = s;
    return rc;
}

static const char *saved_path(const eryx__vfs_saved *s, uint64_t ino)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {           /* the first name with an inode >= ino */
        size_t mid = lo + (hi - lo) / 2;
        if (s->names[mid].ino < ino)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && s->names[lo].ino == ino ? s->names[lo].path : NULL;
}

static uint8_t reopen_flags(const eryx__vfs_file *f)
{
    return (uint8_t)(ERYX__VFS_O_READ | (f->writable ? ERYX__VFS_O_WRITE : 0) |
                     (f->type == ERYX__VFS_T_DIR ? ERYX__VFS_O_DIRECTORY : 0));
}

int eryx__vfs_save_file(eryx__vfs_file *f, const eryx__vfs_saved *saved, eryx__blob *b)
{
    if (f->kind != VFS_F_MEM) {
        eryx__blob_u8(b, REOPEN);
        eryx__blob_str(b, f->path);
        eryx__blob_u8(b, reopen_flags(f));
        return b->err ? -b->err : 0;
    }
    eryx__vfs_attr st;
    int rc = eryx__vfs_fstat(f, &st);
    if (rc < 0)
        return rc;
    const char *now = saved_path(saved, st.ino);
    if (now) {
        eryx__blob_u8(b, REOPEN);
        eryx__blob_str(b, now);
    } else {
        /* Unlinked: a directory has nothing worth keeping, a file its bytes. */
        eryx__blob_u8(b, st.type == ERYX__VFS_T_DIR ? GONE : ORPHAN);
        eryx__blob_str(b, st.type == ERYX__VFS_T_DIR ? f->path : f->mnt->path);
    }
    eryx__blob_u8(b, reopen_flags(f));
    if (!now && st.type != ERYX__VFS_T_DIR) {
        eryx__blob_u64(b, st.atim);
        eryx__blob_u64(b, st.mtim);
        if ((rc = put_contents(f, st.size, b)) < 0)
            return rc;
    }
    return b->err ? -b->err : 0;
}

/* ---- restoring -------------------------------------------------------- */

/* Writes a saved file's bytes and times into f. */
static int fill_file(eryx__vfs_file *f, const uint8_t *data, uint64_t size, uint64_t atim,
                     uint64_t mtim)
{
    int rc = 0;
    size_t n;
    for (uint64_t off = 0; rc == 0 && off < size; off += n) {
        if ((rc = eryx__vfs_pwrite(f, data + off, (size_t)(size - off), off, &n)) == 0 && n == 0)
            rc = -EIO;
    }
    if (rc == 0)
        rc = eryx__vfs_futimes(f, atim, mtim, ERYX__VFS_SET_ATIM | ERYX__VFS_SET_MTIM);
    return rc;
}

static int write_file(eryx__vfs *vfs, const char *path, int flags, const uint8_t *data,
                      uint64_t size, uint64_t atim, uint64_t mtim)
{
    eryx__vfs_file *f;
    int rc = eryx__vfs_open(vfs, path, flags, &f);
    if (rc < 0)
        return rc;
    rc = fill_file(f, data, size, atim, mtim);
    eryx__vfs_close(f);
    return rc;
}

/* The index in vfs->mounts of the in-memory tree mounted at path (where
 * the records of each tree start), or -1. */
static long tmp_root_index(const eryx__vfs *vfs, const char *path)
{
    for (size_t i = 0; i < vfs->nmounts; i++)
        if (vfs->mounts[i]->kind == VFS_MNT_TMP && strcmp(vfs->mounts[i]->path, path) == 0)
            return (long)i;
    return -1;
}

static int is_tmp_root(const eryx__vfs *vfs, const char *path)
{
    return tmp_root_index(vfs, path) >= 0;
}

/* 1 if path is absolute and has no empty, "." or ".." component, and no
 * trailing slash: how a saved path looks. */
static int canonical(const char *path)
{
    if (path[0] != '/')
        return 0;
    for (const char *c = path + 1;;) {
        const char *end = strchr(c, '/');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (!end)
            return 1;
        c = end + 1;
    }
}

/* 1 if path comes strictly after prev in the order eryx__vfs_save_tmp
 * writes (a directory first, then its entries by name, bytewise, each
 * followed by what it holds): canonical paths compared bytewise with '/'
 * below every other byte and the end below '/'. A tree in that order is
 * rebuilt by appending to each directory's sorted entries; one out of it
 * (a crafted file) would make every insertion shift the entries after it,
 * quadratic in a directory of half a million files. */
static int in_order(const char *prev, const char *path)
{
    size_t i = 0;
    while (prev[i] != '\0' && prev[i] == path[i])
        i++;
    int a = prev[i] == '\0' ? -1 : prev[i] == '/' ? 0 : (unsigned char)prev[i];
    int b = path[i] == '\0' ? -1 : path[i] == '/' ? 0 : (unsigned char)path[i];
    return a < b;
}

/* Reads a tree record's path (see the top of this file) after prev. */
static int get_tree_path(eryx__blob_reader *r, const char *prev, char *path)
{
    uint32_t k;
    if (eryx__blob_get_u32(r, &k) < 0 || k > strlen(prev) ||
        eryx__blob_get_str(r, path + k, ERYX__VFS_PATH_MAX - k) < 0) {
        r->bad = 1;
        return -1;
    }
    memcpy(path, prev, k);
    return 0;
}

/* One pass over the tree records: creating (dir_times 0) or, once every
 * file is in place, setting the directories' times (dir_times 1), since
 * creating an entry changes its directory's mtime. prev holds
 * ERYX__VFS_PATH_MAX bytes (the last path, for the order check). */
static int tree_pass(eryx__vfs *vfs, eryx__blob_reader *r, char *path, char *prev,
                     uint8_t *roots_seen, int dir_times)
{
    /* Each tree once (roots_seen: one byte a mount): a root record
     * restarts the order check, so a file alternating a root and one
     * entry, in falling order, made every insertion shift the entries
     * before it (20 s of load for 340 000 entries, found by an audit). */
    memset(roots_seen, 0, vfs->nmounts);
    prev[0] = '\0';
    for (;;) {
        uint8_t type;
        uint64_t atim, mtim, size = 0;
        const uint8_t *data = NULL;
        if (eryx__blob_get_u8(r, &type) < 0)
            return -EINVAL;
        if (type == 0)
            return 0;
        if ((type != ERYX__VFS_T_DIR && type != ERYX__VFS_T_REG) ||
            get_tree_path(r, prev, path) < 0 ||
            eryx__blob_get_u64(r, &atim) < 0 || eryx__blob_get_u64(r, &mtim) < 0 ||
            (type == ERYX__VFS_T_REG && !(data = get_bytes(r, &size))) ||
            !vfs_path_is_tmp(vfs, path) || !canonical(path))
            return -EINVAL;
        long root = type == ERYX__VFS_T_DIR ? tmp_root_index(vfs, path) : -1;
        if (root >= 0 && roots_seen[root])
            return -EINVAL;
        if (root >= 0) {
            roots_seen[root] = 1;
            prev[0] = '\0';     /* the next tree */
        } else if (!prev[0] || !in_order(prev, path)) {
            return -EINVAL;
        }
        memcpy(prev, path, strlen(path) + 1);
        int rc = 0;
        if (type == ERYX__VFS_T_DIR && !dir_times) {
            rc = eryx__vfs_mkdir(vfs, path);
            if (rc == -EEXIST)
                rc = 0;
        } else if (type == ERYX__VFS_T_DIR) {
            rc = eryx__vfs_utimes(vfs, path, 0, atim, mtim,
                                  ERYX__VFS_SET_ATIM | ERYX__VFS_SET_MTIM);
        } else if (!dir_times) {
            rc = write_file(vfs, path, ERYX__VFS_O_WRITE | ERYX__VFS_O_CREAT | ERYX__VFS_O_TRUNC,
                            data, size, atim, mtim);
        }
        if (rc < 0)
            return rc;
    }
}

int eryx__vfs_restore_tmp(eryx__vfs *vfs, eryx__blob_reader *r)
{
    char *path = malloc(ERYX__VFS_PATH_MAX), *prev = malloc(ERYX__VFS_PATH_MAX);
    uint8_t *seen = malloc(vfs->nmounts + 1);
    int rc = path && prev && seen ? 0 : -ENOMEM;
    size_t start = r->pos;
    if (rc == 0)
        rc = tree_pass(vfs, r, path, prev, seen, 0);
    if (rc == 0) {
        size_t end = r->pos;
        r->pos = start;
        rc = tree_pass(vfs, r, path, prev, seen, 1);
        r->pos = end;
    }
    free(path);
    free(prev);
    free(seen);
    return rc;
}

/* ---- orphans: files unlinked while open -------------------------------
 *
 * One comes back as it was: a file in no directory, open. It used to be
 * created under a scratch name in a scratch directory and unlinked again,
 * which a /tmp at its quota had no room for (a name and a directory's
 * entries cost bytes): such a session saved but did not load. */

static int restore_orphan(eryx__vfs *vfs, eryx__blob_reader *r, const char *mount, int flags,
                          eryx__vfs_file **out)
{
    uint64_t atim, mtim, size;
    const uint8_t *data;
    if (eryx__blob_get_u64(r, &atim) < 0 || eryx__blob_get_u64(r, &mtim) < 0 ||
        !(data = get_bytes(r, &size)))
        return -EINVAL;
    /* Saved as its mount's path, as such: spellings of one directory that
     * differ would each make and remove a scratch directory. */
    if (!is_tmp_root(vfs, mount)) {
        r->bad = 1;
        return -EINVAL;
    }
    eryx__vfs_file *f;
    int rc = vfs_open_unlinked(vfs, mount, &f);
    if (rc == 0 && (rc = fill_file(f, data, size, atim, mtim)) < 0)
        eryx__vfs_close(f);
    if (rc == 0) {
        f->writable = (flags & ERYX__VFS_O_WRITE) != 0;
        *out = f;
    }
    return rc;
}

int eryx__vfs_restore_file(eryx__vfs *vfs, eryx__blob_reader *r, char *path,
                           eryx__vfs_file **out)
{
    uint8_t how, flags;
    *out = NULL;
    if (eryx__blob_get_u8(r, &how) < 0 || eryx__blob_get_str(r, path, ERYX__VFS_PATH_MAX) < 0 ||
        eryx__blob_get_u8(r, &flags) < 0 ||
        (flags & ~(ERYX__VFS_O_READ | ERYX__VFS_O_WRITE | ERYX__VFS_O_DIRECTORY)) != 0)
        return -EINVAL;
    switch (how) {
    case REOPEN:
        return eryx__vfs_open(vfs, path, flags, out);
    case ORPHAN:
        return restore_orphan(vfs, r, path, flags, out);
    case GONE:
        return -ENOENT;
    default:
        return -EINVAL;
    }
}
