"""Class-heavy dispatch: an expression tree of small classes with
overridden methods, super() calls, __slots__, operator overloading and
a visitor that dispatches on type names."""
import json
import sys
import time

NAME = "class_dispatch"
DEFAULT_N = 11


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


def work(n):
    tree = build(11, 0)
    check = tree.accept(Depth())
    for rep in range(n):
        for x in range(25):
            check = (check + tree.evaluate({"x": x + rep})) % 1000003
        purse = Money(0)
        for i in range(20000):
            purse = purse + Money(i % 100) * 2
        distinct = {Money(i % 500) for i in range(20000)}
        check += purse.cents % 1000 + len(distinct) + min(distinct).cents
    return check


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_N
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    best = None
    check = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        check = work(n)
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    print(json.dumps({"kernel": NAME, "seconds": best, "n": n,
                      "repeats": repeats, "check": check}))


if __name__ == "__main__":
    main()
