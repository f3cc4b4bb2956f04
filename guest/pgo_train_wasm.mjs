// Runs CPython's WASI command module (python.wasm), instrumented for PGO,
// under Node's node:wasi, writing its profile: the training of the guest's
// CPython build (guest/wasm_pgo.sh).
//
// usage: node --stack-size=4000 pgo_train_wasm.mjs PYTHON_WASM SRC_LIB BUILD_LIB PROFRAW [--map HOST:GUEST]... [python args...]
//   SRC_LIB    CPython's source Lib/ directory          -> /lib
//   BUILD_LIB  the WASI build's build/lib.wasi-wasm32-3.13 -> /build
//   PROFRAW    the profile the runtime writes at exit     -> /profile/NAME
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { argv, exit } from 'node:process';
import path from 'node:path';

let [wasmPath, srcLib, buildLib, profraw, ...rest] = argv.slice(2);
const preopens = { '/lib': srcLib, '/build': buildLib, '/profile': path.dirname(profraw) };
while (rest[0] === '--map') {
  const spec = rest[1];
  const i = spec.lastIndexOf(':');
  preopens[spec.slice(i + 1)] = spec.slice(0, i);
  rest = rest.slice(2);
}
const wasi = new WASI({
  version: 'preview1',
  args: ['/python.wasm', ...rest],
  env: { PYTHONPATH: '/lib:/build', PYTHONHOME: '/', PYTHONDONTWRITEBYTECODE: '1',
         LLVM_PROFILE_FILE: '/profile/' + path.basename(profraw) },
  preopens,
  returnOnExit: true,
});
const mod = await WebAssembly.compile(await readFile(wasmPath));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
exit(wasi.start(inst));
