import asyncio
import gc
import threading
import time

import pytest

import eryx


def test_execute_stdout_and_str(sandbox):
    r = sandbox.execute('print("hello"); import sys; print("err", file=sys.stderr)')
    assert r.stdout == "hello\n"
    assert r.stderr == "err\n"
    assert str(r) == "hello\n"
    assert isinstance(r, eryx.ExecuteResult)
    assert r.duration_ms > 0
    assert r.callback_invocations == 0
    assert r.peak_memory_bytes >= 1 << 20
    assert r.fuel_consumed is None or r.fuel_consumed > 0


def test_sandbox_is_stateless(sandbox):
    with pytest.raises(eryx.ExecutionError):
        sandbox.execute("y = 1\n1/0")
    assert sandbox.execute("print('y' in globals())").stdout == "False\n"
    sandbox.execute("x = 1\nopen('/tmp/f', 'w').write('a')")
    r = sandbox.execute("print('x' in globals()); import os; print(os.path.exists('/tmp/f'))")
    assert r.stdout == "False\nFalse\n"


def test_result_variable():
    sb = eryx.Sandbox()
    r = sb.execute("result = {'a': [1, 2.5, None]}")
    assert r.result == {"a": [1, 2.5, None]}
    assert r.result_json == '{"a": [1, 2.5, null]}'
    assert r.result_error is None
    r = sb.execute("result = object()")
    assert r.result is None and "not JSON-serialisable" in r.result_error
    # Strict JSON, which C embedders, the MCP server and the service parse:
    # no NaN or Infinity token.
    r = sb.execute("result = [1.0, float('nan')]")
    assert r.result is None and r.result_json is None
    assert "Out of range float values are not JSON compliant" in r.result_error
    r = sb.execute("print(1)")
    assert r.result is None and r.result_json is None
    # Integers have no size limit, in JSON as in Python.
    r = sb.execute("result = {'n': 10**30, 'm': -2**64}")
    assert r.result == {"n": 10**30, "m": -2**64} and r.result_error is None
    # The code can hand the host any text as its result (event kind 2):
    # text that is not JSON is no result, and result_error says so, whether
    # it is read before or after result.
    forge = "import _eryx_host\n_eryx_host.event(2, b'{oops')"
    r = sb.execute(forge)
    assert r.result_json == "{oops"
    assert r.result_error == "the sandbox reported a result that is not JSON"
    assert r.result is None
    r = sb.execute(forge)
    assert r.result is None
    assert r.result_error == "the sandbox reported a result that is not JSON"


def test_custom_result_variable():
    sb = eryx.Sandbox(result_variable="answer")
    r = sb.execute("answer = [42]\nresult = 'not this one'")
    assert r.result == [42]
    r = sb.execute("print('no answer')")
    assert r.result is None and r.stdout == "no answer\n"
    r = sb.execute("answer = {1, 2}")
    assert r.result is None and "answer" in r.result_error
    with pytest.raises(ValueError):
        eryx.Sandbox(result_variable="not an identifier")


def test_execution_error_carries_traceback(sandbox):
    with pytest.raises(eryx.ExecutionError) as ei:
        sandbox.execute("print('before')\ndef f():\n    raise ValueError('boom')\nf()")
    e = ei.value
    assert "ValueError: boom" in str(e)
    assert 'line 3, in f' in str(e)
    assert e.result.stdout == "before\n"
    assert e.result.exception_type == "ValueError"
    assert isinstance(e, eryx.EryxError)
    # An exception's text is kept whole, NUL characters included.
    with pytest.raises(eryx.ExecutionError) as ei:
        sandbox.execute("raise ValueError('x\\0y')")
    assert ei.value.result.exception_message == "x\0y"
    assert ei.value.result.traceback.endswith("ValueError: x\0y\n")


def test_syntax_error_and_bytes_code(sandbox):
    with pytest.raises(eryx.ExecutionError, match="SyntaxError"):
        sandbox.execute("def (")
    assert sandbox.execute(b"print('from bytes')").stdout == "from bytes\n"
    with pytest.raises(eryx.ExecutionError, match="SyntaxError"):
        sandbox.execute(b"\xff\xfe")
    with pytest.raises(eryx.ExecutionError, match="SyntaxError|null"):
        sandbox.execute("print(1)\0")
    assert sandbox.execute("x = 1\n" * 20000 + "print(x)").stdout == "1\n"


