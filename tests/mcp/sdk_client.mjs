// Drives `eryx mcp` with the official TypeScript SDK's Client over its
// StdioClientTransport: the handshake, tools/list (descriptions, schemas,
// stubs), run_python with sessions, errors, limits, mounts, callbacks and
// MCP tools (code mode), cancellation, progress, and a client that leaves
// while code runs.
// usage: node sdk_client.mjs ERYX_BINARY   (MCP_NPM_DIR: scripts/install-npm.sh's directory)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const eryx = path.resolve(process.argv[2]);
const npm = process.env.MCP_NPM_DIR;
const sdk = `${npm}/node_modules/@modelcontextprotocol/sdk/dist/esm`;
const { Client } = await import(`${sdk}/client/index.js`);
const { StdioClientTransport } = await import(`${sdk}/client/stdio.js`);
const everything = `${npm}/node_modules/@modelcontextprotocol/server-everything/dist/index.js`;

let passed = 0;
async function test(name, fn) {
  const t0 = Date.now();
  await fn();
  passed++;
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
}

async function connect(args, capabilities = {}) {
  const transport = new StdioClientTransport({ command: eryx, args: ['mcp', ...args], stderr: 'inherit' });
  const client = new Client({ name: 'eryx-test', version: '1.0.0' }, { capabilities });
  await client.connect(transport);
  return { client, transport };
}

