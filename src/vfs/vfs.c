/*
 * The VFS front: mount table, path normalisation, resolution of a guest path
 * to (mount, relative path), virtual directories above mount points, and
 * dispatch to the backends (vfs_image.c, vfs_memfs.c, vfs_host.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vfs_internal.h"

uint64_t vfs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t vfs_hash_ino(const char *s, size_t len)
{
    /* FNV-1a; the top bit is set so these never collide with memfs counters. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h | (1ull << 63);
}

/* ---- paths ------------------------------------------------------------ */

/* Appends one component to out (which holds a normalised absolute path of
 * length *olen), handling "." and "..". */
static int push_component(char *out, size_t cap, size_t *olen, const char *c, size_t n)
{
    if (n == 0 || (n == 1 && c[0] == '.'))
        return 0;
    if (n == 2 && c[0] == '.' && c[1] == '.') {
        /* Lexical "..": drop the last component, never above "/". */
        while (*olen > 1 && out[*olen - 1] != '/')
            (*olen)--;
        if (*olen > 1)
            (*olen)--;
        out[*olen] = '\0';
        return 0;
    }
    if (n > ERYX__VFS_NAME_MAX)
        return -ENAMETOOLONG;
    size_t need = *olen + (*olen > 1) + n + 1;
    if (need > cap)
        return -ENAMETOOLONG;
    if (*olen > 1)
        out[(*olen)++] = '/';
    memcpy(out + *olen, c, n);
    *olen += n;
    out[*olen] = '\0';
    return 0;
}

static int append_path(char *out, size_t cap, size_t *olen, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        int rc = push_component(out, cap, olen, p + i, j - i);
        if (rc < 0)
            return rc;
        i = j + 1;
    }
    return 0;
}

int eryx__vfs_path_join(const char *base, const char *path, size_t path_len,
                        char *out, size_t cap, int *trailing_slash)
{
    if (cap < 2)
        return -ENAMETOOLONG;
    if (memchr(path, '\0', path_len))
        return -EINVAL;
    if (trailing_slash)
        *trailing_slash = path_len > 0 && path[path_len - 1] == '/';
    out[0] = '/';
    out[1] = '\0';
    size_t olen = 1;
    int rc = 0;
    if (path_len == 0 || path[0] != '/')
        rc = append_path(out, cap, &olen, base, base ? strlen(base) : 0);
    if (rc == 0)
        rc = append_path(out, cap, &olen, path, path_len);
    return rc < 0 ? rc : (int)olen;
}

/* Normalises an absolute path given to a vfs entry point. */
static int norm(const char *in, char out[ERYX__VFS_PATH_MAX])
{
    if (!in)
        return -EINVAL;
    int rc = eryx__vfs_path_join("/", in, strlen(in), out, ERYX__VFS_PATH_MAX, NULL);
    return rc < 0 ? rc : 0;
}

/* ---- mounts ----------------------------------------------------------- */

/* The mount holding path (normalised), and the path relative to it. */
static vfs_mount *resolve(const eryx__vfs *vfs, const char *path, const char **rel)
{
    vfs_mount *best = NULL;
    size_t plen = strlen(path);
    for (size_t i = 0; i < vfs->nmounts; i++) {
        vfs_mount *m = vfs->mounts[i];
        int match = m->len == 1 ||
                    (plen >= m->len && memcmp(path, m->path, m->len) == 0 &&
                     (path[m->len] == '\0' || path[m->len] == '/'));
        if (match && (!best || m->len > best->len))
            best = m;
    }
    if (best) {
        const char *r = path + (best->len == 1 ? 0 : best->len);
        *rel = *r == '/' ? r + 1 : r;
    }
    return best;
}

int vfs_path_is_tmp(const eryx__vfs *vfs, const char *path)
{
    char p[ERYX__VFS_PATH_MAX];
    const char *rel;
    if (norm(path, p) < 0 || strcmp(p, path) != 0)
        return 0;
    const vfs_mount *m = resolve(vfs, p, &rel);
    return m && m->kind == VFS_MNT_TMP;
}

