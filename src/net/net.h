/*
 * The sandbox's network (docs/networking.md): TCP client connections and
 * TLS, made on the host for the guest under the sandbox's policy
 * (policy.h) and secrets (secrets.h).
 *
 * The guest asks through the same eryx.wait requests as host callbacks,
 * with reserved names ("@net.connect", "@net.recv", ...; guest/python/
 * _eryx/net.py): an operation is a call that the network layer, not the
 * embedder, completes. Each is first tried at once on the stepping thread
 * (data already there, a write the kernel takes); what must wait goes to
 * one process-wide poller thread (epoll), which completes the call and
 * notifies the execution like a callback reply. So a guest waiting on the
 * network never blocks eryx_exec_step, and run timeouts, callback-style
 * operation timeouts and interrupts work as for callbacks.
 *
 * Locking: one process-wide mutex guards every connection; it is taken
 * before a hub's mutex, never after, and no embedder function is called
 * while it is held (completions are delivered after it is released).
 */
#ifndef ERYX_NET_NET_H
#define ERYX_NET_NET_H

#include <stddef.h>
#include <stdint.h>

#include "eryx.h"

typedef struct eryx__net eryx__net;
struct eryx_call;

/* A sandbox's network from its config (copied). NULL *out and a message
 * in err when a rule, pin, secret or CA file is wrong. */
int eryx__net_new(const eryx_net_config *cfg, const eryx_secret *secrets, size_t n_secrets,
                  eryx__net **out, char *err, size_t errsize);
/* A network with the same policy and secrets (placeholders included) and
 * no connections: for a fork. NULL when out of memory. */
eryx__net *eryx__net_share(const eryx__net *parent);
/* Closes every connection; pending operations are dropped. NULL is fine. */
void eryx__net_free(eryx__net *net);
/* Closes every connection and forgets the names resolved (a reset: the
 * next user of a pooled sandbox finds none of the last one's). */
void eryx__net_close_all(eryx__net *net);

/* The secrets' "NAME=placeholder" environment entries. */
size_t eryx__net_secret_count(const eryx__net *net);
const char *eryx__net_secret_name(const eryx__net *net, size_t i);
const char *eryx__net_secret_placeholder(const eryx__net *net, size_t i);

/* A run begins: the per-run byte counts start again. */
void eryx__net_run_begin(eryx__net *net);

/* Starts operation op ("connect", "recv", ...) of a call the guest made
 * with JSON arguments args. net may be NULL (no network: the call fails
 * with EPERM). The layer holds a reference to the call (taken here) until
 * it completes it through eryx__call_complete. */
void eryx__net_submit(eryx__net *net, struct eryx_call *call, const char *op, const char *args);

/* For the thread of a blocking run (run.c), which may wait on the
 * sockets itself rather than be woken by the poller thread (one thread
 * switch less per wait): fills fds with the sandbox's connections that have
 * operations waiting (at most max) and takes them from the poller until
 * eryx__net_poll_done, which the caller must call after its poll(). */
struct pollfd;
size_t eryx__net_pollfds(eryx__net *net, struct pollfd *fds, size_t max);
void eryx__net_poll_done(eryx__net *net, const struct pollfd *fds, size_t n);

/* Whether the name is one of the layer's ("@net."). */
#define ERYX__NET_PREFIX "@net."

/* A failed operation's kind is "net:NAME" (ECONNREFUSED, SSL, ...), or a
 * call's own ("timeout", "failed"). The net kinds by number, for journals
 * (docs/journal.md): the number of kind (-1 if it is none of them), and
 * the kind of a number (NULL past the last). Numbers never change. */
#define ERYX__NET_KIND_PREFIX "net:"
int eryx__net_kind_code(const char *kind);
const char *eryx__net_kind_name(int code);

#endif
