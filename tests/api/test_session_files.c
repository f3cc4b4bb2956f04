/*
 * Session files as untrusted input (src/core/session_file.c): forged and
 * tampered files are refused before anything they claim is used or
 * allocated, a file changed while it is being loaded cannot smuggle in
 * unchecked bytes, and files unlinked while open come back without the
 * load depending on the names the guest left in /tmp.
 *
 * The file's reads are watched by defining read() and pread() here: the
 * library is linked statically, so its calls land in this file, which
 * forwards them to the kernel and counts the bytes of the session file
 * read so far, to change the file at a chosen moment of a load.
 */
#include <eryx.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "../check.h"

/* ---- watching the session file's reads ------------------------------- */

static struct {
    int on;
    dev_t dev;
    ino_t ino;
    uint64_t seen;      /* bytes of the file read so far */
    uint64_t at;        /* call fn once this many were read */
    int fired;
    void (*fn)(void);
} watch;

static void watched(int fd, ssize_t n)
{
    struct stat st;
    if (!watch.on || n <= 0 || fstat(fd, &st) != 0 || st.st_dev != watch.dev ||
        st.st_ino != watch.ino)
        return;
    watch.seen += (uint64_t)n;
    if (!watch.fired && watch.seen >= watch.at) {
        watch.fired = 1;
        watch.fn();
    }
}

ssize_t read(int fd, void *buf, size_t n)
{
    ssize_t r = (ssize_t)syscall(SYS_read, fd, buf, n);
    watched(fd, r);
    return r;
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    ssize_t r = (ssize_t)syscall(SYS_pread64, fd, buf, n, off);
    watched(fd, r);
    return r;
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
    return pread(fd, buf, n, off);
}

/* ---- session files as bytes ------------------------------------------ */

/* The header (session_file.c): magic 0, build id 8, memory size 72, WASI
 * size 80, run count 88, checksum 96, globals 104 (stack pointer, memory
 * base, breaker address, async exception address, exception, bit), 128. */
enum { H_MEM = 72, H_WASI = 80, H_SUM = 96, H_SP = 104, H_BASE = 108, H_BRK = 112,
       H_EXC_ADDR = 116, H_EXC = 120, H_BIT = 124, H_SIZE = 128 };

static eryx_runtime *rt;
static char dir[] = "/tmp/eryx-sesfile-XXXXXX";
static char good[160], bad[160];

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static unsigned char *file_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*size);
    REQUIRE(p && fread(p, 1, *size, f) == *size);
    fclose(f);
    return p;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, p, n) == (ssize_t)n);
    close(fd);
}

/* Makes the checksum right again, as a forger would. */
static void fix_checksum(unsigned char *p, size_t size)
{
    REQUIRE(size >= H_SIZE);
    put_le(p + H_SUM, XXH3_64bits(p + H_SIZE, size - H_SIZE), 8);
}

static void expect_refused(const char *path, const char *why)
{
    eryx_sandbox *sb = (eryx_sandbox *)1;
    CHECK_INT(eryx_sandbox_load(rt, NULL, path, &sb), ERYX_INVALID);
    CHECK(sb == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), why);
    if (sb != NULL && sb != (eryx_sandbox *)1)
        eryx_sandbox_free(sb);
}

static char *run_out(eryx_sandbox *sb, const char *code)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    if (rc != ERYX_OK)
        fprintf(stderr, "run: %s %s %s\n", eryx_errstr(rc), eryx_errmsg(sb),
                r && r->traceback ? r->traceback : "");
    CHECK_INT(rc, ERYX_OK);
    char *out = strdup(r && r->out ? r->out : "");
    eryx_result_free(r);
    return out;
}

static void check_run(eryx_sandbox *sb, const char *code, const char *want)
{
    char *out = run_out(sb, code);
    CHECK_STR(out, want);
    free(out);
}

/* The markers: the same length, so one can replace the other in memory. */
#define MARK_OLD "TOCTOU-MARKER-ORIGINAL-VALUE"
#define MARK_NEW "TOCTOU-MARKER-SUBSTITUTE-VAL"

