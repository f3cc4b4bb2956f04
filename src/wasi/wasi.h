/*
 * WASI preview1 for the guest: every import the guest module uses, over our own
 * fd table and the VFS (src/vfs/).
 *
 * wasm2c names the import module's instance type
 * `struct Z_wasi_snapshot_preview1_instance_t` and each import function
 * `Z_wasi_snapshot_preview1Z_<name>`; this layer defines both. One eryx__wasi
 * belongs to one guest instance and is used by one thread at a time.
 *
 * Every guest pointer and length is checked against the instance's memory
 * before use; a bad one gives the guest ERRNO_FAULT (or INVAL), never a host
 * fault. Nothing from the host environment leaks in: args, environment,
 * stdin and the file tree are only what the embedder configured.
 */
#ifndef ERYX_WASI_H
#define ERYX_WASI_H

#include <stddef.h>
#include <stdint.h>
#include <wasm-rt.h>

#include "../vfs/vfs.h"
#include "../vfs/vfs_persist.h"

/* See eryx__wasi_set_sleeper. */
typedef int (*eryx__wasi_sleep_fn)(void *ud, uint64_t deadline_ns);

typedef struct Z_wasi_snapshot_preview1_instance_t eryx__wasi;

/* Receives guest output as it is written (fd 1 or 2). Called from inside the
 * guest call on the thread running it. */
typedef void (*eryx__wasi_output_fn)(void *ud, int fd, const char *data, size_t len);

typedef struct eryx__wasi_config {
    const char *const *argv;     /* NULL-terminated; copied. NULL = none */
    const char *const *envp;     /* "K=V" strings, NULL-terminated; copied */
    eryx__vfs *vfs;              /* taken over: freed with the eryx__wasi */
    uint64_t max_output;         /* cap on stdout + stderr kept per execution */
} eryx__wasi_config;

/* Returns NULL on allocation failure (the vfs is then freed too). */
eryx__wasi *eryx__wasi_new(const eryx__wasi_config *cfg);
void eryx__wasi_free(eryx__wasi *w);

/* A deep copy of w for a sandbox made from a template or a forked session:
 * the fd table (every fd number, offset, flag, right and preopen), args,
 * environment, stdin bytes and read position, the output limit, and the
 * vfs (eryx__vfs_clone: image mounts shared, /tmp copied, host descriptors
 * dup'ed), with open files copied into the new vfs. It starts with empty
 * output buffers, no output callback, no pending interrupt, and no memory
 * (eryx__wasi_set_memory before use). Only reads w: several threads may
 * clone one template at once while nobody uses it. NULL on failure. */
eryx__wasi *eryx__wasi_clone(const eryx__wasi *w);

/* Session files (src/wasi/wasi_persist.c): appends /tmp and the fd table
 * to b (the files open in it by path, or by contents when unlinked).
 * 0 or a negative errno. */
int eryx__wasi_save_state(eryx__wasi *w, eryx__blob *b);

/* Restores what eryx__wasi_save_state wrote into w, a fresh clone of the
 * template whose /tmp is empty: the saved /tmp is recreated (w's quota
 * applies) and the saved fd table replaces w's. A file that cannot be
 * reopened (a host mount this sandbox lacks) leaves its fd closed and is
 * named in *lost ("fd 5 (/data/x): No such file or directory; ...",
 * malloc'd, NULL if none; the caller frees it, also on failure). 0,
 * -EINVAL for bytes that are not such a state, or the failing operation's
 * errno (-ENOSPC past the quota); w must then be discarded. */
int eryx__wasi_restore_state(eryx__wasi *w, const uint8_t *p, size_t len, char **lost);

/* The most bytes eryx__wasi_save_state can write for a state that
 * eryx__wasi_restore_state can bring back under the given /tmp quota (its
 * files' bytes, plus a bounded record per node and per fd): a session
 * file claiming more is refused before anything is allocated. */
uint64_t eryx__wasi_state_max(uint64_t tmp_quota);

/* For a clone taken from a template, the new owner's settings: its file
 * tree (to add mounts) and its output cap. */
eryx__vfs *eryx__wasi_vfs(eryx__wasi *w);
void eryx__wasi_set_max_output(eryx__wasi *w, uint64_t max_output);
/* eryx__vfs_replace_image on w's tree, after checking that no fd of w is
 * open at or below guest_path (-EBUSY if one is). */
