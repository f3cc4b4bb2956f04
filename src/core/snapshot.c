/*
 * Copy-on-write sandboxes: the runtime's image, and what is made from it
 * (new sandboxes, resets), from a live sandbox (forks) and from a file
 * (loaded sessions).
 *
 * The runtime boots one template sandbox, imports the common modules and
 * captures its linear memory into a sealed memfd (src/engine/snapshot.c)
 * together with the instance's two mutable globals. A new sandbox is
 * instantiated without its data segments (guest/w2c_hooks.h), maps the image
 * MAP_PRIVATE over its memory, restores the globals and clones the
 * template's WASI state: page-table work, not CPython's start-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/exec.h"

_Thread_local int eryx__w2c_skip_data_segments;

/* Modules every sandbox finds already imported (the list, plus the
 * glue's event loop). Imported through importlib so that __main__ stays
 * clean. */
static const char warm_up_code[] =
    "import importlib as _i\n"
    "for _m in ('json', 're', 'asyncio', 'collections', 'dataclasses', 'datetime',\n"
    "           'decimal', 'functools', 'itertools', 'math', 'random', 'typing',\n"
    "           'traceback', 'linecache', 'tokenize', 'io', 'os', 'sys', '_eryx.loop',\n"
    "           '_eryx.state'):\n"
    "    _i.import_module(_m)\n"
    "del _i, _m\n";

/* The template's last run before the capture: garbage collected, the
 * collector's generations frozen, every object immortal (docs/sessions.md,
 * "The runtime image"). */
static const char freeze_code[] =
    "import gc as _gc, _eryx_host as _h\n"
    "_gc.collect()\n"
    "_gc.freeze()\n"
    "_h.immortalize()\n"
    "del _gc, _h\n";

/* The state of a guest that the image does not hold. */
static void save_globals(const eryx_sandbox *sb, eryx__snapshot_globals *g)
{
    g->stack_pointer = sb->inst.w2c___stack_pointer;
    g->memory_base = sb->inst.w2c_GOT_data_internal___memory_base;
    g->breaker_addr = sb->irq.breaker_addr;
    g->async_exc_addr = sb->irq.async_exc_addr;
    g->exc_value = sb->irq.exc_value;
    g->breaker_bit = sb->irq.breaker_bit;
}

static void restore_globals(eryx_sandbox *sb, const eryx__snapshot_globals *g)
{
    sb->inst.w2c___stack_pointer = g->stack_pointer;
    sb->inst.w2c_GOT_data_internal___memory_base = g->memory_base;
    sb->irq.breaker_addr = g->breaker_addr;
    sb->irq.async_exc_addr = g->async_exc_addr;
    sb->irq.exc_value = g->exc_value;
    sb->irq.breaker_bit = g->breaker_bit;
}

/* ---- the pages a first run writes ------------------------------------- */

/* Page faults are expensive (12–16 µs each on the VMs this was built on, a
 * batch prefault ~1.8 µs a page): a new sandbox writes the same few hundred
 * pages of the image in its first run, so they are copied in one batch when
 * it is made. Which pages: the runtime makes a probe sandbox, runs `pass`,
 * and asks /proc/self/pagemap which pages of its memory became private
 * copies (present, and no longer the file's page). Mapping the pages it only
 * read as well was measured: creation 1.3 ms instead of 0.4 ms, for a first
 * run 0.5 ms shorter, so read pages are left to fault. */
#define PAGE 4096u
#define PM_PRESENT (1ull << 63)
#define PM_FILE_OR_SHARED (1ull << 61)

static int add_run(eryx_runtime *rt, uint64_t start, uint64_t len)
{
    if (rt->n_hot == rt->cap_hot) {
        size_t cap = rt->cap_hot ? rt->cap_hot * 2 : 64;
        eryx__page_run *bigger = realloc(rt->hot, cap * sizeof *bigger);
        if (!bigger)
            return -1;
        rt->hot = bigger;
        rt->cap_hot = cap;
    }
    rt->hot[rt->n_hot++] = (eryx__page_run){start, len};
    return 0;
}

