"""What guest/patch-cpython.py edits in the guest's CPython, checked.

Run inside eryx and under the native build python by guest_edits.sh. Each
side checks itself against a reference that does not use the edited code
(exact sums by repeated `+`, a range's items by a `while` loop), prints one
line per case, and exits non-zero on a mismatch; the script then compares
the two sides' lines, so that the cases without an independent reference
(sum()'s compensated float path, which iterator a range gives) are held to
what native CPython, where `long` is 64 bits, computes.
"""
import functools
import operator
import pickle
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


RANGES = {
    "small": (0, 10, 1),
    "across 2**31": (BIG - 3, BIG + 3, 1),
    "timestamps": (1_700_000_000_000, 1_700_000_600_000, 60_000),
    "down across -2**31": (-BIG + 2, -BIG - 3, -1),
    "big step": (0, 2**40, 2**37 + 1),
    "down from past 2**31": (BIG * 3, BIG, -(BIG // 3)),
    "empty past 2**31": (BIG * 2, BIG, 1),
    "up to 2**63": (HUGE - 4, HUGE - 1, 1),
    "across 2**63": (HUGE - 2, HUGE + 2, 1),
    "across -2**63": (-HUGE + 1, -HUGE - 2, -1),
    "step past 2**63": (0, HUGE * 4, HUGE + 1),
}


def items_of(start, stop, step):
    """A range's items without range()."""
    out, x = [], start
    while (x < stop) if step > 0 else (x > stop):
        out.append(x)
        x += step
    return out


def looped(r):
    """Through the interpreter's FOR_ITER_RANGE once the loop specialises."""
    out = []
    for x in r:
        out.append(x)
    return out


def check_ranges(report):
    ok = True
    for name, (start, stop, step) in RANGES.items():
        r = range(start, stop, step)
        want = items_of(start, stop, step)
        views = {
            "for": looped(r),
            "list": list(r),
            "reversed": list(reversed(r))[::-1],
            "indexed": [r[i] for i in range(len(r))],
        }
        good = all(v == want for v in views.values()) and len(r) == len(want)
        good &= all(x in r for x in want) and (stop in r) is False
        good &= all(r.index(x) == i for i, x in enumerate(want))
        it = iter(r)
        next(it, None)
        rest = list(pickle.loads(pickle.dumps(it)))
        good &= rest == want[1:]
        ok &= good
        kinds = type(iter(r)).__name__, type(reversed(r)).__name__
        report(f"range {name}: len {len(r)}, {kinds}, "
               f"hint {iter(r).__length_hint__()}, "
               f"{want[:2]!r}..{want[-1:]!r} {'ok' if good else 'WRONG'}")
    # An iterator set part of the way through, and past its end.
    it = iter(range(BIG, BIG + 10))
    it.__setstate__(7)
    got = list(it)
    it.__setstate__(100)
    got += list(it)
    ok &= got == [BIG + 7, BIG + 8, BIG + 9]
    report(f"range __setstate__ past 2**31: {got!r}")
    return ok


def main():
    lines = []
    ok = check_ints(lines.append) & check_floats(lines.append)
    ok &= check_ranges(lines.append)
    for line in lines:
        print(line)
    if not ok:
        print(f"{WHO}: a sum or a range was wrong", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
