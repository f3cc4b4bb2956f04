"""execute_with_journal: executions whose callback results are journaled, so
that they can be suspended by a callback and resumed later, here or in
another process (docs/journal.md, docs/python.md "Journals").

liberyx records the journal (eryx_exec_start_journaled) and replays it from
the state the sandbox had before the execution. This module drives such an
execution (liberyx's non-blocking core: the blocking run has no journal),
runs the callbacks the way ``execute`` does, and keeps that state with the
journal for the runners whose state persists (Session, a pool's lease).
"""

from __future__ import annotations

import base64
import collections
import json
import math
import os
import select
import threading
import time
import zlib
from collections.abc import Mapping
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, Union

from . import _callbacks, _eryx

EryxError = _eryx.EryxError
JournalError = _eryx.JournalError

#: The version of the journal dict this package writes and reads.
JOURNAL_VERSION = 1


class SuspendCallback(Exception):
    """Raised by a callback to suspend an ``execute_with_journal`` execution.

    The guest halts at the next point where it waits (at once when it waits
    for this call); the call is left unanswered in the journal, so it runs
    again, live, when the journal is resumed. Raised from a callback of a
    plain ``execute`` it is an ordinary failure of the call.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason: str = str(reason)


class SuspendedCallback:
    """The call whose callback suspended an execution: ``name``, ``args_json``
    (the arguments as the guest sent them, a JSON object) and the ``reason``
    given to SuspendCallback."""

    __slots__ = ("name", "args_json", "reason")

    def __init__(self, name: str, args_json: str, reason: str) -> None:
        self.name = name
        self.args_json = args_json
        self.reason = reason

    @property
    def args(self) -> Dict[str, Any]:
        """The arguments, decoded from args_json."""
        return json.loads(self.args_json)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (f"SuspendedCallback(name={self.name!r}, args_json={self.args_json!r}, "
                f"reason={self.reason!r})")


class SuspendedError(EryxError):  # type: ignore[misc,valid-type]
    """The error of an execution a callback suspended (``ReplayOutcome.error``
    when ``ReplayOutcome.suspended`` is set): ``.suspended`` is the
    SuspendedCallback; ``.result`` is None (the output so far went to
    on_stdout/on_stderr, if given, and is produced again by the resumed
    run); ``.status`` is liberyx's PENDING."""

    def __init__(self, suspended: SuspendedCallback) -> None:
        why = f": {suspended.reason}" if suspended.reason else ""
        super().__init__(f"the execution was suspended by callback {suspended.name!r}{why} "
                         f"(resume it with execute_with_journal(code, journal=outcome.journal))")
        self.suspended = suspended
        self.result = None
        self.status = _eryx.PENDING


class _ForkedState:
    """The state from before a recorded execution, kept as a fork of the
    session (copy-on-write) until the journal dict is asked for: a journal
    nobody reads costs no save."""

    __slots__ = ("h",)

    def __init__(self, h: Any) -> None:
        self.h = h

    def encode(self) -> str:
        h, self.h = self.h, None
        try:
            return _deflate(h.save_bytes())
        finally:
            h.close()


