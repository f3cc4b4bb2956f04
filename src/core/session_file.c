/*
 * Session files: a sandbox's memory, globals and WASI state (/tmp and the
 * fd table) in one checksummed file, and the sandbox made from one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/exec.h"

/* ---- session files ----------------------------------------------------- */

#define SESSION_MAGIC "ERYXSES4"

/* The header of a session file; little endian, followed by mem_size bytes of
 * linear memory and wasi_size bytes of WASI state (/tmp and the fd table,
 * src/wasi/wasi_persist.c). A crafted file can only give a sandbox a
 * strange guest state, which the sandbox contains like any other guest
 * behaviour, and files in its own /tmp (nothing is created elsewhere); the
 * checksum is there to catch damage, and every field is range-checked.
 * ERYXSES1 files (memory only) came from builds before /tmp was saved,
 * ERYXSES2 ones from builds that summed with FNV-1a: byte by byte, it took
 * ~20% of a save and as much of a load; XXH3 (libxxhash) runs at memory
 * speed. ERYXSES3 ones wrote whole paths in the /tmp records, which made
 * the WASI state of a full /tmp up to ~32 times its quota: paths are now
 * prefix-coded, and the loader bounds the state by the quota
 * (eryx__wasi_state_max). */
typedef struct session_header {
    char magic[8];
    char build_id[64];          /* ERYX_BUILD_ID, NUL-padded */
    uint64_t mem_size;
    uint64_t wasi_size;
    uint64_t run_count;
    uint64_t checksum;          /* XXH3-64 of the memory, then the WASI bytes */
    eryx__snapshot_globals globals;
} session_header;

/* The checksum of a session's memory and WASI bytes: XXH3-64, seed 0. */
static int session_checksum(const uint8_t *mem, size_t mem_len, const uint8_t *state,
                            size_t state_len, uint64_t *out)
{
    XXH3_state_t *x = XXH3_createState();
    if (!x)
        return -1;
    XXH3_64bits_reset(x);
    XXH3_64bits_update(x, mem, mem_len);
    XXH3_64bits_update(x, state, state_len);
    *out = XXH3_64bits_digest(x);
    XXH3_freeState(x);
    return 0;
}

/* eryx__memory_write_sparse, with errno set on failure. */
static int write_memory(int fd, const wasm_rt_memory_t *mem, uint64_t at)
{
    int err = eryx__memory_write_sparse(mem, fd, at);
    if (err < 0)
        errno = -err;
    return err < 0 ? -1 : 0;
}

static int write_failed(eryx_sandbox *sb, const char *name)
{
    eryx__set_errmsg(sb, "cannot write the session to %s: %s", name, strerror(errno));
    return ERYX_IO;
}

/* Writes sb's session into fd from offset base on; the file then ends where
 * the session does. name is the file's name in messages. */
static int write_session(eryx_sandbox *sb, int fd, off_t base, const char *name)
{
    const wasm_rt_memory_t *mem = &sb->in.inst.w2c_memory;
    eryx__blob state = {0};
    int err = eryx__wasi_save_state(sb->wasi, &state);
    if (err < 0) {
        free(state.p);
        eryx__set_errmsg(sb, "cannot save the sandbox's files: %s", strerror(-err));
        return err == -ENOMEM ? ERYX_NOMEM : ERYX_IO;
    }
    session_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SESSION_MAGIC, 8);
    snprintf(h.build_id, sizeof h.build_id, "%s", ERYX_BUILD_ID);
    h.mem_size = mem->size;
    h.wasi_size = state.len;
    h.run_count = sb->run_count;
    if (session_checksum(mem->data, mem->size, state.p, state.len, &h.checksum) < 0) {
        free(state.p);
        return ERYX_NOMEM;
    }
    eryx__save_globals(sb, &h.globals);
    /* The memory's zero pages are holes in the file (more than half of a
     * small session's): less to write and to fsync, and they read back as
     * zeros. Whatever the file held from base on is cut first (a hole must
     * not show old bytes), and the size is set before the writes so that
     * the file is whole whatever the last page is. */
    off_t body = base + (off_t)sizeof h, end = body + (off_t)(mem->size + state.len);
    int ok = ftruncate(fd, base) == 0 && ftruncate(fd, end) == 0 &&
             lseek(fd, base, SEEK_SET) >= 0 && eryx__write_all(fd, &h, sizeof h) == 0 &&
             write_memory(fd, mem, (uint64_t)body) == 0 &&
             lseek(fd, body + (off_t)mem->size, SEEK_SET) >= 0 &&
             eryx__write_all(fd, state.p, state.len) == 0;
    free(state.p);
    return ok ? ERYX_OK : write_failed(sb, name);
}

