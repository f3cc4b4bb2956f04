/*
 * The engine: our implementation of wasm2c's runtime interface (wasm-rt.h) and
 * the one guarded way into guest code.
 *
 * Everything wasm2c-generated code needs lives here: linear memories in 8 GiB
 * guard reservations, funcref/externref tables, the per-thread unwind state
 * (the stock wasm-rt-impl.c keeps it process-global, which is wrong with
 * sandboxes on several threads), and the SIGSEGV/SIGBUS handler that turns a
 * fault in guest code into a trap.
 *
 * Rules:
 * - eryx__engine_global_init() once per process (idempotent, thread-safe)
 *   before anything else here.
 * - Guest code runs only inside eryx__engine_call() or, on a fiber of its
 *   own, eryx__engine_call_on()/_resume() (see "Fibers" below). They return
 *   how the call ended; longjmp never crosses any other frame of ours.
 * - Host imports called by guest code run inside that frame too: they may end
 *   the call with eryx__engine_exit() (WASI proc_exit) or eryx__engine_abort().
 * - Run the generated Z_<mod>_instantiate() inside eryx__engine_call() as
 *   well: it can trap (an out-of-range data or element segment) and it is
 *   where memories and tables are allocated (see "Allocation failure").
 *
 * Allocation failure: wasm_rt_allocate_memory() and the table allocators have
 * no error return. Inside a guarded call a failure ends the call with
 * ERYX__CALL_NOMEM. Outside one they return with data == NULL, size 0 and
 * pages/max_pages 0 (a zero-page memory still has non-NULL data, so
 * data == NULL always means failure); the caller must check. Growth failures
 * are ordinary: memory.grow / table.grow return -1 to the guest.
 *
 * Memory limits: wasm_rt_memory_t.size is 32 bits, so a memory is capped at
 * 65535 pages (4 GiB - 64 KiB), one page short of the wasm32 maximum.
 *
 * The generated code should be compiled with -fstack-clash-protection so that
 * no single frame can step over a thread's stack guard page.
 */
#ifndef ERYX_ENGINE_H
#define ERYX_ENGINE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <wasm-rt.h>

/* How a guarded call ended. Values below 100 are wasm_rt_trap_t values. */
enum {
    ERYX__CALL_OK = 0,              /* returned normally (WASM_RT_TRAP_NONE) */
    ERYX__CALL_EXIT = 100,          /* guest called proc_exit: see exit_code */
    ERYX__CALL_ABORTED = 101,       /* a host import called eryx__engine_abort */
    ERYX__CALL_NOMEM = 102,         /* a memory or table could not be allocated */
    ERYX__CALL_SUSPENDED = 103,     /* fiber calls: the guest is waiting (resume it) */
    ERYX__CALL_INTERRUPTED = 104    /* fiber calls: stopped by eryx__engine_interrupt */
};

typedef struct eryx__call_info {
    int exit_code;                  /* for ERYX__CALL_EXIT */
    int abort_reason;               /* for ERYX__CALL_ABORTED */
} eryx__call_info;

/* Installs the fault handler (chaining to any previous one) and wasm2c's
 * global state. Returns 0, or -1 with errno set. The handler stays installed
 * for the life of the process (wasm_rt_free() does not remove it). */
int eryx__engine_global_init(void);

/* Declares that the guest code addresses linear memory relative to %gs
 * (built with ERYX_GUEST_SEGMENT=1; src/engine/segment.c): every guarded
 * call then points %gs's base at the call's memory. Once, before the first
 * call. 0, or -1 with errno ENOTSUP where the base cannot be set: not
 * x86-64 Linux, a seccomp filter forbids arch_prctl, or under valgrind
 * (which cannot decode %gs accesses). */
int eryx__engine_use_segment_base(void);

/* Runs fn(arg) on this thread with trap recovery. `mem` is the linear memory
 * of the instance being run: a fault inside its reservation is an
 * out-of-bounds trap (`mem` may be NULL for a module without memory).
 * Returns ERYX__CALL_* or a wasm_rt_trap_t value; -1 for a reentrant call on
 * one thread (not allowed) or when this thread's first-call setup (stack
 * bounds, alternate signal stack) failed, with errno set. `info` may be NULL.
 * Thread-safe: any number of threads may run guest code at once. After the
 * first call on a thread it makes no system call. */
typedef void (*eryx__guest_fn)(void *arg);
int eryx__engine_call(wasm_rt_memory_t *mem, eryx__guest_fn fn, void *arg,
                      eryx__call_info *info);

