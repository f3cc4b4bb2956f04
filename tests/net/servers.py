"""Loopback servers for the networking tests (run by the host's python3).

    python3 servers.py DIR

starts, each on a free port of 127.0.0.1 (and one on ::1), and writes
DIR/ports.json once they listen:
  http     plain HTTP: GET/POST echo the request as JSON; /sha/HEADER answers
           with the SHA-256 of that request header (what the server got)
  https    the same over TLS, with a certificate for test.eryx and
           127.0.0.1 signed by DIR/ca.pem (made here with openssl)
  slow     accepts, then sends nothing for 60 s
  big      sends 1 GB of zeros to whoever connects
  count    reads to the end, then answers "N bytes then EOF"
  late_count  the same after 3 s without reading (the sender's buffers fill)
  tls_count   count over TLS, telling close_notify from a bare FIN
  http6    plain HTTP on [::1]
It runs until killed.
"""

import hashlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/sha/"):
            value = self.headers.get(self.path[5:], "")
            out = hashlib.sha256(value.encode()).hexdigest().encode()
        else:
            out = json.dumps({"method": self.command, "path": self.path,
                              "headers": dict(self.headers),
                              "body": body.decode("latin-1")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


class Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_certs(d):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=eryx test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=test.eryx")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:test.eryx,DNS:other.eryx,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext")


def serve_raw(handler):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)

    def loop():
        while True:
            conn, _ = s.accept()
            threading.Thread(target=handler, args=(conn,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


def slow(conn):
    time.sleep(60)
    conn.close()


def big(conn):
    chunk = bytes(1 << 20)
    try:
        for _ in range(1024):
            conn.sendall(chunk)
    except OSError:
        pass
    conn.close()


def count(conn):
    """Reads to the end of the stream, then answers how many bytes came."""
    n = 0
    while True:
        data = conn.recv(1 << 16)
        if not data:
            break
        n += len(data)
    conn.sendall(b"%d bytes then EOF" % n)
    conn.close()


def echo(conn):
    """Sends back what comes, as it comes."""
    try:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    conn.close()


def paced_echo(conn):
    """Sends back what comes in pieces of 1000 bytes, 1 ms apart: a stream
    that flows longer than the 50 ms a held-back tail waits."""
    try:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            for i in range(0, len(data), 1000):
                conn.sendall(data[i:i + 1000])
                time.sleep(0.001)
    except OSError:
        pass
    conn.close()


def late_count(conn):
    """count, after 3 s without reading."""
    time.sleep(3)
    count(conn)


def tls_count(ctx):
    """count over TLS, telling a close_notify (clean) from a bare FIN."""
    def handler(conn):
        try:
            t = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
            n, end = 0, "clean"
            while True:
                try:
                    data = t.recv(1 << 16)
                except ssl.SSLEOFError:
                    end = "ragged"
                    break
                if not data:
                    break
                n += len(data)
            t.sendall(b"%d bytes then %s EOF" % (n, end.encode()))
            t.close()
        except OSError:
            conn.close()
    return handler


def main():
    d = sys.argv[1]
    make_certs(d)
    ports = {}
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    ports["http"] = plain.server_address[1]
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "srv.pem"), os.path.join(d, "srv.key"))
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    ports["https"] = tls.server_address[1]
    servers = [plain, tls]
    try:
        six = Server6(("::1", 0), Echo)
        ports["http6"] = six.server_address[1]
        servers.append(six)
    except OSError:
        ports["http6"] = 0
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    ports["slow"] = serve_raw(slow)
    ports["big"] = serve_raw(big)
    ports["count"] = serve_raw(count)
    ports["late_count"] = serve_raw(late_count)
    ports["echo"] = serve_raw(echo)
    ports["paced_echo"] = serve_raw(paced_echo)
    ports["tls_count"] = serve_raw(tls_count(ctx))
    with open(os.path.join(d, "ports.json.tmp"), "w") as f:
        json.dump(ports, f)
    os.rename(os.path.join(d, "ports.json.tmp"), os.path.join(d, "ports.json"))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
