/*
 * Every wasi_snapshot_preview1 import (src/wasi/) with fuzzer-chosen
 * arguments over a one-page linear memory the fuzzer also writes, as a
 * hostile guest would call them. proc_exit is left out (it ends the guest
 * call through the engine; there is none here).
 *
 * Input: a sequence of operations, each a selector byte and its arguments
 * (fuzz.h reader). Selector 0 pokes bytes into memory (offset, length,
 * bytes); the others call one import. Arguments are drawn so that pointers
 * land inside the memory, at its edge or anywhere. Per input: a fresh tree
 * and WASI state. The memory is exactly 64 KiB of heap, so ASan sees any
 * host access past it; every call must return a WASI errno (< 77).
 */
#include "fuzz_tree.h"

#define MEM_SIZE 65536u
#define MAX_OPS 48

static wasm_rt_memory_t mem;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_tree_init();
    mem.data = malloc(MEM_SIZE);
    FUZZ_CHECK(mem.data);
    mem.pages = mem.max_pages = 1;
    mem.size = MEM_SIZE;
    return 0;
}

/* A 32-bit argument: small (fds, flags, lengths), a pointer anywhere in
 * the memory, one near its end, or any value. */
static uint32_t arg(fuzz_in *in)
{
    uint8_t tag = fuzz_u8(in);
    switch (tag >> 6) {
    case 0: return tag & 63u;
    case 1: return (uint32_t)fuzz_bytes(in, 2);
    case 2: return MEM_SIZE - (tag & 63u);
    default: return fuzz_u32(in);
    }
}