// `eryx mcp --http` on a port of its own, with more arguments: the process
// and the URL it says it serves.
async function httpServer(args) {
  const { spawn } = await import('node:child_process');
  const server = spawn(eryx, ['mcp', '--http', '127.0.0.1:0', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  server.stderr.on('data', (d) => { err += d; });
  const t0 = Date.now();
  while (!/serving (http:\S+)/.test(err) && Date.now() - t0 < 10000)
    await new Promise((r) => setTimeout(r, 50));
  return { server, url: new URL(err.match(/serving (http:\S+)/)[1]) };
}

const run = (client, code, extra = {}, options = {}) =>
  client.callTool({ name: 'run_python', arguments: { code, ...extra } }, undefined, options);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eryx-mcp-'));
fs.writeFileSync(path.join(dir, 'data.txt'), 'mounted data\n');

const { client, transport } = await connect([
  '--timeout', '20000', '--max-memory', '96M', '--max-output', '64k',
  '--mount', `${dir}:/data`,
  '--callback', 'add=python3 -c "import json,sys; a=json.load(sys.stdin); print(a[\'a\']+a[\'b\'])"',
  '--callback-description', 'add=Adds two numbers.',
  '--mcp-server', `ev=node ${everything} stdio`,
]);

await test('initialize', async () => {
  assert.equal(client.getServerVersion().name, 'eryx');
  assert.ok(client.getServerCapabilities().tools);
  assert.match(client.getInstructions(), /run_python/);
});

let tools;
await test('tools/list', async () => {
  ({ tools } = await client.listTools());
  assert.deepEqual(tools.map((t) => t.name), ['run_python', 'reset_session', 'list_sessions']);
  const rp = tools[0];
  assert.deepEqual(rp.inputSchema.required, ['code']);
  assert.equal(rp.outputSchema.type, 'object');
  // What the model is told: version, limits, mounts, the callbacks as stubs.
  assert.match(rp.description, /Run Python 3\.13\.\d+ code/);
  assert.match(rp.description, /20\.0 s of wall-clock time/);
  assert.match(rp.description, /96 MiB of memory/);
  assert.match(rp.description, /\/data \(read-only\)/);
  assert.match(rp.description, /async def add\(\) -> Any:\n {4}"""Adds two numbers\."""/);
  assert.match(rp.description, /async def mcp\.ev\.get_sum\(a: float, b: float\) -> str \| list \| None:/);
  assert.match(rp.description, /async def mcp\.ev\.get_structured_content\(location: str\) -> dict:/);
});

await test('run_python: output, result, sessions persist', async () => {
  let r = await run(client, 'x = 41\nprint("hello")');
  assert.equal(r.isError, false);
  assert.equal(r.structuredContent.status, 'ok');
  assert.equal(r.structuredContent.stdout, 'hello\n');
  assert.equal(r.content[0].type, 'text');
  assert.match(r.content[0].text, /^hello\n/);
  r = await run(client, 'result = {"answer": x + 1}');
  assert.deepEqual(r.structuredContent.result, { answer: 42 });
  assert.match(r.content[0].text, /\[result\] \{"answer":42\}/);
  assert.equal(r.structuredContent.session, 'default');
});

await test('run_python: a result JSON cannot carry, or forged, is an error, not null', async () => {
  // A NUL is JSON (\u0000), though not by jansson's default: it passes.
  let r = await run(client, 'result = "a\\x00b"');
  assert.equal(r.structuredContent.result, 'a\u0000b');
  assert.equal(r.structuredContent.result_error, undefined);
  r = await run(client, 'result = float("nan")');
  assert.equal(r.structuredContent.result, null);
  assert.match(r.structuredContent.result_error, /Out of range float values are not JSON compliant/);
  // The guest's code can hand the host any text as the result (event kind 2).
  r = await run(client, 'import _eryx_host\n_eryx_host.event(2, b"[1, NaN]")');
  assert.equal(r.structuredContent.result, null);
  assert.equal(r.structuredContent.result_error, 'the sandbox reported a result that is not JSON');
});

await test('run_python: integers beyond 64 bits reach the client, exact in result_json', async () => {
  // JSON sets no size on an integer and Python writes it whole; the server's
  // reader stops at 64 bits, so the value carries it as a number (as
  // JSON.parse would) and result_json and the text carry the exact digits.
  let r = await run(client, 'result = {"big": 10**30, "small": 3}');
  assert.equal(r.structuredContent.result_error, undefined);
  assert.deepEqual(r.structuredContent.result, { big: 1e30, small: 3 });
  assert.equal(r.structuredContent.result_json, '{"big": 1000000000000000000000000000000, "small": 3}');
  assert.match(r.content[0].text, /\[result\] \{"big": 1000000000000000000000000000000, "small": 3\}/);
  // A plain result has no result_json: the value is the whole answer.
  r = await run(client, 'result = [1, 2]');
  assert.equal(r.structuredContent.result_json, undefined);
  // Beyond a double's range the value cannot be given: an error says so.
  r = await run(client, 'result = 10**400');
  assert.equal(r.structuredContent.result, null);
  assert.match(r.structuredContent.result_error, /beyond a double's range/);
});

await test('run_python: sessions are separate', async () => {
  let r = await run(client, 'y = "in b"', { session: 'b' });
  assert.equal(r.structuredContent.status, 'ok');
  r = await run(client, 'print(x)', { session: 'b' });
  assert.equal(r.isError, true);
  assert.equal(r.structuredContent.error.type, 'NameError');
  r = await run(client, 'result = y', { session: 'b' });
  assert.equal(r.structuredContent.result, 'in b');
  r = await client.callTool({ name: 'list_sessions', arguments: {} });
  assert.deepEqual(r.structuredContent.sessions.map((s) => s.name).sort(), ['b', 'default']);
  r = await client.callTool({ name: 'reset_session', arguments: { session: 'b' } });
  assert.equal(r.structuredContent.existed, true);
  r = await run(client, 'print(y)', { session: 'b' });
  assert.equal(r.structuredContent.error.type, 'NameError');
  r = await run(client, 'result = x', {});
  assert.equal(r.structuredContent.result, 41);
});

await test('run_python: exceptions and bad arguments', async () => {
  let r = await run(client, 'def f():\n    1/0\nf()');
  assert.equal(r.isError, true);
  assert.equal(r.structuredContent.status, 'exception');
  assert.equal(r.structuredContent.error.type, 'ZeroDivisionError');
  assert.match(r.structuredContent.error.traceback, /line 2, in f/);
  assert.match(r.content[0].text, /ZeroDivisionError: division by zero/);
  r = await client.callTool({ name: 'run_python', arguments: { code: 'pass', session: 'no spaces' } });
  assert.equal(r.isError, true);
  r = await client.callTool({ name: 'run_python', arguments: {} });
  assert.equal(r.isError, true);
  await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }), /unknown tool/);
  r = await run(client, 'import sys; sys.exit(3)');
  assert.equal(r.structuredContent.status, 'exit');
  assert.equal(r.structuredContent.exit_code, 3);
  r = await run(client, 'print(b"\\xff\\x00".decode("latin-1"))');
  assert.equal(r.structuredContent.stdout, '\u00ff\u0000\n');
  // The text carries them too: it was cut at the first NUL (the output
  // after it, the status and the traceback were lost).
  assert.equal(r.content[0].text, '\u00ff\u0000\n');
  // A NUL character in a request is JSON too (it was a parse error): in
  // the code, Python's own error; in a name, refused, not read as "a".
  r = await run(client, 'print(1)\u0000');
  assert.equal(r.structuredContent.status, 'exception');
  assert.match(r.structuredContent.error.message, /null bytes/);
  r = await run(client, 'print("a\\0b"); raise ValueError("x\\0y")');
  assert.equal(r.structuredContent.error.message, 'x\u0000y');
  assert.match(r.structuredContent.error.traceback, /ValueError: x\u0000y\n$/);
  assert.match(r.content[0].text, /^a\u0000b\n\n\[exception\]\nTraceback[^]*ValueError: x\u0000y\n$/);
  r = await client.callTool({ name: 'run_python', arguments: { code: 'pass', session: 'a\u0000b' } });
  assert.equal(r.isError, true);
  await assert.rejects(client.callTool({ name: 'run_python\u0000x', arguments: { code: 'pass' } }),
                       /unknown tool/);
});

