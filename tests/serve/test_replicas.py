"""Scale-out: three `eryx serve` replicas sharing a redis-server and a
journal key, behind HAProxy (round robin, /healthz checks), all real
processes on loopback (tests/serve/cluster.py). ctest `serve_replicas`.

Each step of a session opens a new connection (a new remote.Session
object), so HAProxy sends consecutive steps to different replicas; the
`replica` field of `done` ("host:pid") says which one ran it.
"""

import os
import select
import sys
import threading

import pytest

from eryx import remote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402


@pytest.fixture(scope="module")
def cl(tmp_path_factory):
    c = cluster.Cluster(str(tmp_path_factory.mktemp("replicas")), replicas=3)
    yield c
    logs = c.logs()
    dead = [r.name for r in c.replicas if not r.alive and not getattr(r, "killed", False)]
    c.stop()
    assert not dead, f"replicas died that the tests did not kill: {dead}\n{logs}"


def _pid(replica_field):
    return int(str(replica_field).rsplit(":", 1)[1])


def _step(cl, name, code, **kw):
    with remote.Session(cl.url, cl.token, session=name, **kw) as s:
        return s.execute(code)


def _by_pid(cl, pid):
    for r in cl.replicas:
        if r.proc.pid == pid:
            return r
    raise AssertionError(f"no replica of ours has pid {pid}")


def test_steps_land_on_different_replicas(cl):
    seen = []
    r = _step(cl, "steps", "x = 1")
    seen.append(r.replica)
    for i in range(2, 8):
        r = _step(cl, "steps", "x += 1\nprint(x)")
        assert r.stdout == f"{i}\n", (r.replica, seen)
        assert r.saved
        seen.append(r.replica)
    assert len(set(seen)) == 3, seen   # round robin over three replicas
    assert {_pid(x) for x in seen} == {p.proc.pid for p in cl.replicas}


def test_concurrent_requests_to_one_session_are_serialised(cl):
    _step(cl, "counter", "n = 0")
    n_clients, per_client = 4, 10
    errors = []

    def client():
        try:
            with remote.Session(cl.url, cl.token, session="counter") as s:
                for _ in range(per_client):
                    # Read, yield the interpreter (a sleep), write: two
                    # interleaved runs would lose an increment.
                    s.execute("import time\nv = n\ntime.sleep(0.005)\nn = v + 1")
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    r = _step(cl, "counter", "print(n)")
    assert r.stdout == f"{n_clients * per_client}\n"


def test_suspend_on_one_replica_resume_on_another(cl):
    def approve(item: str):
        raise remote.Suspend()

    callbacks = [{"name": "approve", "fn": approve}]
    with remote.Session(cl.url, cl.token, session="approval", callbacks=callbacks) as s:
        s.execute("log = ['start']")
        # The call's argument holds what the code drew (journaled: the
        # replay on another replica draws the same and makes the same call).
        sus = s.execute("import random, time, uuid\nlog.append('asked')\n"
                        "ok = await approve(f'deploy {uuid.uuid4()} {random.random()} "
                        "{time.time()}')\nlog.append(ok)")
    assert isinstance(sus, remote.Suspended)
    first = _pid(sus.replica)
    # New connections until one lands elsewhere (round robin: the next one).
    for _ in range(len(cl.replicas) + 1):
        with remote.Session(cl.url, cl.token, session="approval", create=False,
                            callbacks=callbacks) as s2:
            if _pid(s2.ping()["replica"]) == first:
                continue
            r = s2.resume(sus, {sus.pending[0].call: "yes"})
            break
    else:
        raise AssertionError("every connection landed on the suspending replica")
    assert _pid(r.replica) != first
    assert _step(cl, "approval", "print(log)").stdout == "['start', 'asked', 'yes']\n"
    with remote.Session(cl.url, cl.token, session="approval", callbacks=callbacks) as s3:
        with pytest.raises(remote.JournalError) as ei:
            s3.resume(sus, {sus.pending[0].call: "again"})
        assert ei.value.code in ("journal_used", "journal_stale")


# The tests that kill replicas come last: the others want all three.

def test_killed_replica_loses_nothing(cl):
    with remote.Session(cl.url, cl.token, session="killed") as keeper:
        r = keeper.execute("data = ['a']")
        victim = _by_pid(cl, _pid(r.replica))
        victim.killed = True
        victim.kill()
        # HAProxy ends our connection (a tunnel to the dead replica): once
        # that end has reached us, the same object's next request goes out
        # on a new connection, to another replica, without an error.
        readable, _, _ = select.select([keeper._conn._sock], [], [], 10)
        assert readable, "HAProxy kept the connection to a dead replica open"
        r = keeper.execute("data.append('b')\nprint(''.join(data))")
        assert r.stdout == "ab\n" and _pid(r.replica) != victim.proc.pid
    for letter in "cdef":
        # New connections: HAProxy retries one refused by the dead replica
        # on another, and leaves it out once its health checks fail.
        r = _step(cl, "killed", f"data.append({letter!r})\nprint(''.join(data))")
        assert _pid(r.replica) != victim.proc.pid
        assert r.stdout.strip() == "ab" + "cdef"[: "cdef".index(letter) + 1]


def test_replica_killed_mid_request_leaves_the_last_state(cl):
    _step(cl, "midway", "items = [1]")
    victim = next(r for r in cl.replicas if r.alive)
    started = threading.Event()
    outcome = []

    def tick():
        started.set()
        return True

    def long_step():
        # Straight to the victim (not through the proxy), to know who runs it.
        try:
            with remote.Session(victim.url, cl.token, session="midway",
                                callbacks=[{"name": "tick", "fn": tick}]) as s:
                outcome.append(s.execute("items.append(2)\nawait tick()\n"
                                         "import time\ntime.sleep(30)"))
        except remote.RemoteError as exc:
            outcome.append(exc)

    t = threading.Thread(target=long_step)
    t.start()
    assert started.wait(30)
    victim.killed = True
    victim.kill()
    t.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], remote.RemoteConnectionError), outcome
    # The dead replica's lock on the session expires (15 s plus --timeout, 45 s
    # here: docs/serve.md); until then another replica answers `locked` after
    # its wait (10 s).
    for _ in range(7):
        try:
            r = _step(cl, "midway", "print(items)")
            break
        except remote.SessionLockedError:
            continue
    else:
        raise AssertionError("the session stayed locked")
    assert r.stdout == "[1]\n" and _pid(r.replica) != victim.proc.pid


def test_redis_stalled_is_a_clear_error_and_loses_nothing(cl):
    """redis-server stopped (SIGSTOP): the request gets store_unavailable
    within the store's retry time, not a hang or a crash; once it runs
    again the session is where it was."""
    import signal
    import time
    _step(cl, "stalled", "n = 1")
    cl.redis.proc.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(remote.RemoteError) as ei:
            _step(cl, "stalled", "n += 1")
        assert ei.value.code == "store_unavailable", ei.value
        assert time.monotonic() - start < 15
    finally:
        cl.redis.proc.send_signal(signal.SIGCONT)
    # A lock the stalled Redis took late (its SET NX ran after the replica
    # gave up) is freed by that replica's next lock, or expires (15 s): until
    # then another replica may answer `locked`.
    deadline = time.monotonic() + 40
    while True:
        try:
            r = _step(cl, "stalled", "n += 10\nprint(n)")
            break
        except remote.SessionLockedError:
            assert time.monotonic() < deadline, "the session stayed locked"
    assert r.stdout == "11\n" and r.saved
    assert all(rep.alive for rep in cl.replicas if not getattr(rep, "killed", False))
