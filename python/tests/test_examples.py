"""The Python examples in examples/ run and print what they promise."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_python_tools_example():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python_tools.py")],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("fetched 2\n"
                        "result: {'Oslo': 53.6, 'Lisbon': 64.4} - weather calls in flight at once: 2\n"
                        "parent keeps 2 reports; fork has 3\n")


def test_python_mcp_example():
    # server-filesystem from the npm packages of the MCP tests (tests/mcp).
    npm = subprocess.run([os.path.join(ROOT, "scripts", "install-npm.sh")], capture_output=True,
                         text=True, timeout=900)
    assert npm.returncode == 0, npm.stderr
    server = os.path.join(npm.stdout.strip().splitlines()[-1], "node_modules",
                          "@modelcontextprotocol", "server-filesystem", "dist", "index.js")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python_mcp.py"), server],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("tools include ['mcp[\"fs\"].list_directory', "
                        "'mcp[\"fs\"].read_text_file']\n"
                        "words per file: {'notes.txt': 4, 'poem.txt': 8, 'todo.md': 4} "
                        "- 4 tool calls\n")