/* A new file beside name (relative to dir), NAME.tmpXXXXXX with a random
 * suffix: its fd, or -1 with errno set. O_EXCL never opens what is
 * there, link or file: a name someone made first (the code, in a writable
 * mount) is skipped, never written through. tmp gets the name made. */
static int open_temp(int dir, const char *name, char *tmp, size_t cap)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int tries = 0; tries < 100; tries++) {
        unsigned char r[6];
        char suffix[sizeof r + 1];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            return -1;
        for (size_t i = 0; i < sizeof r; i++)
            suffix[i] = digits[r[i] % (sizeof digits - 1)];
        suffix[sizeof r] = '\0';
        snprintf(tmp, cap, "%s.tmp%s", name, suffix);
        int fd = openat(dir, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1; /* errno EEXIST */
}

/* The session is written next to name (relative to dir, or the working
 * directory for AT_FDCWD), synced and renamed over it: a crash never leaves
 * a half-written session behind, and a link at name is replaced, not
 * followed. */
static int save_at(eryx_sandbox *sb, int dir, const char *name)
{
    size_t cap = strlen(name) + 16;
    char *tmp = malloc(cap);
    if (!tmp)
        return ERYX_NOMEM;
    int fd = open_temp(dir, name, tmp, cap);
    if (fd < 0) {
        free(tmp);
        return write_failed(sb, name);
    }
    int rc = write_session(sb, fd, 0, name);
    if (rc == ERYX_OK && fsync(fd) != 0)
        rc = write_failed(sb, name);
    if (close(fd) != 0 && rc == ERYX_OK)
        rc = write_failed(sb, name);
    if (rc == ERYX_OK && renameat(dir, tmp, dir, name) != 0)
        rc = write_failed(sb, name);
    if (rc != ERYX_OK)
        unlinkat(dir, tmp, 0);
    free(tmp);
    return rc;
}

/* Where a session in fd starts: its current offset, or -1 with errno set
 * for a descriptor without one (a pipe or socket: the loader checks sizes
 * against the file's and reads with pread). name gets "fd N". */
static off_t fd_start(int fd, char *name, size_t n)
{
    snprintf(name, n, "fd %d", fd);
    return lseek(fd, 0, SEEK_CUR);
}

#define NOT_SEEKABLE "(a session needs a file or memfd, not a pipe or socket)"

int eryx__sandbox_save(eryx_sandbox *sb, int dir, const char *name, int fd)
{
    if (name)
        return save_at(sb, dir, name);
    char fd_name[32];
    off_t base = fd_start(fd, fd_name, sizeof fd_name);
    if (base < 0) {
        eryx__set_errmsg(sb, "cannot write the session to %s: %s " NOT_SEEKABLE, fd_name,
                         strerror(errno));
        return ERYX_IO;
    }
    return write_session(sb, fd, base, fd_name);
}

/* Refuses a header whose saved globals could not have come from a guest of
 * mem_size bytes: the interrupt words become host atomics at these guest
 * addresses (4-aligned and inside the memory, or both 0 when the sandbox
 * never learnt them), the exception is a pointer into the memory, the bit a
 * single bit, and the stack pointer (16-aligned between runs, clang's wasm
 * ABI) and memory base lie inside the memory. */
int eryx__globals_ok(const eryx__snapshot_globals *g, uint64_t mem_size)
{
    int unset = g->breaker_addr == 0 && g->async_exc_addr == 0;
    int words = unset || (g->breaker_addr % 4u == 0 && g->async_exc_addr % 4u == 0 &&
                          g->breaker_addr != 0 && g->async_exc_addr != 0 &&
                          g->breaker_addr <= mem_size - 4 && g->async_exc_addr <= mem_size - 4);
    int exc = unset ? g->exc_value == 0 && g->breaker_bit == 0
                    : g->exc_value % 4u == 0 && g->exc_value < mem_size &&
                          g->breaker_bit != 0 && (g->breaker_bit & (g->breaker_bit - 1)) == 0;
    return words && exc && g->stack_pointer % 16u == 0 && g->stack_pointer <= mem_size &&
           g->memory_base % 16u == 0 && g->memory_base <= mem_size;
}

/* Reads and checks a session file's header, against the file's real size
 * and the loading config, before anything is allocated: a header cannot
 * make the loader allocate more than the file holds, nor more WASI state
 * than cfg's tmp_quota can take. The checksum is checked later, over the
 * bytes as they were read (eryx__sandbox_load). */
static int read_session_header(int fd, off_t base, const char *path,
                               const eryx_sandbox_config *cfg, session_header *h)
{
    struct stat st;
    ssize_t got = pread(fd, h, sizeof *h, base);
    int older = got >= 8 && (memcmp(h->magic, "ERYXSES1", 8) == 0 ||
                             memcmp(h->magic, "ERYXSES2", 8) == 0 ||
                             memcmp(h->magic, "ERYXSES3", 8) == 0);
    if (older) {
        eryx__set_errmsg(NULL, "%s was saved by an older eryx (session format %c, this one "
                               "reads %c)", path, h->magic[7], SESSION_MAGIC[7]);
        return ERYX_INVALID;
    }
    if (got != (ssize_t)sizeof *h || memcmp(h->magic, SESSION_MAGIC, 8) != 0) {
        eryx__set_errmsg(NULL, "%s is not an eryx session file", path);
        return ERYX_INVALID;
    }
    if (strncmp(h->build_id, ERYX_BUILD_ID, sizeof h->build_id) != 0) {
        char id[4 * sizeof h->build_id + 1];
        eryx__set_errmsg(NULL, "%s was saved by another build of eryx (%s, this is %s)", path,
                         eryx__printable(h->build_id, sizeof h->build_id, id, sizeof id),
                         ERYX_BUILD_ID);
        return ERYX_INVALID;
    }
    if (fstat(fd, &st) != 0) {
        eryx__set_errmsg(NULL, "cannot stat %s: %s", path, strerror(errno));
        return ERYX_IO;
    }
    /* A wasm32 memory, whole 64 KiB pages (the engine's cap: 65535). */
    if (h->mem_size % 65536u != 0 || h->mem_size == 0 || h->mem_size > 65535ull * 65536u) {
        eryx__set_errmsg(NULL, "%s has a malformed header (memory size %llu)", path,
                         (unsigned long long)h->mem_size);
        return ERYX_INVALID;
    }
    if (h->mem_size > cfg->max_memory) {
        eryx__set_errmsg(NULL, "%s holds %llu bytes of memory: larger than max_memory (%llu)",
                         path, (unsigned long long)h->mem_size,
                         (unsigned long long)cfg->max_memory);
        return ERYX_INVALID;
    }
    uint64_t wasi_max = eryx__wasi_state_max(cfg->tmp_quota);
    if (h->wasi_size > wasi_max) {
        eryx__set_errmsg(NULL, "%s has a malformed header: %llu bytes of file state, more than "
                               "a tmp_quota of %llu bytes can hold (at most %llu)",
                         path, (unsigned long long)h->wasi_size,
                         (unsigned long long)cfg->tmp_quota, (unsigned long long)wasi_max);
        return ERYX_INVALID;
    }
    /* Without overflow, whatever the quota (the bound saturates). The
     * session is what the file holds from base on. */
    uint64_t size = st.st_size > base ? (uint64_t)(st.st_size - base) : 0,
             body = size - sizeof *h;
    if (size < sizeof *h || h->mem_size > body || h->wasi_size != body - h->mem_size) {
        eryx__set_errmsg(NULL, "%s is truncated or has trailing bytes (%llu bytes, its header "
                               "says %llu of memory and %llu of file state after %zu)",
                         path, (unsigned long long)size, (unsigned long long)h->mem_size,
                         (unsigned long long)h->wasi_size, sizeof *h);
        return ERYX_INVALID;
    }
    if (!eryx__globals_ok(&h->globals, h->mem_size)) {
        eryx__set_errmsg(NULL, "%s has a malformed header: its saved stack pointer, memory "
                               "base or interrupt addresses are unaligned or outside its "
                               "memory", path);
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

/* The WASI bytes, read once into a buffer of their own (the size is the
 * file's, checked). */
static int read_wasi_state(int fd, off_t base, const char *path, const session_header *h,
                           uint8_t **out)
{
    uint8_t *p = malloc(h->wasi_size ? (size_t)h->wasi_size : 1);
    if (!p)
        return ERYX_NOMEM;
    for (uint64_t off = 0; off < h->wasi_size;) {
        ssize_t r = pread(fd, p + off, (size_t)(h->wasi_size - off),
                          base + (off_t)(sizeof *h + h->mem_size + off));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(p);
            eryx__set_errmsg(NULL, "cannot read %s: %s", path,
                             r < 0 ? strerror(errno) : "it shrank while being loaded");
            return ERYX_IO;
        }
        off += (uint64_t)r;
    }
    *out = p;
    return ERYX_OK;
}

static void hash_chunk(void *ud, const uint8_t *p, size_t n)
{
    XXH3_64bits_update(ud, p, n);
}

/* Checks the checksum of what the sandbox is made from: the memory, hashed
 * chunk by chunk as it went into the image (a sealed memfd: nothing can
 * change it afterwards), then the WASI bytes, before either is used. */
static int check_sum(XXH3_state_t *x, const char *path, const uint8_t *state, size_t len,
                     uint64_t want)
{
    XXH3_64bits_update(x, state, len);
    if (XXH3_64bits_digest(x) != want) {
        eryx__set_errmsg(NULL, "%s is damaged (checksum mismatch)", path);
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

/* Brings back /tmp and the open files; on failure sb is freed (it has a
 * half-restored tree). Files that could not be reopened are named in sb's
 * message. */
static int restore_wasi_state(eryx_sandbox *sb, const char *path, const uint8_t *state,
                              size_t len)
{
    char *lost = NULL;
    int err = eryx__wasi_restore_state(sb->wasi, state, len, &lost);
    if (err < 0) {
        eryx__set_errmsg(NULL, "cannot restore the files of %s: %s", path,
                         err == -EINVAL   ? "its file state is malformed"
                         : err == -ENOSPC ? "its /tmp does not fit in tmp_quota"
                                          : strerror(-err));
        free(lost);
        eryx__sandbox_free(sb);
        return err == -ENOMEM ? ERYX_NOMEM : ERYX_INVALID;
    }
    if (lost) {
        /* Paths from the file: shown printable (errmsg keeps 512 bytes). */
        char shown[512];
        eryx__set_errmsg(sb, "loaded, but these open files could not be reopened and are "
                             "closed: %s", eryx__printable(lost, strlen(lost), shown, sizeof shown));
    }
    free(lost);
    return ERYX_OK;
}

/* Every byte of the file is read once: the memory into an image (a sealed
 * memfd), hashed chunk by chunk on its way in, the WASI state into a
 * buffer, and the checksum is compared before anything is used. (Hashing
 * through the new sandbox's mapping instead read every page a second time:
 * a 70 MB load took 96 instead of 62 ms, bench_sandbox.) A file changed
 * while it is loaded (between two reads, or after the check) thus cannot
 * smuggle in unchecked bytes: what is used is what was summed. */
static int load_session(eryx_runtime *rt, const eryx_sandbox_config *cfg, int fd, off_t base,
                        const char *path, eryx_sandbox **out)
{
    session_header h;
    int rc = read_session_header(fd, base, path, cfg, &h);
    eryx__mem_image *img = NULL;
    off_t body = base + (off_t)sizeof h;
    if (rc == ERYX_OK && lseek(fd, body, SEEK_SET) < 0) {
        eryx__set_errmsg(NULL, "cannot read %s: %s", path, strerror(errno));
        rc = ERYX_IO;
    }
    XXH3_state_t *x = XXH3_createState();
    if (rc == ERYX_OK && !x)
        rc = ERYX_NOMEM;
    if (rc == ERYX_OK) {
        XXH3_64bits_reset(x);
        int err = eryx__mem_image_read_each(fd, h.mem_size, hash_chunk, x, &img);
        if (err < 0) {
            eryx__set_errmsg(NULL, "cannot read %s: %s", path,
                             err == -EIO ? "it shrank while being loaded" : strerror(-err));
            rc = err == -ENOMEM ? ERYX_NOMEM : ERYX_IO;
        }
    }
    uint8_t *state = NULL;
    if (rc == ERYX_OK)
        rc = read_wasi_state(fd, base, path, &h, &state);
    if (rc == ERYX_OK)
        rc = check_sum(x, path, state, (size_t)h.wasi_size, h.checksum);
    XXH3_freeState(x);
    eryx_sandbox *sb = NULL;
    if (rc == ERYX_OK)
        rc = eryx__sandbox_from_state(rt, cfg, img, &h.globals, NULL, &sb);
    if (rc == ERYX_OK && (rc = restore_wasi_state(sb, path, state, (size_t)h.wasi_size)) !=
                             ERYX_OK)
        sb = NULL; /* freed */
    if (rc == ERYX_OK) {
        sb->needs_setup = 0;
        sb->reseed_only = 1;
        /* Its sys.path and import caches are those of the runtime it was
         * saved from, whose packages may differ from this one's. */
        sb->rebind_imports = 1;
        sb->run_count = h.run_count;
        /* Past the session, as a read would leave it (the fd's owner may
         * read on). */
        lseek(fd, body + (off_t)(h.mem_size + h.wasi_size), SEEK_SET);
        *out = sb;
    }
    free(state);
    eryx__mem_image_unref(img);
    return rc;
}

int eryx__sandbox_load(eryx_runtime *rt, const eryx_sandbox_config *cfg, const char *path,
                       int fd, eryx_sandbox **out)
{
    *out = NULL;
    if (!path) {
        char name[32];
        off_t base = fd_start(fd, name, sizeof name);
        if (base < 0) {
            eryx__set_errmsg(NULL, "cannot read the session from %s: %s " NOT_SEEKABLE, name,
                             strerror(errno));
            return ERYX_IO;
        }
        return load_session(rt, cfg, fd, base, name, out);
    }
    /* O_NONBLOCK: a FIFO given as the session is refused, not waited on
     * (nothing else is affected: it does nothing on a regular file). */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        eryx__set_errmsg(NULL, "cannot open %s: %s", path, strerror(errno));
        return ERYX_IO;
    }
    struct stat st;
    const char *why = fstat(fd, &st) != 0   ? strerror(errno)
                      : !S_ISREG(st.st_mode) ? "not a regular file"
                                             : NULL;
    if (why) {
        eryx__set_errmsg(NULL, "cannot read the session %s: %s", path, why);
        close(fd);
        return ERYX_IO;
    }
    int rc = load_session(rt, cfg, fd, 0, path, out);
    close(fd);
    return rc;
}
