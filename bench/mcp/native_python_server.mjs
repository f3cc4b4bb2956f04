// The peer of `eryx mcp` in bench/mcp/mcp_bench.mjs: an MCP server built on
// the TypeScript SDK whose run_python tool runs the code with native
// CPython (`PYTHON -c CODE`, a new process per call, no sandbox), as a
// server without eryx would. usage: node native_python_server.mjs SDK_DIR PYTHON
import { execFile } from 'node:child_process';

const [sdkDir, python] = process.argv.slice(2);
const { McpServer } = await import(`${sdkDir}/dist/esm/server/mcp.js`);
const { StdioServerTransport } = await import(`${sdkDir}/dist/esm/server/stdio.js`);
const { z } = await import(`${sdkDir}/../../zod/index.js`).catch(() => import('zod'));

const server = new McpServer({ name: 'native-python', version: '1.0.0' });
server.registerTool('run_python', {
  description: 'Run Python code with native CPython',
  inputSchema: { code: z.string() },
}, async ({ code }) => new Promise((resolve) => {
  execFile(python, ['-c', code], (err, stdout, stderr) => {
    resolve({ content: [{ type: 'text', text: stdout + stderr }], isError: !!err });
  });
}));
await server.connect(new StdioServerTransport());
