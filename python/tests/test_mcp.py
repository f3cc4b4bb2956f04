"""MCPManager: MCP servers' tools as host functions, against the protocol's
reference servers (server-everything, server-filesystem: the npm packages of
scripts/install-npm.sh, as tests/mcp uses them), the misbehaving server of
tests/mcp/bad_server.mjs, and small fake servers in Python."""
import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import eryx
from conftest import run_script
from eryx import _mcp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BAD_SERVER = os.path.join(ROOT, "tests", "mcp", "bad_server.mjs")

# A fake MCP server: mode "normal" (one tool, echo), "old" (answers
# initialize with a revision eryx does not speak), "2025" and "2024" (with
# the older revisions 2025-03-26 and 2024-11-05), "stubborn" (ignores the
# end of its input and SIGTERM), "mute" (reads, never answers), "results"
# (echo answers with its argument r as the whole tools/call result). Its
# pid goes to argv[2].
FAKE_SERVER = r'''
import json, signal, sys, os, time
mode, pidfile = sys.argv[1], sys.argv[2]
with open(pidfile, "w") as f:
    f.write(str(os.getpid()))
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    if mode == "mute" or "id" not in msg:
        continue
    if msg["method"] == "initialize":
        version = {"old": "2024-10-07", "2025": "2025-03-26", "2024": "2024-11-05"}.get(
            mode, msg["params"]["protocolVersion"])
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {
            "protocolVersion": version, "capabilities": {"tools": {}},
            "serverInfo": {"name": "fake", "version": "1"}}})
    elif msg["method"] == "tools/list":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [
            {"name": "echo", "inputSchema": {"type": "object",
                                             "properties": {"x": {}}}}]}})
    elif msg["method"] == "tools/call" and mode == "results":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": msg["params"]["arguments"]["r"]})
    elif msg["method"] == "tools/call":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {
            "content": [{"type": "text", "text": json.dumps(msg["params"]["arguments"])}]}})
if mode == "stubborn":
    while True:
        time.sleep(1)
'''


@pytest.fixture(scope="module")
def npm_mcp():
    r = subprocess.run([os.path.join(ROOT, "scripts", "install-npm.sh")], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return os.path.join(r.stdout.strip().splitlines()[-1], "node_modules", "@modelcontextprotocol")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "a.txt").write_text("hello\n")
    return d


@pytest.fixture(scope="module")
def manager(npm_mcp, files):
    m = eryx.MCPManager()
    assert m.connect("ev", "node", [f"{npm_mcp}/server-everything/dist/index.js", "stdio"],
                     timeout_secs=60) > 5
    assert m.connect("fs", "node", [f"{npm_mcp}/server-filesystem/dist/index.js", str(files)],
                     timeout_secs=60) > 5
    yield m
    m.close()


@pytest.fixture(scope="module")
def bad():
    m = eryx.MCPManager()
    m.connect("bad", "node", [BAD_SERVER], timeout_secs=60)
    yield m
    m.close()


@pytest.fixture
def fake(tmp_path):
    path = tmp_path / "fake_server.py"
    path.write_text(FAKE_SERVER)

    def argv(mode):
        return [str(path), mode, str(tmp_path / f"{mode}.pid")]

    def pid(mode):
        return int((tmp_path / f"{mode}.pid").read_text())
    argv.pid = pid
    return argv


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid, seconds):
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- connect and list ------------------------------------------------------------------

def test_connect_and_list_tools(manager):
    assert manager.server_names == ["ev", "fs"]
    tools = manager.list_tools()
    by_tool = {(t["server"], t["tool"]): t for t in tools}
    get_sum = by_tool[("ev", "get-sum")]
    # Named as the code calls it (hyphens mapped as by the eryx command).
    assert get_sum["name"] == 'mcp["ev"].get_sum'
    assert get_sum["callback"] == "mcp.ev.get_sum"
    assert sorted(get_sum["schema"]["properties"]) == ["a", "b"]
    assert get_sum["description"]
    assert set(get_sum) == {"name", "description", "schema", "server", "tool", "callback"}
    assert ("fs", "read_text_file") in by_tool
    assert "ev" in repr(manager) and f"{len(tools)} tools" in repr(manager)
    # The copy handed out is the caller's.
    get_sum["schema"]["properties"].clear()
    assert manager.list_tools()[tools.index(get_sum)]["schema"]["properties"]


