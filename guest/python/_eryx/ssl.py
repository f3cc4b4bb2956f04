"""The sandbox's ``ssl`` module: TLS terminated on the host.

CPython's ssl module needs OpenSSL inside the interpreter; the sandbox has
none. This module (imported as ``ssl``) keeps its interface — contexts,
``wrap_socket``, ``create_default_context``, the exceptions, the constants
— and asks the host to run TLS on the socket's connection (OpenSSL on the
host, src/net/tls.c). The host always verifies the certificate chain,
against the system store and the CAs the embedder configured, and the
server's name:

* ``verify_mode = CERT_NONE`` and ``check_hostname = False`` are accepted and
  change nothing: a certificate that does not verify fails the handshake.
* CA certificates the code loads (``load_verify_locations``, ``cadata``)
  are ignored: trusting a CA the code chose would let it route the host's
  secrets to a server of its own.
* Client certificates (``load_cert_chain``) are not supported.

``wrap_bio`` (``SSLObject``, what anyio and so httpx's async client use)
works too: the handshake asks the host in the byte stream itself.
"""

import enum as _enum
import os as _os
import socket as _socket
from collections import namedtuple as _namedtuple

from . import net as _net

OPENSSL_VERSION = "OpenSSL on the host (eryx)"
OPENSSL_VERSION_INFO = (3, 0, 0, 0, 0)
OPENSSL_VERSION_NUMBER = 0x30000000
HAS_SNI = HAS_ALPN = HAS_ECDH = HAS_TLSv1_2 = HAS_TLSv1_3 = True
HAS_NEVER_CHECK_COMMON_NAME = True
HAS_NPN = HAS_SSLv2 = HAS_SSLv3 = HAS_TLSv1 = HAS_TLSv1_1 = HAS_PSK = False
HAS_PHA = False
CHANNEL_BINDING_TYPES = []


class _SSLMethod(_enum.IntEnum):
    PROTOCOL_TLS = 2
    PROTOCOL_TLS_CLIENT = 16
    PROTOCOL_TLS_SERVER = 17
    PROTOCOL_SSLv23 = 2


class VerifyMode(_enum.IntEnum):
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2


class VerifyFlags(_enum.IntFlag):
    VERIFY_DEFAULT = 0
    VERIFY_CRL_CHECK_LEAF = 0x4
    VERIFY_CRL_CHECK_CHAIN = 0xC
    VERIFY_X509_STRICT = 0x20
    VERIFY_X509_TRUSTED_FIRST = 0x8000
    VERIFY_ALLOW_PROXY_CERTS = 0x40
    VERIFY_X509_PARTIAL_CHAIN = 0x80000


class Options(_enum.IntFlag):
    OP_ALL = 0x80000850
    OP_NO_SSLv2 = 0
    OP_NO_SSLv3 = 0x02000000
    OP_NO_TLSv1 = 0x04000000
    OP_NO_TLSv1_1 = 0x10000000
    OP_NO_TLSv1_2 = 0x08000000
    OP_NO_TLSv1_3 = 0x20000000
    OP_NO_COMPRESSION = 0x20000
    OP_NO_TICKET = 0x4000
    OP_NO_RENEGOTIATION = 0x40000000
    OP_CIPHER_SERVER_PREFERENCE = 0x400000
    OP_SINGLE_DH_USE = 0
    OP_SINGLE_ECDH_USE = 0
    OP_ENABLE_MIDDLEBOX_COMPAT = 0x100000
    OP_IGNORE_UNEXPECTED_EOF = 0x80
    OP_LEGACY_SERVER_CONNECT = 0x4
    OP_ENABLE_KTLS = 0x8


class TLSVersion(_enum.IntEnum):
    MINIMUM_SUPPORTED = -2
    MAXIMUM_SUPPORTED = -1
    SSLv3 = 0x0300
    TLSv1 = 0x0301
    TLSv1_1 = 0x0302
    TLSv1_2 = 0x0303
    TLSv1_3 = 0x0304


class AlertDescription(_enum.IntEnum):
    ALERT_DESCRIPTION_HANDSHAKE_FAILURE = 40
    ALERT_DESCRIPTION_INTERNAL_ERROR = 80


class SSLErrorNumber(_enum.IntEnum):
    SSL_ERROR_SSL = 1
    SSL_ERROR_WANT_READ = 2
    SSL_ERROR_WANT_WRITE = 3
    SSL_ERROR_SYSCALL = 5
    SSL_ERROR_ZERO_RETURN = 6
    SSL_ERROR_EOF = 8


