"""What guest/patch-cpython.py edits in the guest's CPython, checked.

Run inside eryx and under the native build python by guest_edits.sh. Each
side checks itself against a reference that does not use the edited code
(exact sums by repeated `+`; the text of f-string debug expressions, as the
language defines it), prints one line per case, and exits non-zero on a
mismatch; the script then compares the two sides' lines, so that the cases
without an independent reference (sum()'s compensated float path) are held
to what native CPython, where `long` is 64 bits, computes.
"""
import functools
import operator
import sys
import tracemalloc

WHO = "guest" if sys.platform == "wasi" else "native"

BIG = 2**31
HUGE = 2**63

INT_CASES = {
    "small": list(range(1000)),
    "past 2**31": [BIG // 2] * 5 + list(range(100)),
    "squares past 2**31": [x * x for x in range(1000, 11000)],
    "negative past -2**31": [-(BIG // 2)] * 5 + [-1],
    "back under 2**31": [BIG, BIG, -BIG, -BIG, 7],
    "items past 2**31": [BIG * 3, -BIG * 5, 11],
    "past 2**63": [HUGE // 2, HUGE // 2, 1],
    "negative past -2**63": [-(HUGE // 2), -(HUGE // 2), -1],
    "items past 2**63": [HUGE * 5, 1, -HUGE, 2],
    "bools": [True, False, True] * 7 + [BIG],
    "then a float": [BIG, BIG, 0.5],
}


class Adds:
    """Not an int: sum() leaves its fast path for the generic one here."""

    def __init__(self, value):
        self.value = value

    def __radd__(self, other):
        return other + self.value


def exact(items, start=0):
    return functools.reduce(operator.add, items, start)


def check_ints(report):
    ok = True
    for name, items in INT_CASES.items():
        for start in (0, BIG, -HUGE):
            got, want = sum(items, start), exact(items, start)
            good = got == want and type(got) is type(want)
            ok &= good
            report(f"int {name} start={start}: {got!r} {'ok' if good else 'WRONG, want ' + repr(want)}")
    # Leaving the fast path on a non-int with a total past 2**31 kept.
    got = sum([BIG, BIG, Adds(5), 1])
    ok &= got == 2 * BIG + 6
    report(f"int then another type: {got!r}")
    # A generator, as sum() is mostly fed.
    got = sum(x * x for x in range(60000))
    ok &= got == exact(x * x for x in range(60000))
    report(f"int generator of squares: {got!r}")
    try:
        sum([BIG, BIG, "x"])
    except TypeError as e:
        report(f"int then a str: TypeError {e}")
    else:
        ok = False
        report("int then a str: no TypeError")
    return ok


def check_floats(report):
    # The float path converts an int item to a double (exact below 2**53,
    # rounded above, as native); past the C integer it adds a Python int.
    cases = {
        "ints in floats": [0.1, BIG * 3, 0.2, -BIG, 0.3],
        "huge ints in floats": [0.1, 2**62 + 1, 0.2, 2**53 + 1, 1e-3],
        "compensated": [1e16, 1.0, 1e-16, BIG * 5, -1e16],
        "past 2**63 in floats": [0.5, HUGE * 3, 0.25],
    }
    for name, items in cases.items():
        report(f"float {name}: {sum(items)!r}")
    return True


# f-strings whose replacement fields carry their own text (`=`), compiled
# from a string: the lexer's path guest/patch-cpython.py replaces. Each
# source is evaluated with x = 7, y = "ab", w = 6; the expected values are
# the language's.
FSTRING_CASES = [
    ('f"{x=}"', "x=7"),
    ('f"{x = }"', "x = 7"),
    ('f"{x=!r}"', "x=7"),
    ('f"{y=}"', "y='ab'"),
    ('f"{y=!s}"', "y=ab"),
    ('f"{x=:>4}"', "x=   7"),
    ('f"{y=!r:^8}"', "y=  'ab'  "),
    ('f"{x=:{w}}"', "x=     7"),
    ('f"{x+1=}{x*2=}"', "x+1=8x*2=14"),
    ('f"{x != 3 = }"', "x != 3 = True"),
    ('f"{x!=3=}"', "x!=3=True"),
    ("f\"{ {'a': x}['a'] = }\"", " {'a': x}['a'] = 7"),
    ('f"{(z := x + 1)=}"', "(z := x + 1)=8"),
    ("f\"{'{'=}\"", "'{'='{'"),
    ('f"{f\'{x=}\'=}"', "f'{x=}'='x=7'"),
    ('f"{x=}" f"{y=}"', "x=7y='ab'"),
    ('f"""{\nx\n=}"""', "\nx\n=7"),
    ('f"""{x  # seven\n=}"""', "x  \n=7"),
    ('f"""{x=:\n>3}"""', "x=\n\n7"),
    ('f"{x}" * 2 + f"{y=}"', "77y='ab'"),
    ('"\\u00e9" + f"{y=}" + f"{x=}"', "\u00e9y='ab'x=7"),
    ("f\"{'\u00e9t\u00e9'=}\"", "'\u00e9t\u00e9'='\u00e9t\u00e9'"),
]


def check_fstrings(report):
    ok = True
    env = {"x": 7, "y": "ab", "w": 6}
    for source, want in FSTRING_CASES:
        for kind, text in (("str", source), ("bytes", source.encode())):
            got = eval(compile(text, "<fstring>", "eval"), dict(env))
            good = got == want
            ok &= good
            report(f"fstring {source!r} from {kind}: {got!r} {'ok' if good else 'WRONG, want ' + repr(want)}")
    # The same fields far into a module, after many others: the positions
    # the lexer measures are from the source's end, so they must hold
    # wherever a field sits.
    module = "".join(f"v{i} = f'{{x + {i} = }}{{y=}}'\n" for i in range(2000))
    names = dict(env)
    exec(compile(module, "<module>", "exec"), names)
    good = all(names[f"v{i}"] == f"x + {i} = {7 + i}y='ab'" for i in range(2000))
    ok &= good
    report(f"fstring: 2000 fields in one module: {names['v1999']!r} {'ok' if good else 'WRONG'}")
    # CPython's lexer copied the whole rest of a source at each field's `{`;
    # the edit copies the field's own text. A field at the start of a 4 MB
    # source: compile() then needs the source and its translated copy, not
    # a third copy of its rest.
    filler = "# " + "." * 77 + "\n"
    source = "a = f'{x=}'\n" + filler * (4 * 1024 * 1024 // len(filler))
    tracemalloc.start()
    compile(source, "<big>", "exec")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    good = peak < 1.5 * len(source)
    ok &= good
    report(f"fstring: compile() of a 4 MB source, a field at its start: "
           f"{'no copy of its rest' if good else f'peak {peak} bytes, WRONG'}")
    return ok


def main():
    lines = []
    ok = check_ints(lines.append) & check_floats(lines.append)
    ok &= check_fstrings(lines.append)
    for line in lines:
        print(line)
    if not ok:
        print(f"{WHO}: a case was wrong", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
