/*
 * What the command's servers share: a listening socket from HOST:PORT and
 * a secret read from a file. `eryx serve` (serve.c) and `eryx mcp --http`
 * (mcp_http.c) use them; who ("eryx serve") begins their messages.
 */
#ifndef ERYX_CLI_LISTEN_H
#define ERYX_CLI_LISTEN_H

#include <stddef.h>

/* A socket listening on spec, HOST:PORT ([v6]:PORT too; PORT 0: any free
 * one), or -1 after a message on stderr. *loopback (may be NULL) tells
 * whether the address is a loopback one. */
int cli_listen(const char *who, const char *spec, int *loopback);

/* The port fd listens on, or 0. */
unsigned cli_listen_port(int fd);

/* The first line of the file at path (trailing newline and spaces
 * dropped) into out (cap bytes), its length in *len: a secret (what: "token")
 * of 16 to cap - 2 characters. -1 after a message on stderr. */
int cli_read_secret(const char *who, const char *path, char *out, size_t cap, size_t *len,
                    const char *what);

#endif
