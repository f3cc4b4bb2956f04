"""MCPManager: the tools of MCP servers as host functions of sandboxes.

Each server is a child process spoken to over its stdin and stdout, one
JSON-RPC 2.0 message per line (MCP's stdio transport), as the eryx
command's ``--mcp-server`` does (cli/mcp_client.c; docs/mcp.md): the same
handshake, tool names, result mapping and failure messages. One I/O thread
per server writes what the callers queue, reads the answers (lines bounded
by ``max_message``), matches them to calls by id and completes them; it
also owns the process's end (stdin closed, then SIGTERM, then SIGKILL to
its process group). A tool is an ``async def`` callback of the package's
ordinary dispatch (_callbacks.py): on a blocking ``execute`` it waits on
the worker thread's own loop, on ``execute_async`` it is a task of the
caller's loop; gathered calls are concurrent requests either way.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import copy
import json
import keyword
import logging
import math
import os
import select
import signal
import subprocess
import threading
import time
from typing import (Any, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence, Set,
                    Tuple)

from . import _eryx, _peer_json
from ._callbacks import _Entry

PROTOCOL_VERSION = "2025-11-25"
PREVIOUS_PROTOCOL_VERSION = "2025-06-18"
# Revisions a server may answer with: tools/list, tools/call, ping,
# cancellation and progress are the same in all (what is newer, structured
# content first, is only absent from the older ones).
KNOWN_PROTOCOL_VERSIONS = (PROTOCOL_VERSION, PREVIOUS_PROTOCOL_VERSION, "2025-03-26",
                           "2024-11-05")
DEFAULT_MAX_MESSAGE = 16 << 20
_MAX_TOOLS = 1000
_MAX_PAGES = 100
# Each step of a server's shutdown (stdin closed, SIGTERM, SIGKILL) waits
# this long for it to exit, as the eryx command does.
_GRACE_S = 1.0
# A server whose input queue made no progress for this long does not read
# its stdin: it is killed, and the calls in flight fail. (The command uses
# its --callback-timeout; a manager serves sandboxes of different limits.)
_STALL_S = 30.0
# A tool call gives up this long after the sandbox's callback timeout, so
# that the sandbox's own timeout (a CallbackError of kind "timeout") is what
# the code sees; giving up releases the worker and cancels the request.
_TIMEOUT_MARGIN_S = 0.5

_log = logging.getLogger("eryx.mcp")

# ("result", value) or ("error", the JSON-RPC error) from the server, or
# ("failed", message) when there was no answer.
Outcome = Tuple[str, Any]


class MCPError(_eryx.EryxError):
    """An MCP tool call failed: the tool reported an error (``isError``), the
    server answered with a JSON-RPC error, died, was closed, did not answer
    in time, or answered with something that is not a tool result. Inside a
    sandbox this is a ``CallbackError`` with the same message."""


def _py_name(tool: str) -> str:
    """A Python identifier for an MCP tool name, as the eryx command makes
    it (cli/mcp_names.c): other characters (each byte of UTF-8) become "_",
    a name that so begins with "_" gets "tool" before it (the namespace's
    own names and Python's __class__ and __dict__ begin so: such a tool
    made every run fail), a leading digit "_", a keyword "_" after it; at
    most 100 bytes."""
    raw = tool.encode("utf-8", "surrogatepass")[:100]
    s = "".join(chr(b) if b < 128 and (chr(b).isalnum() or b == 0x5F) else "_" for b in raw)
    if s.startswith("_"):
        s = "tool" + s
    elif not s or s[0].isdigit():
        s = "_" + s
    if keyword.iskeyword(s):
        s += "_"
    return s


def _is_server_name(name: Any) -> bool:
    # The eryx command's rule for --mcp-server NAME: an ASCII identifier of
    # at most 64 characters that is not a keyword.
    return (isinstance(name, str) and 0 < len(name) <= 64 and name.isascii()
            and name.isidentifier() and not keyword.iskeyword(name))


def _describe(outcome: Outcome) -> str:
    kind, value = outcome
    if kind == "error":
        code = value.get("code") if isinstance(value, dict) else None
        msg = value.get("message") if isinstance(value, dict) else None
        return (f"error {code if isinstance(code, int) else 0}: "
                f"{msg if isinstance(msg, str) else '(no message)'}")
    return str(value)


class _Tool:
    __slots__ = ("name", "callback", "pyname", "description", "schema")

    def __init__(self, name: str, callback: str, pyname: str, description: str,
                 schema: Dict[str, Any]) -> None:
        self.name = name                # the MCP name
        self.callback = callback        # mcp.SERVER.PYNAME
        self.pyname = pyname
        self.description = description
        self.schema = schema


def _name_tools(server: str, raw: List[Any]) -> List[_Tool]:
    tools: List[_Tool] = []
    taken: Set[str] = set()
    for t in raw:
        name = t.get("name") if isinstance(t, dict) else None
        if not isinstance(name, str):
            _log.warning("MCP server %s listed a tool without a name (skipped)", server)
            continue
        if "\0" in name:
            # A callback's name and description may hold none: one such
            # tool made every Sandbox(mcp=...) of the manager fail.
            _log.warning("MCP server %s listed a tool whose name holds a NUL character "
                         "(skipped)", server)
            continue
        py = _py_name(name)
        callback, pyname, n = f"mcp.{server}.{py}", py, 2
        while callback in taken:  # two names mapping to one identifier
            pyname = f"{py}_{n}"
            callback = f"mcp.{server}.{pyname}"
            n += 1
        taken.add(callback)
        desc = t.get("description")
        if not isinstance(desc, str):
            desc = t.get("title") if isinstance(t.get("title"), str) else ""
        desc = desc.replace("\0", "")
        schema = t.get("inputSchema")
        if not isinstance(schema, dict):
            schema = {"type": "object", "properties": {}}
        tools.append(_Tool(name, callback, pyname, desc, schema))
    return tools


RESULT_FORMATS = ("eryx", "pyeryx")


def _tool_value(server: str, tool: str, outcome: Outcome, result_format: str = "eryx") -> Any:
    """A tools/call outcome as the value of the call. "eryx", as the eryx
    command maps it: structuredContent when there is one; else None for no
    content, the text of the items joined by newlines when all are text,
    else the content list itself. "pyeryx", as the reference's binding maps
    it: see _pyeryx_value. Failures raise MCPError."""
    kind, result = outcome
    where = f"MCP server {server}, tool {tool}"
    if kind == "failed":
        raise MCPError(result)
    if kind == "error":
        raise MCPError(f"{where}: {_describe(outcome)}")
    if not isinstance(result, dict) or ("content" in result
                                        and not isinstance(result["content"], list)):
        raise MCPError(f"{where}: the answer is not a tool result")
    # MCP types structuredContent as an object; null passes (as None).
    if not isinstance(result.get("structuredContent", {}), (dict, type(None))):
        raise MCPError(f"{where}: the answer is not a tool result "
                       "(its structuredContent is not an object)")
    content = result.get("content") or []
    texts = [item["text"] for item in content
             if isinstance(item, dict) and item.get("type") == "text"
             and isinstance(item.get("text"), str)]
    if result.get("isError") is True:
        raise MCPError(f"{where} failed: {chr(10).join(texts) or '(no message)'}")
    if result_format == "pyeryx":
        return _pyeryx_value(result.get("structuredContent"), texts)
    if "structuredContent" in result:
        return result["structuredContent"]
    if not content:
        return None
    if len(texts) == len(content):
        return "\n".join(texts)
    return content


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _pyeryx_value(structured: Any, texts: List[str]) -> Any:
    """The reference binding's value of a successful result: its
    structuredContent unless absent or null; else the one text item parsed
    as JSON, when there is one and it parses; else {"text": the text items
    joined by newlines}. Items that are not text are left out."""
    if structured is not None:
        return structured
    if len(texts) == 1:
        try:
            return json.loads(texts[0], parse_constant=_no_constant)
        except (ValueError, RecursionError):  # not JSON, NaN, nested too deep
            pass
    return {"text": "\n".join(texts)}


def _settle(fut: "asyncio.Future[Outcome]", outcome: Outcome) -> None:
    if not fut.done():
        fut.set_result(outcome)


class _Server:
    """One server: its process, its I/O thread, the requests in flight."""

    def __init__(self, name: str, argv: List[str], max_message: int) -> None:
        self.name = name
        self.argv = argv
        self.max_message = max_message
        self.lock = threading.Lock()          # everything below
        self.pending: Dict[int, Callable[[Outcome], None]] = {}
        self.next_id = 1
        self.out = bytearray()                # for the server's stdin, not written yet
        self.out_max = 4 * max_message + (1 << 20)
        self.out_progress = 0.0
        self.dead: Optional[str] = None       # why calls fail now
        self.tools: List[_Tool] = []
        self.version = ""
        self.warned = False
        self.ready = False                    # connected: its end is worth a warning
        self.proc: Optional[subprocess.Popen] = None
        self.to_fd = self.from_fd = -1
        self.wake_r = self.wake_w = -1
        self.thread: Optional[threading.Thread] = None
        self.stop = threading.Event()

    # -- start ----------------------------------------------------------------
    def start(self, env: Dict[str, str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        full_env = dict(os.environ)
        full_env.update(env)
        try:
            # A process group of its own: Ctrl-C at a terminal is the host's
            # to handle, and stopping the server stops what it started.
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=full_env, bufsize=0,
                                         close_fds=True, process_group=0)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _eryx.InitializationError(
                f"MCP server {self.name!r}: cannot start {self.argv[0]!r}: {why}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.to_fd = self.proc.stdin.fileno()
        self.from_fd = self.proc.stdout.fileno()
        os.set_blocking(self.to_fd, False)
        os.set_blocking(self.from_fd, False)
        try:  # out of descriptors or threads: the child started must not stay
            self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            with _live_lock:
                _live.add(self)
            self.thread = threading.Thread(target=self._io_main,
                                           name=f"eryx-mcp-{self.name}", daemon=True)
            self.thread.start()
        except BaseException:
            self.thread = None
            self.proc.kill()
            self._close_fds()
            raise
        try:
            self._handshake(deadline, timeout)
        except BaseException:
            # In the background: a failed connect returns at once.
            self.request_stop("failed to start")
            raise

    def _fail(self, what: str, why: str) -> "NoReturn":
        raise _eryx.InitializationError(f"MCP server {self.name!r} ({self.argv[0]}): "
                                        f"{what} failed: {why}")

    def _handshake(self, deadline: float, timeout: float) -> None:
        outcome = self.request_sync(
            "initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                           "clientInfo": {"name": "eryx", "version": _eryx.LIB_VERSION}},
            deadline, timeout)
        if outcome[0] != "result":
            self._fail("initialize", _describe(outcome))
        result = outcome[1]
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if not isinstance(version, str):
            self._fail("initialize", "no protocolVersion in the answer")
        if version not in KNOWN_PROTOCOL_VERSIONS:
            self._fail("initialize", f"it answered with protocol revision {version!r}; eryx "
                                     f"speaks {', '.join(KNOWN_PROTOCOL_VERSIONS)}")
        self.version = version
        try:
            self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        except MCPError as exc:
            self._fail("initialize", str(exc))
        raw: List[Any] = []
        cursor: Optional[str] = None
        for _ in range(_MAX_PAGES):
            outcome = self.request_sync("tools/list", {"cursor": cursor} if cursor else {},
                                        deadline, timeout)
            page = outcome[1] if outcome[0] == "result" else None
            if not isinstance(page, dict) or not isinstance(page.get("tools"), list):
                self._fail("tools/list", _describe(outcome) if outcome[0] != "result"
                           else "no tools array in the answer")
            raw.extend(page["tools"])
            if len(raw) > _MAX_TOOLS:
                self._fail("tools/list", f"more than {_MAX_TOOLS} tools")
            nxt = page.get("nextCursor")
            cursor = nxt if isinstance(nxt, str) and nxt else None
            if cursor is None:
                break
        else:
            self._fail("tools/list", f"more than {_MAX_PAGES} pages of tools")
        self.tools = _name_tools(self.name, raw)
        self.ready = True

    # -- requests -------------------------------------------------------------
    def send(self, msg: Dict[str, Any]) -> None:
        """Writes msg to the server's stdin now, queueing what the pipe does
        not take for the I/O thread: never blocks. MCPError when it cannot."""
        try:
            data = json.dumps(msg, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        except (TypeError, ValueError) as exc:
            raise MCPError(f"MCP server {self.name}: the request is not JSON: {exc}") from None
        if len(data) > self.max_message + 1:
            raise MCPError(f"MCP server {self.name}: the request is larger than the "
                           f"{self.max_message}-byte message limit")
        with self.lock:
            if self.dead is not None:
                raise MCPError(self.dead)
            if self.out:
                if len(self.out) + len(data) > self.out_max:
                    raise MCPError(f"MCP server {self.name} does not read its input")
                self.out += data
            else:
                try:
                    n = os.write(self.to_fd, data)
                except BlockingIOError:
                    n = 0
                except OSError:
                    raise MCPError(f"MCP server {self.name} cannot be written to "
                                   f"(it exited?)") from None
                if n == len(data):
                    return
                self.out += data[n:]
                self.out_progress = time.monotonic()
            self._wake_locked()

    def _wake_locked(self) -> None:
        if self.wake_w >= 0:
            try:
                os.write(self.wake_w, b"\0")
            except OSError:
                pass  # full: the thread is awake already

    def _register(self, deliver: Callable[[Outcome], None]) -> int:
        with self.lock:
            if self.dead is not None:
                raise MCPError(self.dead)
            rid = self.next_id
            self.next_id += 1
            self.pending[rid] = deliver
            return rid

    def _unregister(self, rid: int) -> bool:
        with self.lock:
            return self.pending.pop(rid, None) is not None

    def _cancel(self, rid: int, reason: str) -> None:
        try:
            self.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                       "params": {"requestId": rid, "reason": reason}})
        except MCPError:
            pass

    def request_sync(self, method: str, params: Dict[str, Any], deadline: float,
                     timeout: float) -> Outcome:
        """A request of our own, waited for (GIL released) until deadline."""
        fut: "concurrent.futures.Future[Outcome]" = concurrent.futures.Future()
        try:
            rid = self._register(fut.set_result)
        except MCPError as exc:
            return ("failed", str(exc))
        try:
            self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        except MCPError as exc:
            self._unregister(rid)
            return ("failed", str(exc))
        try:
            return fut.result(max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            if self._unregister(rid):
                self._cancel(rid, "no answer in time")
            return ("failed", f"no answer within {timeout:g} s (timeout_secs)")
        except BaseException:
            if self._unregister(rid):
                self._cancel(rid, "the caller stopped waiting")
            raise

    async def call(self, tool: str, arguments: Dict[str, Any], timeout: Optional[float],
                   result_format: str = "eryx") -> Any:
        """tools/call, awaited on the running loop."""
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[Outcome]" = loop.create_future()

        def deliver(outcome: Outcome) -> None:  # on the I/O thread (or close()'s)
            try:
                loop.call_soon_threadsafe(_settle, fut, outcome)
            except RuntimeError:
                pass  # the loop is closed: no one waits

        rid = self._register(deliver)
        try:
            self.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}})
        except MCPError:
            self._unregister(rid)
            raise
        try:
            outcome = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            if self._unregister(rid):
                self._cancel(rid, "the caller stopped waiting (timeout)")
            outcome = ("failed", f"MCP server {self.name}, tool {tool}: no answer within "
                                 f"{timeout:g} s")
        except BaseException:  # the task was cancelled (its run ended)
            if self._unregister(rid):
                self._cancel(rid, "the caller stopped waiting")
            raise
        return _tool_value(self.name, tool, outcome, result_format)

    # -- the I/O thread ---------------------------------------------------------
    def _io_main(self) -> None:
        try:
            how = self._serve()
        except BaseException as exc:  # never silently: calls would hang
            how = f"is unusable (eryx's reader failed: {exc!r})"
        self._set_dead(f"MCP server {self.name} {how}")
        if not self.stop.is_set() and self.ready:
            _log.warning("MCP server %s %s", self.name, how)
        # A server that closed its output (or its input) is of no more use,
        # even if it lives on: ended now, not when the manager is closed.
        self._shutdown()

    def _serve(self) -> str:
        poller = select.poll()
        poller.register(self.from_fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        writing = False
        buf = bytearray()
        skipping = False  # inside a message over the limit: dropped up to its end
        while True:
            with self.lock:
                want = bool(self.out) and self.dead is None
            if want != writing:
                if want:
                    poller.register(self.to_fd, select.POLLOUT)
                else:
                    poller.unregister(self.to_fd)
                writing = want
            events = poller.poll(200)
            if self.stop.is_set():
                return "was closed"
            readable = False
            for fd, _ in events:
                if fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 256):
                            pass
                    except OSError:
                        pass
                elif fd == self.from_fd:
                    readable = True
            self._flush()
            with self.lock:
                if self.dead is not None:  # cannot be written to, or stalled
                    return "is unusable"
            if not readable:
                continue
            try:
                data = os.read(self.from_fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                return self._exit_how()
            parts = data.split(b"\n")
            last = len(parts) - 1
            for i, part in enumerate(parts):
                if skipping:
                    skipping = i == last
                    continue
                if len(buf) + len(part) > self.max_message:
                    buf.clear()
                    skipping = i == last
                    self._fail_pending(f"MCP server {self.name} sent a message over the "
                                       f"{self.max_message}-byte limit; it was dropped, and "
                                       f"the calls in flight fail")
                    continue
                buf += part
                if i < last:
                    line = bytes(buf)
                    buf.clear()
                    self._handle_line(line)

    def _exit_how(self) -> str:
        assert self.proc is not None
        try:
            rc = self.proc.wait(0.3)
        except subprocess.TimeoutExpired:
            return "closed its output"
        return f"exited with status {rc}" if rc >= 0 else f"was killed by signal {-rc}"

    def _flush(self) -> None:
        kill = False
        with self.lock:
            if not self.out or self.dead is not None:
                return
            try:
                n = os.write(self.to_fd, self.out)
            except BlockingIOError:
                n = 0
            except OSError:
                n = -1
            if n > 0:
                del self.out[:n]
                self.out_progress = time.monotonic()
                return
            if n == 0 and time.monotonic() - self.out_progress <= _STALL_S:
                return
            kill = n == 0
        if kill:
            self._set_dead(f"MCP server {self.name} stopped reading its input; it was stopped")
            self._signal(signal.SIGKILL)
        else:
            self._set_dead(f"MCP server {self.name} cannot be written to (it exited?)")

    def _handle_line(self, line: bytes) -> None:
        if not line.strip():
            return
        wide = _peer_json.too_wide(line, self.max_message)
        limit = _peer_json.max_containers(self.max_message)
        if wide:
            if not self._refuse_unread(line, f"its JSON makes {wide} objects and arrays, more "
                                             f"than the {limit} read of one message"):
                self._fail_pending(f"MCP server {self.name} sent a message of {wide} objects "
                                   f"and arrays, more than the {limit} read of one message; it "
                                   f"was dropped, and the calls in flight fail")
            return
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError) as e:
            # A number beyond a double's range is read as inf; nesting
            # deeper than the recursion limit and broken text are not.
            why = "nested too deep" if isinstance(e, RecursionError) else "not JSON"
            if self._refuse_unread(line, why):
                return
            msg = None
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
            self._bad_line()
            return
        method = msg.get("method")
        if isinstance(method, str):
            if "id" in msg:
                # The server asks us: ping is answered, nothing else is
                # offered (no client capabilities were declared).
                reply: Dict[str, Any] = {"jsonrpc": "2.0", "id": msg["id"]}
                if method == "ping":
                    reply["result"] = {}
                else:
                    reply["error"] = {"code": -32601, "message": "method not supported by eryx"}
                try:
                    self.send(reply)
                except MCPError:
                    pass
            return  # notifications (logging, progress, list_changed): nothing to do
        rid = msg.get("id")
        if ("result" in msg) == ("error" in msg):
            self._bad_line()
            return
        if type(rid) is not int:
            return
        with self.lock:
            deliver = self.pending.pop(rid, None)
        if deliver is not None:
            self._deliver(deliver, ("result", msg["result"]) if "result" in msg
                          else ("error", msg["error"]))

    def _refuse_unread(self, line: bytes, why: str) -> bool:
        """A message that cannot be read fails the call its ends name, at
        once, with why, instead of leaving it to its timeout. False when
        they name none in flight."""
        rid = _peer_json.id_at_ends(line)
        with self.lock:
            deliver = self.pending.pop(rid, None) if rid is not None else None
        if deliver is None:
            return False
        self._deliver(deliver, ("error", {"code": -32000,
                                          "message": f"eryx did not read the answer: {why}"}))
        return True

    def _bad_line(self) -> None:
        if not self.warned:
            self.warned = True
            _log.warning("MCP server %s wrote a line that is not JSON-RPC 2.0 (skipped; "
                         "further ones are skipped silently)", self.name)

    @staticmethod
    def _deliver(deliver: Callable[[Outcome], None], outcome: Outcome) -> None:
        try:
            deliver(outcome)
        except Exception:  # a waiter that is gone
            pass

    def _fail_pending(self, message: str) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        for deliver in pending.values():
            self._deliver(deliver, ("failed", message))

    def _set_dead(self, message: str) -> None:
        with self.lock:
            if self.dead is None:
                self.dead = message
            message = self.dead
        self._fail_pending(message)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except OSError:
                pass

    # -- the end ----------------------------------------------------------------
    def request_stop(self, why: str = "was closed") -> None:
        """Fails the calls in flight and every later one, and has the I/O
        thread end the server. Does not wait."""
        self._set_dead(f"MCP server {self.name} {why}")
        self.stop.set()
        with self.lock:
            self._wake_locked()

    def _shutdown(self) -> None:
        # On the I/O thread: stdin closed (a server's cue to exit), then
        # SIGTERM, then SIGKILL to its group, each after a grace period;
        # meanwhile its output is read and dropped, so that it never blocks
        # writing.
        proc = self.proc
        assert proc is not None
        with self.lock:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            self.to_fd = -1
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            if sig is not None:
                self._signal(sig)
            self._drain_until_exit(time.monotonic() + _GRACE_S)
        # The leader may exit at its cue and leave what it started (npx,
        # sh -c ...) running in its group: that goes too.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
        self._close_fds()

    def _drain_until_exit(self, deadline: float) -> None:
        assert self.proc is not None
        while True:
            try:
                self.proc.wait(0.02)
                return
            except subprocess.TimeoutExpired:
                pass
            if self.from_fd >= 0:
                try:
                    while os.read(self.from_fd, 1 << 16):
                        pass
                except OSError:
                    pass
            if time.monotonic() >= deadline:
                return

    def _close_fds(self) -> None:
        with self.lock:
            proc = self.proc
            for f in (proc.stdin, proc.stdout) if proc is not None else ():
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
            self.to_fd = self.from_fd = -1
            for fd in (self.wake_r, self.wake_w):
                if fd >= 0:
                    os.close(fd)
            self.wake_r = self.wake_w = -1
        with _live_lock:
            _live.discard(self)


# Servers whose process may still run. At interpreter exit (after the
# program's own threads are joined) every one is stopped, so no server
# outlives its host, whether or not its manager was closed or collected.
_live: Set[_Server] = set()
_live_lock = threading.Lock()


def _stop(servers: Sequence[_Server]) -> None:
    """Stops the servers together and waits (at most ~3 grace periods)."""
    for s in servers:
        s.request_stop()
    deadline = time.monotonic() + 3 * _GRACE_S + 1.0
    for s in servers:
        t = s.thread
        if t is not None and t is not threading.current_thread():
            t.join(max(0.0, deadline - time.monotonic()))


@atexit.register
def _stop_all_at_exit() -> None:
    with _live_lock:
        servers = list(_live)
    _stop(servers)


class _ToolFn:
    """The callback of one tool: ``await mcp.SERVER.TOOL(**arguments)``.
    Holds the manager so that it lives while a sandbox can call it."""

    __slots__ = ("manager", "server", "tool", "timeout")

    def __init__(self, manager: "MCPManager", server: _Server, tool: str,
                 timeout: Optional[float]) -> None:
        self.manager = manager
        self.server = server
        self.tool = tool
        self.timeout = timeout

    async def __call__(self, /, **arguments: Any) -> Any:
        return await self.server.call(self.tool, arguments, self.timeout,
                                      self.manager._result_format)


class MCPManager:
    """Connections to MCP servers (stdio transport) whose tools sandboxes can call.

    ``Sandbox(mcp=manager)`` and ``Session(mcp=manager)`` (and pools and
    factory sandboxes) offer each tool as the host function
    ``mcp.SERVER.TOOL``: the code awaits ``mcp.fs.read_file(path="x")``, or
    ``mcp["fs"].read_file(path="x")``. Tool names that are not Python
    identifiers are mapped as by the eryx command (``get-sum`` → ``get_sum``).

    Example::

        with eryx.MCPManager() as manager:
            manager.connect("fs", "npx", ["-y", "@modelcontextprotocol/server-filesystem", "."])
            sandbox = eryx.Sandbox(mcp=manager)
            sandbox.execute('print(await mcp.fs.read_text_file(path="README.md"))')

    Args (keyword-only, ours):
        max_message: the largest JSON-RPC message taken from or sent to a
            server (default 16 MiB): a larger answer is dropped as it
            streams, and the calls in flight fail.
        result_format: what a call returns. ``"eryx"`` (the default): the
            result's structuredContent when it has one, else the text of
            its content items joined by newlines when all are text (a
            str, never parsed), else the content list; None for no
            content. ``"pyeryx"``, for code written for the reference's
            binding: structuredContent unless absent or null, else the
            one text item parsed as JSON when it parses, else
            ``{"text": the text items joined by newlines}`` (other items
            left out).
    """

    def __init__(self, *, max_message: int = DEFAULT_MAX_MESSAGE,
                 result_format: str = "eryx") -> None:
        if isinstance(max_message, bool) or not isinstance(max_message, int) or \
                max_message < 1024:
            raise ValueError("max_message must be an int of at least 1024")
        if result_format not in RESULT_FORMATS:
            raise ValueError(f"result_format is 'eryx' or 'pyeryx', not {result_format!r}")
        self._max_message = max_message
        self._result_format = result_format
        self._lock = threading.Lock()
        self._servers: Dict[str, _Server] = {}
        self._connecting: Set[str] = set()

    def connect(self, name: str, command: str, args: Sequence[str] = (),
                env: Optional[Mapping[str, str]] = None, timeout_secs: float = 30.0) -> int:
        """Starts the server ``command args...`` (no shell; found on PATH) with
        ``env`` added to this process's environment, performs MCP's handshake
        and lists its tools, within timeout_secs. Its stderr is this process's.

        name: how the code reaches it (``mcp.NAME``): a Python identifier.
        Returns the number of its tools.

        Raises:
            InitializationError: the command cannot be started, exits, does not
                answer in time, or answers with something that is not MCP.
            ValueError: name is not an identifier or is connected already.
        """
        if not _is_server_name(name):
            raise ValueError(f"an MCP server's name must be a Python identifier (ASCII, "
                             f"at most 64 characters, not a keyword), not {name!r}")
        if not isinstance(command, str) or not command:
            raise TypeError("command must be a non-empty str")
        if isinstance(args, (str, bytes)):
            raise TypeError("args must be a list of str, not a str")
        argv = [command]
        for a in args:
            a = os.fspath(a)
            if not isinstance(a, str):
                raise TypeError(f"args must be a list of str, not {type(a).__name__}")
            argv.append(a)
        env_d: Dict[str, str] = {}
        for k, v in (env or {}).items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("env must be a dict of str to str")
            env_d[k] = v
        if isinstance(timeout_secs, bool) or not isinstance(timeout_secs, (int, float)) or \
                not math.isfinite(timeout_secs) or timeout_secs <= 0:
            raise ValueError(f"timeout_secs must be a positive number, not {timeout_secs!r}")
        with self._lock:
            if name in self._servers or name in self._connecting:
                raise ValueError(f"an MCP server named {name!r} is connected already")
            self._connecting.add(name)
        try:
            server = _Server(name, argv, self._max_message)
            server.start(env_d, float(timeout_secs))
            with self._lock:
                self._servers[name] = server
        finally:
            with self._lock:
                self._connecting.discard(name)
        return len(server.tools)

    def connect_http(self, name: str, url: str, headers: Optional[Mapping[str, str]] = None,
                     timeout_secs: float = 30.0, *, transport: str = "http") -> int:
        """Connects a remote server at url (``http://`` or ``https://``),
        with headers on every request (``{"Authorization": "Bearer ..."}``),
        through the eryx command's ``eryx mcp-proxy`` (found as ``python -m
        eryx`` finds it). transport: ``"http"`` (MCP's Streamable HTTP),
        ``"sse"`` (the older HTTP+SSE, with url its event stream's) or
        ``"auto"`` (Streamable HTTP, then HTTP+SSE if the server refuses
        it). Ours: the reference's manager speaks stdio only. Returns the
        number of its tools.

        Raises:
            InitializationError: as connect (the server cannot be reached,
                refuses, or does not speak MCP).
            ValueError: a name as connect refuses, a URL that is not http(s),
                a header that is not ``name: value`` on one line, another
                transport, or no eryx command.
        """
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, not {url!r}")
        if transport not in ("http", "sse", "auto"):
            raise ValueError(f"transport is 'http', 'sse' or 'auto', not {transport!r}")
        args = ["mcp-proxy", url, "--transport", transport]
        for k, v in (headers or {}).items():
            if not isinstance(k, str) or not isinstance(v, str) or not k or \
                    any(c in k for c in ": \t\r\n") or "\r" in v or "\n" in v:
                raise ValueError(f"header {k!r}: want a name and a value on one line")
            args += ["--header", f"{k}: {v}"]
        from .__main__ import _find_cli
        cli = _find_cli()
        if not cli or not os.access(cli, os.X_OK):
            raise ValueError("connect_http needs the eryx command (eryx mcp-proxy): set "
                             "ERYX_CLI or put eryx on PATH")
        return self.connect(name, cli, args, None, timeout_secs)

    @property
    def server_names(self) -> List[str]:
        """The names of the connected servers, in the order they were connected."""
        with self._lock:
            return list(self._servers)

    def list_tools(self) -> List[Dict[str, Any]]:
        """Every tool of every server: dicts with "name" (how the code calls
        it: ``mcp["SERVER"].TOOL``), "description", "schema" (its input
        schema), and, ours, "server", "tool" (the MCP name) and "callback"
        (the host function's name, ``mcp.SERVER.TOOL``, as list_callbacks()
        shows it inside)."""
        with self._lock:
            servers = list(self._servers.values())
        return [{"name": f'mcp["{s.name}"].{t.pyname}', "description": t.description,
                 "schema": copy.deepcopy(t.schema), "server": s.name, "tool": t.name,
                 "callback": t.callback}
                for s in servers for t in s.tools]

    def close(self) -> None:
        """Shuts every server down and waits for it (seconds at most): its
        stdin is closed; one that has not exited a second later gets SIGTERM,
        a second after that SIGKILL (to its process group). Calls in flight
        and later calls of sandboxes made with this manager fail with a
        CallbackError. Idempotent; servers can be connected again after."""
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        _stop(servers)

    def _entries(self, callback_timeout_ms: Optional[int]) -> List[_Entry]:
        timeout = None if callback_timeout_ms is None else \
            callback_timeout_ms / 1000 + _TIMEOUT_MARGIN_S
        with self._lock:
            servers = list(self._servers.values())
        return [_Entry(t.callback, _ToolFn(self, s, t.name, timeout),
                       f"{t.description} (MCP tool '{t.name}' of server {s.name})", t.schema)
                for s in servers for t in s.tools]

    def __enter__(self) -> "MCPManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # Collected: its servers end in the background (their I/O threads
        # do it), so collection never waits on a server.
        servers = getattr(self, "_servers", None)
        if servers:
            for s in list(servers.values()):
                s.request_stop()

    def __repr__(self) -> str:
        with self._lock:
            servers = list(self._servers.values())
        return (f"<eryx.MCPManager servers={[s.name for s in servers]}, "
                f"{sum(len(s.tools) for s in servers)} tools>")


def merge(entries: List[_Entry], mcp: Any, callback_timeout_ms: Optional[int]) -> List[_Entry]:
    """The callbacks of a sandbox config with the tools of mcp= added."""
    if mcp is None:
        return entries
    if not isinstance(mcp, MCPManager):
        raise TypeError(f"mcp must be an eryx.MCPManager, not {type(mcp).__name__}")
    tools = mcp._entries(callback_timeout_ms)
    names = {e.name for e in entries}
    for e in tools:
        if e.name in names:
            raise ValueError(f"a callback is named {e.name!r}, like a tool of the MCPManager")
    return entries + tools
