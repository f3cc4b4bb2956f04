/*
 * Copy-on-write sandboxes: what is made from the runtime's image (new
 * sandboxes, resets), from a live sandbox (forks) and from saved state
 * (loaded sessions), and the parking of freed sandboxes for reuse.
 *
 * A new sandbox is instantiated without its data segments
 * (guest/w2c_hooks.h), maps an image MAP_PRIVATE over its memory, restores
 * the globals and clones the template's WASI state: page-table work, not
 * CPython's start-up.
 */
#include <errno.h>
#include <fcntl.h>
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
    g->stack_pointer = sb->inst.w2c___stack_pointer;
    g->memory_base = sb->inst.w2c_GOT_data_internal___memory_base;
    g->breaker_addr = sb->irq.breaker_addr;
    g->async_exc_addr = sb->irq.async_exc_addr;
    g->exc_value = sb->irq.exc_value;
    g->breaker_bit = sb->irq.breaker_bit;
}

void eryx__restore_globals(eryx_sandbox *sb, const eryx__snapshot_globals *g)
{
    sb->inst.w2c___stack_pointer = g->stack_pointer;
    sb->inst.w2c_GOT_data_internal___memory_base = g->memory_base;
    sb->irq.breaker_addr = g->breaker_addr;
    sb->irq.async_exc_addr = g->async_exc_addr;
    sb->irq.exc_value = g->exc_value;
    sb->irq.breaker_bit = g->breaker_bit;
}

/* The embedder's file tree and caps on a WASI state cloned from the
 * template. The message goes to the thread. */
static int adopt_wasi(eryx_sandbox *sb, eryx__wasi *w, const eryx_sandbox_config *cfg,
                      int mount)
{
    eryx__vfs *vfs = eryx__wasi_vfs(w);
    eryx__vfs_set_tmp_quota(vfs, cfg->tmp_quota);
    eryx__wasi_set_max_output(w, cfg->max_output);
    eryx__wasi_set_output_stop(w, cfg->output_limit_stops);
    for (size_t i = 0; mount && i < cfg->n_mounts; i++) {
        const eryx_mount *m = &cfg->mounts[i];
        int err = eryx__vfs_mount_host(vfs, m->guest_path, m->host_path, !m->writable);
        if (err != 0) {
            eryx__set_errmsg(NULL, "cannot mount %s at %s: %s", m->host_path, m->guest_path,
                             strerror(-err));
            return ERYX_IO;
        }
    }
    if (cfg->on_output)
        eryx__wasi_set_output_fn(w, cfg->on_output, cfg->output_user_data);
    eryx__wasi_set_sleeper(w, eryx__exec_sleep, sb);
    sb->wasi = w;
    return ERYX_OK;
}

/* Instantiates sb's guest without copying its data segments (an image is
 * about to replace its memory) and sharing the template's funcref table
 * (src/engine/engine.h, "Shared tables") instead of filling one. */
