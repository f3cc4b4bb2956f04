import asyncio
import gc
import os
import subprocess
import sys
import threading
import time

import pytest

import eryx


def test_execute_async_gathers_100_async_callbacks_concurrently():
    calls = []

    async def nap(i: int):
        calls.append(threading.get_ident())
        await asyncio.sleep(0.1)
        return i

    async def main():
        sb = eryx.Sandbox(callbacks=[{"name": "nap", "fn": nap}])
        t = time.monotonic()
        r = await sb.execute_async(
            "import asyncio\nresult = sum(await asyncio.gather(*[nap(i) for i in range(100)]))")
        return r, time.monotonic() - t, threading.get_ident()

    r, elapsed, loop_thread = asyncio.run(main())
    assert r.result == sum(range(100))
    assert r.callback_invocations == 100
    # Sequential would be 10 s; concurrently they overlap (~0.1 s plus overhead).
    assert elapsed < 2.0
    # Every async callback ran on the caller's loop thread: no thread per call.
    assert set(calls) == {loop_thread}


def test_odd_failures_on_the_async_paths_answer_the_call():
    # A callback's exception that quotes what the guest sent (a NUL inside),
    # an exception whose __str__ raises, a result whose encoding raises: the
    # call fails with a message and the session goes on, as on the blocking
    # path (the message ends at the NUL there too). These lost the call and
    # the session on execute_async.
    class Odd(Exception):
        def __str__(self):
            raise RuntimeError("no text")

    class BadDict(dict):
        def items(self):
            raise RuntimeError("no items")

    def item(x):
        raise ValueError(f"unknown item {x}")

    async def aitem(x):
        raise ValueError(f"unknown item {x}")

    def odd():
        raise Odd()

    def bad():
        return BadDict(a=1)

    code = ("for f in (item, aitem):\n"
            "    try:\n        await f(x='a\\x00b')\n    except Exception as e:\n"
            "        print(repr(str(e)))\n"
            "for f in (odd, bad):\n"
            "    try:\n        await f()\n    except Exception as e:\n"
            "        print(type(e).__name__, 'Odd' in str(e) or 'not JSON' in str(e))\n"
            "print('alive')")

    async def main():
        s = eryx.Session(callbacks=[{"name": n, "fn": f} for n, f in
                                    (("item", item), ("aitem", aitem), ("odd", odd),
                                     ("bad", bad))],
                         resource_limits=eryx.ResourceLimits(callback_timeout_ms=5000))
        t = time.monotonic()
        r = await s.execute_async(code)
        assert time.monotonic() - t < 4, "a call was lost and timed out"
        return r, s.execute("print('after')").stdout

    r, after = asyncio.run(main())
    assert r.stdout == ("'ValueError: unknown item a'\n" * 2 + "CallbackError True\n" * 2
                        + "alive\n"), r.stdout
    assert after == "after\n"


def test_failure_message_with_a_lone_surrogate_answers_the_call():
    # An exception quoting bytes that did not decode (os.fsdecode of a file
    # name, errors="surrogateescape") holds a lone surrogate, which UTF-8
    # cannot encode: call.fail raised UnicodeEncodeError, so execute_async
    # raised it and abandoned the execution (the session dead) for a plain
    # callback, and an async one's call waited for its timeout. The guest
    # now gets the message with the surrogate escaped, on every path.
    def item():
        raise ValueError("no file " + b"x\xff".decode("utf-8", "surrogateescape"))

    async def aitem():
        item()

    code = ("for f in (item, aitem):\n"
            "    try:\n        await f()\n    except Exception as e:\n"
            "        print(e.kind, str(e))\n")
    want = "failed ValueError: no file x\\udcff\n" * 2

    async def main():
        s = eryx.Session(callbacks=[{"name": "item", "fn": item}, {"name": "aitem", "fn": aitem}],
                         resource_limits=eryx.ResourceLimits(callback_timeout_ms=5000))
        t = time.monotonic()
        r = await s.execute_async(code)
        assert time.monotonic() - t < 4, "a call was lost and timed out"
        return r.stdout, s.execute(code).stdout

    stdout, blocking = asyncio.run(main())
    assert stdout == want, stdout
    assert blocking == want, blocking


def test_execute_async_on_a_loop_closed_under_it_releases_its_eventfd():
    # A loop closed while an execute_async waits on a call (its task never
    # cancelled: the coroutine is closed when collected) abandons the
    # execution (the session is dead, as for any abandoned one), and lets
    # its eventfd go: the cleanup's cancel raised "Event loop is closed"
    # and the descriptor leaked, one per such execution.
    async def slow():
        await asyncio.sleep(30)

    def fds():
        return len(os.listdir("/proc/self/fd"))

    s = eryx.Session(callbacks=[{"name": "slow", "fn": slow}])
    s.execute("pass")
    unraisable = []
    old_hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        before = fds()
        for _ in range(3):
            s.reset()
            loop = asyncio.new_event_loop()
            task = loop.create_task(s.execute_async("await slow()"))
            loop.run_until_complete(asyncio.sleep(0.2))
            loop.close()
            del task
            gc.collect()
        after = fds()
    finally:
        sys.unraisablehook = old_hook
    assert after == before, f"{after - before} descriptors leaked"
    assert not [u for u in unraisable if "closed" in str(u.exc_value)], unraisable
    assert s.is_dead
    s.reset()
    assert s.execute("print(1)").stdout == "1\n"


