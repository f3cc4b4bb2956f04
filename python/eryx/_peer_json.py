"""How much of a peer's JSON message json.loads may read.

json.loads builds whatever the text asks for: 16 MiB of `[{},{},...]` are
400 MB of dicts. A message of at most max_message bytes from a peer (an MCP
server, an `eryx serve` server) is read when it makes at most as many
objects and arrays as a tree of 4 times max_message (64 MiB at least) holds
at 200 bytes each: the bound eryx's own readers set in bytes
(cli/jsonrpc.h, JR_MAX_TREE), with a floor so that a small max_message does
not refuse what a server's results may hold (serve's results are read as
trees up to 64 MiB).
"""

from __future__ import annotations

import re

# A JSON string, escapes included, or an unterminated one to the end of the
# text (json.loads stops there: what follows makes no objects). Every `"`
# starts a match, so the substitution is linear: a pattern that could fail
# rescanned the rest of the text from each quote after the last unmatched
# one: a `"` and 8 000 `\"` took 1.1 s, and it grows as their square.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)


def max_containers(max_message: int) -> int:
    """The most objects and arrays read of one message."""
    return max(4 * max_message, 64 << 20) // 200


def too_wide(data: bytes, max_message: int) -> int:
    """0 when data may be read; else how many objects and arrays it makes.
    Braces and brackets are counted; those inside strings are taken out
    only when the plain count passes the bound, which most texts never do."""
    limit = max_containers(max_message)
    n = data.count(b"{") + data.count(b"[")
    if n <= limit:
        return 0
    bare = _STRING.sub(b'""', data)
    n = bare.count(b"{") + bare.count(b"[")
    return n if n > limit else 0


# A message's integer id seen only at its ends, as the eryx command finds
# it (cli/jsonrpc.c, jr_id_of_ends): among the scalar members before the
# first nested value, or as the last member before the closing brace.
_ENDS = 256
_ID_AT_HEAD = re.compile(
    rb'\s*\{(?:\s*"[^"\\]*"\s*:\s*(?:"[^"\\]*"|[-+.\w]+)\s*,)*?\s*"id"\s*:\s*(-?\d+)\s*[,}]')
_ID_AT_TAIL = re.compile(rb'[{,]\s*"id"\s*:\s*(-?\d+)\s*\}\s*\Z')


def id_at_ends(data: bytes) -> "int | None":
    """The integer id of a message that cannot be read whole (too wide, or
    not JSON that json.loads reads), from its first and last 256 bytes;
    None when neither end shows it."""
    m = _ID_AT_HEAD.match(data[:_ENDS]) or _ID_AT_TAIL.search(data[-_ENDS:])
    return int(m.group(1)) if m else None
