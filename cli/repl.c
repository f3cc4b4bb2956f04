/*
 * The interactive prompt of `eryx` (no program, a terminal on stdin): each
 * statement or block runs in one session, so names persist from one to the
 * next; expression values are printed as by Python's own prompt. Lines are
 * read with libedit (history in ~/.eryx_history). Ctrl-C interrupts a
 * running statement; Ctrl-D leaves, and so does SystemExit (exit(),
 * sys.exit(n)) or os._exit(n), with its status.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repl.h"
#include "signals.h"

/* libedit is opened when the prompt starts, not linked: with libtinfo,
 * libbsd and libmd it cost every `eryx -c ...` the dynamic loader's time
 * (docs/cli.md, "Start-up"). Without it the prompt reads plain lines. */
static struct {
    char *(*readline)(const char *);
    int (*add_history)(const char *);
    int (*read_history)(const char *);
    int (*write_history)(const char *);
} ed;

static void open_libedit(void)
{
    void *h = dlopen(ERYX_LIBEDIT_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    *(void **)&ed.readline = dlsym(h, "readline");
    *(void **)&ed.add_history = dlsym(h, "add_history");
    *(void **)&ed.read_history = dlsym(h, "read_history");
    *(void **)&ed.write_history = dlsym(h, "write_history");
    if (!ed.readline || !ed.add_history || !ed.read_history || !ed.write_history)
        memset(&ed, 0, sizeof ed);
}

/* A line without libedit (malloc'd, no newline), NULL at EOF. */
static char *plain_readline(const char *prompt)
{
    fputs(prompt, stdout);
    fflush(stdout);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = '\0';
    return line;
}

/* Whether src needs more lines: an open bracket or triple-quoted string, a
 * trailing backslash, or a compound statement (a line ending with ':')
 * still waiting for the empty line that closes it. A heuristic in the
 * spirit of codeop, good for what people type at a prompt. */
static int needs_more(const char *src, int last_line_empty)
{
    int depth = 0, in_str = 0, triple = 0;
    char quote = 0;
    for (const char *p = src; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) {
                p++;
            } else if (*p == quote && (!triple || (p[1] == quote && p[2] == quote))) {
                in_str = 0;
                p += triple ? 2 : 0;
            } else if (*p == '\n' && !triple) {
                in_str = 0; /* an unterminated string: Python reports it */
            }
        } else if (*p == '#') {
            while (p[1] && p[1] != '\n')
                p++;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            triple = p[1] == quote && p[2] == quote;
            in_str = 1;
            p += triple ? 2 : 0;
        } else if (*p == '(' || *p == '[' || *p == '{') {
            depth++;
        } else if (*p == ')' || *p == ']' || *p == '}') {
            depth--;
        }
    }
    if (in_str || depth > 0)
        return 1;
    size_t n = strlen(src);
    while (n && (src[n - 1] == '\n' || src[n - 1] == ' ' || src[n - 1] == '\t'))
        n--;
    if (n && (src[n - 1] == ':' || src[n - 1] == '\\'))
        return 1;
    /* A compound statement (its first line ends with ':', or a decorator)
     * ends with an empty line. */
    const char *first_end = strchr(src, '\n');
    size_t first = first_end ? (size_t)(first_end - src) : strlen(src);
    while (first && (src[first - 1] == ' ' || src[first - 1] == '\t'))
        first--;
    int compound = src[strspn(src, " \t")] == '@' || (first && src[first - 1] == ':');
    return compound && !last_line_empty;
}

static char *history_path(void)
{
    const char *home = getenv("HOME");
    if (!home)
        return NULL;
    size_t n = strlen(home) + 32;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/.eryx_history", home);
    return p;
}

static void append(char **buf, size_t *len, const char *line)
{
    size_t n = strlen(line);
    char *bigger = realloc(*buf, *len + n + 2);
    if (!bigger)
        return;
    *buf = bigger;
    memcpy(*buf + *len, line, n);
    *len += n;
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = '\0';
}

/* Runs one entry. Returns -1 to go on, or the status the prompt ends
 * with: SystemExit (exit(), sys.exit(n)) and os._exit(n) end it with
 * their status, as they end Python's prompt. */
static int run_block(eryx_sandbox *sb, const char *src, size_t len, uint64_t timeout_ns)
{
    eryx_run_options o;
    eryx_run_options_default(&o);
    o.mode = ERYX_RUN_INTERACTIVE;
    o.filename = "<stdin>";
    o.timeout_ns = timeout_ns;
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run_ex(sb, src, len, &o, &r);
    /* As a process's status: sys.exit(-1) is 255 (it was -1, "go on"). */
    int end = rc == ERYX_OK && r->exited ? r->exit_code & 0xff : -1;
    fflush(stdout);
    if (rc == ERYX_PYTHON_EXCEPTION || rc == ERYX_INTERRUPTED) {
        if (r && r->traceback)
            fwrite(r->traceback, 1, r->traceback_len, stderr);
    } else if (rc != ERYX_OK) {
        fprintf(stderr, "eryx: %s\n", eryx_errmsg(sb));
    }
    eryx_result_free(r);
    return end;
}

/* After an entry stopped hard (the sandbox dead): without a session file
 * a fresh interpreter goes on, as a person at a prompt expects; with one,
 * the prompt ends (70) and the file keeps what it held, rather than be
 * saved over with a fresh interpreter's state. Whether to go on. */
static int survive_death(eryx_sandbox *sb, int fresh_after_death)
{
    if (fresh_after_death && eryx_sandbox_reset(sb) == ERYX_OK) {
        fprintf(stderr, "eryx: the interpreter was stopped hard and is gone; a fresh one goes "
                        "on (the names defined so far are lost)\n");
        return 1;
    }
    fprintf(stderr, "eryx: the session is dead: %s\n", eryx_errmsg(sb));
    return 0;
}

int eryx_cli_repl(eryx_sandbox *sb, uint64_t timeout_ns, int fresh_after_death)
{
    int end = -1;
    eryx_cli_signals_keep_terminal(STDIN_FILENO); /* before libedit makes it raw */
    open_libedit();
    char *hist = ed.readline ? history_path() : NULL;
    if (hist)
        ed.read_history(hist);
    printf("eryx %s: Python 3.13 in a sandbox. Ctrl-D leaves.\n", eryx_version());
    char *buf = NULL;
    size_t len = 0;
    for (;;) {
        const char *prompt = len ? "... " : ">>> ";
        char *line = ed.readline ? ed.readline(prompt) : plain_readline(prompt);
        if (!line) {
            putchar('\n');
            break;
        }
        if (*line && ed.add_history)
            ed.add_history(line);
        append(&buf, &len, line);
        int empty = *line == '\0';
        free(line);
        if (len && needs_more(buf, empty))
            continue;
        if (buf && strspn(buf, " \t\n") < len)
            end = run_block(sb, buf, len, timeout_ns);
        if (end >= 0)
            break;
        if (eryx_sandbox_is_dead(sb) && !survive_death(sb, fresh_after_death))
            break;
        len = 0;
    }
    free(buf);
    if (hist)
        ed.write_history(hist);
    free(hist);
    if (end >= 0)
        return end;
    return eryx_sandbox_is_dead(sb) ? 70 : 0;
}
