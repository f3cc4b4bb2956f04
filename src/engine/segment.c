/*
 * Segment-relative linear memory ("Segue"), x86-64 only.
 *
 * wasm2c's code reaches linear memory as instance->memory.data + address.
 * Every store through that char-typed pointer may alias the instance, so the
 * compiler reloads `data` after each one, and every access needs the base
 * in a register. A guest built with ERYX_GUEST_SEGMENT=1 (guest/build.sh,
 * guest/w2c_hooks.h) addresses memory as %gs:address instead: no base load,
 * one addressing mode, and since GCC treats the __seg_gs address space as
 * disjoint from ordinary memory, guest stores no longer force reloads of the
 * instance's globals (docs/performance.md has the measurements).
 *
 * The price is that %gs's base must be the running instance's memory
 * whenever its code runs: eryx__segment_enter sets it on every entry into
 * guest code (a guarded call, a fiber switch) and when the memory is first
 * allocated inside one. glibc on x86-64 leaves %gs unused (TLS is %fs), so
 * nothing needs restoring on the way out, and the base last set is cached
 * per thread: a thread that keeps running one sandbox pays nothing. Setting
 * it is one WRGSBASE instruction where the kernel allows it (HWCAP2_FSGSBASE,
 * Linux 5.9+), else an arch_prctl system call.
 */
#include <errno.h>
#include <stdint.h>

#include "engine/internal.h"

#if defined(__x86_64__) && defined(__linux__)
#include <asm/prctl.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ERYX__VALGRIND 1
#endif
#endif

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

/* Both written once, by eryx__engine_use_segment_base, before any guest
 * code runs (a runtime's creation); read-only afterwards. */
static int segment_on;
static int have_wrgsbase;

static int set_gs_base(uintptr_t base)
{
    if (have_wrgsbase) {
        __asm__ volatile("wrgsbase %0" : : "r"(base) : "memory");
        return 0;
    }
    return (int)syscall(SYS_arch_prctl, ARCH_SET_GS, base);
}

int eryx__engine_use_segment_base(void)
{
    uintptr_t old = 0;
#ifdef ERYX__VALGRIND
    /* valgrind's amd64 Linux front end does not decode %gs-prefixed
     * accesses: the guest would die on its first load. */
    if (RUNNING_ON_VALGRIND) {
        errno = ENOTSUP;
        return -1;
    }
#endif
    have_wrgsbase = (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
    /* Proves the system call works here (seccomp filters may forbid it). */
    if (syscall(SYS_arch_prctl, ARCH_GET_GS, &old) != 0
        || syscall(SYS_arch_prctl, ARCH_SET_GS, old) != 0) {
        errno = ENOTSUP;
        return -1;
    }
    segment_on = 1;
    return 0;
}

void eryx__segment_enter(eryx__engine_thread *t, const wasm_rt_memory_t *mem)
{
    if (!segment_on || mem == NULL || mem->data == NULL)
        return;
    uintptr_t base = (uintptr_t)mem->data;
    if (t->segment_base == base)
        return;
    /* Cannot fail: the base is a canonical user address (it is mapped),
     * and eryx__engine_use_segment_base proved the call is allowed. */
    (void)set_gs_base(base);
    t->segment_base = base;
}

#else

int eryx__engine_use_segment_base(void)
{
    errno = ENOTSUP;
    return -1;
}

void eryx__segment_enter(eryx__engine_thread *t, const wasm_rt_memory_t *mem)
{
    (void)t;
    (void)mem;
}

#endif
