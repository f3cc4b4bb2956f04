/*
 * fork(2) of a process that uses eryx (a multiprocessing worker). The
 * library's process-wide threads (the time limits' watchdog, the callback
 * workers, the network's poller) are not in the child, only their state,
 * and a lock another thread held at the fork stays held there for good.
 * One set of pthread_atfork handlers, registered once with the first
 * runtime, holds the process-wide locks across the fork in one order
 * (each is taken with no other lock of the library held, so the order
 * cannot meet another) and resets in the child what names the threads
 * that are gone. The runtimes' lists of parked sandboxes share one lock,
 * held too: the child may make sandboxes of the parent's runtimes, and a
 * sandbox made or freed on another thread at the fork left that lock held.
 * So is the network policy's cache of this machine's addresses (a connect
 * checked on another thread at the fork left its lock held), and the list
 * of files images are mapped from (engine/snapshot.c).
 * Per-object locks (a pool's, a sandbox's) are not held: what another
 * thread was using at the fork is not to be used in the child
 * (include/eryx.h, "fork(2)").
 */
#include <pthread.h>

#include "core/internal.h"

static void prepare(void)
{
    eryx__net_fork(ERYX__FORK_PREPARE);
    eryx__workers_fork(ERYX__FORK_PREPARE);
    eryx__watchdog_fork(ERYX__FORK_PREPARE);
    eryx__handles_fork(ERYX__FORK_PREPARE);
    eryx__parking_fork(ERYX__FORK_PREPARE);
    eryx__notifier_fork(ERYX__FORK_PREPARE);
    eryx__mem_images_fork(ERYX__FORK_PREPARE); /* last: a leaf, taken under others */
}

static void after(enum eryx__fork_phase phase)
{
    eryx__mem_images_fork(phase);
    eryx__notifier_fork(phase);
    eryx__parking_fork(phase);
    eryx__handles_fork(phase);
    eryx__watchdog_fork(phase);
    eryx__workers_fork(phase);
    eryx__net_fork(phase);
}

static void parent(void)
{
    after(ERYX__FORK_PARENT);
}

static void child(void)
{
    after(ERYX__FORK_CHILD);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void install(void)
{
    (void)pthread_atfork(prepare, parent, child); /* ENOMEM: as before it */
}

void eryx__fork_handlers_install(void)
{
    pthread_once(&once, install);
}
