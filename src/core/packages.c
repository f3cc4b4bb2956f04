/*
 * Third-party packages: host site-packages directories and pure-Python
 * wheels packed into one read-only file image ("ERYXIMG1", src/vfs/vfs.h)
 * when the runtime's image is built. Every sandbox of the runtime mounts
 * that one image at ERYX__SITE_PACKAGES (shared, never copied), exactly as
 * the standard library is served. See docs/packages.md.
 *
 * Nothing is trusted about a wheel: it is opened with libzip's consistency
 * checks, every member's name is checked (no absolute path, no "..", no
 * backslash), every member is read whole and its CRC checked before the
 * image exists, and the image is handed out only when complete.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "core/packages.h"
#include "core/internal.h"
#include "vfs/vfs_ops.h"

typedef struct pkg_entry {
    char *path;                 /* relative, '/'-separated */
    uint8_t *data;              /* owned unless borrowed */
    size_t len;
    size_t order;               /* which source, then position: first wins */
    const char *source;         /* the directory or wheel it came from, for messages */
    int borrowed;               /* data points into an image the caller keeps */
} pkg_entry;

typedef struct pkg_set {
    pkg_entry *e;
    size_t n, cap;
    uint64_t bytes;             /* paths + data, for the limit */
    size_t order;
    const char *source;         /* what set_add's entries come from now */
} pkg_set;

static void entry_free(pkg_entry *e)
{
    free(e->path);
    if (!e->borrowed)
        free(e->data);
}

static void set_free(pkg_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        entry_free(&s->e[i]);
    free(s->e);
    memset(s, 0, sizeof *s);
}

/* Takes path (malloc'd) and data (malloc'd unless borrowed) into the set;
 * frees what it owns on failure. */
static int set_add_entry(pkg_set *s, char *path, uint8_t *data, size_t len, int borrowed)
{
    size_t plen = strlen(path);
    if (s->n >= ERYX__PACKAGES_MAX_FILES ||
        s->bytes + plen + len + 16 > ERYX__PACKAGES_MAX_BYTES) {
        free(path);
        if (!borrowed)
            free(data);
        eryx__set_errmsg(NULL, "the packages hold more than %u files or %llu bytes",
                         (unsigned)ERYX__PACKAGES_MAX_FILES,
                         (unsigned long long)ERYX__PACKAGES_MAX_BYTES);
        return ERYX_INVALID;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        pkg_entry *bigger = realloc(s->e, cap * sizeof *bigger);
        if (!bigger) {
            free(path);
            if (!borrowed)
                free(data);
            return ERYX_NOMEM;
        }
        s->e = bigger;
        s->cap = cap;
    }
    s->e[s->n++] = (pkg_entry){path, data, len, s->order++, s->source, borrowed};
    s->bytes += plen + len + 16;
    return ERYX_OK;
}

