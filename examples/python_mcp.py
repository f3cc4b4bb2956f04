"""Code mode in Python: sandboxed code calls an MCP server's tools, concurrently.

Run it with the package installed, or with PYTHONPATH=build/python:

    python3 examples/python_mcp.py [path/to/server-filesystem/dist/index.js]

It starts @modelcontextprotocol/server-filesystem on a temporary directory
(with node and the given script, else with npx, which may download it).
The sandboxed code lists the directory, reads every file at once with
asyncio.gather, and hands back only a summary: the files' contents never
leave the sandbox.
"""

import os
import shutil
import sys
import tempfile

import eryx

CODE = """
import asyncio
listing = (await mcp.fs.list_directory(path=DATA))["content"].splitlines()
files = sorted(line.split(" ", 1)[1] for line in listing if line.startswith("[FILE]"))
texts = await asyncio.gather(*[mcp["fs"].read_text_file(path=f"{DATA}/{f}") for f in files])
result = {f: len(t["content"].split()) for f, t in zip(files, texts)}
"""


def main() -> None:
    data = tempfile.mkdtemp()
    try:
        for name, text in {"notes.txt": "buy milk and eggs", "todo.md": "- write the example",
                           "poem.txt": "so much depends upon a red wheel barrow"}.items():
            with open(os.path.join(data, name), "w") as f:
                f.write(text)
        if len(sys.argv) > 1:
            command, args = "node", [sys.argv[1], data]
        else:
            command, args = "npx", ["-y", "@modelcontextprotocol/server-filesystem", data]
        with eryx.MCPManager() as manager:
            manager.connect("fs", command, args, timeout_secs=120)
            names = [t["name"] for t in manager.list_tools()]
            print("tools include", sorted(n for n in names if n.endswith((".list_directory",
                                                                         ".read_text_file"))))
            sandbox = eryx.Sandbox(mcp=manager)
            r = sandbox.execute(f"DATA = {data!r}\n" + CODE)
            print("words per file:", r.result, "-", r.callback_invocations, "tool calls")
    finally:
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