globals().update(_SSLMethod.__members__)
globals().update(VerifyMode.__members__)
globals().update(VerifyFlags.__members__)
globals().update(Options.__members__)
globals().update(SSLErrorNumber.__members__)
PROTOCOL_SSLv23 = PROTOCOL_TLS


class SSLError(OSError):
    def __init__(self, *args):
        super().__init__(*args)
        self.library = "SSL"
        self.reason = None

    def __str__(self):
        return self.strerror if self.strerror else super().__str__()


class SSLZeroReturnError(SSLError):
    pass


class SSLWantReadError(SSLError):
    pass


class SSLWantWriteError(SSLError):
    pass


class SSLSyscallError(SSLError):
    pass


class SSLEOFError(SSLError):
    pass


class SSLCertVerificationError(SSLError, ValueError):
    verify_code = 0
    verify_message = ""


CertificateError = SSLCertVerificationError
SocketError = OSError


class Purpose(_namedtuple("_ASN1Object", "nid shortname longname oid"), _enum.Enum):
    SERVER_AUTH = (129, "serverAuth", "TLS Web Server Authentication", "1.3.6.1.5.5.7.3.1")
    CLIENT_AUTH = (130, "clientAuth", "TLS Web Client Authentication", "1.3.6.1.5.5.7.3.2")


DefaultVerifyPaths = _namedtuple(
    "DefaultVerifyPaths",
    "cafile capath openssl_cafile_env openssl_cafile openssl_capath_env openssl_capath")


def get_default_verify_paths():
    return DefaultVerifyPaths(None, None, "SSL_CERT_FILE", "", "SSL_CERT_DIR", "")


class SSLContext:
    """Settings for TLS connections; the host applies its own verification."""

    sslsocket_class = None
    sslobject_class = None

    def __init__(self, protocol=None, *args, **kwargs):
        if protocol is None:
            protocol = PROTOCOL_TLS
        if protocol == PROTOCOL_TLS_SERVER:
            raise SSLError(1, "TLS servers are not available in the sandbox")
        self.protocol = _SSLMethod(protocol)
        client = protocol == PROTOCOL_TLS_CLIENT
        self._verify_mode = CERT_REQUIRED if client else CERT_NONE
        self._check_hostname = client
        self.options = Options.OP_ALL | Options.OP_NO_SSLv3 | Options.OP_NO_COMPRESSION
        self.verify_flags = VerifyFlags.VERIFY_X509_TRUSTED_FIRST
        self.minimum_version = TLSVersion.MINIMUM_SUPPORTED
        self.maximum_version = TLSVersion.MAXIMUM_SUPPORTED
        self.post_handshake_auth = False
        self.keylog_filename = None
        self.sni_callback = None
        self.hostname_checks_common_name = False
        self.security_level = 2
        self.num_tickets = 2
        self._alpn = None

    @property
    def verify_mode(self):
        return self._verify_mode

    @verify_mode.setter
    def verify_mode(self, value):
        value = VerifyMode(value)
        if value == CERT_NONE and self._check_hostname:
            raise ValueError("Cannot set verify_mode to CERT_NONE when check_hostname "
                             "is enabled.")
        self._verify_mode = value   # recorded; the host verifies regardless

    @property
    def check_hostname(self):
        return self._check_hostname

    @check_hostname.setter
    def check_hostname(self, value):
        value = bool(value)
        if value and self._verify_mode == CERT_NONE:
            self._verify_mode = CERT_REQUIRED
        self._check_hostname = value

    def load_verify_locations(self, cafile=None, capath=None, cadata=None):
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")

    def load_default_certs(self, purpose=Purpose.SERVER_AUTH):
        pass

    def set_default_verify_paths(self):
        pass

    def load_cert_chain(self, certfile, keyfile=None, password=None):
        raise SSLError(1, "client certificates are not available in the sandbox")

    def set_ciphers(self, ciphers):
        pass

    def get_ciphers(self):
        return []

    def set_alpn_protocols(self, protocols):
        self._alpn = [p.decode() if isinstance(p, bytes) else str(p) for p in protocols]

    def set_npn_protocols(self, protocols):
        raise NotImplementedError("NPN is not supported")

    def set_servername_callback(self, callback):
        self.sni_callback = callback

    def set_ecdh_curve(self, name):
        pass

    def load_dh_params(self, path):
        pass

    def get_ca_certs(self, binary_form=False):
        return []

    def cert_store_stats(self):
        return {"x509_ca": 0, "crl": 0, "x509": 0}

    def session_stats(self):
        return {}

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                    suppress_ragged_eofs=True, server_hostname=None, session=None):
        if server_side:
            raise SSLError(1, "TLS servers are not available in the sandbox")
        if self._check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        return SSLSocket._wrap(sock, self, server_hostname, do_handshake_on_connect)

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None,
                 session=None):
        if server_side:
            raise SSLError(1, "TLS servers are not available in the sandbox")
        if self._check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        return SSLObject._make(incoming, outgoing, self, server_hostname)