int eryx__wasi_replace_image(eryx__wasi *w, const char *guest_path, const void *image,
                             size_t size);

/* With stop set, the guest's write that crosses max_output fails with EFBIG
 * (Python raises OSError) instead of being cut silently. */
void eryx__wasi_set_output_stop(eryx__wasi *w, int stop);

/* Frees both output buffers (begin_run only empties them), e.g. before a
 * template is kept for cloning. */
void eryx__wasi_reset_output(eryx__wasi *w);

/* The sandbox's own CPU time, which the guest reads as
 * CLOCK_PROCESS_CPUTIME and CLOCK_THREAD_CPUTIME (the host process's would
 * show other tenants' work): enter before every entry into guest code and
 * leave after it, on the same thread; the clock is the thread CPU time
 * spent between the two, summed over entries. Nested pairs count once.
 * A clone starts at zero, as a forked process does. w may be NULL. */
void eryx__wasi_cpu_enter(eryx__wasi *w);
void eryx__wasi_cpu_leave(eryx__wasi *w);

/* Binds the guest's linear memory (after instantiation). */
void eryx__wasi_set_memory(eryx__wasi *w, wasm_rt_memory_t *mem);

/* Per execution: stdin bytes (copied; read as a file that then hits EOF), and
 * the capture buffers for fd 1 and 2, which eryx__wasi_begin_run() empties. */
int eryx__wasi_set_stdin(eryx__wasi *w, const void *data, size_t len);
/* Per execution: where stdin goes on once its bytes are read (fn NULL:
 * EOF); eryx_run_options.stdin_read's contract. Not carried by
 * eryx__wasi_clone. */
typedef long (*eryx__wasi_stdin_fn)(void *ud, void *buf, size_t cap);
void eryx__wasi_set_stdin_reader(eryx__wasi *w, eryx__wasi_stdin_fn fn, void *ud);
void eryx__wasi_begin_run(eryx__wasi *w);
void eryx__wasi_set_output_fn(eryx__wasi *w, eryx__wasi_output_fn fn, void *ud);

/* How the guest sleeps (poll_oneoff with only clocks to wait for): fn
 * suspends the guest until the monotonic deadline and returns 0, or returns
 * -1 when it cannot (then the thread sleeps). Without one, the thread
 * sleeps. Not carried by eryx__wasi_clone. */
void eryx__wasi_set_sleeper(eryx__wasi *w, eryx__wasi_sleep_fn fn, void *ud);

/* What the guest draws from the host that a journal records and gives back
 * on replay (docs/journal.md, "Randomness and the wall clock"): random_get's
 * bytes and the realtime clock. random fills p with len bytes and returns 0
 * (or -1: the guest gets EIO); realtime returns the time the guest reads,
 * given the host's. Both are called on the thread running the guest. Not
 * carried by eryx__wasi_clone. Without them the host's values go through. */
typedef struct eryx__wasi_draws {
    int (*random)(void *ud, uint8_t *p, size_t len);
    uint64_t (*realtime)(void *ud, uint64_t host_ns);
} eryx__wasi_draws;
void eryx__wasi_set_draws(eryx__wasi *w, const eryx__wasi_draws *draws, void *ud);

/* len bytes of the host's randomness (getrandom): 0, or -1 (errno set). */
int eryx__wasi_host_random(uint8_t *p, size_t len);

/* Thread-safe: makes a poll_oneoff sleep of the guest end early (within
 * ~20 ms) with EINTR, now or, if none is running, at its next call until
 * the next begin_run. For eryx_sandbox_interrupt(). */
void eryx__wasi_interrupt(eryx__wasi *w);

/* Captured output of the current run. The bytes stay owned by w until the next
 * begin_run; *truncated is set when max_output was reached. */
const char *eryx__wasi_output(const eryx__wasi *w, int fd, size_t *len, int *truncated);

/* Takes the captured output of fd (1 or 2) out of w: the caller owns the
 * returned malloc'd buffer (NUL-terminated, *len excludes the NUL). */
char *eryx__wasi_take_output(eryx__wasi *w, int fd, size_t *len);

#endif
