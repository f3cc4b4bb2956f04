/*
 * The runtime: process-wide set-up (engine, wasm2c module state) and the
 * embedded standard library image that every sandbox mounts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/packages.h"
#include "engine/engine.h"
#include "guest/abi.h"

/* The stdlib image, linked into the library by stdlib_image.S. */
extern const uint8_t eryx__stdlib_image[];
extern const uint8_t eryx__stdlib_image_end[];

/* The generated guest code, in a section of its own (src/CMakeLists.txt
 * renames guest.o's .text): hard interrupts jump only from there. */
extern const char __start_eryx_guest_code[];
extern const char __stop_eryx_guest_code[];

static pthread_once_t module_once = PTHREAD_ONCE_INIT;
static int module_init_errno;
static const char *module_init_what;

static void init_module_once(void)
{
    if (eryx__engine_global_init() < 0) {
        module_init_errno = errno ? errno : EINVAL;
        module_init_what = "cannot install the fault handler";
        return;
    }
#if ERYX_GUEST_SEGMENT
    /* The guest addresses its memory through %gs (guest/build.sh). */
    if (eryx__engine_use_segment_base() < 0) {
        module_init_errno = errno;
        module_init_what = "this build's guest addresses memory through the %gs "
                           "segment, which cannot be set up here (valgrind, or a "
                           "seccomp filter forbidding arch_prctl?); build with "
                           "ERYX_GUEST_SEGMENT=0";
        return;
    }
#endif
    eryx__engine_set_guest_code(__start_eryx_guest_code, __stop_eryx_guest_code);
    /* Registers the module's function types: process-global, done once. */
    Z_python_init_module();
}

void eryx_runtime_config_default(eryx_runtime_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
}

/* Asks a guest for its ABI version: catches a library linked against a
 * guest built from other sources. */
static int abi_matches(eryx_sandbox *probe)
{
    int32_t version = -1;
    int rc = eryx__guest_abi_version(probe, &version);
    if (rc == ERYX_OK && version != ERYX_GUEST_ABI_VERSION) {
        eryx__set_errmsg(NULL, "guest ABI version %d, this library speaks %d",
                         (int)version, ERYX_GUEST_ABI_VERSION);
        rc = ERYX_INIT;
    } else if (rc != ERYX_OK) {
        eryx__set_errmsg(NULL, "%s", eryx__errmsg(probe));
    }
    return rc;
}

/* The same with a throwaway guest, instantiated without starting Python. */
static int check_guest_abi(eryx_runtime *rt)
{
    eryx_sandbox *probe = NULL;
    int rc = eryx__sandbox_new_bare(rt, NULL, &probe);
    if (rc != ERYX_OK)
        return rc;
    rc = abi_matches(probe);
    eryx__sandbox_free(probe);
    return rc;
}

int eryx__runtime_new(const eryx_runtime_config *cfg, eryx_runtime **out)
{
    int with_image = !cfg || !(cfg->flags & ERYX_RUNTIME_NO_IMAGE);
    pthread_once(&module_once, init_module_once);
    if (module_init_errno) {
        eryx__set_errmsg(NULL, "%s: %s", module_init_what, strerror(module_init_errno));
        return ERYX_INIT;
    }
    eryx_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return ERYX_NOMEM;
    /* Not validated here: it is read-only data of this binary, made by the
     * build (guest/pack_stdlib.py), and the tests validate it
     * (tests/api/test_images.c). Walking its 1650 entries cost 0.27 ms of
     * every runtime's creation, 2 % of an `eryx -c pass`. */
    rt->stdlib = eryx__stdlib_image;
    rt->stdlib_size = (size_t)(eryx__stdlib_image_end - eryx__stdlib_image);
    atomic_init(&rt->n_sandboxes, 0);
    /* A loaded image's template is the probe (its export returns a
     * constant, touching no memory): instantiating a throwaway guest cost
     * a third of a load (3 MB of data segments copied). */
    int loading = cfg && cfg->image_path;
    /* The packages first: a bad wheel fails before any guest is made. */
    int rc = ERYX_OK;
    if (cfg && (cfg->n_site_packages || cfg->n_wheels))
        rc = eryx__packages_build(cfg->site_packages, cfg->n_site_packages, cfg->wheels,
                                  cfg->n_wheels, &rt->packages, &rt->packages_size);
    if (rc == ERYX_OK && !loading)
        rc = check_guest_abi(rt);
    if (rc == ERYX_OK && loading) {
        rc = eryx__runtime_load_image(rt, cfg->image_path,
                                      (cfg->flags & ERYX_RUNTIME_IMAGE_TRUSTED) != 0);
        if (rc == ERYX_OK)
            rc = abi_matches(rt->template);
    } else if (rc == ERYX_OK && with_image) {
        rc = eryx__runtime_snapshot(rt, cfg);
    }
    if (rc != ERYX_OK) {
        eryx__runtime_drop_snapshot(rt);
        eryx__runtime_free_parked(rt);
        free(rt);
        return rc;
    }
    /* The template is the runtime's own: it does not keep it alive. */
    if (rt->template)
        atomic_fetch_sub(&rt->n_sandboxes, 1);
    *out = rt;
    return ERYX_OK;
}

void eryx__runtime_free(eryx_runtime *rt)
{
    eryx__runtime_free_parked(rt);
    if (rt->template)
        atomic_fetch_add(&rt->n_sandboxes, 1); /* the template's, given back */
    eryx__runtime_drop_snapshot(rt);
    free(rt);
}
