"""eryx/_websocket.py, the client's RFC 6455 layer, fed crafted bytes
through a socket pair: what a conforming or a broken peer may send that
`eryx serve` itself never does (server pings, fragmented messages, masked
or oversized frames, bad handshakes). The client against the real server
is test_remote.py."""

import base64
import hashlib
import json
import socket
import struct
import threading

import pytest

from eryx._websocket import (BINARY, CLOSE, CONT, PING, PONG, TEXT, Closed, HandshakeError,
                             ProtocolError, WebSocket, parse_url)


def frame(opcode, payload, fin=True, mask=None, rsv=0):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def read_client_frame(sock):
    """One frame the client sent: (fin, opcode, unmasked payload); checks the mask."""
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = sock.recv(n - len(b))
            assert chunk, "the client closed"
            b += chunk
        return b
    b0, b1 = exact(2)
    assert b1 & 0x80, "a client frame must be masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    key = exact(4)
    data = exact(n)
    return bool(b0 & 0x80), b0 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    ws = WebSocket(a, b"", max_message=1 << 20)
    yield ws, b
    ws.abort()
    b.close()


def test_client_frames_are_masked_and_sized(pair):
    ws, peer = pair
    for n in (0, 125, 126, 65535, 65536):
        ws.send_frame(BINARY, b"x" * n)
        fin, op, data = read_client_frame(peer)
        assert (fin, op, data) == (True, BINARY, b"x" * n)


def test_fragmented_message_with_a_ping_between(pair):
    ws, peer = pair
    peer.sendall(frame(TEXT, b"hel", fin=False) + frame(PING, b"p1") +
                 frame(CONT, b"lo ", fin=False) + frame(CONT, "wörld".encode()))
    assert ws.recv() == (TEXT, "hello wörld".encode())
    assert read_client_frame(peer) == (True, PONG, b"p1")


def test_leftover_bytes_of_the_handshake_are_the_first_frame():
    a, b = socket.socketpair()
    ws = WebSocket(a, frame(TEXT, b'{"ev":"done"}'), max_message=1024)
    try:
        assert ws.recv() == (TEXT, b'{"ev":"done"}')
    finally:
        ws.abort()
        b.close()


@pytest.mark.parametrize("data, why", [
    (frame(TEXT, b"x", mask=b"abcd"), "masked"),
    (frame(TEXT, b"x", rsv=0x40), "reserved"),
    (frame(0x3, b"x"), "opcode"),
    (frame(PING, b"p" * 126), "control"),
    (frame(PING, b"p", fin=False), "control"),
    (frame(CONT, b"x"), "continuation"),
    (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), "continuation"),
    (frame(TEXT, b"\xff\xfe"), "UTF-8"),
    (frame(BINARY, b"x" * 2048), "longer than"),
    (frame(TEXT, b"x" * 600, fin=False) + frame(CONT, b"x" * 600), "longer than"),
])
def test_broken_frames_are_protocol_errors(data, why):
    a, b = socket.socketpair()
    ws = WebSocket(a, b"", max_message=1024)
    try:
        b.sendall(data)
        with pytest.raises(ProtocolError, match=why):
            ws.recv()
    finally:
        ws.abort()
        b.close()


def test_close_frame_is_echoed_and_ends_the_stream(pair):
    ws, peer = pair
    peer.sendall(frame(CLOSE, struct.pack("!H", 1001) + b"idle"))
    with pytest.raises(Closed) as ei:
        ws.recv()
    assert ei.value.code == 1001 and ei.value.reason == "idle"
    assert read_client_frame(peer) == (True, CLOSE, struct.pack("!H", 1001))
    assert not ws.usable()


def test_end_of_stream_is_closed(pair):
    ws, peer = pair
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(Closed) as ei:
        ws.recv()
    assert ei.value.code is None


def test_usable_answers_pings_and_sees_a_close(pair):
    ws, peer = pair
    assert ws.usable()
    peer.sendall(frame(PING, b"hi"))
    assert ws.usable()
    assert read_client_frame(peer) == (True, PONG, b"hi")
    # An answer to a request given up earlier is dropped; the stream goes on.
    peer.sendall(frame(TEXT, b'{"id": 1, "ev": "error"}'))
    assert ws.usable()
    peer.sendall(frame(TEXT, b"next"))
    assert ws.recv() == (TEXT, b"next")
    peer.sendall(frame(CLOSE, struct.pack("!H", 1000)))
    assert not ws.usable()


def test_close_handshake(pair):
    ws, peer = pair

    def server():
        assert read_client_frame(peer) == (True, CLOSE, struct.pack("!H", 1000))
        peer.sendall(frame(CLOSE, struct.pack("!H", 1000)))

    t = threading.Thread(target=server)
    t.start()
    ws.close()
    t.join(5)
    assert ws.closed
    with pytest.raises((Closed, OSError)):
        ws.send_text("after close")


