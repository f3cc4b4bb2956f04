/*
 * `eryx serve`: options, listeners, one thread per connection, HTTP
 * routing and authentication (docs/serve.md).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "image_cmd.h"
#include "listen.h"
#include "serve.h"
#include "size_arg.h"

#define REQUEST_HEAD_TIMEOUT_MS 10000
/* What sessions may hold in this process without --redis (compressed):
 * 2 GiB, some hundreds of sessions, in place of growing without bound. */
#define DEFAULT_STORE_MAX_BYTES (2ull << 30)

static void usage(FILE *f)
{
    fputs("usage: eryx serve [--listen HOST:PORT] [--redis redis://HOST:PORT | --redis-file FILE]\n"
          "                  [--token-file FILE]\n"
          "                  [--no-auth] [--pool N] [--metrics HOST:PORT]\n"
          "                  [--journal-key-file FILE] [--journal-ttl SECONDS]\n"
          "                  [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]\n"
          "                  [--timeout MS] [--fuel N] [--max-memory BYTES] [--max-output BYTES]\n"
          "                  [--max-callbacks N] [--max-connections N] [--max-per-client N]\n"
          "                  [--max-message BYTES] [--cache N] [--image FILE] [--quiet]\n"
          "                  [--store-max-bytes BYTES]\n"
          "                  [--allow-net RULE]... [--deny-net RULE]... [--resolve H:P:ADDR]...\n"
          "                  [--ca-file PEM]... [--secret NAME@HOST,...]... [--max-net-bytes B]\n"
          "Serves sandboxes over WebSocket (docs/serve.md). The limit flags are the\n"
          "maximums a request may ask for. The network flags are eryx's (docs/networking.md)\n"
          "and apply to every sandbox; --max-connections counts clients here.\n",
          f);
}

static void defaults(serve_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->listen = "127.0.0.1:7878";
    c->pool = 8;
    c->cache = 32;
    c->max_connections = 256;
    c->max_per_client = 32;
    c->max_message = 16u << 20;
    c->max_timeout_ms = 30000;
    c->max_memory = 256u << 20;
    c->max_output = 10u << 20;
    c->max_callbacks = 1000;
    c->callback_timeout_ms = 60000;
    c->journal_ttl_ms = 24ull * 3600 * 1000;
    c->lock_ttl_ms = 15000;
    c->lock_wait_ms = 10000;
}

/* Options taking a number: name, where, its width. Suffixes k, M, G as
 * the main command takes them (size_arg.h): until 2026-12-07 `serve`
 * refused `--max-memory 64M`. */
static int number_option(serve_cfg *c, const char *name, const char *val)
{
    struct { const char *name; void *p; int width; uint64_t scale; } t[] = {
        {"--pool", &c->pool, 32, 1},
        {"--cache", &c->cache, 32, 1},
        {"--max-connections", &c->max_connections, 32, 1},
        {"--max-per-client", &c->max_per_client, 32, 1},
        {"--max-message", &c->max_message, 64, 1},
        {"--timeout", &c->max_timeout_ms, 64, 1},
        {"--fuel", &c->max_fuel, 64, 1},
        {"--max-memory", &c->max_memory, 64, 1},
        {"--max-output", &c->max_output, 64, 1},
        {"--max-callbacks", &c->max_callbacks, 32, 1},
        {"--journal-ttl", &c->journal_ttl_ms, 64, 1000},
        {"--store-max-bytes", &c->store_max_bytes, 64, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(name, t[i].name) != 0)
            continue;
        uint64_t v;
        if (eryx_cli_parse_size(val, &v) < 0 || v == 0 || (t[i].width == 32 && v > UINT32_MAX) ||
            v > UINT64_MAX / t[i].scale) {
            fprintf(stderr, "eryx serve: %s wants a positive number (suffixes k, M, G), not '%s'\n", name, val);
            return -1;
        }
        if (t[i].width == 32)
            *(uint32_t *)t[i].p = (uint32_t)v;
        else
            *(uint64_t *)t[i].p = v * t[i].scale;
        return 1;
    }
    return 0;
}

