"""execute_with_journal: suspending an execution from a callback and resuming
it from its journal (eryx/_journal.py; docs/python.md, "Journals")."""
import asyncio
import base64
import json
import threading
import time
import zlib

import pytest

import eryx
from conftest import run_script


class Approvals:
    """Callbacks whose `approve` suspends until allowed; counts the calls."""

    def __init__(self, inline=False):
        self.allowed = False
        self.calls = []
        self.registry = eryx.CallbackRegistry()

        def get(key: str):
            self.calls.append(("get", key))
            if key == "boom":
                raise RuntimeError("kaput")
            return key.upper()

        def approve(what: str):
            self.calls.append(("approve", what))
            if not self.allowed:
                raise eryx.SuspendCallback(f"a human must approve {what}")
            return {"approved": what}

        self.registry.add(get, inline=inline)
        self.registry.add(approve, inline=inline)

    def count(self, name):
        return sum(1 for n, _ in self.calls if n == name)


CODE = """\
a = await get(key="a")
print("got", a)
ok = await approve(what="deploy")
b = await get(key="b")
print("then", b)
result = {"a": a, "ok": ok, "b": b}
"""


def through_json(journal):
    return json.loads(json.dumps(journal))


def test_without_suspension_is_an_execute():
    cb = Approvals()
    cb.allowed = True
    o = eryx.Sandbox(callbacks=cb.registry).execute_with_journal(CODE)
    assert o.error is None and o.suspended is None
    assert o.result.result == {"a": "A", "ok": {"approved": "deploy"}, "b": "B"}
    assert o.result.stdout == "got A\nthen B\n"
    assert o.replayed_callbacks == 0
    j = o.journal
    assert j["version"] == 1 and j["state"] is None and isinstance(j["journal"], str)
    assert o.journal is j  # built once
    assert cb.count("get") == 2


def test_suspend_then_resume_in_the_same_sandbox():
    cb = Approvals()
    sb = eryx.Sandbox(callbacks=cb.registry)
    o = sb.execute_with_journal(CODE)
    assert o.result is None
    assert isinstance(o.suspended, eryx.SuspendedCallback)
    assert (o.suspended.name, o.suspended.args, o.suspended.reason) == \
        ("approve", {"what": "deploy"}, "a human must approve deploy")
    assert json.loads(o.suspended.args_json) == {"what": "deploy"}
    assert isinstance(o.error, eryx.SuspendedError) and isinstance(o.error, eryx.EryxError)
    assert o.error.suspended is o.suspended and o.error.result is None
    assert "suspended by callback 'approve'" in str(o.error)
    assert cb.calls == [("get", "a"), ("approve", "deploy")]
    # The sandbox goes on as before.
    assert sb.execute("print(1 + 1)").stdout == "2\n"

    cb.allowed = True
    r = sb.execute_with_journal(CODE, journal=o.journal)
    assert r.error is None and r.suspended is None
    assert r.result.result == {"a": "A", "ok": {"approved": "deploy"}, "b": "B"}
    assert r.result.stdout == "got A\nthen B\n"  # the whole output, replay included
    assert r.replayed_callbacks == 1
    # get("a") came from the journal; the suspended call ran again, live.
    assert cb.calls == [("get", "a"), ("approve", "deploy"), ("approve", "deploy"),
                        ("get", "b")]
    assert r.result.callback_invocations == 2


def test_integers_beyond_64_bits_replay_exact():
    # A recorded reply holding 2**70 replays as it was answered (the host's
    # JSON reader stops at 64 bits: the value goes to the guest as text).
    answers = []
    registry = eryx.CallbackRegistry()

    def big():
        answers.append(2**70)
        return {"n": 2**70, "m": -10**30}

    def gate():
        if len(answers) < 2:
            answers.append("gate")
            raise eryx.SuspendCallback("later")
        return 1

    registry.add(big)
    registry.add(gate)
    code = "r = await big()\nawait gate()\nprint(r['n'] == 2**70, r['m'] == -10**30)\nresult = r"
    o = eryx.Sandbox(callbacks=registry).execute_with_journal(code)
    assert o.suspended is not None and answers == [2**70, "gate"]
    r = eryx.Sandbox(callbacks=registry).execute_with_journal(code, journal=through_json(o.journal))
    assert r.error is None and r.replayed_callbacks == 1, r.error
    assert answers == [2**70, "gate"]  # big() came from the journal
    assert r.result.stdout == "True True\n"
    assert r.result.result == {"n": 2**70, "m": -10**30}