await test('limits: timeout, memory, output, mount', async () => {
  let r = await run(client, 'while True: pass', { timeout_ms: 300 });
  assert.equal(r.structuredContent.status, 'timeout');
  assert.equal(r.structuredContent.stopped, 'timeout');
  // Code that catches the stop ends ok; `stopped` and the text still say it.
  r = await run(client, 'import time\ntry:\n    time.sleep(5)\nexcept KeyboardInterrupt:\n    print("caught")',
                { timeout_ms: 300 });
  assert.equal(r.structuredContent.status, 'ok');
  assert.equal(r.structuredContent.stopped, 'timeout');
  assert.match(r.content[0].text, /^caught\n\n\[the time limit passed: the code caught/);
  r = await run(client, 'print(1)');
  assert.equal(r.structuredContent.stopped, null);
  r = await run(client, 'b = bytearray(200 << 20)');
  assert.equal(r.structuredContent.error.type, 'MemoryError');
  r = await run(client, 'print("z" * 100000)');
  assert.equal(r.structuredContent.output_truncated, true);
  assert.ok(r.structuredContent.stdout.length < 70000);
  r = await run(client, 'result = open("/data/data.txt").read()');
  assert.equal(r.structuredContent.result, 'mounted data\n');
  r = await run(client, 'open("/data/new.txt", "w")');
  assert.equal(r.structuredContent.error.type, 'OSError');
  r = await run(client, 'result = x');     // the session survived all of it
  assert.equal(r.structuredContent.result, 41);
});

await test('callbacks and MCP tools (code mode)', async () => {
  let r = await run(client, 'result = await add(a=2, b=3)');
  assert.equal(r.structuredContent.result, 5);
  r = await run(client, [
    'import asyncio',
    'sums = await asyncio.gather(*[mcp.ev.get_sum(a=i, b=i) for i in range(20)])',
    'weather = await mcp.ev.get_structured_content(location="Chicago")',
    'result = {"n": len(sums), "last": sums[-1], "weather": weather,',
    '          "callbacks": sorted(c["name"] for c in list_callbacks())[:2]}',
  ].join('\n'));
  assert.equal(r.isError, false, r.content[0].text);
  assert.equal(r.structuredContent.result.n, 20);
  assert.equal(r.structuredContent.result.last, 'The sum of 19 and 19 is 38.');
  assert.equal(typeof r.structuredContent.result.weather.temperature, 'number');
  assert.deepEqual(r.structuredContent.result.callbacks, ['add', 'mcp.ev.echo']);
});

await test('cancellation interrupts the run', async () => {
  const ac = new AbortController();
  const t0 = Date.now();
  const p = run(client, 'import time\nfor i in range(100):\n    time.sleep(0.1)\nfinished = True',
    { session: 'c' }, { signal: ac.signal });
  setTimeout(() => ac.abort('test'), 500);
  await assert.rejects(p);
  // The next call on the session waits for the interrupted run: it ends at
  // once, and it did not finish.
  const r = await run(client, 'result = "finished" in globals()', { session: 'c' });
  assert.equal(r.structuredContent.result, false);
  assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
});

await test('a cancelled run stopped hard empties its session, and the next answer says so', async () => {
  // Stuck in C (a backtracking regex): the interrupt cannot stop it, the
  // hard stop does and resets the session; the cancelled call gets no
  // answer, so the next call on the session is told. (Before, it just
  // found its variables gone.)
  await run(client, 'kept = 1', { session: 'h' });
  const ac = new AbortController();
  const p = run(client, 'import re\nre.match(r"(a*)*b", "a" * 40)', { session: 'h' },
    { signal: ac.signal });
  setTimeout(() => ac.abort('test'), 500);
  await assert.rejects(p);
  let r = await run(client, 'result = "kept" in globals()', { session: 'h' });
  assert.equal(r.structuredContent.result, false);
  assert.match(r.content[0].text, /a cancelled call on this session was stopped hard/);
  r = await run(client, 'result = 2', { session: 'h' });
  assert.doesNotMatch(r.content[0].text, /stopped hard/);
});

await test('the calls in progress hold at most 256 MiB of code', async () => {
  // Queued behind a busy session, 256 calls of --mcp-max-message each
  // held 4 GB (100 of 15 MB: 1.6 GB). 17 calls of 15 MiB fit, the 18th is
  // refused, and the 17 run when the session is free (its run waits for
  // the file the test writes once the 18th is refused).
  const gate = fs.mkdtempSync(path.join(os.tmpdir(), 'eryx-mcp-gate-'));
  const { client: c3 } = await connect(['--timeout', '60000', '--mount', `${gate}:/gate`]);
  try {
    const busy = run(c3, 'import os, time\nwhile not os.path.exists("/gate/go"):\n'
      + '    time.sleep(0.05)', { session: 'b' });
    const big = '#' + 'x'.repeat(15 << 20) + '\nresult = 1';
    const queued = Array.from({ length: 18 }, () => run(c3, big, { session: 'b' }));
    const last = await queued[17];
    assert.match(last.content[0].text, /the calls in progress hold 2\d\d MiB of code/);
    fs.writeFileSync(path.join(gate, 'go'), '');
    await busy;
    const rs = await Promise.all(queued.slice(0, 17));
    assert.ok(rs.every((r) => r.structuredContent?.result === 1));
  } finally {
    await c3.close();
    fs.rmSync(gate, { recursive: true });
  }
});

await test('progress notifications', async () => {
  const seen = [];
  const r = await run(client, 'import time\ntime.sleep(2.3)\nresult = 1', {},
    { onprogress: (p) => seen.push(p), resetTimeoutOnProgress: true });
  assert.equal(r.structuredContent.result, 1);
  assert.ok(seen.length >= 2, `progress notifications: ${seen.length}`);
  assert.ok(seen[1].progress > seen[0].progress);
});

await test('concurrent calls on different sessions run at once', async () => {
  const t0 = Date.now();
  const rs = await Promise.all([1, 2, 3].map((i) =>
    run(client, 'import time\ntime.sleep(1)\nresult = 1', { session: `p${i}` })));
  assert.ok(rs.every((r) => r.structuredContent.result === 1));
  assert.ok(Date.now() - t0 < 2500, `took ${Date.now() - t0} ms`);
});

await test('a client that leaves ends the runs and the server', async () => {
  const { client: c2, transport: t2 } = await connect(['--timeout', '0']);
  const pid = t2.pid;
  c2.callTool({ name: 'run_python', arguments: { code: 'while True: pass' } }).catch(() => {});
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  await c2.close();
  let alive = true;
  while (alive && Date.now() - t0 < 5000) {
    try { process.kill(pid, 0); await new Promise((r) => setTimeout(r, 50)); } catch { alive = false; }
  }
  assert.equal(alive, false, 'eryx mcp still runs after the client left');
});

// A client that sends on stdin and does not read stdout (yet).
async function unread(args = []) {
  const { spawn } = await import('node:child_process');
  const child = spawn(eryx, ['mcp', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout.pause();
  child.stderr.setEncoding('utf8');
  child.err = '';
  child.stderr.on('data', (d) => { child.err += d; });
  child.send = (m) => child.stdin.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\n');
  child.send({ id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25',
    capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  child.kib = (k) => +(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8')
    .match(new RegExp(`${k}:\\s+(\\d+)`)) || [0, 0])[1];
  return child;
}

await test('answers a client has not read hold at most 256 MiB, and all arrive when it reads', async () => {
  // 30 calls printing 6 MB each (12 MB answers: stdout goes in both
  // forms), stdout unread: every call ran and held its answer, 1176 MiB
  // resident at the peak. Now 22 answers are held (264 MB), the 23rd run
  // waits for room, its session busy, and the calls behind it wait: 23
  // runs (each leaves a line in a mounted file), 355 MiB resident.
  const n = 30;
  const gate = fs.mkdtempSync(path.join(os.tmpdir(), 'eryx-mcp-unread-'));
  const child = await unread(['--timeout', '60000', '--mount', `${gate}:/gate:rw`]);
  const exited = new Promise((r) => child.on('exit', r));
  for (let i = 1; i <= n; i++)
    child.send({ id: i, method: 'tools/call', params: { name: 'run_python',
      arguments: { code: 'open("/gate/runs", "a").write("run\\n")\nprint("x" * 6_000_000)' } } });
  const runs = () => { try { return fs.readFileSync(path.join(gate, 'runs'), 'utf8').length / 4; } catch { return 0; } };
  let last = -1, still = 0;
  for (const t0 = Date.now(); (runs() < 23 || still < 6) && Date.now() - t0 < 60000;) {
    await new Promise((r) => setTimeout(r, 500));
    const rss = child.kib('VmRSS');
    still = Math.abs(rss - last) < 2048 ? still + 1 : 0;
    last = rss;
  }
  assert.equal(runs(), 23, 'runs while the answers are unread');
  // Under ASan the allocator keeps freed memory aside (its quarantine):
  // resident memory says nothing there; the runs above do.
  const peak = child.kib('VmHWM') >> 10;
  if (!process.env.ASAN_OPTIONS)
    assert.ok(peak < 640, `peak resident ${peak} MiB with ${n} answers unread`);
  let parts = [], whole = 0;
  child.stdout.on('data', (d) => {
    for (let i; (i = d.indexOf(10)) >= 0; d = d.subarray(i + 1)) {
      parts.push(d.subarray(0, i));
      const m = JSON.parse(Buffer.concat(parts).toString());
      parts = [];
      if (m.id >= 1 && m.result?.structuredContent?.stdout?.length === 6_000_001)
        whole++;
    }
    if (d.length) parts.push(d);
  });
  child.stdout.resume();
  for (const t0 = Date.now(); whole < n && Date.now() - t0 < 120000;)
    await new Promise((r) => setTimeout(r, 100));
  assert.equal(whole, n, 'answers delivered whole');
  assert.equal(runs(), n);
  child.stdin.end();
  await exited;
  fs.rmSync(gate, { recursive: true });
});

await test('a client that stops reading and closes stdin: the server exits 5 s later, 74', async () => {
  // Before, the server waited for ever: the ping's answer, behind a full
  // stdout, kept the reading thread from seeing stdin's end.
  const child = await unread();
  child.send({ id: 1, method: 'tools/call', params: { name: 'run_python',
    arguments: { code: 'print("x" * 2_000_000)' } } });
  await new Promise((r) => setTimeout(r, 1500));
  for (let i = 2; i < 5; i++)
    child.send({ id: i, method: 'ping' });
  await new Promise((r) => setTimeout(r, 500));
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  const t0 = Date.now();
  child.stdin.end();
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('running'), 20000))]);
  if (code === 'running')
    child.kill('SIGKILL');
  assert.equal(code, 74, `exit status (${Date.now() - t0} ms after stdin closed)`);
  // (the upper bound leaves room for the ASan stage under a loaded suite)
  assert.ok(Date.now() - t0 >= 4900 && Date.now() - t0 < 15000, `exited after ${Date.now() - t0} ms`);
  assert.match(child.err, /stdin closed, and stdout took nothing for 5 s: \d+ messages? not delivered/);
});

await test('a client that shuts its stdin socket down but keeps it open: the server exits 5 s later, 74', async () => {
  // libuv's stdio is a socketpair: an end of stdin that the client only
  // shuts down shows as POLLRDHUP, never POLLHUP, and the writer stuck
  // behind the unread stdout waited for ever.
  const { execFileSync } = await import('node:child_process');
  const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'stdin_half_close.py');
  const r = JSON.parse(execFileSync('python3', [script, eryx], { encoding: 'utf8', timeout: 60000 }));
  assert.equal(r.rc, 74, `exit status (${r.after} s after stdin ended)`);
  assert.ok(r.after >= 4.9 && r.after < 15, `exited after ${r.after} s`);
  assert.match(r.err, /stdin closed, and stdout took nothing for 5 s/);
});