/* ---- Fibers: guest code on its own stack, suspended and resumed ----------
 *
 * A fiber is a native stack that guest code runs on. A host import running
 * inside a fiber call may suspend it (eryx__engine_suspend): the call then
 * returns ERYX__CALL_SUSPENDED to the embedder with the guest's native stack
 * left intact, and a later eryx__engine_resume, on any thread, continues the
 * import as if it had simply blocked. Traps, proc_exit and host aborts end a
 * fiber call exactly as they end eryx__engine_call, also after any number of
 * suspends and on whichever thread the fiber runs by then; a stack overflow on
 * the fiber (its guard region) is WASM_RT_TRAP_EXHAUSTION. Any end of a call
 * leaves the fiber idle: the next call_on starts afresh on an empty stack.
 *
 * One thread at a time per fiber: call_on, resume, abandon, clear_interrupt
 * and free must not race each other (the embedder serialises them). Only
 * eryx__engine_interrupt may be called from any thread at any time (but not
 * after, or racing with, eryx__fiber_free).
 *
 * Code that runs on the fiber and calls eryx__engine_suspend returns from it
 * on possibly another thread: it must not keep thread-local addresses across
 * the call (this includes errno's, which GCC may cache as __errno_location()
 * is declared const: read errno before suspending), and must not hold locks
 * or other resources tied to the thread. A suspended computation may also
 * never continue (abandon, free, interrupt): nothing on its stack is run
 * again, so a suspending import must not hold anything that needs releasing.
 *
 * Context switches are a hand-written register swap on x86-64 (a suspend +
 * resume round trip through an import costs ~60 ns) and glibc swapcontext
 * elsewhere (an rt_sigprocmask system call per switch: ~2.2 us per round
 * trip on the development VM); see fiber.c for the measurements. On x86-64
 * the switch is not compatible with a CET shadow stack: the library is not
 * marked SHSTK-compatible. */

/* Default fiber stack size: CPython's deepest recursion before its own
 * RecursionError must fit. Address space only until touched. */
#ifndef ERYX_FIBER_STACK_SIZE
#define ERYX_FIBER_STACK_SIZE (8u << 20)
#endif

/* PROT_NONE bytes below each fiber stack. The generated code is built with
 * -fstack-clash-protection (no frame skips a page), but host imports may not
 * be, and the region costs address space only. */
#ifndef ERYX_FIBER_GUARD_SIZE
#define ERYX_FIBER_GUARD_SIZE (64u << 10)
#endif

/* 1: use glibc ucontext for switches even where a hand-written switch
 * exists (for testing the fallback). */
#ifndef ERYX_FIBER_UCONTEXT
#define ERYX_FIBER_UCONTEXT 0
#endif

/* The signal eryx__engine_interrupt sends to the thread running the fiber.
 * SIGURG: its default action is to ignore it (a stray or late delivery is
 * harmless), standard signals coalesce instead of queueing (repeated
 * interrupts cannot exhaust RLIMIT_SIGPENDING), and it is otherwise used only
 * for socket out-of-band data with F_SETOWN (rare) and by the Go runtime for
 * preemption (which tolerates extra deliveries). Real-time signals were
 * rejected because they queue and because SIGRTMIN+n is a guess at what the
 * embedder leaves free. Deliveries that are not for us are passed on to the
 * handler installed before ours. */
#ifndef ERYX_INTERRUPT_SIGNAL
#define ERYX_INTERRUPT_SIGNAL SIGURG
#endif

typedef struct eryx__fiber eryx__fiber;

/* A fiber with a stack of stack_size bytes (0: ERYX_FIBER_STACK_SIZE; rounded
 * up to pages) mapped MAP_NORESERVE with ERYX_FIBER_GUARD_SIZE of PROT_NONE
 * below. NULL with errno set on failure. Does not need global init. */
eryx__fiber *eryx__fiber_new(size_t stack_size);

/* Unmaps the fiber (NULL is fine). A suspended computation is abandoned:
 * its stack goes away, nothing on it runs. Not while a call runs on it. */
void eryx__fiber_free(eryx__fiber *f);

/* 1 if this thread is inside a guarded call (guest code, or host code the
 * guest called: an import, an output handler), where any other guarded
 * call is refused (-1, errno EBUSY); 0 otherwise, also while the thread's
 * own guest is suspended (a callback handler may run another sandbox). */
int eryx__engine_thread_in_guest(void);

