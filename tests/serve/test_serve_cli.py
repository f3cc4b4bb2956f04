"""`eryx serve` and `eryx --remote` through the command line (docs/serve.md,
docs/cli.md): one replica with its in-memory store, real processes on
loopback. The protocol's own tests are python/tests/test_remote.py; the
scaled-out ones tests/serve/test_replicas.py."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Replica, eryx_cli, free_port, write_secret  # noqa: E402
from fake_server import FakeServer, recv_exactly  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("serve"))
    token_file = os.path.join(work, "token")
    write_secret(token_file)
    metrics_port = free_port()
    r = Replica("replica", work, token_file=token_file, key_file=None,
                extra=["--metrics", f"127.0.0.1:{metrics_port}", "--timeout", "5000"])
    r.token_file = token_file
    r.metrics_port = metrics_port
    yield r
    r.stop()


def remote(server, *args, stdin=None, token_file=None, timeout=60):
    argv = [eryx_cli(), "--remote", server.url, "--token-file", token_file or server.token_file,
            *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)


def test_runs_and_streams(server):
    p = remote(server, "-c", "import sys\nprint('out')\nprint('err', file=sys.stderr)\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "out\n"
    assert p.stderr == "err\n"


def test_output_with_nul_characters_arrives(server):
    # "\u0000" is JSON; the client read events without JSON_ALLOW_NUL and
    # dropped such an output event whole.
    p = remote(server, "-c", "print('a\\0b')\nprint('next')")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "a\0b\nnext\n"


def test_exception_text_with_nul_characters_arrives(server):
    # The server took the exception's texts as C strings: cut at the NUL.
    p = remote(server, "-c", "raise ValueError('x\\0y')")
    assert p.returncode == 1
    assert p.stderr.endswith("ValueError: x\0y\n"), repr(p.stderr)


def test_exit_statuses_match_the_local_run(server):
    p = remote(server, "-c", "1/0")
    assert p.returncode == 1
    assert "ZeroDivisionError" in p.stderr
    assert remote(server, "-c", "raise SystemExit(7)").returncode == 7
    p = remote(server, "--timeout", "300", "-c", "while True: pass")
    assert p.returncode == 124, p.stderr
    # The same words as locally, without the KeyboardInterrupt's traceback
    # (it was that traceback and "the run was stopped at its time limit").
    local = subprocess.run([eryx_cli(), "--timeout", "300", "-c", "while True: pass"],
                           capture_output=True, text=True, timeout=60)
    assert (p.stderr, local.returncode) == (local.stderr, 124), (p.stderr, local.stderr)
    # Code that catches the stop and ends on its own: 124 all the same, as
    # locally (the server's done says "stopped").
    caught = "import time\ntry:\n    time.sleep(5)\nexcept KeyboardInterrupt:\n    print('caught')"
    p = remote(server, "--timeout", "300", "-c", caught)
    local = subprocess.run([eryx_cli(), "--timeout", "300", "-c", caught],
                           capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (124, "caught\n", local.stderr), p
    assert local.returncode == 124
    # Output cut by the server's limit is said on stderr, as locally.
    p = remote(server, "-c", "print('a' * (11 << 20))")
    assert p.returncode == 123 and "output truncated" in p.stderr, p.stderr


def test_program_from_stdin_and_file(server, tmp_path):
    p = remote(server, stdin="print(6 * 7)\n")
    assert p.returncode == 0 and p.stdout == "42\n", p.stderr
    f = tmp_path / "prog.py"
    f.write_text("print('from a file')\n")
    p = remote(server, str(f))
    assert p.stdout == "from a file\n", p.stderr


def test_stdin_is_read_as_the_program_reads(server):
    """As locally (golden case stdin_as_read): a parent that keeps our stdin
    open does not hang a program that never reads it, lines arrive as they
    are written, and the time limit ends a wait for input."""
    argv = [eryx_cli(), "--remote", server.url, "--token-file", server.token_file]
    p = subprocess.Popen(argv + ["-c", "print('no read')"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "no read\n"
        assert p.wait(timeout=20) == 0
    finally:
        p.stdin.close()
    p = subprocess.Popen(argv + ["-c", "import sys\nfor l in sys.stdin: print('got', l.strip(), "
                                "flush=True)"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    p.stdin.write("a\n")
    p.stdin.flush()
    assert p.stdout.readline() == "got a\n"   # before the end of stdin
    p.stdin.write("b\n")
    p.stdin.close()
    assert p.stdout.read() == "got b\n" and p.wait(timeout=20) == 0
    p = subprocess.Popen(argv + ["--timeout", "500", "-c", "input()"], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.wait(timeout=20) == 124
        assert "time limit" in p.stderr.read()
    finally:
        p.stdin.close()
    blob = os.urandom(200_000)
    q = subprocess.run(argv + ["-c", "import sys, hashlib\n"
                               "print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"],
                       input=blob, capture_output=True, timeout=60)
    import hashlib
    assert q.stdout.decode().strip() == hashlib.sha256(blob).hexdigest(), q.stderr


def test_callbacks_run_on_the_client(server, tmp_path):
    p = remote(server, "--callback", "double=python3 -c 'import json,sys; "
               "print(json.load(sys.stdin)[\"x\"] * 2)'",
               "--callback", "fails=echo nope >&2; exit 3",
               "-c", "print(await double(x=21))\n"
                     "try:\n    await fails()\nexcept CallbackError as e:\n    print('failed:', e)\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["42", "failed: nope"]
    # Integers beyond 64 bits, which JSON allows and the server's JSON
    # library does not hold, go both ways exact (args_json, result_json).
    p = remote(server, "--callback", "double=python3 -c 'import json,sys; "
               "print(json.load(sys.stdin)[\"x\"] * 2)'",
               "-c", "print(await double(x=2**80) == 2**81)")
    assert p.returncode == 0 and p.stdout == "True\n", p.stderr


def test_remote_callbacks_run_side_by_side(server, tmp_path):
    """As in a local run (golden case callback_concurrent): three gathered
    calls meet only if all three run at once; one after the other, the
    first waits its 5 s out alone and answers 1."""
    meet = tmp_path / "meet"
    p = remote(server, "--callback",
               f"meet=echo . >> {meet}; for i in $(seq 50); do "
               f"[ $(wc -l < {meet}) -ge 3 ] && break; sleep 0.1; done; wc -l < {meet}",
               "-c", "import asyncio\nprint(await asyncio.gather(meet(), meet(), meet()))")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "[3, 3, 3]\n"


def test_remote_callback_still_running_at_the_end_is_stopped(server, tmp_path):
    """A call the code no longer awaits: its command is stopped when the
    run ends, not left behind."""
    pidfile = tmp_path / "pid"
    # started answers once slow's command is running (a fixed sleep in the
    # code could end first on a loaded machine, under TSan).
    p = remote(server, "--callback", f"slow=echo $$ > {pidfile}; exec sleep 60",
               "--callback", f"started=for i in $(seq 400); do [ -s {pidfile} ] && break; "
                             f"sleep 0.05; done; echo 1",
               "-c", "import asyncio\nt = asyncio.ensure_future(slow())\n"
                     "await started()\nprint('end')")
    assert p.returncode == 0 and p.stdout == "end\n", p.stderr
    pid = int(pidfile.read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_sessions_persist_between_invocations(server):
    name = f"cli-{os.getpid()}"
    assert remote(server, "--session", name, "-c", "counter = 10").returncode == 0
    p = remote(server, "--session", name, "-c", "counter += 1\nprint(counter)")
    assert p.stdout == "11\n", p.stderr
    # An exception still keeps what ran before it.
    remote(server, "--session", name, "-c", "counter += 1\n1/0")
    p = remote(server, "--session", name, "-c", "print(counter)")
    assert p.stdout == "12\n", p.stderr


def test_a_reader_of_stdout_that_goes_away_cancels_the_run_and_keeps_the_session(server):
    # `eryx --remote ... --session NAME | head -c1`: the client died of
    # SIGPIPE, so the server cancelled the execution as a disconnect and did
    # not store the session. Now the client cancels it (as Ctrl-C does), the
    # server stores the session, and the status is 120, as a local run's.
    name = f"pipe-{os.getpid()}"
    r, w = os.pipe()
    p = subprocess.Popen([eryx_cli(), "--remote", server.url, "--token-file", server.token_file,
                          "--session", name, "-c", "x = 42\nwhile True: print('y')"],
                         stdout=w, stderr=subprocess.PIPE, text=True)
    os.close(w)
    assert os.read(r, 1) == b"y"
    os.close(r)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 120, err
    assert err == "eryx: cannot write the program's output: Broken pipe\n"
    p = remote(server, "--session", name, "-c", "print(x)")
    assert p.returncode == 0 and p.stdout == "42\n", p.stderr


def test_a_reader_of_stdout_that_takes_nothing_holds_the_client_past_the_limit_5_s_at_most(server):
    # A parent that reads eryx's stdout only after the exit: the client
    # waited in its write for as long as the reader did not read (forever),
    # unable even to read the server's end of the run. Now its writes give
    # up 5 s past the run's limit; what was dropped is counted. The server,
    # its client reading nothing, still stops the run at its limit and
    # stores the session: its send of output waited up to 10 s, the grace
    # ran out, the sandbox was stopped hard and the session not stored.
    name = f"stalled-{os.getpid()}"
    r, w = os.pipe()
    start = time.monotonic()
    p = subprocess.Popen([eryx_cli(), "--remote", server.url, "--token-file", server.token_file,
                          "--session", name, "--timeout", "500",
                          "-c", "x = 42\nwhile True: print('y' * 1000)"],
                         stdout=w, stderr=subprocess.PIPE, text=True)
    os.close(w)
    try:
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
        os.close(r)
    took = time.monotonic() - start
    assert p.returncode != 0, err
    assert "bytes of the program's output were dropped" in err, err
    assert 5 < took < 40, took
    p = remote(server, "--session", name, "-c", "print(x)")
    assert p.returncode == 0 and p.stdout == "42\n", p.stderr


@pytest.mark.parametrize("flags,server_limit,said", [
    (["--timeout", "1000"], None, "time limit (1000 ms)"),
    ([], 1000, "time limit (1000 ms)"),
])
def test_a_server_that_goes_silent_is_given_up_past_the_time_limit(flags, server_limit, said):
    """A server that sends nothing for the run's time limit and 15 s more
    is given up on with 71, as one that cannot be reached. The limit is
    --timeout, or without it the one the server's handshake says. Until
    2026-12-07 the client waited forever (without --timeout, against any
    server)."""
    fake = FakeServer("silent", max_timeout_ms=server_limit)
    try:
        start = time.monotonic()
        p = subprocess.run([eryx_cli(), "--remote", fake.url] + flags + ["-c", "pass"],
                           capture_output=True, text=True, timeout=60)
        took = time.monotonic() - start
    finally:
        fake.stop()
    assert p.returncode == 71, p.stderr
    assert "sent nothing" in p.stderr and said in p.stderr, p.stderr
    assert 15 < took < 30


@pytest.mark.parametrize("mode,why", [("badjson", "not a JSON object"),
                                      ("deep", "not a JSON object"),
                                      ("wrongid", "for another request")])
def test_a_message_the_client_cannot_take_is_a_protocol_error(mode, why):
    """A message that is not JSON, or one of another request: said so, 70.
    Until 2026-12-07 the first was dropped (and the run waited, then ended
    as "the peer closed the connection") and the second taken as ours."""
    fake = FakeServer(mode)
    try:
        p = subprocess.run([eryx_cli(), "--remote", fake.url, "-c", "pass"],
                           capture_output=True, text=True, timeout=30)
    finally:
        fake.stop()
    assert p.returncode == 70, p.stderr
    assert "broke the protocol" in p.stderr and why in p.stderr, p.stderr


def test_a_session_state_not_stored_is_status_71(tmp_path):
    """A --session run that succeeds but whose new state the server cannot
    store (--store-max-bytes) is 71, as a local --session that cannot be
    saved; a session that cannot be created there (store_full) too. Until
    2026-12-07: 0 and 70."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    small = Replica("small-store", str(tmp_path), token_file=token_file, key_file=None,
                    extra=["--store-max-bytes", "20000000"])
    try:
        small.token_file = token_file
        big = "import os\nx = os.urandom(15 * 1024 * 1024)\nprint('ran')"
        p = remote(small, "--session", "s1", "-c", big)
        assert p.stdout == "ran\n"
        assert p.returncode == 71 and "not stored" in p.stderr, (p.returncode, p.stderr)
        p = remote(small, "--session", "s2", "-c", "print(1)")
        assert p.returncode == 71 and "store_full" in p.stderr, (p.returncode, p.stderr)
        p = remote(small, "--session", "s1", "-c", big + "\nraise SystemExit(3)")
        assert p.returncode == 3, p.stderr  # the run's own failure comes first
        small.check()
    finally:
        small.stop()