def test_calls_through_both_spellings(manager, files):
    sb = eryx.Sandbox(mcp=manager)
    r = sb.execute(textwrap.dedent(f"""
        names = {{c["name"]: c for c in list_callbacks()}}
        print("mcp.ev.get_sum" in names, "MCP tool 'get-sum' of server ev" in
              names["mcp.ev.get_sum"]["description"])
        print(await mcp.ev.get_sum(a=2, b=3))
        print(await mcp["ev"].get_sum(4, 5))                 # positional: the schema's order
        print(await mcp.fs.read_file(path="{files}/a.txt"))
        print(await mcp["fs"].read_text_file(path="{files}/a.txt"))
        print(await mcp.ev["echo"](message="hi"))
        print(await invoke("mcp.ev.echo", message="by name"))
        print(await mcp.ev.get_structured_content(location="New York"))   # structuredContent
        print([item["type"] for item in await mcp.ev.get_tiny_image()])  # mixed: the list
        await mcp.fs.write_file(path="{files}/b.txt", content="from the sandbox")
        print(await mcp.fs.list_directory(path="{files}"))
        try:
            mcp["nope"]
        except KeyError as e:
            print("KeyError", "mcp['nope']" in str(e))
    """))
    assert r.stdout.splitlines() == [
        "True True",
        "The sum of 2 and 3 is 5.",
        "The sum of 4 and 5 is 9.",
        "{'content': 'hello\\n'}",
        "{'content': 'hello\\n'}",
        "Echo: hi",
        "Echo: by name",
        "{'temperature': 33, 'conditions': 'Cloudy', 'humidity': 82}",
        "['text', 'image', 'text']",
        "{'content': '[FILE] a.txt\\n[FILE] b.txt'}",
        "KeyError True",
    ]
    assert (files / "b.txt").read_text() == "from the sandbox"
    assert r.callback_invocations == 10


def test_tool_errors_are_callback_errors(manager):
    s = eryx.Session(mcp=manager)
    r = s.execute(textwrap.dedent("""
        try:
            await mcp.ev.get_sum(a="x", b=1)
        except CallbackError as e:
            print(e.kind, "tool get-sum failed" in str(e), "Input validation error" in str(e))
        try:
            await mcp.fs.read_text_file(path="/etc/passwd")
        except CallbackError as e:
            print(e.kind, "Access denied" in str(e))
    """))
    assert r.stdout == "failed True True\nfailed True\n"


def test_gathered_calls_blocking_and_async(manager):
    code = ("import asyncio\n"
            "sums = await asyncio.gather(*[mcp.ev.get_sum(a=i, b=1) for i in range(100)])\n"
            "print(len(sums), sums[0], sums[99])\n")
    want = "100 The sum of 0 and 1 is 1. The sum of 99 and 1 is 100.\n"
    assert eryx.Sandbox(mcp=manager).execute(code).stdout == want
    r = asyncio.run(eryx.Session(mcp=manager).execute_async(code))
    assert r.stdout == want
    assert r.callback_invocations == 100


def test_pools_and_factories_take_mcp(manager):
    with eryx.SandboxPool(max_size=1, mcp=manager) as pool:
        with pool.acquire() as sb:
            assert sb.execute("print(await mcp.ev.echo(message='pool'))").stdout == \
                "Echo: pool\n"
    factory = eryx.SandboxFactory(imports=["json"])
    sb = factory.create_sandbox(mcp=manager)
    assert sb.execute("print(await mcp.ev.echo(message='factory'))").stdout == \
        "Echo: factory\n"
    with factory.create_pool(max_size=1, mcp=manager) as pool:
        with pool.acquire() as sb:
            assert sb.execute("print(await mcp.ev.echo(message='fp'))").stdout == "Echo: fp\n"