static void find_hot_pages(eryx_runtime *rt, const wasm_rt_memory_t *mem)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* no pagemap: no prefault, only slower first runs */
    uint64_t pages = mem->size / PAGE, run_start = 0, run_len = 0;
    uint64_t entries[512];
    for (uint64_t p = 0; p < pages; p += 512) {
        size_t n = pages - p < 512 ? (size_t)(pages - p) : 512;
        off_t at = (off_t)(((uintptr_t)mem->data / PAGE + p) * sizeof(uint64_t));
        if (pread(fd, entries, n * sizeof *entries, at) != (ssize_t)(n * sizeof *entries))
            break;
        for (size_t i = 0; i < n; i++) {
            /* Written pages became private copies; read ones are the file's. */
            int written = (entries[i] & PM_PRESENT) && !(entries[i] & PM_FILE_OR_SHARED);
            if (written && run_len && run_start + run_len == p + i) {
                run_len++;
            } else if (written) {
                if (run_len && add_run(rt, run_start * PAGE, run_len * PAGE) < 0)
                    goto done;
                run_start = p + i;
                run_len = 1;
            }
        }
    }
    if (run_len)
        add_run(rt, run_start * PAGE, run_len * PAGE);
done:
    close(fd);
}

static void learn_hot_pages(eryx_runtime *rt)
{
    eryx_sandbox_config defaults;
    eryx_sandbox_config_default(&defaults);
    eryx_sandbox *probe;
    if (eryx__sandbox_new_from_image(rt, &defaults, &probe) != ERYX_OK)
        return;
    eryx_result *r = NULL;
    if (eryx__sandbox_run(probe, "pass", 4, NULL, &r) == ERYX_OK)
        find_hot_pages(rt, &probe->inst.w2c_memory);
    eryx_result_free(r);
    eryx__sandbox_free(probe);
}

static void prefault_hot_pages(eryx_sandbox *sb)
{
    eryx_runtime *rt = sb->rt;
    for (size_t i = 0; i < rt->n_hot; i++)
        eryx__memory_prefault(&sb->inst.w2c_memory, rt->hot[i].start, rt->hot[i].len, 1);
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
    if (!sb->prefault_pending)
        return;
    sb->prefault_pending = 0;
    prefault_hot_pages(sb);
}

/* One run of the template's warm-up; the thread's message says why not. */
static int warm_up(eryx_sandbox *tpl, const char *code)
{
    eryx_result *r = NULL;
    int rc = eryx__sandbox_run(tpl, code, strlen(code), NULL, &r);
    if (rc != ERYX_OK)
        eryx__set_errmsg(NULL, "warming up the runtime image failed: %s",
                         r && r->traceback ? r->traceback : eryx__errmsg(tpl));
    eryx_result_free(r);
    return rc == ERYX_PYTHON_EXCEPTION ? ERYX_INIT : rc;
}

/* The template imports the common modules, then runs `pass` a few times,
 * the first time through the setup a new sandbox's first run goes through
 * (reseed, environment): CPython's adaptive interpreter specialises the
 * glue's bytecode in place on its first executions, and lazy caches fill,
 * so that happens once in the image rather than in every sandbox. Measured
 * (bench_sandbox): private memory per idle sandbox 508 -> 424 kB; creation
 * and first run within the noise. Then the freeze, and the capture. */
int eryx__runtime_snapshot(eryx_runtime *rt)
{
    eryx_sandbox *tpl;
    int rc = eryx__sandbox_new(rt, NULL, &tpl);
    if (rc != ERYX_OK)
        return rc;
    rc = warm_up(tpl, warm_up_code);
    for (int i = 0; rc == ERYX_OK && i < 3; i++) {
        tpl->needs_setup = i == 0;
        rc = warm_up(tpl, "pass");
    }
    if (rc == ERYX_OK)
        rc = warm_up(tpl, freeze_code);
    if (rc != ERYX_OK) {
        eryx__sandbox_free(tpl);
        return rc;
    }
    int err = eryx__mem_image_capture(&tpl->inst.w2c_memory, &rt->image);
    if (err < 0) {
        eryx__set_errmsg(NULL, "cannot capture the runtime image: %s", strerror(-err));
        eryx__sandbox_free(tpl);
        return ERYX_NOMEM;
    }
    save_globals(tpl, &rt->globals);
    rt->template = tpl;
    learn_hot_pages(rt);
    return ERYX_OK;
}

