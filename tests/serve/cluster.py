"""Processes for the `eryx serve` tests, demo and benchmark, on loopback:
`eryx serve` replicas, a redis-server and an HAProxy in front of them.

Every process is ours (started here, in its own process group, stopped by
its pid); logs go to files in the work directory so that a failing test
can show them. Used by python/tests/test_remote.py, tests/serve/
test_replicas.py, scripts/serve-demo.sh (`python3 cluster.py`) and
bench/serve.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import List, Optional, Sequence


def free_port() -> int:
    """A loopback port free now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eryx_cli() -> str:
    """The eryx command under test: $ERYX_CLI (set by ctest) or build/bin/eryx."""
    path = os.environ.get("ERYX_CLI")
    if not path:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.path.join(root, "build", "bin", "eryx")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no eryx command at {path} (set ERYX_CLI)")
    return path


class Proc:
    """A child process of ours with its log file."""

    def __init__(self, name: str, argv: Sequence[str], workdir: str) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-4000:].decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed or closed cleanly."""
        if self.alive:
            self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def check(self) -> None:
        if not self.alive:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()}")


def wait_healthz(port: int, proc: Proc, timeout: float = 30.0,
                 tls: Optional[ssl.SSLContext] = None) -> None:
    """Until GET /healthz answers 200 (or the process dies)."""
    deadline = time.monotonic() + timeout
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/healthz"
    while True:
        proc.check()
        try:
            with urllib.request.urlopen(url, timeout=2, context=tls) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name}: no 200 on {url} within {timeout} s:\n{proc.log()}")
        time.sleep(0.05)


class Replica(Proc):
    """One `eryx serve` on 127.0.0.1:port."""

    def __init__(self, name: str, workdir: str, *, token_file: str, key_file: Optional[str],
                 redis: Optional[str] = None, port: Optional[int] = None,
                 extra: Sequence[str] = (), tls: Optional[ssl.SSLContext] = None) -> None:
        self.port = port or free_port()
        argv = [eryx_cli(), "serve", "--listen", f"127.0.0.1:{self.port}",
                "--token-file", token_file]
        if key_file:
            argv += ["--journal-key-file", key_file]
        if redis:
            argv += ["--redis", redis]
        argv += list(extra)
        super().__init__(name, argv, workdir)
        # tls: the context the health check connects with (a server given
        # --tls-cert speaks only TLS).
        self.url = f"{'wss' if tls else 'ws'}://127.0.0.1:{self.port}"
        wait_healthz(self.port, self, tls=tls)


class Redis(Proc):
    """A redis-server of its own: loopback, no persistence."""

    def __init__(self, workdir: str) -> None:
        self.port = free_port()
        super().__init__("redis", ["redis-server", "--port", str(self.port),
                                   "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                   "--dir", workdir, "--protected-mode", "yes"], workdir)
        self.url = f"redis://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while True:
            self.check()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer:\n{self.log()}")
            time.sleep(0.05)


_HAPROXY_CFG = """\
# Written by tests/serve/cluster.py: WebSocket connections are tunnels
# (one replica per connection), chosen round robin; a replica that fails
# its /healthz checks is left out, and a connection refused by a dead one
# is retried on another (redispatch).
global
    maxconn 1024
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    retries 3
    option redispatch 1
frontend eryx
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
{servers}
"""


class HAProxy(Proc):
    """HAProxy on loopback, round robin over the replicas' ports."""

    def __init__(self, workdir: str, ports: Sequence[int]) -> None:
        self.port = free_port()
        servers = "\n".join(f"    server r{i} 127.0.0.1:{p} check inter 300 fall 2 rise 1"
                            for i, p in enumerate(ports))
        cfg = os.path.join(workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(_HAPROXY_CFG.format(port=self.port, servers=servers))
        super().__init__("haproxy", ["haproxy", "-db", "-f", cfg], workdir)
        self.url = f"ws://127.0.0.1:{self.port}"
        wait_healthz(self.port, self)


def write_secret(path: str) -> str:
    """A random secret in a file only we may read; returns it."""
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


class Cluster:
    """redis-server, n replicas sharing it and a journal key, HAProxy in
    front. A context manager; stop() ends everything it started."""

    def __init__(self, workdir: str, replicas: int = 3, *, haproxy: bool = True,
                 extra: Sequence[str] = ()) -> None:
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.token_file = os.path.join(workdir, "token")
        self.key_file = os.path.join(workdir, "journal.key")
        self.token = write_secret(self.token_file)
        write_secret(self.key_file)
        self.extra = list(extra)
        self.procs: List[Proc] = []
        self.replicas: List[Replica] = []
        self.haproxy: Optional[HAProxy] = None
        try:
            self.redis = self._add(Redis(workdir))
            for i in range(replicas):
                self.add_replica()
            if haproxy:
                self.haproxy = self._add(HAProxy(workdir, [r.port for r in self.replicas]))
        except BaseException:
            self.stop()
            raise

    def _add(self, p):  # type: ignore[no-untyped-def]
        self.procs.append(p)
        return p

    def add_replica(self) -> Replica:
        r = self._add(Replica(f"replica{len(self.replicas)}", self.workdir,
                              token_file=self.token_file, key_file=self.key_file,
                              redis=self.redis.url, extra=self.extra))
        self.replicas.append(r)
        return r

    @property
    def url(self) -> str:
        return self.haproxy.url if self.haproxy else self.replicas[0].url

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()}" for p in self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as Ctrl-C does


def _demo(argv: List[str]) -> int:
    """scripts/serve-demo.sh: a cluster until Ctrl-C (or SIGTERM)."""
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(prog="serve-demo")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--workdir")
    args = ap.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="eryx-serve-demo.")
    for tool in ("redis-server", "haproxy"):
        if shutil.which(tool) is None:
            print(f"serve-demo: {tool} is missing (scripts/install-deps.sh installs it)",
                  file=sys.stderr)
            return 1
    signal.signal(signal.SIGTERM, _interrupt)
    with Cluster(workdir, args.replicas) as c:
        print(f"redis      {c.redis.url}")
        for r in c.replicas:
            print(f"replica    {r.url}   (log {r.log_path})")
        print(f"haproxy    {c.url}")
        print(f"token file {c.token_file}")
        print(f"\nURL: {c.url}\n(scripts/serve-demo.sh shows how to use it.) "
              "Ctrl-C stops everything.", flush=True)
        try:
            while all(p.alive for p in c.procs):
                time.sleep(0.5)
            print("serve-demo: a process exited:\n" + c.logs(), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(_demo(sys.argv[1:]))
