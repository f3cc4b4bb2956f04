/*
 * The WASI instance and its fd table, shared by the wasi_*.c files.
 *
 * fd layout: 0 stdin (bytes the embedder set, then its reader or EOF), 1 stdout and
 * 2 stderr (captured), 3 the preopen "/" covering the whole VFS. wasi-libc
 * resolves every absolute path against the longest matching preopen, so one
 * preopen of "/" lets it open "usr/lib/python3.13/os.py" relative to fd 3;
 * mounts below "/" are then only VFS business.
 */
#ifndef ERYX_WASI_INTERNAL_H
#define ERYX_WASI_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "../vfs/vfs_ops.h"
#include "guest_mem.h"
#include "wasi.h"
#include "wasi_abi.h"

/* Most fds one guest may hold open. */
#define WASI_MAX_FDS 1024u
/* Most iovecs one call may pass (POSIX IOV_MAX). */
#define WASI_MAX_IOVS 1024u
/* Most subscriptions one poll_oneoff may pass. */
#define WASI_MAX_SUBS 4096u

enum { WASI_FD_FREE = 0, WASI_FD_STDIN, WASI_FD_STDOUT, WASI_FD_STDERR, WASI_FD_FILE };

typedef struct wasi_fd {
    int kind;                   /* WASI_FD_* */
    eryx__vfs_file *file;       /* WASI_FD_FILE */
    uint64_t offset;            /* read/write position of files */
    uint16_t fdflags;           /* WASI_FDFLAG_* */
    uint64_t rights, inherit;
    int preopen;                /* reported by fd_prestat_get */
} wasi_fd;

typedef struct wasi_capture {
    char *data;
    size_t len, cap;
    int truncated;
    size_t marker;              /* bytes of the truncation marker in data */
} wasi_capture;

/* NUL-separated strings plus their count, as args_get/environ_get lay them out. */
typedef struct wasi_strings {
    char *buf;
    uint32_t size, count;
} wasi_strings;

struct Z_wasi_snapshot_preview1_instance_t {
    wasm_rt_memory_t *mem;
    eryx__vfs *vfs;
    wasi_strings args, env;
    wasi_fd *fds;
    uint32_t nfds;              /* slots in fds */
    uint8_t *in;                /* stdin bytes */
    size_t in_len, in_pos;
    eryx__wasi_stdin_fn in_fn;  /* stdin after them; may be NULL */
    void *in_ud;
    wasi_capture out[2];        /* fd 1, fd 2 */
    uint64_t max_output;        /* stdout + stderr kept per run */
    int output_stop;            /* a write past max_output fails (EFBIG) */
    eryx__wasi_output_fn output_fn;
    void *output_ud;
    atomic_int interrupted;
    eryx__wasi_sleep_fn sleep_fn;   /* suspends the guest instead of
                                       blocking the thread; may be NULL */
    void *sleep_ud;
    const eryx__wasi_draws *draws;  /* what the guest draws from the host
                                       passes through these; may be NULL */
    void *draws_ud;
    /* The sandbox's CPU time: thread CPU time inside guest calls. */
    uint64_t cpu_used;          /* ns, summed over finished entries */
    uint64_t cpu_since;         /* thread CPU clock at the outermost entry */
    uint32_t cpu_depth;         /* entries into guest code now open */
};

/* Maps a negative (or positive) host errno to a WASI errno. */
uint16_t eryx__wasi_errno(int host_errno);

/* The fd entry, or NULL if fd is not open. */
wasi_fd *eryx__wasi_fd_get(eryx__wasi *w, uint32_t fd);
/* Installs a file in the lowest free slot; returns the fd or a negative
 * WASI errno (the file is closed on failure). */
int64_t eryx__wasi_fd_add(eryx__wasi *w, eryx__vfs_file *file, uint64_t rights,
                          uint64_t inherit, uint16_t fdflags);
void eryx__wasi_fd_close_all(eryx__wasi *w);

/* Stdio: writes to the capture of fd 1/2; reads from stdin. */
int eryx__wasi_capture(eryx__wasi *w, int fd, const uint8_t *data, size_t len);
uint16_t eryx__wasi_stdin_read(eryx__wasi *w, uint8_t *dst, size_t len, size_t *got);

/* Rights. An fd holds base rights (what operations on it may do) and
 * inheriting rights (the most a file opened through it may get). A
 * directory fd's base rights gate the path_* operations through it; a file
 * opened from it gets at most its inheriting rights (path_open asking for
 * more fails with ENOTCAPABLE); fd_fdstat_set_rights only removes rights.
 * An operation without its right fails with ENOTCAPABLE, except reading,
 * writing and resizing (fd_read, fd_write, fd_allocate,
 * fd_filestat_set_size), which fail with EBADF like their POSIX
 * counterparts on a file opened without that access mode: the rights are
 * how the access mode is kept. The VFS checks writability again below,
 * so rights only ever narrow what the VFS allows. */
static inline int wasi_has(const wasi_fd *e, uint64_t need)
{
    return (e->rights & need) == need;
}

/* Reads a guest path and joins it onto directory fd's path into
 * out[ERYX__VFS_PATH_MAX], checking that dirfd holds the rights `need`.
 * Returns 0 or a WASI errno. */
uint16_t eryx__wasi_path(eryx__wasi *w, uint32_t dirfd, uint64_t need, uint32_t ptr,
                         uint32_t len, char *out, int *trailing_slash);

/* Writes a 64-byte WASI filestat. */
void eryx__wasi_put_filestat(uint8_t *p, const eryx__vfs_attr *st);

#endif
