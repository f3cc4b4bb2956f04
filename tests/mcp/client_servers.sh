#!/usr/bin/env bash
# Code in the sandbox calls real MCP servers through --mcp-server:
# @modelcontextprotocol/server-everything (the protocol's test server) and
# @modelcontextprotocol/server-filesystem on a temporary directory.
# usage: client_servers.sh ERYX_BINARY   (npm packages: scripts/install-npm.sh)
set -u
ERYX=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
npm_dir=$("$here/../../scripts/install-npm.sh" | tail -n 1) || exit 1
N=$npm_dir/node_modules/@modelcontextprotocol
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/files"
echo hello >"$tmp/files/a.txt"

cat >"$tmp/code.py" <<EOF
import asyncio
names = {c["name"]: c for c in list_callbacks()}
# Tool names with hyphens become identifiers; schemas come along.
print("get-sum:", "mcp.ev.get_sum" in names, sorted(names["mcp.ev.get_sum"]["parameters"]["properties"]))
print(await mcp.ev.get_sum(a=2, b=3))
print(await mcp.ev.get_sum(4, 5))                       # positional, schema order
print(await mcp.ev.echo(message="hi"))
print(await mcp.ev.get_structured_content(location="New York"))   # structuredContent
image = await mcp.ev.get_tiny_image()                    # mixed content: the list
print([item["type"] for item in image])
try:
    await mcp.ev.get_sum(a="x", b=1)
except CallbackError as e:
    print("invalid arguments:", e.kind, "Input validation error" in str(e))
# 100 calls in one gather: concurrent requests to one server.
sums = await asyncio.gather(*[mcp.ev.get_sum(a=i, b=1) for i in range(100)])
print(len(sums), sums[0], sums[99])
# The filesystem server, on a temporary directory.
print(await mcp.fs.read_text_file(path="$tmp/files/a.txt"))
await mcp.fs.write_file(path="$tmp/files/b.txt", content="written from the sandbox")
print(await mcp.fs.list_directory(path="$tmp/files"))
# NUL characters both ways: "\u0000" is JSON, and a response holding one
# was dropped as a parse error (the call then timed out).
await mcp.fs.write_file(path="$tmp/files/nul.txt", content="x\0y")
print(repr(await mcp.fs.read_text_file(path="$tmp/files/nul.txt")))
try:
    await mcp.fs.read_text_file(path="/etc/passwd")
except CallbackError as e:
    print("outside:", "Access denied" in str(e))
EOF
cat >"$tmp/want" <<EOF
get-sum: True ['a', 'b']
The sum of 2 and 3 is 5.
The sum of 4 and 5 is 9.
Echo: hi
{'temperature': 33, 'conditions': 'Cloudy', 'humidity': 82}
['text', 'image', 'text']
invalid arguments: failed True
100 The sum of 0 and 1 is 1. The sum of 99 and 1 is 100.
{'content': 'hello\n'}
{'content': '[FILE] a.txt\n[FILE] b.txt'}
{'content': 'x\x00y'}
outside: True
EOF
timeout 120 "$ERYX" --mcp-server ev="node $N/server-everything/dist/index.js stdio" \
    --mcp-server fs="node $N/server-filesystem/dist/index.js $tmp/files" \
    "$tmp/code.py" >"$tmp/out" 2>"$tmp/err"
status=$?
fails=0
if [ $status != 0 ] || ! diff -u "$tmp/want" "$tmp/out"; then
    echo "FAIL client_servers: status $status"; cat "$tmp/err"; fails=1
fi
if [ "$(cat "$tmp/files/b.txt")" != "written from the sandbox" ]; then
    echo "FAIL client_servers: b.txt not written"; fails=1
fi
[ $fails = 0 ] && echo "client_servers: all passed"
[ $fails = 0 ]
