"""Sorting with key functions: lambdas, operator.itemgetter/attrgetter,
tuple keys, functools.cmp_to_key, reverse and stable multi-pass sorts,
heapq with keys, bisect with key= (3.10+)."""
import bisect
import functools
import heapq
import json
import operator
import sys
import time

NAME = "sort_keys"
DEFAULT_N = 7


class Person:
    __slots__ = ("first", "last", "age", "city")

    def __init__(self, first, last, age, city):
        self.first, self.last, self.age, self.city = first, last, age, city


def compare_len_then_text(a, b):
    if len(a) != len(b):
        return len(a) - len(b)
    return (a > b) - (a < b)


def work(n):
    state = 12345
    people = []
    for i in range(12000):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        people.append(Person("f%d" % (state % 977), "l%d" % (state % 313),
                             state % 90, ("Oslo", "Lima", "Pune", "Kyiv")[state % 4]))
    rows = [(p.last, p.first, p.age) for p in people]
    texts = ["%x" % (i * 2654435761 % 99991) for i in range(12000)]
    check = 0
    for _ in range(n):
        a = sorted(people, key=operator.attrgetter("city", "age"))
        b = sorted(rows, key=operator.itemgetter(2, 0))
        c = sorted(people, key=lambda p: (-p.age, p.last, p.first))
        d = sorted(texts, key=functools.cmp_to_key(compare_len_then_text))
        e = list(rows)
        e.sort(key=lambda r: r[1])
        e.sort(key=lambda r: r[2], reverse=True)
        f = heapq.nlargest(50, people, key=lambda p: p.age * 1000 + len(p.last))
        ages = sorted(p.age for p in people)
        g = sum(bisect.bisect_left(a, k, key=operator.attrgetter("age")) for k in (30, 60))
        check += (a[0].age + b[-1][2] + c[0].age + len(d[0]) + e[0][2] + f[0].age
                  + ages[len(ages) // 2] + g)
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
