"""The sandbox's asyncio event loop.

WASI has no socketpair, so asyncio's selector loop cannot start in a
sandbox. This loop has no file descriptors at all: when no task can run, it
hands the host the callback invocations its tasks are waiting for and its next
timer (``_eryx_host.wait``), and the host replies with results. The host may
suspend the guest inside that call and return to the embedder: the guest runs
on a native stack of its own, so this works from any depth, including
``asyncio.run()`` called by synchronous code.
"""

import asyncio
import asyncio.base_events
import json
import math

import _eryx_host

from . import hostcall, net
from .errors import CallbackError


class _HostSelector:
    """What BaseEventLoop._run_once calls when it has nothing ready."""

    def __init__(self, loop):
        self._loop = loop

    def select(self, timeout):
        self._loop._exchange(timeout)
        return []

    def close(self):
        pass


class SandboxEventLoop(asyncio.BaseEventLoop):
    def __init__(self):
        super().__init__()
        self._selector = _HostSelector(self)
        self._waiting = {}      # call id -> future
        self._outbox = []       # calls not yet handed to the host
        self._net_ids = set()   # calls that are network operations

    def _process_events(self, event_list):
        pass

    def _write_to_self(self):
        pass

    def call_host(self, name, args, args_json=None):
        """A future for the result of host function `name`; args_json, when
        given, is args already as JSON text."""
        fut = self.create_future()
        call_id = hostcall.next_id()
        if args_json is None:
            args_json = hostcall.encode(args)
        self._outbox.append(hostcall.call_text(call_id, name, args_json))
        self._waiting[call_id] = fut
        if name.startswith("@net."):
            self._net_ids.add(call_id)
        return fut

    def _deliver(self, results):
        from . import net
        for result in results:
            rid = result["id"]
            fut = self._waiting.pop(rid, None)
            is_net = rid in self._net_ids
            self._net_ids.discard(rid)
            if fut is None or fut.done():
                continue          # cancelled meanwhile: the result is dropped
            if result["ok"]:
                fut.set_result(result["value"])
            elif is_net:
                fut.set_exception(net._error(result["kind"], result["message"]))
            else:
                fut.set_exception(CallbackError(result["message"], result["kind"]))

    def _exchange(self, timeout):
        """Sends queued calls and waits (up to timeout seconds, None = until a
        reply) for results. With other work ready (timeout 0) calls are held
        back, so that every call a gather() makes goes out in one request."""
        # Results a synchronous call received for this loop come first.
        stashed = [hostcall.stash.pop(i) for i in list(hostcall.stash) if i in self._waiting]
        if stashed:
            self._deliver(stashed)
            if not self._outbox:
                return
        if timeout == 0 and not stashed:
            return
        if stashed:
            timeout = 0
        if timeout is not None and not math.isfinite(timeout):
            timeout = None
        from . import net
        # Closes of collected sockets first (hostcall._request says why).
        calls = [hostcall.call_text(c["id"], c["name"], hostcall.encode(c["args"]))
                 for c in net._extra()] + self._outbox
        self._outbox = []
        # In requests the host takes (at most 8 MiB, 65536 calls each): the
        # calls of one turn may be more (12 uploads of 1 MiB gathered). All
        # but the last wait for nothing; results they bring make the last
        # wait for nothing either.
        batches = hostcall.batches(calls)
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            if self._send(batch, timeout if last else 0) and not last:
                timeout = 0

    def _send(self, calls, timeout):
        """One request to the host and its results delivered; whether there
        were any."""
        wait = "null" if timeout is None else repr(float(timeout))
        text = '{"calls":[' + ",".join(calls) + '],"timeout":' + wait + "}"
        reply = json.loads(_eryx_host.wait(text.encode()))
        if "raw" in reply:
            hostcall.exact(reply)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        self._deliver(reply["results"])
        return bool(reply["results"])

    # ---- the network (net.py's host sockets, without blocking the loop) ----

    async def _net(self, op, args):
        return await self.call_host("@net." + op, args)

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        from . import net
        if host is None:
            raise net._real.gaierror(net.EAI_NONAME, "Name or service not known")
        p = net._port(port)
        h = net._host_text(host)
        fam = net._literal(h)
        if fam is not None:
            found = [(fam, h)]
        else:
            found = [(net.AF_INET if e["family"] == 4 else net.AF_INET6, e["addr"])
                     for e in await self._net("resolve", {"host": h, "port": p})]
        return [(f, net.SOCK_STREAM, net.IPPROTO_TCP, "", net._sockaddr(f, a, p))
                for f, a in found if not family or f == family]

    async def getnameinfo(self, sockaddr, flags=0):
        return sockaddr[0], str(sockaddr[1])

    async def sock_connect(self, sock, address):
        from . import net
        host, port = address[0], net._port(address[1])
        infos = await self.getaddrinfo(host, port, family=sock.family)
        last = None
        for fam, _, _, _, sa in infos:
            try:
                r = await self._net("connect", {"addr": sa[0], "port": port})
                sock._conn, sock._peer = r["conn"], sa
                return
            except OSError as exc:
                last = exc
        raise last or OSError(113, "no address to connect to")

    async def sock_recv(self, sock, n):
        from . import net
        return net._unb64(await self._net("recv", {"conn": sock._need_conn(), "max": n}))

    async def sock_recv_into(self, sock, buf):
        data = await self.sock_recv(sock, len(buf))
        memoryview(buf).cast("B")[:len(data)] = data
        return len(data)

    async def sock_sendall(self, sock, data):
        from . import net
        view = memoryview(data).cast("B")
        for off in range(0, len(view), 1 << 20):
            await self._net("send", {"conn": sock._need_conn(),
                                     "data": net._b64(bytes(view[off:off + (1 << 20)]))})

    async def sock_accept(self, sock):
        from . import net
        net._refuse("accept")

    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None,
                                family=0, proto=0, flags=0, sock=None, local_addr=None,
                                server_hostname=None, ssl_handshake_timeout=None,
                                ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
                                interleave=None, all_errors=False):
        from . import net
        if local_addr is not None:
            net._refuse("binding to a local address")
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if sock is None:
            if host is None or port is None:
                raise ValueError("host and port was not specified and no sock specified")
            sock = net.socket(net.AF_INET6 if ":" in str(host) else net.AF_INET)
            try:
                await self.sock_connect(sock, (host, port))
            except BaseException:
                sock.close()
                raise
        elif sock._conn is None:
            raise ValueError("sock must be a connected socket of the sandbox")
        info = None
        if ssl:
            if server_hostname is None:
                server_hostname = host
            args = {"conn": sock._conn, "server_hostname": server_hostname or None}
            alpn = getattr(ssl, "_alpn", None)
            if alpn:
                args["alpn"] = alpn
            try:
                info = await self._net("tls", args)
            except BaseException:
                sock.close()
                raise
        protocol = protocol_factory()
        transport = _HostTransport(self, sock, protocol, ssl if ssl else None, info)
        return transport, protocol

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                        server_hostname=None, ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        if server_side:
            from . import net
            net._refuse("TLS servers")
        if not isinstance(transport, _HostTransport):
            raise TypeError("start_tls needs a transport of the sandbox's loop")
        args = {"conn": transport._sock._conn, "server_hostname": server_hostname}
        alpn = getattr(sslcontext, "_alpn", None)
        if alpn:
            args["alpn"] = alpn
        transport._tls_info = await self._net("tls", args)
        transport._sslcontext = sslcontext
        transport._protocol = protocol
        return transport

    async def create_server(self, *args, **kwargs):
        from . import net
        net._refuse("create_server")

    async def create_datagram_endpoint(self, *args, **kwargs):
        from . import net
        net._refuse("UDP (create_datagram_endpoint)")

    async def create_unix_connection(self, *args, **kwargs):
        from . import net
        net._refuse("Unix sockets")