def test_resume_in_a_fresh_sandbox_through_json():
    cb = Approvals()
    o = eryx.Sandbox(callbacks=cb.registry).execute_with_journal(CODE)
    text = json.dumps(o.journal)
    cb.allowed = True
    other = eryx.Sandbox(callbacks=cb.registry)
    r = other.execute_with_journal(CODE, journal=json.loads(text))
    assert r.result.result["ok"] == {"approved": "deploy"}
    assert r.replayed_callbacks == 1
    # The finished journal replays alone: no callback is called.
    before = list(cb.calls)
    again = eryx.Sandbox(callbacks=cb.registry).execute_with_journal(
        CODE, journal=through_json(r.journal))
    assert again.result.result == r.result.result
    assert again.replayed_callbacks == 3
    assert again.result.callback_invocations == 0
    assert cb.calls == before


def test_resume_twice_suspended():
    # Resumed while the reason still holds: suspended again, at the same call.
    cb = Approvals()
    sb = eryx.Sandbox(callbacks=cb.registry)
    o = sb.execute_with_journal(CODE)
    o2 = sb.execute_with_journal(CODE, journal=o.journal)
    assert o2.suspended is not None and o2.suspended.name == "approve"
    assert o2.replayed_callbacks == 1
    cb.allowed = True
    r = sb.execute_with_journal(CODE, journal=through_json(o2.journal))
    assert r.result.result["b"] == "B" and r.replayed_callbacks == 1
    assert cb.count("get") == 2  # "a" once, "b" once


SESSION_CODE = """\
counter += 1
seen.append(counter)
ok = await approve(what=f"step {counter}")
result = {"counter": counter, "seen": seen, "ok": ok, "pi": round(math.pi, 2)}
"""


def test_session_state_from_before_is_restored():
    cb = Approvals()
    s = eryx.Session(callbacks=cb.registry)
    s.execute("import math\ncounter = 0\nseen = []")
    o = s.execute_with_journal(SESSION_CODE)
    assert o.suspended is not None and o.suspended.args == {"what": "step 1"}
    # After the suspension the session is back where it was before.
    assert not s.is_dead
    assert s.execute("print(counter, seen)").stdout == "0 []\n"
    j = through_json(o.journal)
    assert isinstance(j["state"], str)

    # The session moves on; the resume goes back to the state the journal holds.
    s.execute("counter = 100\nseen = ['later']\ndel math")
    cb.allowed = True
    r = s.execute_with_journal(SESSION_CODE, journal=j)
    assert r.error is None, r.error
    assert r.result.result == {"counter": 1, "seen": [1], "ok": {"approved": "step 1"},
                               "pi": 3.14}
    assert s.execute("print(counter, seen)").stdout == "1 [1]\n"

    # And in a new session (another process would do the same).
    s2 = eryx.Session(callbacks=cb.registry)
    r2 = s2.execute_with_journal(SESSION_CODE, journal=j)
    assert r2.result.result == r.result.result
    assert r2.replayed_callbacks == 0  # the approval was the pending call
    assert s2.execute("print(counter)").stdout == "1\n"


def test_fresh_session_journal_has_no_state():
    cb = Approvals()
    s = eryx.Session(callbacks=cb.registry)
    o = s.execute_with_journal("x = 41\nok = await approve(what='x')\nresult = x + 1")
    assert o.suspended is not None
    assert o.journal["state"] is None
    assert s.execute("print('x' in globals())").stdout == "False\n"
    # Resumed in a session with state of its own: it starts from a fresh
    # interpreter, as the execution did.
    s.execute("y = 1")
    cb.allowed = True
    r = s.execute_with_journal("x = 41\nok = await approve(what='x')\nresult = x + 1",
                               journal=o.journal)
    assert r.result.result == 42
    assert s.execute("print('y' in globals(), x)").stdout == "False 41\n"


