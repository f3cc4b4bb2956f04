/*
 * `--mcp` and `--mcp-config PATH`: the MCP servers that agents' and
 * editors' configuration files name (docs/mcp.md, "Servers from agents'
 * configurations"), so that code in the sandbox can use the tools a
 * user's agent already has without naming each server again.
 *
 * A file is JSON (VS Code's and Zed's may hold comments and trailing
 * commas: both are blanked before parsing) with its servers in an object
 * under one key. A stdio server is {"command", "args", "env"} (Zed's
 * older form: "command": {"path", "args", "env"}); a remote one is {"url"
 * (or "serverUrl", "httpUrl"), "headers"}, typed "http" (Streamable
 * HTTP), "sse" (the older HTTP+SSE) or untyped (either), and is started
 * as `eryx mcp-proxy URL --transport ... --header ...` (mcp_proxy.c), so
 * that the client speaks stdio to every server. An entry of another
 * transport ("ws"), or with "disabled": true or "enabled": false, is
 * passed over without a word. $VAR, ${VAR} and ${VAR:-default} in the command,
 * the arguments, the environment's values, the url and the headers take
 * our environment's values, as Claude Code expands them. A server's name
 * that is no Python identifier is made one as a tool's is (`my-server` ->
 * mcp.my_server).
 *
 * The files are read user-wide first, then this directory's, so a
 * project's server replaces the user's of the same name; a --mcp-server
 * is never replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mcp.h"
#include "mcp_internal.h"

#define MAX_CONFIG_BYTES (64u << 20) /* ~/.claude.json also keeps histories */
#define NOT_REGULAR (-1)             /* read_file: a FIFO, a device, ... */

/* Where --mcp looks, in order. key: the object of servers; "projects" is
 * ~/.claude.json's per-directory servers (Claude Code's "local" scope,
 * which wins over the others, so it comes last). */
static const struct {
    int in_home;
    const char *path, *key;
} sources[] = {
    {1, ".claude.json", "mcpServers"},
    {1, ".cursor/mcp.json", "mcpServers"},
    {1, ".codeium/windsurf/mcp_config.json", "mcpServers"},
    {1, ".config/zed/settings.json", "context_servers"},
    {1, ".gemini/settings.json", "mcpServers"},
    {0, ".mcp.json", "mcpServers"},
    {0, ".cursor/mcp.json", "mcpServers"},
    {0, ".vscode/mcp.json", "servers"},
    {0, ".zed/settings.json", "context_servers"},
    {0, ".gemini/settings.json", "mcpServers"},
    {1, ".claude.json", "projects"},
};

/* The keys a --mcp-config file's servers may be under, tried in order. */
static const char *const any_key[] = {"mcpServers", "servers", "context_servers"};

/* ---- JSON with comments ---- */

void eryx_cli_jsonc_blank(char *s, size_t n)
{
    size_t i = 0, comma = SIZE_MAX; /* a comma no value has followed yet */
    while (i < n) {
        char ch = s[i];
        if (ch == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            i++;
            comma = SIZE_MAX;
        } else if (ch == '/' && i + 1 < n && s[i + 1] == '/') {
            while (i < n && s[i] != '\n')
                s[i++] = ' ';
        } else if (ch == '/' && i + 1 < n && s[i + 1] == '*') {
            s[i] = s[i + 1] = ' ';
            for (i += 2; i < n && !(s[i] == '*' && i + 1 < n && s[i + 1] == '/'); i++)
                if (s[i] != '\n') /* jansson's line numbers stay true */
                    s[i] = ' ';
            if (i < n) {
                s[i] = s[i + 1] = ' ';
                i += 2;
            }
        } else {
            if (ch == ',')
                comma = i;
            else if ((ch == '}' || ch == ']') && comma != SIZE_MAX)
                s[comma] = ' ';
            if (ch != ',' && ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
                comma = SIZE_MAX;
            i++;
        }
    }
}

/* ---- $VAR ---- */

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static int put(text *t, const char *s, size_t n)
{
    if (t->cap - t->len <= n) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap - t->len <= n) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *p = realloc(t->p, cap);
        if (!p)
            return -1;
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return 0;
}

/* The value of the n-byte name at s in our environment, or NULL. */
static const char *env_value(const char *s, size_t n)
{
    char name[256];
    if (n >= sizeof name)
        return NULL;
    memcpy(name, s, n);
    name[n] = '\0';
    return getenv(name);
}

