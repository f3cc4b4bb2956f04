/* The file of `eryx --session`: opened before the code runs, saved through
 * its directory's descriptor after (session_file.c, docs/sessions.md). */
#ifndef ERYX_CLI_SESSION_FILE_H
#define ERYX_CLI_SESSION_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "eryx.h"

/* A --session file: its directory, opened once before the code runs, and
 * its name there. The save goes through the descriptor, not the path: the
 * code may hold a writable mount that contains the directory (or a parent)
 * and replace it with a symbolic link during the run, and a save by path
 * would then write wherever that link points. */
typedef struct session_file {
    char *path;       /* the file, its own links followed (malloc'd) */
    const char *name; /* its last component, inside path */
    int dir;          /* its directory (O_DIRECTORY), or -1 */
    struct path_id {
        dev_t dev;
        ino_t ino;
    } *before;        /* each prefix of path (see each_prefix) by lstat when
                         the directory was opened; 0s: none (malloc'd) */
    size_t n_before;
} session_file;

#define SESSION_FILE_INIT {NULL, NULL, -1, NULL, 0}

/* The absolute name of the file path leads to, once its links are
 * followed, whether or not that file exists yet (what creating it would
 * make): its directory's real path and its last component (malloc'd), or
 * NULL (no such directory, a loop, no file name). Two inputs that do not
 * exist yet are the same file when these are equal. */
char *eryx_cli_file_final_name(const char *path);

/* Follows the links of the path given, opens its directory and records the
 * path's components: 0, or -1 with errno set (a loop of links, a directory
 * that does not exist, a path without a file name). Close s either way. */
int eryx_cli_session_open(const char *given, session_file *s);
void eryx_cli_session_close(session_file *s);

/* Saves sb's session at s atomically, through s's directory: 0, or -1 with
 * the reason in msg. */
int eryx_cli_session_write(eryx_sandbox *sb, const session_file *s, char *msg, size_t cap);

/* After the run: removes a symbolic link the code put in s's path (one
 * component at most, the first new one), when it lies in one of the
 * writable mounts of the run (anywhere else the code could not have put
 * it). */
void eryx_cli_session_drop_code_links(session_file *s, const eryx_mount *mounts,
                                      size_t n_mounts);

/* Whether the path given still leads to s's directory and name. */
int eryx_cli_session_same(const session_file *s, const char *given);

#endif
