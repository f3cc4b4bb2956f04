"""Bytecode for a runtime's packages, made once in its template.

The packages' image (site-packages) is read-only and holds their sources
only, so without this every sandbox would compile each module it imports,
every time (jinja2: about 75 ms of a fresh sandbox's first render). The
runtime runs compile_tree() in the template before anything else uses the
packages; it writes the bytecode of every module as one ERYXIMG1 image
(src/vfs/vfs.h), which the host adds to the packages' image beside the
sources, in the usual __pycache__ places (docs/packages.md, "Bytecode").

The bytecode is an unchecked-hash pyc, as the standard library's is
(guest/pack_stdlib.py): the import system loads it without reading the
source, whose timestamps the image does not keep. A module that does not
compile (a syntax error, a file for another Python) gets no bytecode, and
its import fails as it did without this.
"""

import importlib.util
import os
import struct
import time
import warnings
from importlib._bootstrap_external import _code_to_hash_pyc


def _sources(root):
    """The .py files under root, as os.walk finds them."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def _bytecode(path):
    """path's module compiled as the import system would, as pyc bytes,
    or None if it does not compile."""
    with open(path, "rb") as f:
        source = f.read()
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except Exception:
        return None
    return bytes(_code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False))


def compile_tree(root, out, budget=0.0):
    """Writes the bytecode of the modules under root to the image file out.
    budget: seconds to spend at most (0: no bound); the modules left when
    it runs out get no bytecode. Returns (modules compiled, modules left)."""
    deadline = time.monotonic() + budget if budget > 0 else None
    names, sizes = [], []
    left = 0
    data_path = out + ".data"
    with warnings.catch_warnings(), open(data_path, "wb") as data:
        # SyntaxWarnings (invalid escapes in old packages) are the import's
        # to give, not the runtime's build.
        warnings.simplefilter("ignore")
        for path in _sources(root):
            if deadline is not None and time.monotonic() > deadline:
                left += 1
                continue
            pyc = _bytecode(path)
            if pyc is not None:
                names.append(os.fsencode(os.path.relpath(importlib.util.cache_from_source(path),
                                                         root)))
                sizes.append(len(pyc))
                data.write(pyc)
    _write_image(out, data_path, names, sizes)
    os.remove(data_path)
    return len(names), left


def _write_image(out, data_path, names, sizes):
    """ERYXIMG1: the header, the entries sorted by path, the paths, then
    the data file's bytes as they are (offsets in the order written)."""
    starts, at = [], 0
    for n in sizes:
        starts.append(at)
        at += n
    order = sorted(range(len(names)), key=names.__getitem__)
    data_at = 16 + 16 * len(names) + sum(map(len, names))
    path_at = 16 + 16 * len(names)
    with open(out, "wb") as f:
        f.write(b"ERYXIMG1" + struct.pack("<II", len(names), 0))
        for i in order:
            f.write(struct.pack("<IIII", path_at, len(names[i]), data_at + starts[i], sizes[i]))
            path_at += len(names[i])
        for i in order:
            f.write(names[i])
        with open(data_path, "rb") as data:
            while chunk := data.read(1 << 20):
                f.write(chunk)
