/*
 * Runtime images on the command line (docs/cli.md, "Images"):
 *   eryx image build -o FILE [--site-packages DIR]... [--wheel FILE]...
 *                    [--import MOD]... [--setup-code CODE | --setup-file FILE]
 *                    [--setup-timeout MS] [--no-bytecode]
 * and the runtime every other command runs in: the image given with
 * --image, else the default image cached on disk (made on first use), else
 * (no cache directory, or ERYX_NO_IMAGE_CACHE=1) a runtime that boots
 * CPython itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eryx.h"
#include "image_cmd.h"

#define MAX_ITEMS 256

static void image_usage(FILE *f)
{
    fprintf(f,
            "usage: eryx image build -o FILE [option]...\n"
            "Builds a runtime image (packages, imports, setup code) for eryx --image FILE.\n\n"
            "  -o FILE               write the image to FILE (atomically)\n"
            "  --site-packages DIR   make the files of host directory DIR importable;\n"
            "                        repeatable (the first one holding a file wins)\n"
            "  --wheel FILE          unpack the pure-Python wheel FILE; repeatable\n"
            "  --import MOD          import module MOD into the image; repeatable\n"
            "  --setup-code CODE     run CODE as __main__ before the image is captured:\n"
            "                        its globals are in every run's __main__\n"
            "  --setup-file FILE     the same, with the code read from FILE\n"
            "  --setup-timeout MS    time limit of the compilation, the imports and the\n"
            "                        setup (default 60000; 0 = none)\n"
            "  --no-bytecode         do not compile the packages into the image: each run\n"
            "                        compiles what it imports\n"
            "  -h, --help            print this help and exit\n");
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

static int add_item(const char **items, size_t *n, const char *value, const char *option)
{
    if (*n == MAX_ITEMS) {
        fprintf(stderr, "eryx image build: too many %s options (at most %d)\n", option,
                MAX_ITEMS);
        return -1;
    }
    items[(*n)++] = value;
    return 0;
}

/* Whether -o names one of the build's input files (the setup file, a
 * wheel), which the image would replace: refused, with a message. */
static int output_is_an_input(const char *out, const char *setup_file,
                              const char *const *wheels, size_t n_wheels)
{
    struct stat o, in;
    if (stat(out, &o) != 0)
        return 0;
    for (size_t k = 0; k <= n_wheels; k++) {
        const char *p = k < n_wheels ? wheels[k] : setup_file;
        if (p && stat(p, &in) == 0 && in.st_dev == o.st_dev && in.st_ino == o.st_ino) {
            fprintf(stderr, "eryx image build: -o %s is the input %s: the image would "
                            "replace it\n", out, p);
            return 1;
        }
    }
    return 0;
}

