/*
 * eryx — the command line, modelled on `python`:
 *   eryx -c CODE [arg...]     eryx FILE [arg...]     eryx -m MODULE [arg...]
 *   eryx - [arg...]           (or code piped on stdin)
 * Exit status: that of the Python code (0, 1 after an uncaught exception with
 * the traceback on stderr, SystemExit's code), 2 for a usage error or a file
 * that cannot be read, 70 when the sandbox trapped or failed inside, 71 when
 * it could not be created, 120 when its stdout could not be written. See
 * docs/cli.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "eryx.h"
#include "image_cmd.h"
#include "mcp.h"
#include "net_options.h"
#include "out_stream.h"
#include "remote.h"
#include "serve.h"
#include "repl.h"
#include "run_status.h"
#include "session_file.h"
#include "shell_callback.h"
#include "signals.h"
#include "size_arg.h"
#include "trace.h"

enum {
    EXIT_USAGE = 2,
    EXIT_SANDBOX = 70,      /* trapped, or the glue failed */
    EXIT_SETUP = 71,        /* the runtime or sandbox could not be created */
    EXIT_OUTPUT_LOST = 120, /* stdout could not be written (as python's) */
    EXIT_FUEL = 122,        /* --fuel used up */
    EXIT_OUTPUT_LIMIT = 123,/* the code succeeded but its output was cut */
    EXIT_TIMEOUT = 124,     /* --timeout */
    EXIT_MEMORY = 125,      /* an uncaught MemoryError: --max-memory */
    EXIT_INTERRUPTED = 130  /* Ctrl-C (SIGINT) */
};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ERYX_CLI_LEAK_AT_EXIT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||            \
    __has_feature(memory_sanitizer)
#define ERYX_CLI_LEAK_AT_EXIT 0
#endif
#endif
#ifndef ERYX_CLI_LEAK_AT_EXIT
#define ERYX_CLI_LEAK_AT_EXIT 1
#endif

#define MAX_MOUNTS 32
#define WASM32_MEMORY_MAX (4ull << 30) /* 65536 pages of 64 KiB */
#define MAX_CALLBACKS 64

typedef struct cli {
    eryx_run_mode mode;
    const char *code_arg;     /* -c CODE or -m MODULE */
    const char *file;         /* FILE, or "-" for stdin */
    char **args;              /* arguments after the code/file/module */
    int n_args;
    eryx_mount mounts[MAX_MOUNTS];
    size_t n_mounts;
    uint64_t max_memory;      /* 0: the library's default */
    uint64_t max_output;      /* 0: the library's default */
    uint64_t timeout_ms;      /* 0: the library's default */
    uint64_t fuel;            /* 0: unlimited */
    int timeout_set;
    int stats;
    int stdin_lazy;           /* the sandbox reads our stdin as it goes */
    const char *session;      /* --session FILE (a NAME with --remote) */
    const char *remote;       /* --remote URL */
    const char *token_file;   /* --token-file FILE (with --remote) */
    const char *remote_ca;    /* --remote-ca FILE */
    const char *remote_cert;  /* --remote-cert FILE (mTLS, with --remote-key) */
    const char *remote_key;   /* --remote-key FILE */
    const char *image;        /* --image FILE */
    eryx_callback callbacks[MAX_CALLBACKS];
    size_t n_callbacks;
    cli_net net;              /* --allow-net and friends */
    const char *trace_path;   /* --trace FILE, opened once the options are read */
    cli_trace trace;          /* --trace FILE */
    uint64_t trace_max;       /* --trace-max BYTES (0: no limit) */
    int trace_max_set;
    eryx_cli_mcp mcp;         /* `eryx mcp`, --mcp-server (cli/mcp.h) */
} cli;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eryx [option] ... [-c cmd | -m mod | file | -] [arg] ...\n"
            "Runs Python in a WebAssembly sandbox.\n\n"
            "  -c cmd          program passed in as string\n"
            "  -m mod          run library module as a script\n"
            "  file            program read from a host file\n"
            "  -               program read from stdin (default when stdin is not a terminal)\n"
            "  --timeout MS    stop the code after MS milliseconds (default 30000; 0 = none)\n"
            "  --max-output BYTES\n"
            "                  keep at most BYTES of stdout and stderr together\n"
            "                  (default 10M)\n"
            "  --fuel N        stop the code after N units of work (function calls,\n"
            "                  loop iterations of the interpreter and 16 bytes of each\n"
            "                  bulk memory copy; deterministic)\n"
            "  --stats         print the run's statistics as JSON on stderr\n"
            "  --session FILE  load the session saved in FILE (if it exists), run,\n"
            "                  and save the session back to FILE\n"
            "  --max-memory BYTES\n"
            "                  cap the sandbox's memory (suffixes k, M, G; default 128M;\n"
            "                  at most 4G, 0 = 4G)\n"
            "  --callback NAME=COMMAND\n"
            "                  offer `await NAME(**kw)` to the code: runs COMMAND with\n"
            "                  /bin/sh, the JSON arguments on its stdin, its stdout as\n"
            "                  the JSON result; repeatable\n"
            "  --callback-description NAME=TEXT\n"
            "                  describe callback NAME for list_callbacks()\n"
            "  --image FILE    start from the runtime image in FILE (eryx image build);\n"
            "                  default: an image cached in ~/.cache/eryx/images\n"
            "  --remote URL    run on an `eryx serve` at URL (ws://HOST:PORT or\n"
            "                  wss://HOST:PORT); --session then names a server session\n"
            "  --token-file FILE\n"
            "                  the bearer token for --remote\n"
            "  --remote-ca FILE\n"
            "                  trust the CA certificates in FILE for wss:// too\n"
            "  --remote-cert FILE, --remote-key FILE\n"
            "                  the client certificate (PEM, with its chain) and key\n"
            "                  for a wss:// server that wants one (mTLS)\n"
            "  --trace FILE    write the line events of the program's own code to FILE,\n"
            "                  one JSON object a line: file, line, function, time (s)\n"
            "  --trace-max BYTES\n"
            "                  stop the trace at BYTES (default 1G; 0 = no limit)\n"
            "  --mount HOST:GUEST[:rw]\n"
            "                  make host directory HOST visible at GUEST (read-only\n"
            "                  unless :rw); repeatable\n"
            "  -v, --volume HOST:GUEST[:ro]\n"
            "                  the same, writable unless :ro (the reference CLI's and\n"
            "                  Docker's spelling)\n"
            "%s"
            "  -V, --version   print the eryx and Python versions and exit\n"
            "  -h, --help      print this help and exit\n"
            "\nusage: eryx mcp [option] ...   serve MCP on stdin/stdout (docs/mcp.md)\n"
            "(the options below but --max-sessions and --http* work for a run too)\n%s"
            "\nusage: eryx serve [option] ... serve sandboxes over WebSocket (docs/serve.md;\n"
            "                               eryx serve --help)\n",
            cli_net_usage, eryx_cli_mcp_usage);
}

