"""eryx.remote: sessions run by an `eryx serve` server, with the local API.

    >>> from eryx import remote
    >>> with remote.Session("ws://127.0.0.1:8700", token="...", session="work") as s:
    ...     s.execute("x = 41")
    ...     print(s.execute("print(x + 1)").stdout)
    42

The protocol is docs/serve.md: one WebSocket (RFC 6455) connection per
Session object, one JSON object per message. Output, callback calls and
their replies travel on that connection while the code runs. A session's
state lives on the server side (in Redis when the replicas share one), so
any replica behind a load balancer may run the next execute: the
connection is opened again, once, when it was closed while idle.

Standard library only (socket, ssl, json): the client needs no package
beyond this one.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import json
import os
import socket
import threading
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import _callbacks, _eryx, _peer_json
from ._callbacks import CallbacksArg
from ._websocket import TEXT, Closed, HandshakeError, ProtocolError, WebSocket, parse_url

EryxError = _eryx.EryxError
OutputFn = Optional[Callable[[str], None]]

# liberyx's status codes (include/eryx.h, ERYX_STATUS_MAP) of the server's
# `done` statuses, for a server that does not send its "rc": so that
# ExecuteResult.status means the same as locally.
_STATUS_CODES = {"ok": 0, "exception": 4, "trap": 5, "dead": 6, "timeout": 12,
                 "interrupted": 13, "fuel": 14}
_NOMEM = 1
# A server silent for the run's time limit and this many seconds more is
# given up on (RemoteConnectionError): a stopped or wedged server. The
# limit is the request's or the server's (Eryx-Max-Timeout-Ms), the
# smaller. The grace covers its own limit and its default waits for a
# session's lock (10 s) and a pooled sandbox (2 s), in which it sends
# nothing. Until 2026-12-07 the client waited forever.
_SILENCE_GRACE = 15
# A request that runs no code (delete, fork, export, ping, ...) is answered
# within the server's waits for a lock and its store: a server silent this
# long is given up (close() of a Session that deletes its own waited
# forever on one that had stopped answering).
_SIMPLE_SILENCE = 60
_REPLY_KINDS = {_eryx.CALL_FAILED: "failed", _eryx.CALL_INVALID_ARGS: "invalid_arguments",
                _eryx.CALL_TIMEOUT: "timeout"}


# -- errors ----------------------------------------------------------------

class RemoteError(EryxError):
    """The server refused or failed a request. ``code`` is its error code
    (docs/serve.md: ``bad_request``, ``not_found``, ``locked``, ...), or
    ``connection`` / ``protocol`` / ``http_NNN`` for failures below the
    protocol."""

    def __init__(self, message: str, code: str = "internal") -> None:
        super().__init__(message)
        self.code = code
        self.result = None
        self.status = -1


class AuthenticationError(RemoteError):
    """The server refused the token (HTTP 401)."""


class BusyError(RemoteError):
    """The server is at its limit of connections or sandboxes (``busy``)."""


class SessionNotFoundError(RemoteError):
    """No session of that name (``not_found``)."""


class SessionExistsError(RemoteError):
    """A session of that name exists already (``exists``)."""


class SessionLockedError(RemoteError):
    """The session stayed busy with another request past the wait (``locked``)."""


class JournalError(RemoteError, _eryx.JournalError):
    """A resume was refused: ``journal_invalid`` (forged, altered, another
    build, expired), ``journal_used`` (resumed before) or ``journal_stale``
    (the session changed since); or a suspension could give no token
    (``journal_too_large``: over what a resume may carry under the server's
    --max-message; the execution was ended). Also an
    ``eryx.JournalError``, the local journals' error."""


class RemoteConnectionError(RemoteError, ConnectionError):
    """The server could not be reached, or the connection broke during a
    request (the server may or may not have run it); also a builtin
    ConnectionError."""


_ERRORS: Dict[str, type] = {
    "busy": BusyError, "not_found": SessionNotFoundError, "exists": SessionExistsError,
    "locked": SessionLockedError, "journal_invalid": JournalError,
    "journal_used": JournalError, "journal_stale": JournalError,
    "journal_too_large": JournalError,
}


def _error(ev: Mapping[str, Any]) -> RemoteError:
    code = str(ev.get("code") or "internal")
    message = str(ev.get("message") or code)
    return _ERRORS.get(code, RemoteError)(f"{code}: {message}", code)


class Suspend(Exception):
    """Raised by a callback to suspend the execution instead of answering:
    ``execute`` then returns a ``Suspended`` whose journal ``resume`` takes,
    on this or any replica, later."""


# -- results ---------------------------------------------------------------

