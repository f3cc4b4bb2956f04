/* The eryx command's stdout and stderr while it runs a program: writes
 * that wait for their reader, as python's do, until the run is being
 * stopped (its time limit, Ctrl-C). From then on a write that cannot go
 * at once is dropped and counted, so a reader that never reads (a parent
 * that waits for the exit before it reads a pipe) cannot hold the run
 * past its limit: a run blocked in a write is in host code, where neither
 * the limit's KeyboardInterrupt nor its hard stop reaches it. */
#ifndef ERYX_CLI_OUT_STREAM_H
#define ERYX_CLI_OUT_STREAM_H

#include <stdint.h>

/* Replaces stdout and stderr (flushed first) by streams over descriptors
 * 1 and 2 whose writes give up once stop_due() returns nonzero. stop_due
 * is asked about every 50 ms while a write waits, on the writing thread.
 * 0, or -1 with the streams left as they were. Call it once, before the
 * threads that write start. */
int eryx_cli_out_bound(int (*stop_due)(void));

/* Bytes dropped from descriptor fd (1 or 2) since eryx_cli_out_bound. */
uint64_t eryx_cli_out_dropped(int fd);

#endif