/* Whether path is "/" or a strict ancestor of some mount point. */
static int is_mount_ancestor(const eryx__vfs *vfs, const char *path)
{
    size_t plen = strlen(path);
    if (plen == 1)
        return 1;
    for (size_t i = 0; i < vfs->nmounts; i++) {
        const vfs_mount *m = vfs->mounts[i];
        if (m->len > plen && memcmp(m->path, path, plen) == 0 && m->path[plen] == '/')
            return 1;
    }
    return 0;
}

/* Adds to l the next component of every mount point below dir. */
static int add_mount_children(const eryx__vfs *vfs, const char *dir, vfs_dirlist *l)
{
    size_t dlen = strlen(dir);
    size_t skip = dlen == 1 ? 1 : dlen + 1;
    for (size_t i = 0; i < vfs->nmounts; i++) {
        const vfs_mount *m = vfs->mounts[i];
        if (m->len < skip + 1 || memcmp(m->path, dir, dlen) != 0 ||
            (dlen > 1 && m->path[dlen] != '/'))
            continue;
        const char *name = m->path + skip;
        const char *end = strchr(name, '/');
        size_t n = end ? (size_t)(end - name) : strlen(name);
        if (vfs_dirlist_has(l, name, n))
            continue;
        if (vfs_dirlist_add(l, name, n, ERYX__VFS_T_DIR, vfs_hash_ino(m->path, skip + n)) < 0)
            return -ENOMEM;
    }
    return 0;
}

static void virtual_stat(const char *path, eryx__vfs_attr *st)
{
    memset(st, 0, sizeof *st);
    st->type = ERYX__VFS_T_DIR;
    st->nlink = 1;
    st->ino = vfs_hash_ino(path, strlen(path));
}

void eryx__vfs_set_tmp_quota(eryx__vfs *vfs, uint64_t tmp_quota_bytes)
{
    vfs->tmp_quota = tmp_quota_bytes;
}

eryx__vfs *eryx__vfs_new(uint64_t tmp_quota_bytes)
{
    eryx__vfs *vfs = calloc(1, sizeof *vfs);
    if (!vfs)
        return NULL;
    vfs->tmp_quota = tmp_quota_bytes;
    vfs->list_quota = ERYX__VFS_LIST_QUOTA_DEFAULT;
    vfs->host_quota = ERYX__VFS_HOST_QUOTA_DEFAULT;
    vfs->next_ino = 1;
    return vfs;
}

void eryx__vfs_set_list_quota(eryx__vfs *vfs, uint64_t bytes) { vfs->list_quota = bytes; }

void eryx__vfs_set_host_quota(eryx__vfs *vfs, uint64_t bytes) { vfs->host_quota = bytes; }

uint64_t eryx__vfs_host_used(const eryx__vfs *vfs) { return vfs->host_used; }

static void free_mount(vfs_mount *m)
{
    if (m->kind == VFS_MNT_TMP)
        vfs_mem_free_root(m->u.mroot);
    else if (m->kind == VFS_MNT_HOST)
        vfs_host_unmount(m);
    free(m->path);
    free(m);
}

void eryx__vfs_free(eryx__vfs *vfs)
{
    if (!vfs)
        return;
    for (size_t i = 0; i < vfs->nmounts; i++)
        free_mount(vfs->mounts[i]);
    free(vfs->mounts);
    free(vfs);
}

uint64_t eryx__vfs_tmp_used(const eryx__vfs *vfs) { return vfs->tmp_used; }

/* Allocates a mount for guest_path; the caller fills the backend part and
 * then calls add_mount. */
/* A mount of kind at guest_path, not yet added: 0, or -EINVAL (not a
 * path), -EEXIST (a mount is there already: /tmp, the standard library,
 * an earlier mount) or -ENOMEM. */
