/*
 * The in-memory writable tree (/tmp). Nodes are reference counted: one
 * reference for the directory entry naming the node and one per open file,
 * so a file keeps working after it is unlinked and is freed with its last
 * handle. Every byte held is charged to the vfs-wide quota: file buffers and
 * directories' entry arrays by their allocated capacity, each node a fixed
 * overhead and each entry its name with the allocator's header, so neither
 * big files nor millions of empty ones (nor the arrays they leave behind
 * when deleted) can exhaust the host.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vfs_internal.h"

/* Bytes charged per node on top of its name and data. */
#define NODE_COST 128u

/* Bytes charged for an entry's name: what glibc's malloc takes for its
 * text and terminator (an 8-byte header, 16-byte steps, 32 at least), so
 * a million one-letter names cost what they hold. */
#define NAME_COST(len) ((uint64_t)(len) < 24 ? 32u : ((uint64_t)(len) + 1 + 8 + 15) & ~(uint64_t)15)

/* A directory's entry array never shrinks below this many entries. */
#define KIDS_MIN 8

typedef struct memfs_entry {
    char *name;
    memfs_node *node;
} memfs_entry;

struct memfs_node {
    int is_dir;
    uint32_t refs;
    eryx__vfs *vfs;             /* quota account */
    uint64_t ino, atim, mtim, ctim;
    uint8_t *data;              /* file contents */
    uint64_t size, cap;
    memfs_entry *kids;          /* directory entries, sorted by name */
    size_t nkids, kcap;
    memfs_node *parent;         /* directories: for rename cycle checks */
    int linked;                 /* named by a directory entry */
};

static int charge(eryx__vfs *vfs, uint64_t bytes)
{
    if (bytes > vfs->tmp_quota || vfs->tmp_used > vfs->tmp_quota - bytes)
        return -ENOSPC;
    vfs->tmp_used += bytes;
    return 0;
}

static void release(eryx__vfs *vfs, uint64_t bytes)
{
    vfs->tmp_used = bytes > vfs->tmp_used ? 0 : vfs->tmp_used - bytes;
}

static memfs_node *node_new(eryx__vfs *vfs, int is_dir)
{
    if (charge(vfs, NODE_COST) < 0)
        return NULL;
    memfs_node *n = calloc(1, sizeof *n);
    if (!n) {
        release(vfs, NODE_COST);
        return NULL;
    }
    n->is_dir = is_dir;
    n->vfs = vfs;
    n->ino = vfs->next_ino++;
    n->atim = n->mtim = n->ctim = vfs_now_ns();
    return n;
}

/* Drops a reference; a node left with none is freed with every node only
 * its entries kept alive. Iterative, whatever the depth: dead nodes wait on
 * a list threaded through `parent`, which a dead node no longer needs. */
static void node_unref(memfs_node *n)
{
    if (!n || --n->refs > 0)
        return;
    n->parent = NULL;
    memfs_node *dead = n;
    while (dead) {
        memfs_node *d = dead;
        dead = d->parent;
        for (size_t i = 0; i < d->nkids; i++) {
            memfs_node *k = d->kids[i].node;
            release(d->vfs, NAME_COST(strlen(d->kids[i].name)));
            free(d->kids[i].name);
            k->parent = NULL;
            k->linked = 0;
            if (--k->refs == 0) {
                k->parent = dead;
                dead = k;
            }
        }
        free(d->kids);
        release(d->vfs, d->kcap * sizeof *d->kids + d->cap + NODE_COST);
        free(d->data);
        free(d);
    }
}

memfs_node *vfs_mem_new_root(eryx__vfs *vfs)
{
    memfs_node *n = node_new(vfs, 1);
    if (n)
        n->refs = 1;
    return n;
}

void vfs_mem_free_root(memfs_node *root) { node_unref(root); }

/* ---- directory entries ------------------------------------------------ */

