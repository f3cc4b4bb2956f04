/*
 * Compile-time options of eryx, each with the reason for its default.
 * Anything that would weaken the sandbox is named ERYX_UNSAFE_* (there is none
 * yet).
 */
#ifndef ERYX_CONFIG_H
#define ERYX_CONFIG_H

/* Address space reserved for each linear memory: the 4 GiB a 32-bit guest can
 * name plus 4 GiB for the largest constant offset a load or store can add, so
 * that no guest address expression can reach outside the reservation. The
 * generated code performs no bounds checks; the guard pages do. */
#ifndef ERYX_MEMORY_RESERVATION
#define ERYX_MEMORY_RESERVATION (8ull << 30)
#endif

/* Size of the alternate signal stack each guest-running thread gets, enough to
 * run the fault handler after the thread's own stack overflowed. */
#ifndef ERYX_SIGNAL_STACK_SIZE
#define ERYX_SIGNAL_STACK_SIZE (64u * 1024u)
#endif

/* Default cap on linear memory per sandbox (bytes). */
#ifndef ERYX_DEFAULT_MAX_MEMORY
#define ERYX_DEFAULT_MAX_MEMORY (128ull << 20)
#endif

/* Default cap on the bytes the in-memory /tmp of one sandbox can hold. */
#ifndef ERYX_DEFAULT_TMP_QUOTA
#define ERYX_DEFAULT_TMP_QUOTA (64ull << 20)
#endif

/* Default cap on captured stdout + stderr of one execution (bytes). */
#ifndef ERYX_DEFAULT_MAX_OUTPUT
#define ERYX_DEFAULT_MAX_OUTPUT (10ull << 20)
#endif

/* Default time a callback may take before the guest sees a timeout. */
#ifndef ERYX_DEFAULT_CALLBACK_TIMEOUT_NS
#define ERYX_DEFAULT_CALLBACK_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)
#endif

/* Default number of callback invocations one execution may make. */
#ifndef ERYX_DEFAULT_MAX_CALLBACKS
#define ERYX_DEFAULT_MAX_CALLBACKS 1000u
#endif

/* Default wall-clock limit of one run. */
#ifndef ERYX_DEFAULT_TIMEOUT_NS
#define ERYX_DEFAULT_TIMEOUT_NS (30ull * 1000 * 1000 * 1000)
#endif

/* Default time Python code has to unwind after a graceful stop before it is
 * stopped hard. */
#ifndef ERYX_DEFAULT_INTERRUPT_GRACE_NS
#define ERYX_DEFAULT_INTERRUPT_GRACE_NS (200ull * 1000 * 1000)
#endif

/* Largest request the guest's event loop may hand the host in one eryx.wait:
 * host function calls of one loop turn, arguments included (the loop
 * splits a turn's calls into requests within this and ERYX_MAX_WAIT_CALLS:
 * guest/python/_eryx/hostcall.py keeps copies of these three bounds). A
 * larger request is refused unread (the loop raises RuntimeError). Decoding costs
 * the host about the request's size once more (src/core/wait_request.h),
 * so this bounds what a guest makes the host hold per turn; before it
 * existed, 50 MB of JSON cost 1.1 GB and seconds no timeout could stop. */
#ifndef ERYX_MAX_WAIT_REQUEST
#define ERYX_MAX_WAIT_REQUEST (8u << 20)
#endif

/* Largest arguments of one host function call, as JSON text: beyond, that
 * call fails at once (CallbackError of kind "invalid_arguments") without
 * reaching the embedder, and the other calls go on. Handlers get a few MiB
 * at most, which is what a callback ABI passing JSON is for. */
#ifndef ERYX_MAX_CALL_ARGS
#define ERYX_MAX_CALL_ARGS (4u << 20)
#endif

/* Largest total of arguments the host holds for one execution's calls:
 * from the call's arrival until its handler is done with it (a call the
 * guest stopped waiting for counts while a handler still runs with it).
 * Beyond, a new call fails at once (CallbackError of kind "failed")
 * without reaching the embedder. Without it the host held what the guest
 * sent, not what it kept: a guest that peaked at 29 MB sent 300 calls of
 * 4 MiB to a slow handler, and the Python binding's process grew to 1.8 GB
 * (276 MB with this bound). */
#ifndef ERYX_MAX_HELD_ARGS
#define ERYX_MAX_HELD_ARGS (64u << 20)
#endif

/* Largest total of what the same calls' arguments take to read as trees
 * (eryx__json_tree_bytes, core/json_wide.h: jansson's bytes), counted and
 * failed alike, and the most one call's may take. Every host that takes
 * arguments parses them (the CLI's MCP client and `eryx serve` with
 * jansson, the Python binding with json.loads), and `[{},{},...]` is a
 * tree 77 times its text in jansson (24 in Python): the 64 MiB of
 * arguments above were 5 GB of trees. Records such as
 * `{"a":[1,2,{"b":null}],"c":"x"}` (33 times) pass up to the 4 MiB of one
 * call (ERYX_MAX_CALL_ARGS). The trees of replies count too, from the
 * reply until the guest has it (a reply the strict reader leaves to
 * jansson: 16 MiB of [{},{},...] ending in a 19-digit integer took the
 * host 1.3 GB); a reply beyond fails the call. So do a replayed
 * journal's, from the delivery of their batch until the guest has them;
 * a batch beyond ends the replay (ERYX_DIVERGED, docs/journal.md). */
#ifndef ERYX_MAX_HELD_TREES
#define ERYX_MAX_HELD_TREES (256u << 20)
#endif

/* Most calls in one wait request (a gather() of 10000 calls is one request;
 * max_callbacks still limits how many reach the embedder). */
#ifndef ERYX_MAX_WAIT_CALLS
#define ERYX_MAX_WAIT_CALLS 65536u
#endif

/* Bytes read from the network and not yet taken by the guest, per
 * connection: the poller stops reading beyond (TCP then pushes back). */
#ifndef ERYX_NET_MAX_INBUF
#define ERYX_NET_MAX_INBUF (4u << 20)
#endif

/* Bytes the guest sent that are not on the wire yet, per connection: a
 * send beyond is refused (EAGAIN). A send whose call timed out leaves its
 * bytes queued and lets the next one in, so without it a peer that does not
 * read made the host hold everything the guest sent (up to max_bytes_sent,
 * 1 GiB a run by default). The fuzz harness (tests/fuzz/fuzz_net_ops.c)
 * builds with both limits small, to reach them with inputs of kilobytes. */
#ifndef ERYX_NET_MAX_OUTBUF
#define ERYX_NET_MAX_OUTBUF (4u << 20)
#endif

/* Default time limit of a runtime's imports and setup code together
 * (eryx_runtime_config.setup_timeout_ns). */
#ifndef ERYX_DEFAULT_SETUP_TIMEOUT_NS
#define ERYX_DEFAULT_SETUP_TIMEOUT_NS (60ull * 1000 * 1000 * 1000)
#endif

#endif
