/*
 * The file of `eryx --session`. The code may hold a writable mount that
 * contains the session file's directory (or a parent) and rename links it
 * finds there over the path's components during the run; everything here
 * is so that the host's save still goes where the path led before the run,
 * and the next run is not steered elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session_file.h"

/* The file a --session path names once its symbolic links are followed
 * (malloc'd), even when the last one dangles (the save makes that file),
 * or NULL with errno set (a loop). Resolved once, before the code runs:
 * a link followed at the save could be one the code put in the session
 * file's place in a writable mount, sending the host's write wherever it
 * points; the save's rename replaces what is at this name, link or not. */
static char *follow_links(const char *path)
{
    char *p = strdup(path);
    for (int hops = 0; p; hops++) {
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode))
            return p; /* a file, or nothing yet: the session goes there */
        char target[PATH_MAX];
        ssize_t len = -1;
        if (hops == 40)
            errno = ELOOP;
        else if ((len = readlink(p, target, sizeof target)) == (ssize_t)sizeof target)
            len = -1, errno = ENAMETOOLONG; /* maybe cut short */
        if (len < 0)
            break;
        target[len] = '\0';
        const char *slash = strrchr(p, '/');
        size_t dir = target[0] == '/' || !slash ? 0 : (size_t)(slash - p) + 1;
        char *next = malloc(dir + (size_t)len + 1);
        if (next) {
            memcpy(next, p, dir);
            memcpy(next + dir, target, (size_t)len + 1);
        }
        free(p);
        p = next;
    }
    int saved = errno;
    free(p);
    errno = saved;
    return NULL;
}

char *eryx_cli_file_final_name(const char *path)
{
    char *p = follow_links(path), *out = NULL;
    if (!p)
        return NULL;
    char *slash = strrchr(p, '/');
    const char *base = slash ? slash + 1 : p;
    if (slash)
        *slash = '\0';
    char *dir = realpath(slash == p ? "/" : slash ? p : ".", NULL);
    if (dir && *base && (out = malloc(strlen(dir) + strlen(base) + 2)))
        sprintf(out, "%s/%s", strcmp(dir, "/") ? dir : "", base);
    free(dir);
    free(p);
    return out;
}

/* Calls fn on each prefix of path that ends a component ("a", "a/b", ...,
 * path itself), k counting from 0, top-down, until fn returns non-zero;
 * returns that, or 0. path is cut in place for the call, then restored. */
static int each_prefix(char *path, int (*fn)(const char *prefix, size_t k, void *ud), void *ud)
{
    size_t k = 0;
    for (char *p = path;; p++) {
        if (!*p)
            return fn(path, k, ud);
        if (p == path || *p != '/' || p[-1] == '/')
            continue;
        *p = '\0';
        int r = fn(path, k++, ud);
        *p = '/';
        if (r)
            return r;
    }
}

static int record_prefix(const char *prefix, size_t k, void *ud)
{
    session_file *s = ud;
    struct stat st;
    if (k < s->n_before && lstat(prefix, &st) == 0)
        s->before[k] = (struct path_id){st.st_dev, st.st_ino};
    return 0;
}

/* 1 if the directory open at dir lies in one of the writable mounts,
 * where the code could have renamed a link: only there can a new link be
 * the code's. Elsewhere it is someone else's (a deployment's `current`
 * link swapped meanwhile, `ln -sfn`), and is left alone. The directory's
 * own path, from the descriptor: not the prefix's, whose directories
 * another process may swap meanwhile. */
static int in_writable_mount(int dir, const eryx_mount *mounts, size_t n)
{
    char fd_path[64], real[PATH_MAX], top[PATH_MAX];
    snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", dir);
    ssize_t len = readlink(fd_path, real, sizeof real - 1);
    if (len <= 0)
        return 0;
    real[len] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!mounts[i].writable || !mounts[i].host_path || !realpath(mounts[i].host_path, top))
            continue;
        size_t tlen = strlen(top);
        if (strncmp(real, top, tlen) == 0 &&
            (real[tlen] == '\0' || real[tlen] == '/' || (tlen == 1 && top[0] == '/')))
            return 1;
    }
    return 0;
}

struct drop_ctx {
    const session_file *s;
    const eryx_mount *mounts;
    size_t n_mounts;
};

