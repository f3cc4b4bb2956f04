"""A small WebSocket client (RFC 6455) over socket/ssl, for eryx.remote.

Only what `eryx serve` needs: the opening handshake (with its
Sec-WebSocket-Accept check and a bearer token), masked client frames,
fragmented messages reassembled up to a bound, ping/pong and the closing
handshake. Standard library only, so that the client installs anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import os
import select
import socket
import ssl
import struct
import threading
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 16384   # a response head longer than this is not a server of ours
_MAX_BODY = 65536   # of a refusal (401, 503, ...): read for its message only


class HandshakeError(Exception):
    """The server answered the upgrade with something else than 101."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body


class ProtocolError(Exception):
    """The peer broke RFC 6455 (or sent more than max_message)."""


class Closed(Exception):
    """The connection is closed: a close frame (code, reason) or end of stream."""

    def __init__(self, code: Optional[int] = None, reason: str = "") -> None:
        text = "the connection was closed" if code is None else \
            f"the server closed the connection ({code}{': ' + reason if reason else ''})"
        super().__init__(text)
        self.code = code
        self.reason = reason


def parse_url(url: str) -> Tuple[bool, str, int, str]:
    """(tls, host, port, path) of ws://HOST:PORT[/path] or wss://...; the
    path defaults to /v1/ws, the one `eryx serve` answers on."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"a remote URL is ws://HOST:PORT or wss://HOST:PORT, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    path = parts.path if parts.path not in ("", "/") else "/v1/ws"
    if parts.query:
        path += "?" + parts.query
    return tls, parts.hostname, port, path


def _mask(payload: bytes, key: bytes) -> bytes:
    # XOR as one big integer: a Python loop per byte would cost more than
    # the rest of the client for large messages.
    n = len(payload)
    if n == 0:
        return b""
    reps = key * (n // 4 + 1)
    x = int.from_bytes(payload, "big") ^ int.from_bytes(reps[:n], "big")
    return x.to_bytes(n, "big")


class WebSocket:
    """One client connection. send_* may be called from any thread (a
    lock keeps frames whole); recv() from one thread at a time."""

    def __init__(self, sock: socket.socket, leftover: bytes, max_message: int,
                 send_max: Optional[int] = None,
                 peer_max_timeout_ms: Optional[int] = None) -> None:
        self._sock = sock
        self._buf = bytearray(leftover)
        self._max = max_message
        # The most one message sent may hold: the server's --max-message
        # when it says it (the Eryx-Max-Message header; an older server
        # does not), else this side's own bound.
        self.send_max = send_max if send_max is not None else max_message
        # The server's longest time limit (Eryx-Max-Timeout-Ms), None when
        # it does not say.
        self.peer_max_timeout_ms = peer_max_timeout_ms
        self._send_lock = threading.Lock()
        self._close_sent = False
        self.closed = False

    # -- opening ---------------------------------------------------------

    @classmethod
    def connect(cls, url: str, *, headers: Optional[Dict[str, str]] = None,
                ca_file: Optional[str] = None, client_cert: Optional[Tuple[str, str]] = None,
                timeout: float = 10.0, max_message: int = 64 << 20) -> "WebSocket":
        """Connects and upgrades; raises HandshakeError for a refusal,
        OSError for a network failure (ssl.SSLError for TLS), ProtocolError
        for a bad answer. client_cert: (certificate file, key file) for
        servers that want one (mTLS)."""
        tls, host, port, path = parse_url(url)
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                ctx = ssl.create_default_context(cafile=ca_file)
                if client_cert:
                    ctx.load_cert_chain(client_cert[0], client_cert[1])
                sock = ctx.wrap_socket(sock, server_hostname=host)
            key = base64.b64encode(os.urandom(16)).decode()
            host_hdr = host if ":" not in host else f"[{host}]"
            if port != (443 if tls else 80):
                host_hdr += f":{port}"
            lines = [f"GET {path} HTTP/1.1", f"Host: {host_hdr}", "Upgrade: websocket",
                     "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                     "Sec-WebSocket-Version: 13"]
            for name, value in (headers or {}).items():
                if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                    raise ValueError(f"header {name!r} holds a line break")
                lines.append(f"{name}: {value}")
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            status, reason, fields, rest = _read_head(sock)
            if status != 101:
                raise HandshakeError(status, reason, _read_body(sock, fields, rest))
            _check_upgrade(fields, key)
            sock.settimeout(None)
            return cls(sock, rest, max_message, _peer_bound(fields, max_message),
                       _header_number(fields, "eryx-max-timeout-ms"))
        except BaseException:
            sock.close()
            raise

    # -- sending ---------------------------------------------------------

    def send_text(self, text: str) -> None:
        self.send_frame(TEXT, text.encode("utf-8"))

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        """One frame, masked as a client's must be. Raw access (any opcode,
        fin=False) is for tests that send what a broken client would."""
        n = len(payload)
        head = bytearray([(0x80 if fin else 0) | opcode])
        if n < 126:
            head.append(0x80 | n)
        elif n < 1 << 16:
            head.append(0x80 | 126)
            head += struct.pack("!H", n)
        else:
            head.append(0x80 | 127)
            head += struct.pack("!Q", n)
        key = os.urandom(4)
        data = bytes(head) + key + _mask(payload, key)
        with self._send_lock:
            if self._close_sent:
                raise Closed()
            if opcode == CLOSE:
                self._close_sent = True
            self._sock.sendall(data)

    # -- receiving -------------------------------------------------------

    def _fill(self, need: int) -> None:
        while len(self._buf) < need:
            chunk = self._sock.recv(max(65536, need - len(self._buf)))
            if not chunk:
                self.closed = True
                raise Closed()
            self._buf += chunk

    def _frame(self) -> Tuple[bool, int, bytes]:
        self._fill(2)
        b0, b1 = self._buf[0], self._buf[1]
        if b0 & 0x70:
            raise ProtocolError("a frame with reserved bits set")
        if b1 & 0x80:
            raise ProtocolError("the server masked a frame")
        fin, opcode, n, pos = bool(b0 & 0x80), b0 & 0x0F, b1 & 0x7F, 2
        if n == 126:
            self._fill(4)
            n, pos = struct.unpack_from("!H", self._buf, 2)[0], 4
        elif n == 127:
            self._fill(10)
            n, pos = struct.unpack_from("!Q", self._buf, 2)[0], 10
        if opcode >= 0x8 and (n > 125 or not fin):
            raise ProtocolError("a control frame fragmented or longer than 125 bytes")
        if opcode not in (CONT, TEXT, BINARY, CLOSE, PING, PONG):
            raise ProtocolError(f"unknown opcode {opcode:#x}")
        if n > self._max:
            raise ProtocolError(f"a message longer than {self._max} bytes")
        self._fill(pos + n)
        payload = bytes(self._buf[pos:pos + n])
        del self._buf[:pos + n]
        return fin, opcode, payload

    def recv(self, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """The next data message (TEXT or BINARY, payload), answering pings
        and the closing handshake on the way; raises Closed at the end.
        timeout: seconds the peer may stay silent (socket.timeout past it;
        the connection is unusable then: a frame may be cut)."""
        self._sock.settimeout(timeout)
        try:
            return self._recv()
        finally:
            self._sock.settimeout(None)

    def _recv(self) -> Tuple[int, bytes]:
        parts: list = []
        size = 0
        first = None
        while True:
            fin, opcode, payload = self._frame()
            if opcode == PING:
                self._try_send(PONG, payload)
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                raise self._closed_by_peer(payload)
            if (opcode == CONT) != (first is not None):
                raise ProtocolError("a continuation frame out of place")
            if first is None:
                first = opcode
            size += len(payload)
            if size > self._max:
                raise ProtocolError(f"a message longer than {self._max} bytes")
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if first == TEXT:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError("a text message that is not UTF-8") from None
                return first, data

    def _closed_by_peer(self, payload: bytes) -> Closed:
        code, reason = None, ""
        if len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            reason = payload[2:].decode("utf-8", "replace")
        # The closing handshake: echo the code, then the stream ends.
        self._try_send(CLOSE, payload[:2])
        self.closed = True
        return Closed(code, reason)

    def _try_send(self, opcode: int, payload: bytes) -> None:
        try:
            self.send_frame(opcode, payload)
        except (OSError, Closed):
            pass

    def readable(self) -> bool:
        """True if bytes (or the end of the stream) wait to be read now."""
        if self._buf:
            return True
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        r, _, _ = select.select([self._sock], [], [], 0)
        return bool(r)

    def usable(self) -> bool:
        """False if the peer closed the connection while we were idle (a
        replica that went away, a proxy's idle timeout): what arrived
        meanwhile is read; pings are answered, stale messages dropped."""
        if self.closed or self._close_sent:
            return False
        try:
            while self.readable():
                self._sock.settimeout(1.0)
                try:
                    fin, opcode, payload = self._frame()
                finally:
                    self._sock.settimeout(None)
                if opcode == PING:
                    self._try_send(PONG, payload)
                elif opcode == CLOSE:
                    self._closed_by_peer(payload)
                    return False
                elif not fin or opcode == CONT:
                    return False  # part of a message: where the next one starts is unknown
        except (OSError, Closed, ProtocolError):
            self.closed = True
            return False
        return True

    # -- closing ---------------------------------------------------------

    def close(self, code: int = 1000, wait: float = 1.0) -> None:
        """The closing handshake (waits up to `wait` s for the server's
        close frame), then the socket is closed. Idempotent."""
        if not self.closed:
            try:
                self.send_frame(CLOSE, struct.pack("!H", code))
                while True:
                    self.recv(wait)
            except (OSError, Closed, ProtocolError):
                pass
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Drops the connection without a handshake (from any thread)."""
        self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass


def _header_number(fields: Dict[str, str], name: str) -> Optional[int]:
    """The positive decimal number in header name, or None."""
    value = fields.get(name, "")
    if not value.isascii() or not value.isdigit() or len(value) > 20 or int(value) == 0:
        return None
    return int(value)


def _peer_bound(fields: Dict[str, str], own: int) -> int:
    """What the server says one message may hold (Eryx-Max-Message), when
    it is smaller than this side's bound."""
    bound = _header_number(fields, "eryx-max-message")
    return min(own, bound) if bound is not None else own


def _read_head(sock: socket.socket) -> Tuple[int, str, Dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > _MAX_HEAD:
            raise ProtocolError("the server's response head is too long")
        chunk = sock.recv(4096)
        if not chunk:
            raise ProtocolError("the server closed the connection during the handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP response: {lines[0][:80]!r}")
    fields: Dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            fields[key] = (fields[key] + ", " if key in fields else "") + value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", fields, rest


def _read_body(sock: socket.socket, fields: Dict[str, str], body: bytes) -> bytes:
    try:
        want = min(int(fields.get("content-length", "0")), _MAX_BODY)
    except ValueError:
        want = 0
    try:
        while len(body) < want:
            chunk = sock.recv(want - len(body))
            if not chunk:
                break
            body += chunk
    except OSError:
        pass
    return body[:want] if want else body[:_MAX_BODY]


def _check_upgrade(fields: Dict[str, str], key: str) -> None:
    expect = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    if fields.get("upgrade", "").lower() != "websocket":
        raise ProtocolError("the server's 101 lacks 'Upgrade: websocket'")
    if "upgrade" not in [t.strip().lower() for t in fields.get("connection", "").split(",")]:
        raise ProtocolError("the server's 101 lacks 'Connection: Upgrade'")
    if fields.get("sec-websocket-accept") != expect:
        raise ProtocolError("the server's Sec-WebSocket-Accept does not match our key")
