"""eryx.mcp: the MCP servers that agents' and editors' configuration files
name (a HOME and a project directory made by each test), found and started
as the eryx command's --mcp does (tests/mcp/client_config.sh)."""
import json
import os
import sys
import textwrap
import time

import pytest

import eryx
from eryx import mcp as eryx_mcp

# An MCP server whose one tool, facts, answers with its arguments and the
# ERYX_T* variables of its environment (as text alone when its first
# argument is "text").
FACTS_SERVER = r'''
import json, os, sys
def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg["method"] == "initialize":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}}, "serverInfo": {"name": "facts", "version": "1"}}})
    elif msg["method"] == "tools/list":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [
            {"name": "facts", "inputSchema": {"type": "object", "properties": {}}}]}})
    elif msg["method"] == "tools/call":
        facts = {"argv": sys.argv[1:],
                 "env": {k: v for k, v in os.environ.items() if k.startswith("ERYX_T")}}
        result = {"content": [{"type": "text", "text": json.dumps(facts)}]}
        if sys.argv[1:2] != ["text"]:
            result["structuredContent"] = facts
        send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
'''


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    home, proj = tmp_path / "home", tmp_path / "proj"
    for d in (home / ".cursor", home / ".config" / "zed", home / ".codex", proj / ".vscode"):
        d.mkdir(parents=True)
    server = tmp_path / "facts_server.py"
    server.write_text(FACTS_SERVER)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ERYX_BASE", "/base")
    monkeypatch.delenv("ERYX_UNSET", raising=False)
    monkeypatch.chdir(proj)
    return home, proj, str(server)


def write_configs(home, proj, server):
    py = sys.executable
    (home / ".claude.json").write_text(json.dumps({
        "numStartups": 3,
        "mcpServers": {
            "user-one": {"command": py, "args": [server, "user", "${ERYX_BASE}/arg"],
                         "env": {"ERYX_T1": "${ERYX_BASE}/x", "ERYX_T2": "${ERYX_UNSET:-dflt}",
                                 "ERYX_T3": "$ERYX_BASE"}},
            "replaced": {"command": py, "args": [server, "from-user"]},
            "remote": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
            "off": {"command": "/nonexistent", "disabled": True},
            "broken": {"command": py, "args": "not a list"},
        },
        "projects": {str(proj): {"mcpServers": {"local": {"command": py,
                                                           "args": [server, "local"]}}},
                     "/elsewhere": {"mcpServers": {"other": {"command": py}}}},
    }))
    (home / ".cursor" / "mcp.json").write_text('{"mcpServers": {')  # not JSON: passed over
    (home / ".config" / "zed" / "settings.json").write_text(textwrap.dedent(f"""\
        // Zed's settings
        {{
          /* a comment, "with": "a string", */ "theme": "One Dark",
          "context_servers": {{
            "zed": {{"command": {{"path": {json.dumps(py)}, "args": [{json.dumps(server)}, "zed"]}},
                     "settings": {{}},}},
          }},
        }}
        """))
    (home / ".codex" / "config.toml").write_text(textwrap.dedent(f"""\
        model = "x"
        [mcp_servers.codex]
        command = {json.dumps(py)}
        args = [{json.dumps(server)}, "codex"]
        """))
    (proj / ".mcp.json").write_text(json.dumps({"mcpServers": {
        "replaced": {"command": py, "args": [server, "from-project"]}}}))
    (proj / ".vscode" / "mcp.json").write_text(
        '{\n  // VS Code\n  "servers": {"vscode": {"type": "stdio", "command": %s, '
        '"args": [%s, "vscode"]}},\n  "inputs": [],\n}\n' % (json.dumps(py), json.dumps(server)))


def test_discover_reads_every_agents_file_in_order(dirs, capsys):
    home, proj, server = dirs
    write_configs(home, proj, server)
    found = eryx_mcp.discover_servers()
    py = sys.executable
    assert found == {
        "user-one": {"command": py, "args": [server, "user", "${ERYX_BASE}/arg"],
                     "env": {"ERYX_T1": "${ERYX_BASE}/x", "ERYX_T2": "${ERYX_UNSET:-dflt}",
                             "ERYX_T3": "$ERYX_BASE"}},
        "zed": {"command": py, "args": [server, "zed"], "env": {}},
        "codex": {"command": py, "args": [server, "codex"], "env": {}},
        "replaced": {"command": py, "args": [server, "from-project"], "env": {}},
        "vscode": {"command": py, "args": [server, "vscode"], "env": {}},
        "local": {"command": py, "args": [server, "local"], "env": {}},
    }
    err = capsys.readouterr().err
    assert "server 'broken' is left out: its args are not a list of strings" in err
    assert ".cursor/mcp.json: not JSON" in err
    assert "remote" not in err and "'off'" not in err


