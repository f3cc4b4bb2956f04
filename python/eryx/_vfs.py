"""VfsStorage: files that outlive a session and can be shared by several.

A storage is a private directory on the host, mounted writable into each
session given it (``Session(vfs=storage)``, at ``/data`` unless
``vfs_mount_path`` says otherwise). The guest's view goes through
liberyx's host mounts, so it stays beneath the directory whatever the code
does (``..``, symlinks climbing out) and its writes count against the
sandbox's host-mount quota (1 GiB). A session's ``reset()`` and
``clear_state()`` leave the files, as its save and load do (they are not
in the session file).

The host reads and writes the same files with the methods below. The code
inside may have made anything there, symlinks included: each path is
walked one component at a time without following links, so a link the
code planted cannot make the host read or write outside the directory.
"""

import errno
import os
import shutil
import stat
import tempfile
import weakref
from typing import List, Optional, Union


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _regular(fd: int, path: str) -> int:
    """fd, if it is a regular file's; else closed, and an OSError naming path."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return fd
    os.close(fd)
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    raise OSError(errno.EINVAL, "VfsStorage: not a regular file", path)


class VfsStorage:
    """A directory of files shared by the sessions given it (``vfs=``).

    Args:
        directory: the host directory to keep the files in, which must exist
            and is left in place by ``close()``. Default: a new private one
            (mode 0700) in ``tempfile.gettempdir()``, removed by ``close()``
            or when the storage is garbage-collected.
    """

    def __init__(self, directory: Optional[Union[str, "os.PathLike[str]"]] = None) -> None:
        if directory is None:
            self._path = tempfile.mkdtemp(prefix="eryx-vfs-")
            self._cleanup: Optional[weakref.finalize] = weakref.finalize(
                self, _remove_tree, self._path)
        else:
            path = os.path.realpath(os.fspath(directory))
            if not os.path.isdir(path):
                raise ValueError(f"VfsStorage: {path!r} is not a directory")
            self._path = path
            self._cleanup = None
        self._closed = False

    @property
    def path(self) -> str:
        """The host directory holding the files."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once close() was called: no session may mount it then."""
        return self._closed

    def close(self) -> None:
        """Removes the directory of a storage this object created, with its
        files (idempotent); a directory given to it stays. Close a storage
        after the sessions that use it: theirs then fail to open files."""
        self._closed = True
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> "VfsStorage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VfsStorage({self._path!r}{', closed' if self._closed else ''})"

    # ---- the host's access -------------------------------------------------

    def _parts(self, path: Union[str, "os.PathLike[str]"]) -> List[str]:
        if self._closed:
            raise ValueError("VfsStorage is closed")
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or "\0" in path:
            raise ValueError(f"VfsStorage: invalid path {path!r}")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ValueError(f"VfsStorage: '..' is not allowed in {path!r}")
        return parts

    def _open_dir(self, parts: List[str], create: bool = False) -> int:
        """A descriptor of the directory parts name, walked without following
        a link at any step."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._path, flags)
        try:
            for part in parts:
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                nfd = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_file(self, path: str) -> bytes:
        """The bytes of the file at path (relative to the storage, as the
        guest sees it below the mount path). FileNotFoundError, or OSError
        (ELOOP) for a symbolic link."""
        parts = self._parts(path)
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "the storage's root is a directory", path)
        dfd = self._open_dir(parts[:-1])
        try:
            # O_NONBLOCK: a FIFO planted in the storage does not hang the open.
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=dfd)
        finally:
            os.close(dfd)
        # Checked before fdopen, which on a directory raised naming the fd
        # and left it open (one descriptor leaked per call).
        with os.fdopen(_regular(fd, path), "rb") as f:
            return f.read()

    def write_file(self, path: str, data: Union[bytes, str]) -> None:
        """Writes data (str as UTF-8) to the file at path, creating it and
        its parent directories, replacing what was there."""
        # Checked first: the file is truncated as it opens, and a TypeError
        # from the write left it empty.
        data = memoryview(data.encode() if isinstance(data, str) else data)
        parts = self._parts(path)
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "the storage's root is a directory", path)
        dfd = self._open_dir(parts[:-1], create=True)
        try:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC | os.O_NONBLOCK, 0o644, dir_fd=dfd)
        finally:
            os.close(dfd)
        with os.fdopen(_regular(fd, path), "wb") as f:
            f.write(data)

    def listdir(self, path: str = "/") -> List[str]:
        """The names in the directory at path, sorted."""
        fd = self._open_dir(self._parts(path))
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def remove(self, path: str) -> None:
        """Removes the file, link or (recursively) directory at path."""
        parts = self._parts(path)
        if not parts:
            raise ValueError("VfsStorage: cannot remove the storage's root")
        dfd = self._open_dir(parts[:-1])
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(parts[-1], dir_fd=dfd)
            else:
                os.unlink(parts[-1], dir_fd=dfd)
        finally:
            os.close(dfd)


def mount_of(vfs: Optional[VfsStorage], mount_path: Optional[str]):
    """(storage, guest path) of the vfs= and vfs_mount_path= arguments:
    (None, None) without a storage."""
    if vfs is None:
        if mount_path is not None:
            raise ValueError("vfs_mount_path= without vfs=: give a VfsStorage to mount")
        return None, None
    if not isinstance(vfs, VfsStorage):
        raise TypeError(f"vfs must be a VfsStorage, not {type(vfs).__name__}")
    if vfs.closed:
        raise ValueError("vfs: the VfsStorage is closed")
    if mount_path is None:
        mount_path = "/data"
    if not isinstance(mount_path, str) or not mount_path.startswith("/") or mount_path == "/":
        raise ValueError(f"vfs_mount_path must be an absolute guest path below /, "
                         f"not {mount_path!r}")
    return vfs, mount_path