/* Like eryx__engine_call, but fn runs on the fiber's stack. Returns what
 * eryx__engine_call returns, or
 * - ERYX__CALL_SUSPENDED: a host import called eryx__engine_suspend; the
 *   fiber must be resumed (eryx__engine_resume) or abandoned before the next
 *   call_on (which otherwise fails with -1, errno EBUSY);
 * - ERYX__CALL_INTERRUPTED: see eryx__engine_interrupt.
 * -1 with errno EBUSY: the fiber is not idle, or this thread is already
 * inside a guarded call; other errno: this thread's set-up failed. */
int eryx__engine_call_on(eryx__fiber *f, wasm_rt_memory_t *mem, eryx__guest_fn fn, void *arg,
                         eryx__call_info *info);

/* Continues a suspended fiber on this thread (any thread: the one that
 * started the call or suspended it need not be). Returns like call_on. -1
 * with errno EBUSY if the fiber is not suspended or this thread is inside a
 * guarded call. */
int eryx__engine_resume(eryx__fiber *f, eryx__call_info *info);

/* Only from host code running inside a fiber call (an import): switches back
 * to the thread's call_on/resume, which returns ERYX__CALL_SUSPENDED.
 * Returns 0 when resumed, possibly on another thread, or -1 (errno EINVAL,
 * nothing happened) when not inside a fiber call (e.g. under
 * eryx__engine_call): the import should then do its work synchronously.
 * If the computation is never resumed it does not return at all. */
int eryx__engine_suspend(void);

/* 1 if the fiber holds a suspended computation. */
int eryx__fiber_suspended(const eryx__fiber *f);

/* Forgets a suspended computation (nothing on its stack is run): the fiber
 * is idle and can take a new call_on. No-op on an idle fiber. */
void eryx__fiber_abandon(eryx__fiber *f);

/* Hard stop. Thread-safe, async-signal-safe, callable at any time. Sets the
 * fiber's interrupt flag, which stays set until eryx__fiber_clear_interrupt
 * (guest code run with plain eryx__engine_call cannot be interrupted):
 * - guest code running on the fiber (on any thread) is stopped within
 *   microseconds by ERYX_INTERRUPT_SIGNAL sent to that thread, and the
 *   call_on/resume running it returns ERYX__CALL_INTERRUPTED. The guest's
 *   state (its memory, its globals) is whatever it was at that instruction:
 *   the instance must be treated as dead;
 * - host code running on the fiber (an import between
 *   eryx__engine_enter_host and _leave_host, or our wasm_rt_* functions) is
 *   never jumped out of: the stop happens in the outermost
 *   eryx__engine_leave_host, or when the import suspends (call_on/resume
 *   then returns ERYX__CALL_INTERRUPTED instead of SUSPENDED and the
 *   computation is abandoned). Host code that loops or blocks should poll
 *   eryx__engine_interrupt_pending();
 * - if nothing runs on the fiber, the next call_on/resume returns
 *   ERYX__CALL_INTERRUPTED at once without running anything (a suspended
 *   computation is abandoned).
 * A call that finishes while the interrupt is on its way returns its own
 * result; the flag then stops the next one. The thread that ran the fiber may
 * receive the signal late, after the call returned; our handler then passes
 * it on to the previous handler (SIGURG's default ignores it), but an
 * interrupted system call there may return EINTR (poll, nanosleep, ...).
 * Handlers use SA_RESTART, so most system calls are restarted. */
void eryx__engine_interrupt(eryx__fiber *f);

/* Declares where the generated guest code is (once, before the first
 * guarded call). Only a fault at an instruction in [lo, hi) becomes a trap
 * (an out-of-bounds access or call-stack exhaustion): a fault in host code
 * (an import, an embedder callback, the engine) is passed on as if eryx
 * were not there and so crashes the process, even when its address is in a
 * guest memory's reservation or a fiber's stack guard; without the
 * declaration no fault is a trap at all. The hard interrupt likewise jumps
 * only from instructions in [lo, hi): host code the guest calls without
 * enter/leave_host is thus safe too; an interrupt that arrives there is
 * dropped, and the caller sends another (src/core/interrupt.c retries every
 * millisecond). Without the declaration, every instruction outside
 * enter/leave_host counts as guest code for the interrupt. */
void eryx__engine_set_guest_code(const void *lo, const void *hi);

/* Clears the interrupt flag (owner thread, not during a call on f). */
void eryx__fiber_clear_interrupt(eryx__fiber *f);

/* Host imports bracket their body with these (generated code calls imports
 * as plain C functions, so this is how the engine knows it is in host code,
 * where an interrupt must not jump). They nest. leave_host may not return:
 * in the outermost host frame of a fiber call with an interrupt pending it
 * ends the call with ERYX__CALL_INTERRUPTED, so call it only when the import
 * holds nothing that needs releasing (right before returning). Outside fiber
 * calls they only count. A trap or eryx__engine_exit/abort from inside an
 * import needs no leave_host. */
