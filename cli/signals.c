/*
 * SIGINT, SIGTERM and SIGHUP of the eryx command. The --callback commands
 * and MCP servers run in process groups of their own (so that the
 * terminal's Ctrl-C reaches eryx alone), which the terminal and a service
 * manager do not signal when they stop eryx: dying of SIGTERM or SIGHUP by
 * the default action left them running. A thread takes these signals with
 * sigwait, every other thread blocking them, so the groups are killed with
 * the locks of their lists held (no start slips between the look and the
 * kill) and nothing runs in a signal handler.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "mcp.h"
#include "shell_callback.h"
#include "signals.h"

static _Atomic(eryx_sandbox *) interruptible;
static atomic_int dying; /* die_of began: the process ends by the signal */
static atomic_int saving; /* a --session save is being written */
static atomic_uint interrupts; /* SIGINTs handed to a sandbox */
static struct termios terminal; /* the prompt's, before its line editor */
static atomic_int terminal_fd = -1;

/* At exit(): once die_of began, the exit waits for its raise. Killed,
 * an MCP server being started makes the main thread fail and exit (71),
 * which won the race against the raise: the parent saw 71, not the
 * signal. */
static void wait_for_death(void)
{
    while (atomic_load(&dying))
        pause();
}

void eryx_cli_signals_sandbox(eryx_sandbox *sb)
{
    atomic_store(&interruptible, sb);
}

void eryx_cli_signals_keep_terminal(int fd)
{
    if (atomic_load(&terminal_fd) < 0 && tcgetattr(fd, &terminal) == 0)
        atomic_store(&terminal_fd, fd);
}

void eryx_cli_signals_saving(int on)
{
    atomic_store(&saving, on);
}

/* Kills the commands' groups, then dies of sig as if it had not been
 * caught: the parent sees the signal, as from any program it stops. A
 * --session is not saved: its file keeps the last completed save. */
static void die_of(int sig)
{
    atomic_store(&dying, 1);
    /* A save cut short left its temporary file (hundreds of MB each time,
     * a new name each time): it ends first, as the last one's file. */
    for (int i = 0; i < 3000 && atomic_load(&saving); i++)
        usleep(10 * 1000);
    eryx_cli_shell_kill_all();
    eryx_cli_mcp_kill_all();
    int fd = atomic_load(&terminal_fd);
    if (fd >= 0)
        tcsetattr(fd, TCSANOW, &terminal);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
}

static void fill(sigset_t *set, int take_sigint)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    if (take_sigint)
        sigaddset(set, SIGINT);
}

static void *signal_main(void *arg)
{
    sigset_t set;
    fill(&set, arg != NULL);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        eryx_sandbox *sb = atomic_load(&interruptible);
        if (sig == SIGINT && sb) {
            atomic_fetch_add(&interrupts, 1);
            eryx_sandbox_interrupt(sb);
        } else {
            die_of(sig);
        }
    }
    return NULL;
}

unsigned eryx_cli_signals_interrupts(void)
{
    return atomic_load(&interrupts);
}

int eryx_cli_signals_start(int take_sigint)
{
    static int take = 1; /* a non-NULL argument: SIGINT is taken too */
    sigset_t set, old;
    fill(&set, take_sigint);
    pthread_t t;
    if (atexit(wait_for_death) != 0 || pthread_sigmask(SIG_BLOCK, &set, &old) != 0)
        return -1;
    if (pthread_create(&t, NULL, signal_main, take_sigint ? &take : NULL) != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return -1;
    }
    pthread_detach(t);
    return 0;
}