def test_wrong_types(sandbox):
    with pytest.raises(TypeError):
        sandbox.execute(42)
    with pytest.raises(TypeError):
        sandbox.execute(None)
    with pytest.raises(UnicodeEncodeError):
        sandbox.execute("print('\ud800')")
    with pytest.raises(TypeError):
        eryx.Sandbox(resource_limits="fast")
    with pytest.raises(TypeError):
        eryx.Sandbox(on_stdout=3)
    with pytest.raises(TypeError):
        eryx.Sandbox(callbacks=[{"name": "x"}])
    with pytest.raises(TypeError):
        eryx.Sandbox(nonsense=1)


def test_timeout_is_builtin_timeout_too():
    sb = eryx.Sandbox(resource_limits=eryx.ResourceLimits(execution_timeout_ms=100))
    t = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        sb.execute("while True: pass")
    assert time.monotonic() - t < 5
    assert isinstance(ei.value, eryx.TimeoutError)
    assert isinstance(ei.value, eryx.EryxError)
    # The sandbox still works after a timeout.
    assert sb.execute("print('alive')").stdout == "alive\n"


def test_memory_limit():
    sb = eryx.Sandbox(resource_limits=eryx.ResourceLimits(max_memory_bytes=64 << 20))
    r = sb.execute("try:\n    x = bytearray(200 << 20)\nexcept MemoryError:\n    print('caught')")
    assert r.stdout == "caught\n"
    with pytest.raises(eryx.ResourceLimitError, match="MemoryError"):
        sb.execute("x = bytearray(200 << 20)")


def test_limits_validation():
    with pytest.raises(ValueError, match="negative|positive"):
        eryx.ResourceLimits(execution_timeout_ms=-1)
    with pytest.raises(ValueError):
        eryx.ResourceLimits(max_memory_bytes=0)
    with pytest.raises(TypeError):
        eryx.ResourceLimits(max_memory_bytes="1GB")
    with pytest.raises(TypeError):
        eryx.ResourceLimits(execution_timeout_ms=True)
    # Set later, checked the same (it failed at the sandbox's creation,
    # as "timeout_ns must not be negative").
    lim = eryx.ResourceLimits()
    with pytest.raises(ValueError, match="execution_timeout_ms"):
        lim.execution_timeout_ms = -5
    with pytest.raises(ValueError, match="too large"):
        lim.max_callback_invocations = 2**32
    lim.execution_timeout_ms = None
    assert lim.execution_timeout_ms is None
    d = eryx.ResourceLimits()
    assert (d.execution_timeout_ms, d.callback_timeout_ms, d.max_memory_bytes,
            d.max_callback_invocations, d.max_fuel) == (30000, 10000, 128 << 20, 1000, None)
    u = eryx.ResourceLimits.unlimited()
    assert u.execution_timeout_ms is None and u.max_memory_bytes is None
    sb = eryx.Sandbox(resource_limits=u)
    assert sb.execute("print(len(bytearray(150 << 20)))").stdout == f"{150 << 20}\n"


def test_fuel_limit_matches_the_build():
    if eryx.build_has_fuel():
        sb = eryx.Sandbox(resource_limits=eryx.ResourceLimits(max_fuel=100_000))
        with pytest.raises(eryx.ResourceLimitError, match="fuel"):
            sb.execute("while True: pass")
    else:
        with pytest.raises(ValueError, match="fuel"):
            eryx.Sandbox(resource_limits=eryx.ResourceLimits(max_fuel=100_000))


