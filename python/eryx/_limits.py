"""ResourceLimits and NetConfig: what a sandbox may use, mapped onto liberyx's config."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from . import _eryx

_MS = 1_000_000  # ns per ms
_NO_LIMIT = _eryx.NO_LIMIT
_WASM32_MAX = 4 * 1024**3  # the guest's linear memory cannot grow past 4 GiB
_DEFAULT = object()


def _check(name: str, value: Optional[int], *, allow_zero: bool = False) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'} "
                         f"or None, got {value}")
    if value >= 2**63:
        raise ValueError(f"{name} is too large: {value}")
    if name.endswith("_ms"):
        check_ms(name, value)
    return value


# The most milliseconds liberyx's nanoseconds (a uint64_t) hold.
MAX_MS = (2**64 - 1) // 1_000_000


def check_ms(name: str, value: int) -> None:
    """A time in ms that liberyx can take: caught here, not when a sandbox,
    a run or an acquire refused it later, named by liberyx's field
    ("timeout_ns is too large")."""
    if value > MAX_MS:
        raise ValueError(f"{name} is too large: {value} (at most {MAX_MS} ms)")


class ResourceLimits:
    """Limits of a sandbox's runs.

    Args (all keyword-only; ``None`` disables a limit, but for max_vfs_bytes
    and max_output_bytes, where it is the default: those bound host memory):
        execution_timeout_ms: wall-clock limit of one execution (default 30000).
            Past it the code gets a KeyboardInterrupt it can unwind from, then is
            stopped hard 200 ms later; ``execute`` raises ``eryx.TimeoutError``.
        callback_timeout_ms: limit of one callback invocation (default 10000):
            the sandboxed code then sees a ``CallbackError`` of kind ``timeout``.
        max_memory_bytes: cap of the sandbox's linear memory (default 128 MiB):
            growth beyond raises ``MemoryError`` inside the sandbox; uncaught, it
            becomes ``eryx.ResourceLimitError``. ``None`` means the 4 GiB a
            wasm32 guest can address.
        max_callback_invocations: callback calls per execution (default 1000).
        max_fuel: budget of guest work per execution (default None: unlimited).
            Only in liberyx builds that count fuel (``eryx.build_has_fuel()``);
            elsewhere setting it raises ``ValueError`` at sandbox creation.
        max_vfs_bytes: bytes the in-memory ``/tmp`` may hold (default None: the
            64 MiB default; it bounds host memory, so it cannot be lifted).
        max_output_bytes: stdout and stderr bytes kept per run (default None:
            the 10 MiB default); beyond, output is dropped with a marker line.
    """

    __slots__ = ("execution_timeout_ms", "callback_timeout_ms", "max_memory_bytes",
                 "max_callback_invocations", "max_fuel", "max_vfs_bytes", "max_output_bytes")

    def __init__(self, *, execution_timeout_ms: Optional[int] = 30000,
                 callback_timeout_ms: Optional[int] = 10000,
                 max_memory_bytes: Optional[int] = 128 * 1024 * 1024,
                 max_callback_invocations: Optional[int] = 1000,
                 max_fuel: Optional[int] = None,
                 max_vfs_bytes: Optional[int] = None,
                 max_output_bytes: Optional[int] = None) -> None:
        self.execution_timeout_ms = execution_timeout_ms
        self.callback_timeout_ms = callback_timeout_ms
        self.max_memory_bytes = max_memory_bytes
        self.max_callback_invocations = max_callback_invocations
        self.max_fuel = max_fuel
        self.max_vfs_bytes = max_vfs_bytes
        self.max_output_bytes = max_output_bytes

    def __setattr__(self, name: str, value: Any) -> None:
        # Checked when set later too, not only when made: a bad one failed
        # at the sandbox's creation, named by liberyx's field.
        value = _check(name, value)
        if name == "max_callback_invocations" and value is not None and value > 2**32 - 2:
            raise ValueError("max_callback_invocations is too large (at most 2**32 - 2)")
        object.__setattr__(self, name, value)

    @staticmethod
    def unlimited() -> "ResourceLimits":
        """Limits with no time, memory (up to wasm32's 4 GiB), callback or fuel limit.

        The in-memory filesystem and output caps stay: they bound host memory.
        """
        return ResourceLimits(execution_timeout_ms=None, callback_timeout_ms=None,
                              max_memory_bytes=None, max_callback_invocations=None,
                              max_fuel=None)

    def _config(self) -> Dict[str, Any]:
        """The keyword arguments of liberyx's sandbox config."""
        cfg: Dict[str, Any] = {
            "timeout_ns": _NO_LIMIT if self.execution_timeout_ms is None
            else self.execution_timeout_ms * _MS,
            "callback_timeout_ns": _NO_LIMIT if self.callback_timeout_ms is None
            else self.callback_timeout_ms * _MS,
            "max_memory": _WASM32_MAX if self.max_memory_bytes is None
            else self.max_memory_bytes,
            "max_callbacks": 2**32 - 1 if self.max_callback_invocations is None
            else self.max_callback_invocations,
        }
        if self.max_fuel is not None:
            cfg["fuel"] = self.max_fuel
        if self.max_vfs_bytes is not None:
            cfg["tmp_quota"] = self.max_vfs_bytes
        if self.max_output_bytes is not None:
            cfg["max_output"] = self.max_output_bytes
        return cfg

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"ResourceLimits({fields})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceLimits) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)


class NetConfig:
    """Network policy of a sandbox. Without one (the default) the sandbox has no network.

    Deny by default: the sandbox may connect only to hosts an allow rule names.
    Rules: ``"api.example.com"``, ``"*.example.com"``, ``"host:443"``,
    ``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"[::1]:8080"``. Blocked rules are checked
    first. Names are resolved on the host and every address is checked again.

    Safer than the reference binding (same names, different defaults):
      * ``NetConfig()`` with no ``allowed_hosts`` allows nothing (the reference
        allows every external host);
      * loopback, private and link-local addresses are never reached through a
        name rule; they need a rule naming the address or network
        (``allow_host("10.0.0.0/8")``) or ``allow_localhost()``;
      * ``permissive()`` allows every public host (``"*"``) but still not
        localhost or private networks: add ``allow_localhost()`` for those.

    Args:
        max_connections: concurrent connections (default 10).
        connect_timeout_ms: default 10000, the C library's.
        io_timeout_ms: a read or write waiting longer fails (default 30000, the
            C library's).
        allowed_hosts, blocked_hosts: rules as above.
        resolve: curl-style ``"HOST:PORT:ADDRESS"`` pins.
        max_bytes_sent, max_bytes_received: per run (default 1 GiB each).
        allow_all_hosts: True adds the rule ``"*"``: every public host, as the
            reference's default (still not localhost or private networks).
            None or False: only the rules given (ours denies by default; the
            reference's False means the same).
    """

    def __init__(self, *, max_connections: int = 10, connect_timeout_ms: int = 10000,
                 io_timeout_ms: int = 30000, allowed_hosts: Optional[Sequence[str]] = None,
                 blocked_hosts: Optional[Sequence[str]] = None,
                 resolve: Optional[Sequence[str]] = None,
                 max_bytes_sent: Optional[int] = None,
                 max_bytes_received: Optional[int] = None,
                 allow_all_hosts: Optional[bool] = None) -> None:
        if allow_all_hosts is not None and not isinstance(allow_all_hosts, bool):
            raise TypeError("allow_all_hosts must be a bool or None")
        self.max_connections = _check("max_connections", max_connections)
        self.connect_timeout_ms = _check("connect_timeout_ms", connect_timeout_ms)
        self.io_timeout_ms = _check("io_timeout_ms", io_timeout_ms)
        self.allowed_hosts: List[str] = [self._rule(h) for h in (allowed_hosts or [])]
        self.blocked_hosts: List[str] = [self._rule(h) for h in (blocked_hosts or [])]
        self.resolve: List[str] = [self._rule(h) for h in (resolve or [])]
        self.max_bytes_sent = _check("max_bytes_sent", max_bytes_sent, allow_zero=True)
        self.max_bytes_received = _check("max_bytes_received", max_bytes_received,
                                         allow_zero=True)
        self.root_certs_pem: List[str] = []
        if allow_all_hosts and "*" not in self.allowed_hosts:
            self.allowed_hosts.append("*")

    @property
    def allow_all_hosts(self) -> bool:
        """Whether every public host is allowed (the rule ``"*"``)."""
        return "*" in self.allowed_hosts

    @staticmethod
    def _rule(pattern: str) -> str:
        if not isinstance(pattern, str):
            raise TypeError(f"a host pattern must be a str, not {type(pattern).__name__}")
        if not pattern or "\0" in pattern or any(c.isspace() for c in pattern):
            raise ValueError(f"invalid host pattern {pattern!r}")
        return pattern

    @staticmethod
    def permissive() -> "NetConfig":
        """Every public host, up to 100 connections at once (the reference's
        number). Unlike the reference, not localhost or private networks:
        chain ``.allow_localhost()`` or ``.allow_host("10.0.0.0/8")``."""
        return NetConfig(allowed_hosts=["*"], max_connections=100)

    def allow_host(self, pattern: str) -> "NetConfig":
        """Adds an allow rule; returns self. A name rule never reaches private
        or loopback addresses: name the address or network for those."""
        self.allowed_hosts.append(self._rule(pattern))
        return self

    def block_host(self, pattern: str) -> "NetConfig":
        """Adds a deny rule (checked before the allow rules); returns self."""
        self.blocked_hosts.append(self._rule(pattern))
        return self

    def allow_localhost(self) -> "NetConfig":
        """Allows connections to the host's loopback addresses; returns self."""
        for rule in ("localhost", "127.0.0.0/8", "::1"):
            if rule not in self.allowed_hosts:
                self.allowed_hosts.append(rule)
        return self

    def with_root_cert(self, cert_der: bytes) -> "NetConfig":
        """Trusts one more CA certificate (DER bytes or PEM text); returns self.
        The parameter's name is the reference binding's (a keyword call
        ``with_root_cert(cert_der=...)`` works); PEM is ours."""
        cert = cert_der
        if isinstance(cert, str):
            pem = cert
        elif isinstance(cert, (bytes, bytearray, memoryview)):
            data = bytes(cert)
            if data.lstrip().startswith(b"-----BEGIN"):
                pem = data.decode("ascii")
            else:
                import base64
                import textwrap
                body = "\n".join(textwrap.wrap(base64.b64encode(data).decode("ascii"), 64))
                pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
        else:
            raise TypeError("with_root_cert takes DER bytes or PEM text")
        self.root_certs_pem.append(pem)
        return self

    def _config(self) -> Dict[str, Any]:
        return {
            "allow": list(self.allowed_hosts),
            "deny": list(self.blocked_hosts),
            "resolve": list(self.resolve),
            "ca_pem": "".join(self.root_certs_pem) or None,
            "max_connections": self.max_connections,
            "connect_timeout_ns": None if self.connect_timeout_ms is None
            else self.connect_timeout_ms * _MS,
            "idle_timeout_ns": None if self.io_timeout_ms is None else self.io_timeout_ms * _MS,
            "max_bytes_sent": self.max_bytes_sent,
            "max_bytes_received": self.max_bytes_received,
        }

    def __repr__(self) -> str:
        return (f"NetConfig(allowed_hosts={self.allowed_hosts!r}, "
                f"blocked_hosts={self.blocked_hosts!r}, max_connections={self.max_connections})")
