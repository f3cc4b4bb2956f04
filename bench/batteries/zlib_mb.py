"""zlib: compress MB megabytes of text-like data (level 6, the default) and
decompress it again. Both times are reported, and their sum as "seconds".

usage: zlib_mb.py MB REPEATS
The data is words drawn by a seeded generator (4 MB of them, repeated:
deflate's window is 32 KB, so the repetition gains it nothing); making it
is not timed."""
import json
import random
import sys
import time
import zlib

mb = int(sys.argv[1]) if len(sys.argv) > 1 else 50
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
rng = random.Random(1)
words = ["".join(rng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(rng.randint(2, 9)))
         for _ in range(2000)]
block = " ".join(rng.choices(words, k=700000)).encode()[: 4 << 20]
size = mb << 20
data = (block * (size // len(block) + 1))[:size]
best = None
for _ in range(repeats):
    t0 = time.perf_counter()
    packed = zlib.compress(data)
    t1 = time.perf_counter()
    out = zlib.decompress(packed)
    t2 = time.perf_counter()
    if out != data:
        sys.exit("zlib_mb: round trip failed")
    if best is None or t2 - t0 < best[0]:
        best = (t2 - t0, t1 - t0, t2 - t1)
    del out
print(json.dumps({"kernel": "zlib", "seconds": best[0], "compress": best[1],
                  "decompress": best[2], "n": mb, "repeats": repeats, "packed": len(packed),
                  "zlib": zlib.ZLIB_RUNTIME_VERSION, "check": f"{zlib.crc32(data):08x}"}))