char *eryx_cli_expand_env(const char *s)
{
    text t = {0};
    if (put(&t, "", 0) < 0)
        return NULL;
    while (*s) {
        const char *dollar = strchr(s, '$');
        size_t lit = dollar ? (size_t)(dollar - s) : strlen(s);
        if (put(&t, s, lit) < 0)
            goto oom;
        if (!dollar)
            break;
        s = dollar + 1;
        const char *name = s + (*s == '{'), *end = name, *value = NULL;
        while (name_char(*end, end == name))
            end++;
        size_t n = (size_t)(end - name);
        const char *next = NULL;
        if (n && *s != '{') { /* $VAR */
            value = env_value(name, n);
            next = end;
        } else if (n && *end == '}') { /* ${VAR} */
            value = env_value(name, n);
            next = end + 1;
        } else if (n && end[0] == ':' && end[1] == '-' && strchr(end, '}')) {
            const char *dflt = end + 2, *close = strchr(dflt, '}'); /* ${VAR:-default} */
            value = env_value(name, n);
            next = close + 1;
            if (!value || !*value) {
                if (put(&t, dflt, (size_t)(close - dflt)) < 0)
                    goto oom;
                value = NULL;
            }
        }
        if (!next) { /* no name after it: a '$' of its own */
            if (put(&t, "$", 1) < 0)
                goto oom;
            continue;
        }
        if (value && put(&t, value, strlen(value)) < 0)
            goto oom;
        s = next;
    }
    return t.p;
oom:
    free(t.p);
    return NULL;
}

/* ---- servers ---- */

void eryx_cli_mcp_spec_clear(eryx_cli_mcp_spec *s)
{
    for (char **p = s->argv; p && *p; p++)
        free(*p);
    for (char **p = s->env; p && *p; p++)
        free(*p);
    free(s->argv);
    free(s->env);
    free(s->name);
    free(s->origin);
    memset(s, 0, sizeof *s);
}

/* A server entry's members: a stdio server's command, args and env, or a
 * remote one's url, headers and transport (command NULL). */
typedef struct entry_parts {
    json_t *command, *args, *env, *url, *headers;
    const char *transport;    /* mcp-proxy's --transport: http, sse or auto */
} entry_parts;

static int is_type(json_t *type, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(json_string_value(type), *names) == 0)
            return 1;
    return 0;
}

/* Why a remote entry's url or headers cannot be used, or NULL. */
static const char *remote_parts(entry_parts *e)
{
    const char *url = json_string_value(e->url);
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return "its url is not http:// or https://";
    if (e->headers && !json_is_object(e->headers))
        return "its headers are not an object";
    const char *k;
    json_t *v;
    json_object_foreach(e->headers, k, v)
        if (!json_is_string(v) || !*k || strpbrk(k, ": \t\r\n"))
            return "its headers are not names and strings";
    return NULL;
}

/* Why entry cannot be used, or NULL when it is a stdio server or a
 * remote one (reached with `eryx mcp-proxy`): *e holds its members. *skip
 * is set for an entry passed over without a word (disabled, or of a
 * transport eryx does not speak: WebSocket). */
static const char *server_entry(json_t *entry, int *skip, entry_parts *e)
{
    static const char *const stdio[] = {"stdio", NULL};
    static const char *const http[] = {"http", "streamable-http", "streamableHttp", NULL};
    static const char *const sse[] = {"sse", NULL};
    *skip = 0;
    if (!json_is_object(entry))
        return "not an object";
    json_t *type = json_object_get(entry, "type");
    if (json_is_true(json_object_get(entry, "disabled")) ||
        json_is_false(json_object_get(entry, "enabled")) ||
        (type && !(json_is_string(type) &&
                   (is_type(type, stdio) || is_type(type, http) || is_type(type, sse))))) {
        *skip = 1;
        return "";
    }
    e->command = json_object_get(entry, "command");
    e->args = json_object_get(entry, "args");
    e->env = json_object_get(entry, "env");
    if (json_is_object(e->command)) { /* Zed's older form */
        json_t *zed = e->command;
        e->command = json_object_get(zed, "path");
        e->args = json_object_get(zed, "args");
        e->env = json_object_get(zed, "env");
    }
    /* Claude, VS Code, Cursor: url; Windsurf: serverUrl; Gemini: httpUrl
     * (Streamable HTTP) or url (the older HTTP+SSE). Untyped, either
     * transport is meant: the proxy tries both, as MCP tells clients. */
    e->url = json_object_get(entry, "httpUrl");
    e->transport = e->url ? "http" : "auto";
    if (!e->url)
        e->url = json_object_get(entry, "url");
    if (!e->url)
        e->url = json_object_get(entry, "serverUrl");
    if (type && !is_type(type, stdio))
        e->transport = is_type(type, sse) ? "sse" : "http";
    if ((type && !is_type(type, stdio)) || (!type && !e->command && e->url)) {
        e->command = NULL;
        e->headers = json_object_get(entry, "headers");
        return remote_parts(e);
    }
    if (!json_is_string(e->command) || json_string_length(e->command) == 0)
        return "no command";
    size_t i;
    json_t *v;
    if (e->args && !json_is_array(e->args))
        return "its args are not a list";
    json_array_foreach(e->args, i, v)
        if (!json_is_string(v))
            return "its args are not all strings";
    if (e->env && !json_is_object(e->env))
        return "its env is not an object";
    const char *k;
    json_object_foreach(e->env, k, v)
        if (!json_is_string(v) || !*k || strchr(k, '='))
            return "its env is not names and strings";
    return NULL;
}

