# The calls of one turn of the event loop go to the host in requests of at
# most 8 MiB: 12 gathered calls of 1 MiB each used to be a RuntimeError out
# of the event loop, which no try in the code could catch. A call whose
# arguments are over 4 MiB fails alone, with the host's own message (it
# was a RuntimeError too past 8 MiB).
$ERYX --callback size='wc -c' -c '
import asyncio
r = await asyncio.gather(*[size(x=chr(97 + i) * (1 << 20)) for i in range(12)],
                         size(x="c" * (9 << 20)), size(x="d" * ((4 << 20) - 9)),
                         return_exceptions=True)
print(r[:12] == [1048584] * 12, r[13])
print(type(r[12]).__name__, r[12].kind, r[12])
try:
    await size(x="e" * ((4 << 20) - 8))
except CallbackError as e:
    print(e.kind, e)
print(await size(x="fine"))'
