import os

import pytest

import eryx


def test_state_persists_and_count(session):
    session.execute("x = 41")
    session.execute("def f(): return x + 1")
    assert session.execute("print(f())").stdout == "42\n"
    assert session.execution_count == 3
    with pytest.raises(eryx.ExecutionError):
        session.execute("1/0")
    assert session.execution_count == 4


def test_result_assigned_again_to_the_same_object(session):
    # True, small ints and interned strings are one object each: a run that
    # assigns the value the last run left is still a run that assigned it.
    for code, value in (("result = True", True), ("result = True", True),
                        ("result = 5", 5), ("def f():\n    global result\n    result = 5\nf()", 5),
                        ("result = 'ok'", "ok"), ("result = 'ok'", "ok")):
        assert session.execute(code).result == value, code
    # A run that only reads it, or does not mention it, has no result.
    assert session.execute("print(result)").result is None
    assert session.execute("x = 1").result is None


def test_a_custom_result_variable_stays_and_is_reported_when_assigned():
    # Until 2026-12-07 the probe that read it popped it: the next run's
    # NameError.
    s = eryx.Session(result_variable="answer")
    try:
        for code, value in (("def f():\n    global answer\n    answer = [7]\nanswer = 42", 42),
                            ("print(answer)", None), ("answer = 42", 42),
                            ("x = [answer]", None),
                            ("f()", [7]),  # set by a function of an earlier run
                            ("print(answer)", None)):
            r = s.execute(code)
            assert r.result == value, (code, r.result, r.result_error)
        assert s.execute("print(answer)").stdout == "[7]\n"
    finally:
        s.close()


def test_a_stale_running_loop_mark_does_not_wedge_the_session(session):
    # A stop that lands in asyncio's own bookkeeping, between a loop marking
    # itself running and unmarking, left the mark (found by random 1-4 ms
    # timeouts of a gather, once in ~1,850 runs): every later top-level
    # await and asyncio.run raised "Cannot run the event loop while another
    # loop is running", and the session was not dead. The mark, made here
    # by hand, is forgotten at the next run.
    session.execute("import asyncio\nasyncio.events._set_running_loop(asyncio.new_event_loop())")
    assert session.execute("async def f():\n    return 1\nprint(asyncio.run(f()))").stdout == "1\n"
    session.execute("asyncio.events._set_running_loop(asyncio.new_event_loop())")
    assert session.execute("print(await f())").stdout == "1\n"


def test_reset_and_clear_state(session):
    session.execute("import json\nx = 1\nopen('/tmp/keep', 'w').write('k')")
    session.clear_state()
    r = session.execute("print('x' in globals()); import os; print(os.path.exists('/tmp/keep'))")
    assert r.stdout == "False\nTrue\n"
    session.reset()
    assert session.execution_count == 0
    r = session.execute("import os; print(os.path.exists('/tmp/keep'), 'x' in globals())")
    assert r.stdout == "False False\n"


def test_snapshot_and_restore(session):
    session.execute("a = [1, 2]\nb = {'k': 'v'}\ndef g(n): return n * 3\n"
                    "import threading\nlock = threading.Lock()")
    snap = session.snapshot_state()
    assert isinstance(snap, bytes) and snap
    data, skipped = session.export_state()
    assert skipped == ["lock"]
    other = eryx.Session()
    other.restore_state(snap)
    assert other.execute("print(a, b, g(2))").stdout == "[1, 2] {'k': 'v'} 6\n"
    with pytest.raises(ValueError):
        other.restore_state(b"garbage bytes")
    with pytest.raises(eryx.ExecutionError):    # as the reference binding raises
        other.restore_state(b"garbage bytes")
    with pytest.raises(TypeError):
        other.restore_state("text")
    assert other.import_state(data) == []


def test_execution_timeout_ms_settable():
    s = eryx.Session()
    assert s.execution_timeout_ms is None
    s.execution_timeout_ms = 100
    assert s.execution_timeout_ms == 100
    with pytest.raises(eryx.TimeoutError):
        s.execute("while True: pass")
    with pytest.raises(ValueError):
        s.execution_timeout_ms = -5
    s.execution_timeout_ms = None
    assert s.execution_timeout_ms is None
    s2 = eryx.Session(execution_timeout_ms=150)
    with pytest.raises(TimeoutError):
        s2.execute("import time\nwhile True: time.sleep(0.01)")


