"""Bad-input cases that need a process of their own: Ctrl-C, interpreter exit."""
from conftest import run_script


def test_ctrl_c_during_execute_raises_keyboard_interrupt():
    r = run_script("""
        import eryx, os, signal, threading, time
        s = eryx.Session()
        s.execute("x = 1")
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.monotonic()
        try:
            s.execute("try:\\n    while True: pass\\nfinally:\\n    x = 2")
            print("not interrupted")
        except KeyboardInterrupt:
            print("KeyboardInterrupt", time.monotonic() - t < 5)
        print(s.execute("print(x)").stdout, end="")
    """)
    assert r.stdout == "KeyboardInterrupt True\n2\n", r.stderr


def test_interpreter_exit_with_sandboxes_alive():
    r = run_script("""
        import eryx, threading, time
        keep = [eryx.Sandbox(), eryx.Session(), eryx.SandboxPool(max_size=2)]
        keep[1].execute("x = [1] * 1000")
        lease = keep[2].acquire()
        ev = threading.Event()
        def slow():
            ev.wait(30)
            return 1
        cb = eryx.Session(callbacks=[{"name": "slow", "fn": slow}],
                          resource_limits=eryx.ResourceLimits(callback_timeout_ms=100))
        cb.execute("try:\\n    await slow()\\nexcept Exception as e:\\n    pass")
        busy = eryx.Sandbox()
        t = threading.Thread(target=lambda: busy.execute("while True: pass"), daemon=True)
        t.start()
        time.sleep(0.2)
        print("exiting")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "exiting\n"
    assert "Fatal" not in r.stderr and "Segmentation" not in r.stderr


def test_many_sandboxes_do_not_leak():
    r = run_script("""
        import eryx, resource, gc
        def rss():
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * 4096
        for _ in range(100):
            eryx.Sandbox().execute("x = 1")
        gc.collect()
        before = rss()
        for _ in range(400):
            s = eryx.Session(callbacks=[{"name": "f", "fn": lambda: 1}])
            s.execute("await f()")
            s.close()
        s = eryx.Session(callbacks=[{"name": "bad", "fn": lambda: 1 / 0}])
        for _ in range(2000):
            try:
                s.execute("await bad()")
            except eryx.ExecutionError:
                pass
        gc.collect()
        grew = rss() - before
        print("grew", grew < 64 << 20, grew)
    """, timeout=300)
    assert r.stdout.startswith("grew True"), r.stdout + r.stderr


def test_callback_workers_exit_and_come_back():
    # eryx's idle handler threads exit after 2 s; each keeps a Python thread
    # state while it lives, dropped when it exits.
    r = run_script("""
        import eryx, time, threading
        s = eryx.Session(callbacks=[{"name": "who", "fn": lambda: threading.get_ident()}])
        code = "import asyncio\\nresult = await asyncio.gather(*[who() for _ in range(8)])"
        first = s.execute(code).result
        time.sleep(2.6)
        second = s.execute(code).result
        print(len(first), len(second), threading.active_count())
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("8 8 "), r.stdout + r.stderr


def test_ctrl_c_still_stops_a_run_after_asyncio_run():
    # asyncio.run installs a SIGINT handler of its own for its run and puts
    # Python's back after it, which replaced the handler that interrupts the
    # sandbox: Ctrl-C then never stopped a run (a session has no time limit).
    r = run_script("""
        import asyncio, eryx, os, signal, threading, time
        async def nothing():
            pass
        s = eryx.Session()
        s.execute("x = 1")       # the handler that stops the sandbox goes in
        asyncio.run(nothing())   # and is replaced
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.monotonic()
        try:
            s.execute("while True: pass")
            print("not interrupted")
        except KeyboardInterrupt:
            print("KeyboardInterrupt", time.monotonic() - t < 5)
    """, timeout=60)
    assert r.stdout == "KeyboardInterrupt True\n", r.stdout + r.stderr


def test_ctrl_c_during_an_inline_callback_raises_keyboard_interrupt():
    # The callback runs on the main thread and took the KeyboardInterrupt
    # (it became the call's failure) while the sandbox was stopped: the run
    # raised CancelledError, as if interrupt() had been called.
    r = run_script("""
        import eryx, os, signal, threading, time
        def slow():
            time.sleep(20)
            return 1
        s = eryx.Session(callbacks=[{"name": "slow", "fn": slow, "inline": True}])
        s.execute("x = 1")
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.monotonic()
        try:
            s.execute("try:\\n    await slow()\\n    while True: pass\\nfinally:\\n    x = 2")
            print("not interrupted")
        except KeyboardInterrupt:
            print("KeyboardInterrupt", time.monotonic() - t < 5)
        except Exception as e:
            print(type(e).__name__, e)
        print(s.execute("print(x)").stdout, end="")
    """)
    assert r.stdout == "KeyboardInterrupt True\n2\n", r.stdout + r.stderr


def test_ctrl_c_under_a_programs_own_handler_is_no_keyboard_interrupt():
    # A program whose SIGINT handler does not raise (it only notes the
    # signal): the run is still stopped, as an interrupt (CancelledError),
    # not turned into a KeyboardInterrupt the program did not ask for.
    r = run_script("""
        import eryx, os, signal, threading, time
        got = []
        signal.signal(signal.SIGINT, lambda *a: got.append("sigint"))
        def slow():
            time.sleep(2)
            return 1
        s = eryx.Session(callbacks=[{"name": "slow", "fn": slow, "inline": True}])
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            s.execute("await slow()\\nwhile True: pass")
            print("not interrupted")
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
        except eryx.CancelledError:
            print("CancelledError", got)
    """)
    assert r.stdout == "CancelledError ['sigint']\n", r.stdout + r.stderr


def test_ctrl_c_in_a_nested_run_stops_the_outer_one_too():
    # A sandbox run from an inline callback: Ctrl-C stopped only the inner
    # run, and the outer one went on after its callback failed.
    r = run_script("""
        import eryx, os, signal, threading, time
        inner = eryx.Sandbox()
        def nested():
            inner.execute("while True: pass")
            return 1
        s = eryx.Session(callbacks=[{"name": "nested", "fn": nested, "inline": True}])
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.monotonic()
        try:
            s.execute("try:\\n    await nested()\\nexcept Exception:\\n    pass\\n"
                      "while True: pass")
            print("not interrupted")
        except KeyboardInterrupt:
            print("KeyboardInterrupt", time.monotonic() - t < 5)
        except Exception as e:
            print(type(e).__name__, e)
    """)
    assert r.stdout == "KeyboardInterrupt True\n", r.stdout + r.stderr


def test_worker_event_loops_are_closed():
    # async def callbacks of a blocking run are awaited on an event loop of
    # the worker thread's own, which was never closed: "unclosed event
    # loop" when the worker exited (idle workers exit after 2 s) or at exit.
    r = run_script("""
        import asyncio, eryx, gc, time, warnings
        warnings.simplefilter("always", ResourceWarning)
        async def fetch(x):
            await asyncio.sleep(0)
            return x
        s = eryx.Session(callbacks=[{"name": "fetch", "fn": fetch}])
        r = s.execute("import asyncio\\n"
                      "print(sum(await asyncio.gather(*(fetch(x=i) for i in range(8)))))")
        print(r.stdout, end="")
        time.sleep(4)   # the workers idle out (2 s) and go
        gc.collect()
        print("done")
    """)
    assert r.stdout == "28\ndone\n", r.stdout + r.stderr
    assert "unclosed" not in r.stderr and "ResourceWarning" not in r.stderr, r.stderr


def test_a_sandbox_in_a_reference_cycle_is_collected():
    # A tool that is a method of the object owning the sandbox, an on_stdout
    # closure that refers to it: the collector must see through the
    # sandbox's callables, or every such sandbox lived until exit.
    r = run_script("""
        import eryx, gc, weakref
        class Agent:
            def __init__(self):
                self.sb = eryx.Sandbox(callbacks=[{"name": "tool", "fn": self.tool}],
                                       on_stdout=lambda text: self.seen.append(text))
                self.seen = []
            def tool(self):
                return 1
        refs = []
        for _ in range(20):
            a = Agent()
            a.sb.execute("print(await tool())")
            refs.append(weakref.ref(a.sb))
        del a
        gc.collect()
        print(sum(r() is not None for r in refs))
    """, timeout=120)
    assert r.stdout == "0\n", r.stdout + r.stderr
