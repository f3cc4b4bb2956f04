/*
 * Handles: what the embedder holds for a runtime, a sandbox, an execution, a
 * call or a pool is not a pointer to the object but a token naming a slot of
 * a process-wide table and the slot's generation. Closing a handle bumps the
 * generation, so a handle kept after its free is refused (ERYX_MISUSE) even
 * when its object was parked and handed to another owner under a new handle,
 * and even when the table slot was reused: the generations differ.
 *
 * Tokens are not addresses: their top bits make them non-canonical on
 * x86-64 and AArch64, so dereferencing one faults at once instead of
 * reading some object.
 *
 * Lookups take no lock: a handle is used by one thread at a time (eryx.h,
 * "Threading"), and a lookup racing with the close of the same handle is
 * the embedder's misuse, which still yields either the object (closed just
 * after) or NULL, never another object. Opening and closing lock.
 */
#ifndef ERYX_CORE_HANDLE_H
#define ERYX_CORE_HANDLE_H

enum eryx__handle_kind {
    ERYX__H_RUNTIME = 1,
    ERYX__H_SANDBOX,
    ERYX__H_EXEC,
    ERYX__H_CALL,
    ERYX__H_POOL
};

/* A new handle for obj; NULL when the table is full or out of memory. */
void *eryx__handle_open(enum eryx__handle_kind kind, void *obj);

/* The object of a live handle of that kind, or NULL. */
void *eryx__handle_get(const void *handle, enum eryx__handle_kind kind);

/* Ends a live handle and returns its object (NULL if it was not live: two
 * threads closing one handle get it once). */
void *eryx__handle_close(const void *handle, enum eryx__handle_kind kind);

#endif
