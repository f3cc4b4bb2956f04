$ERYX --callback meet='echo . >> meet; for i in $(seq 50); do [ $(wc -l < meet) -ge 3 ] && break; sleep 0.1; done; wc -l < meet' -c '
import asyncio
print(await asyncio.gather(meet(), meet(), meet()))'
