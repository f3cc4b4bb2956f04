// Runs a Python script under Pyodide (CPython via Emscripten) in Node, as a
// peer runner for the benchmarks. Works offline from the npm package dir.
//
// usage: node pyodide-run.mjs SCRIPT.py [args...]     (run a host script)
//        node pyodide-run.mjs -c CODE [args...]
import { loadPyodide } from './node_modules/pyodide/pyodide.mjs';
import { readFile } from 'node:fs/promises';
import { argv, exit } from 'node:process';

const [first, ...rest] = argv.slice(2);
let code, name;
if (first === '-c') {
  code = rest.shift();
  name = '-c';
} else {
  code = await readFile(first, 'utf8');
  name = first;
}
const py = await loadPyodide({
  stdout: (s) => process.stdout.write(s + '\n'),
  stderr: (s) => process.stderr.write(s + '\n'),
});
py.globals.get('__import__')('sys').argv = py.toPy([name, ...rest]);
const globals = py.toPy({ __name__: '__main__', __file__: name });
try {
  py.runPython(code, { globals, filename: name });
} catch (e) {
  process.stderr.write(String(e) + '\n');
  exit(1);
}
exit(0);