/* Index of name in dir, or -(insertion point) - 1. */
static long find_kid(const memfs_node *dir, const char *name, size_t len)
{
    size_t lo = 0, hi = dir->nkids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = dir->kids[mid].name;
        size_t klen = strlen(k);
        int c = memcmp(k, name, klen < len ? klen : len);
        if (c == 0)
            c = klen < len ? -1 : klen > len;
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

/* Moves dir's entry array to room for cap entries (at least nkids), charging
 * a growth and releasing a shrink. */
static int resize_kids(memfs_node *dir, size_t cap)
{
    uint64_t had = dir->kcap * sizeof *dir->kids, want = cap * sizeof *dir->kids;
    if (want > had && charge(dir->vfs, want - had) < 0)
        return -ENOSPC;
    memfs_entry *k = NULL;
    if (cap == 0)
        free(dir->kids);
    else if (!(k = realloc(dir->kids, (size_t)want))) {
        if (want > had)
            release(dir->vfs, want - had);
        return -ENOMEM;
    }
    if (want < had)
        release(dir->vfs, had - want);
    dir->kids = k;
    dir->kcap = cap;
    return 0;
}

static int add_kid(memfs_node *dir, long pos, const char *name, size_t len, memfs_node *n)
{
    if (charge(dir->vfs, NAME_COST(len)) < 0)
        return -ENOSPC;
    char *copy = malloc(len + 1);
    int rc = copy ? 0 : -ENOMEM;
    if (rc == 0 && dir->nkids == dir->kcap)
        rc = resize_kids(dir, dir->kcap ? dir->kcap * 2 : KIDS_MIN);
    if (rc < 0) {
        free(copy);
        release(dir->vfs, NAME_COST(len));
        return rc;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    size_t at = (size_t)(-pos - 1);
    memmove(dir->kids + at + 1, dir->kids + at, (dir->nkids - at) * sizeof *dir->kids);
    dir->kids[at] = (memfs_entry){copy, n};
    dir->nkids++;
    n->refs++;
    n->linked = 1;
    if (n->is_dir)
        n->parent = dir;
    dir->mtim = dir->ctim = vfs_now_ns();
    return 0;
}

/* Removes entry i of dir and drops the reference it held; shrink: give
 * back the room of a directory that emptied (not where an entry is added
 * next, which must not fail for want of it). */
static void remove_kid(memfs_node *dir, size_t i, int shrink)
{
    memfs_node *n = dir->kids[i].node;
    release(dir->vfs, NAME_COST(strlen(dir->kids[i].name)));
    free(dir->kids[i].name);
    memmove(dir->kids + i, dir->kids + i + 1, (dir->nkids - i - 1) * sizeof *dir->kids);
    dir->nkids--;
    /* A failed shrink keeps the larger array, still charged. */
    if (shrink && dir->nkids == 0)
        (void)resize_kids(dir, 0);
    else if (shrink && dir->kcap > KIDS_MIN && dir->nkids < dir->kcap / 4)
        (void)resize_kids(dir, dir->kcap / 2);
    dir->mtim = dir->ctim = vfs_now_ns();
    n->linked = 0;
    node_unref(n);
}

/* ---- lookup ----------------------------------------------------------- */

static int walk(memfs_node *root, const char *rel, size_t len, memfs_node **out)
{
    memfs_node *n = root;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && rel[j] != '/')
            j++;
        if (!n->is_dir)
            return -ENOTDIR;
        long k = find_kid(n, rel + i, j - i);
        if (k < 0)
            return -ENOENT;
        n = n->kids[k].node;
        i = j + 1;
    }
    *out = n;
    return 0;
}

/* Finds the directory holding rel's last component; *name points into rel. */
static int walk_parent(const vfs_mount *m, const char *rel, memfs_node **dir,
                       const char **name)
{
    const char *slash = strrchr(rel, '/');
    *name = slash ? slash + 1 : rel;
    int rc = walk(m->u.mroot, rel, slash ? (size_t)(slash - rel) : 0, dir);
    if (rc == 0 && !(*dir)->is_dir)
        rc = -ENOTDIR;
    return rc;
}