static int set_add(pkg_set *s, char *path, uint8_t *data, size_t len)
{
    return set_add_entry(s, path, data, len, 0);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Native code the guest cannot load: a CPython extension module or a
 * shared library ("x.so", "x.so.1", "x.pyd", "x.dylib"). */
static int is_native(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    return has_suffix(base, ".so") || has_suffix(base, ".pyd") || has_suffix(base, ".dylib") ||
           strstr(base, ".so.") != NULL;
}

/* ---- host directories ----------------------------------------------------- */

static int read_file_at(int dirfd, const char *name, const char *shown, uint8_t **out,
                        size_t *len)
{
    /* Without blocking, and its type checked on what was opened: the walk
     * saw a regular file, but a FIFO put in its place since would wait
     * for a writer for ever. */
    int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        eryx__set_errmsg(NULL, "cannot read %s: %s", shown, strerror(errno));
        if (fd >= 0)
            close(fd);
        return ERYX_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        eryx__set_errmsg(NULL, "cannot read %s: it is no longer a regular file", shown);
        return ERYX_IO;
    }
    if ((uint64_t)st.st_size > ERYX__PACKAGES_MAX_BYTES) {
        close(fd);
        eryx__set_errmsg(NULL, "%s is larger than the packages' limit", shown);
        return ERYX_INVALID;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    size_t got = 0;
    while (buf && got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf)
        return ERYX_NOMEM;
    if (got != size) {
        free(buf);
        eryx__set_errmsg(NULL, "cannot read %s: it changed while being read", shown);
        return ERYX_IO;
    }
    *out = buf;
    *len = size;
    return ERYX_OK;
}

/* Adds the files below dirfd (relative path `rel`, "" at the top). Regular
 * files and symbolic links to them are taken; directories are entered
 * unless they are symbolic links (no loops); __pycache__ and native
 * extensions (which the guest could not load) are left out. */
static int walk_dir(pkg_set *s, int dirfd, const char *top, const char *rel)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        eryx__set_errmsg(NULL, "cannot list %s/%s: %s", top, rel, strerror(errno));
        return ERYX_IO;
    }
    int rc = ERYX_OK;
    struct dirent *de;
    while (rc == ERYX_OK && (errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            strcmp(name, "__pycache__") == 0 || is_native(name))
            continue;
        size_t n = strlen(rel) + strlen(name) + 2;
        if (n > ERYX__VFS_PATH_MAX - 64) {
            eryx__set_errmsg(NULL, "%s/%s/%s: path too long", top, rel, name);
            rc = ERYX_INVALID;
            break;
        }
        char *path = malloc(n);
        if (!path) {
            rc = ERYX_NOMEM;
            break;
        }
        size_t rl = strlen(rel), nl = strlen(name);
        memcpy(path, rel, rl);
        if (rl)
            path[rl++] = '/';
        memcpy(path + rl, name, nl + 1);
        struct stat lst, st;
        if (fstatat(dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) != 0 ||
            fstatat(dirfd, name, &st, 0) != 0) {
            free(path); /* a dangling link, or gone meanwhile: nothing to take */
            continue;
        }
        if (S_ISDIR(st.st_mode) && !S_ISLNK(lst.st_mode)) {
            int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                eryx__set_errmsg(NULL, "cannot open %s/%s: %s", top, path, strerror(errno));
                rc = ERYX_IO;
            } else
                rc = walk_dir(s, sub, top, path);
            free(path);
        } else if (S_ISREG(st.st_mode)) {
            uint8_t *data;
            size_t len;
            size_t shown_len = strlen(top) + strlen(path) + 2;
            char *shown = malloc(shown_len);
            if (shown)
                snprintf(shown, shown_len, "%s/%s", top, path);
            rc = shown ? read_file_at(dirfd, name, shown, &data, &len) : ERYX_NOMEM;
            free(shown);
            if (rc == ERYX_OK)
                rc = set_add(s, path, data, len);
            else
                free(path);
        } else
            free(path);
    }
    if (rc == ERYX_OK && errno != 0) {
        eryx__set_errmsg(NULL, "cannot list %s/%s: %s", top, rel, strerror(errno));
        rc = ERYX_IO;
    }
    closedir(d);
    return rc;
}

static int add_dir(pkg_set *s, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        eryx__set_errmsg(NULL, "cannot open the site-packages directory %s: %s", dir,
                         strerror(errno));
        return ERYX_IO;
    }
    s->source = dir;
    return walk_dir(s, fd, dir, "");
}

/* ---- wheels --------------------------------------------------------------- */

/* libzip is loaded when the first wheel is opened, not linked: it brings
 * libcrypto, libbz2 and libz along, whose relocations cost every process
 * that links liberyx ~1.5 ms at start (LD_DEBUG=statistics: 12.7 M cycles
 * in the dynamic loader with them, docs/packages.md), while few
 * processes ever open a wheel. */
static struct {
    zip_t *(*open)(const char *, int, int *);
    void (*error_init_with_code)(zip_error_t *, int);
    const char *(*error_strerror)(zip_error_t *);
    void (*error_fini)(zip_error_t *);
    zip_int64_t (*get_num_entries)(zip_t *, zip_flags_t);
    const char *(*get_name)(zip_t *, zip_uint64_t, zip_flags_t);
    const char *(*strerror)(zip_t *);
    void (*stat_init)(zip_stat_t *);
    int (*stat_index)(zip_t *, zip_uint64_t, zip_flags_t, zip_stat_t *);
    zip_file_t *(*fopen_index)(zip_t *, zip_uint64_t, zip_flags_t);
    zip_int64_t (*fread)(zip_file_t *, void *, zip_uint64_t);
    int (*fclose)(zip_file_t *);
    void (*discard)(zip_t *);
    int loaded;
    char why[256];
} z;
static pthread_once_t z_once = PTHREAD_ONCE_INIT;