/* --mount HOST:GUEST[:ro|:rw], read-only unless :rw; --volume (-v), the
 * reference CLI's (and Docker's) spelling, writable unless :ro. */
static int parse_mount(cli *c, const char *opt, char *spec)
{
    int volume = strcmp(opt, "--mount") != 0;
    if (c->n_mounts == MAX_MOUNTS) {
        fprintf(stderr, "eryx: too many --mount and --volume options (at most %d)\n",
                MAX_MOUNTS);
        return -1;
    }
    eryx_mount *m = &c->mounts[c->n_mounts];
    char *guest = strchr(spec, ':');
    if (!guest || guest == spec || guest[1] != '/') {
        fprintf(stderr, "eryx: %s wants HOST:GUEST[:%s] with an absolute GUEST path\n", opt,
                volume ? "ro" : "rw");
        return -1;
    }
    *guest++ = '\0';
    m->writable = volume;
    char *flags = strchr(guest, ':');
    if (flags) {
        *flags++ = '\0';
        if (strcmp(flags, "rw") != 0 && strcmp(flags, "ro") != 0) {
            fprintf(stderr, "eryx: %s flag must be ro or rw, not '%s'\n", opt, flags);
            return -1;
        }
        m->writable = strcmp(flags, "rw") == 0;
    }
    m->host_path = spec;
    m->guest_path = guest;
    c->n_mounts++;
    return 0;
}

/* NAME=VALUE: splits spec in place; returns VALUE or NULL. */
static char *split_assignment(char *spec, const char *option)
{
    char *eq = strchr(spec, '=');
    if (!eq || eq == spec) {
        fprintf(stderr, "eryx: %s wants NAME=VALUE, not '%s'\n", option, spec);
        return NULL;
    }
    *eq = '\0';
    return eq + 1;
}

static eryx_callback *find_callback(cli *c, const char *name)
{
    for (size_t i = 0; i < c->n_callbacks; i++)
        if (strcmp(c->callbacks[i].name, name) == 0)
            return &c->callbacks[i];
    return NULL;
}

static int parse_callback(cli *c, char *spec)
{
    char *command = split_assignment(spec, "--callback");
    if (!command)
        return -1;
    eryx_callback *cb = find_callback(c, spec);
    if (!cb) {
        if (c->n_callbacks == MAX_CALLBACKS) {
            fprintf(stderr, "eryx: too many --callback options (at most %d)\n", MAX_CALLBACKS);
            return -1;
        }
        cb = &c->callbacks[c->n_callbacks++];
        cb->name = spec;
    }
    cb->handler = eryx_cli_shell_callback;
    cb->user_data = command;
    return 0;
}

static int parse_callback_description(cli *c, char *spec)
{
    char *text = split_assignment(spec, "--callback-description");
    if (!text)
        return -1;
    eryx_callback *cb = find_callback(c, spec);
    if (!cb) {
        fprintf(stderr, "eryx: --callback-description %s: no --callback %s before it\n", spec,
                spec);
        return -1;
    }
    cb->description = text;
    return 0;
}

/* The value of option argv[*i], or NULL after saying it is missing (a usage
 * error must say what was wrong, not just exit 2). */
static char *option_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "eryx: argument expected for the %s option\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* The value of option argv[*i] ("512M", "2G", "1048576": a whole number
 * with an optional binary suffix), which is `what` ("milliseconds", ...);
 * -1 after a message saying what was wanted. */