def test_callback_names_may_not_clash_with_tools(manager):
    with pytest.raises(ValueError, match="mcp.ev.echo"):
        eryx.Sandbox(mcp=manager, callbacks=[{"name": "mcp.ev.echo", "fn": lambda: 1}])
    with pytest.raises(TypeError, match="MCPManager"):
        eryx.Session(mcp=[manager])
    # Other callbacks live beside the tools.
    r = eryx.Sandbox(mcp=manager, callbacks=[{"name": "twice", "fn": lambda x: 2 * x}]).execute(
        "print(await twice(await mcp.ev.get_sum(a=1, b=1)))")
    assert r.stdout == "The sum of 1 and 1 is 2.The sum of 1 and 1 is 2.\n"


# -- a server that misbehaves (tests/mcp/bad_server.mjs) ----------------------------------

def test_bad_server_results_and_errors(bad):
    r = eryx.Sandbox(mcp=bad).execute(textwrap.dedent("""
        print(await mcp.bad.ok(x=7))
        print(await mcp.bad.garbage())        # the lines that are not JSON-RPC are skipped
        for name in ("error", "tool_error"):
            try:
                await invoke("mcp.bad." + name)
            except CallbackError as e:
                print(name, e.kind, e)
    """))
    assert r.stdout.splitlines() == [
        "{'x': 7}",
        "fine after all",
        "error failed MCPError: MCP server bad, tool error: error -32000: it went wrong",
        "tool_error failed MCPError: MCP server bad, tool tool_error failed: the tool failed",
    ]


def text(*texts):
    return [{"type": "text", "text": t} for t in texts]


IMAGE = {"type": "image", "data": "AAAA", "mimeType": "image/png"}

# (a tools/call result, the value with result_format "eryx", with "pyeryx")
RESULT_SHAPES = [
    ({"content": text('{"a": 1}'), "structuredContent": {"b": 2}}, {"b": 2}, {"b": 2}),
    ({"content": text("x"), "structuredContent": None}, None, {"text": "x"}),
    ({"content": text('{"a": [1, 2]}')}, '{"a": [1, 2]}', {"a": [1, 2]}),
    ({"content": text("42")}, "42", 42),
    ({"content": text(" null ")}, " null ", None),
    ({"content": text("hello")}, "hello", {"text": "hello"}),
    ({"content": text("NaN")}, "NaN", {"text": "NaN"}),
    ({"content": text("[" * 100000)}, "[" * 100000, {"text": "[" * 100000}),
    ({"content": text("1", "2")}, "1\n2", {"text": "1\n2"}),
    ({"content": text("[1]") + [IMAGE]}, text("[1]") + [IMAGE], [1]),
    ({"content": [IMAGE]}, [IMAGE], {"text": ""}),
    ({"content": []}, None, {"text": ""}),
    ({}, None, {"text": ""}),
]


def test_result_formats(fake):
    """result_format="pyeryx" maps results as the reference's binding does;
    the default keeps the eryx command's mapping."""
    for fmt, column in (("eryx", 1), ("pyeryx", 2)):
        with eryx.MCPManager(result_format=fmt) as m:
            m.connect("f", sys.executable, fake("results"))
            sb = eryx.Sandbox(mcp=m)
            for row in RESULT_SHAPES:
                r = sb.execute(f"result = await mcp.f.echo(r={row[0]!r})")
                assert r.result == row[column], (fmt, row[0])
    with pytest.raises(ValueError, match="result_format is 'eryx' or 'pyeryx'"):
        eryx.MCPManager(result_format="json")