def test_session_fuel_limit_as_the_reference():
    # Session(max_fuel=) and the settable Session.fuel_limit of the
    # reference binding (ctest python_fuel runs this in the fuel build).
    s = eryx.Session()
    assert s.fuel_limit is None
    s.fuel_limit = None
    assert s.fuel_limit is None
    with pytest.raises(TypeError):
        s.fuel_limit = 1.5
    with pytest.raises(ValueError):
        s.fuel_limit = 0
    if not eryx.build_has_fuel():
        with pytest.raises(ValueError, match="fuel"):
            s.fuel_limit = 100_000
        with pytest.raises(ValueError, match="fuel"):
            eryx.Session(max_fuel=100_000)
        assert s.fuel_limit is None
        return
    s = eryx.Session(max_fuel=200_000)
    assert s.fuel_limit == 200_000
    s.execute("x = sum(range(100))")
    with pytest.raises(eryx.ResourceLimitError, match="fuel"):
        s.execute("while True: pass")
    s.reset()
    assert s.fuel_limit == 200_000  # the limit outlives a reset
    s.fuel_limit = None
    assert s.fuel_limit is None
    assert s.execute("print(sum(range(3_000_000)))").stdout == f"{sum(range(3_000_000))}\n"
    s.fuel_limit = 200_000
    f = s.fork()
    assert f.fuel_limit == 200_000
    with pytest.raises(eryx.ResourceLimitError, match="fuel"):
        asyncio.run(f.execute_async("while True: pass"))
    # The override beats resource_limits' max_fuel, both ways.
    s = eryx.Session(resource_limits=eryx.ResourceLimits(max_fuel=200_000))
    assert s.fuel_limit == 200_000
    s.fuel_limit = None
    assert s.execute("print(sum(range(3_000_000)))").stdout == f"{sum(range(3_000_000))}\n"


def test_process_time_is_the_sandboxs_own_cpu_time():
    # wasi-libc's emulation counted the wall time since the image was built,
    # sleeps included, and os.times() read its nanoseconds as 1/100 s ticks.
    sb = eryx.Sandbox()
    r = sb.execute(
        "import os, time\n"
        "t0 = time.process_time(); u0 = os.times().user\n"
        "time.sleep(0.3)\n"
        "t1 = time.process_time()\n"
        "while time.process_time() - t1 < 0.05: pass\n"
        "t2 = time.process_time()\n"
        "print(t0, t1 - t0, t2 - t1, os.times().user - u0)\n")
    t0, slept, spun, user = map(float, r.stdout.split())
    assert 0 <= t0 < 5          # since this sandbox began, not the image
    assert 0 <= slept < 0.1     # a sleep is not CPU time
    assert 0.05 <= spun < 1
    assert 0.02 <= user < 2     # seconds, as os.times() promises


def test_thread_time_is_the_sandboxs_cpu_time_too():
    # CPython's WASI build has no time.thread_time: code that profiled with
    # it raised AttributeError. One thread: the process's CPU time.
    r = eryx.Sandbox().execute(
        "import time\n"
        "t0 = time.thread_time()\n"
        "time.sleep(0.3)\n"
        "t1 = time.thread_time()\n"
        "while time.thread_time_ns() - t1 * 1e9 < 0.05e9: pass\n"
        "print(t1 - t0, time.thread_time() - t1, time.get_clock_info('thread_time').monotonic)\n")
    slept, spun, monotonic = r.stdout.split()
    assert 0 <= float(slept) < 0.1 and 0.05 <= float(spun) < 1 and monotonic == "True"


def test_streaming_output():
    chunks = []
    errs = []
    sb = eryx.Sandbox(on_stdout=chunks.append, on_stderr=errs.append)
    r = sb.execute("import sys\nfor i in range(3):\n    print(i)\nprint('e', file=sys.stderr)")
    assert "".join(chunks) == "0\n1\n2\n" == r.stdout
    assert len(chunks) >= 3
    assert "".join(errs) == "e\n"


def test_streaming_keeps_characters_whole():
    """A write that ends inside a character (os.write of part of its bytes)
    holds those bytes for the next write: on_stdout gets the character
    whole, not two U+FFFD; a character still cut at the end is one U+FFFD,
    as in the result."""
    chunks = []
    sb = eryx.Sandbox(on_stdout=chunks.append)
    r = sb.execute("import os\nos.write(1, b'\\xc3')\nos.write(1, b'\\xa9\\n')\n"
                   "os.write(1, b'\\xf0\\x9f')\nos.write(1, b'\\x98\\x80 ok\\n')\n"
                   "os.write(1, b'end\\xe2\\x82')")
    assert "".join(chunks) == r.stdout == "\u00e9\n\U0001f600 ok\nend\ufffd"
    assert "\ufffd" not in "".join(chunks[:-1])