static int option_number(int argc, char **argv, int *i, const char *what, uint64_t *out)
{
    const char *opt = argv[*i];
    if (*i + 1 >= argc) {
        fprintf(stderr, "eryx: %s wants %s\n", opt, what);
        return -1;
    }
    const char *s = argv[++*i];
    /* Suffixes (k, M, G: binary) for sizes and counts; a time in ms takes
     * none (--timeout 1k was 1024 ms). */
    if (eryx_cli_parse_number(s, out, strcmp(opt, "--timeout") != 0) < 0) {
        fprintf(stderr, "eryx: %s wants %s, not '%s'\n", opt, what, s);
        return -1;
    }
    return 0;
}

/* Whether paths a and b are one file, existing or to be made: --trace's
 * file made first, at a --session path with no file yet, was taken for a
 * session file and left empty (every later run refused it). */
static int same_file(const char *a, const char *b)
{
    struct stat x, y;
    if (!a || !b)
        return 0;
    int ha = stat(a, &x) == 0, hb = stat(b, &y) == 0;
    if (ha && hb)
        return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
    if (ha || hb)
        return 0;
    char *fa = eryx_cli_file_final_name(a), *fb = eryx_cli_file_final_name(b);
    int same = fa && fb && strcmp(fa, fb) == 0;
    free(fa);
    free(fb);
    return same;
}

/* Opens --trace's file, which truncates it: once the options are read, so
 * that it is refused when it is one of the command's inputs (the program,
 * the session, the image), which the truncation would have destroyed
 * before they were read. */
static int open_trace(cli *c)
{
    if (c->remote) { /* refused later, after the truncation: its files too */
        fprintf(stderr, "eryx: --trace is an option of a local run, not of --remote\n");
        return -1;
    }
    const char *inputs[] = {c->file && strcmp(c->file, "-") != 0 ? c->file : NULL, c->session,
                            c->image};
    static const char *const what[] = {"the program", "the session file", "the image"};
    for (size_t k = 0; k < sizeof inputs / sizeof *inputs; k++)
        if (same_file(c->trace_path, inputs[k])) {
            fprintf(stderr, "eryx: --trace %s is %s: writing the trace would destroy it\n",
                    c->trace_path, what[k]);
            return -1;
        }
    /* stdin: the program (eryx < prog.py) or what the program reads. */
    struct stat in, tr;
    if (fstat(STDIN_FILENO, &in) == 0 && stat(c->trace_path, &tr) == 0 &&
        in.st_dev == tr.st_dev && in.st_ino == tr.st_ino) {
        fprintf(stderr, "eryx: --trace %s is this command's stdin: writing the trace would "
                        "destroy it\n", c->trace_path);
        return -1;
    }
    return cli_trace_open(&c->trace, c->trace_path);
}

/* Returns -1 to exit with EXIT_USAGE, 1 to exit 0 (help/version), 0 to run. */
static int parse_args(cli *c, int argc, char **argv)
{
    int i = 1, net, mcp_opt;
    for (; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "-m") == 0) {
            if (!(c->code_arg = option_value(argc, argv, &i)))
                return -1;
            c->mode = a[1] == 'm' ? ERYX_RUN_MODULE : ERYX_RUN_CODE;
            i++;
            break;
        } else if ((net = cli_net_option(&c->net, argc, argv, &i)) != 0) {
            if (net < 0)
                return -1;
        } else if (strcmp(a, "--callback") == 0) {
            char *v = option_value(argc, argv, &i);
            if (!v || parse_callback(c, v) < 0)
                return -1;
        } else if (strcmp(a, "--callback-description") == 0) {
            char *v = option_value(argc, argv, &i);
            if (!v || parse_callback_description(c, v) < 0)
                return -1;
        } else if (strcmp(a, "--max-output") == 0) {
            if (option_number(argc, argv, &i, "a size in bytes (64k, 10M)", &c->max_output) < 0)
                return -1;
            if (!c->max_output) { /* it meant the default; none would let memory grow */
                fprintf(stderr, "eryx: --max-output wants 1 byte or more (the host keeps "
                                "the output it lets through), not '%s'\n", argv[i]);
                return -1;
            }
        } else if (strcmp(a, "--timeout") == 0) {
            if (option_number(argc, argv, &i, "milliseconds (a whole number, 0: none)",
                              &c->timeout_ms) < 0)
                return -1;
            /* Counted in nanoseconds: a larger value wrapped round to a
             * limit of under a second. */
            if (c->timeout_ms > UINT64_MAX / 1000000u) {
                fprintf(stderr, "eryx: --timeout must be at most %llu ms (0: none), not '%s'\n",
                        (unsigned long long)(UINT64_MAX / 1000000u), argv[i]);
                return -1;
            }
            c->timeout_set = 1;
        } else if (strcmp(a, "--session") == 0) {
            if (!(c->session = option_value(argc, argv, &i)))
                return -1;
        } else if (strcmp(a, "--remote") == 0 || strcmp(a, "--token-file") == 0 ||
                   strcmp(a, "--remote-ca") == 0 || strcmp(a, "--remote-cert") == 0 ||
                   strcmp(a, "--remote-key") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "eryx: %s wants a value\n", a);
                return -1;
            }
            const char **dst = strcmp(a, "--remote") == 0        ? &c->remote
                               : strcmp(a, "--token-file") == 0  ? &c->token_file
                               : strcmp(a, "--remote-ca") == 0   ? &c->remote_ca
                               : strcmp(a, "--remote-cert") == 0 ? &c->remote_cert
                                                                 : &c->remote_key;
            *dst = argv[++i];
        } else if (strcmp(a, "--image") == 0) {
            if (!(c->image = option_value(argc, argv, &i)))
                return -1;
        } else if (strcmp(a, "--fuel") == 0) {
            if (option_number(argc, argv, &i, "a whole number of units (suffixes k, M, G)",
                              &c->fuel) < 0)
                return -1;
        } else if (strcmp(a, "--trace") == 0) {
            char *v = option_value(argc, argv, &i);
            if (v && c->trace_path)
                fprintf(stderr, "eryx: --trace is given twice\n");
            if (!v || c->trace_path)
                return -1;
            c->trace_path = v;
        } else if (strcmp(a, "--trace-max") == 0) {
            if (option_number(argc, argv, &i, "a size in bytes (100M, 2G; 0: no limit)",
                              &c->trace_max) < 0)
                return -1;
            c->trace_max_set = 1;
        } else if (strcmp(a, "--stats") == 0) {
            c->stats = 1;
        } else if (strcmp(a, "--max-memory") == 0) {
            if (option_number(argc, argv, &i, "a size in bytes (256M, 1G; 0: 4G, the most)",
                              &c->max_memory) < 0)
                return -1;
            if (c->max_memory > WASM32_MEMORY_MAX) {
                fprintf(stderr, "eryx: --max-memory is at most 4G (the most a wasm32 memory "
                                "can be), not '%s'\n", argv[i]);
                return -1;
            }
            if (c->max_memory && c->max_memory < (32u << 20)) { /* src/api/config.c's floor */
                fprintf(stderr, "eryx: --max-memory is at least 32M (the interpreter needs "
                                "that much to start), not '%s'\n", argv[i]);
                return -1;
            }
            c->max_memory = c->max_memory ? c->max_memory : ERYX_NO_LIMIT;
        } else if (strcmp(a, "--mount") == 0 || strcmp(a, "--volume") == 0 ||
                   strcmp(a, "-v") == 0) {
            char *v = option_value(argc, argv, &i);
            if (!v || parse_mount(c, a, v) < 0)
                return -1;
        } else if ((mcp_opt = eryx_cli_mcp_option(&c->mcp, argc, argv, &i)) != 0) {
            if (mcp_opt < 0)
                return -1;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("eryx %s (Python 3.13.5, wasm32-wasip1 via wasm2c)\n", eryx_version());
            return 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--") == 0) {
            i++;
            if (i < argc)
                c->file = argv[i++];
            break;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "eryx: unknown option %s\n", a);
            usage(stderr);
            return -1;
        } else {
            c->file = argv[i++];
            break;
        }
    }
    c->args = argv + i;
    c->n_args = argc - i;
    if (c->trace_path && open_trace(c) < 0)
        return -1;
    if (c->trace_max_set) {
        if (!c->trace.f) {
            fprintf(stderr, "eryx: --trace-max is an option of --trace\n");
            return -1;
        }
        c->trace.max = c->trace_max ? c->trace_max : UINT64_MAX;
    }
    return cli_net_check(&c->net);
}

