// Runs a WASI command module under Node's node:wasi, with the CPython source
// tree mounted at "/". Used only while building CPython (make runs python.wasm
// to generate sysconfig data) and by the benchmarks as a peer runner.
// usage: node node-wasi-runner.mjs ROOT_DIR MODULE.wasm [args...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { argv, env, exit } from 'node:process';
import path from 'node:path';

const [root, wasmPath, ...args] = argv.slice(2);
const cwd = process.cwd();
const preopens = { '/': root };
// The build directory is below root; expose it where the guest expects it too.
const rel = path.relative(root, cwd);
const wasi = new WASI({
  version: 'preview1',
  args: [path.relative(cwd, wasmPath).startsWith('..') ? wasmPath : '/' + path.join(rel, path.relative(cwd, wasmPath)), ...args],
  env: Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('PYTHON'))),
  preopens,
  returnOnExit: true,
});
const mod = await WebAssembly.compile(await readFile(wasmPath));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
exit(wasi.start(inst));