static int instantiate_bare(eryx_sandbox *sb)
{
    eryx_sandbox *tpl = sb->rt->template;
    eryx__w2c_skip_data_segments = 1;
    eryx__w2c_table_source = tpl ? &tpl->inst.w2c_T0 : NULL;
    int rc = eryx__guest_instantiate(sb);
    eryx__w2c_skip_data_segments = 0;
    eryx__w2c_table_source = NULL;
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

static void set_fork_base(eryx_sandbox *sb, const eryx__mem_image *img)
{
    eryx__sandbox_drop_fork_base(sb);
    eryx__mem_image_ref((eryx__mem_image *)img);
    sb->fork_base = (eryx__mem_image *)img;
}

void eryx__sandbox_drop_fork_base(eryx_sandbox *sb)
{
    eryx__mem_image_unref(sb->fork_base);
    sb->fork_base = NULL;
}

/* Points sb's memory at img (copy-on-write) with the given globals. */
static int map_state(eryx_sandbox *sb, const eryx__mem_image *img,
                     const eryx__snapshot_globals *g, uint64_t max_memory)
{
    wasm_rt_memory_t *mem = &sb->inst.w2c_memory;
    eryx__memory_set_limit(mem, eryx__limit_pages(max_memory));
    int err = eryx__memory_map_image(mem, img);
    if (err < 0) {
        eryx__set_errmsg(sb, "cannot map the image: %s", err == -EFBIG
                                                              ? "larger than max_memory"
                                                              : strerror(-err));
        return err == -EFBIG ? ERYX_INVALID : ERYX_NOMEM;
    }
    eryx__restore_globals(sb, g);
    eryx__wasi_set_memory(sb->wasi, mem);
    /* A reset restores in place only over the runtime's image; the others
     * live on as the fork base until the guest runs. */
    sb->mapped_from = img == sb->rt->image ? img : NULL;
    sb->prefault_pending = img != sb->rt->image && sb->rt->n_hot > 0;
    set_fork_base(sb, img);
    return ERYX_OK;
}

static eryx_sandbox *unpark(eryx_runtime *rt, int want_warm);

/* A sandbox in the state given by img + g, with the WASI state of `parent`
 * (cloned) or a new one, and the embedder's config. A parked sandbox is
 * taken when there is one (its instance, fiber and tables are reused, and
 * img is mapped over the runtime image it maps), preferably one whose
 * pages are not warm: those are better kept for new sandboxes. */
int eryx__sandbox_from_state(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                              const eryx__mem_image *img, const eryx__snapshot_globals *g,
                              const eryx_sandbox *parent, eryx_sandbox **out)
{
    eryx_sandbox *sb = unpark(rt, 0);
    int reused = sb != NULL;
    int rc = reused ? eryx__sandbox_reuse(sb, cfg) : eryx__sandbox_alloc(rt, cfg, &sb);
    if (rc != ERYX_OK)
        return rc; /* both free sb on failure */
    /* A fork keeps its parent's files, mounts and callbacks; the others
     * start from the template's tree and add the config's mounts, or, in a
     * runtime without an image (and so without a template: a session being
     * loaded), from a fresh tree as a booting sandbox would. */
    if (parent)
        rc = eryx__callbacks_copy(sb, parent);
    const eryx_sandbox *src = parent ? parent : rt->template;
    if (rc == ERYX_OK && !src) {
        rc = eryx__sandbox_create_wasi(sb, cfg);
    } else if (rc == ERYX_OK) {
        eryx__wasi *w = eryx__wasi_clone(src->wasi);
        rc = w ? adopt_wasi(sb, w, cfg, parent == NULL) : ERYX_NOMEM;
        if (w && rc != ERYX_OK)
            eryx__wasi_free(w);
    }
    /* The instance calls its WASI imports through this pointer, and its
     * memory limit is the last owner's: map_state can only lower it. */
    if (rc == ERYX_OK && reused) {
        sb->inst.Z_wasi_snapshot_preview1_instance = sb->wasi;
        eryx__memory_set_max(&sb->inst.w2c_memory, eryx__limit_pages(cfg->max_memory));
    } else if (rc == ERYX_OK)
        rc = instantiate_bare(sb);
    if (rc == ERYX_OK)
        rc = map_state(sb, img, g, cfg->max_memory);
    if (rc != ERYX_OK) {
        if (sb->errmsg[0])
            eryx__set_errmsg(NULL, "%s", sb->errmsg);
        eryx__sandbox_free(sb);
        return rc;
    }
    /* The first run reseeds random and applies the environment: the image
     * holds the template's. */
    sb->needs_setup = 1;
    *out = sb;
    return ERYX_OK;
}

/* ---- parked sandboxes ---------------------------------------------------
 *
 * A sandbox being freed is kept (up to ERYX__PARKED_MAX per runtime)
 * instead of unmapped: its memory is put back to the runtime image — in
 * place when it still maps it (eryx__memory_restore_image: page tables
 * kept, "warm"), else by mapping the image afresh —, its globals reset, and
 * everything its user gave or left is dropped (eryx__sandbox_retire). The
 * next eryx_sandbox_new takes one, preferably warm: the guest instance, the
 * mapping and the fiber stack are reused, so creation is a WASI clone and a
 * config copy, and after a warm one the first run takes no page faults: on
 * this VM that is most of what a new sandbox cost (BENCHMARKS.md has both).
 * Forks and loads take one too (sandbox_from_state). What a new owner sees
 * is what a new sandbox sees: the image's memory and globals, the
 * template's WASI state, its own config, a fresh random seed on the first
 * run. */

int eryx__sandbox_park(eryx_sandbox *sb)
{
    eryx_runtime *rt = sb->rt;
    if (!rt->image || !sb->instantiated || sb == rt->template)
        return 0;
    pthread_mutex_lock(&rt->park_mu);
    int room = rt->n_parked < ERYX__PARKED_MAX;
    pthread_mutex_unlock(&rt->park_mu);
    if (!room)
        return 0;
    eryx__fiber_abandon(sb->fiber);
    eryx__fiber_clear_interrupt(sb->fiber);
    /* Still mapping the image: restored in place, page tables kept (warm).
     * Anything else (a fork, a loaded session) maps the image afresh: its
     * next owner pays the first run's faults, or, if it is a fork or a
     * load, maps its own image over it anyway. */
    wasm_rt_memory_t *mem = &sb->inst.w2c_memory;
    int warm = sb->mapped_from == rt->image &&
               eryx__memory_restore_image(mem, rt->image, NULL) == 0;
    if (!warm && eryx__memory_map_image(mem, rt->image) != 0)
        return 0;
    sb->mapped_from = rt->image;
    sb->pages_warm = warm;
    eryx__restore_globals(sb, &rt->globals);
    eryx__sandbox_retire(sb);
    pthread_mutex_lock(&rt->park_mu);
    if (rt->n_parked < ERYX__PARKED_MAX) {
        rt->parked[rt->n_parked++] = sb;
        sb = NULL;
    }
    pthread_mutex_unlock(&rt->park_mu);
    if (sb)
        eryx__sandbox_free(sb); /* the last place went meanwhile */
    return 1;
}

void eryx__runtime_free_parked(eryx_runtime *rt)
{
    pthread_mutex_lock(&rt->park_mu);
    unsigned n = rt->n_parked;
    rt->n_parked = 0;
    pthread_mutex_unlock(&rt->park_mu);
    for (unsigned i = 0; i < n; i++)
        eryx__sandbox_free(rt->parked[i]);
}

/* A parked sandbox, preferably one whose pages_warm is want_warm; NULL if
 * none is parked. */
static eryx_sandbox *unpark(eryx_runtime *rt, int want_warm)
{
    eryx_sandbox *sb = NULL;
    pthread_mutex_lock(&rt->park_mu);
    unsigned n = rt->n_parked, pick = n;
    for (unsigned i = n; i-- > 0 && pick == n;)
        if (rt->parked[i]->pages_warm == want_warm)
            pick = i;
    if (n) {
        pick = pick == n ? n - 1 : pick;
        sb = rt->parked[pick];
        rt->parked[pick] = rt->parked[n - 1];
        rt->n_parked = n - 1;
    }
    pthread_mutex_unlock(&rt->park_mu);
    return sb;
}

/* A parked sandbox for a new owner: its config, the template's WASI state. */
static int reuse_parked(eryx_sandbox *sb, const eryx_sandbox_config *cfg)
{
    eryx_runtime *rt = sb->rt;
    int rc = eryx__sandbox_reuse(sb, cfg);   /* frees sb on failure */
    if (rc != ERYX_OK)
        return rc;
    eryx__wasi *w = eryx__wasi_clone(rt->template->wasi);
    rc = w ? adopt_wasi(sb, w, &sb->cfg, 1) : ERYX_NOMEM;
    if (rc != ERYX_OK) {
        eryx__wasi_free(w);
        if (sb->errmsg[0])
            eryx__set_errmsg(NULL, "%s", sb->errmsg);
        eryx__sandbox_free(sb);
        return rc;
    }
    /* The instance calls its WASI imports through this pointer; the
     * interrupt addresses went with the old owner's timers. */
    sb->inst.Z_wasi_snapshot_preview1_instance = sb->wasi;
    eryx__restore_globals(sb, &rt->globals);
    wasm_rt_memory_t *mem = &sb->inst.w2c_memory;
    eryx__memory_set_max(mem, eryx__limit_pages(sb->cfg.max_memory));
    eryx__wasi_set_memory(sb->wasi, mem);
    set_fork_base(sb, rt->image); /* restored to it when parked */
    sb->needs_setup = 1;
    return ERYX_OK;
}

int eryx__sandbox_new_from_image(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                                 eryx_sandbox **out)
{
    eryx_sandbox *sb = unpark(rt, 1);
    if (sb) {
        int warm = sb->pages_warm;
        int rc = reuse_parked(sb, cfg);
        if (rc == ERYX_OK && !warm)
            eryx__prefault_hot_pages(sb);
        if (rc == ERYX_OK)
            *out = sb;
        return rc;
    }
    int rc = eryx__sandbox_from_state(rt, cfg, rt->image, &rt->globals, NULL, out);
    if (rc == ERYX_OK)
        eryx__prefault_hot_pages(*out);
    return rc;
}

int eryx__sandbox_reset(eryx_sandbox *sb)
{
    eryx_runtime *rt = sb->rt;
    if (!rt->image) {
        eryx__set_errmsg(sb, "the runtime was made with ERYX_RUNTIME_NO_IMAGE: "
                             "there is no image to reset to");
        return ERYX_INVALID;
    }
    eryx__wasi *old = sb->wasi, *w = eryx__wasi_clone(rt->template->wasi);
    if (!w)
        return ERYX_NOMEM;
    /* Keep the sandbox's own mounts, caps and output handler: rebuild the
     * tree from its config. */
    int rc = adopt_wasi(sb, w, &sb->cfg, 1);
    if (rc != ERYX_OK) {
        eryx__wasi_free(w);
        return rc;
    }
    /* The instance calls its WASI imports with the pointer it was
     * instantiated with: point it at the new state before freeing the old. */
    sb->inst.Z_wasi_snapshot_preview1_instance = sb->wasi;
    eryx__wasi_free(old);
    eryx__fiber_abandon(sb->fiber);
    /* Still mapping the runtime image: put back only the pages written since
     * (src/engine/snapshot.c), keeping the page tables, so the next run takes
     * no copy-on-write faults. Otherwise (a fork, a loaded session, no
     * pagemap) map the image afresh and, as for a new sandbox, prefault the
     * pages a first run writes: a pool hands reset sandboxes out, and without
     * that their first run paid a fault per page (12.6 ms against 3.1 ms,
     * bench_sandbox on the development VM). */
    if (sb->mapped_from == rt->image &&
        eryx__memory_restore_image(&sb->inst.w2c_memory, rt->image, NULL) == 0) {
        eryx__restore_globals(sb, &rt->globals);
        eryx__wasi_set_memory(sb->wasi, &sb->inst.w2c_memory);
        set_fork_base(sb, rt->image);
    } else {
        rc = map_state(sb, rt->image, &rt->globals, sb->cfg.max_memory);
        if (rc != ERYX_OK) {
            sb->mapped_from = NULL;
            sb->state = ERYX__SB_DEAD;
            return rc;
        }
        eryx__prefault_hot_pages(sb);
    }
    sb->state = ERYX__SB_READY;
    sb->needs_setup = 1;
    sb->run_count = 0;
    return ERYX_OK;
}

int eryx__sandbox_fork(eryx_sandbox *sb, eryx_sandbox **out)
{
    if (!sb->fork_base) {
        int err = eryx__mem_image_capture(&sb->inst.w2c_memory, &sb->fork_base);
        if (err < 0) {
            eryx__set_errmsg(sb, "cannot capture the sandbox's memory: %s", strerror(-err));
            return ERYX_NOMEM;
        }
    }
    eryx__snapshot_globals g;
    eryx__save_globals(sb, &g);
    int rc = eryx__sandbox_from_state(sb->rt, &sb->cfg, sb->fork_base, &g, sb, out);
    if (rc == ERYX_OK) {
        /* A fork keeps its parent's random state (and, if the parent never
         * ran, its pending setup)... */
        (*out)->needs_setup = sb->needs_setup;
        (*out)->reseed_only = 1; /* ...but must not share its future */
        (*out)->run_count = sb->run_count;
    } else {
        eryx__set_errmsg(sb, "%s", eryx__errmsg(NULL));
    }
    return rc;
}