/* Replaces every MARK_OLD in the memory part of p with MARK_NEW; returns
 * how many. */
static int swap_marker(unsigned char *p, size_t size)
{
    size_t mem_end = H_SIZE + (size_t)le64(p + H_MEM), n = strlen(MARK_OLD);
    int k = 0;
    for (size_t i = H_SIZE; i + n <= mem_end && i + n <= size; i++)
        if (memcmp(p + i, MARK_OLD, n) == 0) {
            memcpy(p + i, MARK_NEW, n);
            k++;
        }
    return k;
}

/* A session whose memory holds MARK_OLD as the value of `marker` (built
 * from two halves so that the source text does not hold it). */
static void make_session(void)
{
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    check_run(sb, "marker = ''.join(['TOCTOU-MARKER-', 'ORIGINAL-VALUE'])\n"
                  "open('/tmp/kept', 'w').write('kept')", "");
    REQUIRE(eryx_sandbox_save(sb, good) == ERYX_OK);
    eryx_sandbox_free(sb);
}

/* ---- A1: what is checked is what is used -------------------------------- */

/* A memory byte changed with the checksum kept is refused; with the
 * checksum made right again it loads, changed (the checksum catches
 * damage, it is no signature: everything else is range-checked). */
TEST_CASE(test_memory_changed)
{
    size_t size;
    unsigned char *p = file_bytes(good, &size);
    REQUIRE(swap_marker(p, size) > 0);
    write_bytes(bad, p, size);
    expect_refused(bad, "damaged");
    fix_checksum(p, size);
    write_bytes(bad, p, size);
    eryx_sandbox *sb = NULL;
    CHECK_INT(eryx_sandbox_load(rt, NULL, bad, &sb), ERYX_OK);
    if (sb)
        check_run(sb, "print(marker)", MARK_NEW "\n");
    eryx_sandbox_free(sb);
    free(p);
}

static void tamper(void)
{
    size_t size;
    unsigned char *p = file_bytes(bad, &size);
    REQUIRE(swap_marker(p, size) > 0);
    int fd = open(bad, O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, p, size, 0) == (ssize_t)size); /* in place: same inode */
    close(fd);
    free(p);
}

/* Loads bad with the watch on, calling tamper() once `at` bytes of it were
 * read; returns the load's status and the sandbox's marker ("" if none). */
static int load_tampered(uint64_t at, char **marker)
{
    struct stat st;
    REQUIRE(stat(bad, &st) == 0);
    watch.dev = st.st_dev;
    watch.ino = st.st_ino;
    watch.seen = 0;
    watch.at = at;
    watch.fired = 0;
    watch.fn = tamper;
    watch.on = 1;
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_load(rt, NULL, bad, &sb);
    watch.on = 0;
    REQUIRE(watch.fired); /* the reads were seen */
    *marker = sb ? run_out(sb, "print(marker)") : strdup("");
    eryx_sandbox_free(sb);
    return rc;
}

/* The race of a file changed while it is loaded, made deterministic. The
 * loader used to read the file twice: once to check the checksum, then
 * again to use it, so a file swapped after the first pass was loaded
 * unchecked (here: the marker in memory changes once the whole file has
 * been read once). Now every byte is read once, into the image (a sealed
 * memfd) and a private buffer, and the checksum is computed over those
 * copies: a change after the reads cannot reach the sandbox, and a change
 * during them is a checksum mismatch. */
TEST_CASE(test_changed_while_loading)
{
    size_t size;
    unsigned char *p = file_bytes(good, &size);
    char *marker;
    /* Changed once every byte has been read once: loaded as it was read. */
    write_bytes(bad, p, size);
    int rc = load_tampered(size, &marker);
    CHECK(rc == ERYX_OK || rc == ERYX_INVALID);
    CHECK(strcmp(marker, MARK_NEW "\n") != 0);
    if (rc == ERYX_OK)
        CHECK_STR(marker, MARK_OLD "\n");
    free(marker);
    /* Changed right after the header: refused. */
    write_bytes(bad, p, size);
    CHECK_INT(load_tampered(H_SIZE + 1, &marker), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "damaged");
    free(marker);
    free(p);
}