def test_wrong_token_is_refused(server, tmp_path):
    bad = tmp_path / "bad"
    write_secret(str(bad))
    p = remote(server, "-c", "print(1)", token_file=str(bad))
    assert p.returncode == 71
    assert "401" in p.stderr and "unauthorized" in p.stderr


def test_the_bearer_scheme_is_case_insensitive(server):
    """RFC 9110: the scheme's case does not matter (`bearer` was refused
    until 2026-12-07); the token's does."""
    token = open(server.token_file).read().strip()
    for scheme in ("Bearer", "bearer", "BEARER", "Bearer  "):
        status = _upgrade_status(server.port,
                                 f"Host: 127.0.0.1\r\nAuthorization: {scheme} {token}\r\n")
        assert status.startswith("HTTP/1.1 101"), (scheme, status)
    for header in (f"bearer {token.swapcase()}", f"Basic {token}", f"Bearer{token}"):
        status = _upgrade_status(server.port,
                                 f"Host: 127.0.0.1\r\nAuthorization: {header}\r\n")
        assert status.startswith("HTTP/1.1 401"), (header, status)


def test_remote_refuses_local_only_options(server):
    p = remote(server, "--mount", "/tmp:/data", "-c", "pass")
    assert p.returncode == 2
    assert "--remote" in p.stderr