def test_a_server_that_never_answers_is_the_callback_timeout(bad):
    sb = eryx.Sandbox(mcp=bad, resource_limits=eryx.ResourceLimits(callback_timeout_ms=300))
    t = time.monotonic()
    r = sb.execute("try:\n    await mcp.bad.hang()\nexcept CallbackError as e:\n"
                   "    print(e.kind)\nprint(await mcp.bad.ok(x=1))")
    assert r.stdout == "timeout\n{'x': 1}\n"
    assert time.monotonic() - t < 5


def test_an_answer_over_the_limit_fails_the_calls_in_flight():
    m = eryx.MCPManager(max_message=1 << 20)
    try:
        m.connect("bad", "node", [BAD_SERVER], timeout_secs=60)
        r = eryx.Sandbox(mcp=m).execute(textwrap.dedent("""
            try:
                await mcp.bad.huge(mb=3)
            except CallbackError as e:
                print("over the limit:", "1048576-byte limit" in str(e))
            print(len(await mcp.bad.huge(mb=0.5)), await mcp.bad.ok(x=2))
        """))
        assert r.stdout == "over the limit: True\n524288 {'x': 2}\n"
    finally:
        m.close()


def test_a_server_that_stops_reading_is_stopped(monkeypatch):
    monkeypatch.setattr(_mcp, "_STALL_S", 1.0)  # 30 s by default
    m = eryx.MCPManager()
    try:
        m.connect("bad", "node", [BAD_SERVER], timeout_secs=60)
        sb = eryx.Sandbox(mcp=m)
        t = time.monotonic()
        # The big argument fills the pipe the server no longer reads. It is
        # sent a moment after stop_reading: calls gathered at once may reach
        # the server in either order, and one that came first was answered.
        r = sb.execute(textwrap.dedent("""
            import asyncio
            stop = asyncio.ensure_future(mcp.bad.stop_reading())
            await asyncio.sleep(0.5)
            outcomes = await asyncio.gather(stop, mcp.bad.ok(x="y" * (1 << 21)),
                                            return_exceptions=True)
            print([str(o) for o in outcomes])
        """))
        msg = "MCPError: MCP server bad stopped reading its input; it was stopped"
        assert r.stdout == f"{[msg, msg]}\n"
        assert time.monotonic() - t < 5
    finally:
        m.close()


def test_a_server_that_exits_mid_call():
    m = eryx.MCPManager()
    try:
        m.connect("bad", "node", [BAD_SERVER], timeout_secs=60)
        sb = eryx.Sandbox(mcp=m)
        t = time.monotonic()
        r = sb.execute(textwrap.dedent("""
            import asyncio
            outcomes = await asyncio.gather(mcp.bad.hang(), mcp.bad.crash(),
                                            return_exceptions=True)
            for o in outcomes:
                print(type(o).__name__, o)
            try:
                await mcp.bad.ok(x=1)
            except CallbackError as e:
                print("later:", e)
        """))
        msg = "MCPError: MCP server bad exited with status 3"
        assert r.stdout.splitlines() == [f"CallbackError {msg}", f"CallbackError {msg}",
                                         f"later: {msg}"]
        assert time.monotonic() - t < 5      # at once, not at the callback timeout
        r = asyncio.run(eryx.Session(mcp=m).execute_async(
            "try:\n    await mcp.bad.ok(x=1)\nexcept CallbackError as e:\n    print(e)"))
        assert r.stdout == msg + "\n"
    finally:
        m.close()


def test_close_fails_the_calls_in_flight():
    m = eryx.MCPManager()
    m.connect("bad", "node", [BAD_SERVER], timeout_secs=60)
    sb = eryx.Sandbox(mcp=m)
    threading.Timer(0.3, m.close).start()
    t = time.monotonic()
    r = sb.execute("try:\n    await mcp.bad.hang()\nexcept CallbackError as e:\n    print(e)")
    assert r.stdout == "MCPError: MCP server bad was closed\n"
    assert time.monotonic() - t < 5