static int image_build(int argc, char **argv)
{
    static const char *dirs[MAX_ITEMS], *wheels[MAX_ITEMS], *imports[MAX_ITEMS];
    size_t n_dirs = 0, n_wheels = 0, n_imports = 0;
    const char *out = NULL, *setup_code = NULL, *setup_file = NULL;
    uint64_t timeout_ns = 0;
    unsigned flags = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-bytecode") == 0) {
            flags |= ERYX_RUNTIME_NO_BYTECODE;
            continue;
        }
        int takes = strcmp(a, "-o") == 0 || strcmp(a, "--site-packages") == 0 ||
                    strcmp(a, "--wheel") == 0 || strcmp(a, "--import") == 0 ||
                    strcmp(a, "--setup-code") == 0 || strcmp(a, "--setup-file") == 0 ||
                    strcmp(a, "--setup-timeout") == 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            image_usage(stdout);
            return 0;
        }
        if (!takes) {
            fprintf(stderr, "eryx image build: unknown argument %s\n", a);
            image_usage(stderr);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "eryx image build: argument expected for the %s option\n", a);
            return 2;
        }
        i++;
        int bad = 0;
        if (strcmp(a, "-o") == 0)
            out = v;
        else if (strcmp(a, "--site-packages") == 0)
            bad = add_item(dirs, &n_dirs, v, a);
        else if (strcmp(a, "--wheel") == 0)
            bad = add_item(wheels, &n_wheels, v, a);
        else if (strcmp(a, "--import") == 0)
            bad = add_item(imports, &n_imports, v, a);
        else if (strcmp(a, "--setup-code") == 0)
            setup_code = v;
        else if (strcmp(a, "--setup-file") == 0)
            setup_file = v;
        else {
            char *end;
            errno = 0;
            unsigned long long ms = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-' || ms > UINT64_MAX / 1000000u) {
                fprintf(stderr, "eryx image build: not a time in milliseconds: '%s'\n", v);
                return 2;
            }
            timeout_ns = ms ? ms * 1000000u : ERYX_NO_LIMIT;
        }
        if (bad)
            return 2;
    }
    if (!out || !*out) {
        fprintf(stderr, "eryx image build: -o FILE is required\n");
        return 2;
    }
    if (output_is_an_input(out, setup_file, wheels, n_wheels))
        return 2;
    if (setup_code && setup_file) {
        fprintf(stderr, "eryx image build: give --setup-code or --setup-file, not both\n");
        return 2;
    }
    char *file_code = NULL;
    if (setup_file && !(file_code = read_file(setup_file))) {
        fprintf(stderr, "eryx image build: can't read '%s': %s\n", setup_file,
                strerror(errno));
        return 2;
    }
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    cfg.flags = flags;
    cfg.site_packages = dirs;
    cfg.n_site_packages = n_dirs;
    cfg.wheels = wheels;
    cfg.n_wheels = n_wheels;
    cfg.imports = imports;
    cfg.n_imports = n_imports;
    cfg.setup_code = file_code ? file_code : setup_code;
    cfg.setup_timeout_ns = timeout_ns;
    eryx_runtime *rt = NULL;
    int rc = eryx_runtime_new(&cfg, &rt);
    free(file_code);
    if (rc == ERYX_OK)
        rc = eryx_runtime_save_image(rt, out);
    if (rc != ERYX_OK) {
        const char *msg = eryx_errmsg(NULL);
        fprintf(stderr, "eryx image build: %s%s", msg[0] ? msg : eryx_errstr(rc),
                msg[0] && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
        eryx_runtime_free(rt);
        return 1;
    }
    eryx_runtime_free(rt);
    return 0;
}

int eryx_cli_image(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "build") == 0)
        return image_build(argc - 1, argv + 1);
    if (argc >= 1 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
        image_usage(stdout);
        return 0;
    }
    fprintf(stderr, "eryx image: unknown command%s%s (try: eryx image build -o FILE ...)\n",
            argc >= 1 ? " " : "", argc >= 1 ? argv[0] : "");
    return 2;
}

/* ---- the runtime of a run ------------------------------------------------ */

/* Whether path is a directory or regular file of this user
 * that no one else may write: an image is trusted input (its checksum
 * finds damage, not tampering), so one that another user could have put
 * in place or changed is not loaded (a shared or misowned cache). */
static int ours_alone(const char *path, const struct stat *st)
{
    int kind = S_ISDIR(st->st_mode) || S_ISREG(st->st_mode);
    if (kind && st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH)))
        return 1;
    if (getenv("ERYX_DEBUG"))
        fprintf(stderr, "eryx: not using the image cache: %s is not this user's alone\n",
                path);
    return 0;
}

static int dir_ours_alone(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && ours_alone(path, &st); /* a link to one is as good */
}

/* $XDG_CACHE_HOME/eryx/images, or ~/.cache/eryx/images; made if missing
 * (0700). NULL if there is no such place, it cannot be made, or it or its
 * eryx/ parent is not this user's alone. */
static char *cache_dir(void)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[4096];
    if (xdg && xdg[0] == '/')
        snprintf(base, sizeof base, "%s/eryx", xdg);
    else if (home && home[0] == '/')
        snprintf(base, sizeof base, "%s/.cache/eryx", home);
    else
        return NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/images", base);
    /* Each level in turn: the parents may not exist yet. */
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            *p = '/';
            return NULL;
        }
        *p = '/';
    }
    if ((mkdir(path, 0700) != 0 && errno != EEXIST) || !dir_ours_alone(base) ||
        !dir_ours_alone(path))
        return NULL;
    return strdup(path);
}

/* The cached default image's file: named by the guest's build id and by
 * this executable's size and modification time, so that a rebuilt eryx
 * (whose host code may differ with the same guest) never picks up an image
 * an older one made; the library checks the build id and the checksum
 * again when loading. */
