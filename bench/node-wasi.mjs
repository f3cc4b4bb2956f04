// Runs the stock CPython WASI command module (python.wasm) under Node's
// node:wasi (V8 compiling the wasm), as a peer runner for the benchmarks.
//
// usage: node --stack-size=4000 node-wasi.mjs PYTHON_WASM SRC_LIB BUILD_LIB [--map HOST:GUEST]... [python args...]
//   SRC_LIB    CPython's source Lib/ directory         -> /lib
//   BUILD_LIB  the WASI build's build/lib.wasi-wasm32-3.13 (sysconfig data) -> /build
//   --map      expose another host directory (e.g. the kernels) at GUEST;
//              a directory mapped at /pycache receives the .pyc cache
// Python args are passed through; argv[0] is the guest path /python.wasm.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { argv, exit } from 'node:process';

let [wasmPath, srcLib, buildLib, ...rest] = argv.slice(2);
const preopens = { '/lib': srcLib, '/build': buildLib };
while (rest[0] === '--map') {
  const spec = rest[1];
  const i = spec.lastIndexOf(':');
  preopens[spec.slice(i + 1)] = spec.slice(0, i);
  rest = rest.slice(2);
}
// With a directory mapped at /pycache, bytecode is cached there (so the source
// tree is never written to); without one, none is written.
const env = { PYTHONPATH: '/lib:/build', PYTHONHOME: '/' };
if ('/pycache' in preopens) env.PYTHONPYCACHEPREFIX = '/pycache';
else env.PYTHONDONTWRITEBYTECODE = '1';
const wasi = new WASI({
  version: 'preview1',
  args: ['/python.wasm', ...rest],
  env,
  preopens,
  returnOnExit: true,
});
const mod = await WebAssembly.compile(await readFile(wasmPath));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
exit(wasi.start(inst));