def test_a_message_too_wide_to_read_is_dropped():
    # 1.5 MiB of empty objects (524 288) under a 2 MiB limit (335 544
    # allowed: a 64 MiB tree): not read, the call fails; the next ones work,
    # and so do a narrow answer of the same tool and the same objects as a
    # string's text.
    with eryx.MCPManager(max_message=2 << 20) as m:
        m.connect("bad", "node", [BAD_SERVER], timeout_secs=60)
        sb = eryx.Sandbox(mcp=m, resource_limits=eryx.ResourceLimits(callback_timeout_ms=20000))
        r = sb.execute("for mb, hide in ((1.5, False), (0.9, True)):\n    try:\n"
                       "        await mcp.bad.wide(mb=mb, hide_id=hide)\n"
                       "    except CallbackError as e:\n        print(e)\n"
                       "print(await mcp.bad.ok(x=3))\n"
                       "print(len((await mcp.bad.wide(mb=0.01))['items']))\n"
                       "print(len(await mcp.bad.wide(mb=0.5, as_text=True)))")
        assert r.stdout == ("MCPError: MCP server bad, tool wide: error -32000: eryx did not read "
                            "the answer: its JSON makes 524294 objects and arrays, more than the "
                            "335544 read of one message\n"
                            "MCPError: MCP server bad sent a message of 629151 objects and arrays, "
                            "more than the 335544 read of one message; it was dropped, and the "
                            "calls in flight fail\n{'x': 3}\n3495\n"
                            "524287\n")


def test_an_answer_that_cannot_be_read_fails_its_call_at_once(bad):
    # Nested deeper than json.loads reads: the call its ends name fails now
    # (until 2026-12-07 it waited out its timeout, as one whose id neither
    # end shows still does). A number beyond a double's range reads as inf,
    # which the guest cannot be given.
    # A structuredContent that is not an object is no tool result.
    sb = eryx.Sandbox(mcp=bad, resource_limits=eryx.ResourceLimits(callback_timeout_ms=3000))
    r = sb.execute(textwrap.dedent("""
        import time
        for how in ("deep", "hidden", "overflow"):
            t = time.monotonic()
            try:
                await mcp.bad.unreadable(how=how)
            except CallbackError as e:
                print(how, e.kind, e, time.monotonic() - t < 2)
        try:
            await mcp.bad.not_object()
        except CallbackError as e:
            print("not_object", e.kind, e)
    """))
    assert r.stdout.splitlines() == [
        "deep failed MCPError: MCP server bad, tool unreadable: error -32000: eryx did not read "
        "the answer: nested too deep True",
        "hidden timeout the host function did not answer in time False",
        "overflow failed callback 'mcp.bad.unreadable' returned a value that is not "
        "JSON-serialisable: ValueError: Out of range float values are not JSON compliant True",
        "not_object failed MCPError: MCP server bad, tool not_object: the answer is not a tool "
        "result (its structuredContent is not an object)",
    ], r.stdout + r.stderr


def test_a_message_id_is_found_at_its_ends():
    from eryx._peer_json import id_at_ends
    deep = b"[" * 5000 + b"]" * 5000
    assert id_at_ends(b'{"jsonrpc":"2.0","id":12,"result":' + deep + b"}") == 12
    assert id_at_ends(b'{ "id" : -3 , "x": 1}') == -3
    assert id_at_ends(b'{"result":' + deep + b',"jsonrpc":"2.0","id":7}\n') == 7
    assert id_at_ends(b'{"result":' + deep + b',"id":7,"more":1}') is None
    assert id_at_ends(b'{"a":{"id":4},"result":' + deep + b"}") is None
    assert id_at_ends(b'{"id":"s","result":1}') is None
    assert id_at_ends(b"") is None


