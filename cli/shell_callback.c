/*
 * `--callback NAME=COMMAND`: a host function that runs COMMAND through
 * /bin/sh with the call's JSON arguments on its stdin and takes its stdout as
 * the JSON result. A non-zero exit fails the call with the command's stderr
 * as the message. Calls issued together run at once (eryx_sandbox_run runs
 * their handlers on several threads).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shell_callback.h"

extern char **environ;

/* Output kept per stream of one command; beyond, the call fails. */
#define MAX_COMMAND_OUTPUT (16u << 20)

typedef struct buf {
    char *data;
    size_t len, cap;
    int overflow;
} buf;

static void buf_add(buf *b, const char *p, size_t n)
{
    if (b->len + n > MAX_COMMAND_OUTPUT) {
        b->overflow = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (!bigger) {
            b->overflow = 1;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* A command that exits without reading all its input must not kill the
 * eryx command with SIGPIPE: the write happens with SIGPIPE blocked on this
 * thread, and the signal it raised is taken back before unblocking (the
 * process-wide disposition, which children inherit, is left alone). */
static ssize_t write_no_sigpipe(int fd, const void *p, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, p, n);
    int saved = errno;
    /* Also after a partial write: the reader may go while we are blocked
     * in write, which then returns what it wrote and raises SIGPIPE. */
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

/* Feeds input to fds[0] while draining fds[1] (stdout) and fds[2] (stderr). */
static void pump(int in_fd, const char *input, size_t in_len, int out_fd, int err_fd, buf *out,
                 buf *err)
{
    struct pollfd p[3] = {{in_fd, POLLOUT, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    size_t sent = 0;
    if (in_len == 0) {
        close(in_fd);
        p[0].fd = -1;
    }
    while (p[0].fd >= 0 || p[1].fd >= 0 || p[2].fd >= 0) {
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].fd >= 0 && p[0].revents) {
            ssize_t n = write_no_sigpipe(in_fd, input + sent, in_len - sent);
            if (n > 0)
                sent += (size_t)n;
            if (n < 0 || sent == in_len) {
                close(in_fd);
                p[0].fd = -1;
            }
        }
        for (int i = 1; i < 3; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char chunk[8192];
            ssize_t n = read(p[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                buf_add(i == 1 ? out : err, chunk, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(p[i].fd);
                p[i].fd = -1;
            }
        }
    }
}

/* Spawns sh -c command with three pipes; returns the pid or -1. */
static pid_t spawn(const char *command, int *in, int *out, int *err)
{
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(pout, O_CLOEXEC) < 0) {
        close(pin[0]), close(pin[1]);
        return -1;
    }
    if (pipe2(perr, O_CLOEXEC) < 0) {
        close(pin[0]), close(pin[1]), close(pout[0]), close(pout[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]), close(pout[1]), close(perr[1]);
    if (rc != 0) {
        close(pin[1]), close(pout[0]), close(perr[0]);
        return -1;
    }
    *in = pin[1];
    *out = pout[0];
    *err = perr[0];
    return pid;
}

int eryx_cli_shell_run(const char *command, const char *args, char **result, size_t *len,
                       char *msg, size_t msglen)
{
    int in, out, err, status = -1, rc = -1;
    buf o = {0}, e = {0};
    *result = NULL;
    *len = 0;
    pid_t pid = spawn(command, &in, &out, &err);
    if (pid < 0) {
        snprintf(msg, msglen, "cannot start the command");
        return -1;
    }
    pump(in, args, strlen(args), out, err, &o, &e);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (o.overflow || e.overflow) {
        snprintf(msg, msglen, "the command wrote more than 16 MiB");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        *result = o.data ? o.data : strdup("");
        *len = o.len;
        o.data = NULL;
        rc = *result ? 0 : -1;
    } else if (e.len) {
        /* The message is the command's stderr without its last newline. */
        if (e.data[e.len - 1] == '\n')
            e.data[--e.len] = '\0';
        snprintf(msg, msglen, "%s", e.data);
    } else {
        snprintf(msg, msglen, "the command %s %d",
                 WIFEXITED(status) ? "exited with" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    free(o.data);
    free(e.data);
    return rc;
}

void eryx_cli_shell_callback(void *user_data, eryx_call *call)
{
    char *result, msg[4096];
    size_t len;
    if (eryx_cli_shell_run(user_data, eryx_call_args(call), &result, &len, msg, sizeof msg) == 0)
        eryx_call_reply(call, result, len);
    else
        eryx_call_fail(call, ERYX_CALL_FAILED, msg);
    free(result);
}