void eryx__runtime_drop_snapshot(eryx_runtime *rt)
{
    if (rt->template)
        eryx__sandbox_free(rt->template);
    eryx__mem_image_unref(rt->image);
    free(rt->hot);
    rt->template = NULL;
    rt->image = NULL;
    rt->hot = NULL;
    rt->n_hot = rt->cap_hot = 0;
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
    restore_globals(sb, g);
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
static int sandbox_from_state(eryx_runtime *rt, const eryx_sandbox_config *cfg,
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
    restore_globals(sb, &rt->globals);
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
    restore_globals(sb, &rt->globals);
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
            prefault_hot_pages(sb);
        if (rc == ERYX_OK)
            *out = sb;
        return rc;
    }
    int rc = sandbox_from_state(rt, cfg, rt->image, &rt->globals, NULL, out);
    if (rc == ERYX_OK)
        prefault_hot_pages(*out);
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
        restore_globals(sb, &rt->globals);
        eryx__wasi_set_memory(sb->wasi, &sb->inst.w2c_memory);
        set_fork_base(sb, rt->image);
    } else {
        rc = map_state(sb, rt->image, &rt->globals, sb->cfg.max_memory);
        if (rc != ERYX_OK) {
            sb->mapped_from = NULL;
            sb->state = ERYX__SB_DEAD;
            return rc;
        }
        prefault_hot_pages(sb);
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
    save_globals(sb, &g);
    int rc = sandbox_from_state(sb->rt, &sb->cfg, sb->fork_base, &g, sb, out);
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

/* ---- session files ----------------------------------------------------- */

#define SESSION_MAGIC "ERYXSES3"

/* The header of a session file; little endian, followed by mem_size bytes of
 * linear memory and wasi_size bytes of WASI state (/tmp and the fd table,
 * src/wasi/wasi_persist.c). A crafted file can only give a sandbox a
 * strange guest state, which the sandbox contains like any other guest
 * behaviour, and files in its own /tmp (nothing is created elsewhere); the
 * checksum is there to catch damage, and every field is range-checked.
 * ERYXSES1 files (memory only) came from builds before /tmp was saved,
 * ERYXSES2 ones from builds that summed with FNV-1a: byte by byte, it took
 * ~20% of a save and as much of a load; XXH3 (libxxhash) runs at memory
 * speed. */
typedef struct session_header {
    char magic[8];
    char build_id[64];          /* ERYX_BUILD_ID, NUL-padded */
    uint64_t mem_size;
    uint64_t wasi_size;
    uint64_t run_count;
    uint64_t checksum;          /* XXH3-64 of the memory, then the WASI bytes */
    eryx__snapshot_globals globals;
} session_header;

/* The WASI state may hold /tmp (its quota, 64 MiB by default) plus orphaned
 * open files: more than this is not something we wrote. */
#define MAX_WASI_STATE (1ull << 32)

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

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
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

int eryx__sandbox_save(eryx_sandbox *sb, const char *path)
{
    const wasm_rt_memory_t *mem = &sb->inst.w2c_memory;
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
    save_globals(sb, &h.globals);
    /* Written next to the target and renamed over it: a crash never leaves
     * a half-written session behind. */
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) {
        free(state.p);
        return ERYX_NOMEM;
    }
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    /* The memory's zero pages are holes in the file (more than half of a
     * small session's): less to write and to fsync, and they read back as
     * zeros. The size is set first so that the file is whole whatever the
     * last page is. */
    off_t end = (off_t)(sizeof h + mem->size + state.len);
    int ok = fd >= 0 && ftruncate(fd, end) == 0 && write_all(fd, &h, sizeof h) == 0 &&
             write_memory(fd, mem, sizeof h) == 0 &&
             lseek(fd, (off_t)(sizeof h + mem->size), SEEK_SET) >= 0 &&
             write_all(fd, state.p, state.len) == 0 && fsync(fd) == 0;
    free(state.p);
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok) {
        eryx__set_errmsg(sb, "cannot write the session to %s: %s", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    }
    free(tmp);
    return ok ? ERYX_OK : ERYX_IO;
}

