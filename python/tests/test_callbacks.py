import asyncio
import threading
import time

import pytest

import eryx


def test_list_of_dicts_sync_and_async():
    def add(a: int, b: int = 2) -> int:
        return a + b

    async def later(x: str):
        await asyncio.sleep(0.01)
        return {"got": x}

    sb = eryx.Sandbox(callbacks=[
        {"name": "add", "fn": add, "description": "Adds"},
        {"name": "later", "fn": later},
    ])
    r = sb.execute("print(await add(1), await add(a=1, b=5), await later(x='y'))")
    assert r.stdout == "3 6 {'got': 'y'}\n"
    assert r.callback_invocations == 3


def test_registry_decorator_and_schema_inference():
    reg = eryx.CallbackRegistry()

    @reg.callback(description="Echoes the message")
    def echo(message: str, repeat: int = 1):
        return {"echoed": message * repeat}

    @reg.callback
    def now():
        """Returns a time."""
        return 1.5

    @reg.callback(name="math.double")
    def double(x: float):
        return x * 2

    assert len(reg) == 3
    items = {d["name"]: d for d in reg}
    assert items["echo"]["schema"] == {
        "type": "object",
        "properties": {"message": {"type": "string"},
                       "repeat": {"type": "integer", "default": 1}},
        "required": ["message"]}
    assert items["now"]["description"] == "Returns a time."
    sb = eryx.Sandbox(callbacks=reg)
    r = sb.execute("print(await echo('ab', 2), await now(), await math.double(x=2))")
    assert r.stdout == "{'echoed': 'abab'} 1.5 4\n"


def test_registry_refuses_bad_names_and_doubles_at_once():
    # At add(), not at the sandbox's creation far from the line that made
    # them; a second "dup" silently replaced the first.
    reg = eryx.CallbackRegistry()
    for bad in ("1bad", "a..b", "é", "a-b", "x" * 201):
        with pytest.raises(ValueError, match="dotted Python identifier"):
            reg.add(lambda: 1, name=bad)
    with pytest.raises(ValueError, match="name="):
        reg.add(lambda x: x)  # "<lambda>"
    reg.add(lambda: 1, name="dup")
    with pytest.raises(ValueError, match="registered already"):
        reg.add(lambda: 2, name="dup")
    assert len(reg) == 1
    # A name that shadows a builtin is liberyx's to refuse, at creation.
    reg.add(lambda: 1, name="print")
    with pytest.raises(ValueError, match="shadow"):
        eryx.Sandbox(callbacks=reg)


def test_schema_inference_of_optional_and_lists():
    from typing import List, Optional

    def f(a: Optional[int], b: List[str], c: dict, d=None):
        pass
    s = eryx.infer_schema(f)
    assert s["properties"]["a"] == {"type": "integer"}
    assert s["properties"]["b"] == {"type": "array", "items": {"type": "string"}}
    assert s["properties"]["c"] == {"type": "object"}
    assert s["required"] == ["a", "b", "c"]


def test_callback_exception_is_catchable_inside():
    def boom(x: int):
        raise ValueError(f"bad value {x}")
    sb = eryx.Sandbox(callbacks=[{"name": "boom", "fn": boom}])
    r = sb.execute("try:\n    await boom(7)\nexcept Exception as e:\n"
                   "    print(type(e).__name__, e)")
    assert "CallbackError" in r.stdout and "ValueError: bad value 7" in r.stdout


def test_non_json_result_is_a_clear_error():
    sb = eryx.Sandbox(callbacks=[{"name": "obj", "fn": lambda: object()}])
    r = sb.execute("try:\n    await obj()\nexcept Exception as e:\n    print(e)")
    assert "not JSON-serialisable" in r.stdout


def test_nan_is_refused_both_ways():
    # JSON has no NaN: an argument or a reply carrying one is a clear error
    # where it is made, not a malformed request for the host.
    sb = eryx.Sandbox(callbacks=[{"name": "echo", "fn": lambda x=None: x},
                                 {"name": "nan", "fn": lambda: [float("nan")]}])
    r = sb.execute("import math\n"
                   "for v in (math.nan, [math.inf], {'a': -math.inf}):\n"
                   "    try:\n        await echo(x=v)\n"
                   "    except TypeError as e:\n        print('arg:', e)\n"
                   "try:\n    await nan()\nexcept Exception as e:\n    print('reply:', e)\n"
                   "print(await echo(x=1.5))")
    assert r.stdout.count("arg: echo(): arguments must be JSON-serialisable: "
                          "Out of range float values are not JSON compliant") == 3, r.stdout
    assert "reply: callback 'nan' returned a value that is not JSON-serialisable" in r.stdout
    assert r.stdout.endswith("1.5\n")