await test('stdout is non-blocking on a pipe of its own, not when stderr shares it (2>&1)', async () => {
  // The flag belongs to the open file: shared with stderr, it made
  // stderr's messages drop while the pipe was full.
  const { execFileSync } = await import('node:child_process');
  const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'stdout_flags.py');
  const r = JSON.parse(execFileSync('python3', [script, eryx], { encoding: 'utf8', timeout: 60000 }));
  assert.deepEqual(r, { own: true, shared: false });
});

// Raw lines on stdin, answers read from stdout: what the SDK never sends.
async function raw(lines, args = []) {
  const { spawn } = await import('node:child_process');
  const child = spawn(eryx, ['mcp', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  for (const l of lines) child.stdin.write(l + '\n');
  const want = lines.filter((l) => !l.includes('"notifications/')).length;
  const t0 = Date.now();
  while (out.split('\n').length - 1 < want && Date.now() - t0 < 10000)
    await new Promise((r) => setTimeout(r, 20));
  child.stdin.end();
  await new Promise((r) => child.on('exit', r));
  return out.trim().split('\n').map((l) => JSON.parse(l));
}

await test('protocol revision negotiation', async () => {
  const init = (id, v) => JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize',
    params: { protocolVersion: v, capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  for (const [asked, answered] of [['2025-11-25', '2025-11-25'], ['2025-06-18', '2025-06-18'],
    ['2024-11-05', '2025-11-25'], ['1999-01-01', '2025-11-25']]) {
    const [r] = await raw([init(1, asked)]);
    assert.equal(r.result.protocolVersion, answered, `asked ${asked}`);
  }
});

await test('malformed messages get JSON-RPC errors', async () => {
  const rs = await raw([
    'not json at all',
    '{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
    '[{"jsonrpc": "2.0", "id": 2, "method": "ping"}]',
    '{"jsonrpc": "2.0", "id": 3, "method": "no/such/method"}',
    '{"jsonrpc": "2.0", "id": "four", "method": "ping"}',
    '{"jsonrpc": "2.0", "method": "notifications/unknown"}',
    '{"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"cursor": "bogus"}}',
    '{"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "run_python", "arguments": 7}}',
    // Invalid, but with a good id: answered with it (the client waits for
    // it; before, the answer's id was null).
    '{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": 5}',
    '{"jsonrpc": "2.0", "id": 8, "method": 8}',
    '{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping", "params": 5}',
  ]);
  assert.deepEqual(rs.map((r) => r.error ? r.error.code : 'ok'),
    [-32700, -32600, -32600, -32601, 'ok', -32602, -32602, -32600, -32600, -32600]);
  assert.equal(rs[4].id, 'four');
  assert.deepEqual(rs.slice(7).map((r) => r.id), [7, 8, null]);
  assert.match(rs[7].error.message, /params must be an object or an array/);
  assert.match(rs[8].error.message, /method must be a string/);
});

await test('run_python: a result too structured to read goes as its text', async () => {
  // 1.6 MB of `[{}, {}, ...]` is 93 MB parsed: the server sends the text alone.
  const [{ result: r }] = await raw([JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call',
    params: { name: 'run_python', arguments: { code: 'result = [{}] * 400000' } } })]);
  assert.equal(r.structuredContent.result, null);
  assert.match(r.structuredContent.result_error, /too structured to read here/);
  assert.equal(r.structuredContent.result_json, '[' + Array(400000).fill('{}').join(', ') + ']');
  assert.ok(r.content[0].text.startsWith('[result] [{}, {}'));
});

await test('a message too structured to read is a parse error, unread', async () => {
  // 240 KB of `[{},{},...]` would be 18 MB parsed: past 4 --mcp-max-message.
  const objs = Array(80000).fill('{}').join(',');
  const rs = await raw([
    `{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": [${objs}]}}`,
    '{"jsonrpc": "2.0", "id": 2, "method": "ping"}',
  ], ['--mcp-max-message', '256k']);
  assert.equal(rs[0].error.code, -32700);
  assert.match(rs[0].error.message, /more than 4 times the largest message to read/);
  assert.deepEqual(rs[1].result, {});
});

await test('an answer over --mcp-max-message is cut to fit', async () => {
  const [r] = await raw([JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call',
    params: { name: 'run_python', arguments: { code: 'print("\\x01" * 300000)\nresult = 7' } } })],
    ['--mcp-max-message', '256k']);
  const sc = r.result.structuredContent;
  assert.equal(sc.result, 7);
  assert.equal(sc.output_truncated, true);
  assert.match(sc.stdout, /bytes cut here/);
  assert.ok(JSON.stringify(r).length < 256 * 1024);
});

