/*
 * The guest instance of a sandbox: its linear memory and what maps it, its
 * fiber, its two mutable globals, its fork base, and the runtime's list of
 * parked instances. This layer calls only the engine and the guest's
 * exports (guest.c); the sandbox layer (sandbox.c) decides when.
 *
 * A sandbox made from an image is instantiated without its data segments
 * (guest/w2c_hooks.h), maps the image MAP_PRIVATE over its memory and
 * restores the globals: page-table work, not CPython's start-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/exec.h"

_Thread_local int eryx__w2c_skip_data_segments;

/* The state of a guest that the image does not hold. */
void eryx__save_globals(const eryx_sandbox *sb, eryx__snapshot_globals *g)
{
    g->stack_pointer = sb->in.inst.w2c___stack_pointer;
    g->memory_base = sb->in.inst.w2c_GOT_data_internal___memory_base;
    g->breaker_addr = sb->irq.breaker_addr;
    g->async_exc_addr = sb->irq.async_exc_addr;
    g->exc_value = sb->irq.exc_value;
    g->breaker_bit = sb->irq.breaker_bit;
}

void eryx__restore_globals(eryx_sandbox *sb, const eryx__snapshot_globals *g)
{
    sb->in.inst.w2c___stack_pointer = g->stack_pointer;
    sb->in.inst.w2c_GOT_data_internal___memory_base = g->memory_base;
    sb->irq.breaker_addr = g->breaker_addr;
    sb->irq.async_exc_addr = g->async_exc_addr;
    sb->irq.exc_value = g->exc_value;
    sb->irq.breaker_bit = g->breaker_bit;
}

/* Instantiates sb's guest without copying its data segments (an image is
 * about to replace its memory). */
int eryx__instance_instantiate_bare(eryx_sandbox *sb)
{
    eryx__w2c_skip_data_segments = 1;
    int rc = eryx__guest_instantiate(sb);
    eryx__w2c_skip_data_segments = 0;
    return rc;
}

/* ---- fork bases ---------------------------------------------------------
 *
 * Forking captures the parent's memory into an image (one copy of its
 * non-zero pages, ~13 ms for 70 MB here) and maps it into the child (a few
 * mmaps). Until guest code runs again in the parent, its memory still is
 * that image: later forks map it again without copying, and so does any
 * sandbox whose memory was just mapped from an image (a new or reset one,
 * a fork, a loaded session). The reference costs memory only in the
 * parent's case (its own pages are not the image's), and only until it
 * next runs or is freed. */

void eryx__instance_set_fork_base(eryx_sandbox *sb, const eryx__mem_image *img)
{
    eryx__sandbox_drop_fork_base(sb);
    eryx__mem_image_ref((eryx__mem_image *)img);
    sb->in.fork_base = (eryx__mem_image *)img;
}

void eryx__sandbox_drop_fork_base(eryx_sandbox *sb)
{
    eryx__mem_image_unref(sb->in.fork_base);
    sb->in.fork_base = NULL;
}

/* Points sb's memory at img (copy-on-write) with the given globals. */
int eryx__instance_map(eryx_sandbox *sb, const eryx__mem_image *img,
                       const eryx__snapshot_globals *g, uint64_t max_memory)
{
    wasm_rt_memory_t *mem = &sb->in.inst.w2c_memory;
    eryx__memory_set_limit(mem, eryx__limit_pages(max_memory));
    int err = eryx__memory_map_image(mem, img);
    if (err < 0) {
        eryx__set_errmsg(sb, "cannot map the image: %s", err == -EFBIG
                                                              ? "larger than max_memory"
                                                              : strerror(-err));
        return err == -EFBIG ? ERYX_INVALID : ERYX_NOMEM;
    }
    eryx__restore_globals(sb, g);
    /* A reset restores in place only over the runtime's image; the others
     * live on as the fork base until the guest runs. */
    sb->in.mapped_from = img == sb->rt->image ? img : NULL;
    sb->in.prefault_pending = img != sb->rt->image && sb->rt->n_hot > 0;
    eryx__instance_set_fork_base(sb, img);
    return ERYX_OK;
}

/* Back to the runtime's image: in place when the memory still maps it
 * (only the pages written since are put back, src/engine/snapshot.c, and
 * the page tables kept, so the next run takes no copy-on-write faults),
 * else mapped afresh and, as for a new sandbox, the pages a first run
 * writes prefaulted: a pool hands reset sandboxes out, and without that
 * their first run paid a fault per page (12.6 ms against 3.1 ms,
 * bench_sandbox on the development VM). */
int eryx__instance_restore_image(eryx_sandbox *sb, uint64_t max_memory)
{
    eryx_runtime *rt = sb->rt;
    eryx__fiber_abandon(sb->in.fiber);
    if (sb->in.mapped_from == rt->image &&
        eryx__memory_restore_image(&sb->in.inst.w2c_memory, rt->image, NULL) == 0) {
        eryx__restore_globals(sb, &rt->globals);
        eryx__instance_set_fork_base(sb, rt->image);
        return ERYX_OK;
    }
    int rc = eryx__instance_map(sb, rt->image, &rt->globals, max_memory);
    if (rc != ERYX_OK) {
        sb->in.mapped_from = NULL;
        return rc;
    }
    eryx__prefault_hot_pages(sb);
    return ERYX_OK;
}

/* ---- prefaulting --------------------------------------------------------
 *
 * The runtime learns which pages of its image a first run writes
 * (image.c); a sandbox made from an image copies them in one batch
 * (~1.8 us a page) instead of taking a fault for each (12-16 us). */