def test_invalid_arguments():
    def two(a: int, b: int):
        return a + b
    sb = eryx.Sandbox(callbacks=[{"name": "two", "fn": two}])
    r = sb.execute("try:\n    await two(1, 2, 3)\nexcept Exception as e:\n"
                   "    print(getattr(e, 'kind', None), e)")
    assert "takes 2 positional arguments but 3 were given" in r.stdout  # checked inside
    r = sb.execute("try:\n    await two(a=1, c=2)\nexcept Exception as e:\n"
                   "    print(getattr(e, 'kind', None), e)")
    assert r.stdout.startswith("invalid_arguments") and "invalid arguments for two" in r.stdout


def test_blocking_callback_hits_callback_timeout():
    release = threading.Event()

    def stuck():
        release.wait(10)
        return 1
    sb = eryx.Sandbox(callbacks=[{"name": "stuck", "fn": stuck}],
                      resource_limits=eryx.ResourceLimits(callback_timeout_ms=200))
    t = time.monotonic()
    r = sb.execute("try:\n    await stuck()\nexcept Exception as e:\n"
                   "    print(getattr(e, 'kind', None))")
    assert r.stdout == "timeout\n"
    assert time.monotonic() - t < 5
    release.set()


def test_never_returning_callback_hits_execution_timeout():
    ev = threading.Event()
    sb = eryx.Sandbox(callbacks=[{"name": "hang", "fn": lambda: ev.wait(5)}],
                      resource_limits=eryx.ResourceLimits(execution_timeout_ms=300,
                                                          callback_timeout_ms=None))
    t = time.monotonic()
    with pytest.raises(eryx.TimeoutError):
        sb.execute("await hang()")
    assert time.monotonic() - t < 4
    ev.set()


def test_gathered_sync_callbacks_run_concurrently():
    def wait(s: float):
        time.sleep(s)
        return s
    sb = eryx.Sandbox(callbacks=[{"name": "wait", "fn": wait}])
    t = time.monotonic()
    r = sb.execute("import asyncio\nprint(len(await asyncio.gather(*[wait(0.5) for _ in range(8)])))")
    assert r.stdout == "8\n"
    assert time.monotonic() - t < 2.5  # one after the other: 4 s


def test_max_callback_invocations():
    sb = eryx.Sandbox(callbacks=[{"name": "one", "fn": lambda: 1}],
                      resource_limits=eryx.ResourceLimits(max_callback_invocations=3))
    r = sb.execute("n = 0\nfor i in range(5):\n    try:\n        await one(); n += 1\n"
                   "    except Exception:\n        pass\nprint(n)")
    assert r.stdout == "3\n"


def test_bad_callback_definitions():
    with pytest.raises(TypeError):
        eryx.Sandbox(callbacks=[{"name": "a", "fn": 3}])
    with pytest.raises(TypeError):
        eryx.Sandbox(callbacks="nope")
    with pytest.raises(ValueError):
        eryx.Sandbox(callbacks=[{"name": "a", "fn": len}, {"name": "a", "fn": len}])
    with pytest.raises(TypeError):
        eryx.Sandbox(callbacks=[{"name": "a", "fn": len, "schema": "x"}])
    with pytest.raises((ValueError, eryx.EryxError), match="builtin|shadow|name"):
        eryx.Sandbox(callbacks=[{"name": "print", "fn": len}])


def test_inline_callbacks():
    reg = eryx.CallbackRegistry()

    @reg.callback(inline=True)
    def fast(x: int):
        return x + 1
    sb = eryx.Sandbox(callbacks=reg)
    r = sb.execute("import asyncio\nprint(await fast(1), await asyncio.gather(fast(2), fast(3)))")
    assert r.stdout == "2 [3, 4]\n"
    sb2 = eryx.Sandbox(callbacks=[{"name": "boom", "fn": lambda: 1 / 0, "inline": True}])
    assert "ZeroDivisionError" in sb2.execute(
        "try:\n    await boom()\nexcept Exception as e:\n    print(e)").stdout

    async def a():
        return 1
    with pytest.raises(ValueError, match="inline"):
        eryx.Sandbox(callbacks=[{"name": "a", "fn": a, "inline": True}])


def test_an_inline_callback_running_another_sandbox_keeps_the_outer_stream():
    # The inner run's end made the thread's current run none, so the outer
    # run's output after the callback was no longer streamed.
    other = eryx.Sandbox()
    reg = eryx.CallbackRegistry()

    @reg.callback(inline=True)
    def sub(code: str):
        return other.execute(code).stdout

    seen = []
    sb = eryx.Sandbox(callbacks=reg, on_stdout=seen.append)
    r = sb.execute("v = await sub('print(6 * 7)')\nprint('got', v.strip())\nprint('after')")
    assert r.stdout == "got 42\nafter\n"
    assert "".join(seen) == "got 42\nafter\n"