await test('an exception or result over --mcp-max-message is cut or left out, not lost', async () => {
  const call = (id, code) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
    params: { name: 'run_python', arguments: { code } } });
  const [e, big] = await raw([call(1, "raise ValueError('x' * 600000)"),
    call(2, "result = 'y' * 600000")], ['--mcp-max-message', '256k']);
  let sc = e.result.structuredContent;
  assert.equal(sc.status, 'exception');
  assert.match(sc.error.message, /bytes cut here/);
  assert.match(sc.error.traceback, /bytes cut here/);
  assert.ok(JSON.stringify(e).length < 256 * 1024);
  sc = big.result.structuredContent;
  assert.equal(sc.status, 'ok');
  assert.equal(sc.result, null);
  assert.match(sc.result_error, /--mcp-max-message/);
});

await test('--max-sessions: a new session takes the place of the least recently used', async () => {
  const { client: c } = await connect(['--max-sessions', '2']);
  try {
    await run(c, 'v = "a"', { session: 'a' });
    await run(c, 'v = "b"', { session: 'b' });
    await run(c, 'result = v', { session: 'a' });     // b is now the least recently used
    let r = await run(c, 'result = 3', { session: 'c' });
    assert.equal(r.structuredContent.result, 3);
    r = await c.callTool({ name: 'list_sessions', arguments: {} });
    assert.deepEqual(r.structuredContent.sessions.map((s) => s.name).sort(), ['a', 'c']);
    r = await run(c, 'result = "v" in globals()', { session: 'b' });
    assert.equal(r.structuredContent.result, false);
    assert.match(r.content[0].text, /dropped to make room/);
  } finally {
    await c.close();
  }
});

