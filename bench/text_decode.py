"""Decoding bytes to text: the ASCII runs that CPython checks a machine word
at a time (a `size_t`, 4 bytes in wasm32 and 8 natively), which
guest/patch-cpython.py makes 32 and 8 bytes at a time in the guest
(docs/performance.md, "Decoding ASCII a 64-bit word at a time"); with a
short decode and an encode, which take other paths, as controls.

usage: python3 bench/text_decode.py [--rounds R] NAME=COMMAND ...
  e.g. python3 bench/text_decode.py native=$(bench/build-native-pgo.sh --path) \\
           eryx=build/bin/eryx
Runs this file under each COMMAND in turn (`--timeout 0` added to commands
ending in `eryx`), R rounds with the order rotated, and prints a Markdown
table: per case the best of the rounds of each runner's in-process best of
3, in microseconds per operation, and its ratio to the first runner."""

import io
import sys

MB = 1 << 20
ASCII = (b"INFO request served in 12 ms; user=alice path=/api/items\n"
         * (MB // 58))
# Mostly ASCII: one 2-byte character per line, so the decoder leaves the
# ASCII-only path at the first one and runs stringlib's UTF-8 decoder, whose
# ASCII runs are checked a word at a time too.
MOSTLY = ("INFO request served in 12 ms; user=zoë path=/api/items\n"
          * (MB // 58)).encode()
LATIN1 = ASCII[:MB // 2]
TEXT = ASCII.decode()
SHORT = ASCII[:40]

# name: (operation, how many times one timing repeats it)
CASES = {
    "bytes.decode(), ASCII, 1 MB": (lambda: ASCII.decode(), 20),
    "bytes.decode(), mostly ASCII UTF-8, 1 MB": (lambda: MOSTLY.decode(), 10),
    "bytes.decode('latin-1'), ASCII, 512 KB": (lambda: LATIN1.decode("latin-1"), 20),
    "bytes.isascii(), 1 MB": (lambda: ASCII.isascii(), 20),
    "TextIOWrapper.read(), ASCII, 1 MB": (
        lambda: io.TextIOWrapper(io.BytesIO(ASCII), encoding="utf-8").read(), 10),
    "bytes.decode(), ASCII, 40 bytes (short)": (lambda: SHORT.decode(), 100_000),
    "control: str.encode(), ASCII, 1 MB": (lambda: TEXT.encode(), 20),
}


if __name__ == "__main__" and sys.argv[1:] != ["--worker"]:
    # Under --worker, compare.REPEAT_WORKER, appended to this text, runs.
    from compare import REPEAT_WORKER, cases_side_by_side  # bench/compare.py
    cases_side_by_side(__file__, CASES, __doc__.split("\n")[0], REPEAT_WORKER)