def test_usage_errors_are_status_2(server):
    # A session name the server refuses (bad_request) and a URL with a port
    # past 65535 are usage errors, 2, as locally: they were 70 and 71 ("the
    # sandbox trapped", "could not be created"), and 99999 dialled the port
    # 99999 % 65536.
    for name in ("", "x" * 1000, "../../etc"):
        p = remote(server, "--session", name, "-c", "print(1)")
        assert p.returncode == 2 and "bad_request" in p.stderr, (name, p.returncode, p.stderr)
    p = subprocess.run([eryx_cli(), "--remote", "ws://127.0.0.1:99999", "--token-file",
                        server.token_file, "-c", "pass"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "0 to 65535" in p.stderr, p.stderr


def test_serve_sizes_take_suffixes(tmp_path):
    """k, M, G as `eryx` takes them (refused until 2026-12-07)."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    r = Replica("suffixes", str(tmp_path), token_file=token_file, key_file=None,
                extra=["--store-max-bytes", "20M", "--max-memory", "64M", "--max-message",
                       "1M", "--max-output", "1k"])
    try:
        r.token_file = token_file
        p = remote(r, "-c", "print('x' * 2000)")
        assert p.returncode == 123 and p.stdout.startswith("x" * 1024 + "\n["), p.stderr  # --max-output 1k
        p = remote(r, "-c", "b = bytearray(100 * 1024 * 1024)")
        assert p.returncode == 125, p.stderr                              # --max-memory 64M
        r.check()
    finally:
        r.stop()
    for bad in ("-1M", "+1M", "1T", "M", "0", "1.5M"):
        p = subprocess.run([eryx_cli(), "serve", "--token-file", token_file, "--max-memory",
                            bad], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "wants a positive number" in p.stderr, (bad, p.stderr)


def test_listen_ports_past_65535_are_refused():
    # getaddrinfo took 99999 and bound 99999 % 65536, 65536 the random port
    # 0; the log said the port asked for.
    for argv in (["serve", "--listen", "127.0.0.1:99999", "--no-auth"],
                 ["serve", "--listen", "127.0.0.1:65536", "--no-auth"],
                 ["serve", "--listen", "127.0.0.1:0", "--no-auth", "--metrics",
                  "127.0.0.1:65537"],
                 ["mcp", "--http", "127.0.0.1:70000"]):
        p = subprocess.run([eryx_cli(), *argv], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "0 to 65535" in p.stderr, (argv, p.stderr)


def test_no_auth_only_on_loopback(tmp_path):
    p = subprocess.run([eryx_cli(), "serve", "--listen", "0.0.0.0:0", "--no-auth"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "loopback" in p.stderr
    p = subprocess.run([eryx_cli(), "serve", "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--token-file" in p.stderr


def _upgrade_status(port, headers):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((f"GET /v1/ws HTTP/1.1\r\n{headers}Upgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        return s.recv(64).split(b"\r\n")[0].decode()


def test_no_auth_serves_no_web_page(tmp_path):
    """Without a token, a page in the operator's browser must not reach the
    server (the browser connects to loopback for it, also through a DNS name
    rebound to 127.0.0.1): a Host or Origin that is not loopback gets 403."""
    port = free_port()
    p = subprocess.Popen([eryx_cli(), "serve", "--listen", f"127.0.0.1:{port}", "--no-auth",
                          "--quiet"], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        host = f"Host: 127.0.0.1:{port}\r\n"
        assert _upgrade_status(port, host) == "HTTP/1.1 101 Switching Protocols"
        assert _upgrade_status(port, host + f"Origin: http://localhost:{port}\r\n").startswith(
            "HTTP/1.1 101")
        for bad in (host + "Origin: http://evil.example\r\n", host + "Origin: null\r\n",
                    "Host: rebound.evil.example\r\n", ""):
            assert _upgrade_status(port, bad) == "HTTP/1.1 403 Forbidden", bad
    finally:
        p.terminate()
        p.wait(timeout=20)


def test_upgrade_requests_are_checked(server):
    """RFC 6455 4.1-4.2: HTTP/1.1 with a Host, a key that is the base64 of 16
    bytes; another version gets 426 naming the one served."""
    token = open(server.token_file).read().strip()

    def head(line="GET /v1/ws HTTP/1.1", host=True, key="dGhlIHNhbXBsZSBub25jZQ==",
             version="13"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall((f"{line}\r\n" + (f"Host: 127.0.0.1:{server.port}\r\n" if host else "") +
                       f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n"
                       f"Authorization: Bearer {token}\r\n\r\n").encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.decode(errors="replace")

    assert head().startswith("HTTP/1.1 101")
    assert head(key="!!!!!!!!!!!!!!!!!!!!!!==").startswith("HTTP/1.1 400")
    assert head(key="dGhlIHNhbXBsZSBub25jZQo=").startswith("HTTP/1.1 400")  # not 16 bytes
    assert head(line="GET /v1/ws HTTP/1.0").startswith("HTTP/1.1 400")
    assert head(host=False).startswith("HTTP/1.1 400")
    r = head(version="12")
    assert r.startswith("HTTP/1.1 426") and "Sec-WebSocket-Version: 13\r\n" in r


def test_healthz_and_metrics(server):
    remote(server, "-c", "pass")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
        assert r.read() == b"ok\n"
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics",
                                timeout=5) as r:
        text = r.read().decode()
    ok = [l for l in text.splitlines() if l.startswith('eryx_executions_total{status="ok"}')]
    assert ok and int(ok[0].split()[1]) >= 1
    assert "eryx_execution_duration_seconds_bucket" in text
    assert "eryx_store_operation_duration_seconds_count" in text
    assert "eryx_pool_idle" in text


def _http_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data


def test_head_has_no_body_and_a_long_head_gets_431(server):
    r = _http_exchange(server.port, b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = r.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 3\r\n" in head
    assert body == b""
    r = _http_exchange(server.metrics_port, b"HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 200") and r.endswith(b"\r\n\r\n")
    # 16 KiB with no end of the head, all of it read: the answer is not
    # lost to a reset for bytes left unread.
    big = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
    big += b"a" * (16384 - len(big))
    assert _http_exchange(server.port, big).startswith(b"HTTP/1.1 431")
    # A header that names one thing, given twice, is refused (RFC 9112
    # 3.2 for Host): the last one was taken, past the checks of the first.
    for name in (b"Host", b"Origin", b"Authorization"):
        r = _http_exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                           (name + b": a\r\n" + name + b": b\r\n" if name != b"Host"
                            else b"Host: evil.example\r\n") + b"\r\n")
        assert r.startswith(b"HTTP/1.1 400"), (name, r[:80])


def _ws_connect(port, token):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return s


def _frame(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126
                            else bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536
                            else bytes([0x80 | 127]) + n.to_bytes(8, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.fixture
def long_limit_server(tmp_path):
    """A replica whose time limit (60 s) is longer than its send timeout."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    metrics_port = free_port()
    r = Replica("long", str(tmp_path), token_file=token_file, key_file=None,
                extra=["--metrics", f"127.0.0.1:{metrics_port}", "--timeout", "60000"])
    r.token_file = token_file
    r.metrics_port = metrics_port
    yield r
    r.stop()


def test_a_client_that_never_reads_is_dropped_not_buffered(long_limit_server):
    """Output floods a client that does not read: the server's send times out
    (10 s), the execution is cancelled then (not at its 60 s limit: a print
    loop never awaits), the server keeps serving others."""
    server = long_limit_server
    token = open(server.token_file).read().strip()
    s = _ws_connect(server.port, token)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    code = "while True:\n    print('x' * 65536)\n"
    s.sendall(_frame(json.dumps({"id": 1, "op": "execute", "code": code,
                                 "timeout_ms": 60000}).encode()))
    time.sleep(1)
    start = time.monotonic()
    p = remote(server, "-c", "print('still serving')")
    assert p.stdout == "still serving\n", p.stderr
    assert time.monotonic() - start < 10
    # Within the send timeout plus slack the flooding execution has ended.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics",
                                    timeout=5) as r:
            text = r.read().decode()
        if "eryx_executing 0" in text:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the execution of a client that never reads did not end")
    s.close()
    server.check()


def _read_frame(s):
    """One frame from the server (unmasked): (opcode, payload)."""
    b0, b1 = recv_exactly(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(recv_exactly(s, 2), "big")
    elif n == 127:
        n = int.from_bytes(recv_exactly(s, 8), "big")
    return b0 & 0x0F, recv_exactly(s, n)


def _until_done(s):
    """The events of one request, its done or error last."""
    evs = []
    while True:
        ev = json.loads(_read_frame(s)[1])
        evs.append(ev)
        if ev.get("ev") in ("done", "error"):
            return evs


def test_a_late_message_is_not_taken_by_the_next_request(server):
    """A reply, cancel or stdin carrying the id of a request that has ended
    is ignored. Until 2026-12-07 the id was not looked at: a late reply
    answered the next run's first call (pooled sandboxes number calls from
    1 each time), a late cancel stopped it, a late stdin was read by it."""
    token = open(server.token_file).read().strip()
    s = _ws_connect(server.port, token)
    send = lambda m: s.sendall(_frame(json.dumps(m).encode()))  # noqa: E731
    cb = [{"name": "f", "description": "d", "schema": {"type": "object"}}]
    send({"op": "execute", "id": 1, "code": "print(await f())", "callbacks": cb})
    assert json.loads(_read_frame(s)[1])["ev"] == "call"
    send({"op": "cancel", "id": 1})
    assert _until_done(s)[-1]["status"] == "interrupted"
    send({"op": "execute", "id": 2, "code": "print(await f())", "callbacks": cb})
    call = json.loads(_read_frame(s)[1])
    assert call["ev"] == "call" and call["id"] == 2
    send({"op": "reply", "id": 1, "call": call["call"], "result": "stale, of request 1"})
    send({"op": "reply", "id": 2, "call": call["call"], "result": "of request 2"})
    evs = _until_done(s)
    assert [e["data"] for e in evs if e["ev"] == "output"] == ["of request 2\n"], evs
    send({"op": "execute", "id": 3, "code": "import time\ntime.sleep(1)\nprint('ran')"})
    time.sleep(0.3)
    send({"op": "cancel", "id": 2})
    evs = _until_done(s)
    assert evs[-1]["status"] == "ok" and evs[0].get("data") == "ran\n", evs
    send({"op": "execute", "id": 4, "code": "import sys\nprint(sys.stdin.read())",
          "stdin_stream": True})
    assert json.loads(_read_frame(s)[1])["ev"] == "read"
    send({"op": "stdin", "id": 3, "data": "stale"})
    send({"op": "stdin", "id": 4, "data": "fresh", "eof": True})
    evs = _until_done(s)
    assert [e["data"] for e in evs if e["ev"] == "output"] == ["fresh\n"], evs
    # A message without an id is the running request's, as before.
    send({"op": "execute", "id": 5, "code": "print(await f())", "callbacks": cb})
    call = json.loads(_read_frame(s)[1])
    send({"op": "reply", "call": call["call"], "result": "no id"})
    evs = _until_done(s)
    assert [e["data"] for e in evs if e["ev"] == "output"] == ["no id\n"], evs
    s.close()


def test_a_full_store_loses_nothing_to_failed_creates(tmp_path):
    """A create or fork that --store-max-bytes refuses part way leaves no
    chunks counted: until 2026-12-07 they stayed, under a name with no
    session, until a delete of that name, and the store stayed full with
    no session in it. A full store is store_full for an import too (it
    was store_unavailable), and a fork's refusal says why (it was "a: ")."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    free_r = Replica("unlimited", str(tmp_path), token_file=token_file, key_file=None)
    full = Replica("limited", str(tmp_path), token_file=token_file, key_file=None,
                   extra=["--store-max-bytes", "6M"])  # a fresh session: ~3.8 MB
    try:
        token = open(token_file).read().strip()
        s, t = _ws_connect(full.port, token), _ws_connect(free_r.port, token)
        ids = iter(range(1, 1000))

        def rq(sock, **m):
            sock.sendall(_frame(json.dumps({"id": next(ids), **m}).encode()))
            return _until_done(sock)[-1]

        assert rq(s, op="session.create", session="a")["ev"] == "done"
        e = rq(s, op="session.create", session="b")
        assert e["ev"] == "error" and e["code"] == "store_full", e
        e = rq(s, op="session.fork", session="a", to="f")
        assert e["code"] == "store_full" and e["message"].startswith("f: ") and \
            "full" in e["message"], e
        assert rq(s, op="session.delete", session="a")["ev"] == "done"
        # The store holds no session: a whole one fits, and its next state.
        assert rq(s, op="session.create", session="c")["ev"] == "done"
        e = rq(s, op="execute", session="c", code="import os\ny = os.urandom(500_000)")
        assert e["ev"] == "done" and e["saved"], e
        # An import the full store refuses: store_full.
        assert rq(t, op="execute", session="x", create=True,
                  code="import os\nbig = os.urandom(3_000_000)")["saved"]
        data = rq(t, op="session.export", session="x")["data"]
        e = rq(s, op="session.import", session="c", data=data)
        assert e["ev"] == "error" and e["code"] == "store_full", e
        s.close()
        t.close()
    finally:
        full.stop()
        free_r.stop()


def test_metrics_are_answered_when_the_service_is_full(tmp_path):
    """The --metrics port has a gate of its own: with --max-connections
    taken by WebSocket clients it answered 503 (monitoring went blind
    exactly then), and each scrape counted as a connection."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    metrics_port = free_port()
    r = Replica("saturated", str(tmp_path), token_file=token_file, key_file=None,
                extra=["--max-connections", "4", "--metrics", f"127.0.0.1:{metrics_port}"])
    try:
        token = open(token_file).read().strip()
        socks = [_ws_connect(r.port, token) for _ in range(4)]
        totals = set()
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                        timeout=10) as resp:
                text = resp.read().decode()
            assert "eryx_connections 4\n" in text, text
            totals.add(next(line for line in text.splitlines()
                            if line.startswith("eryx_connections_total ")))
        assert len(totals) == 1, totals  # the scrapes are not counted
        for s in socks:
            s.close()
    finally:
        r.stop()


def test_sigterm_stops_cleanly(tmp_path):
    """SIGTERM: the running execution is interrupted and ends as usual (its
    session stored), every connection gets a close frame with 1001, a log
    line says so, the server exits 0. Until 2026-12-07 it died at once
    (143, no close frame, the session's lock left to expire)."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    r = Replica("stopping", str(tmp_path), token_file=token_file, key_file=None,
                extra=["--timeout", "60000"])
    try:
        token = open(token_file).read().strip()
        busy, idle = _ws_connect(r.port, token), _ws_connect(r.port, token)
        code = "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
        busy.sendall(_frame(json.dumps({"id": 1, "op": "execute", "code": code,
                                        "session": "s", "create": True}).encode()))
        assert json.loads(_read_frame(busy)[1])["ev"] == "output"
        start = time.monotonic()
        r.proc.send_signal(signal.SIGTERM)
        op, payload = _read_frame(busy)
        done = json.loads(payload)
        assert done["ev"] == "done" and done["status"] == "interrupted" and done["saved"], done
        assert done["server_stopping"] is True, done
        for s in (busy, idle):
            op, payload = _read_frame(s)
            assert op == 8 and int.from_bytes(payload[:2], "big") == 1001, (op, payload)
        assert r.proc.wait(10) == 0
        assert time.monotonic() - start < 6
        log = r.log()
        assert '"event":"stopping"' in log and '"event":"stopped"' in log, log
    finally:
        r.stop()


@pytest.mark.parametrize("wait", ["slot", "lock"])
def test_a_request_waiting_is_refused_when_the_server_stops(tmp_path, wait):
    """A request waits for a --pool slot (up to 2 s) when all are taken,
    and for its session's lock (up to 10 s) while another request runs in
    the session. A stop refuses it at once, `busy`, saying the server is
    stopping: nothing ran, it may be sent again to another replica. Until
    2026-12-07 the one waiting for a slot took the slot the interrupted run
    gave back, started, and was interrupted itself."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    r = Replica("full", str(tmp_path), token_file=token_file, key_file=None,
                extra=["--timeout", "60000"] + (["--pool", "1"] if wait == "slot" else []))
    session = {"session": "s", "create": True} if wait == "lock" else {}
    try:
        token = open(token_file).read().strip()
        busy, waiting = _ws_connect(r.port, token), _ws_connect(r.port, token)
        code = "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
        busy.sendall(_frame(json.dumps({"id": 1, "op": "execute", "code": code,
                                        **session}).encode()))
        assert json.loads(_read_frame(busy)[1])["ev"] == "output"
        waiting.sendall(_frame(json.dumps({"id": 2, "op": "execute", "code": "print('ran')",
                                           **session}).encode()))
        time.sleep(0.5)  # in its wait
        r.proc.send_signal(signal.SIGTERM)
        answer = json.loads(_read_frame(waiting)[1])
        assert answer.get("ev") == "error" and answer.get("code") == "busy", answer
        assert "the server is stopping" in answer["message"], answer
        op, payload = _read_frame(waiting)
        assert op == 8 and int.from_bytes(payload[:2], "big") == 1001, (op, payload)
        done = json.loads(_read_frame(busy)[1])
        assert done["ev"] == "done" and done["status"] == "interrupted", done
        assert r.proc.wait(10) == 0
    finally:
        r.stop()