/* An option serve does not know. The reference's `eryx serve` is its
 * stdio MCP server, which agents' configurations start with its options:
 * they get a pointer to `eryx mcp` rather than a WebSocket service. */
static int unknown_option(const char *a, int has_value)
{
    static const char *const mcp_only[] = {"--mcp", "--mcp-config", "-v", "--volume"};
    int mcp = 0;
    for (size_t k = 0; k < sizeof mcp_only / sizeof *mcp_only; k++)
        mcp |= strcmp(a, mcp_only[k]) == 0;
    fprintf(stderr, "eryx serve: unknown option%s: %s%s\n",
            has_value || mcp ? "" : " or missing value", a,
            mcp ? " (eryx serve is the WebSocket service; the reference's `eryx serve`, an MCP "
                  "server on stdio, is `eryx mcp` here: docs/mcp.md)"
                : "");
    return -1;
}

/* --redis-file: the URL from the file's first line, so that its password
 * is not on the command line, which every user of the machine can read
 * (`ps`). Into out (cap bytes); -1 after a message. */
static int read_redis_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "eryx serve: cannot read the --redis-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = fgets(out, (int)cap, f) != NULL;
    int too_long = ok && !strchr(out, '\n') && fgetc(f) != EOF;
    fclose(f);
    if (ok)
        out[strcspn(out, "\r\n")] = '\0';
    if (!ok || too_long || strncmp(out, "redis://", 8) != 0) {
        fprintf(stderr, "eryx serve: the first line of --redis-file %s must be a redis:// URL "
                        "shorter than %zu bytes\n", path, cap - 1);
        return -1;
    }
    return 0;
}

static int parse_options(serve_cfg *c, int argc, char **argv)
{
    struct { const char *name; const char **p; } strs[] = {
        {"--listen", &c->listen}, {"--redis", &c->redis}, {"--redis-file", &c->redis_file},
        {"--token-file", &c->token_file},
        {"--metrics", &c->metrics}, {"--journal-key-file", &c->journal_key_file},
        {"--tls-cert", &c->tls_cert}, {"--tls-key", &c->tls_key},
        {"--tls-client-ca", &c->tls_client_ca}, {"--image", &c->image},
    };
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--no-auth") == 0) {
            c->no_auth = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            c->quiet = 1;
            continue;
        }
        /* The network's options, but --max-connections is the server's own
         * (clients): a sandbox keeps the network's default. */
        int net = strcmp(a, "--max-connections") ? cli_net_option(&c->net, argc, argv, &i) : 0;
        if (net < 0)
            return -1;
        if (net > 0)
            continue;
        if (i + 1 >= argc)
            return unknown_option(a, 0);
        int found = 0;
        for (size_t k = 0; k < sizeof strs / sizeof strs[0] && !found; k++)
            if (strcmp(a, strs[k].name) == 0) {
                *strs[k].p = argv[++i];
                found = 1;
            }
        if (!found) {
            int r = number_option(c, a, argv[i + 1]);
            if (r < 0)
                return -1;
            if (r == 0)
                return unknown_option(a, 1);
            i++;
        }
    }
    if (!c->tls_cert != !c->tls_key) {
        fprintf(stderr, "eryx serve: --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (c->tls_client_ca && !c->tls_cert) {
        fprintf(stderr, "eryx serve: --tls-client-ca needs --tls-cert and --tls-key\n");
        return -1;
    }
    if (c->redis_file) {
        static char url[1024];
        if (c->redis) {
            fprintf(stderr, "eryx serve: give --redis or --redis-file, not both\n");
            return -1;
        }
        if (read_redis_file(c->redis_file, url, sizeof url) < 0)
            return -1;
        c->redis = url;
    }
    if (c->store_max_bytes && c->redis) {
        fprintf(stderr, "eryx serve: --store-max-bytes bounds the sessions kept in this process; "
                        "with --redis, Redis's maxmemory bounds them\n");
        return -1;
    }
    if (c->max_message < SERVE_MIN_MESSAGE) {
        fprintf(stderr, "eryx serve: --max-message is at least %u bytes\n", SERVE_MIN_MESSAGE);
        return -1;
    }
    return cli_net_check(&c->net);
}

