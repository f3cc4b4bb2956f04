"""The training run for profile-guided optimisation of the guest
(guest/build.sh, docs/performance.md): a few seconds of the kind of Python
our users run (data shuffling, text, JSON, regular expressions, small
classes, async code), so that the C compiler learns which paths of the
interpreter are hot. Deliberately not the benchmark kernels (bench/kernels/):
a profile trained on the benchmarks would flatter them.

Run by guest/pgo_train.sh with the instrumented build; prints one line."""

import asyncio
import collections
import dataclasses
import datetime
import decimal
import functools
import itertools
import json
import math
import random
import re
import string
import textwrap

rng = random.Random(7)
checks = []


def records(n):
    for i in range(n):
        yield {
            "id": i,
            "name": "".join(rng.choice(string.ascii_lowercase) for _ in range(8)),
            "score": rng.random() * 100,
            "tags": [rng.choice(["a", "b", "c", "d"]) for _ in range(rng.randrange(4))],
            "when": (datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 365)).isoformat(),
        }


def data_work():
    rows = list(records(3000))
    text = json.dumps(rows, sort_keys=True)
    back = json.loads(text)
    by_tag = collections.defaultdict(list)
    for r in back:
        for t in r["tags"]:
            by_tag[t].append(r["score"])
    summary = {t: (len(v), sum(v) / len(v)) for t, v in sorted(by_tag.items())}
    top = sorted(back, key=lambda r: (-r["score"], r["name"]))[:10]
    counts = collections.Counter(r["when"][:7] for r in back)
    checks.append(len(text) + len(summary) + len(top) + len(counts))


LOG = re.compile(r"(?P<ip>\d+\.\d+\.\d+\.\d+) - - \[(?P<ts>[^\]]+)\] "
                 r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.[01]" (?P<status>\d{3}) (?P<size>\d+)')


def text_work():
    lines = []
    for i in range(4000):
        ip = ".".join(str(rng.randrange(256)) for _ in range(4))
        path = "/" + "/".join(rng.choice(["api", "v1", "users", "items", "x"]) for _ in range(3))
        lines.append('%s - - [27/Nov/2026:10:%02d:%02d +0000] "%s %s HTTP/1.1" %d %d'
                     % (ip, i % 60, i % 60, rng.choice(["GET", "POST"]), path,
                        rng.choice([200, 404, 500]), rng.randrange(10000)))
    status = collections.Counter()
    for m in map(LOG.match, lines):
        if m:
            status[m["status"]] += int(m["size"])
    words = re.findall(r"[a-z]+", " ".join(lines).lower())
    freq = collections.Counter(words).most_common(5)
    wrapped = textwrap.fill(" ".join(w for w, _ in freq) * 50, width=40)
    snake = [re.sub(r"(?<!^)(?=[A-Z])", "_", s).lower()
             for s in ("HttpRequestHandler", "JSONDecoder", "AsyncTaskGroup") * 300]
    out = "\n".join(f"{k:>5}: {v:,}" for k, v in sorted(status.items()))
    checks.append(len(out) + len(wrapped) + len(snake) + sum(n for _, n in freq))


@dataclasses.dataclass(order=True)
class Item:
    priority: int
    name: str = dataclasses.field(compare=False)
    cost: decimal.Decimal = dataclasses.field(compare=False, default=decimal.Decimal("0"))


class Shape:
    def area(self):
        raise NotImplementedError


class Rect(Shape):
    def __init__(self, w, h):
        self.w, self.h = w, h

    def area(self):
        return self.w * self.h


class Circle(Shape):
    def __init__(self, r):
        self.r = r

    @property
    def diameter(self):
        return 2 * self.r

    def area(self):
        return math.pi * self.r ** 2


@functools.lru_cache(maxsize=None)
def partitions(n, k):
    if n == 0:
        return 1
    if n < 0 or k == 0:
        return 0
    return partitions(n - k, k) + partitions(n, k - 1)


def object_work():
    items = sorted(Item(rng.randrange(100), "item%d" % i, decimal.Decimal(i) / 7)
                   for i in range(3000))
    total = sum((it.cost for it in items), decimal.Decimal(0))
    shapes = [Rect(i, i + 1) if i % 2 else Circle(i) for i in range(5000)]
    area = sum(s.area() for s in shapes)
    errors = 0
    for i in range(3000):
        try:
            if i % 3 == 0:
                raise ValueError(i)
            {}["missing"]
        except ValueError:
            errors += 1
        except KeyError:
            errors += 2
    combos = sum(1 for c in itertools.combinations(range(14), 4) if sum(c) % 3 == 0)
    big = math.factorial(300) // math.factorial(290)
    checks.append(int(total) + int(area) % 1000 + errors + combos + partitions(60, 60)
                  + big % 1000)


async def fetch(i):
    await asyncio.sleep(0)
    return i * i


async def async_work():
    total = 0
    for _ in range(20):
        total += sum(await asyncio.gather(*(fetch(i) for i in range(50))))
    queue = asyncio.Queue()
    for i in range(500):
        queue.put_nowait(i)
    while not queue.empty():
        total += await queue.get()
    checks.append(total)


for _ in range(6):
    data_work()
    text_work()
    object_work()
    await async_work()
print("pgo training:", sum(checks))
