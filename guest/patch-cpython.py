#!/usr/bin/env python3
"""Edits the unpacked CPython source for the wasm32 guest, where it must.

usage: guest/patch-cpython.py SRC

Each edit replaces an exact piece of text an exact number of times and
fails the build when the source does not match, so a new CPython release
is looked at again rather than patched blindly. Only the guest's build
uses this tree's edited files for anything that differs: on a 64-bit host,
where `long` and `long long` are the same width, the edits change nothing.

Why each edit is here: docs/performance.md, "How the guest's CPython is
built".
"""
import pathlib
import sys

# sum() keeps a running total of ints in a C integer while it fits, and
# falls back to adding Python ints once it would overflow. CPython's
# accumulator is a `long` (a Py_ssize_t), 64 bits natively but 32 bits on
# wasm32, where a total past 2**31 then makes every later item a bignum
# addition: sum() of 10 000 squares ran 4.7x slower than natively. wasm32
# has 64-bit integer arithmetic, so the accumulator becomes a `long long`,
# as wide as native's: the same results, at native's speed. The float
# path's conversion of an int item widens for the same reason, which also
# keeps its compensated summation going where native's does.
SUM_EDITS = [
    ("        Py_ssize_t i_result = PyLong_AsLongAndOverflow(result, &overflow);\n",
     "        long long i_result = PyLong_AsLongLongAndOverflow(result, &overflow);\n", 1),
    ("                return PyLong_FromSsize_t(i_result);\n",
     "                return PyLong_FromLongLong(i_result);\n", 1),
    ("            result = PyLong_FromSsize_t(i_result);\n",
     "            result = PyLong_FromLongLong(i_result);\n", 1),
    ("                Py_ssize_t b;\n"
     "                overflow = 0;\n",
     "                long long b;\n"
     "                overflow = 0;\n", 1),
    ("                    b = PyLong_AsLongAndOverflow(item, &overflow);\n",
     "                    b = PyLong_AsLongLongAndOverflow(item, &overflow);\n", 1),
    ("                    (i_result >= 0 ? (b <= PY_SSIZE_T_MAX - i_result)\n"
     "                                   : (b >= PY_SSIZE_T_MIN - i_result)))\n",
     "                    (i_result >= 0 ? (b <= LLONG_MAX - i_result)\n"
     "                                   : (b >= LLONG_MIN - i_result)))\n", 1),
    ("                long value;\n"
     "                int overflow;\n"
     "                value = PyLong_AsLongAndOverflow(item, &overflow);\n",
     "                long long value;\n"
     "                int overflow;\n"
     "                value = PyLong_AsLongLongAndOverflow(item, &overflow);\n", 1),
]

EDITS = {
    "Python/bltinmodule.c": SUM_EDITS,
}


def patch(src: pathlib.Path) -> None:
    for name, edits in EDITS.items():
        path = src / name
        text = path.read_text()
        for old, new, count in edits:
            found = text.count(old)
            if found != count:
                sys.exit(f"patch-cpython: {name}: expected {count} of "
                         f"{old.strip()!r}, found {found}")
            text = text.replace(old, new)
        path.write_text(text)
        print(f"patch-cpython: {name}: {len(edits)} edits", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    patch(pathlib.Path(sys.argv[1]))
