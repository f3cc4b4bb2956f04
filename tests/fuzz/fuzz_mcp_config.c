/*
 * The reading of agents' MCP configuration files by `eryx --mcp` and
 * `--mcp-config` (cli/mcp_config.c): a project's .mcp.json or
 * .vscode/mcp.json comes with whatever repository one is in. Input:
 * byte 0 picks the key (the first present, mcpServers, context_servers,
 * Claude Code's projects), byte 1 the most servers taken (1..8); the rest
 * is the file. Properties beyond "no crash, no leak":
 *   - blanking comments keeps the length and every line break, changes
 *     bytes only to spaces, and changes nothing in text without '/' or ',';
 *   - expanding $VAR of text without '$' gives the text back; ${VAR} and
 *     ${VAR:-d} of a set variable give its value;
 *   - every server taken has a Python identifier of a name, a program, and
 *     NAME=VALUE environment strings; no more than the most; the one put
 *     there first (a --mcp-server) is never replaced.
 */
#include "fuzz.h"
#include "mcp_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("ERYX_FUZZ_VAR", "[value]", 1);
    unsetenv("ERYX_FUZZ_UNSET");
    return 0;
}

static void check_blank(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    FUZZ_CHECK(s);
    memcpy(s, data, n);
    eryx_cli_jsonc_blank(s, n);
    int plain = !memchr(data, '/', n) && !memchr(data, ',', n);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK((s[i] == '\n') == (data[i] == '\n'));
        FUZZ_CHECK(s[i] == (char)data[i] || (s[i] == ' ' && !plain));
    }
    free(s);
}

static void check_expand(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    FUZZ_CHECK(s);
    memcpy(s, data, n);
    s[n] = '\0';
    char *out = eryx_cli_expand_env(s);
    FUZZ_CHECK(out);
    if (!strchr(s, '$'))
        FUZZ_CHECK(strcmp(out, s) == 0);
    free(out);
    free(s);
    static const char *const fixed[][2] = {
        {"${ERYX_FUZZ_VAR}", "[value]"},      {"a$ERYX_FUZZ_VAR/b", "a[value]/b"},
        {"${ERYX_FUZZ_UNSET:-dflt}", "dflt"}, {"${ERYX_FUZZ_VAR:-dflt}", "[value]"},
        {"$", "$"},                           {"${", "${"},
        {"$1", "$1"},                         {"${ERYX_FUZZ_UNSET}x", "x"}};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        out = eryx_cli_expand_env(fixed[i][0]);
        FUZZ_CHECK(out && strcmp(out, fixed[i][1]) == 0);
        free(out);
    }
}

static int identifier(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {NULL, "mcpServers", "context_servers", "projects"};
    fuzz_in in = {data, size};
    const char *key = keys[fuzz_u8(&in) % 4];
    size_t max = 1 + fuzz_u8(&in) % 8;
    check_blank(in.p, in.n);
    check_expand(in.p, in.n);

    char *text = malloc(in.n + 1);
    FUZZ_CHECK(text);
    memcpy(text, in.p, in.n);
    eryx_cli_mcp_spec v[8] = {{0}};
    char name[] = "given", command[] = "true";
    v[0].name = name; /* a --mcp-server: not the list's to free */
    v[0].command = command;
    eryx_cli_mcp_specs l = {v, 1, max, 1, NULL};
    int rc = eryx_cli_mcp_config_parse(&l, text, in.n, key, "fuzz.json");
    FUZZ_CHECK(rc == 0 || rc == 1);
    FUZZ_CHECK(l.n >= 1 && l.n <= max);
    FUZZ_CHECK(v[0].name == name && v[0].command == command && !v[0].argv);
    for (size_t i = 1; i < l.n; i++) {
        FUZZ_CHECK(identifier(v[i].name) && strcmp(v[i].name, "given") != 0);
        FUZZ_CHECK(v[i].argv && v[i].argv[0] == v[i].command && v[i].env);
        FUZZ_CHECK(strcmp(v[i].origin, "fuzz.json") == 0);
        for (char **e = v[i].env; *e; e++)
            FUZZ_CHECK(strchr(*e, '=') && **e != '=');
        for (size_t j = 1; j < i; j++)
            FUZZ_CHECK(strcmp(v[i].name, v[j].name) != 0);
    }
    for (size_t i = 1; i < l.n; i++)
        eryx_cli_mcp_spec_clear(&v[i]);
    free(text);
    return 0;
}