class ExecuteResult:
    """What one remote execution produced: the attributes of the local
    ``eryx.ExecuteResult`` (``str(result)`` is stdout), plus where it ran
    (``replica``) and the session's ``version`` after it (``saved``: whether
    the server stored that state)."""

    __slots__ = ("stdout", "stderr", "duration_ms", "callback_invocations",
                 "peak_memory_bytes", "fuel_consumed", "result", "result_json",
                 "result_error", "exception_type", "exception_message", "traceback",
                 "exit_code", "exited", "stdout_truncated", "stderr_truncated",
                 "hard_stopped", "stopped", "status", "status_name", "session", "version",
                 "saved", "replica", "server_stopping", "output_dropped")

    def __init__(self, ev: Mapping[str, Any], stdout: str, stderr: str) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.status_name = str(ev.get("status") or "ok")
        rc = ev.get("rc")
        self.status = rc if isinstance(rc, int) else _STATUS_CODES.get(self.status_name, 9)
        self.duration_ms = float(ev.get("duration_ms") or 0.0)
        self.callback_invocations = int(ev.get("callbacks") or 0)
        self.peak_memory_bytes = ev.get("memory_bytes")
        self.fuel_consumed = ev.get("fuel")
        # result_json comes only when `result` lost digits on the way (an
        # integer beyond 64 bits, read by the server as a float), or is
        # absent because the server did not read a result too structured
        # for its bound (result_error then says so, for clients that read
        # `result` alone): it is the exact text, as the local package's
        # result_json is, and the value is whole.
        exact = ev.get("result_json")
        self.result_error = ev.get("result_error")
        if isinstance(exact, str):
            self.result_json = exact
            try:
                self.result, self.result_error = json.loads(exact), None
            except (ValueError, RecursionError) as e:  # more digits than this Python reads
                self.result = None
                self.result_error = f"the sandbox reported a result this Python cannot read: {e}"
        else:
            self.result = ev.get("result")
            self.result_json = None if self.result is None else json.dumps(self.result)
        self.exception_type = ev.get("exc_type")
        self.exception_message = ev.get("exc_message")
        self.traceback = ev.get("traceback")
        self.exit_code = int(ev.get("exit_code") or 0)
        self.exited = bool(ev.get("exited", False))
        self.stdout_truncated = bool(ev.get("stdout_truncated", False))
        self.stderr_truncated = bool(ev.get("stderr_truncated", False))
        self.hard_stopped = bool(ev.get("hard_stopped", False))
        stopped = ev.get("stopped")
        self.stopped = stopped if stopped in ("timeout", "interrupted") else None
        # Interrupted by the server's own stop (SIGTERM), not by a cancel.
        self.server_stopping = bool(ev.get("server_stopping", False))
        # Bytes of output the server did not send: this client took no more
        # once the run was being stopped (docs/serve.md).
        dropped = ev.get("output_dropped")
        self.output_dropped = dropped if isinstance(dropped, int) and dropped > 0 else 0
        self.session = ev.get("session")
        self.version = ev.get("version")
        self.saved = bool(ev.get("saved", False))
        self.replica = ev.get("replica")

    def __str__(self) -> str:
        return self.stdout

    def __repr__(self) -> str:
        return (f"remote.ExecuteResult(stdout={self.stdout!r}, stderr={self.stderr!r}, "
                f"status={self.status_name!r}, duration_ms={self.duration_ms!r}, "
                f"result={self.result!r}, replica={self.replica!r})")


def _call_args(ev: Mapping[str, Any]) -> Dict[str, Any]:
    """A call's arguments: exact from args_json when the server sent it
    (an integer beyond 64 bits, which its ``args`` carries as a float)."""
    exact = ev.get("args_json")
    args = json.loads(exact) if isinstance(exact, str) else ev.get("args")
    return args if isinstance(args, dict) else {}


class PendingCall:
    """A callback call the suspended execution waits on."""

    __slots__ = ("call", "name", "args")

    def __init__(self, d: Mapping[str, Any]) -> None:
        self.call: int = d.get("call")  # type: ignore[assignment]
        self.name: str = d.get("name", "")
        self.args: Dict[str, Any] = _call_args(d)

    def __repr__(self) -> str:
        return f"PendingCall(call={self.call!r}, name={self.name!r}, args={self.args!r})"


class Suspended:
    """A suspended execution: ``journal`` (a signed token, str) to give to
    ``resume``, the ``pending`` calls it waits on, and the output so far."""

    __slots__ = ("journal", "pending", "stdout", "stderr", "session", "replica")

    def __init__(self, ev: Mapping[str, Any], stdout: str, stderr: str) -> None:
        self.journal: str = ev.get("journal", "")
        self.pending = [PendingCall(p) for p in ev.get("pending") or []]
        self.stdout = stdout
        self.stderr = stderr
        self.session = ev.get("session")
        self.replica = ev.get("replica")

    def __repr__(self) -> str:
        return f"remote.Suspended(pending={self.pending!r}, journal={len(self.journal)} chars)"


