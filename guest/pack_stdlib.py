"""Packs the pure-Python standard library, compiled to .pyc, into one read-only
image in the ERYXIMG1 format (documented in src/vfs/vfs.h).

Run it with the build python of the same CPython version as the guest, so the
bytecode magic matches:
    python pack_stdlib.py LIB_DIR EXTRA_DIR... -o stdlib.img --prefix /usr/lib/python3.13 \
        [--data GUEST_DIR=HOST_DIR]...

--data packs every file under HOST_DIR as it is (data, not modules: the
time zone database) at GUEST_DIR, relative to the prefix. Symbolic links are
packed as copies of what they point to when that is inside HOST_DIR and left
out otherwise (tzdata's "localtime" points at the build machine's
/etc/localtime, which must never reach the image).

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
# C half is not built for WASI (ctypes, curses, tkinter, readline UI).
EXCLUDED_DIRS = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "site-packages", "__pycache__", "ctypes", "curses", "venv",
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


def collect_data(root):
    """(relative path, absolute path) of every file to ship under root, with
    symbolic links resolved inside root and left out when they leave it."""
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(dirnames)
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            target = os.path.realpath(full)
            if os.path.commonpath([real_root, target]) != real_root:
                print(f"pack_stdlib: left out {os.path.relpath(full, root)}: it points outside",
                      file=sys.stderr)
                continue
            if os.path.isfile(target):
                yield os.path.relpath(full, root), target


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
    ap.add_argument("--data", action="append", default=[], metavar="GUEST_DIR=HOST_DIR",
                    help="files packed as they are at GUEST_DIR (relative to the prefix)")
    args = ap.parse_args()
    entries = {}
    with tempfile.TemporaryDirectory() as tmp:
        for root in args.roots:
            for rel, full in collect(root):
                with open(full, "rb") as f:
                    entries[rel] = f.read()
                pyc = importlib.util.cache_from_source(rel)
                entries[pyc] = compile_one(full, rel, args.prefix, tmp)
    for spec in args.data:
        guest_dir, sep, host_dir = spec.partition("=")
        if not sep or not guest_dir or guest_dir.startswith("/") or not os.path.isdir(host_dir):
            ap.error(f"--data {spec}: want GUEST_DIR=HOST_DIR, a relative guest path and a directory")
        for rel, full in collect_data(host_dir):
            with open(full, "rb") as f:
                entries[f"{guest_dir.rstrip('/')}/{rel}"] = f.read()
    write_image(entries, args.output)
    total = sum(len(v) for v in entries.values())
    print(f"pack_stdlib: {len(entries)} files, {total / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
