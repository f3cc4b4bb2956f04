"""The sandbox's ``_socket``: TCP client sockets made by the host.

WASI has no sockets. This module takes the place of CPython's ``_socket``
(``install()`` puts it in ``sys.modules`` before ``socket`` is imported), so
the standard ``socket`` module, and everything above it (http.client,
urllib, requests, httpx, asyncio streams), works unchanged. Each operation
is a call to the host's network layer (src/net/net.c: "@net.connect",
"@net.recv", ...), which applies the sandbox's policy and secrets; a
socket that waits suspends the sandbox like any other host call, so the
host's time limits and interrupts keep working. Servers (bind, listen,
accept) and UDP are refused with EPERM.
"""

import errno as _errno
import sys
import weakref

import _socket as _real

from . import hostcall

_NET = "@net."
# _socket's names that socket.py re-exports: the constants and helpers
# of the real module, and what this module defines below.
_FUNCS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo",
          "gethostname", "getservbyname", "getservbyport", "getprotobyname",
          "getdefaulttimeout", "setdefaulttimeout", "socketpair", "dup", "close",
          "if_nameindex", "if_nametoindex", "if_indextoname", "sethostname")
__all__ = [n for n in dir(_real) if n.isupper() or n in (
    "error", "herror", "gaierror", "timeout", "has_ipv6", "inet_aton", "inet_ntoa",
    "inet_pton", "inet_ntop", "htonl", "htons", "ntohl", "ntohs")]
for _n in __all__:
    globals()[_n] = getattr(_real, _n)
__all__ += ["socket", "SocketType"] + list(_FUNCS)

# Names libraries use that WASI's _socket lacks (Linux values: only the
# names matter, setsockopt accepts and ignores options). The exception is
# AF_UNIX: Linux's 1 is WASI's AF_INET, so a Unix socket became a TCP one;
# 3 is wasi-libc's own value, and socket() refuses it.
for _n, _v in (("AF_UNIX", 3), ("IPPROTO_TCP", 6), ("IPPROTO_UDP", 17), ("IPPROTO_IP", 0),
               ("IPPROTO_IPV6", 41), ("SOL_SOCKET", 1), ("SOL_TCP", 6), ("TCP_NODELAY", 1),
               ("TCP_KEEPIDLE", 4), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 6),
               ("SO_KEEPALIVE", 9), ("SO_REUSEADDR", 2), ("SO_REUSEPORT", 15),
               ("SO_ERROR", 4), ("SO_TYPE", 3), ("SO_RCVBUF", 8), ("SO_SNDBUF", 7),
               ("SO_LINGER", 13), ("SO_BROADCAST", 6), ("IPV6_V6ONLY", 26),
               ("MSG_PEEK", 2), ("MSG_DONTWAIT", 64), ("MSG_NOSIGNAL", 16384),
               ("SHUT_RD", 0), ("SHUT_WR", 1), ("SHUT_RDWR", 2), ("SOMAXCONN", 4096),
               ("AI_PASSIVE", 1), ("AI_CANONNAME", 2), ("AI_NUMERICHOST", 4),
               ("AI_NUMERICSERV", 1024), ("AI_ADDRCONFIG", 32), ("AI_V4MAPPED", 8),
               ("AI_ALL", 16), ("NI_NUMERICHOST", 1), ("NI_NUMERICSERV", 2),
               ("NI_NAMEREQD", 8), ("NI_DGRAM", 16), ("NI_NOFQDN", 4),
               ("EAI_NONAME", -2), ("EAI_AGAIN", -3), ("EAI_FAIL", -4), ("EAI_FAMILY", -6),
               ("EAI_SERVICE", -8), ("SOCK_RAW", 3), ("SOCK_SEQPACKET", 5)):
    if _n not in globals():
        globals()[_n] = _v
        __all__.append(_n)
has_ipv6 = True

_SERVICES = {"http": 80, "https": 443, "ftp": 21, "ssh": 22, "smtp": 25, "domain": 53,
             "pop3": 110, "imap": 143, "imaps": 993, "pop3s": 995, "submission": 587,
             "smtps": 465, "ldap": 389, "ldaps": 636, "redis": 6379, "postgresql": 5432,
             "mysql": 3306, "http-alt": 8080}
_default_timeout = [None]


