"""An agent-style host in Python: sandboxed code calls host tools, concurrently.

Run it with the package installed, or with PYTHONPATH=build/python:

    python3 examples/python_tools.py

Two async tools and a plain one; the sandboxed code gathers the async ones
(both are in flight at once, on this asyncio loop), keeps state in a session, forks it, and
hands back a JSON result.
"""

import asyncio

import eryx

registry = eryx.CallbackRegistry()
in_flight = {"now": 0, "max": 0}


@registry.callback(description="Weather for a city (pretend: sleeps 0.1 s)")
async def weather(city: str) -> dict:
    in_flight["now"] += 1
    in_flight["max"] = max(in_flight["max"], in_flight["now"])
    await asyncio.sleep(0.1)
    in_flight["now"] -= 1
    return {"city": city, "celsius": len(city) * 3}


@registry.callback(description="Converts Celsius to Fahrenheit")
def to_f(celsius: float) -> float:
    return celsius * 9 / 5 + 32


async def main() -> None:
    session = eryx.Session(callbacks=registry,
                           resource_limits=eryx.ResourceLimits(execution_timeout_ms=5000))
    r = await session.execute_async(
        "import asyncio\n"
        "reports = await asyncio.gather(weather('Oslo'), weather('Lisbon'))\n"
        "result = {r['city']: await to_f(r['celsius']) for r in reports}\n"
        "print('fetched', len(reports))\n")
    print(r.stdout, end="")
    print("result:", r.result, "- weather calls in flight at once:", in_flight["max"])
    child = session.fork()
    child.execute("reports.append('only in the fork')")
    print("parent keeps", session.execute("print(len(reports))").stdout.strip(),
          "reports; fork has", child.execute("print(len(reports))").stdout.strip())


if __name__ == "__main__":
    asyncio.run(main())