/* Reads all of f into a malloc'd buffer; NULL with errno EFBIG once it is
 * over max bytes (a program larger than the sandbox's memory cannot run:
 * it is not read whole first). */
static char *read_all(FILE *f, size_t *len, size_t max)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t want = cap - n;
        if (max < SIZE_MAX && want > max + 1 - n)
            want = max + 1 - n; /* one byte past max says it is over */
        n += fread(buf + n, 1, want, f);
        if (n > max) {
            free(buf);
            errno = EFBIG;
            return NULL;
        }
        if (n < cap)
            break;
        char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            return NULL;
        }
        buf = bigger;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* The largest program worth reading: the sandbox's memory must hold it
 * (--max-memory, else the default). */
static size_t program_max(const cli *c)
{
    eryx_sandbox_config d;
    eryx_sandbox_config_default(&d);
    uint64_t m = c->max_memory ? c->max_memory : d.max_memory;
    m = m < WASM32_MEMORY_MAX ? m : WASM32_MEMORY_MAX;
    return m < SIZE_MAX ? (size_t)m : SIZE_MAX;
}

/* Each of the guest's writes goes out at once, also when stdout is a pipe
 * (stdio would hold it in a block buffer): output streams, as documented,
 * and stays in the order the guest wrote it in when both streams go to one
 * place. A write is already a chunk the guest chose to flush. */
/* The first error writing the program's stdout (a full disk, a closed
 * descriptor), or 0. The program cannot be told (its output is a stream
 * the host takes), so the exit status says it: the output is lost. */
static int stdout_errno;

/* Set once the program was interrupted because its stdout's reader went
 * away (EPIPE): that reader never comes back, and a program that writes
 * forever (`eryx -c 'while True: print(1)' | head`) would otherwise run
 * to its time limit. python's next print raises BrokenPipeError there;
 * this program gets the KeyboardInterrupt of eryx_sandbox_interrupt. */
static int stdout_gone;

/* ud: the eryx_sandbox * of the run (the output is the program's). */
static void stream_output(void *ud, int fd, const char *data, size_t len)
{
    eryx_sandbox *const *sb = ud;
    FILE *f = fd == 2 ? stderr : stdout;
    errno = 0;
    int failed = fwrite(data, 1, len, f) != len;
    failed |= fflush(f) != 0;
    if (!failed || f != stdout || stdout_errno)
        return;
    stdout_errno = errno ? errno : EIO;
    if (stdout_errno == EPIPE && *sb)
        stdout_gone = eryx_sandbox_interrupt(*sb) == ERYX_OK;
}

