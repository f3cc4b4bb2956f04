"""SandboxFactory: sandboxes that start with packages imported and setup code run.

With a liberyx that builds runtime images with packages
(ERYX_HAVE_IMAGE_FILES: ``eryx._eryx.HAVE_IMAGE_FILES``), a factory is a
runtime of its own whose image holds the packages, imports and setup code;
its sandboxes, sessions and pool are made from it like the default ones.
Without it, a factory is a *template session*: one sandbox imports the modules and runs
the setup code once, its whole state is saved as a session file, and every
sandbox or session of the factory is loaded from that file (the file is
mapped copy-on-write: milliseconds, not a CPython start plus the imports).
Package files are made visible through read-only mounts under
``/eryx-packages``; wheels are extracted once into a cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tarfile
import tempfile
import weakref
import zipfile
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _eryx
from ._callbacks import CallbacksArg
from ._limits import NetConfig, ResourceLimits
from ._mcp import MCPManager
from ._vfs import VfsStorage
from ._sandbox import (FactoryPool, OutputFn, Sandbox, SandboxPool, Session, Volumes, _runtime)

PathLike = Union[str, "os.PathLike[str]"]
_MAGIC = b"ERYXFAC1"
_GUEST_ROOT = "/eryx-packages"
# Where create_sandbox(site_packages=DIR) mounts DIR.
_OWN_PACKAGES = "/eryx-site-packages"


def _cache_dir() -> str:
    base = os.environ.get("ERYX_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "eryx")
    return os.path.join(base, "python-packages")


def _safe_members(names: List[str], what: str) -> None:
    for n in names:
        parts = n.replace("\\", "/").split("/")
        if n.startswith("/") or ".." in parts:
            raise _eryx.InitializationError(f"{what}: unsafe path in archive: {n!r}")


def _extract(path: str) -> str:
    """Extracts a wheel (.whl, a zip) or a .tar.gz once into the cache; returns the directory."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:32]
    dest = os.path.join(_cache_dir(), digest)
    if os.path.isdir(dest):
        return dest
    os.makedirs(_cache_dir(), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=_cache_dir(), prefix=".extract-")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                _safe_members(z.namelist(), path)
                z.extractall(tmp)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                members = [m for m in t.getmembers() if m.isfile() or m.isdir()]
                _safe_members([m.name for m in members], path)
                t.extractall(tmp, members=members)
            # A tarball's single top directory is the package root.
            entries = os.listdir(tmp)
            if len(entries) == 1 and os.path.isdir(os.path.join(tmp, entries[0])) and \
                    not os.path.exists(os.path.join(tmp, entries[0], "__init__.py")):
                inner = os.path.join(tmp, entries[0])
                for e in os.listdir(inner):
                    os.rename(os.path.join(inner, e), os.path.join(tmp, e))
                os.rmdir(inner)
        else:
            raise _eryx.InitializationError(f"{path}: not a wheel (.whl) or a .tar.gz")
        try:
            os.rename(tmp, dest)
        except OSError:  # another process extracted it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


