"""Calls to the host shared by the event loop and synchronous code.

Every call, from the asyncio loop (loop.py) or from code that blocks (a
socket's recv, net.py), takes its id from one counter. A synchronous call
waits in ``_eryx_host.wait`` until its own result comes back; results of
other calls that arrive meanwhile are kept in ``stash`` for the loop.
"""

import _eryx_host

stash = {}          # call id -> result, for the loop
ignored = set()     # ids of calls whose results nobody waits for
_next = [1]
_EMPTY = b'{"calls":[],"timeout":null}'


def next_id():
    n = _next[0]
    _next[0] = n + 1
    return n


def call_sync(name, args, extra=()):
    """The result record ({"ok", "value" | "kind", "message"}) of host
    function `name`; extra calls (fire and forget) go in the same request."""
    import json
    cid = next_id()
    calls = [{"id": cid, "name": name, "args": args}]
    calls.extend(extra)
    ignored.update(c["id"] for c in extra)
    data = json.dumps({"calls": calls, "timeout": None}).encode()
    while True:
        mine = stash.pop(cid, None)
        if mine is not None:
            return mine
        reply = json.loads(_eryx_host.wait(data))
        data = _EMPTY
        if "error" in reply:
            raise RuntimeError(reply["error"])
        for result in reply["results"]:
            rid = result["id"]
            if rid in ignored:
                ignored.discard(rid)
            else:
                stash[rid] = result