def test_counting_a_wide_message_takes_linear_time():
    # Strings are taken out of the count only past the bound; a text that
    # made every later quote start a failing match took time growing as the
    # square of its quotes (a `"` then 2 million `\\"` would take hours). Run apart,
    # so that a regression fails by its timeout instead of hanging the suite.
    p = run_script("""
        from eryx import _peer_json
        data = b"[" + b"{}," * 400000 + b'"' + b'\\\\"' * 2000000
        print(_peer_json.too_wide(data, 16 << 20))
    """, timeout=60)
    assert p.returncode == 0 and p.stdout == "400001\n", p.stderr


def test_paginated_tool_list():
    with eryx.MCPManager() as m:
        assert m.connect("paged", "node", [BAD_SERVER, "paged"], timeout_secs=60) == 11
        assert [t["tool"] for t in m.list_tools()][:2] == ["ok", "crash"]


# -- connecting, closing --------------------------------------------------------------------

def test_connect_failures(fake, tmp_path):
    m = eryx.MCPManager()
    t = time.monotonic()
    with pytest.raises(eryx.InitializationError, match="cannot start 'no-such-mcp-server'"):
        m.connect("x", "no-such-mcp-server")
    assert time.monotonic() - t < 1
    with pytest.raises(eryx.InitializationError, match="initialize failed: .*exited with status 2"):
        m.connect("x", sys.executable, ["-c", "import sys; sys.exit(2)"])
    t = time.monotonic()
    with pytest.raises(eryx.InitializationError, match=r"no answer within 1\.5 s"):
        m.connect("x", "node", [BAD_SERVER, "no-init"], timeout_secs=1.5)
    assert 1.4 < time.monotonic() - t < 3
    with pytest.raises(eryx.InitializationError, match=r"no answer within 1 s"):
        m.connect("x", sys.executable, fake("mute"), timeout_secs=1)
    with pytest.raises(eryx.InitializationError, match="revision '2024-10-07'; eryx speaks "
                       "2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05"):
        m.connect("x", sys.executable, fake("old"))
    # A server that is not MCP at all: its lines are skipped, then the timeout.
    with pytest.raises(eryx.InitializationError, match="no answer"):
        m.connect("x", sys.executable, ["-c", "print('hello'); import time; time.sleep(30)"],
                  timeout_secs=1)
    assert m.server_names == []
    # Misuse: ValueError or TypeError before anything is started.
    for name in ("my-server", "1x", "class", "", "x" * 65, None):
        with pytest.raises((ValueError, TypeError)):
            m.connect(name, sys.executable, fake("normal"))
    with pytest.raises(TypeError):
        m.connect("x", sys.executable, "not a list")
    with pytest.raises(ValueError):
        m.connect("x", sys.executable, fake("normal"), timeout_secs=0)
    with pytest.raises(ValueError):
        eryx.MCPManager(max_message=10)
    # The failed servers were stopped.
    assert not alive(fake.pid("mute")) or wait_gone(fake.pid("mute"), 4)
    m.connect("x", sys.executable, fake("normal"), env={"EXTRA": "1"})
    with pytest.raises(ValueError, match="connected already"):
        m.connect("x", sys.executable, fake("normal"))
    m.close()


def test_close_is_idempotent_and_stops_the_server(fake):
    m = eryx.MCPManager()
    assert m.connect("f", sys.executable, fake("normal")) == 1
    pid = fake.pid("normal")
    sb = eryx.Sandbox(mcp=m)
    assert sb.execute("print(await mcp.f.echo(x=[1, 'two']))").stdout == \
        '{"x": [1, "two"]}\n'
    m.close()
    assert wait_gone(pid, 2)
    m.close()
    assert m.server_names == [] and m.list_tools() == []
    r = sb.execute("try:\n    await mcp.f.echo(x=1)\nexcept CallbackError as e:\n    print(e)")
    assert r.stdout == "MCPError: MCP server f was closed\n"
    # The manager can connect again; a sandbox made before keeps what it had.
    m.connect("f", sys.executable, fake("normal"))
    assert eryx.Sandbox(mcp=m).execute("print(await mcp.f.echo(x=2))").stdout == '{"x": 2}\n'
    m.close()