static int lookup(const vfs_mount *m, const char *rel, memfs_node **out)
{
    return walk(m->u.mroot, rel, strlen(rel), out);
}

/* ---- files ------------------------------------------------------------ */

static int set_size(memfs_node *n, uint64_t size)
{
    if (size > n->cap) {
        /* Grow geometrically, but never past what the quota allows. Usage
         * may exceed the quota (it was lowered, or a clone's owner set a
         * smaller one): there is then no room at all. */
        const eryx__vfs *vfs = n->vfs;
        uint64_t room = vfs->tmp_used < vfs->tmp_quota ? vfs->tmp_quota - vfs->tmp_used : 0;
        uint64_t want = n->cap * 2 > size ? n->cap * 2 : size;
        if (want - n->cap > room)
            want = size;
        if (charge(n->vfs, want - n->cap) < 0)
            return -ENOSPC;
        uint8_t *d = realloc(n->data, (size_t)want);
        if (!d) {
            release(n->vfs, want - n->cap);
            return -ENOMEM;
        }
        n->data = d;
        n->cap = want;
    }
    if (size > n->size)
        memset(n->data + n->size, 0, (size_t)(size - n->size));
    if (size == 0 && n->cap) {
        /* Give the memory and quota back when a file is emptied. */
        free(n->data);
        release(n->vfs, n->cap);
        n->data = NULL;
        n->cap = 0;
    }
    n->size = size;
    n->mtim = n->ctim = vfs_now_ns();
    return 0;
}

static int create(const vfs_mount *m, const char *rel, int is_dir, memfs_node **out)
{
    memfs_node *dir;
    const char *name;
    int rc = walk_parent(m, rel, &dir, &name);
    if (rc < 0)
        return rc;
    long k = find_kid(dir, name, strlen(name));
    if (k >= 0)
        return -EEXIST;
    memfs_node *n = node_new(dir->vfs, is_dir);
    if (!n)
        return -ENOSPC;
    rc = add_kid(dir, k, name, strlen(name), n);
    if (rc < 0) {
        n->refs = 1;
        node_unref(n);
        return rc;
    }
    *out = n;
    return 0;
}

static int open_node(const vfs_mount *m, const char *rel, int flags, memfs_node **out)
{
    int rc = lookup(m, rel, out);
    if (rc == -ENOENT && (flags & ERYX__VFS_O_CREAT))
        return create(m, rel, 0, out);
    if (rc == 0 && (flags & ERYX__VFS_O_CREAT) && (flags & ERYX__VFS_O_EXCL))
        return -EEXIST;
    return rc;
}

int vfs_mem_open(eryx__vfs_file *f, const char *rel, int flags)
{
    memfs_node *n;
    int rc = open_node(f->mnt, rel, flags, &n);
    if (rc < 0)
        return rc;
    int writing = flags & (ERYX__VFS_O_WRITE | ERYX__VFS_O_TRUNC);
    if (n->is_dir && writing)
        return -EISDIR;
    if (!n->is_dir && (flags & ERYX__VFS_O_DIRECTORY))
        return -ENOTDIR;
    if ((flags & ERYX__VFS_O_TRUNC) && n->size && (rc = set_size(n, 0)) < 0)
        return rc;
    n->refs++;
    f->kind = VFS_F_MEM;
    f->type = n->is_dir ? ERYX__VFS_T_DIR : ERYX__VFS_T_REG;
    f->writable = !n->is_dir && (flags & ERYX__VFS_O_WRITE);
    f->u.node = n;
    return 0;
}

/* A new file in no directory, open in f for reading and writing: a file
 * that was unlinked while open, made again as it was (a session's
 * restore). Nothing is named, so nothing of a directory is charged, and no
 * directory's times change. */