/* ---- listening ---------------------------------------------------------- */

/* ---- connections ---------------------------------------------------------- */

typedef struct conn_arg {
    server *sv;
    int fd;
    int ticket;                    /* the gate's */
    int metrics_only;
    char peer[64];
} conn_arg;

/* The --metrics port has a gate of its own, and its scrapes are not the
 * service's connections: sharing --max-connections, /metrics answered 503
 * exactly when the service was full (an audit's finding), and each scrape
 * counted in eryx_connections. */
#define METRICS_MAX_CONNECTIONS 16
#define METRICS_MAX_PER_CLIENT 8

static cli_gate *gate_of(server *sv, const conn_arg *a)
{
    return a->metrics_only ? &sv->metrics_gate : &sv->gate;
}

/* Counts a connection from a->peer on a->fd into a->ticket; 0 if it is
 * over a limit. */
static int admit(server *sv, conn_arg *a)
{
    a->ticket = cli_gate_enter(gate_of(sv, a), a->peer, a->fd);
    if (a->ticket < 0)
        return 0;
    if (!a->metrics_only)
        atomic_fetch_add(&sv->m.connections, 1);
    return 1;
}

/* Before the connection's fd is closed (the gate may shut it down). */
static void leave(server *sv, const conn_arg *a)
{
    cli_gate_leave(gate_of(sv, a), a->ticket);
    if (!a->metrics_only)
        atomic_fetch_sub(&sv->m.connections, 1);
}

/* "Bearer TOKEN" matches the server's token (constant time). The scheme
 * is case-insensitive and followed by one or more spaces (RFC 9110 11.1,
 * 11.4): `bearer TOKEN` was refused until 2026-12-07. */
static int authorized(server *sv, const char *header)
{
    if (sv->cfg.no_auth)
        return 1;
    if (strncasecmp(header, "Bearer ", 7) != 0)
        return 0;
    const char *t = header + 7 + strspn(header + 7, " ");
    size_t n = strlen(t);
    return n == sv->token_len && crypto_equal(t, sv->token, n);
}

static void route(server *sv, ws_conn *c, const http_req *req, const conn_arg *a)
{
    const char *peer = a->peer;
    int metrics = a->metrics_only;
    if (metrics) {
        char *text = strcmp(req->path, "/metrics") == 0 ? metrics_text(sv) : NULL;
        if (text)
            ws_conn_http_answer(c, 200, "OK", "text/plain; version=0.0.4", text);
        else
            ws_conn_http_answer(c, 404, "Not Found", "text/plain", "try /metrics\n");
        free(text);
        return;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        ws_conn_http_answer(c, 200, "OK", "text/plain", "ok\n");
        return;
    }
    if (strcmp(req->path, "/v1/ws") != 0) {
        ws_conn_http_answer(c, 404, "Not Found", "text/plain", "the WebSocket is at /v1/ws\n");
        return;
    }
    /* Without a token, a web page the operator visits could open the
     * WebSocket (browsers send no Authorization on it, but connect to
     * loopback, also by a rebound DNS name): as `eryx mcp --http`, such a
     * server serves only a loopback Host and no Origin but a loopback one. */
    if (sv->cfg.no_auth && (!http_host_is_loopback(req->host) ||
                            (req->has_origin && !http_origin_is_loopback(req->origin)))) {
        atomic_fetch_add(&sv->m.errors_total, 1);
        ws_conn_http_answer(c, 403, "Forbidden", "application/json",
                            "{\"error\":\"forbidden\",\"message\":\"without a token only a "
                            "loopback Host and Origin are served\"}");
        serve_log(sv, "forbidden", json_pack("{ss}", "client", peer));
        return;
    }
    if (!authorized(sv, req->authorization)) {
        atomic_fetch_add(&sv->m.errors_total, 1);
        ws_conn_http_answer(c, 401, "Unauthorized", "application/json",
                            "{\"error\":\"unauthorized\",\"message\":\"a valid bearer token is required\"}");
        serve_log(sv, "unauthorized", json_pack("{ss}", "client", peer));
        return;
    }
    cli_gate_proven(&sv->gate, a->ticket);
    char limits[64];
    snprintf(limits, sizeof limits, WS_MAX_TIMEOUT_HEADER ": %llu\r\n",
             (unsigned long long)sv->cfg.max_timeout_ms);
    if (ws_conn_accept(c, req, limits) == 0)
        serve_client(sv, c, peer);
}

