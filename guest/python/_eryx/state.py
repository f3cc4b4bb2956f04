"""Export and import of a session's user globals as bytes.

Values are pickled; functions defined in the session travel as their code
object (marshal) with their defaults, so they can be rebuilt in another
sandbox of the same build. Whatever cannot travel (classes defined in the
session, closures, open files, ...) is skipped and reported by name; modules
are left out without being reported (re-import them after a load).
The bytes are decoded inside the sandbox only: the host never unpickles them.
"""

import marshal
import pickle
import types

FORMAT = 1
_GLUE = {"list_callbacks", "invoke", "CallbackError"}


def _exportable(name, value):
    if name.startswith("__") or name in _GLUE:
        return False
    return not isinstance(value, types.ModuleType) and \
        type(value).__module__ != "_eryx.callbacks"


def export(g):
    """(bytes, skipped) for the globals g."""
    values, functions, skipped = {}, {}, []
    for name, value in list(g.items()):
        if not _exportable(name, value):
            continue
        if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
            if value.__closure__:
                skipped.append(name)
                continue
            try:
                functions[name] = (marshal.dumps(value.__code__),
                                   pickle.dumps((value.__defaults__, value.__kwdefaults__)))
            except Exception:
                skipped.append(name)
            continue
        # Classes of the session pickle by reference to __main__, which the
        # importing sandbox lacks: they (and their instances) cannot travel.
        cls = value if isinstance(value, type) else type(value)
        if cls.__module__ == "__main__":
            skipped.append(name)
            continue
        try:
            values[name] = pickle.dumps(value, protocol=5)
        except Exception:
            skipped.append(name)
    data = pickle.dumps({"format": FORMAT, "values": values, "functions": functions})
    return data, sorted(skipped)


def import_(g, data):
    """Adds the exported globals to g; returns the names that failed."""
    try:
        state = pickle.loads(data)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError("not an eryx state export")
        functions, values = state["functions"], state["values"]
    except Exception as exc:
        raise ValueError(f"the state is corrupt or not an eryx state export: {exc}") from None
    failed = []
    for name, (code, defaults) in functions.items():
        try:
            fn = types.FunctionType(marshal.loads(code), g, name)
            fn.__defaults__, fn.__kwdefaults__ = pickle.loads(defaults)
            g[name] = fn
        except Exception:
            failed.append(name)
    for name, blob in values.items():
        try:
            g[name] = pickle.loads(blob)
        except Exception:
            failed.append(name)
    return sorted(failed)