class ReplayOutcome:
    """What ``execute_with_journal`` returns; it never raises for the ending
    of the execution itself.

    Attributes:
        result: the ExecuteResult, or None when error is set.
        error: the exception ``execute`` would have raised (ExecutionError,
            TimeoutError, ..., JournalError when the code did not repeat the
            journal's calls, SuspendedError when a callback suspended it),
            or None. Its ``.result`` holds the output, when there is one.
        journal: the journal, always: a JSON-compatible dict (keep it with
            json.dumps, give it back as ``journal=``). For a Session (or a
            pool's lease) that had state, it holds that state from before
            the execution; it is built the first time it is read.
        replayed_callbacks: the journal's answered calls that the code made
            again and was given from it (their callbacks were not called).
        suspended: the SuspendedCallback when a callback suspended the
            execution, else None.
    """

    __slots__ = ("result", "error", "replayed_callbacks", "suspended", "_jbytes", "_state",
                 "_dict", "_lock")

    def __init__(self, result: Any, error: Optional[BaseException], jbytes: bytes,
                 state: Union[None, str, _ForkedState], replayed: int,
                 suspended: Optional[SuspendedCallback]) -> None:
        self.result = result
        self.error = error
        self.replayed_callbacks = replayed
        self.suspended = suspended
        self._jbytes = jbytes
        self._state = state
        self._dict: Optional[Dict[str, Any]] = None
        self._lock = threading.Lock()

    @property
    def journal(self) -> Dict[str, Any]:
        """The journal as a JSON-compatible dict: ``{"version": 1, "journal":
        base64 of liberyx's journal bytes, "state": None or base64 of the
        compressed session state from before the execution}``."""
        with self._lock:
            if self._dict is None:
                st = self._state
                if isinstance(st, _ForkedState):
                    st = st.encode()
                self._dict = {"version": JOURNAL_VERSION,
                              "journal": base64.b64encode(self._jbytes).decode("ascii"),
                              "state": st}
                self._state = None
            return self._dict

    def __repr__(self) -> str:
        end = "suspended" if self.suspended else \
            f"error={type(self.error).__name__}" if self.error else "ok"
        return f"<eryx.ReplayOutcome {end}, {self.replayed_callbacks} replayed callbacks>"


# -- the journal dict --------------------------------------------------------

def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise JournalError(f"journal[{what!r}] must be a str (base64), not "
                           f"{type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        raise JournalError(f"journal[{what!r}] is not base64: {exc}") from None


def _decode(journal: Any) -> Tuple[bytes, Optional[str]]:
    """(liberyx's journal bytes, the state's text or None) of a journal dict,
    checked for its shape only: the bytes are checked by liberyx."""
    if not isinstance(journal, Mapping):
        raise JournalError(f"journal must be the dict of ReplayOutcome.journal (or "
                           f"json.loads of it), not {type(journal).__name__}")
    version = journal.get("version")
    if type(version) is not int:
        raise JournalError("journal has no integer 'version': it is not a journal of "
                           "execute_with_journal")
    if version != JOURNAL_VERSION:
        raise JournalError(f"journal version {version} is not supported (this eryx reads "
                           f"version {JOURNAL_VERSION})")
    if "journal" not in journal or "state" not in journal:
        raise JournalError("journal lacks 'journal' or 'state'")
    jbytes = _b64(journal["journal"], "journal")
    state = journal["state"]
    if state is not None and not isinstance(state, str):
        raise JournalError(f"journal['state'] must be None or a str (base64), not "
                           f"{type(state).__name__}")
    return jbytes, state


def _deflate(raw: bytes) -> str:
    # Level 1: a session is mostly the interpreter's heap and zero pages;
    # the fastest level keeps 3.8 of its 21 MB, level 6 3.4 at twice the time.
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


# Inflated in pieces of this size, each written out before the next is
# made: the state is never whole in this process's memory.
_INFLATE_PIECE = 16 << 20


def _inflate(text: str, kw: Dict[str, Any]) -> int:
    """The session of a journal's state, inflated into a memfd (rewound;
    the caller closes it) no further than a session this sandbox could load
    (its memory limit and /tmp quota)."""
    packed = _b64(text, "state")
    memory = int(kw.get("max_memory") or (128 << 20))
    limit = memory + 4 * int(kw.get("tmp_quota") or (64 << 20)) + (16 << 20)
    d = zlib.decompressobj()
    fd = os.memfd_create("eryx-journal-state", os.MFD_CLOEXEC)
    try:
        total, rest = 0, packed
        while not d.eof:
            try:
                piece = d.decompress(rest, _INFLATE_PIECE)
            except zlib.error as exc:
                raise JournalError(f"journal['state'] is damaged: {exc}") from None
            rest = d.unconsumed_tail
            if not piece and not rest:
                break  # all of it read, and no end: truncated
            total += len(piece)
            if total > limit:
                raise JournalError("journal['state'] is larger than a session this sandbox "
                                   "can load (its memory limit)")
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]
        if not d.eof:
            raise JournalError("journal['state'] is truncated")
        if d.unused_data:
            raise JournalError("journal['state'] has bytes after its end")
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    except BaseException:
        os.close(fd)
        raise