/* Reads and checks a session file's header and memory checksum. */
static int read_session_header(int fd, const char *path, uint64_t max_memory, session_header *h)
{
    struct stat st;
    ssize_t got = pread(fd, h, sizeof *h, 0);
    int older = got >= 8 && (memcmp(h->magic, "ERYXSES1", 8) == 0 ||
                             memcmp(h->magic, "ERYXSES2", 8) == 0);
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
        eryx__set_errmsg(NULL, "%s was saved by another build of eryx (%.64s, this is %s)",
                         path, h->build_id, ERYX_BUILD_ID);
        return ERYX_INVALID;
    }
    if (fstat(fd, &st) != 0 || h->mem_size % 65536u != 0 || h->mem_size == 0 ||
        h->mem_size > max_memory || h->wasi_size > MAX_WASI_STATE ||
        (uint64_t)st.st_size != sizeof *h + h->mem_size + h->wasi_size) {
        eryx__set_errmsg(NULL, "%s is truncated, or its memory is larger than max_memory",
                         path);
        return ERYX_INVALID;
    }
    static const size_t chunk = 1 << 20;
    uint8_t *buf = malloc(chunk);
    XXH3_state_t *x = XXH3_createState();
    if (!buf || !x) {
        free(buf);
        XXH3_freeState(x);
        return ERYX_NOMEM;
    }
    XXH3_64bits_reset(x);
    uint64_t total = h->mem_size + h->wasi_size;
    for (uint64_t off = 0; off < total;) {
        size_t want = total - off < chunk ? (size_t)(total - off) : chunk;
        ssize_t r = pread(fd, buf, want, (off_t)(sizeof *h + off));
        if (r <= 0) {
            free(buf);
            XXH3_freeState(x);
            eryx__set_errmsg(NULL, "cannot read %s", path);
            return ERYX_IO;
        }
        XXH3_64bits_update(x, buf, (size_t)r);
        off += (uint64_t)r;
    }
    uint64_t sum = XXH3_64bits_digest(x);
    free(buf);
    XXH3_freeState(x);
    if (sum != h->checksum) {
        eryx__set_errmsg(NULL, "%s is damaged (checksum mismatch)", path);
        return ERYX_INVALID;
    }
    return ERYX_OK;
}

static int read_wasi_state(int fd, const char *path, const session_header *h, uint8_t **out)
{
    uint8_t *p = malloc(h->wasi_size ? (size_t)h->wasi_size : 1);
    if (!p)
        return ERYX_NOMEM;
    for (uint64_t off = 0; off < h->wasi_size;) {
        ssize_t r = pread(fd, p + off, (size_t)(h->wasi_size - off),
                          (off_t)(sizeof *h + h->mem_size + off));
        if (r <= 0) {
            free(p);
            eryx__set_errmsg(NULL, "cannot read %s", path);
            return ERYX_IO;
        }
        off += (uint64_t)r;
    }
    *out = p;
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
    if (lost)
        eryx__set_errmsg(sb, "loaded, but these open files could not be reopened and are "
                             "closed: %s", lost);
    free(lost);
    return ERYX_OK;
}

int eryx__sandbox_load(eryx_runtime *rt, const eryx_sandbox_config *cfg, const char *path,
                       eryx_sandbox **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        eryx__set_errmsg(NULL, "cannot open %s: %s", path, strerror(errno));
        return ERYX_IO;
    }
    session_header h;
    int rc = read_session_header(fd, path, cfg->max_memory, &h);
    eryx__mem_image *img = NULL;
    if (rc == ERYX_OK && lseek(fd, (off_t)sizeof h, SEEK_SET) < 0)
        rc = ERYX_IO;
    if (rc == ERYX_OK) {
        int err = eryx__mem_image_read(fd, h.mem_size, &img);
        if (err < 0) {
            eryx__set_errmsg(NULL, "cannot read %s: %s", path, strerror(-err));
            rc = ERYX_IO;
        }
    }
    uint8_t *state = NULL;
    if (rc == ERYX_OK)
        rc = read_wasi_state(fd, path, &h, &state);
    close(fd);
    if (rc == ERYX_OK) {
        rc = sandbox_from_state(rt, cfg, img, &h.globals, NULL, out);
        if (rc == ERYX_OK && (rc = restore_wasi_state(*out, path, state,
                                                      (size_t)h.wasi_size)) != ERYX_OK)
            *out = NULL;
        if (rc == ERYX_OK) {
            (*out)->needs_setup = 0;
            (*out)->reseed_only = 1;
            (*out)->run_count = h.run_count;
        }
    }
    free(state);
    eryx__mem_image_unref(img);
    return rc;
}