def _raise_for_status(r: ExecuteResult) -> None:
    """The exception the local API raises for the same ending."""
    s = r.status_name
    if s == "ok":
        return
    stopped = " (stopped hard: the sandbox is dead)" if r.hard_stopped else ""
    if s == "exception":
        cls = _eryx.ResourceLimitError if r.exception_type == "MemoryError" \
            else _eryx.ExecutionError
        msg = r.traceback or f"{r.exception_type}: {r.exception_message}"
    elif s == "timeout":
        cls, msg = _eryx.TimeoutError, f"execution timed out{stopped}"
    elif s == "interrupted" and r.server_stopping:
        # Not a cancel: the service went away (a connection error, as when
        # it cannot be reached). Until 2026-12-07 a CancelledError.
        exc = RemoteConnectionError(f"the server is stopping: it interrupted the execution"
                                    f"{stopped} (its session keeps what ran)", "server_stopping")
        exc.result = r  # type: ignore[attr-defined]
        raise exc
    elif s == "interrupted":
        cls, msg = _eryx.CancelledError, f"execution interrupted{stopped}"
    elif s == "fuel":
        cls, msg = _eryx.ResourceLimitError, "execution ran out of fuel (the sandbox is dead)"
    elif r.status == _NOMEM:
        cls, msg = _eryx.ResourceLimitError, "the sandbox ran out of memory"
    elif s == "trap":
        cls, msg = _eryx.ExecutionError, "the sandboxed code trapped (the sandbox is dead)"
    elif s == "dead":
        cls, msg = EryxError, ("the sandbox can no longer run code (an earlier run trapped, "
                               "was stopped hard or called os._exit); reset it")
    elif s == "diverged":
        cls, msg = _eryx.JournalError, ("the resumed code did not make the journal's calls "
                                        "again (it diverged from the recorded execution)")
    else:
        cls, msg = EryxError, f"the execution ended with status {s!r}"
    exc = cls(msg)
    exc.result = r  # type: ignore[assignment]  # the remote result: the same attributes
    exc.status = r.status
    raise exc


# -- the client ------------------------------------------------------------

class _Request:
    """The request running on a connection: what another thread needs to
    cancel or suspend it, and what callback workers need to reply."""

    def __init__(self, conn: WebSocket, rid: int) -> None:
        self.conn = conn
        self.rid = rid
        self.done = False           # its done came: the connection is as it was
        self.suspending = False
        self.pending = 0            # calls the server asked and we have not answered
        self.stdin: Optional[StdinRead] = None   # a file given as stdin: its read
        self.silence: Optional[float] = None     # seconds the server may send nothing
        self.silence_why = ""                    # ...and why that long, for the error
        self.lock = threading.Lock()

    def send(self, msg: Dict[str, Any]) -> None:
        msg["id"] = self.rid
        try:
            self.conn.send_text(json.dumps(msg))
        except (OSError, Closed):
            pass  # the reading thread sees the connection end

    def answered(self) -> bool:
        """Counts a reply about to be sent; False once suspending (the call
        then stays pending, for the journal)."""
        with self.lock:
            if self.suspending:
                return False
            self.pending -= 1
            return True

    def suspend(self, only_if_pending: bool = False) -> None:
        with self.lock:
            if self.suspending or (only_if_pending and self.pending <= 0):
                return
            self.suspending = True
        self.send({"op": "suspend"})

    def suspend_refused(self) -> None:
        # The server had no call pending when our suspend came (a reply
        # crossed it): the execution goes on.
        with self.lock:
            self.suspending = False


class _Output:
    """A run's output as it arrives, at most cap characters a stream: a
    hostile or broken server cannot grow it without bound (the server's own
    limit bounds an honest one). What is beyond is dropped, and the result
    says so (stdout_truncated, stderr_truncated); the output functions
    still get every chunk."""

    __slots__ = ("cap", "parts", "size", "cut")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: Dict[int, List[str]] = {1: [], 2: []}
        self.size = {1: 0, 2: 0}
        self.cut = {1: False, 2: False}

    def add(self, fd: int, text: str) -> None:
        room = self.cap - self.size[fd]  # never negative
        if len(text) > room:
            text = text[:room]
            self.cut[fd] = True
        if text:
            self.parts[fd].append(text)
            self.size[fd] += len(text)

    def text(self, fd: int) -> str:
        return "".join(self.parts[fd])