def test_connect_starts_them_for_the_sandbox(dirs, capsys):
    home, proj, server = dirs
    write_configs(home, proj, server)
    with eryx_mcp.connect_servers(connect_timeout=20) as manager:
        assert sorted(manager.server_names) == ["codex", "local", "replaced", "user_one",
                                                "vscode", "zed"]
        sb = eryx.Sandbox(mcp=manager)
        r = sb.execute(textwrap.dedent("""\
            one = await mcp.user_one.facts()
            print(one["argv"], sorted(one["env"].items()))
            print((await mcp.replaced.facts())["argv"])
            print((await mcp["zed"].facts())["argv"], (await mcp.local.facts())["argv"])
            """))
    assert r.stdout.splitlines() == [
        "['user', '/base/arg'] [('ERYX_T1', '/base/x'), ('ERYX_T2', 'dflt'), ('ERYX_T3', '/base')]",
        "['from-project']",
        "['zed'] ['local']",
    ]
    err = capsys.readouterr().err
    assert "MCP: connected to 'user-one (mcp.user_one)' (1 tools)" in err


def test_a_server_that_fails_is_left_out(dirs, tmp_path, capsys):
    _, _, server = dirs
    cfg = tmp_path / "servers.json"
    cfg.write_text(json.dumps({"servers": {
        "gone": {"command": "/nonexistent/server"},
        "fine": {"command": sys.executable, "args": [server]}}}))
    manager = eryx_mcp.connect_servers([cfg], connect_timeout=20)
    try:
        assert manager.server_names == ["fine"]
    finally:
        manager.close()
    assert "MCP: failed to connect to 'gone'" in capsys.readouterr().err
    cfg.write_text(json.dumps({"mcpServers": {"gone": {"command": "/nonexistent/server"}}}))
    assert eryx_mcp.connect_servers([cfg]) is None
    with pytest.raises(ValueError, match="result_format"):
        eryx_mcp.connect_servers([cfg], result_format="text")


def test_the_result_format_reaches_the_manager(dirs, tmp_path):
    _, _, server = dirs
    cfg = tmp_path / "servers.json"
    cfg.write_text(json.dumps({"servers": {"one": {"command": sys.executable,
                                                   "args": [server, "text"]}}}))
    code = "result = await mcp.one.facts()"
    for fmt, want in (("eryx", '{"argv": ["text"], "env": {}}'),
                      ("pyeryx", {"argv": ["text"], "env": {}})):
        with eryx_mcp.connect_servers([cfg], result_format=fmt) as manager:
            assert eryx.Sandbox(mcp=manager).execute(code).result == want


def test_given_paths(dirs, tmp_path):
    home, proj, server = dirs
    write_configs(home, proj, server)
    toml = tmp_path / "c.toml"
    toml.write_text('[mcp_servers.t]\ncommand = "x"\nargs = ["1"]\nenv = { A = "b" }\n')
    # Given paths replace the usual files.
    assert eryx_mcp.discover_servers([toml]) == {"t": {"command": "x", "args": ["1"],
                                                       "env": {"A": "b"}}}
    assert eryx_mcp.discover_servers([]) == {}
    assert eryx_mcp.connect_servers([]) is None
    with pytest.raises(ValueError, match="no such file"):
        eryx_mcp.discover_servers([tmp_path / "none.json"])
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="bad.json: not JSON"):
        eryx_mcp.discover_servers([bad])
    bad.write_bytes(b'{"mcpServers": {"\xff": {}}}')
    with pytest.raises(ValueError, match="not JSON"):
        eryx_mcp.discover_servers([bad])
    with pytest.raises(ValueError, match="not TOML"):
        toml.write_text("[")
        eryx_mcp.discover_servers([toml])
    with pytest.raises(ValueError):
        eryx_mcp.discover_servers([tmp_path])  # a directory
    fifo = tmp_path / "fifo.json"  # a planted FIFO must not hang the reading
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        eryx_mcp.discover_servers([fifo])
    with pytest.raises(TypeError):
        eryx_mcp.discover_servers(str(bad))


def test_nothing_configured(dirs):
    assert eryx_mcp.discover_servers() == {}
    assert eryx_mcp.connect_servers() is None


def test_comments_and_trailing_commas():
    blank = eryx_mcp._blank_comments
    assert json.loads(blank('{"a": "//x", /* c */ "b": [1, 2,],}\n// end')) == \
        {"a": "//x", "b": [1, 2]}
    assert json.loads(blank('{"a": "\\"/*", "b": 1}')) == {"a": '"/*', "b": 1}
    text = '{\n/* two\nlines */ "a": 1}'
    assert blank(text).count("\n") == 2 and json.loads(blank(text)) == {"a": 1}