class _Sockets:
    """Fake descriptor -> socket, for select and close(fd). Weak: a socket
    dropped without close() must be collected, as natively (its __del__
    queues the close); held here, every one kept its connection, and the
    eleventh create_connection of a loop hit max_connections. The socket
    module's class (every socket code makes) takes weak references; this
    module's own, which cannot (the socket module adds the slot), is held."""

    __slots__ = ("_refs",)

    def __init__(self):
        self._refs = {}

    def __setitem__(self, fd, sock):
        try:
            self._refs[fd] = weakref.ref(sock)
        except TypeError:
            self._refs[fd] = lambda: sock

    def get(self, fd):
        ref = self._refs.get(fd)
        return None if ref is None else ref()

    def pop(self, fd, default=None):
        ref = self._refs.pop(fd, None)
        sock = None if ref is None else ref()
        return default if sock is None else sock

    def __contains__(self, fd):
        return self.get(fd) is not None


_by_fd = _Sockets()
_next_fd = [1 << 20]
_to_close = []      # connection ids of sockets collected unclosed


# ---- calls to the host ------------------------------------------------------

def _error(kind, message):
    """The Python exception for a failed network operation."""
    if kind == "timeout":
        return TimeoutError("timed out")
    name = kind[4:] if kind.startswith("net:") else ""
    if name == "EAI_NONAME":
        return _real.gaierror(EAI_NONAME, message)
    if name in ("SSL", "SSL_VERIFY"):
        from . import ssl
        if name == "SSL_VERIFY":
            err = ssl.SSLCertVerificationError(1, message)
            err.verify_message = message
            err.verify_code = 1
            err.reason = "CERTIFICATE_VERIFY_FAILED"
            return err
        return ssl.SSLError(1, message)
    if name == "EAGAIN":
        return BlockingIOError(_errno.EAGAIN, message)
    code = getattr(_errno, name, _errno.EIO)
    return OSError(code, message)


def _extra():
    """Closes of collected sockets, sent with the next call."""
    if not _to_close:
        return ()
    extra = [{"id": hostcall.next_id(), "name": _NET + "close", "args": {"conn": c}}
             for c in _to_close]
    _to_close.clear()
    return extra


def call(op, args):
    """The value of network operation op, or its exception raised."""
    r = hostcall.call_sync(_NET + op, args, _extra())
    if r["ok"]:
        return r["value"]
    raise _error(r["kind"], r["message"])


def _b64(data):
    import binascii
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(text):
    import binascii
    return binascii.a2b_base64(text)


# ---- names ------------------------------------------------------------------

def _port(port):
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        if port in _SERVICES:
            return _SERVICES[port]
        raise _real.gaierror(EAI_SERVICE, "Servname not supported for ai_socktype")
    if isinstance(port, int) and 0 <= port <= 65535:
        return port
    raise OSError("Int or String expected")


def _literal(host):
    """The family of a strict IP literal, or None."""
    for fam in (AF_INET, AF_INET6):
        try:
            inet_pton(fam, host)
            return fam
        except (OSError, ValueError):
            pass
    return None


def _host_text(host):
    if isinstance(host, (bytes, bytearray)):
        return bytes(host).decode("ascii")
    if not host.isascii():
        return host.encode("idna").decode("ascii")
    return host


def _resolve(host, port, family=0):
    """[(family, address)] the host allows for host:port."""
    host = _host_text(host)
    fam = _literal(host)
    if fam is not None:
        return [(fam, host)]
    found = call("resolve", {"host": host, "port": port})
    return [(AF_INET if e["family"] == 4 else AF_INET6, e["addr"]) for e in found
            if not family or family == (AF_INET if e["family"] == 4 else AF_INET6)]


def _sockaddr(fam, addr, port):
    return (addr, port) if fam == AF_INET else (addr, port, 0, 0)


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    if host is None:
        raise _real.gaierror(EAI_NONAME, "Name or service not known")
    p = _port(port)
    if type not in (0, SOCK_STREAM):
        return []
    # A refusal stays a PermissionError (naming the rule), not a gaierror.
    found = _resolve(host, p, family)
    return [(fam, SOCK_STREAM, IPPROTO_TCP, "", _sockaddr(fam, addr, p)) for fam, addr in found]


def gethostbyname(name):
    for fam, addr in _resolve(name, 0):
        if fam == AF_INET:
            return addr
    raise _real.gaierror(EAI_NONAME, "Name or service not known")