/* Opens the directory that holds prefix (a component of the path, by the
 * path above it), *base its last component: the fd, or -1. */
static int open_holder(const char *prefix, const char **base)
{
    const char *slash = strrchr(prefix, '/');
    *base = slash ? slash + 1 : prefix;
    if (!slash)
        return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (slash == prefix)
        return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char dir[PATH_MAX];
    if ((size_t)(slash - prefix) >= sizeof dir)
        return -1;
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - prefix), prefix);
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* After the run: the first prefix of the path that is a symbolic link now
 * and was not this link when the directory was opened is the code's, made
 * by renaming one it had in a writable mount over a directory of the path
 * or the file's name (the code cannot make links), if it lies in one. The
 * next --session would follow it and write wherever it points (making a
 * file that does not exist): it is removed. The prefixes above it are as
 * they were, or the code's own directories. The look and the removal go
 * through one descriptor of the holding directory: by path, a directory
 * above swapped between them (by a second run sharing the mount) would
 * aim the unlink at a file of that name elsewhere. */
static int drop_code_link(const char *prefix, size_t k, void *ud)
{
    const struct drop_ctx *d = ud;
    const session_file *s = d->s;
    const char *base;
    int dir = open_holder(prefix, &base), found = 0;
    struct stat st;
    if (dir < 0)
        return 0;
    if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) &&
        !(k < s->n_before && st.st_dev == s->before[k].dev && st.st_ino == s->before[k].ino)) {
        found = 1;
        if (in_writable_mount(dir, d->mounts, d->n_mounts) && unlinkat(dir, base, 0) == 0)
            fprintf(stderr, "eryx: removed the symbolic link put at %s during the run\n", prefix);
    }
    close(dir);
    return found;
}

/* Opens the directory of the file path names (links followed, see
 * follow_links): 0, or -1 with errno set (a loop, a directory that does
 * not exist: refused before the run, whose session could not be saved). */
int eryx_cli_session_open(const char *given, session_file *s)
{
    if (!(s->path = follow_links(given)))
        return -1;
    for (const char *p = s->path; *p; p++)
        s->n_before += *p == '/';
    if (!(s->before = calloc(++s->n_before, sizeof *s->before)))
        return -1;
    each_prefix(s->path, record_prefix, s);
    char *slash = strrchr(s->path, '/');
    s->name = slash ? slash + 1 : s->path;
    if (!*s->name) {
        errno = *s->path ? EISDIR : ENOENT; /* "dir/": no file name to save under */
        return -1;
    }
    if (slash == s->path)
        s->dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    else if (slash) {
        *slash = '\0';
        s->dir = open(s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
    } else
        s->dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return s->dir < 0 ? -1 : 0;
}

void eryx_cli_session_close(session_file *s)
{
    if (s->dir >= 0)
        close(s->dir);
    free(s->path);
    free(s->before);
}

/* Saves the session through s's directory (eryx_sandbox_save_at):
 * atomic, and a link at the name is replaced, not followed. -1 with the
 * reason in msg. */
int eryx_cli_session_write(eryx_sandbox *sb, const session_file *s, char *msg, size_t cap)
{
    if (eryx_sandbox_save_at(sb, s->dir, s->name) == ERYX_OK)
        return 0;
    snprintf(msg, cap, "%s", eryx_errmsg(sb));
    return -1;
}

/* Whether the --session path given still leads to s's directory and name,
 * as the next --session will follow it: the code may have swapped a
 * directory of the path for a link (in a writable mount) during the run.
 * The session went to the directory opened before, but the next run would
 * go where the path leads now. */
int eryx_cli_session_same(const session_file *s, const char *given)
{
    session_file now = SESSION_FILE_INIT;
    struct stat a, b;
    int same = eryx_cli_session_open(given, &now) == 0 && strcmp(now.name, s->name) == 0 &&
               fstat(now.dir, &a) == 0 && fstat(s->dir, &b) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino;
    eryx_cli_session_close(&now);
    return same;
}

void eryx_cli_session_drop_code_links(session_file *s, const eryx_mount *mounts,
                                      size_t n_mounts)
{
    struct drop_ctx d = {s, mounts, n_mounts};
    each_prefix(s->path, drop_code_link, &d);
}