class _HostTransport(asyncio.Transport):
    """A stream transport over a host connection: a task reads while the
    protocol wants data; writes are sent in order by another."""

    _HIGH, _LOW = 64 * 1024, 16 * 1024

    def __init__(self, loop, sock, protocol, sslcontext, tls_info):
        super().__init__({"socket": sock})
        self._loop, self._sock, self._protocol = loop, sock, protocol
        self._sslcontext, self._tls_info = sslcontext, tls_info
        self._closing = False
        self._paused = asyncio.Event()
        self._paused.set()
        self._buffer = bytearray()
        self._writer = None
        self._eof_pending = False
        self._write_paused = False
        loop.call_soon(protocol.connection_made, self)
        self._reader = loop.create_task(self._read_loop())

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return self._sock._peer
        if name == "sockname":
            return self._sock.getsockname()
        if name == "socket":
            return self._sock
        if name == "sslcontext":
            return self._sslcontext
        if name == "peercert" and self._tls_info:
            from . import ssl
            return ssl._cert_tuples(self._tls_info.get("cert") or {})
        if name == "cipher" and self._tls_info:
            return tuple(self._tls_info["cipher"])
        if name == "ssl_object" and self._tls_info:
            return _TlsInfo(self._tls_info)
        return super().get_extra_info(name, default)

    async def _read_loop(self):
        from . import net
        try:
            while not self._closing:
                await self._paused.wait()
                if self._sock._conn is None:
                    return
                try:
                    data = net._unb64(await self._loop._net(
                        "recv", {"conn": self._sock._conn, "max": 256 * 1024}))
                except TimeoutError:
                    continue    # idle for the host's idle timeout: keep waiting
                if not data:
                    keep = self._protocol.eof_received()
                    if not keep:
                        self.close()
                    return
                self._protocol.data_received(data)
        except asyncio.CancelledError:
            pass
        except OSError as exc:
            self._fatal(exc)

    def _fatal(self, exc):
        if not self._closing:
            self._closing = True
            self._finish(exc)

    def _finish(self, exc):
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)

    def write(self, data):
        if self._closing or self._eof_pending:
            return
        self._buffer += data
        if self._writer is None or self._writer.done():
            self._writer = self._loop.create_task(self._write_loop())
        if not self._write_paused and len(self._buffer) > self._HIGH:
            self._write_paused = True
            self._protocol.pause_writing()

    async def _write_loop(self):
        from . import net
        try:
            while self._buffer:
                chunk = bytes(self._buffer[:1 << 20])
                del self._buffer[:len(chunk)]
                await self._loop._net("send", {"conn": self._sock._conn,
                                               "data": net._b64(chunk)})
                if self._write_paused and len(self._buffer) <= self._LOW:
                    self._write_paused = False
                    self._protocol.resume_writing()
            if self._eof_pending and self._sock._conn is not None:
                await self._loop._net("shutdown", {"conn": self._sock._conn, "how": 1})
            if self._closing:
                self._finish(None)
        except asyncio.CancelledError:
            pass
        except OSError as exc:
            self._fatal(exc)

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))

    def write_eof(self):
        if self._eof_pending:
            return
        self._eof_pending = True
        if self._writer is None or self._writer.done():
            self._writer = self._loop.create_task(self._write_loop())

    def can_write_eof(self):
        return True

    def get_write_buffer_size(self):
        return len(self._buffer)

    def get_write_buffer_limits(self):
        return self._LOW, self._HIGH

    def set_write_buffer_limits(self, high=None, low=None):
        if high is not None:
            self._HIGH = high
        self._LOW = low if low is not None else self._HIGH // 4

    def pause_reading(self):
        self._paused.clear()

    def resume_reading(self):
        self._paused.set()

    def is_reading(self):
        return self._paused.is_set() and not self._closing

    def is_closing(self):
        return self._closing

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._reader.cancel()
        if self._writer is None or self._writer.done():
            self._finish(None)
        # else the writer flushes, then finishes

    def abort(self):
        self._closing = True
        self._reader.cancel()
        self._buffer.clear()
        self._finish(None)

    def get_protocol(self):
        return self._protocol

    def set_protocol(self, protocol):
        self._protocol = protocol


