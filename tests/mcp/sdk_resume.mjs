// The TypeScript SDK's client calls run_python at URL (process.argv[2]),
// through http_resume.sh's relay, which cuts the connection after the
// stream's priming event: the SDK resumes the stream (a GET with
// Last-Event-ID) and prints the result.
const sdk = `${process.env.MCP_NPM_DIR}/node_modules/@modelcontextprotocol/sdk/dist/esm`;
const { Client } = await import(`${sdk}/client/index.js`);
const { StreamableHTTPClientTransport } = await import(`${sdk}/client/streamableHttp.js`);
const client = new Client({ name: 'resume', version: '1' });
await client.connect(new StreamableHTTPClientTransport(new URL(process.argv[2])));
const r = await client.callTool({
  name: 'run_python',
  arguments: { code: "import time; time.sleep(1); print('cut me, ' + 'sdk')" },
});
console.log(JSON.stringify(r));
await client.close();
