"""eryx: run untrusted Python in a WebAssembly sandbox, inside this process.

CPython 3.13 compiled to WebAssembly and then to native code (wasm2c) runs in
an isolated sandbox with its own memory, file tree and limits; it reaches
nothing of the host but the callbacks, directories and network you give it.

    >>> import eryx
    >>> sandbox = eryx.Sandbox()
    >>> print(sandbox.execute('print("Hello from the sandbox!")').stdout)
    Hello from the sandbox!

Classes: Sandbox (fresh interpreter per execute), Session (state persists;
fork, save/load, export/import), SandboxFactory (packages pre-imported),
SandboxPool (warm sandboxes for many short jobs), ExecuteResult,
ResourceLimits, NetConfig, CallbackRegistry, MCPManager (the tools of MCP
servers as host functions: ``Sandbox(mcp=manager)``).

eryx.remote: the same execute API against an ``eryx serve`` server
(docs/python.md, "Remote sessions").

Exceptions: EryxError > ExecutionError, TimeoutError (also the builtin
TimeoutError), ResourceLimitError, CancelledError, InitializationError,
PoolError (> PoolTimeoutError, PoolClosedError, PoolExhaustedError),
MCPError, JournalError, SuspendedError.

Journals: ``execute_with_journal(code, journal=None)`` on Sandbox, Session
and pool leases returns a ReplayOutcome; a callback raising SuspendCallback
suspends the execution, and its ``outcome.journal`` resumes it later.

The names and defaults follow the reference binding (``pyeryx``); see
docs/python.md for what differs and what only eryx offers.
"""

from ._eryx import (
    CancelledError,
    EryxError,
    ExecuteResult,
    ExecutionError,
    InitializationError,
    ResourceLimitError,
    TimeoutError,
    LIB_VERSION as _LIB_VERSION,
)
from ._eryx import build_has_fuel
from ._callbacks import CallbackRegistry, infer_schema
from ._limits import NetConfig, ResourceLimits
from ._mcp import MCPError, MCPManager
from ._eryx import JournalError
from ._journal import ReplayOutcome, SuspendCallback, SuspendedCallback, SuspendedError
from ._sandbox import (
    FactoryPool,
    PoolClosedError,
    PoolError,
    PoolExhaustedError,
    PooledSandbox,
    PoolStats,
    PoolTimeoutError,
    Sandbox,
    SandboxPool,
    Session,
)
from ._factory import SandboxFactory
from ._vfs import VfsStorage

for _cls in (Sandbox, Session, SandboxFactory, SandboxPool, FactoryPool, PooledSandbox, PoolStats,
             ResourceLimits, NetConfig, CallbackRegistry, PoolError, PoolTimeoutError,
             PoolClosedError, PoolExhaustedError, MCPManager, MCPError, ReplayOutcome,
             SuspendCallback, SuspendedCallback, SuspendedError, VfsStorage):
    _cls.__module__ = "eryx"
del _cls

__version__: str = _LIB_VERSION
"""Version of the package (that of liberyx it is built with)."""


def __getattr__(name: str) -> object:
    # eryx.remote (the `eryx serve` client) is imported on first use: it
    # brings socket and ssl, which local sandboxes never need.
    if name == "remote":
        import importlib
        return importlib.import_module(".remote", __name__)
    raise AttributeError(f"module 'eryx' has no attribute {name!r}")


__all__ = [
    "Sandbox", "Session", "SandboxFactory", "SandboxPool", "FactoryPool", "PooledSandbox", "PoolStats",
    "ExecuteResult", "ResourceLimits", "NetConfig", "CallbackRegistry", "infer_schema",
    "EryxError", "ExecutionError", "TimeoutError", "ResourceLimitError", "CancelledError",
    "InitializationError", "PoolError", "PoolTimeoutError", "PoolClosedError",
    "PoolExhaustedError", "MCPManager", "MCPError", "VfsStorage", "build_has_fuel",
    "__version__", "remote",
    "ReplayOutcome", "SuspendCallback", "SuspendedCallback", "SuspendedError", "JournalError",
]