void eryx__prefault_hot_pages(eryx_sandbox *sb)
{
    eryx_runtime *rt = sb->rt;
    for (size_t i = 0; i < rt->n_hot; i++)
        eryx__memory_prefault(&sb->in.inst.w2c_memory, rt->hot[i].start, rt->hot[i].len, 1);
}

/* A fork or a loaded session maps an image of its own, whose pages a first
 * run writes are mostly where a new sandbox's are (the interpreter's state,
 * the stack). Prefaulting them when the fork is made was measured
 * (bench_sandbox, 70 MB session): the fork went from ~40 to ~450-670 us and
 * its first run from 4.4-5.8 to 3.1-3.7 ms. Done before the first run
 * instead, the fork stays cheap (a fork that never runs pays nothing) and
 * the first run keeps most of the gain. */
void eryx__sandbox_prefault_pending(eryx_sandbox *sb)
{
    if (!sb->in.prefault_pending)
        return;
    sb->in.prefault_pending = 0;
    eryx__prefault_hot_pages(sb);
}

/* ---- parked instances ---------------------------------------------------
 *
 * A sandbox being freed keeps its instance (up to ERYX__PARKED_MAX per
 * runtime) instead of unmapping it: its memory is put back to the runtime
 * image — in place when it still maps it (page tables kept, "warm"), else
 * by mapping the image afresh —, its globals reset, and the sandbox layer
 * drops everything its user gave or left (eryx__sandbox_retire). The next
 * eryx_sandbox_new takes one, preferably warm: the guest instance, the
 * mapping and the fiber stack are reused, so creation is a WASI clone and a
 * config copy, and after a warm one the first run takes no page faults: on
 * this VM that is most of what a new sandbox cost (BENCHMARKS.md has both).
 * Forks and loads take one too. What a new owner sees is what a new sandbox
 * sees: the image's memory and globals, the template's WASI state, its own
 * config, a fresh random seed on the first run.
 *
 * The parked lists are guarded by one process-wide lock rather than one
 * per runtime, so that fork(2) can hold it (core/fork.c): a sandbox made
 * or freed on another thread at the fork left a runtime's lock held for
 * good in the child, whose next eryx_sandbox_new on that runtime hung. It
 * is a leaf: nothing else is taken under it. */

static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;

/* fork(2) (core/fork.c): park_mu is held across it. The lists are whole
 * in the child; a sandbox another thread was taking out or putting back
 * is not on them there (its memory is left). */
void eryx__parking_fork(enum eryx__fork_phase phase)
{
    if (phase == ERYX__FORK_PREPARE)
        pthread_mutex_lock(&park_mu);
    else
        pthread_mutex_unlock(&park_mu);
}

int eryx__instance_park_prepare(eryx_sandbox *sb)
{
    eryx_runtime *rt = sb->rt;
    if (!rt->image || !sb->in.instantiated || sb == rt->template)
        return -1;
    pthread_mutex_lock(&park_mu);
    int room = rt->n_parked < ERYX__PARKED_MAX;
    pthread_mutex_unlock(&park_mu);
    if (!room)
        return -1;
    eryx__fiber_abandon(sb->in.fiber);
    eryx__fiber_clear_interrupt(sb->in.fiber);
    /* Anything but the runtime image (a fork, a loaded session) is mapped
     * afresh: its next owner pays the first run's faults, or, if it is a
     * fork or a load, maps its own image over it anyway. */
    wasm_rt_memory_t *mem = &sb->in.inst.w2c_memory;
    int warm = sb->in.mapped_from == rt->image &&
               eryx__memory_restore_image(mem, rt->image, NULL) == 0;
    if (!warm && eryx__memory_map_image(mem, rt->image) != 0)
        return -1;
    sb->in.mapped_from = rt->image;
    sb->in.pages_warm = warm;
    eryx__restore_globals(sb, &rt->globals);
    eryx__sandbox_drop_fork_base(sb);
    return 0;
}

int eryx__instance_park(eryx_sandbox *sb)
{
    eryx_runtime *rt = sb->rt;
    pthread_mutex_lock(&park_mu);
    int parked = rt->n_parked < ERYX__PARKED_MAX;
    if (parked)
        rt->parked[rt->n_parked++] = sb;
    pthread_mutex_unlock(&park_mu);
    return parked ? 0 : -1;
}

eryx_sandbox *eryx__instance_unpark(eryx_runtime *rt, int want_warm)
{
    eryx_sandbox *sb = NULL;
    pthread_mutex_lock(&park_mu);
    unsigned n = rt->n_parked, pick = n;
    for (unsigned i = n; i-- > 0 && pick == n;)
        if (rt->parked[i]->in.pages_warm == want_warm)
            pick = i;
    if (n) {
        pick = pick == n ? n - 1 : pick;
        sb = rt->parked[pick];
        rt->parked[pick] = rt->parked[n - 1];
        rt->n_parked = n - 1;
    }
    pthread_mutex_unlock(&park_mu);
    return sb;
}

void eryx__instance_destroy(eryx_sandbox *sb)
{
    eryx__sandbox_drop_fork_base(sb);
    if (sb->in.instantiated)
        Z_python_free(&sb->in.inst);
    sb->in.instantiated = 0;
    eryx__fiber_free(sb->in.fiber);
    sb->in.fiber = NULL;
}

void eryx__runtime_free_parked(eryx_runtime *rt)
{
    pthread_mutex_lock(&park_mu);
    unsigned n = rt->n_parked;
    rt->n_parked = 0;
    pthread_mutex_unlock(&park_mu);
    for (unsigned i = 0; i < n; i++) {
        eryx__instance_destroy(rt->parked[i]);
        free(rt->parked[i]);
    }
}