class MemoryBIO:
    """For code that imports it; wrap_bio, which would use it, is refused."""

    def __init__(self):
        self._buf = bytearray()
        self.eof = False

    @property
    def pending(self):
        return len(self._buf)

    def write(self, data):
        self._buf += data
        return len(data)

    def read(self, n=-1):
        n = len(self._buf) if n < 0 else n
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def write_eof(self):
        self.eof = True


class SSLSession:
    pass


class _Handshake:
    """What the host reported about a handshake (``self._info``)."""

    __slots__ = ()
    _info = None

    def getpeercert(self, binary_form=False):
        if self._info is None:
            raise ValueError("handshake not done yet")
        if binary_form:
            der = self._info.get("der")
            return _net._unb64(der) if der else None
        return _cert_tuples(self._info.get("cert") or {})

    def version(self):
        return self._info.get("version") if self._info else None

    def cipher(self):
        return tuple(self._info["cipher"]) if self._info else None

    def shared_ciphers(self):
        return [self.cipher()] if self._info else None

    def selected_alpn_protocol(self):
        return self._info.get("alpn") if self._info else None

    def selected_npn_protocol(self):
        return None

    def compression(self):
        return None

    def get_channel_binding(self, cb_type="tls-unique"):
        return None

    def verify_client_post_handshake(self):
        raise SSLError(1, "post-handshake authentication is not supported")

    def unwrap(self):
        raise SSLError(1, "TLS cannot be unwrapped in the sandbox")


_blen = len
_TLS_REQUEST = b"\0ERYX-STARTTLS "
_TLS_STATUS = b"\0ERYX-TLS "


class SSLObject(_Handshake):
    """TLS over memory BIOs, as anyio (httpx's async client) uses it. The
    host runs TLS on the connection the BIOs' bytes travel on: the
    handshake writes a request line that the host takes instead of sending
    it, and the first line read back is the host's verdict (with a nonce the
    peer never saw, so a server cannot forge it); after that the bytes in
    the BIOs are plain text, which the host encrypts and decrypts."""

    def __init__(self, *args, **kwargs):
        raise TypeError("SSLObject has no public constructor; use SSLContext.wrap_bio")

    @classmethod
    def _make(cls, incoming, outgoing, context, server_hostname):
        self = object.__new__(cls)
        self._in, self._out, self._context = incoming, outgoing, context
        self.server_hostname = server_hostname
        self.server_side = False
        self._nonce = None
        self._info = None
        self._pending = b""
        return self

    context = property(lambda self: self._context)
    session = None
    session_reused = False

    def do_handshake(self):
        import json
        if self._info is not None:
            return
        if self._nonce is None:
            self._nonce = _os.urandom(12).hex()
            req = {"server_hostname": self.server_hostname, "nonce": self._nonce}
            if self._context._alpn:
                req["alpn"] = self._context._alpn
            self._out.write(_TLS_REQUEST + json.dumps(req).encode() + b"\n")
            raise SSLWantReadError(2, "The operation did not complete (read)")
        self._pending += self._in.read()
        if b"\n" not in self._pending:
            if self._in.eof:
                raise SSLEOFError(8, "EOF occurred in violation of protocol")
            raise SSLWantReadError(2, "The operation did not complete (read)")
        line, self._pending = self._pending.split(b"\n", 1)
        status = None
        if line.startswith(_TLS_STATUS):
            try:
                status = json.loads(line[len(_TLS_STATUS):])
            except ValueError:
                pass
        if not isinstance(status, dict) or status.get("nonce") != self._nonce:
            raise SSLError(1, "the connection sent data that is not the host's TLS answer")
        if status.get("status") != "ok":
            raise _net._error("net:" + status.get("kind", "SSL"), status.get("message", ""))
        self._info = status["info"]

    def read(self, len=1024, buffer=None):
        if self._info is None:
            raise SSLError(1, "handshake not done yet")
        size = len      # the parameter's name is CPython's; len() is needed below
        data = self._pending[:size] if self._pending else self._in.read(size)
        self._pending = self._pending[_blen(data):] if self._pending else b""
        if not data and not self._in.eof:
            raise SSLWantReadError(2, "The operation did not complete (read)")
        if buffer is not None:
            memoryview(buffer).cast("B")[:_blen(data)] = data
            return _blen(data)
        return data

    def write(self, data):
        if self._info is None:
            raise SSLError(1, "handshake not done yet")
        return self._out.write(bytes(data))


    def pending(self):
        return len(self._pending)




