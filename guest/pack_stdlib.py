"""Packs the pure-Python standard library, compiled to .pyc, into one read-only
image in the ERYXIMG1 format (documented in src/vfs/vfs.h).

Run it with the build python of the same CPython version as the guest, so the
bytecode magic matches:
    python pack_stdlib.py LIB_DIR EXTRA_DIR... -o stdlib.img --prefix /usr/lib/python3.13

Each module ships as its source and its bytecode in the usual
__pycache__/NAME.cpython-313.pyc place. The bytecode is an unchecked-hash pyc:
the import system loads it without reading or hashing the source, so the
source costs nothing at import time and is there for tracebacks (linecache)
and inspect. Shipping bytecode alone would leave every traceback line that
falls in the standard library blank (CPython's own test_contextlib checks
them) for a saving of about 10 MB. See docs/decisions.md.
"""

import argparse
import importlib.util
import os
import py_compile
import struct
import sys
import tempfile

# Dead weight in a sandbox: tests, GUI toolkits, installers, and packages whose
# C half is not built for WASI (ctypes, curses, sqlite3, tkinter, readline UI).
EXCLUDED_DIRS = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "site-packages", "__pycache__", "ctypes", "curses", "sqlite3", "venv",
    "__phello__", "config-3.13-wasm32-wasi",
}
EXCLUDED_FILES = {"turtle.py", "antigravity.py", "this.py"}


def collect(root):
    """(relative path, absolute path) of every .py file to ship under root."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS
                             and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py") and name not in EXCLUDED_FILES:
                full = os.path.join(dirpath, name)
                yield os.path.relpath(full, root), full


def compile_one(src, rel, prefix, tmp):
    out = os.path.join(tmp, "x.pyc")
    py_compile.compile(src, cfile=out, dfile=f"{prefix}/{rel}", doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    with open(out, "rb") as f:
        return f.read()


def write_image(entries, path):
    entries = sorted(entries.items(), key=lambda e: e[0].encode())
    header = 16 + 16 * len(entries)
    names = b"".join(name.encode() for name, _ in entries)
    offset_names, offset_data = header, header + len(names)
    table, blobs = [], []
    name_pos, data_pos = offset_names, offset_data
    for name, data in entries:
        n = name.encode()
        table.append(struct.pack("<4I", name_pos, len(n), data_pos, len(data)))
        name_pos += len(n)
        data_pos += len(data)
        blobs.append(data)
    with open(path + ".tmp", "wb") as f:
        f.write(b"ERYXIMG1" + struct.pack("<2I", len(entries), 0))
        f.write(b"".join(table))
        f.write(names)
        f.write(b"".join(blobs))
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("roots", nargs="+", help="directories whose .py files to pack")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--prefix", required=True, help="guest path the image is mounted at")
    args = ap.parse_args()
    entries = {}
    with tempfile.TemporaryDirectory() as tmp:
        for root in args.roots:
            for rel, full in collect(root):
                with open(full, "rb") as f:
                    entries[rel] = f.read()
                pyc = importlib.util.cache_from_source(rel)
                entries[pyc] = compile_one(full, rel, args.prefix, tmp)
    write_image(entries, args.output)
    total = sum(len(v) for v in entries.values())
    print(f"pack_stdlib: {len(entries)} files, {total / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