int vfs_mem_open_unlinked(eryx__vfs_file *f)
{
    memfs_node *n = node_new(f->vfs, 0);
    if (!n)
        return -ENOSPC;
    n->refs = 1;
    f->kind = VFS_F_MEM;
    f->type = ERYX__VFS_T_REG;
    f->writable = 1;
    f->u.node = n;
    return 0;
}

void vfs_mem_close(eryx__vfs_file *f) { node_unref(f->u.node); }

int vfs_mem_pread(const eryx__vfs_file *f, void *buf, size_t len, uint64_t off, size_t *n)
{
    const memfs_node *node = f->u.node;
    if (off >= node->size)
        return 0;
    size_t k = node->size - off < len ? (size_t)(node->size - off) : len;
    memcpy(buf, node->data + off, k);
    *n = k;
    return 0;
}

int vfs_mem_pwrite(eryx__vfs_file *f, const void *buf, size_t len, uint64_t off, size_t *n)
{
    memfs_node *node = f->u.node;
    if (len == 0)
        return 0;
    if (off > UINT64_MAX - len || off + len > node->vfs->tmp_quota)
        return -ENOSPC;
    if (off + len > node->size) {
        int rc = set_size(node, off + len);
        if (rc < 0)
            return rc;
    }
    memcpy(node->data + off, buf, len);
    node->mtim = node->ctim = vfs_now_ns();
    *n = len;
    return 0;
}

static void node_stat(const vfs_mount *m, const memfs_node *n, eryx__vfs_attr *st)
{
    memset(st, 0, sizeof *st);
    st->dev = m->dev;
    st->ino = n->ino;
    st->type = n->is_dir ? ERYX__VFS_T_DIR : ERYX__VFS_T_REG;
    /* A file's only link is its directory entry; unlinked open files have none. */
    st->nlink = n->is_dir ? 2 : (uint64_t)n->linked;
    st->size = n->is_dir ? 0 : n->size;
    st->atim = n->atim;
    st->mtim = n->mtim;
    st->ctim = n->ctim;
}

int vfs_mem_fstat(const eryx__vfs_file *f, eryx__vfs_attr *st)
{
    node_stat(f->mnt, f->u.node, st);
    return 0;
}

int vfs_mem_ftruncate(eryx__vfs_file *f, uint64_t size)
{
    if (size > f->vfs->tmp_quota)
        return -ENOSPC;
    return set_size(f->u.node, size);
}

static void set_times(memfs_node *n, uint64_t atim, uint64_t mtim, int flags)
{
    uint64_t now = vfs_now_ns();
    if (flags & ERYX__VFS_SET_ATIM_NOW)
        n->atim = now;
    else if (flags & ERYX__VFS_SET_ATIM)
        n->atim = atim;
    if (flags & ERYX__VFS_SET_MTIM_NOW)
        n->mtim = now;
    else if (flags & ERYX__VFS_SET_MTIM)
        n->mtim = mtim;
    n->ctim = now;
}

int vfs_mem_futimes(eryx__vfs_file *f, uint64_t atim, uint64_t mtim, int flags)
{
    set_times(f->u.node, atim, mtim, flags);
    return 0;
}