def test_fork_is_independent(session):
    session.execute("items = [1]")
    child = session.fork()
    child.execute("items.append(2)")
    session.execute("items.append(3)")
    assert child.execute("print(items)").stdout == "[1, 2]\n"
    assert session.execute("print(items)").stdout == "[1, 3]\n"
    assert child.execution_count == 3  # 1 inherited + 2


def test_fork_shares_callbacks():
    s = eryx.Session(callbacks=[{"name": "inc", "fn": lambda n: n + 1}])
    s.execute("v = await inc(1)")
    f = s.fork()
    del s
    import gc
    gc.collect()
    assert f.execute("print(await inc(v))").stdout == "3\n"


def test_save_and_load(tmp_path):
    s = eryx.Session()
    s.execute("data = {'n': 7}\nopen('/tmp/t.txt', 'w').write('file kept')")
    path = tmp_path / "s.session"
    s.save(path)
    loaded = eryx.Session.load(path, callbacks=[{"name": "two", "fn": lambda: 2}])
    r = loaded.execute("print(data['n'] * await two(), open('/tmp/t.txt').read())")
    assert r.stdout == "14 file kept\n"
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a session at all" * 10)
    with pytest.raises(eryx.InitializationError) as ei:
        eryx.Session.load(bad)
    assert ei.value.status == 3  # ERYX_INVALID: liberyx's status (it was None)
    with pytest.raises((OSError, eryx.InitializationError)) as ei:
        eryx.Session.load(tmp_path / "missing")
    assert ei.value.status == 8  # ERYX_IO
    # Truncated file.
    raw = path.read_bytes()
    (tmp_path / "trunc").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(eryx.InitializationError):
        eryx.Session.load(tmp_path / "trunc")


def test_save_with_dir_fd_keeps_to_the_directory(tmp_path):
    # The code holds a writable mount above the session's directory and
    # swaps the directory for a link to elsewhere on the host: a save by
    # path follows it, a save through the directory opened before does not.
    (tmp_path / "m" / "d").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "m" / "evil")
    d = os.open(tmp_path / "m" / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        s = eryx.Session(volumes=[(str(tmp_path / "m"), "/data", False)])
        r = s.execute("import os\nx = 5\nos.rename('/data/d', '/data/d.old')\n"
                      "os.rename('/data/evil', '/data/d')")
        assert r.stderr == ""
        s.save(tmp_path / "m" / "d" / "s.session")
        assert (tmp_path / "elsewhere" / "s.session").exists()  # what dir_fd avoids
        s.save("s.session", dir_fd=d)
        loaded = eryx.Session.load(tmp_path / "m" / "d.old" / "s.session")
        assert loaded.execute("print(x)").stdout == "5\n"
        assert sorted(os.listdir(tmp_path / "m" / "d.old")) == ["s.session"]
        with pytest.raises(ValueError):
            s.save("s.session", dir_fd=-1)
        with pytest.raises(TypeError):
            s.save("s.session", dir_fd="d")
        with pytest.raises(TypeError):
            s.save("s.session", d)  # keyword only, as in os
    finally:
        os.close(d)


def test_closed_session():
    s = eryx.Session()
    s.close()
    for call in (lambda: s.execute("pass"), s.reset, s.clear_state, s.snapshot_state,
                 s.fork, lambda: s.save("/tmp/x")):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_unsupported_reference_options_are_clear():
    with pytest.raises(TypeError, match="vfs"):
        eryx.Session(vfs=object())
    with pytest.raises(TypeError, match="mcp"):
        eryx.Sandbox(mcp=object())


def test_bad_paths_and_volumes(tmp_path):
    s = eryx.Session()
    with pytest.raises(OSError):
        s.save(tmp_path / "no" / "such" / "dir" / "s.session")
    with pytest.raises(ValueError):
        s.save("bad\0path")
    with pytest.raises((eryx.InitializationError, ValueError, OSError)):
        eryx.Session(volumes=[(str(tmp_path / "missing"), "/data", False)])
    with pytest.raises(TypeError):
        eryx.Session(volumes=["/tmp"])
    with pytest.raises((eryx.InitializationError, ValueError)):
        eryx.Session(volumes=[(str(tmp_path), "relative/path", False)])