/* status, unless the program's stdout was lost: then said on stderr, and
 * EXIT_OUTPUT_LOST where status would have said success. */
static int check_stdout(int status)
{
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && !stdout_errno)
        stdout_errno = errno ? errno : EIO;
    uint64_t dropped = eryx_cli_out_dropped(STDOUT_FILENO);
    if (stdout_errno)
        fprintf(stderr, "eryx: cannot write the program's output: %s\n", strerror(stdout_errno));
    else if (dropped)
        fprintf(stderr, "eryx: %llu bytes of the program's output were dropped: its reader "
                        "did not take them before the run was stopped\n",
                (unsigned long long)dropped);
    else
        return status;
    return status ? status : EXIT_OUTPUT_LOST;
}

/* When the run is due to stop (its time limit passed: 0 = none, in
 * CLOCK_MONOTONIC ms), set just before it starts. */
static _Atomic uint64_t run_deadline_ms;

/* Whether a write that waits on a stalled reader of our stdout or stderr
 * gives up (out_stream.h): once the run's time limit has passed or Ctrl-C
 * has interrupted it. Until then the run waits for its reader, as
 * python's writes do; after, a run held in a write would never see its
 * stop (the write is host code, which neither the limit's exception nor
 * its hard stop reaches). */
static int run_stopping(void)
{
    uint64_t deadline = atomic_load(&run_deadline_ms);
    return eryx_cli_signals_interrupts() != 0 || (deadline && eryx_cli_now_ms() >= deadline);
}

/* Our stdout and stderr become out_stream.h's, giving up on a stalled
 * reader once stop_due says. */
static void bind_output(int (*stop_due)(void))
{
    if (eryx_cli_out_bound(stop_due) < 0)
        fprintf(stderr, "eryx: warning: a reader that stalls stdout or stderr can hold eryx "
                        "past the run's time limit (no stream of its own: %s)\n",
                strerror(errno));
}

/* Builds sys.argv as python does: ['-c', args...], [FILE, args...],
 * [module, args...] (runpy sets argv[0] to the module's path). */
static const char **build_argv(const cli *c, const char *argv0)
{
    const char **argv = calloc((size_t)c->n_args + 2, sizeof *argv);
    if (!argv)
        return NULL;
    argv[0] = argv0;
    for (int i = 0; i < c->n_args; i++)
        argv[i + 1] = c->args[i];
    return argv;
}

/* A limit for --stats: its number, or null for none. */
static const char *limit_json(uint64_t v, uint64_t unit, char *buf, size_t cap)
{
    if (v == ERYX_NO_LIMIT)
        return "null";
    snprintf(buf, cap, "%llu", (unsigned long long)(v / unit));
    return buf;
}

static void print_stats(int rc, const eryx_result *r, const eryx_sandbox_config *cfg)
{
    char mem[24], out[24], time[24];
    const char *stop = eryx_cli_stop_name(r), *q = stop ? "\"" : "";
    fprintf(stderr,
            "{\"status\": \"%s\", \"exit_code\": %d, \"duration_ms\": %.3f, "
            "\"memory_bytes\": %llu, \"memory_limit\": %s, \"stdout_bytes\": %zu, "
            "\"stderr_bytes\": %zu, \"output_limit\": %s, \"output_truncated\": %s, "
            "\"callbacks\": %u, \"callback_limit\": %u, \"timeout_ms\": %s, "
            "\"hard_stopped\": %s, \"stopped\": %s%s%s, \"fuel_used\": %llu, \"fuel_limit\": %llu}\n",
            eryx_cli_status_name(rc), r ? r->exit_code : 1, r ? r->duration_ns / 1e6 : 0.0,
            (unsigned long long)(r ? r->memory_bytes : 0),
            limit_json(cfg->max_memory, 1, mem, sizeof mem), r ? r->out_len : 0,
            r ? r->err_len : 0, limit_json(cfg->max_output, 1, out, sizeof out),
            r && (r->out_truncated || r->err_truncated) ? "true" : "false",
            r ? r->n_callbacks : 0, cfg->max_callbacks,
            limit_json(cfg->timeout_ns, 1000000u, time, sizeof time),
            r && r->hard_stopped ? "true" : "false",
            q, stop ? stop : "null", q,
            (unsigned long long)(r ? r->fuel_used : 0), (unsigned long long)cfg->fuel);
}

