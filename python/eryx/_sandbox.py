"""Sandbox, Session, SandboxPool: the reference binding's API over liberyx."""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _callbacks, _eryx, _journal, _limits, _mcp
from ._journal import ReplayOutcome
from ._callbacks import CallbackRegistry, CallbacksArg
from ._limits import NetConfig, ResourceLimits
from . import _vfs
from ._vfs import VfsStorage

ExecuteResult = _eryx.ExecuteResult
EryxError = _eryx.EryxError
ExecutionError = _eryx.ExecutionError
CancelledError = _eryx.CancelledError

_MS = 1_000_000
Volumes = Optional[Sequence[Tuple[str, str, bool]]]
OutputFn = Optional[Callable[[str], None]]


class PoolError(EryxError):
    """Base class of the pool's errors."""


class PoolExhaustedError(PoolError):
    """Every sandbox of the pool is in use (try_acquire never raises it: it returns None)."""


class PoolTimeoutError(PoolError):
    """No sandbox came free within the acquire timeout."""


class PoolClosedError(PoolError):
    """The pool was closed."""


def _secrets_arg(secrets: Optional[Dict[str, Any]]) -> Optional[List[Tuple[str, str, List[str]]]]:
    if secrets is None:
        return None
    if not isinstance(secrets, dict):
        raise TypeError("secrets must be a dict: {NAME: {'value': ..., 'allowed_hosts': [...]}}")
    out = []
    for name, spec in secrets.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"a secret's name must be an identifier, not {name!r}")
        if isinstance(spec, str):
            value, hosts = spec, []
        elif isinstance(spec, dict) and isinstance(spec.get("value"), str):
            value, hosts = spec["value"], list(spec.get("allowed_hosts") or [])
        else:
            raise TypeError(f"secret {name!r}: expected {{'value': str, 'allowed_hosts': "
                            f"[str, ...]}}")
        out.append((name, value, [NetConfig._rule(h) for h in hosts]))
    return out


def _rule_is_too_wide(rule: str) -> bool:
    """Whether a host rule reaches hosts that anyone can run: "*", a
    pattern over a whole top-level domain ("*.com"), or an address range
    wider than a /8 of IPv4 or a /16 of IPv6 ("0.0.0.0/1"), with or without
    a port ("*:443", "[::/0]:443")."""
    host = rule
    if rule.startswith("["):
        host = rule[1:rule.find("]")] if "]" in rule else rule
    elif rule.count(":") == 1:
        host = rule.split(":")[0]
    if host == "*" or (host.startswith("*.") and "." not in host[2:].rstrip(".")):
        return True
    if "/" in host:
        try:
            net = ipaddress.ip_network(host, strict=False)
        except ValueError:
            return True
        if net.version == 4:
            return net.prefixlen < 8
        if net.prefixlen < 16:
            return True
        # IPv4 inside IPv6 (::ffff:0:0/96 is every IPv4 address), however
        # the rule is spelt ("0::ffff:0:0/96", "::/64" around it): judged as
        # the IPv4 range it reaches. Until 2026-12-07 only the "::ffff:"
        # spelling was, and "::/64" let a secret go to every IPv4 host.
        return any(net.overlaps(embed) and net.prefixlen - embed.prefixlen < 8
                   for embed in _IPV4_IN_IPV6)
    return False


# The ways IPv6 addresses carry IPv4 ones in the 32 bits after the prefix:
# mapped, compatible (deprecated), NAT64's well-known prefix, 6to4.
_IPV4_IN_IPV6 = tuple(ipaddress.ip_network(n)
                      for n in ("::ffff:0:0/96", "::/96", "64:ff9b::/96", "2002::/16"))


def _secret_fallback_hosts(name: str, network: NetConfig) -> List[str]:
    """Where a secret given without allowed_hosts may go: the hosts the
    network allows, as the reference has it. Not when a rule reaches hosts
    anyone can run ("*", "*.com", "0.0.0.0/1"): code could then send the
    secret to a server of its own (the reference's empty list means any
    host; here it is an error)."""
    wide = [rule for rule in network.allowed_hosts if _rule_is_too_wide(rule)]
    if wide:
        raise ValueError(f"secret {name!r} has no allowed_hosts and the network allows every "
                         f"host of {wide[0]!r}, which anyone can run: name the hosts it may "
                         f"be sent to")
    return list(network.allowed_hosts)


class _NotASnapshot(_eryx.ExecutionError, ValueError):
    """restore_state() of bytes that are not a snapshot: a ValueError, and
    the ExecutionError the reference binding raises there."""


def _volumes_arg(volumes: Volumes) -> List[Tuple[str, str, bool]]:
    """The reference binding's volumes, (host_path, guest_path, read_only),
    as liberyx's mounts, (host_path, guest_path, writable). A pair without
    the flag is read-only."""
    out = []
    for v in volumes or []:
        if not isinstance(v, (tuple, list)) or len(v) not in (2, 3):
            raise TypeError("a volume is (host_path, guest_path[, read_only])")
        host, guest = os.fspath(v[0]), v[1]
        read_only = bool(v[2]) if len(v) == 3 else True
        out.append((host, guest, not read_only))
    return out


