// MCP benchmarks (BENCHMARKS.md, "MCP"): driven by the TypeScript SDK's
// Client over stdio, in one run, each figure the median of ROUNDS rounds.
//   1. Round trip of one tools/call: run_python("pass") on `eryx mcp`;
//      the same tool on a server that runs native CPython per call
//      (native_python_server.mjs); server-everything's echo (the protocol
//      alone).
//   2. 100 calls of server-everything's get-sum: one run_python whose code
//      gathers them (code mode, `eryx mcp --mcp-server ev=...`); the same
//      code awaiting them one after the other; the client calling the tool
//      100 times itself, one at a time.
// usage: node bench/mcp/mcp_bench.mjs ERYX NPM_DIR NATIVE_PYTHON [ROUNDS]
// Prints a Markdown section.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

const [eryx, npm, python, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 5);
const sdkDir = `${npm}/node_modules/@modelcontextprotocol/sdk`;
const { Client } = await import(`${sdkDir}/dist/esm/client/index.js`);
const { StdioClientTransport } = await import(`${sdkDir}/dist/esm/client/stdio.js`);
const everything = `${npm}/node_modules/@modelcontextprotocol/server-everything/dist/index.js`;
const here = path.dirname(new URL(import.meta.url).pathname);

async function connect(command, args) {
  const t = new StdioClientTransport({ command, args, stderr: 'ignore' });
  const c = new Client({ name: 'bench', version: '1' });
  await c.connect(t);
  return c;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

const eryxClient = await connect(eryx, ['mcp', '--mcp-server', `ev=node ${everything} stdio`]);
const nativeClient = await connect('node', [`${here}/native_python_server.mjs`, sdkDir, python]);
const evClient = await connect('node', [everything, 'stdio']);

const call = (c, name, args) => c.callTool({ name, arguments: args });
const check = (r) => { if (r.isError) throw new Error(JSON.stringify(r.content)); return r; };

// The figures of one table are taken interleaved, round by round, their
// order rotated each round, so that a busy moment of the machine falls on
// all of them alike.
async function interleaved(fns) {
  const names = Object.keys(fns);
  const per = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) await fns[n].fn(); // warm
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const n = names[(k + r) % names.length];
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < fns[n].reps; i++) await fns[n].fn();
      per[n].push(ms(t0) / fns[n].reps);
    }
  }
  return Object.fromEntries(names.map((n) => [n,
    { median: median(per[n]), min: Math.min(...per[n]), max: Math.max(...per[n]) }]));
}

const rt = await interleaved({
  eryx: { reps: 20, fn: async () => check(await call(eryxClient, 'run_python', { code: 'pass' })) },
  native: { reps: 3, fn: async () => check(await call(nativeClient, 'run_python', { code: 'pass' })) },
  echo: { reps: 20, fn: async () => check(await call(evClient, 'echo', { message: 'x' })) },
});

const gatherCode = 'import asyncio\nr = await asyncio.gather(*[mcp.ev.get_sum(a=i, b=1) for i in range(100)])\nassert len(r) == 100';
const serialCode = 'for i in range(100):\n    await mcp.ev.get_sum(a=i, b=1)';
const hundred = await interleaved({
  gather: { reps: 1, fn: async () => check(await call(eryxClient, 'run_python', { code: gatherCode })) },
  serial: { reps: 1, fn: async () => check(await call(eryxClient, 'run_python', { code: serialCode })) },
  client: { reps: 1, fn: async () => {
    for (let i = 0; i < 100; i++) check(await call(evClient, 'get-sum', { a: i, b: 1 }));
  } },
});

await eryxClient.close();
await nativeClient.close();
await evClient.close();

const fmt = (x) => `${x.median.toFixed(2)} ms (${x.min.toFixed(2)}–${x.max.toFixed(2)})`;
const sh = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: 'utf8' }).trim(); } catch { return '?'; } };
console.log(`## MCP (issue 15): tool calls over stdio

- date: ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC
- git commit: ${sh('git', ['-C', here, 'rev-parse', '--short', 'HEAD'])}
- machine: ${os.cpus()[0].model}, \`nproc\` = ${os.cpus().length}; load average before the run ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}
- command: \`node bench/mcp/mcp_bench.mjs build/bin/eryx NPM_DIR NATIVE_PYTHON ${rounds}\` (NPM_DIR: \`scripts/install-npm.sh\`; NATIVE_PYTHON: the guest build's native CPython 3.13)
- client: \`@modelcontextprotocol/sdk\` ${sh('node', ['-p', `require('${sdkDir}/package.json').version`])} \`Client\` over \`StdioClientTransport\`, Node ${process.version}; each figure the median (min–max) over ${rounds} rounds, after one warm-up call; the figures of a table taken interleaved, their order rotated each round

One tool call, client → server → client (per call):

| server | tool | time per call |
|---|---|---|
| \`eryx mcp\` | \`run_python("pass")\` (a session sandbox, kept between calls) | ${fmt(rt.eryx)} |
| SDK \`McpServer\` running native CPython per call (\`bench/mcp/native_python_server.mjs\`) | \`run_python("pass")\` (\`python -c pass\`, no sandbox) | ${fmt(rt.native)} |
| \`server-everything\` | \`echo\` (the protocol and the SDK alone) | ${fmt(rt.echo)} |

100 calls of \`server-everything\`'s \`get-sum\` (the whole batch):

| how | time for 100 calls |
|---|---|
| code mode: one \`run_python\` on \`eryx mcp --mcp-server ev=...\` whose code makes the 100 calls in one \`asyncio.gather\` | ${fmt(hundred.gather)} |
| one \`run_python\` whose code awaits the 100 calls one after the other | ${fmt(hundred.serial)} |
| the client calls the tool 100 times itself, one at a time | ${fmt(hundred.client)} |
`);