static int new_mount(const eryx__vfs *vfs, const char *guest_path, int kind, vfs_mount **out)
{
    char p[ERYX__VFS_PATH_MAX];
    *out = NULL;
    if (!vfs || norm(guest_path, p) < 0)
        return -EINVAL;
    for (size_t i = 0; i < vfs->nmounts; i++)
        if (strcmp(vfs->mounts[i]->path, p) == 0)
            return -EEXIST;
    vfs_mount *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(p))) {
        free(m);
        return -ENOMEM;
    }
    m->len = strlen(p);
    m->kind = kind;
    m->dev = vfs->nmounts + 1;
    *out = m;
    return 0;
}

static int add_mount(eryx__vfs *vfs, vfs_mount *m)
{
    vfs_mount **n = realloc(vfs->mounts, (vfs->nmounts + 1) * sizeof *n);
    if (!n) {
        free_mount(m);
        return -ENOMEM;
    }
    vfs->mounts = n;
    vfs->mounts[vfs->nmounts++] = m;
    return 0;
}

int eryx__vfs_mount_image(eryx__vfs *vfs, const char *guest_path, const void *image,
                          size_t size)
{
    if (!image || eryx__image_validate(image, size) < 0)
        return -EINVAL;
    vfs_mount *m;
    int rc = new_mount(vfs, guest_path, VFS_MNT_IMAGE, &m);
    if (rc < 0)
        return rc;
    vfs_img_init(&m->u.img, image, size);
    return add_mount(vfs, m);
}

int eryx__vfs_replace_image(eryx__vfs *vfs, const char *guest_path, const void *image,
                            size_t size)
{
    if (!image || eryx__image_validate(image, size) < 0)
        return -EINVAL;
    for (size_t i = 0; i < vfs->nmounts; i++) {
        vfs_mount *m = vfs->mounts[i];
        if (m->kind == VFS_MNT_IMAGE && strcmp(m->path, guest_path) == 0) {
            vfs_img_init(&m->u.img, image, size);
            return 0;
        }
    }
    return -ENOENT;
}

int eryx__vfs_mount_tmp(eryx__vfs *vfs, const char *guest_path)
{
    vfs_mount *m;
    int rc = new_mount(vfs, guest_path, VFS_MNT_TMP, &m);
    if (rc < 0)
        return rc;
    m->u.mroot = vfs_mem_new_root(vfs);
    if (!m->u.mroot) {
        m->kind = VFS_MNT_IMAGE; /* nothing to release */
        free_mount(m);
        return -ENOMEM;
    }
    return add_mount(vfs, m);
}

int eryx__vfs_mount_host(eryx__vfs *vfs, const char *guest_path, const char *host_dir,
                         int read_only)
{
    if (!host_dir)
        return -EINVAL;
    vfs_mount *m;
    int rc = new_mount(vfs, guest_path, VFS_MNT_HOST, &m);
    if (rc < 0)
        return rc;
    rc = vfs_host_mount(m, host_dir, read_only);
    if (rc < 0) {
        m->kind = VFS_MNT_IMAGE;
        free_mount(m);
        return rc;
    }
    return add_mount(vfs, m);
}

/* ---- directory snapshots ---------------------------------------------- */

/* Host bytes of one snapshot name: the string and malloc's overhead. */
#define NAME_COST(len) ((uint64_t)(len) + 1 + 16)

/* Charges a snapshot's growth to its account; -ENOMEM past the quota. The
 * /tmp quota is added to the bound: a snapshot of a /tmp directory costs
 * less per entry than the entries themselves, so any one /tmp directory
 * can always be listed. */
static int list_charge(vfs_dirlist *l, uint64_t bytes)
{
    eryx__vfs *a = l->acct;
    if (a) {
        uint64_t limit = a->list_quota + a->tmp_quota;
        if (limit < a->list_quota)
            limit = UINT64_MAX;
        if (a->list_used > limit || bytes > limit - a->list_used)
            return -ENOMEM;
        a->list_used += bytes;
    }
    l->charged += bytes;
    return 0;
}