int vfs_mem_list(const eryx__vfs_file *f, vfs_dirlist *l)
{
    const memfs_node *dir = f->u.node;
    for (size_t i = 0; i < dir->nkids; i++) {
        const memfs_entry *e = &dir->kids[i];
        uint8_t type = e->node->is_dir ? ERYX__VFS_T_DIR : ERYX__VFS_T_REG;
        if (vfs_dirlist_add(l, e->name, strlen(e->name), type, e->node->ino) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- path operations -------------------------------------------------- */

int vfs_mem_stat(const vfs_mount *m, const char *rel, eryx__vfs_attr *st)
{
    memfs_node *n;
    int rc = lookup(m, rel, &n);
    if (rc == 0)
        node_stat(m, n, st);
    return rc;
}

int vfs_mem_utimes(const vfs_mount *m, const char *rel, uint64_t atim, uint64_t mtim,
                   int flags)
{
    memfs_node *n;
    int rc = lookup(m, rel, &n);
    if (rc == 0)
        set_times(n, atim, mtim, flags);
    return rc;
}

/* Depth of the node rel names (1 for an entry of the root): in a tree
 * without links that is its number of components. */
static size_t rel_depth(const char *rel)
{
    size_t d = 1;
    for (; *rel; rel++)
        d += *rel == '/';
    return d;
}

int vfs_mem_mkdir(const vfs_mount *m, const char *rel)
{
    memfs_node *n;
    if (rel_depth(rel) > ERYX__VFS_MAX_DEPTH)
        return -ENAMETOOLONG;
    return create(m, rel, 1, &n);
}

/* Finds rel's entry: its directory and index there. */
static int find_entry(const vfs_mount *m, const char *rel, memfs_node **dir, size_t *idx)
{
    const char *name;
    int rc = walk_parent(m, rel, dir, &name);
    if (rc < 0)
        return rc;
    long k = find_kid(*dir, name, strlen(name));
    if (k < 0)
        return -ENOENT;
    *idx = (size_t)k;
    return 0;
}

int vfs_mem_rmdir(const vfs_mount *m, const char *rel)
{
    memfs_node *dir;
    size_t i;
    int rc = find_entry(m, rel, &dir, &i);
    if (rc < 0)
        return rc;
    const memfs_node *n = dir->kids[i].node;
    if (!n->is_dir)
        return -ENOTDIR;
    if (n->nkids)
        return -ENOTEMPTY;
    dir->kids[i].node->parent = NULL;
    remove_kid(dir, i, 1);
    return 0;
}

int vfs_mem_unlink(const vfs_mount *m, const char *rel)
{
    memfs_node *dir;
    size_t i;
    int rc = find_entry(m, rel, &dir, &i);
    if (rc < 0)
        return rc;
    if (dir->kids[i].node->is_dir)
        return -EISDIR;
    remove_kid(dir, i, 1);
    return 0;
}

static int is_ancestor(const memfs_node *a, const memfs_node *n)
{
    for (; n; n = n->parent)
        if (n == a)
            return 1;
    return 0;
}

/* POSIX rename rules for a target that exists. */
static int check_replace(const memfs_node *src, const memfs_node *dst)
{
    if (src->is_dir && !dst->is_dir)
        return -ENOTDIR;
    if (!src->is_dir && dst->is_dir)
        return -EISDIR;
    if (dst->is_dir && dst->nkids)
        return -ENOTEMPTY;
    return 0;
}

/* Whether directories reach more than `limit` levels below dir: 1, 0, or
 * -ENOMEM. Depth-first without recursion, one index per level. */
static int deeper_than(const memfs_node *dir, size_t limit)
{
    size_t *next = malloc((limit + 1) * sizeof *next);
    if (!next)
        return -ENOMEM;
    const memfs_node *cur = dir;
    size_t level = 0;
    int rc = 0;
    next[0] = 0;
    for (;;) {
        if (next[level] < cur->nkids) {
            const memfs_node *k = cur->kids[next[level]++].node;
            if (!k->is_dir)
                continue;
            if (level == limit) {
                rc = 1;
                break;
            }
            cur = k;
            next[++level] = 0;
        } else if (level == 0) {
            break;
        } else {
            cur = cur->parent;
            level--;
        }
    }
    free(next);
    return rc;
}

/* Moving directory src from `from` to `to` must keep every directory within
 * ERYX__VFS_MAX_DEPTH. Only a move deeper needs the subtree measured. */
static int check_depth(const memfs_node *src, const char *from, const char *to)
{
    size_t old_depth = rel_depth(from), new_depth = rel_depth(to);
    if (!src->is_dir || new_depth <= old_depth)
        return 0;
    if (new_depth > ERYX__VFS_MAX_DEPTH)
        return -ENAMETOOLONG;
    int rc = deeper_than(src, ERYX__VFS_MAX_DEPTH - new_depth);
    return rc < 0 ? rc : rc ? -ENAMETOOLONG : 0;
}

int vfs_mem_rename(const vfs_mount *m, const char *from, const char *to)
{
    memfs_node *sdir, *ddir;
    size_t si;
    const char *dname;
    int rc = find_entry(m, from, &sdir, &si);
    if (rc == 0)
        rc = walk_parent(m, to, &ddir, &dname);
    if (rc < 0)
        return rc;
    memfs_node *src = sdir->kids[si].node;
    if (src->is_dir && is_ancestor(src, ddir))
        return -EINVAL;     /* moving a directory into itself */
    if ((rc = check_depth(src, from, to)) < 0)
        return rc;
    long di = find_kid(ddir, dname, strlen(dname));
    if (di >= 0) {
        if (ddir->kids[di].node == src)
            return 0;
        if ((rc = check_replace(src, ddir->kids[di].node)) < 0)
            return rc;
        ddir->kids[di].node->parent = NULL;
    }
    /* Link under the new name first so a failure leaves the old name intact. */
    src->refs++;
    if (di >= 0) {
        remove_kid(ddir, (size_t)di, 0);
        di = find_kid(ddir, dname, strlen(dname));
    }
    rc = add_kid(ddir, di, dname, strlen(dname), src);
    if (rc == 0) {
        find_entry(m, from, &sdir, &si);
        remove_kid(sdir, si, 1);
        src->linked = 1;
        if (src->is_dir)
            src->parent = ddir;
    }
    node_unref(src);
    return rc;
}

/* ---- cloning ---------------------------------------------------------- */

/* Copies of the nodes made so far, for finding the copy of a node that open
 * files refer to: sorted by source node once the tree is copied, plus an
 * unsorted tail of unlinked nodes copied for open files. */
struct vfs_node_map {
    struct node_pair {
        const memfs_node *from;
        memfs_node *to;
    } *p;
    size_t n, cap, sorted;
};

vfs_node_map *vfs_node_map_new(void) { return calloc(1, sizeof(vfs_node_map)); }

void vfs_node_map_free(vfs_node_map *map)
{
    if (map)
        free(map->p);
    free(map);
}

static int map_add(vfs_node_map *map, const memfs_node *from, memfs_node *to)
{
    if (map->n == map->cap) {
        size_t cap = map->cap ? map->cap * 2 : 32;
        struct node_pair *p = realloc(map->p, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        map->p = p;
        map->cap = cap;
    }
    map->p[map->n++] = (struct node_pair){from, to};
    return 0;
}

static int cmp_pair(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct node_pair *)a)->from;
    uintptr_t y = (uintptr_t)((const struct node_pair *)b)->from;
    return (x > y) - (x < y);
}

static memfs_node *map_find(const vfs_node_map *map, const memfs_node *from)
{
    size_t lo = 0, hi = map->sorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)map->p[mid].from < (uintptr_t)from)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < map->sorted && map->p[lo].from == from)
        return map->p[lo].to;
    for (size_t i = map->sorted; i < map->n; i++)
        if (map->p[i].from == from)
            return map->p[i].to;
    return NULL;
}