def test_execute_async_sync_callback_errors_and_timeout():
    def fail():
        raise KeyError("nope")

    async def main():
        s = eryx.Session(callbacks=[{"name": "fail", "fn": fail},
                                    {"name": "obj", "fn": lambda: {1, 2}}],
                         execution_timeout_ms=300)
        r = await s.execute_async("try:\n    await fail()\nexcept Exception as e:\n    print(e)\n"
                                  "try:\n    await obj()\nexcept Exception as e:\n    print(e)")
        assert "KeyError" in r.stdout and "not JSON-serialisable" in r.stdout
        with pytest.raises(eryx.ExecutionError, match="ZeroDivisionError"):
            await s.execute_async("1/0")
        with pytest.raises(eryx.TimeoutError):
            await s.execute_async("while True: pass")
        # The loop stays responsive while the guest computes (steps run in the executor).
        # On a session of its own: 0.2 s of spinning within s's 300 ms left
        # a loaded machine 100 ms for the rest of the run.
        spinner = eryx.Session()
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        t = asyncio.ensure_future(tick())
        await spinner.execute_async("import time\nx = 0\nend = time.time() + 0.2\n"
                              "while time.time() < end: x += 1")
        t.cancel()
        assert ticks >= 5
        s.execute("y = 1")
        assert (await s.execute_async("print(y)")).stdout == "1\n"
    asyncio.run(main())


def test_a_timeout_while_the_loop_is_busy_lets_the_code_unwind():
    # The execution's time limit passes while the guest sleeps and the event
    # loop is blocked for longer than the grace: the code still unwinds at
    # the loop's next step, and the session lives (it was stopped hard, dead).
    async def main():
        s = eryx.Session(execution_timeout_ms=100)
        s.execute("kept = 1")

        async def block_the_loop():
            await asyncio.sleep(0.02)
            time.sleep(0.6)
        t = asyncio.ensure_future(block_the_loop())
        with pytest.raises(eryx.TimeoutError) as e:
            await s.execute_async("import time\ntry:\n    time.sleep(30)\n"
                                  "finally:\n    print('cleaned up')")
        await t
        assert "stopped hard" not in str(e.value)
        assert not s.is_dead
        assert s.execute("print(kept)").stdout == "1\n"
    asyncio.run(main())


def test_execute_async_cancel_interrupts():
    async def main():
        s = eryx.Session()
        s.execute("state = 'kept'")
        task = asyncio.ensure_future(s.execute_async("while True: pass"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await s.execute_async("print(state)")).stdout == "kept\n"
    asyncio.run(main())


def test_execute_async_timers_and_streaming():
    chunks = []

    async def main():
        sb = eryx.Sandbox(on_stdout=chunks.append)
        return await sb.execute_async("import asyncio\nawait asyncio.sleep(0.05)\nprint('late')")
    r = asyncio.run(main())
    assert r.stdout == "late\n" and chunks == ["late\n"]


def test_gil_released_while_guest_runs():
    sb = eryx.Sandbox()
    done = threading.Event()

    def run():
        sb.execute("import time\nend = time.time() + 0.4\nwhile time.time() < end: pass")
        done.set()
    t = threading.Thread(target=run)
    t.start()
    count = 0
    while not done.is_set():
        count += 1  # runs only if the other thread released the GIL
    t.join()
    assert count > 10000


def test_sandboxes_on_many_threads():
    results = []

    def work(i):
        sb = eryx.Sandbox()
        for _ in range(20):
            results.append(sb.execute(f"print({i} * 2)").stdout)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([f"{i * 2}\n" for i in range(4)] * 20)


def _cli(*args, stdin=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "eryx", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)


def test_python_m_eryx_is_the_cli():
    r = _cli("-c", "print('from cli')")
    assert (r.returncode, r.stdout) == (0, "from cli\n")
    assert _cli("-c", "import sys; sys.exit(3)").returncode == 3
    r = _cli("-c", "1/0")
    assert r.returncode == 1 and "ZeroDivisionError" in r.stderr
    assert _cli("--timeout", "100", "-c", "while True: pass").returncode == 124
    assert _cli("--no-such-flag").returncode == 2
    assert _cli("-", stdin="print(6 * 7)").stdout == "42\n"


def test_python_m_eryx_without_cli():
    # An ERYX_CLI that is no executable is named (it was "not found ... set
    # ERYX_CLI", with ERYX_CLI set).
    env = dict(os.environ, ERYX_CLI="/nonexistent/eryx", PATH="/nonexistent")
    r = subprocess.run([sys.executable, "-m", "eryx", "-c", "pass"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 71 and "ERYX_CLI is '/nonexistent/eryx'" in r.stderr, r.stderr


def test_execute_async_step_in_loop():
    async def nap(i: int):
        await asyncio.sleep(0.05)
        return i

    async def main():
        s = eryx.Session(callbacks=[{"name": "nap", "fn": nap}])
        r = await s.execute_async(
            "import asyncio\nresult = await asyncio.gather(*[nap(i) for i in range(10)])",
            step_in_loop=True)
        assert r.result == list(range(10))
        with pytest.raises(eryx.ExecutionError, match="KeyError"):
            await s.execute_async("{}['x']", step_in_loop=True)
        pool = eryx.SandboxPool(max_size=1)
        with pool.acquire() as p:
            assert (await p.execute_async("print(3)", step_in_loop=True)).stdout == "3\n"
        pool.close()
    asyncio.run(main())