def test_servers_of_older_revisions(fake):
    # Servers still answer with 2025-03-26 (the first of Streamable HTTP)
    # and 2024-11-05: their tools are called as any.
    m = eryx.MCPManager()
    m.connect("a", sys.executable, fake("2025"))
    m.connect("b", sys.executable, fake("2024"))
    r = eryx.Sandbox(mcp=m).execute("print(await mcp.a.echo(x=1), await mcp.b.echo(x=2))")
    assert r.stdout == '{"x": 1} {"x": 2}\n'
    m.close()


def test_a_server_that_ignores_eof_and_sigterm_is_killed(fake):
    with eryx.MCPManager() as m:
        m.connect("s", sys.executable, fake("stubborn"))
        pid = fake.pid("stubborn")
        t = time.monotonic()
    assert 1.5 < time.monotonic() - t < 5      # stdin closed, 1 s, SIGTERM, 1 s, SIGKILL
    assert not alive(pid)


def test_a_collected_manager_stops_its_servers(fake):
    # A stubborn server takes 2 s to stop: a collection that waited for it
    # would take that long, and one that does not leaves room for a slow
    # machine's full collection.
    m = eryx.MCPManager()
    m.connect("f", sys.executable, fake("stubborn"))
    pid = fake.pid("stubborn")
    sb = eryx.Sandbox(mcp=m)
    del m
    gc.collect()
    # A sandbox that can call the tools keeps the manager.
    assert sb.execute("print(await mcp.f.echo(x=3))").stdout == '{"x": 3}\n'
    t = time.monotonic()
    del sb
    gc.collect()
    assert time.monotonic() - t < 1.5     # collection does not wait for the server
    assert wait_gone(pid, 8)


def test_interpreter_exit_stops_servers(fake, tmp_path):
    code = textwrap.dedent(f"""
        import eryx, sys
        m = eryx.MCPManager()
        m.connect("s", sys.executable, {fake("stubborn")!r})
        m2 = eryx.MCPManager()
        m2.connect("n", sys.executable, {fake("normal")!r})
        print(eryx.Sandbox(mcp=m2).execute("print(await mcp.n.echo(x=1))").stdout, end="")
    """)
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{"x": 1}\n'
    assert time.monotonic() - t < 15
    assert not alive(fake.pid("stubborn")) and not alive(fake.pid("normal"))


def test_tool_names_map_as_the_eryx_command_maps_them():
    # A name that begins with "_" once mapped gets "tool" (a dunder made
    # every Sandbox(mcp=...) fail: "-_class__", "éclass__" were __class__).
    assert [_mcp._py_name(n) for n in ("get-sum", "a.b c", "1st", "class", "ok_2", "é", "",
                                       "__class__", "-_class__", "\u00e9class__")] == \
        ["get_sum", "a_b_c", "_1st", "class_", "ok_2", "tool__", "_",
         "tool__class__", "tool__class__", "tool__class__"]
    # A name with a NUL is left out; a NUL in a description is dropped
    # (either made every Sandbox(mcp=...) of the manager fail).
    tools = _mcp._name_tools("s", [{"name": "x\0y"}, {"name": "z", "description": "a\0b"}])
    assert [(t.name, t.description) for t in tools] == [("z", "ab")]
    tools = _mcp._name_tools("s", [{"name": "a-b"}, {"name": "a_b"}, {"name": "a.b"},
                                   {"nameless": 1}, {"name": "x", "title": "T"}])
    assert [(t.callback, t.name, t.description) for t in tools] == [
        ("mcp.s.a_b", "a-b", ""), ("mcp.s.a_b_2", "a_b", ""), ("mcp.s.a_b_3", "a.b", ""),
        ("mcp.s.x", "x", "T")]