/* ---- A2: sizes from the header --------------------------------------- */

/* Loads bad in a child process whose address space cannot grow by more
 * than 256 MiB: a header must not make the loader allocate what it
 * claims. Returns the load's status (or -1 if the child died). */
static int load_in_tight_child(void)
{
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(60);
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1)
            _exit(100);
        fclose(f);
        rlim_t cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
        struct rlimit lim = {cur + (256u << 20), cur + (256u << 20)};
        if (setrlimit(RLIMIT_AS, &lim) != 0)
            _exit(101);
        eryx_sandbox *sb = NULL;
        int rc = eryx_sandbox_load(rt, NULL, bad, &sb);
        if (rc == ERYX_INVALID && !strstr(eryx_errmsg(NULL), "tmp_quota"))
            _exit(102);
        _exit(rc);
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status)) {
        fprintf(stderr, "load child: died (status %d)\n", status);
        return -1;
    }
    return WEXITSTATUS(status);
}

TEST_CASE(test_huge_sizes)
{
    size_t size;
    unsigned char *p = file_bytes(good, &size);
    uint64_t mem = le64(p + H_MEM);
    /* WASI sizes the file does not have: within what the quota allows, and
     * far beyond. */
    put_le(p + H_WASI, 100u << 20, 8);
    write_bytes(bad, p, H_SIZE);
    expect_refused(bad, "truncated");
    put_le(p + H_WASI, 3ull << 30, 8);
    write_bytes(bad, p, H_SIZE);
    expect_refused(bad, "tmp_quota");
    /* A WASI size the (sparse) file does have, 1 GiB, with the checksum
     * right: more than the default 64 MiB quota can hold (~180 MiB). It
     * used to be read into a buffer of that size. */
    put_le(p + H_WASI, 1ull << 30, 8);
    XXH3_state_t *x = XXH3_createState();
    REQUIRE(x);
    XXH3_64bits_reset(x);
    XXH3_64bits_update(x, p + H_SIZE, (size_t)mem);
    static unsigned char zeros[1 << 16];
    for (uint64_t i = 0; i < (1ull << 30); i += sizeof zeros)
        XXH3_64bits_update(x, zeros, sizeof zeros);
    put_le(p + H_SUM, XXH3_64bits_digest(x), 8);
    XXH3_freeState(x);
    int fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, p, H_SIZE + (size_t)mem) == (ssize_t)(H_SIZE + mem));
    REQUIRE(ftruncate(fd, (off_t)(H_SIZE + mem + (1ull << 30))) == 0);
    close(fd);
    CHECK_INT(load_in_tight_child(), ERYX_INVALID);
    expect_refused(bad, "tmp_quota");
    /* A memory size that is no wasm memory. */
    free(p);
    p = file_bytes(good, &size);
    put_le(p + H_MEM, le64(p + H_MEM) + 1, 8);
    write_bytes(bad, p, size);
    expect_refused(bad, "memory size");
    free(p);
}

/* Another build's id is shown printable: a crafted one put terminal
 * escapes in the message (the user's stderr) until 2026-12-07. */
TEST_CASE(test_build_id_shown_printable)
{
    size_t size;
    unsigned char *p = file_bytes(good, &size);
    memcpy(p + 8, "\x1b]0;PWNED\x07\x1b[2J\\", 15);
    write_bytes(bad, p, size);
    expect_refused(bad, "was saved by another build of eryx (\\x1b]0;PWNED\\x07\\x1b[2J\\x5c");
    CHECK(strchr(eryx_errmsg(NULL), 0x1b) == NULL);
    free(p);
}

/* ---- A3: saved addresses --------------------------------------------- */