def test_replayed_callbacks_count_gathered_calls():
    # Inline callbacks run in the order of the calls, on the stepping
    # thread: which calls were answered before the suspension is exact.
    cb = Approvals(inline=True)
    code = ("import asyncio\n"
            "r = await asyncio.gather(get(key='x'), get(key='y'), approve(what='g'),"
            " get(key='z'))\n"
            "result = r")
    sb = eryx.Sandbox(callbacks=cb.registry)
    o = sb.execute_with_journal(code)
    assert o.suspended.name == "approve"
    assert cb.calls == [("get", "x"), ("get", "y"), ("approve", "g")]  # z held, unanswered
    cb.allowed = True
    r = sb.execute_with_journal(code, journal=o.journal)
    assert r.result.result == ["X", "Y", {"approved": "g"}, "Z"]
    assert r.replayed_callbacks == 2
    assert cb.calls[3:] == [("approve", "g"), ("get", "z")]


def test_async_callbacks_suspend_and_resume():
    calls = []
    allowed = []

    async def fetch(n: int):
        calls.append(n)
        await asyncio.sleep(0.01)
        if n == 2 and not allowed:
            raise eryx.SuspendCallback("later")
        return n * 10

    code = "result = [await fetch(n=i) for i in range(4)]"
    sb = eryx.Sandbox(callbacks=[{"name": "fetch", "fn": fetch}])
    o = sb.execute_with_journal(code)
    assert o.suspended is not None and o.suspended.reason == "later"
    assert calls == [0, 1, 2]
    allowed.append(True)
    r = sb.execute_with_journal(code, journal=o.journal)
    assert r.result.result == [0, 10, 20, 30]
    assert r.replayed_callbacks == 2
    assert calls == [0, 1, 2, 2, 3]


def test_callback_exception_is_an_error_on_the_outcome():
    cb = Approvals()
    sb = eryx.Sandbox(callbacks=cb.registry)
    o = sb.execute_with_journal("await get(key='boom')")
    assert o.result is None and o.suspended is None
    assert isinstance(o.error, eryx.ExecutionError)
    assert o.error.result.exception_type == "eryx.CallbackError"
    assert "RuntimeError: kaput" in str(o.error)
    # The failure is journaled: replayed, the callback is not called again.
    r = sb.execute_with_journal("await get(key='boom')", journal=through_json(o.journal))
    assert isinstance(r.error, eryx.ExecutionError) and r.replayed_callbacks == 1
    assert cb.count("get") == 1
    # An execution error without callbacks, and a plain one that succeeds.
    assert isinstance(sb.execute_with_journal("1 / 0").error, eryx.ExecutionError)
    assert sb.execute_with_journal("print('fine')").result.stdout == "fine\n"


def test_suspend_callback_in_plain_execute_is_a_failure():
    cb = Approvals()
    with pytest.raises(eryx.ExecutionError, match="SuspendCallback"):
        eryx.Sandbox(callbacks=cb.registry).execute("await approve(what='x')")


def test_journal_from_other_code_is_refused():
    cb = Approvals()
    sb = eryx.Sandbox(callbacks=cb.registry)
    o = sb.execute_with_journal(CODE)
    with pytest.raises(eryx.JournalError, match="the code differs from the journal's"):
        sb.execute_with_journal(CODE + "print('more')\n", journal=o.journal)
    assert sb.execute("print('still')").stdout == "still\n"


