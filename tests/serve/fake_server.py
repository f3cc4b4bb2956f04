"""A fake `eryx serve` that misbehaves in one chosen way after the
handshake, for the clients' tests (eryx --remote, eryx.remote): it takes
the first request, then does what its mode says. Standard library only."""

import base64
import hashlib
import json
import socket
import struct
import threading

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


def recv_exactly(c, n):
    """n bytes from socket c (EOFError if it closes first)."""
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b


def _read_message(c):
    _, b1 = recv_exactly(c, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exactly(c, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exactly(c, 8))[0]
    mask = recv_exactly(c, 4)
    return bytes(x ^ mask[i % 4] for i, x in enumerate(recv_exactly(c, n)))


class FakeServer:
    """Listens on a free loopback port (url) until stop(). Modes: silent
    (says nothing more), badjson (a message that is not JSON), deep (JSON
    nested past what a client reads), wrongid (a `done` of request 999),
    flood (4 MiB of output, then the end). max_timeout_ms: the time limit its
    handshake says (Eryx-Max-Timeout-Ms), or none."""

    def __init__(self, mode, max_timeout_ms=None):
        self.mode = mode
        self._limit = (b"" if max_timeout_ms is None
                       else b"Eryx-Max-Timeout-Ms: %d\r\n" % max_timeout_ms)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.url = f"ws://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                head += c.recv(4096)
            key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key")][0]
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
                      + self._limit + b"\r\n")
            rid = json.loads(_read_message(c)).get("id")
            if self.mode == "badjson":
                c.sendall(_frame("not json"))
            elif self.mode == "deep":
                c.sendall(_frame('{"ev":"output","id":%s,"fd":1,"data":"x","z":%s%s}'
                                 % (json.dumps(rid), "[" * 200000, "]" * 200000)))
            elif self.mode == "flood":
                # 4 MiB of output, in messages of 64 KiB, then the end.
                chunk = json.dumps({"ev": "output", "id": rid, "fd": 1, "data": "y" * 65536})
                for _ in range(64):
                    c.sendall(_frame(chunk))
                c.sendall(_frame(json.dumps({"ev": "done", "id": rid, "status": "ok",
                                             "exit_code": 0})))
            elif self.mode == "wrongid":
                c.sendall(_frame(json.dumps({"ev": "done", "id": 999, "status": "ok",
                                             "exit_code": 5})))
            self._stop.wait(120)  # then silent, the connection open
        except (OSError, EOFError, ValueError, IndexError):
            pass

    def stop(self):
        self._stop.set()
        self._sock.close()
        for c in self._conns:
            c.close()
