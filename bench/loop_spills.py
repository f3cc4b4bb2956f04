"""How the interpreter loop of one or more eryx binaries came out: for each
of the hottest bytecodes, the instructions of its handler up to its first
unconditional jump (the threaded dispatch, usually) and how many of them
reach the C stack (`(%rsp)`: spills and reloads).

The builds that ran the suite 5-6 % slower (docs/performance.md,
"`range()` as wide as native's") keep the value-stack pointer in a stack
slot in these handlers, where the faster builds keep it in a register: a
load and a store more in LOAD_FAST, POP_TOP, POP_JUMP_IF_FALSE. This shows
it in seconds, without a benchmark run.

usage: python3 bench/loop_spills.py ERYX_BINARY ...
Needs binutils (nm, readelf, objdump) and an x86-64 build whose loop
dispatches through a table of label addresses (the %gs segment build:
guest/w2c_rewrite.sh). Opcode numbers come from the binary's own
`opcode` module."""

import json
import re
import subprocess
import sys

HOT = ["LOAD_FAST", "LOAD_FAST_LOAD_FAST", "LOAD_CONST", "STORE_FAST",
       "POP_TOP", "POP_JUMP_IF_FALSE", "COMPARE_OP_INT", "BINARY_OP_ADD_INT",
       "BINARY_OP_SUBTRACT_INT", "LOAD_GLOBAL_MODULE",
       "LOAD_ATTR_INSTANCE_VALUE", "CALL_PY_EXACT_ARGS", "RETURN_VALUE",
       "FOR_ITER_RANGE"]
MAX_INSNS = 150


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True,
                          check=True).stdout


def opcodes(binary):
    code = ("import json, opcode\n"
            "m = dict(opcode.opmap)\n"
            "m.update(getattr(opcode, '_specialized_opmap', {}))\n"
            "print(json.dumps(m))")
    return json.loads(run(binary, "-c", code).strip().splitlines()[-1])


def dispatch_table(binary):
    """Handler address of each table slot, from the table's relocations."""
    table = None
    for line in run("nm", binary).splitlines():
        if ".eryx_dispatch_" in line and "EvalFrameDefault" in line:
            table = int(line.split()[0], 16)
    if table is None:
        sys.exit(f"{binary}: no dispatch table (not a segment build?)")
    slots = {}
    for line in run("readelf", "-rW", binary).splitlines():
        f = line.split()
        if len(f) >= 4 and re.fullmatch(r"[0-9a-f]{16}", f[0]) \
                and "RELATIVE" in f[2]:
            off = int(f[0], 16) - table
            if 0 <= off < 8 * 256:
                slots[off // 8] = int(f[-1], 16)
    return slots


def handler(binary, start):
    """(instructions, C-stack references) up to the first unconditional jmp."""
    text = run("objdump", "-d", "--no-show-raw-insn",
               f"--start-address={start}",
               f"--stop-address={start + 16 * MAX_INSNS}", binary)
    insns = stack = 0
    for line in text.splitlines():
        m = re.match(r"\s*[0-9a-f]+:\s+(\S.*)$", line)
        if not m:
            continue
        insns += 1
        stack += "(%rsp)" in m.group(1)
        if m.group(1).startswith("jmp") or insns >= MAX_INSNS:
            break
    return insns, stack


def main():
    binaries = sys.argv[1:]
    if not binaries:
        sys.exit(__doc__)
    cells = {}
    for b in binaries:
        ops, slots = opcodes(b), dispatch_table(b)
        for name in HOT:
            cells[name, b] = handler(b, slots[ops[name]])
    print("| bytecode | " + " | ".join(binaries) + " |")
    print("|---|" + "---|" * len(binaries))
    for name in HOT:
        print(f"| {name} | " + " | ".join(
            "%d / %d" % cells[name, b] for b in binaries) + " |")
    print("| **C-stack references, all** | " + " | ".join(
        str(sum(cells[n, b][1] for n in HOT)) for b in binaries) + " |")


if __name__ == "__main__":
    main()