static uint64_t arg64(fuzz_in *in)
{
    uint8_t tag = fuzz_u8(in);
    return tag < 0x80 ? tag : fuzz_u64(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const argv[] = {"python", "-c", "pass", NULL};
    static const char *const envp[] = {"HOME=/tmp", "LANG=C.UTF-8", NULL};
    fuzz_in in = {data, size};
    memset(mem.data, 0, MEM_SIZE);
    eryx__wasi_config cfg = {argv, envp, fuzz_tree_vfs(), 64 * 1024};
    eryx__wasi *w = eryx__wasi_new(&cfg);
    FUZZ_CHECK(w);
    eryx__wasi_set_memory(w, &mem);
    FUZZ_CHECK(eryx__wasi_set_stdin(w, "line1\nline2\n", 12) == 0);
    /* poll_oneoff never sleeps: a pending interrupt ends its waits at once. */
    eryx__wasi_interrupt(w);
    for (int i = 0; i < MAX_OPS && in.n > 0; i++) {
        uint8_t op = fuzz_u8(&in);
        uint32_t rc = 0, a, b, c, d, e, f, g;
        uint64_t x, y;
        switch (op % 46) {
        case 0: { /* poke */
            uint32_t off = (uint32_t)fuzz_bytes(&in, 2), n = fuzz_u8(&in);
            n = n < in.n ? n : (uint32_t)in.n;
            n = off + n <= MEM_SIZE ? n : MEM_SIZE - off;
            memcpy(mem.data + off, in.p, n);
            in.p += n, in.n -= n;
            continue;
        }
        case 1: a = arg(&in), b = arg(&in), rc = W(args_get)(w, a, b); break;
        case 2: a = arg(&in), b = arg(&in), rc = W(args_sizes_get)(w, a, b); break;
        case 3: a = arg(&in), b = arg(&in), rc = W(environ_get)(w, a, b); break;
        case 4: a = arg(&in), b = arg(&in), rc = W(environ_sizes_get)(w, a, b); break;
        case 5: a = arg(&in), b = arg(&in), rc = W(clock_res_get)(w, a, b); break;
        case 6: a = arg(&in), x = arg64(&in), b = arg(&in), rc = W(clock_time_get)(w, a, x, b);
            break;
        case 7: a = arg(&in), x = arg64(&in), y = arg64(&in), b = arg(&in);
            rc = W(fd_advise)(w, a, x, y, b);
            break;
        case 8: a = arg(&in), x = arg64(&in), y = arg64(&in), rc = W(fd_allocate)(w, a, x, y);
            break;
        case 9: rc = W(fd_close)(w, arg(&in)); break;
        case 10: rc = W(fd_datasync)(w, arg(&in)); break;
        case 11: a = arg(&in), b = arg(&in), rc = W(fd_fdstat_get)(w, a, b); break;
        case 12: a = arg(&in), b = arg(&in), rc = W(fd_fdstat_set_flags)(w, a, b); break;
        case 13: a = arg(&in), x = arg64(&in), y = arg64(&in);
            rc = W(fd_fdstat_set_rights)(w, a, x, y);
            break;
        case 14: a = arg(&in), b = arg(&in), rc = W(fd_filestat_get)(w, a, b); break;
        case 15: a = arg(&in), x = arg64(&in), rc = W(fd_filestat_set_size)(w, a, x); break;
        case 16: a = arg(&in), x = arg64(&in), y = arg64(&in), b = arg(&in);
            rc = W(fd_filestat_set_times)(w, a, x, y, b);
            break;
        case 17: a = arg(&in), b = arg(&in), c = arg(&in), x = arg64(&in), d = arg(&in);
            rc = W(fd_pread)(w, a, b, c, x, d);
            break;
        case 18: a = arg(&in), b = arg(&in), rc = W(fd_prestat_get)(w, a, b); break;
        case 19: a = arg(&in), b = arg(&in), c = arg(&in);
            rc = W(fd_prestat_dir_name)(w, a, b, c);
            break;
        case 20: a = arg(&in), b = arg(&in), c = arg(&in), x = arg64(&in), d = arg(&in);
            rc = W(fd_pwrite)(w, a, b, c, x, d);
            break;
        case 21: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in);
            rc = W(fd_read)(w, a, b, c, d);
            break;
        case 22: a = arg(&in), b = arg(&in), c = arg(&in), x = arg64(&in), d = arg(&in);
            rc = W(fd_readdir)(w, a, b, c, x, d);
            break;
        case 23: a = arg(&in), b = arg(&in), rc = W(fd_renumber)(w, a, b); break;
        case 24: a = arg(&in), x = arg64(&in), b = arg(&in), c = arg(&in);
            rc = W(fd_seek)(w, a, x, b, c);
            break;
        case 25: rc = W(fd_sync)(w, arg(&in)); break;
        case 26: a = arg(&in), b = arg(&in), rc = W(fd_tell)(w, a, b); break;
        case 27: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in);
            rc = W(fd_write)(w, a, b, c, d);
            break;
        case 28: a = arg(&in), b = arg(&in), c = arg(&in);
            rc = W(path_create_directory)(w, a, b, c);
            break;
        case 29: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), e = arg(&in);
            rc = W(path_filestat_get)(w, a, b, c, d, e);
            break;
        case 30: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), x = arg64(&in);
            y = arg64(&in), e = arg(&in);
            rc = W(path_filestat_set_times)(w, a, b, c, d, x, y, e);
            break;
        case 31: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), e = arg(&in);
            f = arg(&in), g = arg(&in);
            rc = W(path_link)(w, a, b, c, d, e, f, g);
            break;
        case 32: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), e = arg(&in);
            x = arg64(&in), y = arg64(&in), f = arg(&in), g = arg(&in);
            rc = W(path_open)(w, a, b, c, d, e, x, y, f, g);
            break;
        case 33: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), e = arg(&in);
            f = arg(&in);
            rc = W(path_readlink)(w, a, b, c, d, e, f);
            break;
        case 34: a = arg(&in), b = arg(&in), c = arg(&in);
            rc = W(path_remove_directory)(w, a, b, c);
            break;
        case 35: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), e = arg(&in);
            f = arg(&in);
            rc = W(path_rename)(w, a, b, c, d, e, f);
            break;
        case 36: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), e = arg(&in);
            rc = W(path_symlink)(w, a, b, c, d, e);
            break;
        case 37: a = arg(&in), b = arg(&in), c = arg(&in);
            rc = W(path_unlink_file)(w, a, b, c);
            break;
        case 38: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in);
            rc = W(poll_oneoff)(w, a, b, c, d);
            break;
        case 39: rc = W(proc_raise)(w, arg(&in)); break;
        case 40: a = arg(&in), b = arg(&in), rc = W(random_get)(w, a, b); break;
        case 41: rc = W(sched_yield)(w); break;
        case 42: a = arg(&in), b = arg(&in), c = arg(&in), rc = W(sock_accept)(w, a, b, c); break;
        case 43: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), e = arg(&in);
            f = arg(&in);
            rc = W(sock_recv)(w, a, b, c, d, e, f);
            break;
        case 44: a = arg(&in), b = arg(&in), c = arg(&in), d = arg(&in), e = arg(&in);
            rc = W(sock_send)(w, a, b, c, d, e);
            break;
        default: a = arg(&in), b = arg(&in), rc = W(sock_shutdown)(w, a, b); break;
        }
        FUZZ_CHECK(rc < 77); /* a WASI errno */
    }
    size_t n;
    int truncated;
    (void)eryx__wasi_output(w, 1, &n, &truncated);
    FUZZ_CHECK(n <= 64 * 1024 + 256); /* the cap, and its one-line marker */
    eryx__wasi_free(w);
    return 0;
}