/* Copies one node into vfs without its entries (room for them is made),
 * charging the copy exactly as if it had been written there (a file's buffer
 * is charged by its size: the copy has no slack; an entry array keeps its
 * capacity, so a fork is charged what its source is). Inode number and times are
 * kept. The copy has no references. */
static memfs_node *copy_node(eryx__vfs *vfs, const memfs_node *n)
{
    memfs_node *c = node_new(vfs, n->is_dir);
    if (!c)
        return NULL;
    c->ino = n->ino;
    c->atim = n->atim;
    c->mtim = n->mtim;
    c->ctim = n->ctim;
    c->linked = n->linked;
    int ok = 1;
    if (!n->is_dir && n->size) {
        ok = charge(vfs, n->size) == 0;
        if (ok && !(c->data = malloc((size_t)n->size))) {
            release(vfs, n->size);
            ok = 0;
        }
        if (ok) {
            memcpy(c->data, n->data, (size_t)n->size);
            c->size = c->cap = n->size;
        }
    }
    if (ok && n->nkids)     /* the same room, charged the same as the source */
        ok = resize_kids(c, n->kcap) == 0;
    if (!ok) {
        c->refs = 1;
        node_unref(c);
        return NULL;
    }
    return c;
}

/* Appends to dir (a copy with room made) a copy of entry e; *out is the
 * copied node, holding the entry's reference. */
