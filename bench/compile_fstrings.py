"""compile() of sources with f-string replacement fields, the cost
guest/patch-cpython.py's lexer edit takes from quadratic to linear
(docs/performance.md, "Compiling f-strings in linear time"), with a source
without fields as the control. Every run of user code compiles it from a
string, so this is time a sandbox spends before its code starts.

usage: python3 bench/compile_fstrings.py [--rounds R] NAME=COMMAND ...
  e.g. python3 bench/compile_fstrings.py native=$(bench/build-native-pgo.sh --path) \\
           eryx=build/bin/eryx
Runs this file under each COMMAND in turn (`--timeout 0` added to commands
ending in `eryx`), R rounds with the order rotated, and prints a Markdown
table: per case the best of the rounds of each runner's in-process best of
3, in ms, and its ratio to the first runner."""

import sys
import time


def fields_module(lines):
    """A generated module: four fields a line, one of them `=`."""
    return "".join(f"v{i} = f'{{a}} and {{b!r}} and {{c:>8}} and {{d=}}'\n"
                   for i in range(lines))


def plain_module(lines):
    """The same shape without fields: the control."""
    return "".join(f"v{i} = 'a' + str(b) + format(c, '>8') + repr(d)\n"
                   for i in range(lines))


def agent_script():
    """What an agent sends: 40 small functions that report with f-strings."""
    parts = []
    for i in range(40):
        parts.append(
            f"def step_{i}(items, limit={i}):\n"
            f"    total = sum(x for x in items if x > limit)\n"
            f"    print(f'step {i}: {{len(items)}} items, {{total=}}')\n"
            f"    if total > 100:\n"
            f"        raise ValueError(f'step {i}: {{total}} over {{limit:>5}}')\n"
            f"    return {{'step': {i}, 'total': total}}\n\n")
    return "".join(parts)


CASES = {
    "agent script, 40 functions (10 KiB)": agent_script(),
    "1,000 lines, 4 fields each (42 KiB)": fields_module(1000),
    "4,000 lines, 4 fields each (174 KiB)": fields_module(4000),
    "4,000 lines, no fields (control)": plain_module(4000),
}


def worker():
    import json
    best = {}
    for name, source in CASES.items():
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            compile(source, "<bench>", "exec")
            times.append(time.perf_counter() - t0)
        best[name] = min(times) * 1e3
    print(json.dumps(best))


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        from compare import cases_side_by_side  # bench/compare.py, next to this file
        cases_side_by_side(__file__, CASES, __doc__.split("\n")[0])
