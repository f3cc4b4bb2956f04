/*
 * The handle table (handle.h). Slots live in chunks that are never moved or
 * freed, so a lookup may read any slot a token names without a lock. A slot
 * holds one word (generation, kind, live bit) and the object; free slots are
 * kept on a list under the table's mutex and reused oldest first, which
 * spreads generations over the slots.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/handle.h"
#include "core/internal.h"

#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << 16)                  /* 64 Mi handles at most */
#define TAG (UINT64_C(0xE) << 60)              /* non-canonical: faults */
#define GEN_MASK UINT32_C(0x0FFFFFFF)          /* 28 bits of generation */

typedef struct slot {
    _Atomic uint64_t word;      /* gen << 8 | kind << 1 | live */
    _Atomic(void *) obj;
    uint32_t next_free;         /* index + 1 of the next free slot, 0 = none */
} slot;

static _Atomic(slot *) chunks[MAX_CHUNKS];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t n_slots;        /* slots made so far; table_mu */
static uint32_t free_head, free_tail; /* index + 1, FIFO; table_mu */

/* fork(2) (core/fork.c): table_mu is held across it, so the child can take
 * it (a handle opened or closed on another thread at the fork left it
 * locked for good there: a child's first run hung). */
void eryx__handles_fork(enum eryx__fork_phase phase)
{
    if (phase == ERYX__FORK_PREPARE)
        pthread_mutex_lock(&table_mu);
    else
        pthread_mutex_unlock(&table_mu);
}

static uint64_t make_word(uint32_t gen, unsigned kind, int live)
{
    return (uint64_t)(gen & GEN_MASK) << 8 | (uint64_t)kind << 1 | (uint64_t)(live != 0);
}

static slot *slot_at(uint32_t index)
{
    slot *chunk = atomic_load_explicit(&chunks[index >> CHUNK_BITS], memory_order_acquire);
    return chunk ? &chunk[index & (CHUNK_SLOTS - 1)] : NULL;
}

/* A free slot's index (table_mu held), making a chunk when none is free. */
static int take_slot(uint32_t *index)
{
    if (free_head) {
        *index = free_head - 1;
        slot *s = slot_at(*index);
        free_head = s->next_free;
        if (!free_head)
            free_tail = 0;
        return 0;
    }
    if (n_slots == MAX_CHUNKS * CHUNK_SLOTS)
        return -1;
    if (n_slots % CHUNK_SLOTS == 0) {
        slot *chunk = calloc(CHUNK_SLOTS, sizeof *chunk);
        if (!chunk)
            return -1;
        atomic_store_explicit(&chunks[n_slots >> CHUNK_BITS], chunk, memory_order_release);
    }
    *index = n_slots++;
    return 0;
}

static void give_slot(uint32_t index)
{
    slot *s = slot_at(index);
    s->next_free = 0;
    if (free_tail)
        slot_at(free_tail - 1)->next_free = index + 1;
    else
        free_head = index + 1;
    free_tail = index + 1;
}

void *eryx__handle_open(enum eryx__handle_kind kind, void *obj)
{
    uint32_t index;
    pthread_mutex_lock(&table_mu);
    if (take_slot(&index) < 0) {
        pthread_mutex_unlock(&table_mu);
        return NULL;
    }
    slot *s = slot_at(index);
    uint32_t gen = (uint32_t)(atomic_load(&s->word) >> 8) & GEN_MASK;
    atomic_store(&s->obj, obj);
    atomic_store(&s->word, make_word(gen, kind, 1));
    pthread_mutex_unlock(&table_mu);
    return (void *)(uintptr_t)(TAG | (uint64_t)gen << 32 | index);
}

/* The slot a token names, and the word it must hold to be live. */
static slot *decode(const void *handle, enum eryx__handle_kind kind, uint64_t *want)
{
    uint64_t t = (uint64_t)(uintptr_t)handle;
    if ((t & (UINT64_C(0xF) << 60)) != TAG)
        return NULL;
    uint32_t index = (uint32_t)t, gen = (uint32_t)(t >> 32) & GEN_MASK;
    if ((uint64_t)index >= (uint64_t)MAX_CHUNKS * CHUNK_SLOTS)
        return NULL;
    *want = make_word(gen, kind, 1);
    return slot_at(index);
}

void *eryx__handle_get(const void *handle, enum eryx__handle_kind kind)
{
    uint64_t want;
    slot *s = decode(handle, kind, &want);
    if (!s || atomic_load(&s->word) != want)
        return NULL;
    void *obj = atomic_load(&s->obj);
    /* Still the same handle after reading the object: not closed between. */
    return atomic_load(&s->word) == want ? obj : NULL;
}

void *eryx__handle_close(const void *handle, enum eryx__handle_kind kind)
{
    uint64_t want;
    slot *s = decode(handle, kind, &want);
    if (!s)
        return NULL;
    pthread_mutex_lock(&table_mu);
    void *obj = NULL;
    if (atomic_load(&s->word) == want) {
        obj = atomic_load(&s->obj);
        uint32_t gen = (uint32_t)(want >> 8) & GEN_MASK;
        atomic_store(&s->word, make_word(gen + 1, 0, 0));
        atomic_store(&s->obj, NULL);
        give_slot((uint32_t)(uint64_t)(uintptr_t)handle);
    }
    pthread_mutex_unlock(&table_mu);
    return obj;
}