def test_streaming_keeps_characters_whole_across_steps():
    """Driven step by step, the run stops at each awaited callback: a
    character cut by the write before one is still delivered whole."""
    async def tick():
        return 1

    async def main():
        chunks = []
        sb = eryx.Sandbox(callbacks=[{"name": "tick", "fn": tick}],
                          on_stdout=chunks.append)
        r = await sb.execute_async(
            "import os\nos.write(1, b'a\\xc3')\nawait tick()\n"
            "os.write(1, b'\\xa9b')\nawait tick()\nos.write(1, b'\\xe2')",
            step_in_loop=True)
        return chunks, r

    chunks, r = asyncio.run(main())
    assert "".join(chunks) == r.stdout == "a\u00e9b\ufffd"
    assert chunks[:2] == ["a", "\u00e9b"]


def test_streaming_sees_chunks_before_the_end():
    seen_at = []
    start = time.monotonic()
    sb = eryx.Sandbox(on_stdout=lambda s: seen_at.append(time.monotonic() - start))
    sb.execute("import time\nprint('a')\ntime.sleep(0.3)\nprint('b')")
    assert len(seen_at) == 2 and seen_at[1] - seen_at[0] > 0.2


def test_stream_function_that_raises():
    def bad(chunk):
        raise RuntimeError("stream broke")
    sb = eryx.Sandbox(on_stdout=bad)
    with pytest.raises(RuntimeError, match="stream broke"):
        sb.execute("print(1)")
    # The sandbox stays usable.
    sb2 = eryx.Sandbox()
    assert sb2.execute("print(2)").stdout == "2\n"


def test_closed_sandbox():
    sb = eryx.Sandbox()
    sb.close()
    sb.close()
    assert sb.closed
    with pytest.raises(ValueError, match="closed"):
        sb.execute("pass")
    with eryx.Sandbox() as sb2:
        assert sb2.execute("print(3)").stdout == "3\n"
    assert sb2.closed


def test_volumes(tmp_path):
    # (host_path, guest_path, read_only), as the reference binding takes them.
    (tmp_path / "in.txt").write_text("from host")
    sb = eryx.Sandbox(volumes=[(str(tmp_path), "/data", False)])
    r = sb.execute("print(open('/data/in.txt').read())\nopen('/data/out.txt','w').write('hi')")
    assert r.stdout == "from host\n"
    assert (tmp_path / "out.txt").read_text() == "hi"
    for ro in (eryx.Sandbox(volumes=[(str(tmp_path), "/data", True)]),
               eryx.Sandbox(volumes=[(str(tmp_path), "/data")])):
        with pytest.raises(eryx.ExecutionError, match="OSError|PermissionError|Read-only"):
            ro.execute("open('/data/x', 'w')")
        assert ro.execute("print(open('/data/in.txt').read())").stdout == "from host\n"
    assert not (tmp_path / "x").exists()


def test_env():
    sb = eryx.Sandbox(env={"GREETING": "hi"})
    assert sb.execute("import os; print(os.environ['GREETING'])").stdout == "hi\n"
    # Not a variable's name or value: refused ({"A=B": "x"} became A="B=x").
    for bad, exc in (({"A=B": "x"}, ValueError), ({"": "x"}, ValueError),
                     ({"A": "x\0y"}, ValueError), ({"A": 1}, TypeError), ({1: "x"}, TypeError)):
        with pytest.raises(exc):
            eryx.Sandbox(env=bad)


def test_system_exit_is_not_an_error(sandbox):
    r = sandbox.execute("import sys; print('x'); sys.exit(3)")
    assert r.exit_code == 3 and r.exited and r.stdout == "x\n"


