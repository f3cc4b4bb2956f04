"""Calls to the host shared by the event loop and synchronous code.

Every call, from the asyncio loop (loop.py) or from code that blocks (a
socket's recv, net.py), takes its id from one counter. A synchronous call
waits in ``_eryx_host.wait`` until its own result comes back; results of
other calls that arrive meanwhile are kept in ``stash`` for the loop.
"""

import json

import _eryx_host

# The host's bounds (src/config.h): a call's arguments as JSON text, and
# one request to the host (ERYX_MAX_CALL_ARGS, ERYX_MAX_WAIT_REQUEST,
# ERYX_MAX_WAIT_CALLS). The text is ASCII: its length is its bytes.
MAX_CALL_ARGS = 4 << 20
MAX_REQUEST = 8 << 20
MAX_REQUEST_CALLS = 65536

stash = {}          # call id -> result, for the loop
ignored = set()     # ids of calls whose results nobody waits for
_next = [1]
_EMPTY = b'{"calls":[],"timeout":null}'


def next_id():
    n = _next[0]
    _next[0] = n + 1
    return n


# The reply is the host's own compact JSON: its C scanner directly, without
# json.loads's detection of the encoding and of whitespace.
_scan = json.JSONDecoder().scan_once
_heads = {}         # name -> the request's text up to the call's arguments

# json.dumps's C encoder, made once: json.dumps makes one per call (a
# keyword-argument parse and several Python frames, a fifth of an
# `await noop()`). Its markers (ids of the containers being encoded, for
# the circular-reference check) are left behind by an error: cleared then.
# NaN and the infinities are refused (allow_nan=False): JSON has no token
# for them, and the host and its handlers read strict JSON, so Python's
# NaN reached them as a malformed request.
_markers = {}
_c_encoder = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    _markers, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None,
    ": ", ", ", False, False, False)


def encode(obj):
    """json.dumps(obj, allow_nan=False), with its defaults and its errors."""
    if _c_encoder is None:
        return json.dumps(obj, allow_nan=False)
    try:
        return "".join(_c_encoder(obj, 0))
    except BaseException:
        _markers.clear()
        raise


def call_text(cid, name, args_json):
    """One call of a request, as JSON text."""
    head = _heads.get(name)
    if head is None:
        head = _heads[name] = '{"calls":[{"name":' + json.dumps(name) + ',"args":'
    return f'{head[10:]}{args_json},"id":{cid}}}'


def batches(calls):
    """The calls' texts in lists that each make a request within the host's
    bounds (a call alone always does: its arguments are at most
    MAX_CALL_ARGS). At least one list, maybe empty."""
    room = MAX_REQUEST - 64     # the request's own text around the calls
    out, cur, size = [], [], 0
    for c in calls:
        if cur and (size + len(c) + 1 > room or len(cur) == MAX_REQUEST_CALLS):
            out.append(cur)
            cur, size = [], 0
        cur.append(c)
        size += len(c) + 1
    out.append(cur)
    return out


_CALLS = '{"calls":['


def _request(cid, name, args, extra, args_json):
    # The extra calls (closes of sockets collected unclosed) go first: the
    # host runs a request's calls in order, and a connect made at the
    # connection limit needs the room they give back.
    if args_json is None:
        calls = [*extra, {"id": cid, "name": name, "args": args}]
        return json.dumps({"calls": calls, "timeout": None}, allow_nan=False).encode()
    # An f-string of ASCII text (both encoders escape to ASCII), the fastest
    # of the ways measured in the guest (docs/performance.md).
    head = _heads.get(name)
    if head is None:
        head = _heads[name] = _CALLS + '{"name":' + json.dumps(name) + ',"args":'
    if extra:
        more = "".join(json.dumps(c, allow_nan=False) + "," for c in extra)
        head = _CALLS + more + head[len(_CALLS):]
    return f'{head}{args_json},"id":{cid}}}],"timeout":null}}'.encode()


def call_sync(name, args, extra=(), args_json=None):
    """The result record ({"ok", "value" | "kind", "message"}) of host
    function `name`; extra calls (fire and forget) go in the same request.
    args_json, when given, is args already as JSON text (a callback checked
    them by encoding)."""
    cid = _next[0]      # next_id(), inline: this is every callback's path
    _next[0] = cid + 1
    if extra:
        ignored.update(c["id"] for c in extra)
    if args_json is not None and not extra:
        # Every callback's case, in C: the request made, and this call's
        # value read in place when the reply is that alone; any other
        # reply comes back as text, read below.
        head = _heads.get(name)
        if head is None:
            head = _heads[name] = '{"calls":[{"name":' + json.dumps(name) + ',"args":'
        alone, got = _eryx_host.call(head, args_json, cid, _scan)
        if alone:
            return {"ok": True, "value": got}
        text = got
    else:
        text = _eryx_host.wait(_request(cid, name, args, extra, args_json)).decode()
    while True:
        reply = _scan(text, 0)[0]
        if "raw" in reply:
            exact(reply)
        results = reply.get("results")
        if results and len(results) == 1 and results[0]["id"] == cid:
            return results[0]   # this call's result alone: a failure, or raw
        _keep(reply)
        mine = stash.pop(cid, None)
        if mine is not None:
            return mine
        text = _eryx_host.wait(_EMPTY).decode()


def exact(reply):
    """A value holding an integer beyond 64 bits, which the host's JSON
    library cannot hold, comes as its text ("raw"); the reply says so.
    Text Python will not read (an integer of more than
    sys.get_int_max_str_digits() digits) fails that call alone."""
    for result in reply.get("results") or ():
        if "raw" in result:
            try:
                result["value"] = json.loads(result.pop("raw"))
            except ValueError as e:
                result.update(ok=False, kind="failed",
                              message=f"the host function's reply cannot be read: {e}")


def _keep(reply):
    """Stashes a reply's results for their waiters (drops the ignored)."""
    if "error" in reply:
        raise RuntimeError(reply["error"])
    for result in reply["results"]:
        rid = result["id"]
        if rid in ignored:
            ignored.discard(rid)
        else:
            stash[rid] = result