static int report(int rc, eryx_sandbox *sb, eryx_result *res)
{
    if (res && (res->out_truncated || res->err_truncated))
        fprintf(stderr, "eryx: output truncated at the --max-output limit\n");
    if (rc == ERYX_FUEL) {
        fflush(stdout);
        fprintf(stderr, "eryx: %s\n", eryx_errmsg(sb));
        return EXIT_FUEL;
    }
    if (rc == ERYX_INTERRUPTED && stdout_gone)
        return EXIT_OUTPUT_LOST; /* check_stdout says why, once the session is saved */
    if (rc == ERYX_TIMEOUT || rc == ERYX_INTERRUPTED) {
        fflush(stdout);
        fprintf(stderr, "eryx: %s\n", eryx_errmsg(sb));
        return rc == ERYX_TIMEOUT ? EXIT_TIMEOUT : EXIT_INTERRUPTED;
    }
    if (rc == ERYX_PYTHON_EXCEPTION && res->traceback) {
        fflush(stdout);
        fwrite(res->traceback, 1, res->traceback_len, stderr);
        if (res->stop_cause != ERYX_TIMEOUT)
            return res->exc_type && strcmp(res->exc_type, "MemoryError") == 0 ? EXIT_MEMORY : 1;
    }
    if ((rc == ERYX_OK || rc == ERYX_PYTHON_EXCEPTION) && res->stop_cause == ERYX_TIMEOUT) {
        /* The code caught the KeyboardInterrupt and ended on its own: the
         * limit passed all the same, and says so, as GNU timeout exits 124
         * for a command that handled its SIGTERM (it exited 0 until
         * 2026-12-07: untrusted code could hide its timeout). A Ctrl-C the
         * code caught ends as the code chose, as at Python's. */
        fflush(stdout);
        fprintf(stderr, "eryx: %s\n", ERYX_CLI_CAUGHT_TIMEOUT);
        return EXIT_TIMEOUT;
    }
    if (rc == ERYX_NOMEM && !res) {
        /* The run request (the program) found no room in the sandbox's
         * memory: as the MemoryError of a program that fits but whose
         * reading runs out (src/core/exec.c, glue_out_of_memory). */
        fprintf(stderr, "eryx: %s (--max-memory)\n",
                eryx_errmsg(sb)[0] ? eryx_errmsg(sb) : eryx_errstr(rc));
        return EXIT_MEMORY;
    }
    if (rc == ERYX_OK)
        return res->exit_code == 0 && (res->out_truncated || res->err_truncated)
                   ? EXIT_OUTPUT_LIMIT
                   : res->exit_code;
    fflush(stdout);
    fprintf(stderr, "eryx: %s\n", eryx_errmsg(sb)[0] ? eryx_errmsg(sb) : eryx_errstr(rc));
    if (res && res->traceback)
        fwrite(res->traceback, 1, res->traceback_len, stderr);
    return EXIT_SANDBOX;
}

/* eryx_run_options.stdin_read on our stdin: waits 50 ms at most at a time,
 * so that the time limit and Ctrl-C act while the program waits for
 * input. */
static long read_stdin(void *ud, void *buf, size_t cap)
{
    (void)ud;
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    int r = poll(&p, 1, 50);
    long n = r > 0 ? (long)read(STDIN_FILENO, buf, cap) : -1;
    if (n < 0 && (r == 0 || errno == EINTR || errno == EAGAIN))
        errno = EAGAIN;
    return n;
}

/* Saves the session after the run, unless the run left the interpreter in
 * an unknown state (trapped, stopped hard, os._exit), then undoes the
 * links the code put in the path and says when the path no longer leads
 * to the session's directory. */
static int save_session(const cli *c, session_file *s, const char *given, eryx_sandbox *sb,
                        int status)
{
    char msg[512];
    int dead = eryx_sandbox_is_dead(sb), failed = 0;
    if (!dead) {
        eryx_cli_signals_saving(1);
        failed = eryx_cli_session_write(sb, s, msg, sizeof msg) < 0;
        eryx_cli_signals_saving(0);
    }
    if (dead) {
        fprintf(stderr, "eryx: the session is not saved: %s\n", eryx_errmsg(sb));
        status = status ? status : EXIT_SANDBOX;
    } else if (failed) {
        fprintf(stderr, "eryx: the session is not saved to %s: %s\n", s->path, msg);
        status = status ? status : EXIT_SETUP;
    }
    eryx_cli_session_drop_code_links(s, c->mounts, c->n_mounts);
    if (!eryx_cli_session_same(s, given))
        fprintf(stderr, "eryx: warning: --session %s no longer leads to the directory the "
                        "session was for (a directory of the path was moved or replaced "
                        "during the run: the code can, in a writable mount); check the path "
                        "before using it again\n", given);
    return status;
}

