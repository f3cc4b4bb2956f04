/*
 * Read-only file images ("ERYXIMG1", see vfs.h). The image is validated once
 * at mount; after that every lookup is a binary search over the sorted
 * entries, and directories are the prefixes of the entry paths: "a/b" is a
 * directory when some entry starts with "a/b/". Entry files report
 * timestamps of 0 (the image has none), which keeps pyc validation stable.
 */
#include <errno.h>
#include <string.h>

#include "vfs_internal.h"
#include "le.h"

#define HEADER_SIZE 16u
#define ENTRY_SIZE 16u

static const uint8_t *entry(const vfs_image *img, uint32_t i)
{
    return img->base + HEADER_SIZE + (size_t)i * ENTRY_SIZE;
}

static const char *ent_path(const vfs_image *img, uint32_t i, size_t *len)
{
    const uint8_t *e = entry(img, i);
    *len = eryx__le32(e + 4);
    return (const char *)img->base + eryx__le32(e);
}

/* Full bytewise comparison of entry i's path with key. */
static int cmp_full(const vfs_image *img, uint32_t i, const char *key, size_t klen)
{
    size_t elen;
    const char *p = ent_path(img, i, &elen);
    int c = memcmp(p, key, elen < klen ? elen : klen);
    if (c != 0)
        return c;
    return elen < klen ? -1 : elen > klen;
}

/* Like cmp_full, but an entry that starts with prefix compares equal. */
static int cmp_prefix(const vfs_image *img, uint32_t i, const char *prefix, size_t plen)
{
    size_t elen;
    const char *p = ent_path(img, i, &elen);
    int c = memcmp(p, prefix, elen < plen ? elen : plen);
    if (c != 0)
        return c;
    return elen < plen ? -1 : 0;
}

/* First index whose entry is not below prefix (upper=0), or past every
 * entry starting with prefix (upper=1). */