def test_draws_replay_the_same_calls():
    # What the code drew from the host is in the journal: a resume, in the
    # session and in a fresh one, makes the same first call and is served it.
    cb = Approvals()
    code = ("import os, random, time, uuid\n"
            "k = f'{random.random()}|{uuid.uuid4()}|{os.urandom(4).hex()}|{time.time()}'\n"
            "got = await get(key=k)\n"
            "ok = await approve(what=got)\n"
            "result = k")
    s = eryx.Session(callbacks=cb.registry)
    s.execute("import random\nrandom.random()")
    o = s.execute_with_journal(code)
    assert o.suspended is not None
    cb.allowed = True
    for runner in (s, eryx.Session(callbacks=cb.registry), eryx.Sandbox(callbacks=cb.registry)):
        r = runner.execute_with_journal(code, journal=through_json(o.journal))
        assert r.error is None, r.error
        assert r.replayed_callbacks == 1
        assert r.result.result == o.suspended.args["what"].lower()
    assert cb.count("get") == 1


def test_divergence_is_an_error_on_the_outcome():
    # The code calls with arguments that differ from run to run: the
    # monotonic clock measures, and is not journaled.
    cb = Approvals()
    code = "import time\nk = await get(key=str(time.monotonic_ns()))\nawait approve(what=k)"
    sb = eryx.Sandbox(callbacks=cb.registry)
    o = sb.execute_with_journal(code)
    assert o.suspended is not None
    r = sb.execute_with_journal(code, journal=o.journal)
    assert isinstance(r.error, eryx.JournalError)
    assert "did not repeat the journal's calls" in str(r.error)
    assert "'get' with other arguments" in str(r.error)
    assert r.error.status == eryx._eryx.DIVERGED
    assert r.result is None and r.suspended is None and r.replayed_callbacks == 0
    assert cb.count("get") == 1  # the differing call never reached the host
    assert sb.execute("print('ok')").stdout == "ok\n"

    # A session that diverges goes back to its state from before.
    s = eryx.Session(callbacks=cb.registry)
    s.execute("n = 7")
    o = s.execute_with_journal("n += 1\n" + code)
    r = s.execute_with_journal("n += 1\n" + code, journal=o.journal)
    assert isinstance(r.error, eryx.JournalError)
    assert not s.is_dead
    assert s.execute("print(n)").stdout == "7\n"


