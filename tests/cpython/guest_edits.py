"""What guest/patch-cpython.py edits in the guest's CPython, checked.

Run inside eryx and under the native build python by guest_edits.sh. Each
side checks itself against a reference that does not use the edited code
(exact sums by repeated `+`), prints one line per case, and exits non-zero
on a mismatch; the script then compares the two sides' lines, so that the
cases without an independent reference (sum()'s compensated float path) are
held to what native CPython, where `long` is 64 bits, computes.
"""
import functools
import operator
import sys

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


def main():
    lines = []
    ok = check_ints(lines.append) & check_floats(lines.append)
    for line in lines:
        print(line)
    if not ok:
        print(f"{WHO}: a sum was wrong", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