def _one_shot_http(answer, drain=False):
    """A listening socket answering the first request with answer(key);
    drain: then reading until the client closes (a large answer is not cut
    short by a reset when the client's request arrives unread)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        c, _ = srv.accept()
        with c:
            head = b""
            while b"\r\n\r\n" not in head:
                head += c.recv(4096)
            key = [ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
                   if ln.lower().startswith(b"sec-websocket-key:")][0]
            c.sendall(answer(key))
            while c.recv(65536) and drain:  # until the client is done with it
                pass
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return f"ws://127.0.0.1:{srv.getsockname()[1]}"


def _accept(key):
    return base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                            .digest())


def test_handshake_checks_the_accept_key():
    url = _one_shot_http(lambda key: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                         _accept(key + b"x") + b"\r\n\r\n")
    with pytest.raises(ProtocolError, match="Sec-WebSocket-Accept"):
        WebSocket.connect(url, timeout=5)


def test_handshake_accepts_the_right_key():
    url = _one_shot_http(lambda key: b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                         b"connection: keep-alive, Upgrade\r\nsec-websocket-accept: " +
                         _accept(key) + b"\r\n\r\n" + frame(TEXT, b"first"))
    ws = WebSocket.connect(url, timeout=5)
    try:
        assert ws.recv() == (TEXT, b"first")
    finally:
        ws.abort()


def test_refusal_keeps_status_and_body():
    body = b'{"error":"busy","message":"too many connections"}'
    url = _one_shot_http(lambda key: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\n\r\n" + body)
    with pytest.raises(HandshakeError) as ei:
        WebSocket.connect(url, timeout=5)
    assert ei.value.status == 503 and ei.value.body == body


def test_endless_response_head_is_refused():
    url = _one_shot_http(lambda key: b"HTTP/1.1 101 OK\r\n" + b"X-Pad: " + b"a" * 20000)
    with pytest.raises(ProtocolError, match="too long"):
        WebSocket.connect(url, timeout=5)


def test_urls():
    assert parse_url("ws://h:1") == (False, "h", 1, "/v1/ws")
    assert parse_url("wss://h") == (True, "h", 443, "/v1/ws")
    assert parse_url("ws://[::1]:9/x?y=1") == (False, "::1", 9, "/x?y=1")
    for bad in ("http://h", "h:1", "ws://:1"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_remote_refuses_a_message_too_wide_to_read():
    # A server's message of more objects and arrays than a tree of 4 times
    # max_message, 64 MiB at least, holds at 200 bytes each (335 544) is
    # not given to json.loads (16 MiB of `[{},...]` were 400 MB of dicts):
    # the request fails as a protocol error. The same objects inside a
    # string are read.
    import eryx.remote
    wide = b'{"id": 1, "ev": "done", "x": [' + b"{}," * 340000 + b"{}]}"
    url = _one_shot_http(lambda key: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + _accept(key) +
                         b"\r\n\r\n" + frame(TEXT, wide), drain=True)
    sb = eryx.remote.Sandbox(url, max_message=1 << 20)
    try:
        with pytest.raises(eryx.remote.RemoteError, match="340003 objects and arrays, more than "
                           "the 335544 read of one message") as ei:
            sb.ping()
        assert ei.value.code == "protocol"
    finally:
        sb.close()
    text = json.dumps({"id": 1, "ev": "done", "x": "[" + "{}," * 340000 + "{}]"}).encode()
    url = _one_shot_http(lambda key: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + _accept(key) +
                         b"\r\n\r\n" + frame(TEXT, text), drain=True)
    sb = eryx.remote.Sandbox(url, max_message=1 << 20)
    try:
        assert len(sb.ping()["x"]) == 1020004
    finally:
        sb.close()


def test_remote_command_refuses_a_message_too_wide_to_read():
    # `eryx --remote` reads a server's message as a tree of at most 4 times
    # its 64 MiB message limit (jansson's bytes): 1.2 million empty objects
    # (3.6 MB, a 278 MB tree) are not read; it says so and exits 70.
    import subprocess
    from conftest import cli_path
    wide = b'{"id": 1, "ev": "done", "x": [' + b"{}," * 1200000 + b"{}]}"
    url = _one_shot_http(lambda key: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + _accept(key) +
                         b"\r\n\r\n" + frame(TEXT, wide), drain=True)
    p = subprocess.run([cli_path(), "--remote", url, "-c", "pass"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 70, p.stderr
    assert p.stderr == ("eryx: --remote: the server sent a message whose JSON would take more "
                        "than 256 MiB to read (too many objects, arrays and values)\n")