TEST_CASE(test_bad_addresses)
{
    size_t size;
    unsigned char *p = file_bytes(good, &size);
    uint64_t mem = le64(p + H_MEM);
    static const struct {
        int at;
        uint32_t value;     /* OUTSIDE: just past the memory, aligned */
    } forged[] = {
        {H_BRK, 2},                     /* unaligned */
        {H_EXC_ADDR, 6},
        {H_BRK, 0},                     /* one of the pair unset */
        {H_BRK, 1},                     /* outside the memory (OUTSIDE) */
        {H_EXC_ADDR, 1},
        {H_EXC, 1},
        {H_EXC, 3},                     /* an unaligned object */
        {H_BIT, 0},                     /* no bit */
        {H_BIT, 3},                     /* not one bit */
        {H_SP, 8},                      /* the stack pointer: unaligned */
        {H_SP, 1},
        {H_BASE, 1},
    };
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        unsigned char saved[4];
        memcpy(saved, p + forged[i].at, 4);
        int outside = forged[i].value == 1;
        put_le(p + forged[i].at, outside ? mem + 16 : forged[i].value, 4);
        write_bytes(bad, p, size);
        expect_refused(bad, "unaligned or outside its memory");
        memcpy(p + forged[i].at, saved, 4);
    }
    write_bytes(bad, p, size); /* the untouched header still loads */
    eryx_sandbox *sb = NULL;
    CHECK_INT(eryx_sandbox_load(rt, NULL, bad, &sb), ERYX_OK);
    eryx_sandbox_free(sb);
    free(p);
}

/* ---- B: unlinked open files and the names in /tmp --------------------- */

/* Loading used to recreate each file unlinked while open under the first
 * free name of "/tmp/.eryx-orphan-0", "-1", ...: with the guest's own
 * 100 000 such names and 1000 such files that was 10^8 lookups, 41 s
 * before every run of the session. (The work is counted in
 * tests/wasi/test_wasi_persist.c; here: the state survives save/load
 * cycles exactly, with no scratch name left behind, and the timeout of a
 * run is not eaten by the load.) */
TEST_CASE(test_orphans_among_names)
{
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    check_run(sb,
              "import os\n"
              "for i in range(3000):\n"
              "    open(f'/tmp/.eryx-orphan-{i}', 'w').close()\n"
              "held = []\n"
              "for i in range(200):\n"
              "    f = open(f'/tmp/gone-{i}', 'w+')\n"
              "    f.write(f'orphan {i}'); f.flush()\n"
              "    os.unlink(f'/tmp/gone-{i}')\n"
              "    held.append(f)\n"
              "mtime = os.stat('/tmp').st_mtime_ns\n",
              "");
    REQUIRE(eryx_sandbox_save(sb, good) == ERYX_OK);
    eryx_sandbox_free(sb);
    for (int cycle = 0; cycle < 3; cycle++) {
        sb = NULL;
        REQUIRE(eryx_sandbox_load(rt, NULL, good, &sb) == ERYX_OK);
        CHECK_STR(eryx_errmsg(sb), "");
        check_run(sb,
                  "names = os.listdir('/tmp')\n"
                  "print(len(names), sorted(n for n in names if not n.startswith('.eryx-orphan-')))\n"
                  "ok = 0\n"
                  "for i, f in enumerate(held):\n"
                  "    f.seek(0); ok += f.read() == f'orphan {i}'\n"
                  "print(ok, os.stat('/tmp').st_mtime_ns == mtime)\n",
                  "3000 []\n200 True\n");
        REQUIRE(eryx_sandbox_save(sb, good) == ERYX_OK);
        eryx_sandbox_free(sb);
    }
}

/* A /tmp at its quota with files unlinked while open: loading makes each
 * again under a scratch name in a scratch directory, which the full quota
 * had no room for (a name and a directory's entries cost bytes), so the
 * session could be saved but not loaded. */