/* This program's path: a remote server's proxy is `eryx mcp-proxy`. */
static const char *self_path(void)
{
    static char path[4096];
    if (!path[0]) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        path[n > 0 ? n : 0] = '\0';
    }
    return path[0] ? path : NULL;
}

/* "NAME=VALUE" or "NAME: VALUE" of k and v ($VAR expanded), malloc'd. */
static char *pair(const char *k, const char *sep, const char *v)
{
    char *value = eryx_cli_expand_env(v);
    size_t len = value ? strlen(k) + strlen(sep) + strlen(value) + 1 : 0;
    char *kv = value ? malloc(len) : NULL;
    if (kv)
        snprintf(kv, len, "%s%s%s", k, sep, value);
    free(value);
    return kv;
}

/* A remote server's argv: `eryx mcp-proxy URL --transport T --header
 * 'K: V'...`. 0, -1 when out of memory, 1 with *why when it cannot be
 * started. */
static int remote_argv(eryx_cli_mcp_spec *spec, const entry_parts *e, const char **why)
{
    size_t n = json_object_size(e->headers), i = 0;
    const char *self = self_path(), *k;
    json_t *v;
    if (!self) {
        *why = "the eryx binary's path is unknown (/proc/self/exe)";
        return 1;
    }
    if (!(spec->argv = calloc(5 + 2 * n + 1, sizeof *spec->argv)) ||
        !(spec->argv[i++] = strdup(self)) || !(spec->argv[i++] = strdup("mcp-proxy")) ||
        !(spec->argv[i++] = eryx_cli_expand_env(json_string_value(e->url))) ||
        !(spec->argv[i++] = strdup("--transport")) || !(spec->argv[i++] = strdup(e->transport)))
        return -1;
    json_object_foreach(e->headers, k, v) {
        if (!(spec->argv[i++] = strdup("--header")) ||
            !(spec->argv[i] = pair(k, ": ", json_string_value(v))))
            return -1;
        if (strpbrk(spec->argv[i++], "\r\n")) {
            *why = "a header's value has a line break";
            return 1;
        }
    }
    return 0;
}

/* Fills spec from a server's members (already checked). 0, -1 when out of
 * memory, 1 with *why when it cannot be started. */
static int make_spec(eryx_cli_mcp_spec *spec, const char *name, const char *origin,
                     const entry_parts *e, const char **why)
{
    size_t n_args = json_array_size(e->args), n_env = json_object_size(e->env), i;
    spec->name = eryx_cli_py_name(name);
    spec->origin = strdup(origin);
    spec->env = calloc(n_env + 1, sizeof *spec->env);
    if (!spec->name || !spec->origin || !spec->env)
        return -1;
    if (!e->command) {
        int rc = remote_argv(spec, e, why);
        spec->command = spec->argv ? spec->argv[0] : NULL;
        return rc;
    }
    if (!(spec->argv = calloc(n_args + 2, sizeof *spec->argv)) ||
        !(spec->argv[0] = eryx_cli_expand_env(json_string_value(e->command))))
        return -1;
    spec->command = spec->argv[0];
    json_t *v;
    json_array_foreach(e->args, i, v)
        if (!(spec->argv[i + 1] = eryx_cli_expand_env(json_string_value(v))))
            return -1;
    const char *k;
    i = 0;
    json_object_foreach(e->env, k, v)
        if (!(spec->env[i++] = pair(k, "=", json_string_value(v))))
            return -1;
    return 0;
}

/* Adds (or puts in place of one of the same name) the servers of the
 * object servers. -1 when out of memory. */