class _Config:
    """Everything a sandbox is made with, turned into liberyx's config keywords."""

    __slots__ = ("limits", "entries", "dispatch", "kw", "result_variable", "vfs",
                 "vfs_mount_path")

    def __init__(self, *, resource_limits: Optional[ResourceLimits], network: Optional[NetConfig],
                 callbacks: CallbacksArg, secrets: Optional[Dict[str, Any]], volumes: Volumes,
                 on_stdout: OutputFn, on_stderr: OutputFn, result_variable: Optional[str],
                 env: Optional[Dict[str, str]] = None, mounts: Sequence[Tuple[str, str, bool]] = (),
                 timeout_override: Any = None, mcp: Any = None, vfs: Any = None,
                 vfs_mount_path: Optional[str] = None) -> None:
        self.vfs, self.vfs_mount_path = _vfs.mount_of(vfs, vfs_mount_path)
        if resource_limits is None:
            resource_limits = ResourceLimits()
        elif not isinstance(resource_limits, ResourceLimits):
            raise TypeError(f"resource_limits must be a ResourceLimits, not "
                            f"{type(resource_limits).__name__}")
        if network is not None and not isinstance(network, NetConfig):
            raise TypeError(f"network must be a NetConfig, not {type(network).__name__}")
        for name, fn in (("on_stdout", on_stdout), ("on_stderr", on_stderr)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable")
        if result_variable is None:
            result_variable = "result"
        if not isinstance(result_variable, str) or not result_variable.isidentifier():
            raise ValueError(f"result_variable must be an identifier, not {result_variable!r}")
        self.limits = resource_limits
        self.result_variable = result_variable
        self.entries = _mcp.merge(_callbacks.normalise(callbacks), mcp,
                                  resource_limits.callback_timeout_ms)
        self.dispatch = _callbacks.make_dispatch(self.entries) if self.entries else None
        kw: Dict[str, Any] = resource_limits._config()
        if timeout_override is not None:
            kw["timeout_ns"] = timeout_override
        if self.entries:
            kw["callbacks"] = _callbacks.declarations(self.entries)
            kw["dispatch"] = self.dispatch
        kw["mounts"] = list(mounts) + _volumes_arg(volumes)
        if self.vfs is not None:
            kw["mounts"].append((self.vfs.path, self.vfs_mount_path, True))
        if env:
            if not isinstance(env, dict):
                raise TypeError("env must be a dict of str to str")
            for k, v in env.items():
                # {"A=B": "x"} became A="B=x", and 1 quietly "1".
                if not isinstance(k, str) or not isinstance(v, str):
                    raise TypeError(f"env must be a dict of str to str, not {k!r}: {v!r}")
                if not k or "=" in k or "\0" in k or "\0" in v:
                    raise ValueError(f"env name {k!r} (or its value) is not a variable's: a "
                                     "name is not empty and has no '=', neither has NUL")
            kw["env"] = [f"{k}={v}" for k, v in env.items()]
        if on_stdout is not None:
            kw["on_stdout"] = on_stdout
        if on_stderr is not None:
            kw["on_stderr"] = on_stderr
        if network is not None:
            kw["net"] = network._config()
        sec = _secrets_arg(secrets)
        if sec:
            if network is None:
                raise ValueError("secrets are substituted on the network only: give a network=")
            kw["secrets"] = [(name, value, hosts or _secret_fallback_hosts(name, network))
                             for name, value, hosts in sec]
        self.kw = kw


def _capture_variable(h: Any, result: Any, name: str) -> None:
    """Fills result.result from a variable other than `result` (one more small
    run), as the glue reports `result`: when the run assigned it (its code
    stores it: the glue keeps that code as _prev_code for this probe) or it
    holds another object than the one reported last. The variable stays:
    until 2026-12-07 the probe popped it, and a Session's next run found it
    undefined."""
    stateless = h.stateless
    h.stateless = False
    try:
        probe = h.run(
            "(lambda g, n, e: n in g and (e._stores_result(e._prev_code, n) or "
            "g[n] is not getattr(e, '_reported', e)) and (setattr(e, '_reported', g[n]) or "
            "__import__('sys').stdout.write(__import__('json').dumps(g[n], allow_nan=False))))"
            f"(globals(), {name!r}, __import__('_eryx'))\n")
        text = probe.stdout
        result._set_result(text if text else None, None)
    except ExecutionError as exc:
        result._set_result(None, f"{name} is not JSON-serialisable: "
                                 f"{getattr(exc.result, 'exception_message', exc)}")
    finally:
        h.stateless = stateless


class _Runner:
    """What Sandbox, Session and PooledSandbox share: a handle and how to run on it."""

    _h: Any
    _cfg: _Config
    _timeout_ns: int = 0
    _fuel: int = 0  # a Session's fuel_limit: 0 = the config's, NO_LIMIT = none

    def _handle(self) -> Any:
        h = self._h
        if h is None:
            raise ValueError(f"this {type(self).__name__} is closed")
        return h

    def _finish(self, h: Any, r: Any) -> Any:
        if self._cfg.result_variable != "result":
            _capture_variable(h, r, self._cfg.result_variable)
        return r

    def execute(self, code: str) -> ExecuteResult:
        """Runs Python source in the sandbox and returns its ExecuteResult.

        Top-level ``await`` works (callbacks are async functions inside). The GIL
        is released while the code runs, so other Python threads (and other
        sandboxes) run meanwhile.

        Raises:
            ExecutionError: the code raised (the message is its traceback;
                ``.result`` holds the output so far).
            TimeoutError: the execution timeout passed.
            ResourceLimitError: memory (uncaught MemoryError) or fuel ran out.
            CancelledError: interrupt() stopped it.
            ValueError: the sandbox is closed; TypeError: code is not str/bytes.
        """
        h = self._h
        if h is None:
            raise ValueError(f"this {type(self).__name__} is closed")
        try:
            if self._timeout_ns or self._fuel:
                r = h.run(code, self._timeout_ns, self._fuel)
            else:
                r = h.run(code)
        finally:
            self._ran()  # a failed run counts, and dirties, too
        return self._finish(h, r)

    def _ran(self) -> None:
        pass

    def execute_with_journal(self, code: str,
                             journal: Optional[Dict[str, Any]] = None) -> "ReplayOutcome":
        """Runs code with its callback results journaled; with ``journal`` (the
        ``.journal`` of an earlier outcome, possibly through json.dumps and
        json.loads), replays that journal first: the calls it answered are
        given their recorded results without calling the callbacks, and the
        code goes on from where it stopped.

        A callback may raise ``eryx.SuspendCallback(reason)``: the execution
        is suspended (``outcome.suspended``), that call stays unanswered in
        the journal and runs again, live, on resume. Resume here or in a new
        sandbox of the same build, with the same code. A Session's (or a
        lease's) state from before the execution is in the journal, and is
        restored on resume (and at once after a suspension); a Sandbox starts
        from a fresh interpreter either way.

        Never raises for how the execution ended: the outcome's ``error`` is
        what execute() would have raised (JournalError when the code did not
        repeat the journal's calls, SuspendedError when suspended). Raises
        JournalError for a journal that cannot be used (malformed, damaged,
        recorded for other code), ValueError when closed.
        """
        return _journal.execute(self, code, journal)

    # What execute_with_journal needs of a runner (eryx/_journal.py): its
    # state persists between executions (Session, lease) or not (Sandbox).
    _jr_stateful = True

    def _jr_options(self) -> Tuple[int, int, OutputFn, OutputFn]:
        return self._timeout_ns, self._fuel, None, None

    def _jr_kw(self) -> Dict[str, Any]:
        return self._cfg.kw

    def _jr_runtime(self) -> Any:
        f = getattr(self, "_factory", None)
        return f._rt if f is not None and f._rt is not None else _runtime()

    def _jr_is_fresh(self, h: Any) -> bool:
        """No state of its own yet: nothing ran since it was made or reset."""
        return bool(h.run_count == 0)

    def _jr_new_handle(self) -> Any:
        """A handle in the state this runner starts from."""
        f = getattr(self, "_factory", None)
        if f is not None:
            return f._load_handle(self._jr_kw())
        return _eryx.SandboxHandle(self._jr_runtime(), **self._jr_kw())

    def _jr_load(self, fd: int) -> Any:
        """A handle in the session read from fd (a journal's state)."""
        return _eryx.SandboxHandle.load(self._jr_runtime(), fd, **self._jr_kw())

    def _jr_prepare(self) -> None:
        pass

    def _jr_refresh(self) -> None:
        """Back to the state this runner starts from, in place when it can."""
        f = getattr(self, "_factory", None)
        if f is not None and f._rt is None:  # a template-session factory's
            self._jr_swap(self._jr_new_handle())
        else:
            self._handle().reset()

    def _jr_swap(self, h: Any) -> None:
        old, self._h = self._h, h
        if old is not None and old is not h:
            old.close()

    async def execute_async(self, code: str, *, step_in_loop: bool = False) -> ExecuteResult:
        """``execute`` on the running asyncio loop, through liberyx's non-blocking core.

        The guest runs on the loop's default executor (GIL released); the calls it
        makes are started on this loop: ``async def`` callbacks as tasks (so 100
        gathered calls that each sleep 0.1 s take ~0.1 s), plain ones inline.
        Cancelling the awaiting task interrupts the code; the task then raises
        asyncio.CancelledError once the sandbox is idle again.

        step_in_loop=True runs the guest on the loop's own thread instead (GIL
        released, so other threads run; this loop waits while the guest
        computes): no thread handoff per step, for short code on a loop that
        can afford the wait.
        """
        h = self._handle()
        try:
            r = await _drive(h, code, self._cfg, self._timeout_ns, step_in_loop=step_in_loop,
                             fuel=self._fuel)
        finally:
            self._ran()
        return self._finish(h, r)

    def interrupt(self) -> None:
        """Stops the execution in progress (safe from any thread): first a
        KeyboardInterrupt inside the code (``finally`` blocks run and the
        state survives), then, if the code does not stop within 200 ms, a hard
        stop. The run raises ``eryx.CancelledError``. No-op when idle."""
        h = self._h
        if h is not None:
            h.interrupt()

    def close(self) -> None:
        """Frees the sandbox now (also done when the object is collected).
        Idempotent; raises EryxError while it runs code."""
        h = self._h
        if h is not None:
            h.close()
            self._h = None

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._h is None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


async def _drive(h: Any, code: Union[str, bytes], cfg: _Config, timeout_ns: int,
                 on_stdout: OutputFn = None, on_stderr: OutputFn = None,
                 step_in_loop: bool = False, fuel: int = 0) -> Any:
    loop = asyncio.get_running_loop()
    ex = h.exec_start(code, timeout_ns, fuel or None, 0, None, None, None, on_stdout, on_stderr)
    # The eventfd is made when the execution first waits: code that runs
    # straight through needs none (no call, no timer, nothing to notify).
    efd = -1
    wake = asyncio.Event()

    def readable() -> None:
        try:
            os.eventfd_read(efd)
        except BlockingIOError:
            pass
        wake.set()

    table = cfg.dispatch.table if cfg.dispatch is not None else {}  # type: ignore[attr-defined]
    tasks: set = set()
    cancelled = False

    async def run_async(call: Any, entry: Any, aw: Any) -> None:
        try:
            value = await aw
        except asyncio.CancelledError:
            call.fail(_eryx.CALL_FAILED, "the host cancelled the call")
            raise
        except BaseException as exc:
            call.fail(_eryx.CALL_FAILED, _callbacks._describe(exc))
            return
        reply = _callbacks.encode_result(entry, value)
        if isinstance(reply, str):
            call.reply(reply)
        else:
            call.fail(*reply)

    def start(call: Any) -> None:
        entry = table.get(call.name)
        if entry is None:
            call.fail(_eryx.CALL_FAILED, f"no callback named {call.name!r}")
            return
        try:
            kw = json.loads(call.args)
            value = entry.fn(**kw)
        except TypeError as exc:
            bad = _callbacks._bad_args(entry, kw) if isinstance(kw, dict) else None
            call.fail(_eryx.CALL_INVALID_ARGS if bad else _eryx.CALL_FAILED,
                      bad or _callbacks._describe(exc))
            return
        except BaseException as exc:
            call.fail(_eryx.CALL_FAILED, _callbacks._describe(exc))
            return
        if inspect.isawaitable(value):
            t = loop.create_task(run_async(call, entry, value))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            return
        reply = _callbacks.encode_result(entry, value)
        if isinstance(reply, str):
            call.reply(reply)
        else:
            call.fail(*reply)

    try:
        while True:
            if step_in_loop:
                rc = ex.step(True)  # on the main thread, Ctrl-C stops the guest
            else:
                fut = loop.run_in_executor(None, ex.step)
                while True:
                    try:
                        rc = await asyncio.shield(fut)
                        break
                    except asyncio.CancelledError:
                        if not cancelled:
                            cancelled = True
                            h.interrupt()
            if rc != _eryx.PENDING:
                break
            if efd < 0:
                efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                loop.add_reader(efd, readable)
                ex.set_notify_fd(efd)
            for call in ex.calls():
                start(call)
            wake.clear()
            if ex.ready:
                continue
            dl = ex.deadline_ns
            timeout = None if dl == 0 else max(0.0, (dl - time.monotonic_ns()) / 1e9)
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            except asyncio.CancelledError:
                if not cancelled:
                    cancelled = True
                    h.interrupt()
        ex.set_notify_fd(-1)
        try:
            result = ex.finish()
        except CancelledError:
            if cancelled:
                raise asyncio.CancelledError() from None
            raise
        if cancelled:
            raise asyncio.CancelledError()
        return result
    finally:
        ex.set_notify_fd(-1)
        del ex  # an unfinished execution is abandoned by its deallocation
        # A loop closed under a pending execute_async (its coroutine closed
        # when collected) refuses both: cancelling raised, and the eventfd
        # leaked.
        if not loop.is_closed():
            for t in tasks:
                t.cancel()
            if efd >= 0:
                loop.remove_reader(efd)
        if efd >= 0:
            os.close(efd)


class Sandbox(_Runner):
    """An isolated Python interpreter (CPython 3.13 compiled to WebAssembly, run
    as native code inside this process).

    Every ``execute`` starts from a fresh interpreter: the runtime's image is
    mapped copy-on-write, so that costs microseconds, not a CPython start. Use
    ``Session`` to keep state between executions.

    Args (keyword-only):
        resource_limits: ResourceLimits (default: ResourceLimits()).
        network: NetConfig; None (default) = no network at all.
        callbacks: a CallbackRegistry or a list of {"name", "fn", "description",
            "schema"} dicts. Inside the sandbox each is an async function:
            ``await name(...)``. fn may be a plain or an ``async def`` function;
            what it raises is a catchable ``CallbackError`` inside, with its message.
        secrets: {NAME: {"value": ..., "allowed_hosts": [...]}}: the code sees a
            placeholder in os.environ[NAME]; the value replaces it on the wire to
            allowed hosts only (needs network=; without allowed_hosts, the
            network's hosts, unless those are every host: a ValueError).
        volumes: [(host_path, guest_path, read_only)]: host directories visible
            inside, as the reference binding takes them (read_only True: the
            code cannot change them; a pair without the flag is read-only).
        on_stdout, on_stderr: called with each chunk of output (str) as it is
            written, on the thread running the code.
        result_variable: the global whose value (JSON) is ExecuteResult.result
            (default "result"), when the run assigned it; another name costs
            one more small run after each execute, and the variable stays.
        env: extra environment variables {NAME: value} (ours).
        mcp: an MCPManager: each tool of its servers is the host function
            ``mcp.SERVER.TOOL`` (``await mcp.fs.read_file(path=...)``, or
            ``mcp["fs"].read_file(...)``), with the callback limits.
        scrub_stdout, scrub_stderr, scrub_result, scrub_files: accepted for
            compatibility; eryx never puts a secret's value in the sandbox
            (only its placeholder), so its output holds none of eryx's
            making. A secret's host that sends the value back in another
            form, or stores it where another allowed name reads it, hands
            it to the code: give a secret only hosts that consume it
            (docs/networking.md, "A secret is as safe as its hosts").

    Example::

        sandbox = eryx.Sandbox(resource_limits=eryx.ResourceLimits(execution_timeout_ms=5000))
        print(sandbox.execute("print(1 + 1)").stdout)   # "2\\n"
    """

    def __init__(self, *, resource_limits: Optional[ResourceLimits] = None,
                 network: Optional[NetConfig] = None, callbacks: CallbacksArg = None,
                 secrets: Optional[Dict[str, Any]] = None, volumes: Volumes = None,
                 on_stdout: OutputFn = None, on_stderr: OutputFn = None,
                 result_variable: Optional[str] = "result", env: Optional[Dict[str, str]] = None,
                 mcp: Optional[_mcp.MCPManager] = None, scrub_stdout: Optional[bool] = None,
                 scrub_stderr: Optional[bool] = None, scrub_result: Optional[bool] = None,
                 scrub_files: Optional[bool] = None, _factory: Any = None) -> None:
        self._h = None
        self._cfg = _Config(resource_limits=resource_limits, network=network,
                            callbacks=callbacks, secrets=secrets, volumes=volumes,
                            on_stdout=on_stdout, on_stderr=on_stderr,
                            result_variable=result_variable, env=env,
                            mounts=_factory._mounts if _factory is not None else (), mcp=mcp)
        # A factory with its own runtime (image mode) resets to its image,
        # like the default runtime; a template-session factory reloads.
        self._factory = _factory if _factory is not None and _factory._rt is None else None
        self._dirty = False
        self._h = _factory._load_handle(self._cfg.kw) if _factory is not None \
            else self._new_handle()
        if self._factory is None:
            self._h.stateless = True

    def _new_handle(self) -> Any:
        if self._factory is not None:
            return self._factory._load_handle(self._cfg.kw)
        return _eryx.SandboxHandle(_runtime(), **self._cfg.kw)

    def execute(self, code: str) -> ExecuteResult:  # noqa: D102 (documented on _Runner)
        if self._factory is not None and self._dirty and self._h is not None:
            # A factory's sandbox starts again from the factory's state.
            self._h.close()
            self._h = self._new_handle()
        return super().execute(code)

    execute.__doc__ = _Runner.execute.__doc__

    async def execute_async(self, code: str, *, step_in_loop: bool = False) -> ExecuteResult:
        if self._factory is not None and self._dirty and self._h is not None:
            self._h.close()
            self._h = self._new_handle()
        return await super().execute_async(code, step_in_loop=step_in_loop)

    execute_async.__doc__ = _Runner.execute_async.__doc__

    def _ran(self) -> None:
        self._dirty = True

    _jr_stateful = False

    def _jr_prepare(self) -> None:
        if self._factory is not None and self._dirty and self._h is not None:
            self._h.close()
            self._h = self._new_handle()

    def _jr_swap(self, h: Any) -> None:
        if self._factory is None:
            h.stateless = True  # the next execute starts fresh again
        super()._jr_swap(h)

    def __repr__(self) -> str:
        return f"<eryx.Sandbox {'closed' if self._h is None else 'open'}>"


class Session(_Runner):
    """A sandbox whose state (globals, imported modules, /tmp) persists between executions.

    Args (keyword-only): as Sandbox, plus
        execution_timeout_ms: limit of each execution (default None: no limit,
            as in the reference; resource_limits' execution_timeout_ms when
            resource_limits is given and this is not).
        vfs: a VfsStorage whose files this session sees, writable, at
            vfs_mount_path (default "/data"); they outlive reset() and the
            session, and other sessions given it share them.
        max_fuel: fuel each execution may use (the reference's name; as
            resource_limits' max_fuel, which it overrides): only in builds
            that count fuel (``eryx.build_has_fuel()``), else ValueError.
            ``fuel_limit`` reads and sets it.

    Beyond the reference: ``fork()``, ``save(path)`` / ``Session.load(path)``,
    ``export_state`` / ``import_state``, ``execute_async``, ``interrupt()``.
    """

    def __init__(self, *, resource_limits: Optional[ResourceLimits] = None,
                 execution_timeout_ms: Optional[int] = None,
                 network: Optional[NetConfig] = None, callbacks: CallbacksArg = None,
                 secrets: Optional[Dict[str, Any]] = None, volumes: Volumes = None,
                 on_stdout: OutputFn = None, on_stderr: OutputFn = None,
                 result_variable: Optional[str] = "result", env: Optional[Dict[str, str]] = None,
                 mcp: Optional[_mcp.MCPManager] = None, vfs: Optional[VfsStorage] = None,
                 vfs_mount_path: Optional[str] = None, max_fuel: Optional[int] = None,
                 _factory: Any = None, _handle: Any = None, _cfg: Optional[_Config] = None) -> None:
        self._h = None
        self._factory = _factory
        self._count = 0
        self._timeout_ns = 0
        if execution_timeout_ms is not None:
            self.execution_timeout_ms = execution_timeout_ms
        if _cfg is None:
            if resource_limits is None and execution_timeout_ms is None:
                resource_limits = ResourceLimits(execution_timeout_ms=None)
            # The session's limit is the sandbox's too: export_state,
            # import_state and clear_state run the session's code as well
            # (a pickling hook that loops), and ran under the default 30 s.
            _cfg = _Config(resource_limits=resource_limits, network=network,
                           callbacks=callbacks, secrets=secrets, volumes=volumes,
                           on_stdout=on_stdout, on_stderr=on_stderr,
                           result_variable=result_variable, env=env,
                           mounts=_factory._mounts if _factory is not None else (), mcp=mcp,
                           vfs=vfs, vfs_mount_path=vfs_mount_path,
                           timeout_override=self._timeout_ns or None)
        self._cfg = _cfg
        if max_fuel is not None:
            self.fuel_limit = max_fuel
        if _handle is not None:
            self._h = _handle
        elif _factory is not None:
            self._h = _factory._load_handle(self._cfg.kw)
        else:
            self._h = _eryx.SandboxHandle(_runtime(), **self._cfg.kw)

    def _ran(self) -> None:
        self._count += 1

    @property
    def vfs(self) -> Optional[VfsStorage]:
        """The VfsStorage mounted into this session, if any."""
        return self._cfg.vfs

    @property
    def vfs_mount_path(self) -> Optional[str]:
        """Where the VfsStorage is mounted (None without one)."""
        return self._cfg.vfs_mount_path

    @property
    def execution_count(self) -> int:
        """Executions run in this session since it was made or reset."""
        return self._count

    @property
    def execution_timeout_ms(self) -> Optional[int]:
        """Time limit of each execution in ms (None: none). Settable."""
        if self._timeout_ns:
            return None if self._timeout_ns == _eryx.NO_LIMIT else self._timeout_ns // _MS
        ms = self._cfg.limits.execution_timeout_ms
        return ms

    @execution_timeout_ms.setter
    def execution_timeout_ms(self, value: Optional[int]) -> None:
        if value is None:
            self._timeout_ns = _eryx.NO_LIMIT
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("execution_timeout_ms must be an int or None")
        if value <= 0:
            raise ValueError("execution_timeout_ms must be positive (or None for no limit)")
        _limits.check_ms("execution_timeout_ms", value)
        self._timeout_ns = value * _MS

    @property
    def fuel_limit(self) -> Optional[int]:
        """Fuel each execution may use (None: no limit), as the reference's
        ``Session.fuel_limit``. Settable; a number only in builds that count
        fuel (``eryx.build_has_fuel()``), else ValueError. A run that uses it
        up raises ResourceLimitError and leaves the session dead (``reset()``
        makes it live again)."""
        if self._fuel:
            return None if self._fuel == _eryx.NO_LIMIT else self._fuel
        return self._cfg.limits.max_fuel

    @fuel_limit.setter
    def fuel_limit(self, value: Optional[int]) -> None:
        if value is None:
            self._fuel = _eryx.NO_LIMIT if _eryx.build_has_fuel() else 0
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("fuel_limit must be an int or None")
        if value <= 0:
            raise ValueError("fuel_limit must be positive (or None for no limit)")
        if not _eryx.build_has_fuel():
            raise ValueError("this build of eryx does not count fuel (eryx.build_has_fuel() "
                             "is False): no fuel limit can be set")
        self._fuel = value

    def reset(self) -> None:
        """Back to a fresh interpreter (the runtime's image, or the factory's
        state): every variable, import and /tmp file is gone; a dead session
        lives again. Microseconds."""
        h = self._handle()
        if self._factory is not None and self._factory._rt is None:
            h.close()
            self._h = self._factory._load_handle(self._cfg.kw)
        else:
            h.reset()
        self._count = 0

    def clear_state(self) -> None:
        """Drops the user's globals; imported modules and /tmp stay."""
        self._handle().clear()

    def snapshot_state(self) -> bytes:
        """The user's globals as bytes (pickled inside the sandbox; functions
        defined in the session by their code). Names that cannot be exported
        (modules, open files, ...) are left out: ``export_state`` lists them."""
        return self._handle().export_state()[0]

    def restore_state(self, snapshot: bytes) -> None:
        """Adds the globals of a snapshot_state() (decoded inside the sandbox).
        Bytes that are not a snapshot raise an error that is both a
        ValueError and, as in the reference binding, an ExecutionError."""
        if not isinstance(snapshot, (bytes, bytearray, memoryview)):
            raise TypeError("restore_state takes bytes")
        h = self._handle()
        try:
            h.import_state(snapshot)
        except ValueError as exc:
            raise _NotASnapshot(str(exc)) from None

    def export_state(self) -> Tuple[bytes, List[str]]:
        """(snapshot bytes, names that could not be exported)."""
        data, skipped = self._handle().export_state()
        return data, json.loads(skipped)

    def import_state(self, snapshot: bytes) -> List[str]:
        """Adds exported globals; returns the names that could not be rebuilt."""
        return json.loads(self._handle().import_state(snapshot))

    def fork(self) -> "Session":
        """A new session with a copy of this one's whole state (memory
        copy-on-write, /tmp, callbacks, limits). Tens of microseconds once the
        state was forked before; the first fork after a run copies it once."""
        h = self._handle().fork()
        s = Session(_cfg=self._cfg, _handle=h, _factory=self._factory)
        s._timeout_ns = self._timeout_ns
        s._fuel = self._fuel
        s._count = self._count
        return s

    def save(self, path: Union[str, "os.PathLike[str]"], *,
             dir_fd: Optional[int] = None) -> None:
        """Saves the whole state (memory, /tmp, open files) to a file,
        atomically (a temporary file beside it, renamed over it; a symbolic
        link at path is replaced, not followed). Only the same build of eryx
        loads it.

        dir_fd: a directory opened with os.open(d, os.O_RDONLY |
        os.O_DIRECTORY); path is then relative to it, as for os.open. Open
        it before the code runs when the code has a writable mount above
        the file: a directory of the path swapped for a link during the run
        would send a save by path elsewhere."""
        self._handle().save(path, dir_fd=dir_fd)

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], *,
             resource_limits: Optional[ResourceLimits] = None,
             execution_timeout_ms: Optional[int] = None, network: Optional[NetConfig] = None,
             callbacks: CallbacksArg = None, secrets: Optional[Dict[str, Any]] = None,
             volumes: Volumes = None, on_stdout: OutputFn = None, on_stderr: OutputFn = None,
             result_variable: Optional[str] = "result",
             env: Optional[Dict[str, str]] = None,
             mcp: Optional[_mcp.MCPManager] = None, vfs: Optional[VfsStorage] = None,
             vfs_mount_path: Optional[str] = None,
             max_fuel: Optional[int] = None) -> "Session":
        """A session in the state saved at path, with this config (limits,
        callbacks, volumes are not in the file). InitializationError for a file
        that is not a session of this build, truncated or damaged."""
        if resource_limits is None and execution_timeout_ms is None:
            resource_limits = ResourceLimits(execution_timeout_ms=None)
        cfg = _Config(resource_limits=resource_limits, network=network, callbacks=callbacks,
                      secrets=secrets, volumes=volumes, on_stdout=on_stdout,
                      on_stderr=on_stderr, result_variable=result_variable, env=env, mcp=mcp,
                      vfs=vfs, vfs_mount_path=vfs_mount_path)
        h = _eryx.SandboxHandle.load(_runtime(), os.fspath(path), **cfg.kw)
        s = cls(_cfg=cfg, _handle=h, max_fuel=max_fuel)
        if execution_timeout_ms is not None:
            s.execution_timeout_ms = execution_timeout_ms
        return s

    @property
    def is_dead(self) -> bool:
        """True if the session can no longer run code (a hard stop, a trap,
        os._exit); reset() revives it."""
        return self._handle().dead

    def __repr__(self) -> str:
        return (f"<eryx.Session {'closed' if self._h is None else 'open'}, "
                f"{self._count} executions>")