static char *cache_file(void)
{
    char *dir = cache_dir();
    if (!dir)
        return NULL;
    struct stat st;
    unsigned long long size = 0, mtime = 0;
    if (stat("/proc/self/exe", &st) == 0) {
        size = (unsigned long long)st.st_size;
        mtime = (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                (unsigned long long)st.st_mtim.tv_nsec;
    }
    size_t n = strlen(dir) + strlen(eryx_build_id()) + 64;
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%s/%s-%llx-%llx.img", dir, eryx_build_id(), size, mtime);
    free(dir);
    return path;
}

/* The stamp of a cached image: the file's identity, size and times when a
 * load checked its whole checksum. While the file still matches it, later
 * loads skip hashing the memory (ERYX_RUNTIME_IMAGE_TRUSTED, ~1.5 ms of a
 * start): a file written or replaced since changes its modification or
 * change time (the latter cannot be set back) or its inode. */
static void image_stamp(const struct stat *st, char *out, size_t cap)
{
    snprintf(out, cap,
             "eryx-image-checked 1 %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64 ".%09ld %" PRId64
             ".%09ld\n",
             (uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
             (int64_t)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (int64_t)st->st_ctim.tv_sec,
             st->st_ctim.tv_nsec);
}

static int stamp_matches(const char *stamp_path, const char *want)
{
    char got[256];
    int fd = open(stamp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, got, sizeof got - 1);
    close(fd);
    return n >= 0 && (size_t)n == strlen(want) && memcmp(got, want, (size_t)n) == 0;
}

/* Written whole or not at all (a temporary file renamed over it). */
static void write_stamp(const char *stamp_path, const char *stamp)
{
    size_t n = strlen(stamp_path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return;
    snprintf(tmp, n, "%s.%ld", stamp_path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        int ok = write(fd, stamp, strlen(stamp)) == (ssize_t)strlen(stamp);
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp, stamp_path) != 0)
            unlink(tmp);
    }
    free(tmp);
}

/* Loads the cached image at path, checked whole unless its stamp says a
 * load checked it before and it has not changed since. The file is opened
 * once and loaded through /proc/self/fd, so that what is loaded is the file
 * whose stamp was compared, even if another process renames a new one over
 * the path meanwhile. */
static int load_cached_image(const char *path, eryx_runtime **rt)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ERYX_IO;
    struct stat st;
    char stamp[256], via[64], *stamp_path = malloc(strlen(path) + 8);
    snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
    int rc = ERYX_IO;
    if (stamp_path && fstat(fd, &st) == 0 && ours_alone(path, &st)) {
        sprintf(stamp_path, "%s.ok", path);
        image_stamp(&st, stamp, sizeof stamp);
        /* Without /proc the path is loaded, checked whole every time. */
        int by_fd = access(via, R_OK) == 0;
        int trusted = by_fd && stamp_matches(stamp_path, stamp);
        cfg.image_path = by_fd ? via : path;
        if (trusted)
            cfg.flags |= ERYX_RUNTIME_IMAGE_TRUSTED;
        rc = eryx_runtime_new(&cfg, rt);
        if (rc == ERYX_OK && by_fd && !trusted)
            write_stamp(stamp_path, stamp);
    }
    free(stamp_path);
    close(fd);
    return rc;
}

static int no_image_runtime(eryx_runtime **rt)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    cfg.flags |= ERYX_RUNTIME_NO_IMAGE;
    return eryx_runtime_new(&cfg, rt);
}

int eryx_cli_runtime(const char *image, eryx_runtime **rt)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    if (image) {
        cfg.image_path = image;
        return eryx_runtime_new(&cfg, rt);
    }
    const char *off = getenv("ERYX_NO_IMAGE_CACHE");
    if (off && off[0] && strcmp(off, "0") != 0)
        return no_image_runtime(rt);
    char *path = cache_file();
    if (!path)
        return no_image_runtime(rt);
    if (load_cached_image(path, rt) == ERYX_OK) {
        free(path);
        return ERYX_OK;
    }
    /* Missing, or refused (damaged, truncated, from another build): made
     * afresh and written over it atomically. When the directory is not
     * writable, booting CPython once is cheaper than building an image
     * that cannot be kept. Two processes doing this at once each rename a
     * whole file into place: the last one wins, both are valid. */
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int writable = access(path, W_OK | X_OK) == 0;
    *slash = '/';
    int rc;
    if (!writable) {
        rc = no_image_runtime(rt);
    } else {
        eryx_runtime_config_default(&cfg);
        rc = eryx_runtime_new(&cfg, rt);
        /* Not kept: this run goes on with the image it built. */
        if (rc == ERYX_OK && eryx_runtime_save_image(*rt, path) != ERYX_OK &&
            getenv("ERYX_DEBUG"))
            fprintf(stderr, "eryx: cannot cache the image: %s\n", eryx_errmsg(NULL));
    }
    free(path);
    return rc;
}
