"""What guest/patch-cpython.py edits in the guest's CPython (sum(), the
f-string lexer, the substring searches' filters, the
ASCII checks' word size), its error paths, and the libc
functions guest/host_string.c replaces (memchr, memrchr, memcmp, which ask
the host past 32 bytes), checked.

Run inside eryx and under the native build python by guest_edits.sh. Each
side checks itself against a reference that does not use the edited code
(exact sums by repeated `+`; the text of f-string debug expressions, as the
language defines it), prints one line per case, and exits non-zero on a
mismatch; the script then compares the two sides' lines, so that the cases
without an independent reference (sum()'s compensated float path) are held
to what native CPython, where `long` is 64 bits, computes.
"""
import collections
import functools
import itertools
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


def ref_find(seq, x, start, end, backward=False):
    """find() one item at a time."""
    order = range(end - 1, start - 1, -1) if backward else range(start, end)
    for i in order:
        if seq[i] == x:
            return i
    return -1


def ref_cmp(a, b):
    for x, y in zip(a, b):
        if x != y:
            return (x > y) - (x < y)
    return (len(a) > len(b)) - (len(a) < len(b))


SCAN_LENGTHS = list(range(0, 70)) + [100, 255, 256, 1000, 4099, 100_003]


def scan_subjects(n):
    """Sequences of n bytes, with the needle absent, first, last, in the
    middle, twice, and bytes with the high bit (c is an unsigned char)."""
    base = bytes((i * 7 + 1) % 251 + 1 for i in range(n))   # no 0x00, no 0xff
    yield "absent", base, 0
    for where in {0, n // 2, n - 1} if n else ():
        for needle in (0x00, 0x80, 0xFF):
            b = bytearray(base)
            b[where] = needle
            if where + 3 < n:
                b[where + 3] = needle
            yield f"at {where}", bytes(b), needle


def check_scans(report):
    """bytes and str find/rfind/in/index/partition (memchr, memrchr past
    CPython's own cut-off of 15) and ordering (memcmp), against one-at-a-time
    references, over lengths on both sides of the 32-byte cut-off and start
    offsets that move the scan's alignment."""
    ok, cases = True, {"memchr": 0, "memrchr": 0, "memcmp": 0, "str": 0}

    def expect(kind, got, want):
        nonlocal ok
        cases[kind] += 1
        if got != want:
            ok = False
            report(f"scan {kind}: {got!r} WRONG, want {want!r}")

    for n in SCAN_LENGTHS:
        for name, b, needle in scan_subjects(n):
            x = bytes([needle])
            for start in sorted({0, 1, 3, 8, n // 3}):
                expect("memchr", b.find(x, start), ref_find(b, needle, start, n))
                expect("memrchr", b.rfind(x, start), ref_find(b, needle, start, n, True))
            expect("memchr", x in b, ref_find(b, needle, 0, n) >= 0)
            expect("memchr", b.partition(x)[0], b[:max(ref_find(b, needle, 0, n), 0)]
                   if ref_find(b, needle, 0, n) >= 0 else b)
            s = b.decode("latin-1")
            c = chr(needle)
            expect("str", s.find(c), ref_find(s, c, 0, n))
            expect("str", s.rfind(c), ref_find(s, c, 0, n, True))
            # Two-byte and four-byte strings search their units' low bytes.
            for wide in ("\u0100", "\U00010000"):
                w = s + wide
                expect("str", w.find(c), ref_find(w, c, 0, n + 1))
                expect("str", w.find(wide), n)
        # memcmp: equal, then one byte different at each end and the middle,
        # either way round, and prefixes.
        a = bytes((i * 13 + 5) % 256 for i in range(n))
        expect("memcmp", a == bytes(a), True)
        for where in {0, n // 2, n - 1} if n else ():
            for delta in (1, -1):
                b = bytearray(a)
                b[where] = (b[where] + delta) % 256
                b = bytes(b)
                expect("memcmp", (a < b) - (a > b), -ref_cmp(a, b))
                expect("memcmp", a == b, False)
                expect("memcmp", a.decode("latin-1") < b.decode("latin-1"), ref_cmp(a, b) < 0)
        expect("memcmp", (a[:-1] < a, a < a[:-1]) if n else (False, False), (n > 0, False))
    for kind, count in cases.items():
        report(f"scan {kind}: {count} cases {'ok' if ok else 'checked'}")
    return ok


def ref_count(text, word):
    """Non-overlapping occurrences, one position at a time."""
    count = i = 0
    while i + len(word) <= len(text):
        if text[i:i + len(word)] == word:
            count, i = count + 1, i + len(word)
        else:
            i += 1
    return count


def bloom_texts():
    """Haystacks whose characters collide in a 32-bit filter (32 apart) or a
    64-bit one (64 apart), in 1-, 2- and 4-byte strings, at lengths that
    take each of CPython's search paths (default_find, the two-way search,
    adaptive_find)."""
    unit = "info error Error rOr wArN x\x01A\x81"
    for n in (50, 3000, 40000):
        base = (unit * (n // len(unit) + 1))[:n]
        yield f"ascii {n}", base + "ERROR!"
        yield f"latin-1 {n}", base.replace("x", "\xe9") + "\xe9RROR"
        yield f"ucs2 {n}", base.replace("x", "\u0141") + "\u0141ERROR"
        yield f"ucs4 {n}", base.replace("x", "\U00010041") + "\U00010041ERROR"


BLOOM_NEEDLES = ["ERROR", "error", "Er", "rOr", "ERROR!", "A\x81", "\x01A",
                 "wArN x", "\u0141ERROR", "\U00010041ERROR", "\xe9RROR",
                 "not there at all, not at all", "r Error rOr wArN"]


def check_bloom(report):
    """Substring searches and strip(), whose skip filters the guest widens
    to 64 bits, against one-position-at-a-time references."""
    ok, cases = True, 0
    for name, text in bloom_texts():
        for needle in BLOOM_NEEDLES:
            at = [i for i in range(len(text) - len(needle) + 1)
                  if text[i:i + len(needle)] == needle]
            want = (at[0] if at else -1, at[-1] if at else -1,
                    ref_count(text, needle))
            got = (text.find(needle), text.rfind(needle), text.count(needle))
            good = got == want
            # The same on bytes, where characters are bytes.
            if max(map(ord, text + needle)) < 256:
                b, d = needle.encode("latin-1"), text.encode("latin-1")
                good &= (d.find(b), d.rfind(b), d.count(b)) == want
            parts = text.split(needle)
            good &= needle.join(parts) == text and len(parts) == want[2] + 1
            good &= text.replace(needle, "") == "".join(parts)
            cases += 1
            if not good:
                ok = False
                report(f"bloom {name} {needle!r}: {got!r} WRONG, want {want!r}")
        for chars in ("ERROR!", "\x01A\x81", "info", "\U00010041ERROR"):
            strip = text.strip(chars)
            i, j = 0, len(text)
            while i < j and text[i] in chars:
                i += 1
            while j > i and text[j - 1] in chars:
                j -= 1
            cases += 1
            if strip != text[i:j]:
                ok = False
                report(f"bloom {name} strip({chars!r}) WRONG")
    report(f"bloom: {cases} searches and strips {'ok' if ok else 'checked'}")
    return ok


ASCII_LENGTHS = list(range(0, 42)) + [63, 64, 65, 1000]


def check_ascii(report):
    """UTF-8 and Latin-1 decoding and isascii(), whose ASCII checks the guest
    makes 32 and 8 bytes at a time: for every length up to 41 and a few
    longer, every start offset within a word, and no non-ASCII byte or one
    at the edges of the words and of the 32-byte blocks, the decoded text,
    the error's position and the answer against one-byte-at-a-time
    references."""
    import codecs
    ok, cases = True, 0

    def expect(what, got, want):
        nonlocal ok, cases
        cases += 1
        if got != want:
            ok = False
            report(f"ascii {what}: {got!r} WRONG, want {want!r}")

    for n in ASCII_LENGTHS:
        base = bytes(32 + (i * 7) % 95 for i in range(n))
        spots = {0, 1, 7, 8, 9, 24, 31, 32, 33, 40, n // 2, n - 2, n - 1}
        for bad in [None] + sorted(spots & set(range(n))):
            for byte in (0x80, 0xFF, 0xC3):
                data = bytearray(base)
                if bad is not None:
                    data[bad] = byte
                for offset in range(8):
                    buf = bytearray(8) + data
                    del buf[:8 + offset]        # moves the start, not the bytes
                    view = bytes(buf)
                    want_ascii = all(c < 128 for c in view)
                    expect("isascii", (view.isascii(), buf.isascii()), (want_ascii, want_ascii))
                    latin = codecs.latin_1_decode(memoryview(data)[offset:])[0]
                    expect("latin-1", latin, "".join(map(chr, view)))
                    expect("latin-1 isascii", latin.isascii(), want_ascii)
                    try:
                        text = codecs.utf_8_decode(memoryview(data)[offset:], "strict", True)[0]
                        where = None
                    except UnicodeDecodeError as e:
                        text, where = None, e.start
                    if want_ascii:
                        expect("utf-8", (text, where), ("".join(map(chr, view)), None))
                    else:
                        first = next(i for i, c in enumerate(view) if c >= 128)
                        # 0xC3 then an ASCII byte, 0x80 and 0xFF: all invalid.
                        expect("utf-8 error", where, first)
                if bad is None:
                    break
    report(f"ascii: {cases} decodes and checks {'ok' if ok else 'checked'}")
    return ok


class NotAnIterator:
    def __iter__(self):
        return 5


class Boom(Exception):
    pass


class InitReturns:
    def __init__(self):
        return 1


class Plain:
    pass


def raising(n):
    yield from range(n)
    raise Boom("at the end")


def outcome(thunk):
    try:
        return ("ok", thunk())
    except Exception as e:       # the error is the case's result
        return (type(e).__name__, str(e))


ERROR_CASES = [
    ("1 + 'a'", lambda: 1 + "a",
     ("TypeError", "unsupported operand type(s) for +: 'int' and 'str'")),
    ("[] * 1.5", lambda: [] * 1.5,
     ("TypeError", "can't multiply sequence by non-int of type 'float'")),
    ("None / 2", lambda: None / 2,
     ("TypeError", "unsupported operand type(s) for /: 'NoneType' and 'int'")),
    ("{} & 1", lambda: {} & 1,
     ("TypeError", "unsupported operand type(s) for &: 'dict' and 'int'")),
    ("x -= None", lambda: operator.isub(1.5, None),
     ("TypeError", "unsupported operand type(s) for -=: 'float' and 'NoneType'")),
    ("pow(None, 2)", lambda: pow(None, 2),
     ("TypeError", "unsupported operand type(s) for ** or pow(): 'NoneType' and 'int'")),
    ("-'a'", lambda: -"a", ("TypeError", "bad operand type for unary -: 'str'")),
    ("abs('a')", lambda: abs("a"), ("TypeError", "bad operand type for abs(): 'str'")),
    ("len(5)", lambda: len(5), ("TypeError", "object of type 'int' has no len()")),
    ("hash([])", lambda: hash([]), ("TypeError", "unhashable type: 'list'")),
    ("iter(5)", lambda: iter(5), ("TypeError", "'int' object is not iterable")),
    ("iter() of a non-iterator", lambda: iter(NotAnIterator()),
     ("TypeError", "iter() returned non-iterator of type 'int'")),
    ("5[0]", lambda: operator.getitem(5, 0),
     ("TypeError", "'int' object is not subscriptable")),
    ("[1][2**100]", lambda: [1][2**100],
     ("IndexError", "cannot fit 'int' into an index-sized integer")),
    ("'ab' * 2**100", lambda: "ab" * 2**100,
     ("OverflowError", "cannot fit 'int' into an index-sized integer")),
    ("__init__ returning 1", lambda: InitReturns(),
     ("TypeError", "__init__() should return None, not 'int'")),
    ("Plain(1)", lambda: Plain(1), ("TypeError", "Plain() takes no arguments")),
    ("Plain().__init__(1)", lambda: Plain().__init__(1),
     ("TypeError", "Plain.__init__() takes exactly one argument (the instance to initialize)")),
    ("2 + 3", lambda: 2 + 3, ("ok", 5)),
    ("hash('')", lambda: hash(""), ("ok", 0)),
    ("zip strict, shorter", lambda: list(zip([1, 2], [1], strict=True)),
     ("ValueError", "zip() argument 2 is shorter than argument 1")),
    ("zip strict, third shorter", lambda: list(zip([1, 2], [3, 4], [5], strict=True)),
     ("ValueError", "zip() argument 3 is shorter than arguments 1-2")),
    ("zip strict, longer", lambda: list(zip([1], [1, 2], strict=True)),
     ("ValueError", "zip() argument 2 is longer than argument 1")),
    ("zip strict, third longer", lambda: list(zip([1], [2], [3, 4], strict=True)),
     ("ValueError", "zip() argument 3 is longer than arguments 1-2")),
    ("zip strict, equal", lambda: list(zip("ab", [1, 2], strict=True)),
     ("ok", [("a", 1), ("b", 2)])),
    ("zip strict, first raises", lambda: list(zip(raising(1), [1, 2], strict=True)),
     ("Boom", "at the end")),
    ("zip strict, second raises", lambda: list(zip([1], raising(0), strict=True)),
     ("Boom", "at the end")),
    # A deque of length 0 drops each tuple at once, so zip_next finds its
    # result tuple unshared and refills it in place (its first loop).
    ("zip strict, shorter after a reused tuple",
     lambda: collections.deque(zip(range(5), range(4), strict=True), maxlen=0),
     ("ValueError", "zip() argument 2 is shorter than argument 1")),
    ("zip, not strict", lambda: list(zip([1, 2], [1])), ("ok", [(1, 1)])),
    ("accumulate", lambda: list(itertools.accumulate([1, 2, 3])), ("ok", [1, 3, 6])),
    ("accumulate(mul)", lambda: list(itertools.accumulate([1, 2, 3, 4], operator.mul)),
     ("ok", [1, 2, 6, 24])),
    ("accumulate(func, initial)",
     lambda: list(itertools.accumulate("bc", lambda a, b: b + a, initial="a")),
     ("ok", ["a", "ba", "cba"])),
    ("accumulate(func) raising",
     lambda: list(itertools.accumulate([1, 0], operator.truediv)),
     ("ZeroDivisionError", "division by zero")),
    ("accumulate of mixed types", lambda: list(itertools.accumulate([1, "a"])),
     ("TypeError", "unsupported operand type(s) for +: 'int' and 'str'")),
]


def check_errors(report):
    """Error paths of the guest's CPython that an edit would move (one
    was built and measured: docs/performance.md, "Error paths out of line:
    measured, not taken"): the PyNumber_* operations' type errors, len(),
    hash(), iter(), an index past Py_ssize_t, object's __init__ and
    __new__ and a class's __init__, zip(strict=True)'s length check,
    accumulate()'s given function; every call goes through the C call's
    result check. Each case's result or exception and message against the
    text CPython 3.13 gives."""
    ok = True
    for what, thunk, want in ERROR_CASES:
        got = outcome(thunk)
        if got != want:
            ok = False
            report(f"error path {what}: {got!r} WRONG, want {want!r}")
    report(f"error paths: {len(ERROR_CASES)} cases {'ok' if ok else 'checked'}")
    return ok


def main():
    lines = []
    ok = check_ints(lines.append) & check_floats(lines.append)
    ok &= check_fstrings(lines.append)
    ok &= check_scans(lines.append)
    ok &= check_bloom(lines.append)
    ok &= check_ascii(lines.append)
    ok &= check_errors(lines.append)
    for line in lines:
        print(line)
    if not ok:
        print(f"{WHO}: a case was wrong", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
