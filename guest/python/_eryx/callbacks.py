"""Host functions as async functions in the user's globals."""

import json
import sys

from . import hostcall
from .errors import CallbackError

_installed = {}     # name -> Callback, as last installed
_schemas_json = None


class Callback:
    """`await name(...)`: positional arguments follow the schema's order."""

    def __init__(self, name, description, schema):
        self.__name__ = self.__qualname__ = name
        self.__doc__ = description
        self.name = name
        self.description = description
        self.schema = schema
        props = schema.get("properties") if isinstance(schema, dict) else None
        self._params = list(props) if isinstance(props, dict) else []

    def _arguments(self, args, kwargs):
        if len(args) > len(self._params):
            raise TypeError(f"{self.name}() takes {len(self._params)} positional "
                            f"arguments but {len(args)} were given")
        for param, value in zip(self._params, args):
            if param in kwargs:
                raise TypeError(f"{self.name}() got multiple values for argument '{param}'")
            kwargs[param] = value
        return kwargs

    async def __call__(self, *args, **kwargs):
        if args:
            kwargs = self._arguments(args, kwargs)
        try:
            # No arguments, the commonest call, skips the encoder's set-up.
            encoded = hostcall.encode(kwargs) if kwargs else "{}"
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{self.name}(): arguments must be JSON-serialisable: {exc}") from None
        if len(encoded) > hostcall.MAX_CALL_ARGS:
            # The host's own failure (src/config.h), without sending what
            # it would refuse: over a request's size that was a
            # RuntimeError out of the event loop.
            raise CallbackError(f"the arguments of '{self.name}' are {len(encoded)} bytes of "
                                f"JSON; the limit is {hostcall.MAX_CALL_ARGS >> 20} MiB",
                                "invalid_arguments")
        # loop imports asyncio: not before a callback is used. Looked up in
        # sys.modules after: a `from` import costs a Python frame per call.
        loop = sys.modules.get("_eryx.loop")
        if loop is None:
            from . import loop
        record = loop.call_now(self.name, encoded)
        if record is None:
            return await loop.call_host(self.name, kwargs, encoded)
        if record["ok"]:
            return record["value"]
        raise CallbackError(record["message"], record["kind"])

    def __repr__(self):
        return f"<host function {self.name}>"


class Namespace:
    """The `http` of `await http.get(...)`."""

    def __init__(self, path):
        self._path = path

    def __getitem__(self, key):
        # `mcp["fs"].read_file(...)`, the spelling of the reference's
        # binding, is `mcp.fs.read_file(...)`: only what was bound here.
        value = self.__dict__.get(key) if isinstance(key, str) else None
        if not isinstance(value, (Namespace, Callback)):
            raise KeyError(f"{self._path}[{key!r}]: no host namespace or function of that "
                           f"name (list_callbacks() lists them)")
        return value

    def __repr__(self):
        return f"<host namespace {self._path}>"


def list_callbacks():
    """[{"name", "description", "parameters"}] of every host function."""
    return [{"name": c.name, "description": c.description, "parameters": c.schema}
            for c in _installed.values()]


async def invoke(name, /, **kwargs):
    """Calls a host function by name."""
    cb = _installed.get(name)
    if cb is None:
        raise CallbackError(f"no host function named {name!r}", "invalid_arguments")
    return await cb(**kwargs)


def _unbind(g, name, cb):
    """Takes a host function that is no longer offered out of g, unless the
    code rebound its name: a namespace goes whole (the host functions still
    offered in it are bound again after)."""
    top = name.split(".")[0]
    value = g.get(top)
    if value is cb or isinstance(value, Namespace):
        del g[top]


def _bind(g, name, cb):
    parts = name.split(".")
    if len(parts) == 1:
        g[name] = cb
        return
    ns = g.get(parts[0])
    if not isinstance(ns, Namespace):
        ns = g[parts[0]] = Namespace(parts[0])
    for i, part in enumerate(parts[1:-1], 2):
        sub = getattr(ns, part, None)
        if not isinstance(sub, Namespace):
            sub = Namespace(".".join(parts[:i]))
            setattr(ns, part, sub)
        ns = sub
    setattr(ns, parts[-1], cb)


def install(g, schemas_json):
    """Puts the host functions (and list_callbacks, invoke, CallbackError)
    into the globals g. Skipped when they are unchanged since the last run."""
    global _schemas_json
    g["list_callbacks"] = list_callbacks
    g["invoke"] = invoke
    g["CallbackError"] = CallbackError
    if schemas_json == _schemas_json:
        for name, cb in _installed.items():
            _bind(g, name, cb)
        return
    old = dict(_installed)
    _installed.clear()
    specs = json.loads(schemas_json or b"[]")
    offered = {spec["name"] for spec in specs}
    for name, cb in old.items():
        if name not in offered:
            _unbind(g, name, cb)
    for spec in specs:
        cb = Callback(spec["name"], spec.get("description"), spec.get("schema"))
        _installed[cb.name] = cb
        _bind(g, cb.name, cb)
    _schemas_json = schemas_json