class SandboxFactory:
    """Sandboxes and sessions that start with packages importable, modules
    imported and setup code run.

    Args (keyword-only):
        site_packages: a host directory of pure-Python packages (mounted
            read-only and put on sys.path).
        packages: paths of wheels (.whl) or .tar.gz archives of pure-Python
            packages (extracted once into ~/.cache/eryx/python-packages).
        imports: module names imported into the factory's state (in
            sys.modules, not bound in __main__: ``import name`` is then free).
        setup_code: Python run after the imports; the globals it defines are
            in every sandbox of the factory (each gets its own copy-on-write
            copy).
        callbacks: the default callbacks of create_sandbox()/create_session().
            The setup code cannot call them.
        setup_timeout_ms: limit of the packages' compilation, the imports and
            the setup code (default 60000).
        compile_packages: compile every module of the packages once, into
            the factory's image, so that a sandbox imports their bytecode
            (the default); False leaves each sandbox to compile what it
            imports, every time: for many packages of which little is used.

    Example::

        factory = eryx.SandboxFactory(imports=["decimal"],
                                      setup_code="import decimal\nD = decimal.Decimal")
        sb = factory.create_sandbox()
        sb.execute("print(D('1.1') + D('2.2'))")
        factory.save("f.bin");  eryx.SandboxFactory.load("f.bin")
    """

    def __init__(self, *, site_packages: Optional[PathLike] = None,
                 packages: Optional[Sequence[PathLike]] = None,
                 imports: Optional[Sequence[str]] = None, setup_code: Optional[str] = None,
                 callbacks: CallbacksArg = None, cache: bool = True,
                 setup_timeout_ms: int = 60000, compile_packages: bool = True,
                 _state: Optional[Tuple[str, List]] = None,
                 _image_path: Optional[str] = None) -> None:
        self._callbacks = callbacks
        self._rt: Any = None  # the factory's own runtime (image mode)
        self._mounts: List[Tuple[str, str, bool]] = []
        self._dir = tempfile.mkdtemp(prefix="eryx-factory-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._file = os.path.join(self._dir, "state.session")
        if _image_path is not None:
            self._rt = _eryx.Runtime(image_path=_image_path)
            return
        if _state is not None:
            session_bytes, self._mounts = _state
            with open(self._file, "wb") as f:
                f.write(session_bytes)
            self._check_load()
            return
        if imports is not None and (isinstance(imports, str) or
                                    not all(isinstance(m, str) and m for m in imports)):
            raise TypeError("imports must be a list of module names")
        if setup_code is not None and not isinstance(setup_code, str):
            raise TypeError("setup_code must be a str")
        if isinstance(setup_timeout_ms, bool) or not isinstance(setup_timeout_ms, int) or \
                setup_timeout_ms <= 0:
            raise ValueError("setup_timeout_ms must be a positive int")
        dirs: List[str] = []
        wheels: List[str] = []
        if site_packages is not None:
            sp = os.path.abspath(os.fspath(site_packages))
            if not os.path.isdir(sp):
                raise _eryx.InitializationError(f"site_packages {sp!r} is not a directory")
            dirs.append(sp)
        for p in packages or []:
            p = os.path.abspath(os.fspath(p))
            if os.path.isdir(p):
                dirs.append(p)
            elif os.path.isfile(p):
                if _eryx.HAVE_IMAGE_FILES and p.endswith(".whl"):
                    wheels.append(p)  # liberyx unpacks (and checks) wheels itself
                else:
                    dirs.append(_extract(p))
            else:
                raise _eryx.InitializationError(f"package {p!r} does not exist")
        if _eryx.HAVE_IMAGE_FILES:
            # liberyx builds the image: packages, imports and setup code are
            # in the runtime itself; every sandbox of it starts there.
            flags = 0 if compile_packages else _eryx.RUNTIME_NO_BYTECODE
            self._rt = _eryx.Runtime(flags=flags, site_packages=dirs or None,
                                     wheels=wheels or None,
                                     imports=list(imports or []) or None,
                                     setup_code=setup_code or None,
                                     setup_timeout_ns=setup_timeout_ms * 1_000_000)
            return
        self._mounts = [(d, f"{_GUEST_ROOT}/{i}", False) for i, d in enumerate(dirs)]
        # Imported, not bound in __main__ (as liberyx's images do): the
        # modules are in sys.modules, and `import name` finds them at once.
        lines = []
        if dirs:
            paths = [m[1] for m in self._mounts]
            lines.append(f"__import__('sys').path[:0] = {paths!r}")
        for m in imports or []:
            lines.append(f"__import__('importlib').import_module({m!r})")
        code = "\n".join(lines) + "\n"
        limits = ResourceLimits(execution_timeout_ms=setup_timeout_ms,
                                max_memory_bytes=None)
        template = Session(resource_limits=limits,
                           volumes=[(host, guest, True) for host, guest, _ in self._mounts])
        try:
            try:
                template.execute(code)
                if setup_code:
                    template.execute(setup_code)
            except _eryx.EryxError as exc:
                raise _eryx.InitializationError(f"the factory's setup failed:\n{exc}") from None
            template.save(self._file)
        finally:
            template.close()

    # -- internals ---------------------------------------------------------
    def _check_load(self) -> None:
        h = _eryx.SandboxHandle.load(_runtime(), self._file, mounts=self._mounts)
        h.close()

    def _load_handle(self, kw: Dict[str, Any]) -> Any:
        if self._rt is not None:
            return _eryx.SandboxHandle(self._rt, **kw)
        return _eryx.SandboxHandle.load(_runtime(), self._file, **kw)

    def _own_packages(self, sp: Optional[PathLike], compat: Dict[str, Any], volumes: Volumes,
                      env: Optional[Dict[str, str]]) -> Tuple[Volumes, Optional[Dict[str, str]]]:
        """The volumes and environment of a sandbox given its own
        site_packages (the reference's "additional site-packages")."""
        _compat(compat)
        if sp is None:
            return volumes, env
        if self._rt is None:
            # A template session is loaded, and a loaded session keeps the
            # sys.path it was saved with: the environment is not applied.
            raise ValueError("site_packages per sandbox needs a factory with a runtime image "
                             "(this build has none): give the packages to "
                             "SandboxFactory(site_packages=..., packages=...)")
        sp = os.path.abspath(os.fspath(sp))
        if not os.path.isdir(sp):
            raise _eryx.InitializationError(f"site_packages {sp!r} is not a directory")
        env = dict(env or {})
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _OWN_PACKAGES + (os.pathsep + path if path else "")
        return [*(volumes or []), (sp, _OWN_PACKAGES, True)], env

    # -- API ----------------------------------------------------------------
    def create_sandbox(self, *, resource_limits: Optional[ResourceLimits] = None,
                       network: Optional[NetConfig] = None, callbacks: CallbacksArg = None,
                       secrets: Optional[Dict[str, Any]] = None, volumes: Volumes = None,
                       on_stdout: OutputFn = None, on_stderr: OutputFn = None,
                       result_variable: Optional[str] = "result",
                       env: Optional[Dict[str, str]] = None,
                       mcp: Optional[MCPManager] = None,
                       site_packages: Optional[PathLike] = None, **compat: Any) -> Sandbox:
        """A Sandbox starting from the factory's state (every execute starts from it again).

        site_packages (keyword): a host directory of pure-Python packages for
        this sandbox alone, mounted read-only and put first on sys.path (by
        PYTHONPATH in its environment), before the factory's packages.
        """
        volumes, env = self._own_packages(site_packages, compat, volumes, env)
        return Sandbox(resource_limits=resource_limits, network=network,
                       callbacks=callbacks if callbacks is not None else self._callbacks,
                       secrets=secrets, volumes=volumes, on_stdout=on_stdout,
                       on_stderr=on_stderr, result_variable=result_variable, env=env,
                       mcp=mcp, _factory=self)

    def create_session(self, *, resource_limits: Optional[ResourceLimits] = None,
                       execution_timeout_ms: Optional[int] = None,
                       network: Optional[NetConfig] = None, callbacks: CallbacksArg = None,
                       secrets: Optional[Dict[str, Any]] = None, volumes: Volumes = None,
                       on_stdout: OutputFn = None, on_stderr: OutputFn = None,
                       result_variable: Optional[str] = "result",
                       env: Optional[Dict[str, str]] = None,
                       mcp: Optional[MCPManager] = None, vfs: Optional[VfsStorage] = None,
                       vfs_mount_path: Optional[str] = None,
                       site_packages: Optional[PathLike] = None, **compat: Any) -> Session:
        """A Session starting from the factory's state; reset() goes back to it.
        site_packages (keyword): as create_sandbox's."""
        volumes, env = self._own_packages(site_packages, compat, volumes, env)
        return Session(resource_limits=resource_limits,
                       execution_timeout_ms=execution_timeout_ms, network=network,
                       callbacks=callbacks if callbacks is not None else self._callbacks,
                       secrets=secrets, volumes=volumes, on_stdout=on_stdout,
                       on_stderr=on_stderr, result_variable=result_variable, env=env,
                       mcp=mcp, vfs=vfs, vfs_mount_path=vfs_mount_path, _factory=self)

    def create_pool(self, *, max_size: int = 10, min_idle: int = 1,
                    acquire_timeout_ms: int = 30000, idle_timeout_ms: int = 300000,
                    **kw: Any) -> Union[FactoryPool, SandboxPool]:
        """A pool of sandboxes in the factory's state: acquire() as a context
        manager, try_acquire(), stats(), close() (as SandboxPool). kw: the
        sandboxes' config (resource_limits, callbacks, mcp, ...); callbacks
        default to the factory's."""
        kw.setdefault("callbacks", self._callbacks)
        if self._rt is not None:  # liberyx's pool resets to this runtime's image
            return SandboxPool(max_size=max_size, min_idle=min_idle,
                               acquire_timeout_ms=acquire_timeout_ms,
                               idle_timeout_ms=idle_timeout_ms, _runtime_obj=self._rt, **kw)
        return FactoryPool(self, max_size=max_size, min_idle=min_idle,
                           acquire_timeout_ms=acquire_timeout_ms,
                           idle_timeout_ms=idle_timeout_ms, **kw)

    def to_bytes(self) -> bytes:
        """The factory as bytes (what save() writes)."""
        if self._rt is not None:
            path = os.path.join(self._dir, "image")
            self._rt.save_image(path)
            with open(path, "rb") as f:
                data = f.read()
            os.unlink(path)
            return data
        header = json.dumps({"mounts": self._mounts}).encode()
        with open(self._file, "rb") as f:
            body = f.read()
        return _MAGIC + struct.pack("<I", len(header)) + header + body

    @property
    def size_bytes(self) -> int:
        """Size of the factory's state in bytes (image mode: liberyx's image size)."""
        if self._rt is not None:
            return int(self._rt.image_size)
        return os.path.getsize(self._file)

    def save(self, path: PathLike) -> None:
        """Writes the factory to a file (atomically) for SandboxFactory.load()."""
        path = os.fspath(path)
        if self._rt is not None:
            self._rt.save_image(path)
            return
        # A temporary file of its own (O_EXCL: never one that is there, link
        # or file; two saves at once each have theirs), synced, renamed.
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp",
                                   dir=os.path.dirname(path) or ".")
        try:
            os.fchmod(fd, 0o644)  # as liberyx's images (mkstemp's is 0600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.to_bytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @staticmethod
    def from_bytes(data: bytes, *, site_packages: Optional[PathLike] = None,
                   callbacks: CallbacksArg = None) -> "SandboxFactory":
        """A factory from to_bytes() output."""
        data = bytes(data)
        if data[:8] != _MAGIC and _eryx.HAVE_IMAGE_FILES:
            tmp = tempfile.mkdtemp(prefix="eryx-factory-")
            try:
                path = os.path.join(tmp, "image")
                with open(path, "wb") as f:
                    f.write(data)
                return SandboxFactory(callbacks=callbacks, _image_path=path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if len(data) < 12 or data[:8] != _MAGIC:
            raise _eryx.InitializationError("not an eryx factory (bad magic)")
        (n,) = struct.unpack("<I", data[8:12])
        try:
            header = json.loads(data[12:12 + n])
            mounts = [(str(h), str(g), bool(w)) for h, g, w in header["mounts"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise _eryx.InitializationError(f"damaged eryx factory header: {exc}") from None
        if site_packages is not None and mounts:
            mounts[0] = (os.path.abspath(os.fspath(site_packages)), mounts[0][1], False)
        try:
            return SandboxFactory(callbacks=callbacks, _state=(data[12 + n:], mounts))
        except _eryx.InitializationError:
            raise
        except (ValueError, OSError) as exc:
            raise _eryx.InitializationError(f"could not load the factory: {exc}") from None

    @staticmethod
    def load(path: PathLike, *, site_packages: Optional[PathLike] = None,
             callbacks: CallbacksArg = None, cache: bool = True) -> "SandboxFactory":
        """A factory saved by save(). site_packages replaces the saved
        site_packages directory (when the factory had one)."""
        path = os.fspath(path)
        with open(path, "rb") as f:
            magic = f.read(8)
            if magic != _MAGIC and _eryx.HAVE_IMAGE_FILES:
                return SandboxFactory(callbacks=callbacks, _image_path=path)
            data = magic + f.read()
        return SandboxFactory.from_bytes(data, site_packages=site_packages, callbacks=callbacks)

    def __repr__(self) -> str:
        mode = "image" if self._rt is not None else "template session"
        return f"<eryx.SandboxFactory ({mode}) {self.size_bytes} bytes>"


def _compat(kw: Dict[str, Any]) -> None:
    """The reference's keywords of create_sandbox/create_session that ours
    takes and has no use for (its scrub_* flags: our output holds secrets'
    placeholders, never their values)."""
    allowed = {"scrub_stdout", "scrub_stderr", "scrub_files", "scrub_result"}
    unknown = set(kw) - allowed
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
