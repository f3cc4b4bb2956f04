"""The sandbox's asyncio event loop.

WASI has no socketpair, so asyncio's selector loop cannot start in a
sandbox. This loop has no file descriptors at all: when no task can run, it
hands the host the callback invocations its tasks are waiting for and its next
timer (``_eryx_host.wait``), and the host replies with results. The host may
suspend the guest inside that call and return to the embedder: the guest runs
on a native stack of its own, so this works from any depth, including
``asyncio.run()`` called by synchronous code.
"""

import asyncio
import asyncio.base_events
import json
import math

import _eryx_host

from .errors import CallbackError


class _HostSelector:
    """What BaseEventLoop._run_once calls when it has nothing ready."""

    def __init__(self, loop):
        self._loop = loop

    def select(self, timeout):
        self._loop._exchange(timeout)
        return []

    def close(self):
        pass


class SandboxEventLoop(asyncio.BaseEventLoop):
    def __init__(self):
        super().__init__()
        self._selector = _HostSelector(self)
        self._waiting = {}      # call id -> future
        self._outbox = []       # calls not yet handed to the host
        self._next_id = 1

    def _process_events(self, event_list):
        pass

    def _write_to_self(self):
        pass

    def call_host(self, name, args):
        """A future for the result of host function `name`."""
        fut = self.create_future()
        call_id = self._next_id
        self._next_id += 1
        self._outbox.append({"id": call_id, "name": name, "args": args})
        self._waiting[call_id] = fut
        return fut

    def _exchange(self, timeout):
        """Sends queued calls and waits (up to timeout seconds, None = until a
        reply) for results. With other work ready (timeout 0) calls are held
        back, so that every call a gather() makes goes out in one request."""
        if timeout == 0:
            return
        if timeout is not None and not math.isfinite(timeout):
            timeout = None
        request = {"calls": self._outbox, "timeout": timeout}
        self._outbox = []
        reply = json.loads(_eryx_host.wait(json.dumps(request).encode()))
        if "error" in reply:
            raise RuntimeError(reply["error"])
        for result in reply["results"]:
            fut = self._waiting.pop(result["id"], None)
            if fut is None or fut.done():
                continue          # cancelled meanwhile: the result is dropped
            if result["ok"]:
                fut.set_result(result["value"])
            else:
                fut.set_exception(CallbackError(result["message"], result["kind"]))


class _Policy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self):
        return SandboxEventLoop()


def install_policy():
    if not isinstance(asyncio.get_event_loop_policy(), _Policy):
        asyncio.set_event_loop_policy(_Policy())


def run_top_level(coro):
    """Runs the coroutine of code that used top-level await."""
    with asyncio.Runner() as runner:
        return runner.run(coro)


def call_host(name, args):
    """Awaitable result of a host function, from any coroutine."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, SandboxEventLoop):
        raise RuntimeError("host functions can only be awaited in the sandbox's event loop")
    return loop.call_host(name, args)


install_policy()
