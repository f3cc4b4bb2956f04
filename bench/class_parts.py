"""class_dispatch's parts timed alone, and the calls from C into a class's
Python methods they are made of (docs/performance.md, "class_dispatch
taken apart"): a class built by calling it (`__init__` through
`slot_tp_init`), `hash()` and `==` through `slot_tp_hash` and
`slot_tp_richcompare`, set membership through both, with sets and lists
of ints and strings as controls. A per-operation time is
about a millisecond: on a noisy host, use 15 rounds or more.

usage: python3 bench/class_parts.py [--rounds R] NAME=COMMAND ...
  e.g. python3 bench/class_parts.py native=$(bench/build-native-pgo.sh --path) \\
           eryx=build/bin/eryx
Runs this file under each COMMAND in turn (`--timeout 0` added to commands
ending in `eryx`), R rounds with the order rotated, and prints a Markdown
table: per case the best of the rounds of each runner's in-process best of
3, in microseconds per operation, and its ratio to the first runner."""

import sys


# The classes, build() and the parts of work() are
# bench/kernels/class_dispatch.py's: copied, since a sandbox sees only the
# file it runs.
class Node:
    __slots__ = ()

    def evaluate(self, env):
        raise TypeError(type(self).__name__)

    def accept(self, visitor):
        return getattr(visitor, "visit_" + type(self).__name__)(self)


class Const(Node):
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def evaluate(self, env):
        return self.value


class Name(Node):
    __slots__ = ("ident",)

    def __init__(self, ident):
        self.ident = ident

    def evaluate(self, env):
        return env[self.ident]


class BinOp(Node):
    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right

    def evaluate(self, env):
        return self.combine(self.left.evaluate(env), self.right.evaluate(env))


class Plus(BinOp):
    __slots__ = ()

    def combine(self, a, b):
        return a + b


class Times(BinOp):
    __slots__ = ()

    def combine(self, a, b):
        return a * b


class Wrap(BinOp):
    __slots__ = ("modulus",)

    def __init__(self, left, right, modulus):
        super().__init__(left, right)
        self.modulus = modulus

    def combine(self, a, b):
        return (a - b) % self.modulus


class Depth:
    def visit_Const(self, node):
        return 1

    def visit_Name(self, node):
        return 1

    def _bin(self, node):
        return 1 + max(node.left.accept(self), node.right.accept(self))

    visit_Plus = visit_Times = visit_Wrap = _bin


class Money:
    __slots__ = ("cents",)

    def __init__(self, cents):
        self.cents = cents

    def __add__(self, other):
        return Money(self.cents + other.cents)

    def __mul__(self, k):
        return Money(self.cents * k)

    def __lt__(self, other):
        return self.cents < other.cents

    def __eq__(self, other):
        return isinstance(other, Money) and self.cents == other.cents

    def __hash__(self):
        return hash(self.cents)


def build(depth, i):
    if depth == 0:
        return Name("x") if i % 3 == 0 else Const(i % 11)
    kind = (i + depth) % 3
    left, right = build(depth - 1, 2 * i + 1), build(depth - 1, 2 * i + 2)
    if kind == 0:
        return Plus(left, right)
    if kind == 1:
        return Times(left, right)
    return Wrap(left, right, 1009)


TREE = build(11, 0)
MONIES = [Money(i % 500) for i in range(20000)]
DISTINCT = set(MONIES)
M1, M2 = Money(300), Money(300)
EQUAL_INTS = [i % 500 for i in range(20000)]  # 256..499: equal, not the same
SAME_INTS = list(range(500)) * 40
STRS = [str(i % 500) for i in range(20000)]
XS = range(20000)


def evaluate():
    check = 0
    for x in range(25):
        check = (check + TREE.evaluate({"x": x})) % 1000003
    return check


def purse():
    total = Money(0)
    for i in range(20000):
        total = total + Money(i % 100) * 2
    return total.cents


def hashes():
    for m in MONIES:
        hash(m)


def equals():
    for _ in XS:
        M1 == M2


def member():
    for m in MONIES:
        m in DISTINCT


# name: (operation, how many times one timing repeats it)
CASES = {
    "class_dispatch: 25 tree evaluations": (evaluate, 2),
    "class_dispatch: visitor (accept)": (lambda: TREE.accept(Depth()), 5),
    "class_dispatch: Money sums, 20 000": (purse, 2),
    "class_dispatch: set of 20 000 new Money": (lambda: {Money(i % 500) for i in XS}, 2),
    "class_dispatch: min() of 500 Money": (lambda: min(DISTINCT), 20),
    "tree built, 4 095 nodes (__init__, super())": (lambda: build(11, 0), 2),
    "list of 20 000 new Money (__init__)": (lambda: [Money(i % 500) for i in XS], 2),
    "set of 20 000 ints, 500 distinct (control)": (lambda: {i % 500 for i in XS}, 5),
    "list of 20 000 ints, i % 500 (control)": (lambda: [i % 500 for i in XS], 5),
    "list of 20 000 ints, i + 500 (control)": (lambda: [i + 500 for i in XS], 5),
    "set(20 000 ints), 500 distinct, equal objects": (lambda: set(EQUAL_INTS), 20),
    "set(20 000 ints), 500 distinct, the same objects": (lambda: set(SAME_INTS), 20),
    "set(20 000 strs), 500 distinct, equal objects": (lambda: set(STRS), 20),
    "set(20 000 Money), 500 distinct": (lambda: set(MONIES), 2),
    "hash(Money), 20 000 (__hash__)": (hashes, 2),
    "Money == Money, 20 000 (__eq__)": (equals, 2),
    "Money in set, 20 000 (__hash__, __eq__)": (member, 2),
}


if __name__ == "__main__" and sys.argv[1:] != ["--worker"]:
    # Under --worker, compare.REPEAT_WORKER, appended to this text, runs.
    from compare import REPEAT_WORKER, cases_side_by_side  # bench/compare.py
    cases_side_by_side(__file__, CASES, __doc__.split("\n")[0], REPEAT_WORKER)