static void load_libzip(void)
{
    void *h = dlopen(ERYX_LIBZIP_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(z.why, sizeof z.why, "%s", dlerror());
        return;
    }
#define SYM(field, name)                                                            \
    if (!(*(void **)&z.field = dlsym(h, name))) {                                   \
        snprintf(z.why, sizeof z.why, "%s has no %s", ERYX_LIBZIP_SONAME, name);    \
        return;                                                                     \
    }
    SYM(open, "zip_open")
    SYM(error_init_with_code, "zip_error_init_with_code")
    SYM(error_strerror, "zip_error_strerror")
    SYM(error_fini, "zip_error_fini")
    SYM(get_num_entries, "zip_get_num_entries")
    SYM(get_name, "zip_get_name")
    SYM(strerror, "zip_strerror")
    SYM(stat_init, "zip_stat_init")
    SYM(stat_index, "zip_stat_index")
    SYM(fopen_index, "zip_fopen_index")
    SYM(fread, "zip_fread")
    SYM(fclose, "zip_fclose")
    SYM(discard, "zip_discard")
#undef SYM
    z.loaded = 1; /* the handle stays open for the process's life */
}

/* A member name a wheel may hold: relative, no "." or ".." component, no
 * backslash, no NUL, not too long. */
static int safe_member(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > ERYX__VFS_PATH_MAX - 64 || name[0] == '/' || strchr(name, '\\'))
        return 0;
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') ||
            n > ERYX__VFS_NAME_MAX || (n == 0 && slash))
            return 0;
        if (!slash)
            break;
        p = slash + 1;
    }
    return 1;
}