await test('Streamable HTTP: sessions of each MCP session, SSE progress, DELETE', async () => {
  const { StreamableHTTPClientTransport } = await import(`${sdk}/client/streamableHttp.js`);
  const gate = fs.mkdtempSync(path.join(os.tmpdir(), 'eryx-mcp-gate-'));
  const { server, url } = await httpServer(['--mount', `${gate}:/gate`]);
  try {
    const clients = [];
    for (let i = 0; i < 2; i++) {
      const t = new StreamableHTTPClientTransport(url);
      const c = new Client({ name: `http-${i}`, version: '1' });
      await c.connect(t);
      assert.match(t.sessionId, /^[0-9a-f]{32}$/);
      clients.push({ c, t });
    }
    // Each MCP session has its own "default" session.
    await run(clients[0].c, 'v = "zero"');
    await run(clients[1].c, 'v = "one"');
    let r = await run(clients[0].c, 'result = v');
    assert.equal(r.structuredContent.result, 'zero');
    r = await clients[1].c.callTool({ name: 'list_sessions', arguments: {} });
    assert.deepEqual(r.structuredContent.sessions.map((s) => s.name), ['default']);
    // Progress arrives as server-sent events before the answer.
    const seen = [];
    r = await run(clients[1].c, 'import time\ntime.sleep(1.3)\nresult = v', {},
      { onprogress: (p) => seen.push(p) });
    assert.equal(r.structuredContent.result, 'one');
    assert.ok(seen.length >= 1);
    // Ending the MCP session: later requests with its id are refused.
    const sid = clients[1].t.sessionId;
    await clients[1].t.terminateSession();
    const res = await fetch(url, { method: 'POST', headers: {
      'content-type': 'application/json', accept: 'application/json, text/event-stream',
      'mcp-session-id': sid },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }) });
    assert.equal(res.status, 404);
    // Not loopback: refused (DNS rebinding).
    const evil = await fetch(url, { method: 'POST', headers: { origin: 'http://evil.example' } });
    assert.equal(evil.status, 403);
    // The media type itself, not a substring of another; JSON that is no
    // object is an invalid request (-32600), not a parse error.
    const post = (type, body) => fetch(url, { method: 'POST', body, headers: {
      'content-type': type, accept: 'application/json, text/event-stream',
      'mcp-session-id': clients[0].t.sessionId } });
    assert.equal((await post('text/plain; x=application/json', '{}')).status, 415);
    const notObject = await post('application/json; charset=utf-8', '"x"');
    assert.equal(notObject.status, 400);
    assert.equal((await notObject.json()).error.code, -32600);
    // One MCP session has 16 calls in progress at most: a client that
    // posts calls and goes cannot fill the table of all clients.
    const slow = Array.from({ length: 17 }, (_, i) =>
      run(clients[0].c, 'import time\ntime.sleep(0.5)', { session: `q${i % 4}` }));
    const texts = (await Promise.all(slow)).map((x) => x.content[0].text);
    assert.equal(texts.filter((t) => /too many calls in progress \(this MCP session/.test(t)).length, 1);
    // One MCP session's calls hold at most 64 MiB of code (a quarter of
    // all): 16 calls of 16 MiB from one client took every client's room.
    // Five calls of 15 MiB that wait for a file: whichever arrives last
    // (each POST is a connection of its own) is refused, and another
    // client's call still fits.
    const big = '#' + 'x'.repeat(15 << 20) + '\nimport os, time\n'
      + 'while not os.path.exists("/gate/go"):\n    time.sleep(0.05)\nresult = 1';
    const held = Array.from({ length: 5 }, (_, i) => run(clients[0].c, big, { session: `b${i}` }));
    const refused = await Promise.race(held);
    assert.match(refused.content[0].text, /in progress of this MCP session hold 60 MiB of code/);
    const other = new Client({ name: 'http-2', version: '1' });
    await other.connect(new StreamableHTTPClientTransport(url));
    const others = run(other, big);
    fs.writeFileSync(path.join(gate, 'go'), '');
    assert.equal((await others).structuredContent.result, 1);
    await other.close();
    const rs = await Promise.all(held);
    assert.equal(rs.filter((r) => r.structuredContent?.result === 1).length, 4);
    // Progress tokens count with the code, held twice each for the whole
    // call: two calls with 12 MiB tokens hold 48 MiB, and a third would
    // pass the 64 (before, a session's 16 calls held 576 MB uncounted).
    // (Connections of their own: fetch's pool kept them alive after
    // these bodies, and the SDK's next request met one the server had
    // closed, EPIPE.)
    const { request } = await import('node:http');
    const token = 'p'.repeat(12 << 20);
    const call = (id, session) => new Promise((resolve, reject) => {
      const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
        params: { name: 'run_python', _meta: { progressToken: token },
          arguments: { code: 'import time\ntime.sleep(3)', session } } });
      const rq = request(url, { method: 'POST', agent: false, headers: {
        'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'mcp-session-id': clients[0].t.sessionId, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve(text));
      });
      rq.on('error', reject);
      rq.end(body);
    });
    const long = [call(201, 'k0'), call(202, 'k1')];
    await new Promise((r) => setTimeout(r, 1000));
    assert.match(await call(203, 'k2'), /of this MCP session hold 48 MiB of code and progress tokens/);
    for (const text of await Promise.all(long))
      assert.match(text, /"id":20[12],"result"/);
    await clients[0].c.close();
  } finally {
    server.kill();
    fs.rmSync(gate, { recursive: true });
  }
});