class _Client:
    """The connection, the request loop and callbacks, shared by Session
    and Sandbox."""

    def __init__(self, url: str, token: Optional[str] = None, *, callbacks: CallbacksArg = None,
                 timeout_ms: Optional[int] = None, ca_file: Optional[str] = None,
                 connect_timeout: float = 10.0, on_stdout: OutputFn = None,
                 on_stderr: OutputFn = None, token_file: Optional[str] = None,
                 max_message: int = 64 << 20,
                 client_cert: Union[str, Tuple[str, str], None] = None) -> None:
        parse_url(url)  # a bad URL fails here, not at the first execute
        if token is None and token_file is not None:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        if timeout_ms is not None and (isinstance(timeout_ms, bool) or
                                       not isinstance(timeout_ms, int) or timeout_ms <= 0):
            raise ValueError("timeout_ms must be a positive int or None")
        self.url = url
        self._token = token
        self._ca_file = ca_file
        self._connect_timeout = connect_timeout
        self._max_message = max_message
        self._client_cert = (client_cert, client_cert) if isinstance(client_cert, str) \
            else client_cert
        self._callbacks = callbacks
        self._entries = _callbacks.normalise(callbacks)
        self._dispatch = _callbacks.make_dispatch(self._entries, reraise=(Suspend,))
        self._decls = [{"name": e.name, "description": e.description, "schema": e.schema}
                       for e in self._entries]
        self.timeout_ms = timeout_ms
        self._on_stdout = on_stdout
        self._on_stderr = on_stderr
        self._conn: Optional[WebSocket] = None
        self._next_id = 0
        self._lock = threading.Lock()       # one request at a time per object
        self._active: Optional[_Request] = None
        self._workers: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._closed = False

    # -- connection ------------------------------------------------------

    def _connect(self) -> WebSocket:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            return WebSocket.connect(self.url, headers=headers, ca_file=self._ca_file,
                                     client_cert=self._client_cert,
                                     timeout=self._connect_timeout,
                                     max_message=self._max_message)
        except HandshakeError as exc:
            raise _refusal(exc) from None
        except ProtocolError as exc:
            raise RemoteError(f"{self.url} is not an eryx server: {exc}", "protocol") from None
        except OSError as exc:
            why = str(exc)
            if getattr(exc, "reason", None) == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
                why = f"the server requires a client certificate (client_cert=...): {exc}"
            raise RemoteConnectionError(f"cannot connect to {self.url}: {why}",
                                        "connection") from None

    def _send(self, msg: Dict[str, Any]) -> _Request:
        """Sends a request. A connection found closed (or failing on send)
        is replaced once: a request not sent cannot have run, so sending it
        again on a new connection, maybe to another replica, is safe."""
        retried = False
        while True:
            conn = self._conn
            if conn is None or not conn.usable():
                if conn is not None:
                    conn.abort()
                self._conn = None
                conn = self._conn = self._connect()
                retried = True
            self._next_id += 1
            msg["id"] = self._next_id
            text = json.dumps(msg)      # ASCII: its length is its size in bytes
            if len(text) > conn.send_max:
                # The server would close the connection on it (1009).
                raise RemoteError(f"too_large: the request is {len(text)} bytes, over the "
                                  f"{conn.send_max} one message to the server may carry (its "
                                  f"--max-message)", "too_large")
            try:
                conn.send_text(text)
                return _Request(conn, self._next_id)
            except (OSError, Closed) as exc:
                conn.abort()
                self._conn = None
                if retried:
                    raise RemoteConnectionError(f"sending to {self.url} failed: {exc}",
                                                "connection") from None
                retried = True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    # -- requests --------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"this remote {type(self).__name__} is closed")

    def _simple(self, msg: Dict[str, Any]) -> Dict[str, Any]:
        """A request answered by one `done` (or `error`): its fields."""
        self._check_open()
        with self._lock:
            req = self._send(msg)
            req.silence = _SIMPLE_SILENCE
            req.silence_why = "the most a request that runs no code takes"
            try:
                while True:
                    ev = self._event(req)
                    if ev is None:
                        continue
                    if ev.get("ev") == "error":
                        raise _error(ev)
                    if ev.get("ev") == "done":
                        return {k: v for k, v in ev.items() if k not in ("ev", "id")}
            except RemoteError:
                raise
            except BaseException:
                self._drop()
                raise

    def _event(self, req: _Request) -> Optional[Dict[str, Any]]:
        """The next event of req, None for one that belongs elsewhere."""
        try:
            opcode, data = req.conn.recv(req.silence)
        except socket.timeout:
            self._drop()
            raise RemoteConnectionError(f"the server sent nothing for {req.silence:g} s, "
                                        f"{req.silence_why}: "
                                        f"given up (it may or may not have run)",
                                        "connection") from None
        except Closed as exc:
            self._drop()
            raise RemoteConnectionError(f"{exc} during the request (it may or may not have "
                                        f"run)", "connection") from None
        except ProtocolError as exc:
            self._drop()
            raise RemoteError(f"the server broke the protocol: {exc}", "protocol") from None
        except OSError as exc:
            self._drop()
            raise RemoteConnectionError(f"the connection failed during the request: {exc}",
                                        "connection") from None
        if opcode != TEXT:
            return None
        wide = _peer_json.too_wide(data, self._max_message)
        if wide:
            self._drop()
            raise RemoteError(f"the server sent a message of {wide} objects and arrays, more "
                              f"than the {_peer_json.max_containers(self._max_message)} read of "
                              f"one message", "protocol")
        try:
            ev = json.loads(data)
        except ValueError:
            self._drop()
            raise RemoteError("the server sent a message that is not JSON", "protocol") from None
        if not isinstance(ev, dict) or ev.get("id") != req.rid:
            return None  # an answer to a request given up earlier
        return ev

    def _run(self, msg: Dict[str, Any], stdin: Optional[StdinRead] = None
             ) -> Union[ExecuteResult, Suspended]:
        """An execute or resume: output, calls, then its end."""
        self._check_open()
        if self._decls:
            msg["callbacks"] = self._decls
        with self._lock:
            req = self._send(msg)
            req.stdin = stdin
            limit = _run_limit_ms(msg.get("timeout_ms"), req.conn.peer_max_timeout_ms)
            if limit:
                req.silence = limit / 1000 + _SILENCE_GRACE
                req.silence_why = (f"past the run's time limit ({limit} ms) and "
                                   f"{_SILENCE_GRACE} s of grace")
            self._active = req
            try:
                return self._events(req)
            except RemoteError:
                raise
            except BaseException:
                # KeyboardInterrupt, a failing output function...: the
                # connection's state is unknown; dropping it cancels the run.
                # Not the error a finished run raises (ExecutionError,
                # TimeoutError...): its connection is fine, and was dropped
                # and made again for each (an audit's finding).
                if not req.done:
                    self._drop()
                raise
            finally:
                self._active = None

    def _events(self, req: _Request) -> Union[ExecuteResult, Suspended]:
        out = _Output(self._max_message)
        while True:
            ev = self._event(req)
            if ev is None:
                continue
            kind = ev.get("ev")
            if kind == "output":
                self._output(ev, out)
            elif kind == "call":
                self._start_call(req, ev)
            elif kind == "read":
                self._submit(self._read_stdin, req, ev.get("max"))
            elif kind == "done":
                r = ExecuteResult(ev, out.text(1), out.text(2))
                r.stdout_truncated |= out.cut[1]
                r.stderr_truncated |= out.cut[2]
                self._ran(r)
                req.done = True
                _raise_for_status(r)
                return r
            elif kind == "suspended":
                return Suspended(ev, out.text(1), out.text(2))
            elif kind == "error":
                if req.suspending and ev.get("code") == "bad_request":
                    req.suspend_refused()
                    continue
                raise _error(ev)

    def _ran(self, r: ExecuteResult) -> None:
        pass

    def _output(self, ev: Dict[str, Any], out: _Output) -> None:
        fd = 2 if ev.get("fd") == 2 else 1
        text = ev.get("data")
        if text is None:
            raw = base64.b64decode(ev.get("b64") or "")
            text = raw.decode("utf-8", "replace")
        out.add(fd, text)
        fn = self._on_stderr if fd == 2 else self._on_stdout
        if fn is not None:
            fn(text)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        # Callbacks and stdin reads run on worker threads: a slow one must
        # not stop this thread from reading output, other calls or the end
        # of the run.
        if self._workers is None:
            self._workers = concurrent.futures.ThreadPoolExecutor(
                max_workers=16, thread_name_prefix="eryx-remote-callback")
        self._workers.submit(fn, *args)

    def _start_call(self, req: _Request, ev: Dict[str, Any]) -> None:
        with req.lock:
            req.pending += 1
        self._submit(self._call, req, ev.get("call"), str(ev.get("name")), _call_args(ev))

    def _read_stdin(self, req: _Request, most: Any) -> None:
        """Answers a read event: up to most bytes of the stdin file, or its
        end (also when reading it fails: the code's read sees the end)."""
        data: Union[bytes, str] = b""
        if req.stdin is not None:
            try:
                data = req.stdin(most if isinstance(most, int) and most > 0 else 65536)
            except (OSError, ValueError):
                data = b""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if data:
            req.send({"op": "stdin", "b64": base64.b64encode(data).decode("ascii")})
        else:
            req.send({"op": "stdin", "eof": True})

    def _call(self, req: _Request, call: Any, name: str, args: Any) -> None:
        try:
            reply = self._dispatch(name, json.dumps(args))
        except Suspend:
            req.suspend()
            return
        if not req.answered():
            return  # the execution is being suspended: this call stays pending
        if isinstance(reply, str):
            # As text, which the server hands the guest as it is: an
            # integer beyond 64 bits in "result" would reach it as a float.
            text = f'{{"op":"reply","id":{json.dumps(req.rid)},"call":{json.dumps(call)},' \
                   f'"result_json":{json.dumps(reply)}}}'
            if len(text) <= req.conn.send_max:
                try:
                    req.conn.send_text(text)
                except (OSError, Closed):
                    pass
                return
            # Sent, it would end the connection and the execution with it:
            # the code gets a failed call instead, as for any callback error.
            reply = (_eryx.CALL_FAILED,
                     f"the callback's result is {len(reply)} bytes of JSON, more than one "
                     f"message to the server may carry ({req.conn.send_max} bytes, its "
                     f"--max-message)")
        kind, message = reply
        req.send({"op": "reply", "call": call,
                  "error": {"kind": _REPLY_KINDS.get(kind, "failed"), "message": message}})

    # -- from other threads ----------------------------------------------

    def interrupt(self) -> None:
        """Cancels the execution in progress (safe from any thread): the
        server interrupts the code and the execute raises
        ``eryx.CancelledError``. No-op when idle."""
        req = self._active
        if req is not None:
            req.send({"op": "cancel"})

    def suspend(self) -> None:
        """Asks the server to suspend the execution in progress (from
        another thread, while it waits on callbacks): execute then returns
        a ``Suspended``. No-op when idle."""
        req = self._active
        if req is not None:
            req.suspend(only_if_pending=True)

    def resume(self, journal: Union[str, Suspended],
               replies: Union[Mapping[int, Any], Sequence[Mapping[str, Any]], None] = None, *,
               timeout_ms: Optional[int] = None) -> Union[ExecuteResult, Suspended]:
        """Continues a suspended execution, on any replica that shares the
        journal key: the session's state from before it is restored and the
        journal replayed, then the code goes on from where it waited.

        replies answers the pending calls: ``{call: value}`` (an Exception
        instance as value fails the call) or the protocol's list of
        ``{"call", "result"}`` / ``{"call", "error"}``. Calls left
        unanswered are asked again through this object's callbacks.
        Raises JournalError (``journal_invalid``, ``journal_used``,
        ``journal_stale``).
        """
        if isinstance(journal, Suspended):
            journal = journal.journal
        msg: Dict[str, Any] = {"op": "resume", "journal": journal}
        if replies:
            msg["replies"] = _replies(replies)
        return self._run(*_limits(msg, timeout_ms or self.timeout_ms, None, None))

    # -- common requests -------------------------------------------------

    def ping(self) -> Dict[str, Any]:
        """A round trip to the server; its answer (``replica`` among others)."""
        return self._simple({"op": "ping"})

    def close(self) -> None:
        """Closes the connection (the closing handshake). Idempotent."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._workers is not None:
            self._workers.shutdown(wait=False)

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.abort()


def _refusal(exc: HandshakeError) -> RemoteError:
    detail = ""
    try:
        body = json.loads(exc.body)
        if isinstance(body, dict):
            detail = str(body.get("message") or body.get("error") or "")
    except ValueError:
        detail = exc.body.decode("utf-8", "replace").strip()[:200]
    suffix = f": {detail}" if detail else ""
    if exc.status == 401:
        return AuthenticationError(f"the server refused the token (HTTP 401){suffix}",
                                   "unauthorized")
    if exc.status == 503:
        return BusyError(f"the server is busy (HTTP 503){suffix}", "busy")
    return RemoteError(f"the server refused the connection (HTTP {exc.status} "
                       f"{exc.reason}){suffix}", f"http_{exc.status}")


def _source(code: Union[str, bytes]) -> str:
    if isinstance(code, bytes):
        code = code.decode("utf-8")
    if not isinstance(code, str):
        raise TypeError(f"code must be str, not {type(code).__name__}")
    return code


StdinArg = Union[str, IO[Any], None]
StdinRead = Callable[[int], Union[bytes, str]]


def _stdin_read(stdin: StdinArg) -> Optional[StdinRead]:
    """How a file object given as stdin is read: a part at a time, what is
    there (read1), from a text file's binary buffer when it has one."""
    if stdin is None or isinstance(stdin, str):
        return None
    src = getattr(stdin, "buffer", None) or stdin
    read = getattr(src, "read1", None) or getattr(src, "read", None)
    if not callable(read):
        raise TypeError(f"stdin must be str, a file object or None, not {type(stdin).__name__}")
    return read