static int zip_read_member(zip_t *za, zip_uint64_t i, const char *wheel, const char *name,
                           uint64_t budget, uint8_t **out, size_t *len)
{
    zip_stat_t st;
    z.stat_init(&st);
    if (z.stat_index(za, i, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        eryx__set_errmsg(NULL, "%s is damaged: %s: %s", wheel, name, z.strerror(za));
        return ERYX_INVALID;
    }
    if (st.size > budget) {
        eryx__set_errmsg(NULL, "%s: %s unpacks to %llu bytes, more than the packages' limit",
                         wheel, name, (unsigned long long)st.size);
        return ERYX_INVALID;
    }
    /* Deflate makes at most 1,032 bytes of each packed byte; bzip2 and
     * the others libzip reads make millions, so that a wheel of a few
     * kilobytes would take the whole limit (and the image's copies of it). */
    uint64_t packed = (st.valid & ZIP_STAT_COMP_SIZE) ? st.comp_size : 0;
    if (st.size > ERYX__WHEEL_MAX_RATIO * packed + 4096) {
        eryx__set_errmsg(NULL, "%s: %s unpacks to %llu bytes from %llu, more than %u times "
                               "its packed size (a zip bomb?)", wheel, name,
                         (unsigned long long)st.size, (unsigned long long)packed,
                         (unsigned)ERYX__WHEEL_MAX_RATIO);
        return ERYX_INVALID;
    }
    size_t size = (size_t)st.size;
    uint8_t *buf = malloc(size + 1);
    if (!buf)
        return ERYX_NOMEM;
    zip_file_t *zf = z.fopen_index(za, i, 0);
    zip_int64_t got = 0;
    while (zf && (uint64_t)got < size) {
        zip_int64_t r = z.fread(zf, buf + got, size - (uint64_t)got);
        if (r <= 0) {
            got = -1;
            break;
        }
        got += r;
    }
    /* One more read reaches the member's end, where libzip compares its
     * CRC (a mismatch fails the read); it must find nothing more. */
    uint8_t extra;
    int at_end = zf && got == (zip_int64_t)size && z.fread(zf, &extra, 1) == 0;
    int closed = zf ? z.fclose(zf) : -1;
    if (!zf || !at_end || closed != 0) {
        eryx__set_errmsg(NULL, "%s is damaged: cannot unpack %s%s%s", wheel, name,
                         zf ? "" : ": ", zf ? "" : z.strerror(za));
        free(buf);
        return ERYX_INVALID;
    }
    *out = buf;
    *len = size;
    return ERYX_OK;
}

/* "Root-Is-Purelib: true" in the wheel's WHEEL metadata. */
static int wheel_is_purelib(const uint8_t *p, size_t len)
{
    static const char key[] = "Root-Is-Purelib:";
    for (size_t i = 0; i + sizeof key - 1 <= len; i++) {
        if ((i == 0 || p[i - 1] == '\n') && memcmp(p + i, key, sizeof key - 1) == 0) {
            size_t j = i + sizeof key - 1;
            while (j < len && (p[j] == ' ' || p[j] == '\t'))
                j++;
            return len - j >= 4 && strncasecmp((const char *)p + j, "true", 4) == 0;
        }
    }
    return 0;
}

/* Where a member goes in site-packages: its own name, or for
 * NAME.data/purelib/X and NAME.data/platlib/X, X; NULL for members that
 * are not importable code (NAME.data/scripts, headers, data). */
static const char *member_target(const char *name)
{
    const char *slash = strchr(name, '/');
    if (!slash || (size_t)(slash - name) < 5 || strncmp(slash - 5, ".data", 5) != 0)
        return name;
    const char *rest = slash + 1;
    if (strncmp(rest, "purelib/", 8) == 0)
        return rest + 8;
    if (strncmp(rest, "platlib/", 8) == 0)
        return rest + 8;
    return NULL;
}

static int add_wheel(pkg_set *s, const char *wheel)
{
    pthread_once(&z_once, load_libzip);
    if (!z.loaded) {
        eryx__set_errmsg(NULL, "cannot unpack %s: libzip cannot be loaded (%s)", wheel, z.why);
        return ERYX_INIT;
    }
    int zerr = 0;
    zip_t *za = z.open(wheel, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!za) {
        zip_error_t e;
        z.error_init_with_code(&e, zerr);
        int io = zerr == ZIP_ER_OPEN || zerr == ZIP_ER_NOENT || zerr == ZIP_ER_READ;
        eryx__set_errmsg(NULL, io ? "cannot read the wheel %s: %s"
                                  : "%s is not a valid wheel (zip archive): %s",
                         wheel, z.error_strerror(&e));
        z.error_fini(&e);
        return io ? ERYX_IO : ERYX_INVALID;
    }
    zip_int64_t n = z.get_num_entries(za, 0);
    int rc = ERYX_OK, purelib = -1;
    s->source = wheel;
    /* First pass: names and the WHEEL metadata, before anything is taken. */
    for (zip_int64_t i = 0; rc == ERYX_OK && i < n; i++) {
        const char *name = z.get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name) {
            eryx__set_errmsg(NULL, "%s is damaged: %s", wheel, z.strerror(za));
            rc = ERYX_INVALID;
        } else if (!safe_member(name)) {
            eryx__set_errmsg(NULL, "%s holds a path outside its root: '%.200s'", wheel, name);
            rc = ERYX_INVALID;
        } else if (is_native(name)) {
            eryx__set_errmsg(NULL, "%s holds a native extension (%.200s): only pure-Python "
                                   "wheels can be used in the sandbox", wheel, name);
            rc = ERYX_INVALID;
        } else {
            const char *slash = strchr(name, '/');
            int is_meta = slash && strcmp(slash, "/WHEEL") == 0 && slash - name > 10 &&
                          strncmp(slash - 10, ".dist-info", 10) == 0;
            if (is_meta && purelib >= 0) {
                /* One says whether the wheel is pure; two could say both
                 * (the last read decided). */
                eryx__set_errmsg(NULL, "%s holds more than one *.dist-info/WHEEL ('%.200s'): "
                                       "a wheel has one", wheel, name);
                rc = ERYX_INVALID;
            } else if (is_meta) {
                uint8_t *meta;
                size_t len;
                rc = zip_read_member(za, (zip_uint64_t)i, wheel, name, 1u << 20, &meta, &len);
                if (rc == ERYX_OK) {
                    purelib = wheel_is_purelib(meta, len);
                    free(meta);
                }
            }
        }
    }
    if (rc == ERYX_OK && purelib < 0) {
        eryx__set_errmsg(NULL, "%s is not a wheel: it has no *.dist-info/WHEEL", wheel);
        rc = ERYX_INVALID;
    } else if (rc == ERYX_OK && purelib == 0) {
        eryx__set_errmsg(NULL, "%s is not a pure-Python wheel (Root-Is-Purelib is not true): "
                               "its native code cannot run in the sandbox", wheel);
        rc = ERYX_INVALID;
    }
    for (zip_int64_t i = 0; rc == ERYX_OK && i < n; i++) {
        const char *name = z.get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        const char *target = name ? member_target(name) : NULL;
        if (!target || !target[0] || has_suffix(target, "/"))
            continue; /* scripts/headers/data, or a directory entry */
        uint8_t *data;
        size_t len;
        rc = zip_read_member(za, (zip_uint64_t)i, wheel, name,
                             ERYX__PACKAGES_MAX_BYTES - s->bytes, &data, &len);
        if (rc != ERYX_OK)
            break;
        char *path = strdup(target);
        if (!path) {
            free(data);
            rc = ERYX_NOMEM;
        } else
            rc = set_add(s, path, data, len);
    }
    z.discard(za);
    return rc;
}