_runtime_lock = threading.Lock()
_runtime_obj: Any = None


def _runtime() -> Any:
    global _runtime_obj
    rt = _runtime_obj
    if rt is None:
        with _runtime_lock:
            if _runtime_obj is None:
                _runtime_obj = _eryx.default_runtime()
            rt = _runtime_obj
    return rt


class PoolStats:
    """Counters of a SandboxPool (``pool.stats()``)."""

    __slots__ = ("total", "idle", "in_use", "available", "total_acquisitions",
                 "total_creations", "wait_count", "evictions", "max_size")

    def __init__(self, d: Dict[str, int], closed: bool = False) -> None:
        self.idle = d["idle"]
        self.in_use = d["in_use"]
        self.total = self.idle + self.in_use
        self.max_size = d["max_size"]
        self.available = 0 if closed else self.max_size - self.in_use
        self.total_acquisitions = d["acquisitions"]
        self.total_creations = d["creations"]
        self.wait_count = d["waits"]
        self.evictions = d["evictions"]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__)
        return f"PoolStats({fields})"


class PooledSandbox(_Runner):
    """A sandbox leased from a SandboxPool; a context manager that gives it back.

    It starts clean (nothing of an earlier user's state) and keeps its state
    across its own executions until released. Use after release raises ValueError.
    """

    def __init__(self, pool: "SandboxPool", h: Any, timeout_ns: int, fuel: int,
                 on_stdout: OutputFn, on_stderr: OutputFn) -> None:
        self._pool = pool
        self._h = h
        self._cfg = pool._cfg
        self._timeout_ns = timeout_ns
        self._fuel = fuel
        self._on_stdout = on_stdout
        self._on_stderr = on_stderr
        self._jr_start = (h, h.run_count)  # as leased: its fresh state

    def _handle(self) -> Any:
        # One message for every use after the release (execute_async's was
        # the generic "this PooledSandbox is closed").
        h = self._h
        if h is None:
            raise ValueError("this pooled sandbox was released")
        return h

    def execute(self, code: str) -> ExecuteResult:
        h = self._handle()
        r = h.run(code, self._timeout_ns, self._fuel, 0, None, None, None,
                  self._on_stdout, self._on_stderr)
        return self._finish(h, r)

    execute.__doc__ = _Runner.execute.__doc__

    async def execute_async(self, code: str, *, step_in_loop: bool = False) -> ExecuteResult:
        h = self._handle()
        r = await _drive(h, code, self._cfg, self._timeout_ns, self._on_stdout, self._on_stderr,
                         step_in_loop, self._fuel)
        return self._finish(h, r)

    execute_async.__doc__ = _Runner.execute_async.__doc__

    # execute_with_journal: a lease keeps its state like a Session; one it
    # replaces (a journal's state) is a sandbox of its own, not the pool's,
    # whose sandbox goes back to the pool at once.
    def _jr_options(self) -> Tuple[int, int, OutputFn, OutputFn]:
        return self._timeout_ns, self._fuel, self._on_stdout, self._on_stderr

    def _jr_kw(self) -> Dict[str, Any]:
        kw = getattr(self._pool, "_kw", None)  # a FactoryPool's
        return kw if kw is not None else dict(self._cfg.kw, stream=True)

    def _jr_runtime(self) -> Any:
        f = getattr(self._pool, "_factory", None)
        if f is not None:
            return f._rt if f._rt is not None else _runtime()
        return self._pool._rt

    def _jr_is_fresh(self, h: Any) -> bool:
        return self._jr_start == (h, h.run_count)

    def _jr_refresh(self) -> None:
        if getattr(self._pool, "_factory", None) is not None:
            self._jr_swap(self._jr_new_handle())
        else:
            h = self._handle()
            h.reset()
            self._jr_start = (h, h.run_count)

    def _jr_new_handle(self) -> Any:
        f = getattr(self._pool, "_factory", None)
        if f is not None:
            return f._load_handle(self._jr_kw())
        return _eryx.SandboxHandle(self._jr_runtime(), **self._jr_kw())

    def reset(self) -> None:
        """Back to the clean state it was leased in, keeping the lease: also
        revives one that a run left dead (stopped hard, os._exit), which the
        error of its next execute asks for."""
        self._handle()  # (ValueError once released)
        self._jr_refresh()

    def release(self) -> None:
        """Gives the sandbox back to the pool (reset to a clean state there).
        Idempotent."""
        self.close()

    def close(self) -> None:
        h = self._h
        super().close()
        if h is not None and hasattr(self._pool, "_returned"):
            self._pool._returned()

    close.__doc__ = release.__doc__