TEST_CASE(test_orphans_in_a_full_tmp)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.tmp_quota = 256 * 1024;
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, &cfg, &sb) == ERYX_OK);
    check_run(sb,
              "import os\n"
              "held = []\n"
              "for i in range(3):\n"
              "    f = open(f'/tmp/gone-{i}', 'w+')\n"
              "    f.write(f'orphan {i}'); f.flush()\n"
              "    os.unlink(f'/tmp/gone-{i}')\n"
              "    held.append(f)\n"
              "fill = open('/tmp/fill', 'wb', buffering=0)\n"
              "for step in (4096, 256, 16, 1):\n"
              "    try:\n"
              "        while True: fill.write(b'x' * step)\n"
              "    except OSError:\n"
              "        pass\n"
              "fill.close()\n"
              "size = os.stat('/tmp/fill').st_size\n",
              "");
    REQUIRE(eryx_sandbox_save(sb, good) == ERYX_OK);
    eryx_sandbox_free(sb);
    sb = NULL;
    int rc = eryx_sandbox_load(rt, &cfg, good, &sb);
    CHECK_INT(rc, ERYX_OK);
    if (rc != ERYX_OK) {
        fprintf(stderr, "load: %s\n", eryx_errmsg(NULL));
        return;
    }
    check_run(sb,
              "ok = 0\n"
              "for i, f in enumerate(held):\n"
              "    f.seek(0); ok += f.read() == f'orphan {i}'\n"
              "print(ok, os.stat('/tmp/fill').st_size == size, sorted(os.listdir('/tmp')))\n",
              "3 True ['fill']\n");
    eryx_sandbox_free(sb);
}

/* ---- sessions through a file descriptor --------------------------------- */

static size_t fd_size(int fd)
{
    struct stat st;
    REQUIRE(fstat(fd, &st) == 0);
    return (size_t)st.st_size;
}

/* Saved at an offset of a memfd, the session is the bytes of its file
 * (one writer); it loads back from that offset and leaves the offset at
 * its end. */
TEST_CASE(test_fd_round_trip)
{
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    check_run(sb, "x = 42\nopen('/tmp/f', 'w').write('in tmp')", "");
    REQUIRE_INT(eryx_sandbox_save(sb, bad), ERYX_OK);
    int fd = (int)syscall(SYS_memfd_create, "session", 0);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "a prefix the session must keep", 30) == 30);
    REQUIRE_INT(eryx_sandbox_save_fd(sb, fd), ERYX_OK);
    eryx_sandbox_free(sb);
    size_t n = 0;
    unsigned char *file = file_bytes(bad, &n);
    CHECK_INT(fd_size(fd), 30 + n);
    CHECK_INT(lseek(fd, 0, SEEK_CUR), 30 + n);
    unsigned char *got = malloc(n + 30);
    REQUIRE(got && pread(fd, got, n + 30, 0) == (ssize_t)(n + 30));
    CHECK_MEM(got, "a prefix the session must keep", 30);
    CHECK(memcmp(got + 30, file, n) == 0);
    free(got);
    free(file);

    REQUIRE(lseek(fd, 30, SEEK_SET) == 30);
    REQUIRE_INT(eryx_sandbox_load_fd(rt, NULL, fd, &sb), ERYX_OK);
    CHECK_INT(lseek(fd, 0, SEEK_CUR), 30 + n);
    check_run(sb, "print(x, open('/tmp/f').read())", "42 in tmp\n");
    eryx_sandbox_free(sb);
    /* From offset 0 it is not a session. */
    REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
    sb = (eryx_sandbox *)1;
    CHECK_INT(eryx_sandbox_load_fd(rt, NULL, fd, &sb), ERYX_INVALID);
    CHECK(sb == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "fd ");
    CHECK_CONTAINS(eryx_errmsg(NULL), "is not an eryx session file");
    close(fd);
}

/* Saving over a larger session: its old bytes must not show through the
 * new one's holes (zero pages), nor trail after it. */