static void list_release(vfs_dirlist *l)
{
    if (l->acct)
        l->acct->list_used -= l->charged;
    l->charged = 0;
}

int vfs_dirlist_add(vfs_dirlist *l, const char *name, size_t len, uint8_t type, uint64_t ino)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        if (list_charge(l, (cap - l->cap) * sizeof *l->ents) < 0)
            return -ENOMEM;
        eryx__vfs_dirent *e = realloc(l->ents, cap * sizeof *e);
        if (!e)
            return -ENOMEM;     /* the charge stays with l until it is freed */
        l->ents = e;
        l->cap = cap;
    }
    if (list_charge(l, NAME_COST(len)) < 0)
        return -ENOMEM;
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, name, len);
    copy[len] = '\0';
    l->ents[l->n++] = (eryx__vfs_dirent){copy, len, ino, type};
    return 0;
}

int vfs_dirlist_has(const vfs_dirlist *l, const char *name, size_t len)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->ents[i].name_len == len && memcmp(l->ents[i].name, name, len) == 0)
            return 1;
    return 0;
}

void vfs_dirlist_free(vfs_dirlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((char *)l->ents[i].name);
    free(l->ents);
    list_release(l);
    *l = (vfs_dirlist){.acct = l->acct};
}

/* ---- open files ------------------------------------------------------- */

const char *vfs_file_rel(const eryx__vfs_file *f)
{
    const char *rel = "";
    resolve(f->vfs, f->path, &rel);
    return rel;
}

static int backend_open(eryx__vfs_file *f, const char *rel, int flags)
{
    switch (f->mnt->kind) {
    case VFS_MNT_IMAGE:
        return vfs_img_open(f, rel, flags);
    case VFS_MNT_TMP:
        return vfs_mem_open(f, rel, flags);
    default:
        return vfs_host_open(f, rel, flags);
    }
}

/* Opening a path that has no mount of its own: only virtual directories. */
static int open_virtual(eryx__vfs_file *f, int flags)
{
    if (!is_mount_ancestor(f->vfs, f->path))
        return (flags & ERYX__VFS_O_CREAT) ? -EROFS : -ENOENT;
    if (flags & ERYX__VFS_O_EXCL)
        return -EEXIST;
    if (flags & (ERYX__VFS_O_WRITE | ERYX__VFS_O_TRUNC))
        return -EISDIR;
    f->mnt = NULL;
    f->kind = VFS_F_VIRTUAL;
    f->type = ERYX__VFS_T_DIR;
    return 0;
}

/* A file record named path, opened by nothing yet; NULL without memory. */
static eryx__vfs_file *file_new(eryx__vfs *vfs, const char *path)
{
    eryx__vfs_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return NULL;
    }
    f->vfs = vfs;
    return f;
}

