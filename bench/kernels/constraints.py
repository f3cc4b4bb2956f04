"""An object-oriented constraint solver: variables with domains, constraint
objects with virtual dispatch, forward checking and backtracking search.
Solves 8- and 12-queens and a 3x3 grid of distinct digits whose rows and
columns sum to 15."""
import json
import sys
import time

NAME = "constraints"
DEFAULT_N = 12


class Variable:
    __slots__ = ("name", "domain", "constraints")

    def __init__(self, name, domain):
        self.name = name
        self.domain = list(domain)
        self.constraints = []

    def __repr__(self):
        return "Variable(%r)" % (self.name,)


class Constraint:
    def __init__(self, *variables):
        self.variables = variables
        for v in variables:
            v.constraints.append(self)

    def satisfied(self, assignment):
        raise NotImplementedError

    def others(self, var):
        return [v for v in self.variables if v is not var]


class NotEqual(Constraint):
    def __init__(self, a, b, offset=0):
        Constraint.__init__(self, a, b)
        self.offset = offset

    def satisfied(self, assignment):
        a, b = self.variables
        if a.name in assignment and b.name in assignment:
            x = assignment[a.name]
            y = assignment[b.name]
            return x != y and abs(x - y) != self.offset
        return True

    def supports(self, var, value, other, ovalue):
        return value != ovalue and abs(value - ovalue) != self.offset


class SumEquals(Constraint):
    def __init__(self, total, *variables):
        Constraint.__init__(self, *variables)
        self.total = total

    def satisfied(self, assignment):
        s = 0
        missing = 0
        for v in self.variables:
            if v.name in assignment:
                s += assignment[v.name]
            else:
                missing += 1
        if missing:
            return s + missing <= self.total  # every domain value is >= 1
        return s == self.total

    def supports(self, var, value, other, ovalue):
        return True


class AllDifferent(Constraint):
    def satisfied(self, assignment):
        seen = set()
        for v in self.variables:
            if v.name in assignment:
                x = assignment[v.name]
                if x in seen:
                    return False
                seen.add(x)
        return True

    def supports(self, var, value, other, ovalue):
        return value != ovalue


class Problem:
    def __init__(self):
        self.variables = []
        self.constraints = []
        self.nodes = 0

    def var(self, name, domain):
        v = Variable(name, domain)
        self.variables.append(v)
        return v

    def add(self, c):
        self.constraints.append(c)
        return c

    def consistent(self, var, assignment):
        for c in var.constraints:
            if not c.satisfied(assignment):
                return False
        return True

    def forward_check(self, var, value, domains):
        pruned = []
        for c in var.constraints:
            for other in c.others(var):
                dom = domains[other.name]
                if other.name in self.assigned:
                    continue
                keep = [ov for ov in dom if c.supports(var, value, other, ov)]
                if len(keep) != len(dom):
                    pruned.append((other.name, dom))
                    domains[other.name] = keep
                    if not keep:
                        return pruned, False
        return pruned, True

    def solve(self, limit=1):
        self.assigned = {}
        domains = {v.name: list(v.domain) for v in self.variables}
        solutions = []
        self._search(domains, solutions, limit)
        return solutions

    def _search(self, domains, solutions, limit):
        if len(self.assigned) == len(self.variables):
            solutions.append(dict(self.assigned))
            return len(solutions) >= limit
        # most constrained variable first
        best = None
        for v in self.variables:
            if v.name not in self.assigned:
                if best is None or len(domains[v.name]) < len(domains[best.name]):
                    best = v
        for value in domains[best.name]:
            self.nodes += 1
            self.assigned[best.name] = value
            if self.consistent(best, self.assigned):
                pruned, ok = self.forward_check(best, value, domains)
                if ok and self._search(domains, solutions, limit):
                    return True
                for name, dom in pruned:
                    domains[name] = dom
            del self.assigned[best.name]
        return False


def queens(n, limit):
    p = Problem()
    qs = [p.var("q%d" % i, range(n)) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            p.add(NotEqual(qs[i], qs[j], j - i))
    sols = p.solve(limit)
    return len(sols), p.nodes


def magic_rows():
    # a 3x3 grid with all cells different and every row summing to 15
    p = Problem()
    cells = [p.var("c%d" % i, range(1, 10)) for i in range(9)]
    p.add(AllDifferent(*cells))
    for r in range(3):
        p.add(SumEquals(15, *cells[3 * r:3 * r + 3]))
    for c in range(3):
        p.add(SumEquals(15, cells[c], cells[c + 3], cells[c + 6]))
    sols = p.solve(50)
    return len(sols), p.nodes


def work(n):
    r = None
    for _ in range(n):
        r = [queens(8, 92), queens(12, 1), magic_rows()]
    return r


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