def _session(info):
    """What the host reported about the handshake."""
    return info or {}


class SSLSocket(_Handshake, _socket.socket):
    """A socket whose connection the host has wrapped in TLS."""

    @classmethod
    def _wrap(cls, sock, context, server_hostname, do_handshake):
        if sock.type != _socket.SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        self = cls(sock.family, sock.type, sock.proto)
        self.settimeout(sock.gettimeout())
        self._conn, self._peer = sock._conn, sock._peer
        sock.detach()
        # From here the connection is this object's alone: the caller's
        # close() of the raw socket no longer frees it, so a failed
        # handshake must (as CPython's does), or each one holds one of the
        # sandbox's few connection slots until the run ends.
        try:
            self._context = context
            self.server_hostname = server_hostname
            self.server_side = False
            self._info = None
            self._do_handshake = do_handshake
            if self._conn is not None and do_handshake:
                self.do_handshake()
        except BaseException:
            self.close()
            raise
        return self

    context = property(lambda self: self._context)
    session = None
    session_reused = False
    # CPython's SSLSocket keeps its SSLObject here, and some clients read it
    # (httpcore: the negotiated ALPN protocol): the handshake's facts are
    # this object's own.
    _sslobj = property(lambda self: self if self._info is not None else None)

    def connect(self, address):
        super().connect(address)
        if self._do_handshake:
            self.do_handshake()

    def connect_ex(self, address):
        try:
            self.connect(address)
            return 0
        except OSError as exc:
            return exc.errno or 1

    def do_handshake(self, block=False):
        if self._info is not None:
            return
        args = {"conn": self._need_conn(), "server_hostname": self.server_hostname,
                "timeout": self.gettimeout()}
        if self._context._alpn:
            args["alpn"] = self._context._alpn
        self._info = _session(_net.call("tls", args))



    def pending(self):
        return 0



    def read(self, len=1024, buffer=None):
        if buffer is not None:
            return self.recv_into(buffer, len)
        return self.recv(len)

    def write(self, data):
        return self.send(data)

    def dup(self):
        raise NotImplementedError("Can't dup() %s instances" % self.__class__.__name__)


SSLContext.sslsocket_class = SSLSocket
SSLContext.sslobject_class = SSLObject


def _cert_tuples(cert):
    """getpeercert()'s dict with tuples, as CPython builds it."""
    out = dict(cert)
    for key in ("subject", "issuer"):
        if key in out:
            out[key] = tuple(tuple(tuple(pair) for pair in rdn) for rdn in out[key])
    if "subjectAltName" in out:
        out["subjectAltName"] = tuple(tuple(e) for e in out["subjectAltName"])
    return out


def create_default_context(purpose=Purpose.SERVER_AUTH, *, cafile=None, capath=None,
                           cadata=None):
    if purpose == Purpose.CLIENT_AUTH:
        raise SSLError(1, "TLS servers are not available in the sandbox")
    return SSLContext(PROTOCOL_TLS_CLIENT)


def _create_unverified_context(protocol=None, *, cert_reqs=CERT_NONE, check_hostname=False,
                               purpose=Purpose.SERVER_AUTH, certfile=None, keyfile=None,
                               cafile=None, capath=None, cadata=None):
    ctx = SSLContext(PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = cert_reqs
    return ctx


_create_default_https_context = create_default_context
_create_stdlib_context = _create_unverified_context


def DER_cert_to_PEM_cert(der_cert_bytes):
    import base64
    import textwrap
    f = str(base64.standard_b64encode(der_cert_bytes), "ASCII", "strict")
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(f, 64)) +
            "\n-----END CERTIFICATE-----\n")


def PEM_cert_to_DER_cert(pem_cert_string):
    import base64
    head, tail = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if not pem_cert_string.startswith(head) or not pem_cert_string.strip().endswith(tail):
        raise ValueError("Invalid PEM encoding")
    d = pem_cert_string.strip()[len(head):-len(tail)]
    return base64.decodebytes(d.encode("ASCII", "strict"))


def get_server_certificate(addr, ssl_version=PROTOCOL_TLS_CLIENT, ca_certs=None, timeout=None):
    ctx = create_default_context()
    with _socket.create_connection(addr, timeout=timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname=addr[0]) as s:
            return DER_cert_to_PEM_cert(s.getpeercert(True))


def RAND_bytes(n):
    return _os.urandom(n)


def RAND_status():
    return True


def RAND_add(string, entropy):
    pass


def cert_time_to_seconds(cert_time):
    import calendar
    import time
    return calendar.timegm(time.strptime(cert_time.replace("  ", " "), "%b %d %H:%M:%S %Y GMT"))