def test_two_threads_on_one_sandbox():
    # The run holds inside a callback until the other thread is done: a
    # fixed sleep could end first on a loaded machine.
    entered, release = threading.Event(), threading.Event()

    def hold():
        entered.set()
        release.wait(30)
    sb = eryx.Sandbox(callbacks=[{"name": "hold", "fn": hold}])
    errors = []
    t = threading.Thread(target=lambda: sb.execute("await hold()"))
    t.start()
    assert entered.wait(30)
    try:
        sb.execute("pass")
    except eryx.EryxError as e:
        errors.append(str(e))
    try:
        with pytest.raises(eryx.EryxError, match="while it runs"):
            sb.close()
    finally:
        release.set()
        t.join()
    assert errors and "one thread at a time" in errors[0]
    sb.close()


def test_interrupt_from_another_thread():
    s = eryx.Session()
    s.execute("x = 1")
    threading.Timer(0.2, s.interrupt).start()
    t = time.monotonic()
    with pytest.raises(eryx.CancelledError):
        s.execute("try:\n    while True: pass\nfinally:\n    x = 2")
    assert time.monotonic() - t < 3
    assert s.execute("print(x)").stdout == "2\n"  # graceful: the session survives


def test_hard_stop_kills_then_reset_revives():
    s = eryx.Session()
    threading.Timer(0.1, s.interrupt).start()
    with pytest.raises(eryx.CancelledError, match="hard") as ei:
        s.execute("while True:\n    try:\n        while True: pass\n    except BaseException: pass")
    assert ei.value.result.hard_stopped
    assert s.is_dead
    with pytest.raises(eryx.EryxError, match="no longer run code.*reset"):
        s.execute("pass")
    s.reset()
    assert s.execute("print('back')").stdout == "back\n"


def test_gc_frees_sandboxes():
    for _ in range(50):
        eryx.Sandbox().execute("pass")
    gc.collect()


def test_version():
    assert eryx.__version__.count(".") == 2


def test_every_public_name_is_documented():
    import inspect
    for name in eryx.__all__:
        obj = getattr(eryx, name)
        if name == "__version__":
            continue
        assert inspect.getdoc(obj), name
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not (callable(member) or isinstance(member, property)):
                    continue
                assert inspect.getdoc(getattr(obj, attr)), f"{name}.{attr}"
    assert "execute" in __import__("pydoc").render_doc(eryx.Sandbox)


def test_stub_files_ship():
    import os
    d = os.path.dirname(eryx.__file__)
    assert os.path.exists(os.path.join(d, "py.typed"))
    assert os.path.exists(os.path.join(d, "_eryx.pyi"))


def test_os_exit():
    sb = eryx.Sandbox()
    r = sb.execute("import os; print(1, flush=True); os._exit(3)")
    assert (r.stdout, r.exit_code, r.exited) == ("1\n", 3, True)
    assert sb.execute("print(2)").stdout == "2\n"  # a stateless sandbox starts afresh
    s = eryx.Session()
    assert s.execute("import os; os._exit(4)").exit_code == 4
    assert s.is_dead
    with pytest.raises(eryx.EryxError, match="reset"):
        s.execute("pass")
    s.reset()
    assert s.execute("print(5)").stdout == "5\n"


def test_times_too_large_for_liberyx_are_refused_when_given():
    # Accepted up to 2**63 ms, they failed later, at the sandbox, the run or
    # the acquire, named by liberyx's field ("timeout_ns is too large").
    most = (2**64 - 1) // 1_000_000
    for name in ("execution_timeout_ms", "callback_timeout_ms"):
        with pytest.raises(ValueError, match=f"{name} is too large"):
            eryx.ResourceLimits(**{name: most + 1})
    with pytest.raises(ValueError, match="too large"):
        eryx.NetConfig(connect_timeout_ms=most + 1)
    with pytest.raises(ValueError, match="acquire_timeout_ms is too large"):
        eryx.SandboxPool(acquire_timeout_ms=most + 1)
    with eryx.Session() as s:
        with pytest.raises(ValueError, match="too large"):
            s.execution_timeout_ms = most + 1
        s.execution_timeout_ms = most
        assert s.execute("print(1)").stdout == "1\n"
    sb = eryx.Sandbox(resource_limits=eryx.ResourceLimits(execution_timeout_ms=most,
                                                          callback_timeout_ms=most))
    assert sb.execute("print(2)").stdout == "2\n"