TEST_CASE(test_fd_save_over_older)
{
    eryx_sandbox *big = NULL, *small = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &big) == ERYX_OK);
    REQUIRE(eryx_sandbox_new(rt, NULL, &small) == ERYX_OK);
    check_run(big, "b = bytearray(b'\\xff') * (24 << 20)", "");
    check_run(small, "y = 'small'", "");
    int fd = (int)syscall(SYS_memfd_create, "session", 0);
    REQUIRE(fd >= 0);
    REQUIRE_INT(eryx_sandbox_save_fd(big, fd), ERYX_OK);
    size_t big_size = fd_size(fd);
    REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
    REQUIRE_INT(eryx_sandbox_save_fd(small, fd), ERYX_OK);
    CHECK(fd_size(fd) < big_size);
    eryx_sandbox_free(big);
    eryx_sandbox_free(small);
    REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
    eryx_sandbox *sb = NULL;
    REQUIRE_INT(eryx_sandbox_load_fd(rt, NULL, fd, &sb), ERYX_OK);
    check_run(sb, "print(y, 'b' in globals())", "small False\n");
    eryx_sandbox_free(sb);
    close(fd);
}

/* A damaged or truncated memfd is refused like a damaged file; a pipe
 * cannot hold a session. */
TEST_CASE(test_fd_refused)
{
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    check_run(sb, "x = 'some state'", "");
    int fd = (int)syscall(SYS_memfd_create, "session", 0);
    REQUIRE(fd >= 0);
    REQUIRE_INT(eryx_sandbox_save_fd(sb, fd), ERYX_OK);
    size_t n = fd_size(fd);
    unsigned char *p = malloc(n);
    REQUIRE(p && pread(fd, p, n, 0) == (ssize_t)n);
    /* A byte of the memory changed. */
    unsigned char flipped = p[H_SIZE + 70000] ^ 1;
    REQUIRE(pwrite(fd, &flipped, 1, H_SIZE + 70000) == 1);
    eryx_sandbox *loaded = (eryx_sandbox *)1;
    REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
    CHECK_INT(eryx_sandbox_load_fd(rt, NULL, fd, &loaded), ERYX_INVALID);
    CHECK(loaded == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "damaged (checksum mismatch)");
    /* Put back, then cut short. */
    REQUIRE(pwrite(fd, p + H_SIZE + 70000, 1, H_SIZE + 70000) == 1);
    REQUIRE(ftruncate(fd, (off_t)n - 1) == 0);
    REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
    CHECK_INT(eryx_sandbox_load_fd(rt, NULL, fd, &loaded), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "truncated");
    REQUIRE(pwrite(fd, p + n - 1, 1, (off_t)n - 1) == 1);
    REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
    CHECK_INT(eryx_sandbox_load_fd(rt, NULL, fd, &loaded), ERYX_OK);
    eryx_sandbox_free(loaded);
    free(p);
    close(fd);

    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    CHECK_INT(eryx_sandbox_save_fd(sb, pipefd[1]), ERYX_IO);
    CHECK_CONTAINS(eryx_errmsg(sb), "not a pipe or socket");
    CHECK_INT(eryx_sandbox_load_fd(rt, NULL, pipefd[0], &loaded), ERYX_IO);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not a pipe or socket");
    close(pipefd[0]);
    close(pipefd[1]);
    CHECK_INT(eryx_sandbox_save_fd(sb, -1), ERYX_MISUSE);
    CHECK_INT(eryx_sandbox_load_fd(rt, NULL, -1, &loaded), ERYX_MISUSE);
    eryx_sandbox_free(sb);
}

/* A path that is no regular file is refused at once: a FIFO nobody writes
 * to was waited on for ever (open blocked: `eryx --session FIFO` hung
 * before its run, past every limit), a directory was "not an eryx session
 * file". The alarm turns the old hang into a failure. */
