/*
 * Configs and options of any version brought to this library's layout
 * (eryx.h, "Versions of structs"): the caller's size says how many bytes
 * are theirs; the rest is defaulted. Limits are normalised here too
 * ("Limits": 0 = not set).
 */
#ifndef ERYX_API_CONFIG_H
#define ERYX_API_CONFIG_H

#include "eryx.h"

/* A sandbox config in this library's layout, with its mount and callback
 * arrays repacked at this library's stride (owned). */
typedef struct eryx__config_copy {
    eryx_sandbox_config cfg;
    eryx_mount *mounts;
    eryx_callback *callbacks;
} eryx__config_copy;

/* given may be NULL (defaults). The message goes to the thread. */
int eryx__sandbox_config_take(const eryx_sandbox_config *given, eryx__config_copy *out);
void eryx__config_copy_free(eryx__config_copy *c);
/* n callbacks repacked into *out (malloc'd; NULL for none). The message
 * goes to the thread. */
int eryx__callbacks_take(const eryx_callback *given, size_t n, eryx_callback **out);

int eryx__runtime_config_take(const eryx_runtime_config *given, eryx_runtime_config *out);
int eryx__pool_config_take(const eryx_pool_config *given, eryx_pool_config *out);

/* Run options; the message goes to sb. */
int eryx__run_options_take(eryx_sandbox *sb, const eryx_run_options *given,
                           eryx_run_options *out);

/* Fills as much of *out as its size field covers from *full. */
void eryx__pool_stats_give(const eryx_pool_stats *full, eryx_pool_stats *out);

#endif