def _run_limit_ms(own: Optional[int], server: Optional[int]) -> Optional[int]:
    """The run's time limit as far as the client knows: the request's or
    the server's (its handshake says it), the smaller; None if neither."""
    known = [t for t in (own, server) if t]
    return min(known) if known else None


def _limits(msg: Dict[str, Any], timeout_ms: Optional[int], fuel: Optional[int],
            stdin: StdinArg) -> Tuple[Dict[str, Any], Optional[StdinRead]]:
    """msg with the run's limits and stdin: a str goes whole in the request;
    a file object is read as the code reads (the server's read events)."""
    if timeout_ms is not None:
        msg["timeout_ms"] = timeout_ms
    if fuel is not None:
        msg["fuel"] = fuel
    read = _stdin_read(stdin)
    if read is not None:
        msg["stdin_stream"] = True
    elif stdin is not None:
        msg["stdin"] = stdin
    return msg, read


class Session(_Client):
    """A session on an `eryx serve` server: its state (globals, imports,
    /tmp) persists between executions, on the server, under its name.

    Args:
        url: ``ws://HOST:PORT`` or ``wss://HOST:PORT``.
        token: the server's bearer token (or ``token_file=``).
        session: the session's name (1-128 of ``[A-Za-z0-9._:-]``). None: a
            new random name, and the session is deleted on close().
        create: make the session at the first execute if it does not exist
            (False: SessionNotFoundError instead).
        callbacks: a CallbackRegistry or a list of dicts, as locally: the
            server forwards the code's calls here; plain and ``async def``
            functions run on this process's worker threads. A callback may
            raise ``Suspend`` to suspend the execution.
        timeout_ms: each execution's time limit (the server's maximum caps it).
        ca_file: CA certificates for ``wss://`` (default: the system's).
        client_cert: for a server that wants client certificates (mTLS):
            a PEM file holding certificate and key, or (cert file, key file).
        connect_timeout: seconds for connecting and the handshake.
        on_stdout, on_stderr: called with each chunk of output as it arrives.
        max_message: the largest message accepted from the server (bytes),
            and the most output (characters a stream) a result keeps.

    One request at a time per object (others wait); use several objects
    (connections) for concurrency. Requests to one session from several
    clients are serialised by the server.
    """

    def __init__(self, url: str, token: Optional[str] = None, *, session: Optional[str] = None,
                 create: bool = True, callbacks: CallbacksArg = None,
                 timeout_ms: Optional[int] = None, ca_file: Optional[str] = None,
                 connect_timeout: float = 10.0, on_stdout: OutputFn = None,
                 on_stderr: OutputFn = None, token_file: Optional[str] = None,
                 max_message: int = 64 << 20,
                 client_cert: Union[str, Tuple[str, str], None] = None) -> None:
        super().__init__(url, token, callbacks=callbacks, timeout_ms=timeout_ms,
                         ca_file=ca_file, connect_timeout=connect_timeout,
                         on_stdout=on_stdout, on_stderr=on_stderr, token_file=token_file,
                         max_message=max_message, client_cert=client_cert)
        self._owned = session is None
        self.name = session if session is not None else "py-" + os.urandom(12).hex()
        self._create = bool(create) or self._owned
        self.version: Optional[int] = None
        self._count = 0

    def _ran(self, r: ExecuteResult) -> None:
        self._count += 1
        if r.version is not None:
            self.version = r.version

    @property
    def execution_count(self) -> int:
        """Executions this object ran (the session may have had others)."""
        return self._count

    def execute(self, code: str, *, timeout_ms: Optional[int] = None,
                fuel: Optional[int] = None, stdin: StdinArg = None
                ) -> Union[ExecuteResult, Suspended]:
        """Runs code in the session on the server; the ExecuteResult (a
        ``Suspended`` if a callback raised Suspend or suspend() was called).

        stdin: the code's ``sys.stdin``: a str is sent whole with the
        request; a file object (binary, or text with a ``buffer``) is read
        as the code reads, a part at a time on a worker thread (the server
        asks with "read" events), so a pipe or a terminal is read as it
        comes and a code that never reads never touches it. Such an
        execution cannot be suspended once the code has read from it.

        Raises what the local execute raises for the same ending
        (ExecutionError, TimeoutError, ResourceLimitError, CancelledError),
        with ``.result``; RemoteError (``.code``) when the server refused
        the request; RemoteConnectionError when the connection broke.
        """
        msg: Dict[str, Any] = {"op": "execute", "code": _source(code), "session": self.name}
        if self._create:
            msg["create"] = True
        return self._run(*_limits(msg, timeout_ms or self.timeout_ms, fuel, stdin))

    async def execute_async(self, code: str, **kw: Any) -> Union[ExecuteResult, Suspended]:
        """``execute`` on the default executor of the running loop; cancelling
        the awaiting task cancels the execution on the server."""
        return await _in_executor(self, functools.partial(self.execute, code, **kw))

    # -- session management ----------------------------------------------

    def info(self) -> Dict[str, Any]:
        """The server's record of the session (``version``, ...)."""
        return self._simple({"op": "session.info", "session": self.name})

    def reset(self) -> None:
        """Back to a fresh interpreter (every variable, import and /tmp file
        is gone)."""
        self.version = self._simple({"op": "session.reset", "session": self.name}).get("version")
        self._count = 0

    def delete(self) -> None:
        """Deletes the session on the server."""
        self._simple({"op": "session.delete", "session": self.name})

    def fork(self, to: Optional[str] = None) -> "Session":
        """A new session named ``to`` (None: a random name, deleted when the
        new object is closed) with a copy of this one's state, as a Session
        with this one's settings."""
        name = to if to is not None else "py-" + os.urandom(12).hex()
        self._simple({"op": "session.fork", "session": self.name, "to": name})
        s = Session(self.url, self._token, session=name, create=False,
                    callbacks=self._callbacks, timeout_ms=self.timeout_ms,
                    ca_file=self._ca_file, connect_timeout=self._connect_timeout,
                    on_stdout=self._on_stdout, on_stderr=self._on_stderr,
                    max_message=self._max_message, client_cert=self._client_cert)
        s._owned = to is None
        return s

    def export_state(self) -> Tuple[bytes, List[str]]:
        """(the session's portable globals as bytes, names that could not be
        exported), as the local Session's."""
        d = self._simple({"op": "session.export", "session": self.name})
        return base64.b64decode(d.get("data") or ""), list(d.get("skipped") or [])

    def import_state(self, data: bytes, *, create: bool = False) -> List[str]:
        """Adds exported globals to the session (create: make it first if
        missing); returns the names that could not be rebuilt."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("import_state takes bytes")
        msg: Dict[str, Any] = {"op": "session.import", "session": self.name,
                               "data": base64.b64encode(bytes(data)).decode()}
        if create:
            msg["create"] = True
        d = self._simple(msg)
        self.version = d.get("version", self.version)
        return list(d.get("failed") or [])

    def snapshot_state(self) -> bytes:
        """The portable globals as bytes (export_state without the skipped names)."""
        return self.export_state()[0]

    def restore_state(self, snapshot: bytes) -> None:
        """Adds the globals of a snapshot_state()."""
        self.import_state(snapshot)

    def close(self) -> None:
        """Closes the connection; a session named by this object (session=None)
        is deleted on the server first. Idempotent."""
        if not self._closed and self._owned:
            try:
                self.delete()
            except (RemoteError, OSError):
                pass  # the server's store expires what nobody deletes
        super().close()

    def __repr__(self) -> str:
        return f"<eryx.remote.Session {self.name!r} at {self.url}" \
               f"{' (closed)' if self._closed else ''}>"


class Sandbox(_Client):
    """Fresh-interpreter executions on an `eryx serve` server (from its
    pool): nothing persists between two executes. Arguments as Session's,
    without session and create."""

    def execute(self, code: str, *, timeout_ms: Optional[int] = None,
                fuel: Optional[int] = None, stdin: StdinArg = None
                ) -> Union[ExecuteResult, Suspended]:
        """Runs code in a fresh sandbox on the server (see Session.execute)."""
        msg: Dict[str, Any] = {"op": "execute", "code": _source(code)}
        return self._run(*_limits(msg, timeout_ms or self.timeout_ms, fuel, stdin))

    async def execute_async(self, code: str, **kw: Any) -> Union[ExecuteResult, Suspended]:
        """``execute`` on the default executor of the running loop."""
        return await _in_executor(self, functools.partial(self.execute, code, **kw))

    def __repr__(self) -> str:
        return f"<eryx.remote.Sandbox at {self.url}{' (closed)' if self._closed else ''}>"


async def _in_executor(client: _Client, fn: Callable[[], Any]) -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, fn)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        client.interrupt()
        try:
            await fut
        except BaseException:
            pass
        raise


def _replies(replies: Union[Mapping[int, Any], Sequence[Mapping[str, Any]]]
             ) -> List[Dict[str, Any]]:
    if isinstance(replies, Mapping):
        out = []
        for call, value in replies.items():
            if isinstance(value, BaseException):
                out.append({"call": call, "error": {"kind": "failed",
                                                    "message": _callbacks._describe(value)}})
            else:
                # Exact text, as a live reply goes (an integer beyond 64 bits).
                out.append({"call": call, "result_json": json.dumps(value, allow_nan=False)})
        return out
    return [dict(r) for r in replies]


__all__ = ["Session", "Sandbox", "ExecuteResult", "Suspended", "PendingCall", "Suspend",
           "RemoteError", "AuthenticationError", "BusyError", "SessionNotFoundError",
           "SessionExistsError", "SessionLockedError", "JournalError",
           "RemoteConnectionError"]