void eryx__engine_enter_host(void);
void eryx__engine_leave_host(void);

/* 1 if the fiber call running on this thread has been interrupted (for
 * long-running imports), else 0. */
int eryx__engine_interrupt_pending(void);

/* The stack a host import is sure to have: every import calls
 * eryx__engine_import_entry() first, which traps (call stack exhausted)
 * when the fiber it runs on has less than this left. Without it the guest
 * could recurse to just above its stack's guard and then call an import,
 * whose frames (a VFS lookup, the embedder's on_output or inline handler)
 * would hit the guard: a host crash by the fault handler's rule (fault.c),
 * found with a program that nests C calls around os.stat. 256 KiB is 3 %
 * of the default fiber stack; the guest's own frames still use it all. */
#define ERYX_HOST_STACK_RESERVE (256u << 10)
void eryx__engine_import_entry(void);

/* Ends the current guarded call (only from code running inside it). */
_Noreturn void eryx__engine_exit(int exit_code);
_Noreturn void eryx__engine_abort(int reason);

/* Human-readable description of a call result (a trap or the codes above). */
const char *eryx__engine_strerror(int call_result);

/* Bytes of a memory's pages currently accessible (its size). */
static inline uint64_t eryx__memory_size(const wasm_rt_memory_t *m) { return m->size; }

/* Limits the memory to max_pages 64 KiB pages from now on (growth beyond is
 * refused and memory.grow returns -1 to the guest). Shrinking below the
 * current size is not possible: the limit is then the current size. */
void eryx__memory_set_limit(wasm_rt_memory_t *m, uint32_t max_pages);
/* Sets m's limit to max_pages exactly, raising it too (the reservation
 * always spans ERYX__MAX_PAGES), but never below its current size: for a
 * memory that passes to a new owner. */
void eryx__memory_set_max(wasm_rt_memory_t *m, uint32_t max_pages);

/* Linear memory never shrinks, so its current size is also its peak. The
 * limit is kept in m->max_pages, which wasm_rt_grow_memory enforces. */

/* ---- Memory images: copy-on-write snapshots of linear memory ------------
 *
 * An image is the frozen contents of a linear memory in a sealed memfd (only
 * its non-zero 4 KiB pages take memory). Any number of memories map it
 * copy-on-write into their guard reservations: mapping costs page-table work,
 * and a page is copied when the memory first writes it. See snapshot.c for
 * the design and the measurements.
 *
 * Images are immutable and reference counted: ref/unref and every function
 * taking a const image are thread-safe. A memory keeps working after the last
 * unref of the image it maps (its mappings hold the file). The functions
 * below that take a memory are host code, not for use inside a guarded call
 * on that memory. Errors are negative errno values. */
typedef struct eryx__mem_image eryx__mem_image;

/* Most file mappings one image needs in a memory (short zero gaps between
 * data ranges are mapped from the file to stay below). */
#ifndef ERYX__IMAGE_MAX_EXTENTS
#define ERYX__IMAGE_MAX_EXTENTS 32u
#endif

/* Captures m's `size` bytes into a new image (*out, one reference). Reads
 * every page of m once and copies the non-zero ones. Returns 0 or -errno. */
int eryx__mem_image_capture(const wasm_rt_memory_t *m, eryx__mem_image **out);
void eryx__mem_image_ref(eryx__mem_image *img);
void eryx__mem_image_unref(eryx__mem_image *img);      /* NULL is fine */
/* Bytes of memory the image describes (a multiple of 64 KiB). */
size_t eryx__mem_image_size(const eryx__mem_image *img);
/* Bytes of non-zero pages it holds (what it costs). */
size_t eryx__mem_image_data_bytes(const eryx__mem_image *img);
/* File mappings eryx__memory_map_image makes for it (<= ERYX__IMAGE_MAX_EXTENTS). */
uint32_t eryx__mem_image_mappings(const eryx__mem_image *img);

/* A reservation with no accessible pages and the given limit, for a memory
 * that will be given contents by eryx__memory_map_image (instead of
 * wasm_rt_allocate_memory). 0, or -1 with errno set (m->data NULL). Freed
 * with wasm_rt_free_memory. */
int eryx__memory_reserve(wasm_rt_memory_t *m, uint32_t max_pages);