static void *connection_main(void *arg)
{
    conn_arg *a = arg;
    server *sv = a->sv;
    /* The connection gets a duplicate; the gate's a->fd stays open until
     * the gate lets go of it, so that it never shuts down the number after
     * another connection took it (ws_conn_new closes what it is given when
     * it fails). */
    int own = dup(a->fd);
    ws_conn *c = own < 0 ? NULL
                         : ws_conn_new(own, a->metrics_only ? NULL : sv->tls, 0, NULL,
                                       sv->cfg.max_message);
    http_req req;
    if (c && ws_conn_read_request(c, &req, REQUEST_HEAD_TIMEOUT_MS) > 0)
        route(sv, c, &req, a);
    ws_conn_free(c);
    leave(sv, a);
    close(a->fd);
    free(a);
    return NULL;
}

static void refuse_busy(int fd)
{
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nContent-Length: 72\r\nConnection: close\r\n\r\n"
        "{\"error\":\"busy\",\"message\":\"too many connections; try again shortly\"}\n ";
    ssize_t r = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)r;
    close(fd);
}

static void accept_loop(server *sv, int lfd, int metrics_only)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0) {
            if (atomic_load(&sv->stopping))
                return; /* the listener was shut down to stop accepting */
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
                usleep(100000); /* out of descriptors: let connections end */
                continue;
            }
            fprintf(stderr, "eryx serve: accept: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_arg *a = calloc(1, sizeof *a);
        if (a) {
            cli_peer_name(&ss, a->peer, sizeof a->peer);
            a->sv = sv;
            a->fd = fd;
            a->metrics_only = metrics_only;
        }
        if (!metrics_only)
            atomic_fetch_add(&sv->m.connections_total, 1);
        if (!a || !admit(sv, a)) {
            if (!metrics_only)
                atomic_fetch_add(&sv->m.connections_refused, 1);
            free(a);
            refuse_busy(fd);
            continue;
        }
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 1u << 20);
        if (pthread_create(&t, &attr, connection_main, a) != 0) {
            leave(sv, a);
            free(a);
            refuse_busy(fd);
        }
        pthread_attr_destroy(&attr);
    }
}

typedef struct metrics_arg { server *sv; int fd; } metrics_arg;

static void *metrics_main(void *arg)
{
    metrics_arg *m = arg;
    accept_loop(m->sv, m->fd, 1);
    return NULL;
}

/* ---- set-up ----------------------------------------------------------------- */

