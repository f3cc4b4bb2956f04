/*
 * Resumable event streams of `eryx mcp --http` (revision 2025-11-25 of
 * MCP's Streamable HTTP transport): the table of the tools/call streams a
 * client may come back for with a GET of Last-Event-ID. Their events are
 * kept by the channel itself (mcp_server.c, ch->log); this file only
 * holds a reference to each stream until it is delivered whole, its MCP
 * session ends, or RESUME_KEEP_MS pass after its answer. At most
 * MAX_STREAMS are held: a new one pushes out the oldest that is done, and
 * when every one is still running, it is not resumable (its GET gets 404).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_internal.h"
#include "mcp_server.h"

#define MAX_STREAMS 128
#define RESUME_KEEP_MS 300000 /* after its answer: five minutes to come back */

static struct {
    pthread_mutex_t lock;
    channel *streams[MAX_STREAMS];
    size_t n;
    uint64_t next;            /* the next stream's number (a Last-Event-ID
                               * finds a stream only in its own session) */
} R = {.lock = PTHREAD_MUTEX_INITIALIZER, .next = 1};

/* Removes streams[i] (lock held); the caller drops the reference. */
static channel *take(size_t i)
{
    channel *ch = R.streams[i];
    R.streams[i] = R.streams[--R.n];
    return ch;
}

/* When ch's answer was done, 0 while it is not, or while ch's lock is
 * busy. R.lock is never held while waiting for a channel's lock: a writer
 * holds that one while a client that does not read takes its time
 * (IO_TIMEOUT_MS per wait), and the thread that accepts connections takes
 * R.lock every tick (eryx_mcp_resume_tick). */
static uint64_t done_at(channel *ch)
{
    if (pthread_mutex_trylock(&ch->lock) != 0)
        return 0;
    uint64_t at = ch->done ? ch->done_ms : 0;
    pthread_mutex_unlock(&ch->lock);
    return at;
}

int eryx_mcp_resume_keep(channel *ch)
{
    channel *out = NULL;
    pthread_mutex_lock(&R.lock);
    if (R.n == MAX_STREAMS) {
        size_t oldest = R.n;
        uint64_t oldest_at = UINT64_MAX;
        for (size_t i = 0; i < R.n; i++) {
            uint64_t at = done_at(R.streams[i]);
            if (at && at < oldest_at) {
                oldest = i;
                oldest_at = at;
            }
        }
        if (oldest < R.n)
            out = take(oldest);
    }
    int ok = R.n < MAX_STREAMS;
    if (ok) {
        /* (ch is new: no job has it yet, and stream is read under R.lock) */
        atomic_fetch_add(&ch->refs, 1);
        ch->stream = R.next++;
        R.streams[R.n++] = ch;
    }
    pthread_mutex_unlock(&R.lock);
    if (out)
        eryx_mcp_channel_unref(out);
    return ok ? 0 : -1;
}

channel *eryx_mcp_resume_find(const char *last_event_id, const char *sid, size_t *after)
{
    unsigned long long stream;
    size_t n;
    int used = 0;
    if (sscanf(last_event_id, "%llu-%zu%n", &stream, &n, &used) != 2 ||
        (size_t)used != strlen(last_event_id))
        return NULL;
    channel *found = NULL;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n && !found; i++) {
        channel *ch = R.streams[i];
        if (ch->stream == stream && strcmp(ch->sid, sid) == 0)
            found = ch;
    }
    if (found)
        atomic_fetch_add(&found->refs, 1);
    pthread_mutex_unlock(&R.lock);
    if (found) { /* (its lock waited for without R.lock: see done_at) */
        pthread_mutex_lock(&found->lock);
        int ok = n <= found->n_events;
        pthread_mutex_unlock(&found->lock);
        if (!ok) {
            eryx_mcp_channel_unref(found);
            found = NULL;
        }
    }
    *after = n;
    return found;
}

void eryx_mcp_resume_forget(channel *ch)
{
    channel *out = NULL;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n && !out; i++)
        if (R.streams[i] == ch)
            out = take(i);
    pthread_mutex_unlock(&R.lock);
    if (out)
        eryx_mcp_channel_unref(out);
}

/* 1 if ch's answer was done RESUME_KEEP_MS ago and no connection carries
 * it; 0 also while its lock is busy (see done_at): the next tick looks. */
static int expired(channel *ch, uint64_t now_ms)
{
    if (pthread_mutex_trylock(&ch->lock) != 0)
        return 0;
    /* (done_ms may be later than now_ms: the answer came while the tick
     * waited, and the difference would wrap around) */
    int gone = ch->done && ch->broken && now_ms >= ch->done_ms + RESUME_KEEP_MS;
    pthread_mutex_unlock(&ch->lock);
    return gone;
}

/* Drops the streams that match (lock not held); sid NULL: those expired. */
static void drop(const char *sid, uint64_t now_ms)
{
    channel *out[MAX_STREAMS];
    size_t n_out = 0;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n;) {
        channel *ch = R.streams[i];
        int gone = sid ? strcmp(ch->sid, sid) == 0 : expired(ch, now_ms);
        if (gone)
            out[n_out++] = take(i);
        else
            i++;
    }
    pthread_mutex_unlock(&R.lock);
    for (size_t i = 0; i < n_out; i++)
        eryx_mcp_channel_unref(out[i]);
}

void eryx_mcp_resume_end_session(const char *sid) { drop(sid, 0); }

void eryx_mcp_resume_tick(uint64_t now_ms) { drop(NULL, now_ms); }