static int run(const cli *c, const char *code, size_t len, const char *filename,
               const char *argv0)
{
    eryx_runtime *rt = NULL;
    eryx_sandbox *sb = NULL;
    eryx_result *res = NULL;
    const char **argv = build_argv(c, argv0);
    int status = EXIT_SETUP, refused_config = 0;
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    /* A program's run: its output must not hold it past its stop. Before
     * the threads that write start (the signal thread, MCP clients'). */
    if (code && !c->mcp.serve)
        bind_output(run_stopping);
    session_file sf = SESSION_FILE_INIT;
    if (c->session && eryx_cli_session_open(c->session, &sf) < 0) {
        fprintf(stderr, "eryx: --session %s: %s\n", c->session, strerror(errno));
        status = EXIT_USAGE;
        goto done;
    }
    const char *session = sf.path; /* NULL without --session */
    /* Before the MCP servers and the runtime's threads start: they must
     * block the signals the signal thread takes. `eryx mcp` too: its
     * --mcp-server servers outlived it. It has no sandbox for SIGINT to
     * interrupt (its sessions' runs have their own limits), so SIGINT
     * ends it as SIGTERM does. */
    if (eryx_cli_signals_start(1) < 0)
        fprintf(stderr, "eryx: warning: no thread for signals: SIGTERM would leave the "
                        "--callback commands and MCP servers running\n");
    /* The image given, or the default one cached on disk: loading it takes
     * a few ms, booting CPython ~35 (image_cmd.c, docs/cli.md). */
    int rc = argv ? eryx_cli_runtime(c->image, &rt) : ERYX_NOMEM;
    if (rc == ERYX_OK) {
        cfg.mounts = c->mounts;
        cfg.n_mounts = c->n_mounts;
        cfg.on_output = stream_output;
        cfg.output_user_data = &sb;
        if (c->max_memory)
            cfg.max_memory = c->max_memory;
        if (c->max_output)
            cfg.max_output = c->max_output;
        if (c->timeout_set)
            cfg.timeout_ns = c->timeout_ms ? c->timeout_ms * 1000000u : ERYX_NO_LIMIT;
        cfg.fuel = c->fuel;
        cfg.callbacks = c->callbacks;
        cfg.n_callbacks = c->n_callbacks;
        cli_net_apply(&c->net, &cfg);
        cli_trace_apply(&c->trace, &cfg);
        if (eryx_cli_mcp_connect(&c->mcp, &cfg) < 0)
            goto done;
        if (c->mcp.serve) {
            status = eryx_cli_mcp_serve(&c->mcp, rt, &cfg);
            goto done;
        }
        /* A reader of stdout or stderr that goes away (`| head`) must not
         * kill the process before the session is saved: a write then fails
         * with EPIPE, which stream_output and check_stdout report. The
         * commands the CLI starts get the default back (shell_callback.c,
         * mcp_client.c). `eryx mcp` keeps SIGPIPE off its own way
         * (jsonrpc.c). */
        signal(SIGPIPE, SIG_IGN);
        if (session && access(session, F_OK) == 0) {
            rc = eryx_sandbox_load(rt, &cfg, session, &sb);
            /* Files of the session that did not come back (a mount the
             * command line no longer gives): */
            if (rc == ERYX_OK && eryx_errmsg(sb)[0])
                fprintf(stderr, "eryx: warning: %s: %s\n", session, eryx_errmsg(sb));
        } else {
            /* A new sandbox's configuration comes from the command line
             * alone, so what the library refuses in it (a callback name, a
             * network rule) was a usage error. A load can also refuse its
             * session file, which is not. */
            rc = eryx_sandbox_new(rt, &cfg, &sb);
            refused_config = rc == ERYX_INVALID;
        }
    }
    if (rc != ERYX_OK) {
        fprintf(stderr, "eryx: %s\n", eryx_errmsg(NULL)[0] ? eryx_errmsg(NULL) : eryx_errstr(rc));
        if (refused_config)
            status = EXIT_USAGE;
        goto done;
    }
    eryx_run_options opts;
    eryx_run_options_default(&opts);
    opts.mode = c->mode;
    opts.filename = filename;
    opts.argv = argv;
    if (c->stdin_lazy)
        opts.stdin_read = read_stdin;
    /* Ctrl-C interrupts the sandbox (gracefully, then hard after the
     * grace period) instead of killing the process. */
    eryx_cli_signals_sandbox(sb);
    if (!code) {
        /* A person decides when to stop (Ctrl-C), unless --timeout says:
         * then it limits each entry. */
        uint64_t per_entry = c->timeout_set && c->timeout_ms ? c->timeout_ms * 1000000u
                                                             : ERYX_NO_LIMIT;
        status = eryx_cli_repl(sb, per_entry, session == NULL);
        goto save;
    }
    if (cfg.timeout_ns && cfg.timeout_ns != ERYX_NO_LIMIT)
        atomic_store(&run_deadline_ms, eryx_cli_now_ms() + (cfg.timeout_ns + 999999u) / 1000000u);
    rc = eryx_sandbox_run_ex(sb, code, len, &opts, &res);
    status = report(rc, sb, res);
    if (c->stats)
        print_stats(rc, res, &cfg);
save:
    if (session)
        status = save_session(c, &sf, c->session, sb, status);
done:
    fflush(stdout);
    eryx_result_free(res);
    /* The process ends now: freeing the sandbox would first put its memory
     * back to the image for reuse (~2 ms of a 10 ms `eryx -c pass`), which
     * the exit does not need. Sanitizer builds free everything, so that
     * their leak checks see the real thing. */
    eryx_cli_signals_sandbox(NULL); /* a SIGINT now must not interrupt it as it is freed */
    if (!ERYX_CLI_LEAK_AT_EXIT || !sb || !rt) {
        eryx_sandbox_free(sb);
        eryx_runtime_free(rt);
    }
    eryx_cli_mcp_disconnect();
    eryx_cli_session_close(&sf);
    free(argv);
    return status;
}

