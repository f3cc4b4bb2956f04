// An MCP server over stdio that misbehaves on purpose, for the tests of
// eryx's MCP client (tests/mcp/client_faults.sh). It initializes and lists
// its tools properly, then each tool does one bad thing:
//   ok(x)       answers {"x": x} as structured content
//   crash()     exits (status 3) without answering
//   hang()      never answers
//   garbage()   writes lines that are not JSON-RPC, then answers ok
//   huge(mb)    answers with one message of mb MiB
//   wide(mb, hide_id, as_text)  answers with mb MiB of empty objects as
//               structured content (a tree 77 times its text); hide_id puts
//               the message's id where neither of its ends shows it;
//               as_text sends them as the text of a string instead
//   stop_reading()  stops reading stdin (never answers)
//   error()     answers with a JSON-RPC error
//   tool_error()  answers with isError: true
//   unreadable(how)  answers with JSON a reader refuses: "overflow" a number
//               beyond a double's range, "deep" arrays nested 100 000 deep,
//               "hidden" deep with the id where neither end shows it
//   not_object()  answers with structuredContent that is a list
// Mode argument (argv[2]): "normal", "no-init" (never answers initialize),
// "paged" (tools/list in pages of one tool, with cursors), "odd-names"
// (tools named __class__, _path, -_dict__, x and x\0y, which answer their
// name, and one whose description has a two-byte character astride the
// stubs' 1500-byte cut).
import readline from 'node:readline';

const mode = process.argv[2] || 'normal';
const tools = ['ok', 'crash', 'hang', 'garbage', 'huge', 'wide', 'stop_reading', 'error', 'tool_error',
  'unreadable', 'not_object']
  .map((name) => ({
    name,
    description: `misbehaves: ${name}`,
    inputSchema: {
      type: 'object',
      properties: name === 'ok' ? { x: { type: 'integer' } } : name === 'huge' ? { mb: { type: 'number' } }
        : name === 'wide' ? { mb: { type: 'number' }, hide_id: { type: 'boolean' }, as_text: { type: 'boolean' } }
        : name === 'unreadable' ? { how: { type: 'string' } } : {},
    },
  }));

const oddTools = [
  { name: '__class__', description: 'dunder', inputSchema: { type: 'object' } },
  { name: '_path', description: 'private', inputSchema: { type: 'object' } },
  { name: '-_dict__', description: 'maps to a dunder', inputSchema: { type: 'object' } },
  { name: 'x', description: 'plain', inputSchema: { type: 'object' } },
  { name: 'x\u0000y', description: 'a NUL', inputSchema: { type: 'object' } },
  { name: 'long', description: 'a' + '\u00e9'.repeat(1000), inputSchema: { type: 'object' } },
];

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const msg = JSON.parse(line);
  if (msg.method === 'initialize') {
    if (mode === 'no-init') return;
    send({ jsonrpc: '2.0', id: msg.id, result: {
      protocolVersion: msg.params.protocolVersion,
      capabilities: { tools: {} },
      serverInfo: { name: 'bad', version: '1' },
    } });
  } else if (msg.method === 'tools/list') {
    if (mode === 'paged') {
      const i = msg.params && msg.params.cursor ? Number(msg.params.cursor) : 0;
      const result = { tools: [tools[i]] };
      if (i + 1 < tools.length) result.nextCursor = String(i + 1);
      send({ jsonrpc: '2.0', id: msg.id, result });
    } else {
      send({ jsonrpc: '2.0', id: msg.id, result: { tools: mode === 'odd-names' ? oddTools : tools } });
    }
  } else if (msg.method === 'tools/call') {
    const { name, arguments: args } = msg.params;
    const reply = (result) => send({ jsonrpc: '2.0', id: msg.id, result });
    if (mode === 'odd-names') {
      reply({ content: [{ type: 'text', text: name }] });
      return;
    }
    switch (name) {
      case 'ok':
        reply({ content: [{ type: 'text', text: JSON.stringify({ x: args.x }) }], structuredContent: { x: args.x } });
        break;
      case 'crash':
        process.exit(3);
        break;
      case 'hang':
        break;
      case 'garbage':
        process.stdout.write('this is not json\n{"json": "but not json-rpc"}\n[1, 2\n');
        reply({ content: [{ type: 'text', text: 'fine after all' }] });
        break;
      case 'huge': {
        const text = 'x'.repeat(Math.floor(args.mb * 1024 * 1024));
        reply({ content: [{ type: 'text', text }] });
        break;
      }
      case 'wide': {
        const items = new Array(Math.floor((args.mb * 1024 * 1024) / 3)).fill('{}').join(',');
        if (args.as_text) {
          reply({ content: [{ type: 'text', text: `[${items}]` }] });
          break;
        }
        const result = `{"content":[{"type":"text","text":"wide"}],"structuredContent":{"items":[${items}]}}`;
        process.stdout.write(args.hide_id
          ? `{"jsonrpc":"2.0","result":${result},"id":${JSON.stringify(msg.id)},"more":[${items}]}\n`
          : `{"jsonrpc":"2.0","id":${JSON.stringify(msg.id)},"result":${result}}\n`);
        break;
      }
      case 'stop_reading':
        rl.pause();
        setInterval(() => {}, 1000); // a paused stdin alone lets node exit
        break;
      case 'error':
        send({ jsonrpc: '2.0', id: msg.id, error: { code: -32000, message: 'it went wrong' } });
        break;
      case 'unreadable': {
        const id = JSON.stringify(msg.id);
        const deep = '['.repeat(100000) + ']'.repeat(100000);
        process.stdout.write(args.how === 'overflow'
          ? `{"jsonrpc":"2.0","id":${id},"result":{"content":[],"structuredContent":{"v":1e400}}}\n`
          : args.how === 'deep'
            ? `{"jsonrpc":"2.0","id":${id},"result":{"content":[],"structuredContent":{"v":${deep}}}}\n`
            : `{"jsonrpc":"2.0","result":{"content":[],"structuredContent":{"v":${deep}}},"id":${id},"more":1}\n`);
        break;
      }
      case 'not_object':
        reply({ content: [{ type: 'text', text: '[1, 2]' }], structuredContent: [1, 2] });
        break;
      case 'tool_error':
        reply({ content: [{ type: 'text', text: 'the tool failed' }], isError: true });
        break;
    }
  } else if (msg.id !== undefined && msg.method) {
    send({ jsonrpc: '2.0', id: msg.id, result: {} });
  }
});