def test_remote_run_stopped_by_the_server_is_71(tmp_path):
    """A run the server's SIGTERM interrupted ends eryx --remote with 71
    and says why: the service went away. Until 2026-12-07 it was 130, as
    if Ctrl-C had been pressed."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    r = Replica("stopped", str(tmp_path), token_file=token_file, key_file=None,
                extra=["--timeout", "60000"])
    try:
        code = "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
        p = subprocess.Popen([eryx_cli(), "--remote", r.url, "--token-file", token_file,
                              "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        assert p.stdout.readline() == "started\n"
        r.proc.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 71, err
        assert "the server is stopping" in err, err
    finally:
        r.stop()


def _make_ca_and_cert(d):
    """A CA, a server certificate for localhost and a client certificate,
    all signed by the CA (openssl, Debian's)."""
    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    for name, cn in (("server", "localhost"), ("client", "a client")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout",
            f"{name}.key", "-out", f"{name}.csr")
        ext = os.path.join(d, f"{name}.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n" if name == "server"
                    else "extendedKeyUsage=clientAuth\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", ext)


def test_tls_and_mutual_tls(tmp_path):
    import ssl
    d = str(tmp_path)
    _make_ca_and_cert(d)
    token_file = os.path.join(d, "token")
    write_secret(token_file)
    port = free_port()
    argv = [eryx_cli(), "serve", "--listen", f"127.0.0.1:{port}", "--token-file", token_file,
            "--tls-cert", os.path.join(d, "server.pem"), "--tls-key", os.path.join(d, "server.key")]
    srv = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        json.loads(srv.stderr.readline())  # listening
        url = f"wss://localhost:{port}"
        base = [eryx_cli(), "--remote", url, "--token-file", token_file]
        code = ["-c", "print('over tls')"]
        p = subprocess.run(base + ["--remote-ca", os.path.join(d, "ca.pem")] + code,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout == "over tls\n", p.stderr
        # Without the CA the server's certificate is not trusted.
        p = subprocess.run(base + code, capture_output=True, text=True, timeout=60)
        assert p.returncode == 71 and "certificate" in p.stderr, p.stderr
    finally:
        srv.terminate()
        srv.wait()
    # mTLS: without a client certificate the handshake fails; with one it works.
    port = free_port()
    srv = subprocess.Popen(argv[:3] + [f"127.0.0.1:{port}"] + argv[4:] +
                           ["--tls-client-ca", os.path.join(d, "ca.pem")],
                           stderr=subprocess.PIPE, text=True)
    try:
        json.loads(srv.stderr.readline())
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not t.recv(100):
                        raise ConnectionError("closed")
        ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert t.recv(100).startswith(b"HTTP/1.1 200")
        # The command line's client, with and without its certificate.
        base = [eryx_cli(), "--remote", f"wss://localhost:{port}", "--token-file", token_file,
                "--remote-ca", os.path.join(d, "ca.pem")]
        mtls = ["--remote-cert", os.path.join(d, "client.pem"),
                "--remote-key", os.path.join(d, "client.key")]
        p = subprocess.run(base + mtls + ["-c", "print('mutual')"], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0 and p.stdout == "mutual\n", p.stderr
        for _ in range(3):  # until 2026-12-07 a reset could lose the alert (3 runs in 6 here)
            p = subprocess.run(base + ["-c", "print('mutual')"], capture_output=True, text=True,
                               timeout=60)
            assert p.returncode == 71 and p.stdout == "", p.stderr
            assert "the server requires a client certificate" in p.stderr, p.stderr
        p = subprocess.run(base + mtls[:2] + ["-c", "pass"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2 and "go together" in p.stderr, p.stderr
        p = subprocess.run(base + mtls[:2] + ["--remote-key", os.path.join(d, "server.key"),
                                              "-c", "pass"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 71 and "client certificate" in p.stderr, p.stderr
    finally:
        srv.terminate()
        srv.wait()
    p = subprocess.run([eryx_cli(), "--remote-cert", "x", "-c", "pass"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "options of --remote" in p.stderr, p.stderr


def test_pool_bounds_session_executions_too(tmp_path):
    """--pool bounds every execution at once, not only those in fresh
    sandboxes: requests naming sessions each loaded a sandbox of their own,
    as many as a client had connections. One slot here: of two sessions'
    executions at once, one runs and the other waits 2 s, then gets busy."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    r = Replica("pool1", str(tmp_path), token_file=token_file, key_file=None,
                extra=["--pool", "1", "--timeout", "20000"])
    r.token_file = token_file
    try:
        argv = lambda name: [eryx_cli(), "--remote", r.url, "--token-file", token_file,
                             "--session", name, "-c", "import time\ntime.sleep(5)\nprint('ran')"]
        procs = [subprocess.Popen(argv(f"s{i}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
        ran = [o for o, _ in outs if o == "ran\n"]
        busy = [e for _, e in outs if "every sandbox is in use (--pool 1)" in e]
        assert len(ran) == 1 and len(busy) == 1, outs
    finally:
        r.stop()


def test_idle_connections_from_many_addresses_do_not_keep_clients_out(tmp_path):
    """Connections that send nothing held their place for the head's 10 s:
    from as many addresses as --max-connections (the per-client limit does
    not help), they kept every client out, again and again. Now a new
    connection shuts down the oldest that has not sent an authorised
    request; a client's connection is served, and an authorised one keeps
    its place."""
    token_file = str(tmp_path / "token")
    token = write_secret(token_file)
    r = Replica("gate", str(tmp_path), token_file=token_file, key_file=None,
                extra=["--max-connections", "4", "--max-per-client", "2"])
    keeper, idle = None, []
    try:
        keeper = socket.create_connection(("127.0.0.1", r.port), timeout=10)
        keeper.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{r.port}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
                        ).encode())
        assert keeper.recv(4096).startswith(b"HTTP/1.1 101")
        for i in range(4):  # 127.0.0.2 to .5: four more clients
            sock = socket.socket()
            sock.bind((f"127.0.0.{i + 2}", 0))
            sock.connect(("127.0.0.1", r.port))
            idle.append(sock)
        time.sleep(0.3)
        t0 = time.monotonic()
        run = subprocess.run([eryx_cli(), "--remote", r.url, "--token-file", token_file,
                              "-c", "print('served')"], capture_output=True, text=True,
                             timeout=60)
        assert run.stdout == "served\n", run.stderr
        assert time.monotonic() - t0 < 5
        # Room was made from the idle ones, oldest first.
        for sock in idle[:2]:
            sock.settimeout(5)
            assert sock.recv(1) == b""
        readable, _, _ = select.select([keeper], [], [], 0)
        assert not readable, "the authorised connection was shut down"
    finally:
        for sock in idle + ([keeper] if keeper else []):
            sock.close()
        r.stop()


def test_redis_url_from_a_file(tmp_path):
    """--redis-file keeps the URL (its password) off the command line,
    which `ps` shows every user (an audit read it there)."""
    token_file = str(tmp_path / "token")
    write_secret(token_file)
    url_file = tmp_path / "redis"
    # Nothing listens on port 1: the server reads the URL, then cannot
    # reach it, and says so with the password masked.
    url_file.write_text("redis://:SuperSecretPw@127.0.0.1:1\n")
    base = [eryx_cli(), "serve", "--listen", "127.0.0.1:0", "--token-file", token_file]
    p = subprocess.run(base + ["--redis-file", str(url_file)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0 and "127.0.0.1:1" in p.stderr, p.stderr
    assert "SuperSecretPw" not in p.stderr, p.stderr
    for bad, why in ((["--redis-file", str(tmp_path / "none")], "cannot read"),
                     (["--redis", "redis://127.0.0.1:1", "--redis-file", str(url_file)],
                      "not both")):
        url_file.write_text("redis://127.0.0.1:1\n")
        p = subprocess.run(base + bad, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and why in p.stderr, (bad, p.stderr)
    url_file.write_text("http://127.0.0.1:1\n")
    p = subprocess.run(base + ["--redis-file", str(url_file)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "must be a redis:// URL" in p.stderr, p.stderr