/* ---- the image ------------------------------------------------------------ */

static int by_path_then_order(const void *a, const void *b)
{
    const pkg_entry *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* The first entry of the sorted set below entry i's path ("P/..."), or
 * NULL. Not always the next one: "P-x" and "P.x" sort between. */
static const pkg_entry *first_under(const pkg_set *s, size_t i)
{
    const char *p = s->e[i].path;
    size_t l = strlen(p), lo = i + 1, hi = s->n;
    while (lo < hi) {           /* the first path not below "P/" */
        size_t mid = lo + (hi - lo) / 2;
        const char *q = s->e[mid].path;
        int c = strncmp(q, p, l);
        if (c < 0 || (c == 0 && (unsigned char)q[l] < '/'))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n && strncmp(s->e[lo].path, p, l) == 0 && s->e[lo].path[l] == '/')
        return &s->e[lo];
    return NULL;
}

/* Why a sorted set cannot be one file tree: a name that is a file in one
 * source and a directory in another (or in the same wheel), else a name
 * the tree cannot hold. */
static void report_clash(const pkg_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const pkg_entry *file = &s->e[i], *under = first_under(s, i);
        if (!under)
            continue;
        eryx__set_errmsg(NULL, "the packages cannot form one file tree: '%.200s' is a file in "
                               "%.300s and a directory in %.300s ('%.200s')", file->path,
                         file->source, under->source, under->path);
        return;
    }
    eryx__set_errmsg(NULL, "the packages cannot form one file tree");
}

/* The set, sorted, with later duplicates dropped, as one ERYXIMG1 image. */
static int pack(pkg_set *s, uint8_t **out, size_t *out_len)
{
    qsort(s->e, s->n, sizeof *s->e, by_path_then_order);
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (kept && strcmp(s->e[kept - 1].path, s->e[i].path) == 0) {
            entry_free(&s->e[i]);
            continue;
        }
        s->e[kept++] = s->e[i];
    }
    s->n = kept;
    uint64_t size = 16 + 16 * (uint64_t)s->n;
    for (size_t i = 0; i < s->n; i++)
        size += strlen(s->e[i].path) + s->e[i].len;
    if (size > ERYX__PACKAGES_MAX_BYTES + 16 * (uint64_t)s->n + 16)
        return ERYX_INVALID;
    uint8_t *img = malloc((size_t)size);
    if (!img)
        return ERYX_NOMEM;
    memcpy(img, ERYX_IMAGE_MAGIC, 8);
    wr32(img + 8, (uint32_t)s->n);
    wr32(img + 12, 0);
    uint64_t at = 16 + 16 * (uint64_t)s->n;
    for (size_t i = 0; i < s->n; i++) {
        size_t plen = strlen(s->e[i].path);
        memcpy(img + at, s->e[i].path, plen);
        wr32(img + 16 + 16 * i, (uint32_t)at);
        wr32(img + 20 + 16 * i, (uint32_t)plen);
        at += plen;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->e[i].len)
            memcpy(img + at, s->e[i].data, s->e[i].len);
        if (!s->e[i].borrowed) {
            /* Given back as it is copied: the set and the image are not
             * both held whole at the end. */
            free(s->e[i].data);
            s->e[i].data = NULL;
        }
        wr32(img + 24 + 16 * i, (uint32_t)at);
        wr32(img + 28 + 16 * i, (uint32_t)s->e[i].len);
        at += s->e[i].len;
    }
    if (eryx__image_validate(img, (size_t)size) != 0) {
        report_clash(s);
        free(img);
        return ERYX_INVALID;
    }
    *out = img;
    *out_len = (size_t)size;
    return ERYX_OK;
}

int eryx__packages_build(const char *const *dirs, size_t n_dirs, const char *const *wheels,
                         size_t n_wheels, uint8_t **image, size_t *size)
{
    *image = NULL;
    *size = 0;
    pkg_set s = {0};
    int rc = ERYX_OK;
    for (size_t i = 0; rc == ERYX_OK && i < n_dirs; i++) {
        if (!dirs[i]) {
            eryx__set_errmsg(NULL, "site_packages[%zu] is NULL", i);
            rc = ERYX_INVALID;
        } else
            rc = add_dir(&s, dirs[i]);
    }
    for (size_t i = 0; rc == ERYX_OK && i < n_wheels; i++) {
        if (!wheels[i]) {
            eryx__set_errmsg(NULL, "wheels[%zu] is NULL", i);
            rc = ERYX_INVALID;
        } else
            rc = add_wheel(&s, wheels[i]);
    }
    if (rc == ERYX_OK)
        rc = pack(&s, image, size);
    set_free(&s);
    return rc;
}