static int copy_entry(eryx__vfs *vfs, memfs_node *dir, const memfs_entry *e, memfs_node **out)
{
    size_t len = strlen(e->name);
    if (charge(vfs, NAME_COST(len)) < 0)
        return -ENOSPC;
    char *name = malloc(len + 1);
    memfs_node *k = name ? copy_node(vfs, e->node) : NULL;
    if (!k) {
        free(name);
        release(vfs, NAME_COST(len));
        return -ENOMEM;
    }
    memcpy(name, e->name, len + 1);
    k->refs = 1;
    if (k->is_dir)
        k->parent = dir;
    dir->kids[dir->nkids++] = (memfs_entry){name, k};
    *out = k;
    return 0;
}

/* Copies n with its whole subtree into vfs. Depth-first without recursion
 * (a tree may be deeper than the host stack allows): a copied directory's
 * entry count says which source entry comes next, and the parent pointers
 * of source and copy lead back up. The copy has no references; the caller
 * adds them. */
static memfs_node *clone_node(eryx__vfs *vfs, const memfs_node *n, vfs_node_map *map)
{
    memfs_node *root = copy_node(vfs, n);
    if (!root)
        return NULL;
    root->refs = 1;     /* ours until returned: node_unref frees a failed copy */
    const memfs_node *s = n;
    memfs_node *c = root;
    for (;;) {
        if (c->nkids < s->nkids) {
            const memfs_entry *e = &s->kids[c->nkids];
            memfs_node *k;
            if (copy_entry(vfs, c, e, &k) < 0)
                goto fail;
            if (e->node->nkids) {
                s = e->node;
                c = k;
            } else if (map_add(map, e->node, k) < 0) {
                goto fail;
            }
            continue;
        }
        if (map_add(map, s, c) < 0)
            goto fail;
        if (c == root)
            break;
        if (!s->parent)
            goto fail;      /* cannot happen: a named directory knows its parent */
        s = s->parent;
        c = c->parent;
    }
    root->refs = 0;
    return root;
fail:
    node_unref(root);
    return NULL;
}

memfs_node *vfs_mem_clone_root(eryx__vfs *vfs, const memfs_node *root, vfs_node_map *map)
{
    memfs_node *c = clone_node(vfs, root, map);
    if (!c)
        return NULL;
    c->refs = 1;        /* the mount */
    return c;
}

void vfs_node_map_seal(vfs_node_map *map)
{
    if (map->n)     /* no /tmp mount: no array, and qsort wants one */
        qsort(map->p, map->n, sizeof *map->p, cmp_pair);
    map->sorted = map->n;
}

int vfs_mem_clone_file(eryx__vfs_file *to, const eryx__vfs_file *from, vfs_node_map *map)
{
    memfs_node *c = map_find(map, from->u.node);
    if (!c) {
        /* An unlinked node kept alive by open files: copied on its own, once. */
        c = clone_node(to->vfs, from->u.node, map);
        if (!c)
            return -ENOMEM;
    }
    c->refs++;
    to->u.node = c;
    return 0;
}