def _corrupt_journals(good):
    raw = base64.b64decode(good["journal"])
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    flipped = bytearray(raw)
    flipped[len(flipped) // 2] ^= 0xFF
    yield "not a dict", json.dumps(good), "must be the dict"
    yield "no version", {"journal": good["journal"], "state": None}, "no integer 'version'"
    yield "wrong version", dict(good, version=2), "version 2 is not supported"
    yield "version as str", dict(good, version="1"), "no integer 'version'"
    yield "missing state", {"version": 1, "journal": good["journal"]}, "lacks"
    yield "journal not str", dict(good, journal=list(raw)), "must be a str"
    yield "bad base64", dict(good, journal="not base64!"), "not base64"
    yield "not ASCII", dict(good, journal="é" * 8), "not base64"
    yield "truncated bytes", dict(good, journal=b64(raw[:-7])), "does not load"
    yield "damaged bytes", dict(good, journal=b64(bytes(flipped))), "does not load"
    yield "empty bytes", dict(good, journal=""), "does not load"
    yield "another format", dict(good, journal=b64(b"ERYXJNL9" + raw[8:])), "does not load"
    yield "state not str", dict(good, state=12), "must be None or a str"
    yield "state bad base64", dict(good, state="$$$"), "not base64"
    yield "state not zlib", dict(good, state=b64(b"hello")), "damaged"
    yield "state truncated", dict(good, state=b64(zlib.compress(b"x" * 5000)[:-6])), "truncated"
    yield "state trailing", dict(good, state=b64(zlib.compress(b"x") + b"junk")), "after its end"
    yield "state no session", dict(good, state=b64(zlib.compress(b"x" * 5000))), \
        "state does not load"


@pytest.mark.parametrize("name", [c[0] for c in _corrupt_journals(
    {"version": 1, "journal": base64.b64encode(b"x" * 64).decode(), "state": None})])
def test_corrupted_journal_is_refused_and_harmless(name):
    cb = Approvals()
    s = eryx.Session(callbacks=cb.registry)
    s.execute("import math\ncounter = 0\nseen = []")
    s.execute("counter = 5")  # state of its own: its journals carry it
    good = s.execute_with_journal(SESSION_CODE).journal
    assert good["state"] is not None
    case = {c[0]: c for c in _corrupt_journals(good)}[name]
    calls = len(cb.calls)
    with pytest.raises(eryx.JournalError, match=case[2]):
        s.execute_with_journal(SESSION_CODE, journal=case[1])
    assert len(cb.calls) == calls  # nothing ran
    assert s.execute("print(counter, seen)").stdout == "5 []\n"
    sb = eryx.Sandbox(callbacks=cb.registry)
    with pytest.raises(eryx.JournalError):
        sb.execute_with_journal(SESSION_CODE, journal=case[1])
    assert sb.execute("print('usable')").stdout == "usable\n"


def test_state_bomb_is_bounded():
    # A state that inflates past what the sandbox could load is refused
    # without inflating it all.
    cb = Approvals()
    sb = eryx.Sandbox(callbacks=cb.registry,
                      resource_limits=eryx.ResourceLimits(max_memory_bytes=32 << 20))
    good = sb.execute_with_journal(CODE).journal
    bomb = zlib.compress(bytes(1 << 30), 9)  # 1 GiB of zeros, ~1 MB
    with pytest.raises(eryx.JournalError, match="larger than a session"):
        sb.execute_with_journal(CODE, journal=dict(good, state=base64.b64encode(bomb).decode()))


def test_state_is_never_whole_in_memory():
    # A state is inflated piece by piece into a memfd, which the sandbox
    # loads from: the process's own memory does not grow by the state (it
    # once held it as bytes, then copied it). 400 MiB of zeros, within what
    # a 512 MiB sandbox may load, that then fails to load (not a session).
    p = run_script("""
        import base64, resource, zlib
        import eryx
        sb = eryx.Sandbox(resource_limits=eryx.ResourceLimits(max_memory_bytes=512 << 20))
        good = sb.execute_with_journal("x = 1").journal
        z = zlib.compressobj(9)
        piece = bytes(16 << 20)
        bomb = b"".join(z.compress(piece) for _ in range(25)) + z.flush()
        state = base64.b64encode(bomb).decode()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            sb.execute_with_journal("x = 1", journal=dict(good, state=state))
        except eryx.JournalError as e:
            print("refused:", e)
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("peak grew by", grew >> 10, "MiB")
    """, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "refused: the journal's state does not load" in p.stdout
    grew = int(p.stdout.split("peak grew by")[1].split()[0])
    assert grew < 100, p.stdout  # 400 with the state held in memory


def test_journal_carries_over_to_other_runners():
    # A Session's journal resumes in a Sandbox (its state is loaded for the
    # run); the Sandbox's next execute starts fresh again.
    cb = Approvals()
    s = eryx.Session(callbacks=cb.registry)
    s.execute("import math\ncounter = 41\nseen = []")
    o = s.execute_with_journal(SESSION_CODE)
    cb.allowed = True
    sb = eryx.Sandbox(callbacks=cb.registry)
    r = sb.execute_with_journal(SESSION_CODE, journal=through_json(o.journal))
    assert r.result.result["counter"] == 42
    assert sb.execute("print('counter' in globals())").stdout == "False\n"


def test_pooled_sandbox():
    cb = Approvals()
    with eryx.SandboxPool(callbacks=cb.registry, max_size=2) as pool:
        with pool.acquire() as lease:
            o = lease.execute_with_journal(CODE)
            assert o.suspended is not None and o.journal["state"] is None
            assert lease.execute("print('lease ok')").stdout == "lease ok\n"
            assert pool.stats().in_use == 1
        cb.allowed = True
        with pool.acquire() as lease:
            r = lease.execute_with_journal(CODE, journal=through_json(o.journal))
            assert r.result.result["b"] == "B" and r.replayed_callbacks == 1
        # A lease with state of its own keeps it in the journal, like a Session.
        cb.allowed = False
        with pool.acquire() as lease:
            lease.execute("import math\ncounter = 9\nseen = []")
            o = lease.execute_with_journal(SESSION_CODE)
            assert o.suspended is not None and o.journal["state"] is not None
            assert lease.execute("print(counter)").stdout == "9\n"
            cb.allowed = True
            r = lease.execute_with_journal(SESSION_CODE, journal=o.journal)
            assert r.result.result["counter"] == 10
        assert pool.stats().in_use == 0


def test_closed_busy_and_types():
    sb = eryx.Sandbox()
    sb.close()
    with pytest.raises(ValueError, match="closed"):
        sb.execute_with_journal("pass")
    with pytest.raises(TypeError):
        eryx.Sandbox().execute_with_journal(42)
    ev = threading.Event()
    s = eryx.Session(callbacks=[{"name": "hold", "fn": lambda: ev.wait(10)}])
    t = threading.Thread(target=s.execute, args=("await hold()",))
    t.start()
    try:
        while not s._h.busy:
            time.sleep(0.01)
        with pytest.raises(eryx.EryxError, match="already running"):
            s.execute_with_journal("pass")
    finally:
        ev.set()
        t.join()
    assert s.execute_with_journal("result = 1").result.result == 1
    # One error class for journals, local and remote.
    assert issubclass(eryx.remote.JournalError, eryx.JournalError)
    assert issubclass(eryx.JournalError, eryx.EryxError)
    assert issubclass(eryx.SuspendedError, eryx.EryxError)




def test_ctrl_c_during_journaled_execution():
    r = run_script("""
        import eryx, os, signal, threading, time
        ev = threading.Event()
        def wait():
            ev.wait(30)
            return 1
        s = eryx.Session(callbacks=[{"name": "wait", "fn": wait}])
        s.execute("x = 1")
        for code in ("try:\\n    while True: pass\\nfinally:\\n    x += 1",
                     "try:\\n    await wait()\\nfinally:\\n    x += 1"):
            threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            try:
                s.execute_with_journal(code)
                print("not interrupted")
            except KeyboardInterrupt:
                print("KeyboardInterrupt")
        ev.set()
        print(s.execute("print(x)").stdout, end="")
    """, timeout=300)
    assert r.stdout == "KeyboardInterrupt\nKeyboardInterrupt\n3\n", r.stdout + r.stderr


def test_suspend_resume_cycles_do_not_leak():
    r = run_script("""
        import eryx, gc, json, threading
        def rss():
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * 4096
        allowed = [False]
        def get(key: str):
            return key * 2
        def approve(what: str):
            if not allowed[0]:
                raise eryx.SuspendCallback("no")
            return True
        cbs = [{"name": "get", "fn": get}, {"name": "approve", "fn": approve}]
        code = "a = await get(key='x' * 100)\\nok = await approve(what=a)\\nresult = [ok]"
        sb = eryx.Sandbox(callbacks=cbs)
        s = eryx.Session(callbacks=cbs)
        s.execute("big = list(range(10000))")
        def cycle(runner):
            allowed[0] = False
            o = runner.execute_with_journal(code)
            assert o.suspended is not None, o.error
            j = json.loads(json.dumps(o.journal))
            allowed[0] = True
            r = runner.execute_with_journal(code, journal=j)
            assert r.result.result == [True] and r.replayed_callbacks == 1, r.error
        for _ in range(20):
            cycle(sb)
        for _ in range(3):
            cycle(s)
        gc.collect()
        before = rss()
        for _ in range(200):
            cycle(sb)
        for _ in range(15):
            cycle(s)
        gc.collect()
        grew = rss() - before
        print("grew", grew < 64 << 20, grew >> 20, "MiB; threads", threading.active_count() < 70)
    """, timeout=300)
    assert r.stdout.startswith("grew True"), r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("threads True"), r.stdout