/* ---- bytecode ------------------------------------------------------------- */

/* Entry i of img into the set: its path copied, its bytes borrowed (img
 * outlives the set), so that the packages are not held twice over while
 * their new image is made. */
static int add_entry(pkg_set *s, const uint8_t *img, uint32_t i)
{
    const char *p;
    const uint8_t *d;
    size_t plen, dlen;
    eryx__image_entry(img, i, &p, &plen, &d, &dlen);
    char *path = malloc(plen + 1);
    if (!path)
        return ERYX_NOMEM;
    memcpy(path, p, plen);
    path[plen] = '\0';
    return set_add_entry(s, path, (uint8_t *)d, dlen, 1);
}

/* The source a bytecode path was compiled from: "D/__pycache__/N" +
 * ERYX__PYC_SUFFIX gives "D/N.py" (D may be empty) in src[cap], and its
 * length; 0 when the path is not of that form. */
static size_t source_of(const char *p, size_t plen, char *src, size_t cap)
{
    static const char cache[] = "__pycache__/", suffix[] = ERYX__PYC_SUFFIX;
    size_t clen = sizeof cache - 1, slen = sizeof suffix - 1;
    if (plen <= clen + slen || memcmp(p + plen - slen, suffix, slen) != 0)
        return 0;
    const char *base = p + plen;                /* the last component */
    while (base > p && base[-1] != '/')
        base--;
    size_t dir = (size_t)(base - p);            /* "D/__pycache__/" */
    size_t name = plen - dir - slen;            /* "N" */
    int whole = dir == clen || (dir > clen && *(base - clen - 1) == '/');
    if (dir < clen || memcmp(base - clen, cache, clen) != 0 || !whole || name == 0 ||
        memchr(base, '.', name) || dir - clen + name + 4 > cap)
        return 0;
    memcpy(src, p, dir - clen);
    memcpy(src + dir - clen, base, name);
    memcpy(src + dir - clen + name, ".py", 4);
    return dir - clen + name + 3;
}

int eryx__packages_add_bytecode(const uint8_t *packages, size_t size, const uint8_t *bytecode,
                                size_t bc_size, uint8_t **image, size_t *out_size,
                                size_t *n_left)
{
    *image = NULL;
    *out_size = 0;
    *n_left = 0;
    if (eryx__image_validate(packages, size) != 0 ||
        eryx__image_validate(bytecode, bc_size) != 0) {
        eryx__set_errmsg(NULL, "the packages' bytecode is not a well-formed image");
        return ERYX_INIT;
    }
    pkg_set s = {.source = "the packages' bytecode"};
    int rc = ERYX_OK;
    uint32_t n_bc = eryx__image_count(bytecode), n_pkg = eryx__image_count(packages);
    /* The bytecode first: where a package brought a __pycache__ file of
     * its own (a wheel may), ours wins. */
    for (uint32_t i = 0; rc == ERYX_OK && i < n_bc; i++) {
        const char *p;
        const uint8_t *d;
        size_t plen, dlen;
        eryx__image_entry(bytecode, i, &p, &plen, &d, &dlen);
        char src[ERYX__VFS_PATH_MAX];
        size_t slen = source_of(p, plen, src, sizeof src);
        if (!slen || eryx__image_find(packages, src, slen) < 0) {
            eryx__set_errmsg(NULL, "the packages' bytecode names '%.*s', which is not the "
                             "bytecode of one of their modules", (int)(plen > 200 ? 200 : plen), p);
            rc = ERYX_INIT;
        } else if (s.bytes + size + plen + dlen + 16 > ERYX__PACKAGES_MAX_BYTES ||
                   s.n + n_pkg >= ERYX__PACKAGES_MAX_FILES) {
            (*n_left)++;        /* past the bounds: compiled at import, as before */
        } else
            rc = add_entry(&s, bytecode, i);
    }
    s.source = "the packages";
    for (uint32_t i = 0; rc == ERYX_OK && i < n_pkg; i++)
        rc = add_entry(&s, packages, i);
    if (rc == ERYX_OK)
        rc = pack(&s, image, out_size);
    set_free(&s);
    return rc;
}