@pytest.fixture
def http_server(tmp_path):
    """tests/mcp/http_server.py: a Streamable HTTP server reporting the
    headers it got."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    log = tmp_path / "http.log"
    p = subprocess.Popen([sys.executable, os.path.join(root, "tests", "mcp", "http_server.py"),
                          str(log)], stdout=subprocess.PIPE, text=True)
    try:
        yield int(p.stdout.readline()), log
    finally:
        p.kill()
        p.wait()


def test_remote_servers_through_the_commands_proxy(dirs, tmp_path, http_server, monkeypatch,
                                                   capsys):
    port, log = http_server
    monkeypatch.setenv("ERYX_TOKEN", "s3cret")
    cfg = tmp_path / "remote.json"
    cfg.write_text(json.dumps({"mcpServers": {
        "remote-one": {"type": "http", "url": f"http://127.0.0.1:{port}/mcp",
                       "headers": {"Authorization": "Bearer ${ERYX_TOKEN}"}},
        "legacy": {"type": "sse", "url": f"http://127.0.0.1:{port}/sse"},
        "either": {"url": f"http://127.0.0.1:{port}/sse"},
        "websocket": {"type": "ws", "url": f"ws://127.0.0.1:{port}/"},
        "broken": {"url": "ftp://x"},
        "evil": {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"X": "${ERYX_EVIL}"}},
    }}))
    monkeypatch.setenv("ERYX_EVIL", "a\r\nX-Injected: 1")
    # The reference's shape by default: stdio servers only.
    assert eryx_mcp.discover_servers([cfg]) == {}
    found = eryx_mcp.discover_servers([cfg], include_remote=True)
    assert found["remote-one"] == {"url": f"http://127.0.0.1:{port}/mcp",
                                   "headers": {"Authorization": "Bearer ${ERYX_TOKEN}"},
                                   "transport": "http"}
    assert found["legacy"]["transport"] == "sse" and found["either"]["transport"] == "auto"
    assert sorted(found) == ["either", "evil", "legacy", "remote-one"]
    assert "'broken' is left out: its url is not http:// or https://" in capsys.readouterr().err
    with eryx_mcp.connect_servers([cfg], connect_timeout=20) as manager:
        assert manager.server_names == ["remote_one", "legacy", "either"]
        # The older transport: no session header; a stream that ends
        # fails the call waiting on it.
        r = eryx.Sandbox(mcp=manager).execute(
            "print(await mcp.remote_one.seen())\n"
            "print((await mcp.legacy.seen())['Mcp-Session-Id'])\n"
            "try:\n"
            "    await mcp.either.cut()\n"
            "except Exception as e:\n"
            "    print('the server ended its event stream' in str(e))\n")
    assert r.stdout == ("{'Mcp-Session-Id': 'test-session-1', 'MCP-Protocol-Version': "
                        "'2025-11-25', 'Authorization': 'Bearer s3cret', 'X-Team': None}\n"
                        "None\nTrue\n")
    err = capsys.readouterr().err
    assert "failed to connect to 'evil': header 'X': want a name and a value on one line" in err
    for _ in range(50):  # the proxy ends the session when the manager closes
        if log.exists() and log.read_text() == "DELETE test-session-1\n":
            break
        time.sleep(0.1)
    assert log.read_text() == "DELETE test-session-1\n"


def test_connect_http_directly(http_server):
    port, log = http_server
    with eryx.MCPManager() as manager:
        assert manager.connect_http("remote", f"http://127.0.0.1:{port}/mcp",
                                    {"X-Team": "eryx"}, timeout_secs=20) == 2
        r = eryx.Sandbox(mcp=manager).execute("print((await mcp.remote.seen())['X-Team'])")
        assert r.stdout == "eryx\n"
        # One connection, kept alive, carries call after call. (An answer is
        # passed on before its connection is back among the idle ones when
        # the response's end is not there to read yet, so under load a call
        # may find it busy and open another: seen once, in a run of the suite.)
        r = eryx.Sandbox(mcp=manager).execute(
            "ports = [(await mcp.remote.port())['port'] for _ in range(5)]\n"
            "print(len(set(ports)))")
        assert r.stdout in ("1\n", "2\n")
        with pytest.raises(ValueError, match="http"):
            manager.connect_http("x", "ftp://example.com/")
        with pytest.raises(ValueError, match="transport"):
            manager.connect_http("x", f"http://127.0.0.1:{port}/sse", transport="ws")
        assert manager.connect_http("old", f"http://127.0.0.1:{port}/sse", {"X-Team": "sse"},
                                    timeout_secs=20, transport="sse") == 3
        r = eryx.Sandbox(mcp=manager).execute("print((await mcp.old.seen())['X-Team'])")
        assert r.stdout == "sse\n"
        with pytest.raises(ValueError, match="one line"):
            manager.connect_http("x", "http://127.0.0.1:1/", {"X": "a\nb"})
        with pytest.raises(ValueError, match="one line"):
            manager.connect_http("x", "http://127.0.0.1:1/", {"Bad Name": "v"})
        with pytest.raises(eryx.InitializationError):
            manager.connect_http("nobody", "http://127.0.0.1:1/mcp", timeout_secs=10)
        assert manager.server_names == ["remote", "old"]