TEST_CASE(test_not_a_regular_file)
{
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo.img", dir);
    REQUIRE(mkfifo(fifo, 0600) == 0);
    eryx_sandbox *sb = (eryx_sandbox *)1;
    alarm(20);
    CHECK_INT(eryx_sandbox_load(rt, NULL, fifo, &sb), ERYX_IO);
    alarm(0);
    CHECK(sb == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not a regular file");
    unlink(fifo);
    sb = (eryx_sandbox *)1;
    CHECK_INT(eryx_sandbox_load(rt, NULL, dir, &sb), ERYX_IO);
    CHECK(sb == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not a regular file");
}

/* A save to a path that is a symbolic link replaces the link and leaves
 * what it named alone: in a writable mount the code can put a link in the
 * session file's place (os.replace of one that was there), and a save that
 * followed it wrote the session over any host file the link named. */
TEST_CASE(test_save_replaces_a_link)
{
    char victim[300], link[300];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(link, sizeof link, "%s/link.img", dir);
    write_bytes(victim, "victim\n", 7);
    REQUIRE(symlink(victim, link) == 0);
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    check_run(sb, "x = 2", "");
    CHECK_INT(eryx_sandbox_save(sb, link), ERYX_OK);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISREG(st.st_mode));
    size_t n = 0;
    unsigned char *kept = file_bytes(victim, &n);
    CHECK(kept && n == 7 && memcmp(kept, "victim\n", 7) == 0);
    free(kept);
    eryx_sandbox *back = NULL;
    REQUIRE(eryx_sandbox_load(rt, NULL, link, &back) == ERYX_OK);
    check_run(back, "print(x)", "2\n");
    eryx_sandbox_free(back);
    eryx_sandbox_free(sb);
    unlink(link);
    unlink(victim);
}

/* eryx_sandbox_save_at writes through the directory opened before, not
 * its path: the code, holding a writable mount above the session's
 * directory, can swap that directory for a link to any host directory
 * during the run, and a save by path (eryx_sandbox_save) then writes
 * there. */
TEST_CASE(test_save_at_keeps_to_the_directory)
{
    char sub[100], moved[100], elsewhere[100], via_path[300], file[300];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(moved, sizeof moved, "%s/moved", dir);
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", dir);
    REQUIRE(mkdir(sub, 0700) == 0 && mkdir(elsewhere, 0700) == 0);
    int sub_fd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(sub_fd >= 0);
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    check_run(sb, "x = 3", "");
    /* The swap, as os.rename and os.replace in the mount would do it. */
    REQUIRE(rename(sub, moved) == 0 && symlink(elsewhere, sub) == 0);
    snprintf(via_path, sizeof via_path, "%s/s.img", sub);
    CHECK_INT(eryx_sandbox_save(sb, via_path), ERYX_OK); /* lands in elsewhere */
    CHECK_INT(eryx_sandbox_save_at(sb, sub_fd, "s.img"), ERYX_OK);
    snprintf(file, sizeof file, "%s/s.img", moved);
    eryx_sandbox *back = NULL;
    REQUIRE(eryx_sandbox_load(rt, NULL, file, &back) == ERYX_OK);
    check_run(back, "print(x)", "3\n");
    eryx_sandbox_free(back);
    unlink(file);
    snprintf(file, sizeof file, "%s/s.img", elsewhere);
    CHECK_INT(unlink(file), 0);
    /* No temporary file is left beside the session. */
    CHECK_INT(rmdir(moved), 0);
    CHECK_INT(rmdir(elsewhere), 0);
    unlink(sub);
    /* Misuse is refused, a directory that is gone is ERYX_IO. */
    CHECK_INT(eryx_sandbox_save_at(sb, -5, "s.img"), ERYX_MISUSE);
    CHECK_INT(eryx_sandbox_save_at(sb, sub_fd, NULL), ERYX_MISUSE);
    CHECK_INT(eryx_sandbox_save_at(sb, sub_fd, "s.img"), ERYX_IO);
    CHECK_CONTAINS(eryx_errmsg(sb), "cannot write the session to s.img");
    close(sub_fd);
    eryx_sandbox_free(sb);
}

/* Every case: a directory, a runtime and the saved session of its own. */
static void setup(void)
{
    strcpy(dir, "/tmp/eryx-sesfile-XXXXXX");
    REQUIRE(mkdtemp(dir));
    snprintf(good, sizeof good, "%s/good.img", dir);
    snprintf(bad, sizeof bad, "%s/bad.img", dir);
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_runtime_new: %s\n", eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK);
    make_session();
}

static void teardown(void)
{
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    unlink(good);
    unlink(bad);
    rmdir(dir);
}

TEST_MAIN_WITH(setup, teardown)
