"""Which of the guest's functions set up a frame on the shadow stack, and
which functions with variable arguments they call.

A wasm function that takes the address of a local, or calls a function
with variable arguments (PyErr_Format and its kin: a wasm varargs call
passes its arguments in a buffer on the caller's stack), lowers
`__stack_pointer` at its entry and restores it at every return, on every
call, whether or not the path that needs the memory runs. Natively such a
call costs nothing until it is made. An edit that moved the hottest
functions' error paths out of line was measured and not taken
(docs/performance.md, "Error paths out of line: measured, not taken");
this lists them.

usage: python3 bench/frames.py GUEST_WASM [PROFDATA] [--top N]
  GUEST_WASM  guest.wasm of a guest stage ($ERYX_CACHE_DIR/guest-*/)
  PROFDATA    the stage 2 profile ($ERYX_CACHE_DIR/w2c-*/guest.profdata):
              functions are then ordered by their entry counts in the
              training, hottest first (a profile of another guest build
              still names the same functions)
The varargs functions are found in the CPython source the guest was built
from (python-src.path next to guest.wasm). Needs wasm-objdump (wabt) and,
with a profile, llvm-profdata-$ERYX_LLVM (22)."""

import os
import pathlib
import re
import subprocess
import sys

FUNC = re.compile(r"^[0-9a-f]+ func\[\d+\] <(.*)>:")
CALL = re.compile(r"\| +call \d+ <(.*)>")
VARARGS_DECL = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)\s*\(([^;{}()]*)\.\.\.\s*\)")


def frames_and_calls(wasm):
    """{function: [sets up a frame, set of direct callees]} from the
    disassembly."""
    out = subprocess.run(["wasm-objdump", "-d", wasm], check=True,
                         capture_output=True, text=True).stdout
    funcs, cur = {}, None
    for line in out.splitlines():
        m = FUNC.match(line)
        if m:
            cur = funcs[m.group(1)] = [False, set()]
        elif cur is not None:
            if "global.set" in line and "<__stack_pointer>" in line:
                cur[0] = True
            m = CALL.search(line)
            if m:
                cur[1].add(m.group(1))
    return funcs


def varargs_functions(src):
    """Names declared or defined with `...` in CPython's headers and core
    sources."""
    names = set()
    for sub, pattern in (("Include", "**/*.h"), ("Objects", "*.c"),
                         ("Python", "*.c"), ("Modules", "*.c")):
        for path in (src / sub).glob(pattern):
            for m in VARARGS_DECL.finditer(path.read_text(errors="replace")):
                names.add(m.group(1))
    return names


def entry_counts(profdata):
    """{function: entry count} from the stage 2 profile (wasm2c names its
    functions w2c_<module>_<name>; the first block count is the entry)."""
    llvm = os.environ.get("ERYX_LLVM", "22")
    out = subprocess.run([f"llvm-profdata-{llvm}", "show", "--all-functions",
                          "--counts", profdata], check=True,
                         capture_output=True, text=True).stdout
    counts, name = {}, None
    for line in out.splitlines():
        m = re.match(r"^  \S*;w2c_(?:guest_)?(.*):$", line)
        if m:
            name = m.group(1)
        elif name and "Block counts:" in line:
            first = re.search(r"\[(\d+)", line)
            counts[name] = int(first.group(1)) if first else 0
            name = None
    return counts


def main():
    args = sys.argv[1:]
    top = 60
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    if not args or len(args) > 2:
        sys.exit(__doc__)
    wasm = pathlib.Path(args[0])
    funcs = frames_and_calls(wasm)
    src = pathlib.Path((wasm.parent / "python-src.path").read_text().strip())
    varargs = varargs_functions(src)
    framed = [f for f, (frame, _) in funcs.items() if frame]
    print(f"{len(framed)} of {len(funcs)} functions set up a frame")
    if len(args) == 2:
        counts = entry_counts(args[1])
        framed.sort(key=lambda f: -counts.get(f, 0))
        print(f"the {top} called most in the training, with the varargs functions they call:")
        for f in framed[:top]:
            va = sorted(funcs[f][1] & varargs)
            print(f"{counts.get(f, 0):>12}  {f}  {' '.join(va)}")
    else:
        for f in sorted(framed)[:top]:
            print(f"  {f}  {' '.join(sorted(funcs[f][1] & varargs))}")


if __name__ == "__main__":
    main()