/* Replaces the whole contents of the allocated memory m by a private
 * copy-on-write mapping of img: m->size/pages become the image's, pages
 * beyond become inaccessible, max_pages is kept (-EFBIG if the image is
 * larger). Works on a fresh reservation as well as on a used memory (which
 * is thereby reset to the image). Growth afterwards gives zero pages as
 * usual; wasm_rt_free_memory releases everything. On failure m is left with
 * 0 accessible pages (nothing of the old contents is reachable). */
int eryx__memory_map_image(wasm_rt_memory_t *m, const eryx__mem_image *img);

/* Resets m, which was mapped from img by eryx__memory_map_image and has
 * only been used since (written, grown), to img's contents *in place*: the
 * pages /proc/self/pagemap shows as private copies get the image's bytes
 * back (zeros in its gaps), growth is decommitted, and nothing else is
 * touched. Unlike a new mapping this keeps the page tables, so the next run
 * takes no copy-on-write faults on the pages the last one wrote. *restored
 * (may be NULL) receives the number of pages copied back. 0; -ENOTSUP
 * without a readable pagemap (remap instead); -EINVAL if m is smaller than
 * the image; other -errno: m's contents are undefined (remap it). Not for a
 * memory mapped from another image: its file pages would be kept. */
int eryx__memory_restore_image(wasm_rt_memory_t *m, const eryx__mem_image *img,
                               uint64_t *restored);

/* Makes dst a copy of src (a live memory): captures src into a new image and
 * maps it into dst, so dst shares the copied pages with nothing but that
 * image's page cache. Cost is one pass over src plus a copy of its non-zero
 * pages (no per-page faults); to fork one state several times, capture once
 * and map the image into each copy instead. dst may be unallocated
 * (data == NULL: a reservation with src's limit is made) or allocated (its
 * contents are replaced; its limit must fit src's size). 0 or -errno. */
int eryx__memory_fork(const wasm_rt_memory_t *src, wasm_rt_memory_t *dst);

/* Faults in [off, off + len) of m now, in one batch, instead of one page
 * fault per page later: write=1 also breaks copy-on-write (private copies),
 * write=0 maps the pages readable. A batch costs a fraction of the traps it
 * replaces (see snapshot.c). 0, or -errno (-EINVAL out of range; the kernel
 * may lack MADV_POPULATE_*: then nothing happened, which is harmless). */
int eryx__memory_prefault(wasm_rt_memory_t *m, uint64_t off, uint64_t len, int write);

/* Serialises an image: img's size bytes, raw, written to fd at its position
 * (holes are seeked over when fd is a regular file written at its end).
 * 0 or -errno. */
int eryx__mem_image_write(const eryx__mem_image *img, int fd);
/* Writes m's memory to fd at offset `at` as it would be read back (m->size
 * bytes), but only its non-zero pages: the zero ones are left as holes, or
 * as whatever fd already holds there (write into a fresh or truncated
 * file). 0 or -errno. */
int eryx__memory_write_sparse(const wasm_rt_memory_t *m, int fd, uint64_t at);
/* An image of the size bytes of regular file fd at offset (4 KiB-aligned),
 * mapped from the file itself (copy-on-write, nothing copied; fd is
 * duplicated). Unlike the other images it is not sealed: the caller checks
 * the bytes first, and the file must not be changed or truncated in place
 * while it is used (replace it by renaming a new file over it). The VFS
 * keeps the guest from doing either (eryx__mem_image_maps_file, its write
 * guard). 0 or -errno. */
int eryx__mem_image_from_file(int fd, uint64_t offset, uint64_t size, eryx__mem_image **out);
/* 1 if a live image of this process is mapped from the file with inode
 * (dev, ino). Thread-safe; takes no lock while no image is mapped from a
 * file. */
int eryx__mem_image_maps_file(uint64_t dev, uint64_t ino);
/* fork(2): phase 0 (prepare) takes the list's lock, 1 and 2 (parent,
 * child) release it (core/fork.c). */
void eryx__mem_images_fork(int phase);
/* img's bytes, read-only (size bytes; pages come from its file when read). */
const uint8_t *eryx__mem_image_view(const eryx__mem_image *img);
/* Reads size bytes (a multiple of 64 KiB) from fd into a new image. 0 or
 * -errno (-EIO for input shorter than size). */
int eryx__mem_image_read(int fd, uint64_t size, eryx__mem_image **out);
/* The same, handing every chunk read to each(ud, bytes, n) in order before
 * it goes into the image: a checksum over exactly the bytes the image
 * holds (it is sealed once read), without reading them a second time. */
int eryx__mem_image_read_each(int fd, uint64_t size,
                              void (*each)(void *ud, const uint8_t *p, size_t n), void *ud,
                              eryx__mem_image **out);

#endif
