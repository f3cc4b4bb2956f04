#!/usr/bin/env python3
"""Edits the unpacked CPython source for the wasm32 guest, where it must.

usage: guest/patch-cpython.py SRC

Each edit replaces an exact piece of text an exact number of times and
fails the build when the source does not match, so a new CPython release
is looked at again rather than patched blindly. Only the guest's build
and the native build python compile these edits, and only the guest sees
them change anything: on a 64-bit host `long` and `long long` are the same
width, so the code compiled is the code native CPython runs.

An edit is an exact piece of text, or a compiled regular expression for a
C type widened through a whole file; either way its number of matches is
fixed.

Why each edit is here: docs/performance.md, "How the guest's CPython is
built".
"""
import pathlib
import re
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

# range() and its iterator keep start, step and length in C `long`s while
# they fit, and fall back to Python ints otherwise: natively up to 2**63,
# in the guest up to 2**31. Past that, every item of a loop over the range
# was a bignum addition (3.0x native's time for a loop over timestamps in
# milliseconds), the loop lost the interpreter's FOR_ITER_RANGE, and building
# such a range computed its length with Python ints. The whole file is
# widened to `long long` as one: every `long` there is the one CPython means
# to be 64-bit, and so is native's; with it, the iterator's struct and the
# two places the interpreter reads it (FOR_ITER_RANGE, in the generated
# interpreters and in bytecodes.c, their source).
LONG = re.compile(r"(?<!\blong )\blong\b(?! long\b)")
RANGE_FILE_EDITS = [
    (LONG, "long long", 43),
    (re.compile(r"\bLONG_MAX\b"), "LLONG_MAX", 7),
    (re.compile(r"\bLONG_MIN\b"), "LLONG_MIN", 5),
    (re.compile(r"\bPyLong_AsLong\("), "PyLong_AsLongLong(", 7),
    (re.compile(r"\bPyLong_FromLong\("), "PyLong_FromLongLong(", 8),
    (re.compile(r"\bPyLong_AsLongAndOverflow\("),
     "PyLong_AsLongLongAndOverflow(", 3),
    (re.compile(r"\b(\d+)UL\b"), r"\1ULL", 7),
]
RANGE_ITER_FIELDS = [
    ("    long start;\n"
     "    long step;\n"
     "    long len;\n"
     "} _PyRangeIterObject;\n",
     "    long long start;\n"
     "    long long step;\n"
     "    long long len;\n"
     "} _PyRangeIterObject;\n", 1),
]
FOR_ITER_RANGE = [
    ("long value = r->start;\n", "long long value = r->start;\n", 1),
    ("next = PyLong_FromLong(value);\n",
     "next = PyLong_FromLongLong(value);\n", 1),
]

EDITS = {
    "Python/bltinmodule.c": SUM_EDITS,
    "Objects/rangeobject.c": RANGE_FILE_EDITS,
    "Include/internal/pycore_range.h": RANGE_ITER_FIELDS,
    "Python/bytecodes.c": FOR_ITER_RANGE,
    "Python/generated_cases.c.h": FOR_ITER_RANGE,
    "Python/executor_cases.c.h": FOR_ITER_RANGE,
}


def apply(text: str, old, new: str) -> tuple[str, int]:
    """Returns the text edited and the number of matches."""
    if isinstance(old, re.Pattern):
        return old.subn(new, text)
    return text.replace(old, new), text.count(old)


def patch(src: pathlib.Path) -> None:
    for name, edits in EDITS.items():
        path = src / name
        text = path.read_text()
        for old, new, count in edits:
            text, found = apply(text, old, new)
            if found != count:
                what = old.pattern if isinstance(old, re.Pattern) else old.strip()
                sys.exit(f"patch-cpython: {name}: expected {count} of "
                         f"{what!r}, found {found}")
        path.write_text(text)
        print(f"patch-cpython: {name}: {len(edits)} edits", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    patch(pathlib.Path(sys.argv[1]))