def gethostbyname_ex(name):
    addrs = [a for f, a in _resolve(name, 0) if f == AF_INET]
    return name, [], addrs


def gethostbyaddr(addr):
    raise _real.herror(1, "reverse lookups are not available in the sandbox")


def getnameinfo(sockaddr, flags):
    return sockaddr[0], str(sockaddr[1])


def gethostname():
    return "sandbox"


def sethostname(name):
    raise OSError(_errno.EPERM, "the sandbox cannot set its host name")


def getservbyname(name, proto=None):
    if name in _SERVICES:
        return _SERVICES[name]
    raise OSError("service/proto not found")


def getservbyport(port, proto=None):
    for name, p in _SERVICES.items():
        if p == port:
            return name
    raise OSError("port/proto not found")


def getprotobyname(name):
    return {"tcp": 6, "udp": 17, "ip": 0}.get(name) or _raise_proto()


def _raise_proto():
    raise OSError("protocol not found")


def if_nameindex():
    return []


def if_nametoindex(name):
    raise OSError(_errno.ENODEV, "no network interfaces in the sandbox")


def if_indextoname(index):
    raise OSError(_errno.ENODEV, "no network interfaces in the sandbox")


def getdefaulttimeout():
    return _default_timeout[0]


def setdefaulttimeout(timeout):
    _default_timeout[0] = _check_timeout(timeout)


def socketpair(family=None, type=None, proto=None):
    raise OSError(_errno.EPERM, "socketpair is not available in the sandbox")


def dup(fd):
    raise OSError(_errno.EPERM, "sockets cannot be duplicated in the sandbox")


def close(fd):
    s = _by_fd.get(fd)
    if s is not None:
        s.close()


def _check_timeout(timeout):
    if timeout is None:
        return None
    timeout = float(timeout)
    if timeout < 0:
        raise ValueError("Timeout value out of range")
    return timeout


def _refuse(what):
    raise OSError(_errno.EPERM, f"{what}: not available in the sandbox (only TCP client "
                                f"connections are)")


# ---- sockets ----------------------------------------------------------------