static uint32_t bound(const vfs_image *img, const char *prefix, size_t plen, int upper)
{
    uint32_t lo = 0, hi = img->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = cmp_prefix(img, mid, prefix, plen);
        if (c < 0 || (upper && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int find_file(const vfs_image *img, const char *rel, size_t len)
{
    uint32_t i = bound(img, rel, len, 0);
    return i < img->count && cmp_full(img, i, rel, len) == 0 ? (int)i : -1;
}

/* Whether some entry lies below directory rel[0..len). */
static int is_dir(const vfs_image *img, const char *rel, size_t len)
{
    if (len == 0)
        return 1;
    char prefix[ERYX__VFS_PATH_MAX + 1];
    if (len + 1 > sizeof prefix)
        return 0;
    memcpy(prefix, rel, len);
    prefix[len] = '/';
    uint32_t i = bound(img, prefix, len + 1, 0);
    return i < img->count && cmp_prefix(img, i, prefix, len + 1) == 0;
}

/* Error for a missing rel: ENOTDIR when a leading component is a file. */
static int missing(const vfs_image *img, const char *rel)
{
    for (const char *s = strchr(rel, '/'); s; s = strchr(s + 1, '/'))
        if (find_file(img, rel, (size_t)(s - rel)) >= 0)
            return -ENOTDIR;
    return -ENOENT;
}

/* ---- validation ------------------------------------------------------- */

static int valid_path(const char *p, size_t len)
{
    if (len == 0 || len >= ERYX__VFS_PATH_MAX || memchr(p, '\0', len))
        return 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && p[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 0 || n > ERYX__VFS_NAME_MAX || (n == 1 && p[i] == '.') ||
            (n == 2 && p[i] == '.' && p[i + 1] == '.'))
            return 0;
        i = j + 1;
    }
    return 1;
}

static int valid_entry(const vfs_image *img, uint32_t i)
{
    const uint8_t *e = entry(img, i);
    uint64_t po = eryx__le32(e), pl = eryx__le32(e + 4), d_o = eryx__le32(e + 8), dl = eryx__le32(e + 12);
    if (po + pl > img->size || d_o + dl > img->size)
        return 0;
    size_t len;
    const char *p = ent_path(img, i, &len);
    if (!valid_path(p, len))
        return 0;
    if (i > 0) {
        size_t plen;
        const char *prev = ent_path(img, i - 1, &plen);
        if (cmp_full(img, i, prev, plen) <= 0)
            return 0;       /* not strictly sorted */
    }
    return !is_dir(img, p, len);    /* a path cannot be a file and a dir */
}

int eryx__image_validate(const void *image, size_t size)
{
    if (!image || size < HEADER_SIZE || memcmp(image, ERYX_IMAGE_MAGIC, 8) != 0)
        return -1;
    vfs_image img = {image, size, eryx__le32((const uint8_t *)image + 8)};
    if (HEADER_SIZE + (uint64_t)img.count * ENTRY_SIZE > size)
        return -1;
    /* Entries are checked in order, so entry i-1 is known good when entry i
     * compares against it; is_dir() only reads path bounds already checked
     * for every entry by the first pass. */
    for (uint32_t i = 0; i < img.count; i++) {
        const uint8_t *e = entry(&img, i);
        if ((uint64_t)eryx__le32(e) + eryx__le32(e + 4) > size)
            return -1;
    }
    for (uint32_t i = 0; i < img.count; i++)
        if (!valid_entry(&img, i))
            return -1;
    return 0;
}

/* ---- reading a validated image from outside the vfs ------------------ */

uint32_t eryx__image_count(const void *image)
{
    return eryx__le32((const uint8_t *)image + 8);
}

void eryx__image_entry(const void *image, uint32_t i, const char **path, size_t *path_len,
                       const uint8_t **data, size_t *data_len)
{
    vfs_image img = {image, 0, eryx__image_count(image)};
    const uint8_t *e = entry(&img, i);
    *path = ent_path(&img, i, path_len);
    *data = img.base + eryx__le32(e + 8);
    *data_len = eryx__le32(e + 12);
}

int eryx__image_find(const void *image, const char *path, size_t len)
{
    vfs_image img = {image, 0, eryx__image_count(image)};
    return find_file(&img, path, len);
}

int vfs_img_init(vfs_image *img, const void *image, size_t size)
{
    img->base = image;
    img->size = size;
    img->count = eryx__le32(img->base + 8);
    return 0;
}

/* ---- operations ------------------------------------------------------- */

static void file_stat(const vfs_image *img, uint32_t i, eryx__vfs_attr *st)
{
    memset(st, 0, sizeof *st);
    st->type = ERYX__VFS_T_REG;
    st->ino = (uint64_t)i + 1;
    st->nlink = 1;
    st->size = eryx__le32(entry(img, i) + 12);
}

static void dir_stat(const char *rel, eryx__vfs_attr *st)
{
    memset(st, 0, sizeof *st);
    st->type = ERYX__VFS_T_DIR;
    st->ino = vfs_hash_ino(rel, strlen(rel));
    st->nlink = 1;
}

int vfs_img_stat(const vfs_mount *m, const char *rel, eryx__vfs_attr *st)
{
    size_t len = strlen(rel);
    int i = find_file(&m->u.img, rel, len);
    if (i >= 0)
        file_stat(&m->u.img, (uint32_t)i, st);
    else if (is_dir(&m->u.img, rel, len))
        dir_stat(rel, st);
    else
        return missing(&m->u.img, rel);
    st->dev = m->dev;
    return 0;
}

int vfs_img_open(eryx__vfs_file *f, const char *rel, int flags)
{
    const vfs_image *img = &f->mnt->u.img;
    size_t len = strlen(rel);
    int i = find_file(img, rel, len);
    int dir = i < 0 && is_dir(img, rel, len);
    if (i < 0 && !dir)
        return (flags & ERYX__VFS_O_CREAT) ? -EROFS : missing(img, rel);
    if ((flags & ERYX__VFS_O_CREAT) && (flags & ERYX__VFS_O_EXCL))
        return -EEXIST;
    if (dir && (flags & (ERYX__VFS_O_WRITE | ERYX__VFS_O_TRUNC)))
        return -EISDIR;
    if (flags & (ERYX__VFS_O_WRITE | ERYX__VFS_O_TRUNC))
        return -EROFS;
    if (!dir && (flags & ERYX__VFS_O_DIRECTORY))
        return -ENOTDIR;
    f->kind = dir ? VFS_F_IMG_DIR : VFS_F_IMG_FILE;
    f->type = dir ? ERYX__VFS_T_DIR : ERYX__VFS_T_REG;
    f->u.img_index = dir ? 0 : (uint32_t)i;
    return 0;
}

int vfs_img_pread(const eryx__vfs_file *f, void *buf, size_t len, uint64_t off, size_t *n)
{
    const vfs_image *img = &f->mnt->u.img;
    const uint8_t *e = entry(img, f->u.img_index);
    uint64_t size = eryx__le32(e + 12);
    if (off >= size)
        return 0;
    size_t k = (size_t)(size - off) < len ? (size_t)(size - off) : len;
    memcpy(buf, img->base + eryx__le32(e + 8) + off, k);
    *n = k;
    return 0;
}

int vfs_img_fstat(const eryx__vfs_file *f, eryx__vfs_attr *st)
{
    if (f->kind == VFS_F_IMG_FILE)
        file_stat(&f->mnt->u.img, f->u.img_index, st);
    else
        dir_stat(vfs_file_rel(f), st);
    st->dev = f->mnt->dev;
    return 0;
}

/* Lists the immediate children of the directory: each file directly in it,
 * and each subdirectory once (its whole subtree is skipped by one search). */
int vfs_img_list(const eryx__vfs_file *f, vfs_dirlist *l)
{
    const vfs_image *img = &f->mnt->u.img;
    const char *rel = vfs_file_rel(f);
    char prefix[ERYX__VFS_PATH_MAX + 1];
    size_t plen = strlen(rel);
    memcpy(prefix, rel, plen);
    if (plen)
        prefix[plen++] = '/';
    uint32_t i = bound(img, prefix, plen, 0), end = bound(img, prefix, plen, 1);
    while (i < end) {
        size_t elen;
        const char *p = ent_path(img, i, &elen);
        const char *name = p + plen;
        size_t rest = elen - plen;
        const char *slash = memchr(name, '/', rest);
        size_t nlen = slash ? (size_t)(slash - name) : rest;
        uint8_t type = slash ? ERYX__VFS_T_DIR : ERYX__VFS_T_REG;
        uint64_t ino = slash ? vfs_hash_ino(p, plen + nlen) : (uint64_t)i + 1;
        if (vfs_dirlist_add(l, name, nlen, type, ino) < 0)
            return -ENOMEM;
        i = slash ? bound(img, p, plen + nlen + 1, 1) : i + 1;
    }
    return 0;
}