class _TlsInfo:
    """transport.get_extra_info("ssl_object"): what the handshake gave."""

    def __init__(self, info):
        self._info = info

    def getpeercert(self, binary_form=False):
        from . import net, ssl
        if binary_form:
            der = self._info.get("der")
            return net._unb64(der) if der else None
        return ssl._cert_tuples(self._info.get("cert") or {})

    def version(self):
        return self._info.get("version")

    def cipher(self):
        return tuple(self._info["cipher"])

    def selected_alpn_protocol(self):
        return self._info.get("alpn")

    def compression(self):
        return None


class _Policy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self):
        return SandboxEventLoop()


def install_policy():
    if not isinstance(asyncio.get_event_loop_policy(), _Policy):
        asyncio.set_event_loop_policy(_Policy())


def run_top_level(coro):
    """Runs the coroutine of code that used top-level await."""
    with asyncio.Runner() as runner:
        return runner.run(coro)


def call_now(name, args_json):
    """The result record of host function `name` ({"ok", "value" | "kind",
    "message"}), called at once as a synchronous call, when the event loop
    has nothing else to do (no other task ready, no timer, no call in
    flight); None otherwise, and the caller awaits call_host. A callback
    then needs no future and no turn of the loop, and its request is put
    together from args_json (its arguments already as JSON text). That took
    `await noop()` from 13 to 5 us (docs/performance.md)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, SandboxEventLoop):
        raise RuntimeError("host functions can only be awaited in the sandbox's event loop")
    if loop._ready or loop._scheduled or loop._waiting or loop._outbox:
        return None
    # net._extra's call only when there are sockets to close: a frame less.
    return hostcall.call_sync(name, None, net._extra() if net._to_close else (), args_json)


def call_host(name, args, args_json=None):
    """A future for the result of host function `name`, through the loop."""
    return asyncio.get_running_loop().call_host(name, args, args_json)


install_policy()