static int add_servers(eryx_cli_mcp_specs *l, json_t *servers, const char *origin)
{
    const char *name;
    json_t *entry;
    json_object_foreach(servers, name, entry) {
        entry_parts e = {0};
        int skip, rc = 0;
        const char *why = server_entry(entry, &skip, &e);
        if (skip)
            continue;
        eryx_cli_mcp_spec spec = {0};
        if (!why && (rc = make_spec(&spec, name, origin, &e, &why)) != 0)
            eryx_cli_mcp_spec_clear(&spec);
        if (rc < 0)
            return -1;
        if (why) {
            if (l->warnings)
                fprintf(l->warnings, "eryx: %s: MCP server '%.100s' is left out: %s\n", origin,
                        name, why);
            continue;
        }
        size_t j = 0;
        while (j < l->n && strcmp(l->v[j].name, spec.name) != 0)
            j++;
        if (j < l->fixed) { /* a --mcp-server of that name */
            eryx_cli_mcp_spec_clear(&spec);
        } else if (j < l->n) {
            eryx_cli_mcp_spec_clear(&l->v[j]);
            l->v[j] = spec;
        } else if (l->n < l->max) {
            l->v[l->n++] = spec;
        } else {
            if (l->warnings)
                fprintf(l->warnings, "eryx: %s: MCP server '%.100s' is left out: more than %zu "
                        "servers\n", origin, name, l->max);
            eryx_cli_mcp_spec_clear(&spec);
        }
    }
    return 0;
}

/* The object of servers in doc under key (NULL: the first of any_key
 * there), or NULL. */
static json_t *servers_of(json_t *doc, const char *key)
{
    if (key && strcmp(key, "projects") == 0) {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            return NULL;
        json_t *project = json_object_get(json_object_get(doc, "projects"), cwd);
        return json_object_get(project, "mcpServers");
    }
    for (size_t i = 0; !key && i < sizeof any_key / sizeof *any_key; i++)
        if (json_is_object(json_object_get(doc, any_key[i])))
            return json_object_get(doc, any_key[i]);
    return key ? json_object_get(doc, key) : NULL;
}

int eryx_cli_mcp_config_parse(eryx_cli_mcp_specs *l, char *data, size_t len, const char *key,
                              const char *origin)
{
    eryx_cli_jsonc_blank(data, len);
    json_error_t err;
    json_t *doc = json_loadb(data, len, 0, &err);
    if (!doc) {
        if (l->warnings)
            fprintf(l->warnings, "eryx: %s:%d: not JSON: %s\n", origin, err.line, err.text);
        return 1;
    }
    json_t *servers = servers_of(doc, key);
    int rc = json_is_object(servers) ? add_servers(l, servers, origin) : 0;
    json_decref(doc);
    return rc;
}

/* The file at path, NUL-terminated, in *data (malloc'd); 0, an errno or
 * NOT_REGULAR. */
static int read_file(const char *path, char **data, size_t *len)
{
    /* O_NONBLOCK: a FIFO planted at a project's path must not hang eryx
     * in open (it is refused below as no regular file). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno;
    struct stat st;
    int err = fstat(fd, &st) < 0 ? errno
              : S_ISDIR(st.st_mode) ? EISDIR
              : !S_ISREG(st.st_mode) ? NOT_REGULAR
              : st.st_size > (off_t)MAX_CONFIG_BYTES ? EFBIG : 0;
    char *buf = err ? NULL : malloc((size_t)st.st_size + 1);
    size_t got = 0;
    if (!err && !buf)
        err = ENOMEM;
    while (!err && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : EIO; /* it shrank */
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (err) {
        free(buf);
        return err;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return 0;
}

/* Reads one file; a missing one is no error unless `required`. 0, or -1
 * (out of memory, or a required file not read: said on stderr). */
static int read_config(eryx_cli_mcp_specs *l, const char *path, const char *key, int required)
{
    char *data = NULL;
    size_t len = 0;
    int err = read_file(path, &data, &len);
    if (err) {
        if (!required && err == ENOENT)
            return 0;
        fprintf(stderr, "eryx: %s: %s\n", path,
                err == EFBIG         ? "larger than 64 MiB"
                : err == NOT_REGULAR ? "not a regular file"
                                     : strerror(err));
        return required || err == ENOMEM ? -1 : 0;
    }
    int rc = eryx_cli_mcp_config_parse(l, data, len, key, path);
    free(data);
    return rc < 0 || (rc > 0 && required) ? -1 : 0;
}

static const char *home_dir(void)
{
    const char *home = getenv("HOME");
    if (home && *home)
        return home;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

int eryx_cli_mcp_discover(const eryx_cli_mcp *m, eryx_cli_mcp_specs *l)
{
    const char *home = m->discover ? home_dir() : NULL;
    for (size_t i = 0; m->discover && i < sizeof sources / sizeof *sources; i++) {
        char path[4096];
        if (sources[i].in_home && !home)
            continue;
        int n = snprintf(path, sizeof path, "%s%s%s", sources[i].in_home ? home : "",
                         sources[i].in_home ? "/" : "", sources[i].path);
        if (n < 0 || (size_t)n >= sizeof path)
            continue;
        if (read_config(l, path, sources[i].key, 0) < 0)
            return -1;
    }
    for (size_t i = 0; i < m->n_configs; i++)
        if (read_config(l, m->configs[i], NULL, 1) < 0)
            return -1;
    return 0;
}