/* Gives *f to *out when rc is 0, else frees it (no backend holds it). */
static int file_done(eryx__vfs_file *f, int rc, eryx__vfs_file **out)
{
    if (rc < 0) {
        free(f->path);
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int eryx__vfs_open(eryx__vfs *vfs, const char *path, int flags, eryx__vfs_file **out)
{
    char p[ERYX__VFS_PATH_MAX];
    int rc = norm(path, p);
    if (rc < 0)
        return rc;
    eryx__vfs_file *f = file_new(vfs, p);
    if (!f)
        return -ENOMEM;
    const char *rel = "";
    f->mnt = resolve(vfs, p, &rel);
    rc = f->mnt ? backend_open(f, rel, flags) : open_virtual(f, flags);
    /* A directory that exists only because a mount point lies below it. */
    if (rc == -ENOENT && f->mnt)
        rc = open_virtual(f, flags & ~ERYX__VFS_O_CREAT);
    return file_done(f, rc, out);
}

int vfs_open_unlinked(eryx__vfs *vfs, const char *mount, eryx__vfs_file **out)
{
    const char *rel = "";
    vfs_mount *m = resolve(vfs, mount, &rel);
    if (!m || m->kind != VFS_MNT_TMP || rel[0] || strcmp(m->path, mount) != 0)
        return -EINVAL;
    eryx__vfs_file *f = file_new(vfs, mount);
    if (!f)
        return -ENOMEM;
    f->mnt = m;
    return file_done(f, vfs_mem_open_unlinked(f), out);
}

void eryx__vfs_close(eryx__vfs_file *f)
{
    if (!f)
        return;
    if (f->kind == VFS_F_MEM)
        vfs_mem_close(f);
    else if (f->kind == VFS_F_HOST)
        vfs_host_close_fd(f);
    vfs_dirlist_free(&f->list);
    free(f->path);
    free(f);
}

const char *eryx__vfs_file_path(const eryx__vfs_file *f) { return f->path; }
uint8_t eryx__vfs_file_type(const eryx__vfs_file *f) { return f->type; }
int eryx__vfs_file_writable(const eryx__vfs_file *f) { return f->writable; }

int eryx__vfs_pread(eryx__vfs_file *f, void *buf, size_t len, uint64_t off, size_t *n)
{
    *n = 0;
    if (f->type == ERYX__VFS_T_DIR)
        return -EISDIR;
    switch (f->kind) {
    case VFS_F_IMG_FILE:
        return vfs_img_pread(f, buf, len, off, n);
    case VFS_F_MEM:
        return vfs_mem_pread(f, buf, len, off, n);
    case VFS_F_HOST:
        return vfs_host_pread(f, buf, len, off, n);
    default:
        return -EISDIR;
    }
}

int eryx__vfs_pwrite(eryx__vfs_file *f, const void *buf, size_t len, uint64_t off,
                     size_t *n)
{
    *n = 0;
    if (f->type == ERYX__VFS_T_DIR)
        return -EISDIR;
    if (!f->writable)
        return -EBADF;
    if (f->kind == VFS_F_MEM)
        return vfs_mem_pwrite(f, buf, len, off, n);
    if (f->kind == VFS_F_HOST)
        return vfs_host_pwrite(f, buf, len, off, n);
    return -EBADF;
}

int eryx__vfs_fstat(eryx__vfs_file *f, eryx__vfs_attr *st)
{
    switch (f->kind) {
    case VFS_F_IMG_FILE:
    case VFS_F_IMG_DIR:
        return vfs_img_fstat(f, st);
    case VFS_F_MEM:
        return vfs_mem_fstat(f, st);
    case VFS_F_HOST:
        return vfs_host_fstat(f, st);
    default:
        virtual_stat(f->path, st);
        return 0;
    }
}

int eryx__vfs_ftruncate(eryx__vfs_file *f, uint64_t size)
{
    if (f->type == ERYX__VFS_T_DIR)
        return -EISDIR;
    if (!f->writable)
        return -EBADF;
    if (f->kind == VFS_F_MEM)
        return vfs_mem_ftruncate(f, size);
    if (f->kind == VFS_F_HOST)
        return vfs_host_ftruncate(f, size);
    return -EBADF;
}

int eryx__vfs_futimes(eryx__vfs_file *f, uint64_t atim, uint64_t mtim, int flags)
{
    if (f->kind == VFS_F_MEM)
        return vfs_mem_futimes(f, atim, mtim, flags);
    if (f->kind == VFS_F_HOST) {
        if (f->mnt->u.host.read_only)
            return -EROFS;
        return vfs_host_futimes(f, atim, mtim, flags);
    }
    return -EROFS;
}

static int snapshot_dir(eryx__vfs_file *f)
{
    vfs_dirlist_free(&f->list);
    f->list.acct = f->saving ? NULL : f->vfs;
    int rc = 0;
    if (f->kind == VFS_F_IMG_DIR)
        rc = vfs_img_list(f, &f->list);
    else if (f->kind == VFS_F_MEM)
        rc = vfs_mem_list(f, &f->list);
    else if (f->kind == VFS_F_HOST)
        rc = vfs_host_list(f, &f->list);
    if (rc == 0 && !f->saving)
        rc = add_mount_children(f->vfs, f->path, &f->list);
    if (rc < 0)
        vfs_dirlist_free(&f->list);
    return rc;
}

int eryx__vfs_readdir(eryx__vfs_file *f, uint64_t cookie, eryx__vfs_dirent *ent)
{
    if (f->type != ERYX__VFS_T_DIR)
        return -ENOTDIR;
    /* A fresh handle asked to resume at a cookie lists from a new snapshot. */
    if (cookie == 0 || !f->list.ents) {
        int rc = snapshot_dir(f);
        if (rc < 0)
            return rc;
    }
    if (cookie >= f->list.n)
        return 1;
    *ent = f->list.ents[cookie];
    return 0;
}

/* ---- path operations -------------------------------------------------- */

/* Normalises path and finds its mount; *m is NULL for paths outside every
 * mount. */
static int lookup(const eryx__vfs *vfs, const char *path, char p[ERYX__VFS_PATH_MAX],
                  vfs_mount **m, const char **rel)
{
    int rc = norm(path, p);
    if (rc < 0)
        return rc;
    *rel = "";
    *m = resolve(vfs, p, rel);
    return 0;
}

int eryx__vfs_stat(eryx__vfs *vfs, const char *path, int follow, eryx__vfs_attr *st)
{
    char p[ERYX__VFS_PATH_MAX];
    vfs_mount *m;
    const char *rel;
    int rc = lookup(vfs, path, p, &m, &rel);
    if (rc < 0)
        return rc;
    rc = -ENOENT;
    if (m && m->kind == VFS_MNT_IMAGE)
        rc = vfs_img_stat(m, rel, st);
    else if (m && m->kind == VFS_MNT_TMP)
        rc = vfs_mem_stat(m, rel, st);
    else if (m)
        rc = vfs_host_stat(m, rel, follow, st);
    if (rc == -ENOENT && is_mount_ancestor(vfs, p)) {
        virtual_stat(p, st);
        rc = 0;
    }
    if (rc == 0 && m)
        st->dev = m->dev;
    return rc;
}

/* Errors for modifying a path: mount roots and virtual directories are
 * fixed; image mounts are read-only. Returns 1 if the backend should act. */
static int check_modifiable(const eryx__vfs *vfs, const vfs_mount *m, const char *p,
                            const char *rel, int *rc)
{
    if (is_mount_ancestor(vfs, p) || (m && rel[0] == '\0')) {
        *rc = -EBUSY;
        return 0;
    }
    if (!m || m->kind == VFS_MNT_IMAGE ||
        (m->kind == VFS_MNT_HOST && m->u.host.read_only)) {
        *rc = -EROFS;
        return 0;
    }
    return 1;
}

int eryx__vfs_utimes(eryx__vfs *vfs, const char *path, int follow, uint64_t atim,
                     uint64_t mtim, int flags)
{
    char p[ERYX__VFS_PATH_MAX];
    vfs_mount *m;
    const char *rel;
    int rc = lookup(vfs, path, p, &m, &rel);
    if (rc < 0)
        return rc;
    if (m && m->kind == VFS_MNT_TMP)
        return vfs_mem_utimes(m, rel, atim, mtim, flags);
    if (m && m->kind == VFS_MNT_HOST && !m->u.host.read_only)
        return vfs_host_utimes(m, rel, follow, atim, mtim, flags);
    eryx__vfs_attr st;
    rc = eryx__vfs_stat(vfs, p, follow, &st);
    return rc < 0 ? rc : -EROFS;
}

int eryx__vfs_mkdir(eryx__vfs *vfs, const char *path)
{
    char p[ERYX__VFS_PATH_MAX];
    vfs_mount *m;
    const char *rel;
    int rc = lookup(vfs, path, p, &m, &rel);
    if (rc < 0)
        return rc;
    eryx__vfs_attr st;
    if (is_mount_ancestor(vfs, p) || (m && rel[0] == '\0'))
        return -EEXIST;
    if (!check_modifiable(vfs, m, p, rel, &rc))
        return eryx__vfs_stat(vfs, p, 0, &st) == 0 ? -EEXIST : rc;
    return m->kind == VFS_MNT_TMP ? vfs_mem_mkdir(m, rel) : vfs_host_mkdir(vfs, m, rel);
}

int eryx__vfs_rmdir(eryx__vfs *vfs, const char *path)
{
    char p[ERYX__VFS_PATH_MAX];
    vfs_mount *m;
    const char *rel;
    int rc = lookup(vfs, path, p, &m, &rel);
    if (rc < 0)
        return rc;
    eryx__vfs_attr st;
    if (!check_modifiable(vfs, m, p, rel, &rc))
        return eryx__vfs_stat(vfs, p, 0, &st) < 0 ? -ENOENT : rc;
    return m->kind == VFS_MNT_TMP ? vfs_mem_rmdir(m, rel) : vfs_host_rmdir(vfs, m, rel);
}

int eryx__vfs_unlink(eryx__vfs *vfs, const char *path)
{
    char p[ERYX__VFS_PATH_MAX];
    vfs_mount *m;
    const char *rel;
    int rc = lookup(vfs, path, p, &m, &rel);
    if (rc < 0)
        return rc;
    eryx__vfs_attr st;
    if (!check_modifiable(vfs, m, p, rel, &rc)) {
        if (eryx__vfs_stat(vfs, p, 0, &st) < 0)
            return -ENOENT;
        return st.type == ERYX__VFS_T_DIR ? -EISDIR : rc;
    }
    return m->kind == VFS_MNT_TMP ? vfs_mem_unlink(m, rel) : vfs_host_unlink(vfs, m, rel);
}

int eryx__vfs_rename(eryx__vfs *vfs, const char *from, const char *to)
{
    char p1[ERYX__VFS_PATH_MAX], p2[ERYX__VFS_PATH_MAX];
    vfs_mount *m1, *m2;
    const char *r1, *r2;
    int rc = lookup(vfs, from, p1, &m1, &r1);
    if (rc == 0)
        rc = lookup(vfs, to, p2, &m2, &r2);
    if (rc < 0)
        return rc;
    eryx__vfs_attr st;
    if (eryx__vfs_stat(vfs, p1, 0, &st) < 0)
        return -ENOENT;
    if (!check_modifiable(vfs, m1, p1, r1, &rc) || !check_modifiable(vfs, m2, p2, r2, &rc))
        return rc;
    if (m1 != m2)
        return -EXDEV;
    return m1->kind == VFS_MNT_TMP ? vfs_mem_rename(m1, r1, r2) : vfs_host_rename(m1, r1, r2);
}

int eryx__vfs_readlink(eryx__vfs *vfs, const char *path, char *buf, size_t cap,
                       size_t *len)
{
    char p[ERYX__VFS_PATH_MAX];
    vfs_mount *m;
    const char *rel;
    *len = 0;
    int rc = lookup(vfs, path, p, &m, &rel);
    if (rc < 0)
        return rc;
    if (m && m->kind == VFS_MNT_HOST)
        return vfs_host_readlink(m, rel, buf, cap, len);
    /* Images and memfs have no symlinks: an existing path is "not a link". */
    eryx__vfs_attr st;
    rc = eryx__vfs_stat(vfs, p, 0, &st);
    return rc < 0 ? rc : -EINVAL;
}