# -- callbacks ---------------------------------------------------------------

class _Workers:
    """Daemon threads that run the callbacks of journaled executions, as
    liberyx's workers do for ``execute``: at most 64 over all executions,
    idle ones exit after 2 s, and a callback that never returns holds its
    thread only (the guest sees a timeout at callback_timeout_ms) and not
    the interpreter's exit."""

    MAX = 64
    IDLE_S = 2.0

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._jobs: Deque[Callable[[], None]] = collections.deque()
        self._n = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._cv:
            self._jobs.append(job)
            if self._idle >= len(self._jobs):
                self._cv.notify()
            elif self._n < self.MAX:
                self._n += 1
                threading.Thread(target=self._work, name="eryx-callback", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._jobs:
                    self._idle += 1
                    woken = self._cv.wait(self.IDLE_S)
                    self._idle -= 1
                    if not woken and not self._jobs:
                        self._n -= 1
                        return
                job = self._jobs.popleft()
            try:
                job()
            except BaseException:  # the thread ends: its slot is free again
                with self._cv:
                    self._n -= 1
                raise


_workers = _Workers()


class _Drive:
    """What the callbacks of one execution share with the loop driving it:
    the suspension a callback asked for, and the calls it holds unanswered."""

    def __init__(self, dispatch: Callable[[str, str], Any], efd: int) -> None:
        self.dispatch = dispatch
        self.lock = threading.Lock()
        self.efd = efd                 # -1 once closed (under lock)
        self.suspended: Optional[SuspendedCallback] = None
        self.held: List[Any] = []      # calls left unanswered for the journal

    def wake(self) -> None:
        with self.lock:
            if self.efd >= 0:
                os.eventfd_write(self.efd, 1)

    def run(self, call: Any) -> None:
        """Runs one call's callback and answers it (any thread)."""
        with self.lock:
            if self.suspended is not None:
                # Suspending: the call stays pending, to run on resume.
                self.held.append(call)
                return
        if not call.pending:
            call.fail(_eryx.CALL_TIMEOUT, "the call was not started: it timed out or its "
                                          "run ended first")
            return
        try:
            reply = self.dispatch(call.name, call.args)
        except SuspendCallback as exc:
            with self.lock:
                self.held.append(call)
                if self.suspended is None:
                    self.suspended = SuspendedCallback(call.name, call.args, exc.reason)
            self.wake()
            return
        if isinstance(reply, str):
            call.reply(reply)
        else:
            call.fail(*reply)

    def close(self) -> None:
        with self.lock:
            self.efd = -1
            held, self.held = self.held, []
        # Dropping them fails them: after a suspension (or the end of the
        # execution) liberyx drops that and the journal keeps them pending.
        del held


def _drive(h: Any, ex: Any, d: _Drive, inline: frozenset) -> int:
    """Steps ex until it finishes (its status) or a callback asks for a
    suspension while it waits (PENDING). Ctrl-C interrupts the guest and
    is raised once it stopped."""
    poller = select.poll()
    poller.register(d.efd, select.POLLIN)
    interrupted = False
    rc = _eryx.PENDING
    while True:
        try:
            rc = ex.step(True)
            if rc != _eryx.PENDING:
                break
            for call in ex.calls():
                if call.name in inline:
                    d.run(call)
                else:
                    _workers.submit(lambda c=call: d.run(c))
            if d.suspended is not None and not interrupted:
                break
            if ex.ready:
                continue
            dl = ex.deadline_ns
            timeout = -1 if dl == 0 else max(0, math.ceil((dl - time.monotonic_ns()) / 1e6))
            if poller.poll(timeout):
                try:
                    os.eventfd_read(d.efd)
                except BlockingIOError:
                    pass
            if d.suspended is not None and not interrupted:
                break
        except KeyboardInterrupt:
            if interrupted or ex.done:
                raise
            interrupted = True
            h.interrupt()  # gracefully: the loop goes on until the guest stopped
    if interrupted:
        raise KeyboardInterrupt
    return rc  # type: ignore[no-any-return]


# -- execute_with_journal ----------------------------------------------------

def execute(runner: Any, code: Union[str, bytes], journal: Optional[Dict[str, Any]]
            ) -> ReplayOutcome:
    """Runner.execute_with_journal (eryx/_sandbox.py): the runner's hooks
    (_jr_*) say how its state is kept and restored."""
    h = runner._handle()
    if h.busy:
        raise EryxError("this sandbox is already running code (a sandbox is used by one "
                        "thread at a time; use one per thread, or a SandboxPool)")
    jbytes: Optional[bytes] = None
    state_text: Optional[str] = None
    state_fd: Optional[int] = None
    if journal is not None:
        jbytes, state_text = _decode(journal)
        _eryx.journal_info(jbytes)  # damaged bytes: JournalError, before anything changes
        if state_text is not None:
            state_fd = _inflate(state_text, runner._jr_kw())
    stateful = runner._jr_stateful
    # The handle to run on, and `base`: the state from before the run, for
    # a stateful runner to go back to after a suspension (None: its fresh
    # state). Nothing of the runner changes before the execution started.
    out_state: Union[None, str, _ForkedState] = None
    base = None
    if state_fd is not None:
        try:
            run_h = runner._jr_load(state_fd)
        except _eryx.InitializationError as exc:
            raise JournalError(f"the journal's state does not load: {exc}") from None
        finally:
            os.close(state_fd)
        out_state = state_text
    elif stateful and journal is not None and not runner._jr_is_fresh(h):
        run_h = runner._jr_new_handle()
    else:
        runner._jr_prepare()
        run_h = h = runner._handle()
        if stateful and not runner._jr_is_fresh(h):
            base = h.fork()
            out_state = _ForkedState(base)
    try:
        if stateful and state_fd is not None:  # the journal's state was loaded
            base = run_h.fork()  # just loaded: no copy
        timeout_ns, fuel, on_stdout, on_stderr = runner._jr_options()
        ex = run_h.exec_start_journaled(jbytes, code, timeout_ns, fuel, 0, None, None, None,
                                        on_stdout, on_stderr)
    except BaseException:
        if run_h is not h:
            run_h.close()
        if base is not None:
            base.close()
        raise
    if run_h is not h:
        runner._jr_swap(run_h)
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    ex.set_notify_fd(efd)
    d = _Drive(_callbacks.make_dispatch(runner._cfg.entries, reraise=(SuspendCallback,)), efd)
    inline = frozenset(e.name for e in runner._cfg.entries if e.inline)
    result: Any = None
    error: Optional[BaseException] = None
    suspended: Optional[SuspendedCallback] = None
    ended = False
    try:
        rc = _drive(run_h, ex, d, inline)
        if rc == _eryx.PENDING:
            ex.suspend()
            suspended = d.suspended
            error = SuspendedError(suspended)  # type: ignore[arg-type]
        else:
            try:
                result = ex.finish()
            except EryxError as exc:
                error = exc
        ended = True
        jout = ex.journal()
        replayed = ex.replayed
    finally:
        if not ended:
            # Ctrl-C, or a failing on_stdout: the execution is ended here
            # (a traceback may keep this object alive, and with it the
            # sandbox's busy flag): kept if it stopped, else abandoned (the
            # sandbox dies, as when execute is abandoned).
            try:
                if ex.done:
                    ex.finish()
                else:
                    ex.suspend()
            except BaseException:
                pass
        ex.set_notify_fd(-1)  # both ended: no notify is in flight
        d.close()
        os.close(efd)
        runner._ran()
    # A stateful runner whose sandbox the suspension (or a divergence that
    # stopped the code) killed goes back to the state from before the run,
    # which the journal's resume starts from too.
    if stateful and (suspended is not None or
                     (isinstance(error, JournalError) and run_h.dead)):
        if base is None:
            runner._jr_refresh()
        elif isinstance(out_state, _ForkedState):
            runner._jr_swap(base.fork())  # base stays the journal's, until read
        else:
            runner._jr_swap(base)
            base = None
    if base is not None and not isinstance(out_state, _ForkedState):
        base.close()
    if result is not None:
        result = runner._finish(runner._handle(), result)
    return ReplayOutcome(result, error, jout, out_state, replayed, suspended)