static int set_up_security(server *sv, int loopback)
{
    serve_cfg *c = &sv->cfg;
    if (c->token_file) {
        if (cli_read_secret("eryx serve", c->token_file, sv->token, sizeof sv->token, &sv->token_len, "token") < 0)
            return -1;
        c->no_auth = 0;
    } else if (!c->no_auth) {
        fprintf(stderr, "eryx serve: give --token-file FILE (or --no-auth, on loopback only)\n"
                        "(eryx serve is the WebSocket service, docs/serve.md; the MCP server "
                        "on stdin/stdout is `eryx mcp`)\n");
        return -1;
    } else if (!loopback) {
        fprintf(stderr, "eryx serve: --no-auth is refused unless listening on loopback\n");
        return -1;
    }
    if (c->journal_key_file) {
        char key[sizeof sv->journal_key + 2];
        size_t n;
        if (cli_read_secret("eryx serve", c->journal_key_file, key, sizeof key, &n, "journal key") < 0)
            return -1;
        memcpy(sv->journal_key, key, n);
        sv->journal_key_len = n;
    } else {
        if (getrandom(sv->journal_key, 32, 0) != 32)
            return -1;
        sv->journal_key_len = 32;
    }
    if (c->tls_cert) {
        char err[256];
        sv->tls = tls_server_ctx(c->tls_cert, c->tls_key, c->tls_client_ca, err, sizeof err);
        if (!sv->tls) {
            fprintf(stderr, "eryx serve: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int set_up_sandboxes(server *sv)
{
    serve_cfg *c = &sv->cfg;
    int rc = eryx_cli_runtime(c->image, &sv->rt);
    if (rc != ERYX_OK) {
        fprintf(stderr, "eryx serve: cannot make the runtime: %s\n", eryx_errmsg(NULL));
        return -1;
    }
    eryx_sandbox_config_default(&sv->sbcfg);
    sv->sbcfg.max_memory = c->max_memory;
    sv->sbcfg.max_output = c->max_output;
    sv->sbcfg.max_callbacks = c->max_callbacks;
    sv->sbcfg.callback_timeout_ns = c->callback_timeout_ms * 1000000ull;
    sv->sbcfg.timeout_ns = c->max_timeout_ms * 1000000ull;
    /* A session's lock is refreshed between steps of its execution, and a
     * step runs the code until it waits, up to --timeout: a lock that
     * expired in a long step let another request run on the session at
     * the same time (and the first one's work was lost at its save). */
    c->lock_ttl_ms += c->max_timeout_ms;
    sv->sbcfg.on_output = serve_output;
    cli_net_apply(&c->net, &sv->sbcfg);
    eryx_pool_config pc;
    eryx_pool_config_default(&pc);
    pc.sandbox = &sv->sbcfg;
    pc.max_size = c->pool;
    pc.min_idle = c->pool < 2 ? c->pool : 2;
    if (eryx_pool_new(sv->rt, &pc, &sv->pool) != ERYX_OK) {
        fprintf(stderr, "eryx serve: cannot make the pool: %s\n", eryx_errmsg(NULL));
        return -1;
    }
    return 0;
}

/* url without the user and password of its authority, into out: the
 * password of redis:// u:p@h/n is not the log's to keep. NULL for NULL. */
static const char *without_password(const char *url, char *out, size_t size)
{
    if (!url)
        return NULL;
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (!at || (slash && slash < at))
        snprintf(out, size, "%s", url);
    else
        snprintf(out, size, "%.*s***%s", (int)(host - url), url, at);
    return out;
}

/* How long a stop waits for the connections to end: executions are
 * interrupted at once, so this is mostly their sessions' saving and
 * unlocking; well within the time process managers leave between
 * SIGTERM and SIGKILL (systemd 90 s, Kubernetes 30 s). */
#define STOP_GRACE_MS 5000

typedef struct stop_arg {
    server *sv;
    int lfd;
    sigset_t set;
} stop_arg;

/* The thread that takes SIGTERM and SIGINT (blocked in all the others):
 * until 2026-12-07 SIGTERM killed the server at once, with no close
 * frame, and a running session's lock stayed 15 s + --timeout, so the
 * other replicas answered `locked` meanwhile. */
static void *stop_main(void *arg)
{
    stop_arg *a = arg;
    int sig = 0;
    sigwait(&a->set, &sig);
    atomic_store(&a->sv->stopping, 1);
    serve_log(a->sv, "stopping", json_pack("{ss si}", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
                                          "connections", atomic_load(&a->sv->m.connections)));
    shutdown(a->lfd, SHUT_RDWR); /* accept returns: no new connections */
    if (a->sv->st)
        store_stop_waits(a->sv->st); /* a lock's wait (10 s) outlasted the grace */
    serve_stop_clients(a->sv);
    return NULL;
}

/* After a stop: waits for the connections to end, then exits without
 * the process's teardown, which a connection still in its HTTP head (or
 * stuck past the grace) would race. */
static void finish_stop(server *sv)
{
    for (int waited = 0; waited < STOP_GRACE_MS && atomic_load(&sv->m.connections) > 0;
         waited += 20)
        usleep(20000);
    serve_log(sv, "stopped", json_pack("{si}", "connections", atomic_load(&sv->m.connections)));
    fflush(stdout);
    fflush(stderr);
    _exit(0);
}

/* Blocks SIGTERM and SIGINT in this thread, and so in all it starts; one
 * thread takes them (stop_main). */
static int start_stop_thread(server *sv, int lfd)
{
    static stop_arg a;
    a.sv = sv;
    a.lfd = lfd;
    sigemptyset(&a.set);
    sigaddset(&a.set, SIGTERM);
    sigaddset(&a.set, SIGINT);
    pthread_t t;
    if (pthread_sigmask(SIG_BLOCK, &a.set, NULL) != 0 ||
        pthread_create(&t, NULL, stop_main, &a) != 0)
        return -1;
    pthread_detach(t);
    return 0;
}

int eryx_cli_serve(int argc, char **argv)
{
    static server sv; /* lives as long as the process: threads never join */
    defaults(&sv.cfg);
    if (parse_options(&sv.cfg, argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&sv.lock, NULL);
    pthread_mutex_init(&sv.clients_mu, NULL);
    serve_slots_init(&sv);
    cli_gate_init(&sv.gate, sv.cfg.max_connections, sv.cfg.max_per_client);
    cli_gate_init(&sv.metrics_gate, METRICS_MAX_CONNECTIONS, METRICS_MAX_PER_CLIENT);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(sv.replica, sizeof sv.replica, "%.40s:%d", host, (int)getpid());
    int loopback = 0;
    int lfd = cli_listen("eryx serve", sv.cfg.listen, &loopback);
    if (lfd < 0 || set_up_security(&sv, loopback) < 0)
        return 2;
    /* Before any other thread: they inherit the blocked signals. */
    if (start_stop_thread(&sv, lfd) < 0) {
        fprintf(stderr, "eryx serve: cannot start the signal thread\n");
        return 1;
    }
    char err[256];
    char mem_url[64];
    snprintf(mem_url, sizeof mem_url, "memory://?max_bytes=%llu",
             sv.cfg.store_max_bytes ? (unsigned long long)sv.cfg.store_max_bytes
                                    : DEFAULT_STORE_MAX_BYTES);
    if (store_open(sv.cfg.redis ? sv.cfg.redis : mem_url, &sv.st, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "eryx serve: session store: %s\n", err);
        return 2;
    }
    if (set_up_sandboxes(&sv) < 0)
        return 1;
    if (sv.cfg.metrics) {
        static metrics_arg ma;
        pthread_t t;
        ma.sv = &sv;
        ma.fd = cli_listen("eryx serve", sv.cfg.metrics, NULL);
        if (ma.fd < 0 || pthread_create(&t, NULL, metrics_main, &ma) != 0)
            return 2;
        pthread_detach(t);
    }
    /* The port actually bound (a test may ask for port 0). */
    int port = (int)cli_listen_port(lfd);
    char redis[512];
    serve_log(&sv, "listening",
              json_pack("{ss si ss ss* sb sb}", "listen", sv.cfg.listen, "port", port, "replica",
                        sv.replica, "redis", without_password(sv.cfg.redis, redis, sizeof redis),
                        "tls", sv.tls != NULL, "auth", !sv.cfg.no_auth));
    accept_loop(&sv, lfd, 0);
    if (atomic_load(&sv.stopping))
        finish_stop(&sv);
    return 1;
}