class SandboxPool:
    """A thread-safe pool of warm sandboxes (liberyx's eryx_pool) for many short jobs.

    ``with pool.acquire() as sb: sb.execute(...)`` takes a clean sandbox (an idle
    one in well under a microsecond), and gives it back reset at the end.

    Args (keyword-only):
        max_size: sandboxes at most, idle or in use (default 10).
        min_idle: kept ready (default 1).
        acquire_timeout_ms: how long acquire() waits for a free sandbox (30000).
        idle_timeout_ms: idle sandboxes beyond min_idle are freed after (300000).
        resource_limits, callbacks, network, secrets, volumes, on_stdout,
        on_stderr, result_variable, env, mcp: as Sandbox, for every sandbox of the pool.

    Callbacks belong to the pool (every sandbox of a liberyx pool shares one
    config): acquire() takes per-lease limits (timeout, fuel) and output
    functions, but not other callbacks.
    """

    def __init__(self, *, max_size: int = 10, min_idle: int = 1,
                 acquire_timeout_ms: int = 30000, idle_timeout_ms: int = 300000,
                 resource_limits: Optional[ResourceLimits] = None,
                 callbacks: CallbacksArg = None, network: Optional[NetConfig] = None,
                 secrets: Optional[Dict[str, Any]] = None, volumes: Volumes = None,
                 on_stdout: OutputFn = None, on_stderr: OutputFn = None,
                 result_variable: Optional[str] = "result",
                 env: Optional[Dict[str, str]] = None, mcp: Optional[_mcp.MCPManager] = None,
                 _runtime_obj: Any = None) -> None:
        for name, v in (("max_size", max_size), ("min_idle", min_idle),
                        ("acquire_timeout_ms", acquire_timeout_ms),
                        ("idle_timeout_ms", idle_timeout_ms)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, not {v!r}")
            if name.endswith("_ms"):
                _limits.check_ms(name, v)
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._cfg = _Config(resource_limits=resource_limits, network=network,
                            callbacks=callbacks, secrets=secrets, volumes=volumes,
                            on_stdout=on_stdout, on_stderr=on_stderr,
                            result_variable=result_variable, env=env, mcp=mcp)
        self._acquire_ns = acquire_timeout_ms * _MS
        self._rt = _runtime_obj or _runtime()
        self._pool = _eryx.Pool(self._rt, max_size=max_size, min_idle=min_idle,
                                idle_timeout_ns=idle_timeout_ms * _MS or None, stream=True,
                                **self._cfg.kw)

    def _lease(self, timeout_ns: int, resource_limits: Optional[ResourceLimits],
               callbacks: CallbacksArg, on_stdout: OutputFn,
               on_stderr: OutputFn) -> Optional[PooledSandbox]:
        if self._pool.closed:
            raise PoolClosedError("the pool is closed")
        if callbacks is not None:
            raise ValueError("per-lease callbacks are not supported: a pool's sandboxes "
                             "share one config; give callbacks to SandboxPool(callbacks=...)")
        run_timeout = fuel = 0
        if resource_limits is not None:
            if not isinstance(resource_limits, ResourceLimits):
                raise TypeError("resource_limits must be a ResourceLimits")
            kw = resource_limits._config()
            run_timeout = kw["timeout_ns"]
            fuel = kw.get("fuel", 0)
        try:
            h = self._pool.acquire(timeout_ns)
        except _eryx.EryxError:
            if self._pool.closed:  # closed while it waited: at once
                raise PoolClosedError("the pool is closed") from None
            raise
        if h is None:
            return None
        return PooledSandbox(self, h, run_timeout, fuel, on_stdout, on_stderr)

    def acquire(self, *, resource_limits: Optional[ResourceLimits] = None,
                callbacks: CallbacksArg = None, on_stdout: OutputFn = None,
                on_stderr: OutputFn = None) -> PooledSandbox:
        """A clean sandbox, waiting up to acquire_timeout_ms (GIL released while
        waiting). resource_limits: this lease's execution timeout and fuel.

        Raises PoolTimeoutError, PoolClosedError."""
        lease = self._lease(self._acquire_ns, resource_limits, callbacks, on_stdout, on_stderr)
        if lease is None:
            raise PoolTimeoutError(f"no sandbox came free within "
                                   f"{self._acquire_ns // _MS} ms")
        return lease

    def try_acquire(self, *, resource_limits: Optional[ResourceLimits] = None,
                    callbacks: CallbacksArg = None, on_stdout: OutputFn = None,
                    on_stderr: OutputFn = None) -> Optional[PooledSandbox]:
        """A clean sandbox if one is free now (or may be created), else None."""
        return self._lease(0, resource_limits, callbacks, on_stdout, on_stderr)

    def stats(self) -> PoolStats:
        """The pool's counters (after close: as they ended, none available)."""
        return PoolStats(self._pool.stats(), self.is_closed)

    def close(self) -> None:
        """No more acquires (PoolClosedError). Idle sandboxes are freed; leases
        still out keep working and the pool is freed when the last comes back."""
        self._pool.close()

    @property
    def is_closed(self) -> bool:
        """True once closed."""
        return bool(self._pool.closed)

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<eryx.SandboxPool {self.stats()!r}>"


class FactoryPool:
    """A pool of sandboxes that start from a SandboxFactory's state
    (``factory.create_pool()``). Same API as SandboxPool; each lease is a
    sandbox loaded from the factory's saved state, freed when released
    (idle ones are loaded ahead, up to min_idle)."""

    def __init__(self, factory: Any, *, max_size: int = 10, min_idle: int = 1,
                 acquire_timeout_ms: int = 30000, idle_timeout_ms: int = 300000,
                 resource_limits: Optional[ResourceLimits] = None,
                 callbacks: CallbacksArg = None, network: Optional[NetConfig] = None,
                 secrets: Optional[Dict[str, Any]] = None, volumes: Volumes = None,
                 on_stdout: OutputFn = None, on_stderr: OutputFn = None,
                 result_variable: Optional[str] = "result",
                 env: Optional[Dict[str, str]] = None,
                 mcp: Optional[_mcp.MCPManager] = None) -> None:
        for name, v in (("max_size", max_size), ("min_idle", min_idle),
                        ("acquire_timeout_ms", acquire_timeout_ms),
                        ("idle_timeout_ms", idle_timeout_ms)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, not {v!r}")
            if name.endswith("_ms"):
                _limits.check_ms(name, v)
        if max_size < 1 or min_idle > max_size:
            raise ValueError("max_size must be at least 1 and min_idle at most max_size")
        self._factory = factory
        self._cfg = _Config(resource_limits=resource_limits, network=network,
                            callbacks=callbacks, secrets=secrets, volumes=volumes,
                            on_stdout=None, on_stderr=None, result_variable=result_variable,
                            env=env, mounts=factory._mounts, mcp=mcp)
        kw = dict(self._cfg.kw)
        kw["stream"] = True
        self._kw = kw
        self._default_out = (on_stdout, on_stderr)
        self._max = max_size
        self._min_idle = min_idle
        self._acquire_s = acquire_timeout_ms / 1000
        self._cond = threading.Condition()
        self._idle: List[Any] = []
        self._in_use = 0
        self._closed = False
        self._counts = {"acquisitions": 0, "creations": 0, "waits": 0, "evictions": 0}
        for _ in range(min_idle):
            self._idle.append(self._load())

    def _load(self) -> Any:
        self._counts["creations"] += 1
        return self._factory._load_handle(self._kw)

    def _returned(self) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify()

    def _lease(self, wait_s: float, resource_limits: Optional[ResourceLimits],
               callbacks: CallbacksArg, on_stdout: OutputFn,
               on_stderr: OutputFn) -> Optional[PooledSandbox]:
        if callbacks is not None:
            raise ValueError("per-lease callbacks are not supported: give them to "
                             "create_pool(callbacks=...)")
        run_timeout = fuel = 0
        if resource_limits is not None:
            kw = resource_limits._config()
            run_timeout, fuel = kw["timeout_ns"], kw.get("fuel", 0)
        deadline = time.monotonic() + wait_s
        with self._cond:
            waited = False
            while True:
                if self._closed:
                    raise PoolClosedError("the pool is closed")
                if self._in_use < self._max:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                waited = True
                self._cond.wait(left)
            self._in_use += 1
            self._counts["acquisitions"] += 1
            self._counts["waits"] += waited
            h = self._idle.pop() if self._idle else None
        try:
            if h is None:
                h = self._load()
        except BaseException:
            self._returned()
            raise
        out, err = self._default_out
        return PooledSandbox(self, h, run_timeout, fuel, on_stdout or out, on_stderr or err)

    def acquire(self, *, resource_limits: Optional[ResourceLimits] = None,
                callbacks: CallbacksArg = None, on_stdout: OutputFn = None,
                on_stderr: OutputFn = None) -> PooledSandbox:
        """A sandbox in the factory's state, waiting up to acquire_timeout_ms."""
        lease = self._lease(self._acquire_s, resource_limits, callbacks, on_stdout, on_stderr)
        if lease is None:
            raise PoolTimeoutError(f"no sandbox came free within {self._acquire_s:.3f} s")
        return lease

    def try_acquire(self, *, resource_limits: Optional[ResourceLimits] = None,
                    callbacks: CallbacksArg = None, on_stdout: OutputFn = None,
                    on_stderr: OutputFn = None) -> Optional[PooledSandbox]:
        """A sandbox if one is free now, else None."""
        return self._lease(0, resource_limits, callbacks, on_stdout, on_stderr)

    def stats(self) -> PoolStats:
        """The pool's counters."""
        with self._cond:
            return PoolStats(dict(self._counts, idle=len(self._idle), in_use=self._in_use,
                                  max_size=self._max), self._closed)

    def close(self) -> None:
        """No more acquires; idle sandboxes are freed, leases keep working."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for h in idle:
            h.close()

    @property
    def is_closed(self) -> bool:
        """True once closed."""
        return self._closed

    def __enter__(self) -> "FactoryPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