class socket:
    """A TCP client socket whose connection lives on the host."""

    __slots__ = ("_family", "_type", "_proto", "_timeout", "_conn", "_fd", "_peer",
                 "_tls", "__dict__")

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        family = AF_INET if family in (-1, None) else family
        type = SOCK_STREAM if type in (-1, None) else type
        if fileno is not None:
            _refuse("wrapping a file descriptor in a socket")
        if family == AF_UNIX:
            _refuse("Unix sockets")
        if family not in (AF_INET, AF_INET6):
            _refuse(f"address family {family}")
        if type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC) != SOCK_STREAM:
            _refuse("UDP and raw sockets")
        self._family = family
        self._type = SOCK_STREAM
        self._proto = IPPROTO_TCP if proto in (-1, 0, None) else proto
        self._timeout = 0.0 if type & SOCK_NONBLOCK else _default_timeout[0]
        self._conn = None
        self._peer = None
        self._tls = None
        self._fd = _next_fd[0]
        _next_fd[0] += 1
        _by_fd[self._fd] = self

    family = property(lambda self: self._family)
    type = property(lambda self: self._type)
    proto = property(lambda self: self._proto)
    timeout = property(lambda self: self._timeout)

    def fileno(self):
        return self._fd

    def _host_timeout(self):
        return self._timeout

    def _need_conn(self):
        if self._fd < 0:
            raise OSError(_errno.EBADF, "Bad file descriptor")
        if self._conn is None:
            raise OSError(_errno.ENOTCONN, "Transport endpoint is not connected")
        return self._conn

    def close(self):
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                call("close", {"conn": conn})
            except OSError:
                pass
        if self._fd >= 0:
            _by_fd.pop(self._fd, None)
            self._fd = -1

    def detach(self):
        """Hands the connection to a new owner (the ssl module's)."""
        fd = self._fd
        _by_fd.pop(fd, None)
        self._fd = -1
        self._conn = None
        return fd

    def __del__(self):
        if getattr(self, "_conn", None) is not None:
            _to_close.append(self._conn)
            self._conn = None
        if getattr(self, "_fd", -1) >= 0:
            _by_fd.pop(self._fd, None)

    def _connect_to(self, address):
        if self._fd < 0:
            raise OSError(_errno.EBADF, "Bad file descriptor")
        if self._conn is not None:
            raise OSError(_errno.EISCONN, "Transport endpoint is already connected")
        if not isinstance(address, tuple) or len(address) < 2:
            raise TypeError(f"{'AF_INET' if self._family == AF_INET else 'AF_INET6'} "
                            f"address must be tuple, not {address.__class__.__name__}")
        host, port = address[0], _port(address[1])
        last = None
        for fam, addr in _resolve(host, port):
            try:
                r = call("connect", {"addr": addr, "port": port, "timeout": self._timeout
                                     if self._timeout else None})
                self._conn = r["conn"]
                self._peer = _sockaddr(fam, addr, port)
                return
            except OSError as exc:
                last = exc
        raise last or OSError(_errno.EHOSTUNREACH, "no address to connect to")

    def connect(self, address):
        self._connect_to(address)

    def connect_ex(self, address):
        try:
            self._connect_to(address)
            return 0
        except OSError as exc:
            return exc.errno or _errno.EIO

    def send(self, data, flags=0):
        conn = self._need_conn()
        view = memoryview(data).cast("B")
        chunk = bytes(view[:1 << 20])
        # The count sent: all of chunk, but on a non-blocking socket what
        # the host's kernel took at once (EAGAIN, BlockingIOError, if none).
        return call("send", {"conn": conn, "data": _b64(chunk), "timeout": self._timeout})

    def sendall(self, data, flags=0):
        view = memoryview(data).cast("B")
        off = 0
        while off < len(view):
            off += self.send(view[off:], flags)

    def sendto(self, data, *args):
        _refuse("sendto (UDP)")

    def recv(self, bufsize, flags=0):
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        conn = self._need_conn()
        if flags & ~MSG_DONTWAIT:
            raise OSError(_errno.EOPNOTSUPP, "recv flags other than MSG_DONTWAIT are not supported")
        if bufsize == 0:
            return b""
        timeout = 0.0 if flags & MSG_DONTWAIT else self._timeout
        return _unb64(call("recv", {"conn": conn, "max": bufsize, "timeout": timeout}))

    def recv_into(self, buffer, nbytes=0, flags=0):
        view = memoryview(buffer).cast("B")
        n = nbytes or len(view)
        data = self.recv(n, flags)
        view[:len(data)] = data
        return len(data)

    def recvfrom(self, bufsize, flags=0):
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        return self.recv_into(buffer, nbytes, flags), None

    def shutdown(self, how):
        call("shutdown", {"conn": self._need_conn(), "how": how})

    def settimeout(self, timeout):
        self._timeout = _check_timeout(timeout)

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag):
        self._timeout = None if flag else 0.0

    def getblocking(self):
        return self._timeout != 0.0

    def setsockopt(self, level, option, value, optlen=None):
        pass    # the host sets what it needs (TCP_NODELAY)

    def getsockopt(self, level, option, buflen=0):
        if option == SO_TYPE:
            return SOCK_STREAM
        return bytes(buflen) if buflen else 0

    def getpeername(self):
        self._need_conn()
        return self._peer

    def getsockname(self):
        return ("0.0.0.0", 0) if self._family == AF_INET else ("::", 0, 0, 0)

    def bind(self, address):
        _refuse("bind")

    def listen(self, backlog=0):
        _refuse("listen")

    def _accept(self):
        _refuse("accept")

    def __repr__(self):
        return (f"<eryx socket fd={self._fd}, family={self._family}, type={self._type}, "
                f"connected={self._conn is not None}>")


SocketType = socket


# ---- select and poll over the host's sockets ---------------------------------

def _readiness(pairs, timeout=0):
    """{fd: events} ready among [(fd, events)] of our sockets: now, or
    within timeout (s; None: no end), the host waiting until one is."""
    conns, fds = [], {}
    for fd, ev in pairs:
        s = _by_fd.get(fd)
        if s is None or s._conn is None:
            continue
        conns.append([s._conn, ev])
        fds[s._conn] = fd
    if not conns:
        return {}
    import time
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        args = {"conns": conns}
        if timeout is None or timeout > 0:
            args["wait"] = True
            if deadline is not None:
                args["timeout"] = max(deadline - time.monotonic(), 1e-6)
        try:
            got = call("poll", args)
        except TimeoutError:
            # The host's wait ends at its idle timeout at the latest.
            if deadline is not None and time.monotonic() >= deadline:
                return {}
            continue
        return {fds[conn]: ev for conn, ev in got}