await test('Streamable HTTP: the answers one MCP session has not read hold at most 64 MiB', async () => {
  // A client posts 8 calls on 8 sessions, each answered with 12 MB, and
  // reads none of its connections: 5 answers (60 MB) are held, the other
  // runs wait for room, their sessions busy (before: all 8 ran and held
  // theirs). Another client's answer goes at once meanwhile.
  const net = await import('node:net');
  const { StreamableHTTPClientTransport } = await import(`${sdk}/client/streamableHttp.js`);
  const { server, url } = await httpServer(['--timeout', '60000']);
  const sockets = [];
  try {
    const t = new StreamableHTTPClientTransport(url);
    const a = new Client({ name: 'unread', version: '1' });
    await a.connect(t);
    for (let i = 0; i < 8; i++) {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 100 + i, method: 'tools/call',
        params: { name: 'run_python', arguments: { code: 'print("x" * 6_000_000)', session: `u${i}` } } });
      const sock = net.connect(+url.port, '127.0.0.1');
      sock.pause();
      sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${url.port}\r\nContent-Type: application/json\r\n`
        + 'Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n'
        + `Mcp-Session-Id: ${t.sessionId}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      sockets.push(sock);
    }
    const ran = async () => (await a.callTool({ name: 'list_sessions', arguments: {} }))
      .structuredContent.sessions.filter((x) => x.runs === 1).length;
    let n = -1, still = 0;
    for (const t1 = Date.now(); (n < 5 || still < 6) && Date.now() - t1 < 20000;) {
      await new Promise((r) => setTimeout(r, 500));
      const m = await ran();
      still = m === n ? still + 1 : 0;
      n = m;
    }
    assert.equal(n, 5, 'runs whose answers are held for the client that does not read');
    const b = new Client({ name: 'reads', version: '1' });
    await b.connect(new StreamableHTTPClientTransport(url));
    const t2 = Date.now();
    const r = await run(b, 'print("y" * 6_000_000)');
    assert.equal(r.structuredContent.stdout.length, 6_000_001);
    assert.ok(Date.now() - t2 < 10000, `the other client waited ${Date.now() - t2} ms`);
    await b.close();
  } finally {
    for (const sock of sockets)
      sock.destroy();
    server.kill();
  }
});