/* --remote: the options that make sense there, sent to the server. */
static int run_remote(const cli *c, const char *code, size_t len)
{
    if (c->n_mounts || c->image || c->mode != ERYX_RUN_CODE || c->n_args || c->fuel ||
        c->max_memory || c->max_output || c->net.n_allow || eryx_cli_mcp_wants_servers(&c->mcp) ||
        c->trace.f || c->stats) {
        fprintf(stderr, "eryx: --remote runs -c CODE, FILE or stdin with --session, --timeout "
                        "and --callback; the server sets the other limits (and program "
                        "arguments, --stats and the local options are refused)\n");
        return EXIT_USAGE;
    }
    if (!c->remote_cert != !c->remote_key) {
        fprintf(stderr, "eryx: --remote-cert and --remote-key go together\n");
        return EXIT_USAGE;
    }
    bind_output(eryx_cli_remote_stopping);
    /* SIGINT is remote.c's (it cancels the run); SIGTERM and SIGHUP kill
     * the --callback commands' groups and end eryx. */
    if (eryx_cli_signals_start(0) < 0)
        fprintf(stderr, "eryx: warning: no thread for signals: SIGTERM would leave the "
                        "--callback commands running\n");
    remote_opts o = {.url = c->remote, .token_file = c->token_file, .ca_file = c->remote_ca,
                     .cert_file = c->remote_cert, .key_file = c->remote_key,
                     .session = c->session, .timeout_ms = c->timeout_set ? c->timeout_ms : 0,
                     .callbacks = c->callbacks, .n_callbacks = c->n_callbacks,
                     .stdin_stream = c->stdin_lazy};
    int status = eryx_cli_remote(&o, code, len);
    if (!stdout_errno)
        stdout_errno = eryx_cli_remote_stdout_errno(); /* for check_stdout */
    return status;
}

static int cli_main(cli *c, int argc, char **argv)
{
    /* A subcommand (a script named "image" runs as `eryx ./image`). */
    if (argc >= 2 && strcmp(argv[1], "image") == 0)
        return eryx_cli_image(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return eryx_cli_serve(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "mcp-proxy") == 0)
        return eryx_cli_mcp_proxy(argc - 1, argv + 1);
    int serve_mcp = argc > 1 && strcmp(argv[1], "mcp") == 0; /* `eryx mcp [option]...` */
    int p = parse_args(c, argc - serve_mcp, argv + serve_mcp);
    if (p != 0)
        return p < 0 ? EXIT_USAGE : 0;
    if (!c->remote && (c->token_file || c->remote_ca || c->remote_cert || c->remote_key)) {
        fprintf(stderr, "eryx: --token-file, --remote-ca, --remote-cert and --remote-key "
                        "are options of --remote\n");
        return EXIT_USAGE;
    }
    if (!serve_mcp && (c->mcp.http || c->mcp.http_token_file || c->mcp.http_tls_cert ||
                       c->mcp.http_tls_key || c->mcp.max_sessions)) {
        fprintf(stderr, "eryx: --http, its --http-* options and --max-sessions are options "
                        "of `eryx mcp`\n");
        return EXIT_USAGE;
    }
    if (serve_mcp) {
        if (c->code_arg || c->file || c->session) {
            fprintf(stderr, "eryx mcp: takes no program and no --session (code and sessions "
                            "come from the client)\n");
            return EXIT_USAGE;
        }
        c->mcp.serve = 1;
        return run(c, NULL, 0, "<mcp>", "");
    }

    char *code = NULL;
    size_t len = 0;
    const char *filename = "<string>", *argv0 = "-c";
    int from_stdin = !c->code_arg && (!c->file || strcmp(c->file, "-") == 0);
    if (c->code_arg) {
        code = strdup(c->code_arg);
        len = strlen(c->code_arg);
        argv0 = c->mode == ERYX_RUN_MODULE ? c->code_arg : "-c";
    } else if (from_stdin) {
        if (!c->file && isatty(STDIN_FILENO)) {
            if (c->remote) {
                fprintf(stderr, "eryx: --remote has no prompt: give -c CODE, FILE or stdin\n");
                return EXIT_USAGE;
            }
            return run(c, NULL, 0, "<stdin>", ""); /* the prompt */
        }
        code = read_all(stdin, &len, program_max(c));
        filename = "<stdin>";
        argv0 = c->file ? "-" : "";
    } else {
        FILE *f = fopen(c->file, "rb");
        code = f ? read_all(f, &len, program_max(c)) : NULL;
        if (!code && errno == EFBIG) {
            fprintf(stderr, "eryx: '%s' is larger than the sandbox's memory (%zu bytes, "
                            "--max-memory)\n", c->file, program_max(c));
            if (f)
                fclose(f);
            return EXIT_USAGE;
        }
        if (!code) {
            fprintf(stderr, "eryx: can't open file '%s': %s\n", c->file, strerror(errno));
            if (f)
                fclose(f);
            return EXIT_USAGE;
        }
        fclose(f);
        filename = argv0 = c->file;
    }
    if (!code && errno == EFBIG) {
        fprintf(stderr, "eryx: the program on stdin is larger than the sandbox's memory "
                        "(%zu bytes, --max-memory)\n", program_max(c));
        return EXIT_USAGE;
    }
    if (!code) {
        fprintf(stderr, "eryx: cannot read the program: %s\n", strerror(errno));
        return EXIT_SETUP;
    }
    /* The sandbox's stdin is ours when the program did not come from it,
     * read as the program reads it, as python does: a parent that leaves
     * our stdin open (Node's spawn does by default) must not hang a program
     * that never reads it, and a terminal is read line by line. --remote
     * too: the server asks for it as the program reads (docs/serve.md). */
    c->stdin_lazy = !from_stdin;
    int status = c->remote ? run_remote(c, code, len) : run(c, code, len, filename, argv0);
    status = check_stdout(status);
    if (cli_trace_close(&c->trace) < 0 && status == 0)
        status = EXIT_SETUP;
    free(code);
    return status;
}

int main(int argc, char **argv)
{
    cli c = {0};
    int status = cli_main(&c, argc, argv);
    (void)cli_trace_close(&c.trace); /* open still after a usage error */
    cli_net_free(&c.net);
    return status;
}
