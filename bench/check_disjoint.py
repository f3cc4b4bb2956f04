#!/usr/bin/env python3
"""Checks that the benchmark kernels (bench/kernels/) and the guest's PGO
training run (guest/pgo_train.py) share no code: a profile trained on the
benchmarks would flatter them (docs/performance.md).

Shared means: a function or class of the same name (dunders aside), or the same non-trivial
line (whitespace collapsed, at least 30 characters, not an import, not the
kernels' common main()). Exits 1 and names what is shared.

usage: python3 bench/check_disjoint.py [ROOT]"""
import ast
import glob
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))


def defined_names(tree):
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def code_lines(text, skip):
    out = set()
    for line in text.splitlines():
        s = re.sub(r"\s+", " ", line.strip())
        if len(s) >= 30 and not s.startswith(("import ", "from ", "#")) and s not in skip:
            out.add(s)
    return out


def main():
    train_path = os.path.join(ROOT, "guest", "pgo_train.py")
    train = open(train_path).read()
    kernels = sorted(glob.glob(os.path.join(ROOT, "bench", "kernels", "*.py")))
    # The lines every kernel has (its main(), argv handling, JSON line):
    # boilerplate of the harness, not code whose profile matters.
    texts = {k: open(k).read() for k in kernels}
    per_kernel = [code_lines(t, set()) for t in texts.values()]
    common = set.intersection(*per_kernel) if per_kernel else set()
    train_names = {n for n in defined_names(ast.parse(train)) - {"main", "work"}
                   if not n.startswith("__")}
    train_lines = code_lines(train, common)
    bad = []
    for k, text in texts.items():
        name = os.path.relpath(k, ROOT)
        for n in sorted(defined_names(ast.parse(text)) & train_names):
            bad.append("%s: defines %s, as guest/pgo_train.py does" % (name, n))
        for line in sorted(code_lines(text, common) & train_lines):
            bad.append("%s: shares the line %r with guest/pgo_train.py" % (name, line))
    for b in bad:
        print(b)
    print("%d kernels checked against guest/pgo_train.py: %s" % (
        len(kernels), "shared code found" if bad else "disjoint"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