def test_a_caught_stop_still_shows():
    # Code that catches the timeout's KeyboardInterrupt and ends within the
    # grace returns normally; `stopped` says the limit passed all the same
    # (nothing did until 2026-12-07: untrusted code could hide its timeout).
    with eryx.Session(execution_timeout_ms=300) as s:
        r = s.execute("import time\ntry:\n    time.sleep(5)\nexcept KeyboardInterrupt:\n"
                      "    print('caught')")
        assert (r.stdout, r.status, r.stopped) == ("caught\n", 0, "timeout")
        assert s.execute("print(1)").stopped is None


def test_results_and_errors_pickle():
    # For multiprocessing and ProcessPoolExecutor: they raised "cannot
    # pickle 'eryx.ExecuteResult' object", and so did an error carrying one.
    import pickle
    with eryx.Session() as s:
        r = s.execute("print('hi')\nresult = {'a': [1, 2]}")
        back = pickle.loads(pickle.dumps(r))
        assert (back.stdout, back.result, back.status, back.duration_ms, back.stopped) == \
            ("hi\n", {"a": [1, 2]}, 0, r.duration_ms, None)
        with pytest.raises(eryx.ExecutionError) as ei:
            s.execute("raise ValueError('no')")
        err = pickle.loads(pickle.dumps(ei.value))
        assert type(err) is eryx.ExecutionError and str(err) == str(ei.value)
        assert err.result.exception_type == "ValueError"
    with pytest.raises(TypeError):
        eryx._eryx._result_restore((1, 2, 3.0, 1, 1, 1, None, None, None, None, None,
                                    0, 0, 0, 0, 0, 0, 0))


def test_a_result_this_python_cannot_read_is_a_result_error():
    # Nested deeper than json.loads reads, or an int of more digits than
    # it converts: honest code makes both, and reading r.result raised
    # RecursionError (or said "not JSON") until 2026-12-07.
    sb = eryx.Sandbox()
    r = sb.execute("x = []\nfor i in range(3000):\n    x = [x]\nresult = x")
    assert r.result is None
    assert r.result_error.startswith("the sandbox reported a result this Python cannot read: "
                                     "maximum recursion depth exceeded"), r.result_error
    r = sb.execute("import sys\nsys.set_int_max_str_digits(0)\nresult = 10**5000")
    assert r.result is None and "4300 digits" in r.result_error, r.result_error
    # An exception's text is kept to max_output (at least 1 KiB).
    sb = eryx.Sandbox(resource_limits=eryx.ResourceLimits(max_output_bytes=2000))
    with pytest.raises(eryx.ExecutionError) as e:
        sb.execute('raise ValueError("x" * 10_000_000)')
    r = e.value.result
    assert len(r.exception_message) < 2100 and len(r.traceback) < 2100, len(r.traceback)
    assert r.traceback.endswith("bytes more cut: max_output]\n"), r.traceback[-80:]
    r = sb.execute('import _eryx_host\n_eryx_host.event(3, b"y" * 10_000_000)')
    assert len(r.result_error) < 2100 and "cut: max_output" in r.result_error
    # A SystemExit whose code str() refuses is still a SystemExit.
    r = sb.execute("import sys\nsys.exit(10**5000)")
    assert r.exited and r.exit_code == 1, (r.exited, r.exit_code)


def test_state_operations_keep_the_session_timeout():
    # export_state runs the session's code (a pickling hook): it ran under
    # the default 30 s, not the session's execution_timeout_ms, until
    # 2026-12-07.
    s = eryx.Session(execution_timeout_ms=1000)
    s.execute("import _eryx.state as st\ndef forever(g):\n    while True:\n        pass\n"
              "st.export = forever")
    t = time.monotonic()
    with pytest.raises(eryx.ExecutionError, match="ERYX_TIMEOUT"):
        s.export_state()
    assert time.monotonic() - t < 5