await test('Streamable HTTP: the cut streams one MCP session keeps hold at most 64 MiB', async () => {
  // A client of 2025-11-25 cuts 7 calls' connections after their priming
  // events; their 12 MB answers are kept for it to resume. 5 are (60 MB),
  // the 6th and 7th are over its quarter of the 256 MiB the streams keep
  // (before: all 7; and 22 such took every client's room).
  const net = await import('node:net');
  const { server, url } = await httpServer(['--timeout', '60000']);
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-11-25' };
  const post = (m) => fetch(url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', ...m }) });
  try {
    const init = await post({ id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25',
      capabilities: {}, clientInfo: { name: 'cuts', version: '1' } } });
    headers['mcp-session-id'] = init.headers.get('mcp-session-id');
    await init.text();
    const streams = [];
    for (let i = 0; i < 7; i++) {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 100 + i, method: 'tools/call',
        params: { name: 'run_python', arguments: { code: 'print("x" * 6_000_000)', session: `c${i}` } } });
      const sock = net.connect(+url.port, '127.0.0.1');
      sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${url.port}\r\nConnection: close\r\n`
        + Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
        + `Content-Length: ${body.length}\r\n\r\n${body}`);
      let got = '';
      const id = await new Promise((resolve, reject) => {
        sock.on('data', (d) => {
          got += d;
          const m = got.match(/id: (\d+)-0\n/);
          if (m) resolve(m[1]);
        });
        sock.on('error', reject);
        setTimeout(() => reject(new Error(`no priming event: ${got}`)), 10000);
      });
      sock.destroy();
      streams.push(id);
    }
    const ran = async () => {
      const r = await post({ id: 1, method: 'tools/call', params: { name: 'list_sessions', arguments: {} } });
      return (await r.json()).result.structuredContent.sessions.filter((x) => x.runs === 1).length;
    };
    for (const t1 = Date.now(); (await ran()) < 7 && Date.now() - t1 < 30000;)
      await new Promise((r) => setTimeout(r, 300));
    const codes = [];
    for (const id of streams) {
      const r = await fetch(url, { headers: { ...headers, 'last-event-id': `${id}-0` } });
      const text = await r.text();
      codes.push(r.status === 200 && text.includes('"id":1') && text.length > 12_000_000 ? 200 : r.status);
    }
    assert.equal(codes.filter((c) => c === 200).length, 5, `resumed: ${codes}`);
    assert.equal(codes.filter((c) => c === 404).length, 2, `resumed: ${codes}`);
  } finally {
    server.kill();
  }
});

await test('Streamable HTTP: a client that does not read its stream stalls no other client', async () => {
  // Two clients that never read their connections: one asked for progress
  // with a 12 MB progressToken (its first notification, a second into the
  // run, fills the socket's buffers), the other (2025-11-25: a resumable
  // stream) gets a 12 MB answer. Before, the progress notification was
  // written by the thread that accepts connections, and the kept streams'
  // expiry waited for the lock of the stream being written: each stalled
  // the accepting thread for 30 s (IO_TIMEOUT_MS), and a third client's
  // connection was not taken meanwhile.
  const net = await import('node:net');
  const { StreamableHTTPClientTransport } = await import(`${sdk}/client/streamableHttp.js`);
  const { server, url } = await httpServer(['--timeout', '60000']);
  const sockets = [];
  const unread = (sid, version, params) => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params });
    const sock = net.connect(+url.port, '127.0.0.1');
    sock.pause();
    sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${url.port}\r\nContent-Type: application/json\r\n`
      + `Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: ${version}\r\n`
      + `Mcp-Session-Id: ${sid}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    sockets.push(sock);
  };
  const served = async (what) => {
    const t1 = Date.now();
    const b = new Client({ name: 'reads', version: '1' });
    await b.connect(new StreamableHTTPClientTransport(url));
    const r = await run(b, 'result = 1');
    assert.equal(r.structuredContent.result, 1);
    await b.close();
    assert.ok(Date.now() - t1 < 5000, `${what}: another client waited ${Date.now() - t1} ms`);
  };
  try {
    const t = new StreamableHTTPClientTransport(url);
    const a = new Client({ name: 'unread', version: '1' });
    await a.connect(t);
    unread(t.sessionId, '2025-06-18', { name: 'run_python', _meta: { progressToken: 'p'.repeat(12_000_000) },
      arguments: { code: 'import time\ntime.sleep(30)', session: 'slow' } });
    await new Promise((r) => setTimeout(r, 3000));
    await served('a stream of progress not read');
    unread(t.sessionId, '2025-11-25', { name: 'run_python',
      arguments: { code: 'print("x" * 6_000_000)', session: 'big' } });
    await new Promise((r) => setTimeout(r, 3000));
    await served('a resumable stream\'s answer not read');
  } finally {
    for (const sock of sockets)
      sock.destroy();
    server.kill();
  }
});

await test('Streamable HTTP: a run whose answer waits for room sends no more progress', async () => {
  // One MCP session does not read 5 answers of 12 MB (60 MB held), then
  // asks for progress on a call whose answer waits for room (its 64 MiB).
  // Its run takes well under a second; before, "running for N s" went on
  // every second while the answer waited (3 and more here).
  const net = await import('node:net');
  const { server, url } = await httpServer(['--timeout', '60000']);
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-06-18' };
  const post = (m) => fetch(url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', ...m }) });
  const sockets = [];
  try {
    const init = await post({ id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18',
      capabilities: {}, clientInfo: { name: 'waits', version: '1' } } });
    headers['mcp-session-id'] = init.headers.get('mcp-session-id');
    await init.text();
    for (let i = 0; i < 5; i++) {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 100 + i, method: 'tools/call',
        params: { name: 'run_python', arguments: { code: 'print("x" * 6_000_000)', session: `u${i}` } } });
      const sock = net.connect(+url.port, '127.0.0.1');
      sock.pause();
      sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${url.port}\r\n`
        + Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
        + `Content-Length: ${body.length}\r\n\r\n${body}`);
      sockets.push(sock);
    }
    const ran = async () => {
      const r = await post({ id: 1, method: 'tools/call', params: { name: 'list_sessions', arguments: {} } });
      return (await r.json()).result.structuredContent.sessions.filter((x) => x.runs === 1).length;
    };
    for (const t1 = Date.now(); (await ran()) < 5 && Date.now() - t1 < 30000;)
      await new Promise((r) => setTimeout(r, 300));
    let arrived = false;
    const answer = post({ id: 2, method: 'tools/call', params: { name: 'run_python',
      _meta: { progressToken: 'w' }, arguments: { code: 'print("y" * 6_000_000)', session: 'w' } } })
      .then((r) => r.text()).then((text) => { arrived = true; return text; });
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(arrived, false, 'the answer waits for room');
    for (const sock of sockets)
      sock.destroy(); // their answers are given up: room for this one
    const events = (await answer).split('\n').filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)));
    const result = events.find((e) => e.id === 2).result.structuredContent;
    assert.equal(result.stdout.length, 6_000_001);
    const notes = events.filter((e) => e.method === 'notifications/progress');
    // Each one said the run had gone on that long: none after its end.
    for (const n of notes)
      assert.ok(n.params.progress * 1000 <= result.duration_ms + 250,
        `progress ${n.params.progress} s of a run of ${result.duration_ms} ms`);
  } finally {
    for (const sock of sockets)
      sock.destroy();
    server.kill();
  }
});

await client.close();
fs.rmSync(dir, { recursive: true });
console.log(`sdk_client: ${passed} passed`);