def _fd_of(obj):
    return obj if isinstance(obj, int) else obj.fileno()


def _wait_loop(check, timeout):
    """Calls check() until it finds something or timeout (s) passes, sleeping
    a little between tries: for a wait over our sockets and other
    descriptors together (the host knows only the sockets)."""
    import time
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
    pause = 0.0005
    while True:
        found = check()
        if found or (deadline is not None and time.monotonic() >= deadline):
            return found
        left = 0.05 if deadline is None else deadline - time.monotonic()
        time.sleep(max(0, min(pause, left)))
        pause = min(pause * 2, 0.02)


def _patch_select():
    import select as sel
    real_select, real_poll = sel.select, getattr(sel, "poll", None)
    POLLIN, POLLOUT = 1, 4

    def select(rlist, wlist, xlist, timeout=None):
        ours = [o for o in (*rlist, *wlist) if _fd_of(o) in _by_fd]
        if not ours:
            return real_select(rlist, wlist, xlist, timeout)
        timeout = _check_timeout(timeout)
        pairs = [(_fd_of(o), POLLIN) for o in rlist if _fd_of(o) in _by_fd]
        pairs += [(_fd_of(o), POLLOUT) for o in wlist if _fd_of(o) in _by_fd]
        others_r = [o for o in rlist if _fd_of(o) not in _by_fd]
        others_w = [o for o in wlist if _fd_of(o) not in _by_fd]

        def result(ready, r2=(), w2=()):
            r = [o for o in rlist if ready.get(_fd_of(o), 0) & POLLIN] + list(r2)
            w = [o for o in wlist if ready.get(_fd_of(o), 0) & POLLOUT] + list(w2)
            return (r, w, []) if (r or w) else None

        if not (others_r or others_w):  # the host waits
            return result(_readiness(pairs, timeout)) or ([], [], [])

        def check():
            r2, w2, _ = real_select(others_r, others_w, [], 0)
            return result(_readiness(pairs), r2, w2)
        return _wait_loop(check, timeout) or ([], [], [])

    class poll:
        def __init__(self):
            self._fds = {}

        def register(self, fd, eventmask=POLLIN | POLLOUT | 2):
            self._fds[_fd_of(fd)] = eventmask

        def modify(self, fd, eventmask):
            fd = _fd_of(fd)
            if fd not in self._fds:
                raise FileNotFoundError(_errno.ENOENT, "No such file or directory")
            self._fds[fd] = eventmask

        def unregister(self, fd):
            del self._fds[_fd_of(fd)]

        def poll(self, timeout=None):
            timeout = None if timeout is None or timeout < 0 else timeout / 1000
            ours = {fd: ev for fd, ev in self._fds.items() if fd in _by_fd}
            others = {fd: ev for fd, ev in self._fds.items() if fd not in _by_fd}

            if ours and not others:  # the host waits
                return list(_readiness(list(ours.items()), timeout).items())

            def check():
                ready = list(_readiness(list(ours.items())).items())
                if others and real_poll is not None:
                    p = real_poll()
                    for fd, ev in others.items():
                        p.register(fd, ev)
                    ready += p.poll(0)
                return ready
            return _wait_loop(check, timeout) or []

    sel.select = select
    sel.poll = poll


def install():
    """Makes this module the sandbox's _socket (before socket is imported)."""
    if "socket" in sys.modules and sys.modules.get("_socket") is not sys.modules[__name__]:
        raise RuntimeError("socket was imported before the sandbox's network layer")
    sys.modules["_socket"] = sys.modules[__name__]
    _patch_select()
    install_ssl()


class _SslFinder:
    """Finds `ssl`: this package's module, not CPython's (which needs _ssl)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "ssl":
            return None
        from importlib.machinery import ModuleSpec
        return ModuleSpec("ssl", _SslLoader())


class _SslLoader:
    @staticmethod
    def create_module(spec):
        from . import ssl
        return ssl

    @staticmethod
    def exec_module(module):
        pass


def install_ssl():
    if _SslFinder not in sys.meta_path:
        sys.meta_path.insert(0, _SslFinder)
