"""Callbacks: host functions the sandboxed code awaits, their schemas and dispatch."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import typing
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _eryx

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean",
               list: "array", tuple: "array", dict: "object", type(None): "null"}


def _type_schema(annotation: Any) -> Dict[str, Any]:
    """JSON Schema of one annotation (best effort; unknown types: any)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if isinstance(annotation, str):
        simple = {"str": str, "int": int, "float": float, "bool": bool, "list": list,
                  "dict": dict}.get(annotation)
        return _type_schema(simple) if simple else {}
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union or (origin is not None and str(origin) == "types.UnionType") or \
            type(annotation).__name__ == "UnionType":
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _type_schema(options[0])
        return {"anyOf": [_type_schema(a) for a in args]}
    if origin in (list, tuple, set, frozenset, Sequence):
        schema: Dict[str, Any] = {"type": "array"}
        if args and origin is list:
            schema["items"] = _type_schema(args[0])
        return schema
    if origin is dict:
        return {"type": "object"}
    if origin is typing.Literal:
        return {"enum": list(args)}
    return {}


def infer_schema(fn: Callable[..., Any]) -> Dict[str, Any]:
    """The JSON Schema of fn's parameters: an object whose properties are the
    parameters in order (positional arguments in the sandbox map onto them),
    typed from the annotations, required unless they have a default."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {"type": "object", "properties": {}}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    props: Dict[str, Any] = {}
    required: List[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        props[p.name] = _type_schema(hints.get(p.name, p.annotation))
        if p.default is p.empty:
            required.append(p.name)
        elif p.default is None or isinstance(p.default, (str, int, float, bool)):
            props[p.name] = dict(props[p.name], default=p.default)
    schema: Dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


class _Entry:
    __slots__ = ("name", "fn", "description", "schema", "is_async", "inline")

    def __init__(self, name: str, fn: Callable[..., Any], description: str,
                 schema: Dict[str, Any], inline: bool = False) -> None:
        self.name = name
        self.inline = bool(inline)
        self.fn = fn
        self.description = description
        self.schema = schema
        self.is_async = inspect.iscoroutinefunction(fn) or \
            inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _entry(name: Optional[str], fn: Any, description: Optional[str],
           schema: Optional[Dict[str, Any]], inline: bool = False) -> _Entry:
    if not callable(fn):
        raise TypeError(f"callback {name!r}: fn must be callable, not {type(fn).__name__}")
    if name is None:
        name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name:
        raise TypeError("a callback needs a name (str)")
    if len(name) > 200 or not all(p.isascii() and p.isidentifier() for p in name.split(".")):
        # Here, not at the sandbox's creation far from this line (liberyx
        # checks again, and also refuses names that shadow a builtin).
        raise ValueError(f"callback name {name!r} is not a dotted Python identifier (ASCII, "
                         "200 characters at most; a lambda needs name=)")
    if description is None:
        description = inspect.getdoc(fn) or ""
    if not isinstance(description, str):
        raise TypeError(f"callback {name!r}: description must be a str")
    if schema is None:
        schema = infer_schema(fn)
    if not isinstance(schema, dict):
        raise TypeError(f"callback {name!r}: schema must be a dict (a JSON Schema)")
    try:
        json.dumps(schema)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"callback {name!r}: schema is not JSON-serialisable: {exc}") from None
    if inline and (inspect.iscoroutinefunction(fn)):
        raise ValueError(f"callback {name!r}: an async function cannot be inline")
    return _Entry(name, fn, description, schema, inline)


class CallbackRegistry:
    """Collects callbacks with a decorator.

    Example::

        registry = eryx.CallbackRegistry()

        @registry.callback(description="Echoes the message")
        def echo(message: str, repeat: int = 1):
            return {"echoed": message * repeat}

        sandbox = eryx.Sandbox(callbacks=registry)
        sandbox.execute('print(await echo(message="hi"))')
    """

    def __init__(self) -> None:
        self._entries: Dict[str, _Entry] = {}

    def callback(self, name: Optional[str] = None, description: Optional[str] = None,
                 schema: Optional[Dict[str, Any]] = None, *, inline: bool = False
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a function (plain or ``async def``); returns it unchanged.

        name defaults to the function's ``__name__``, description to its docstring,
        schema to one inferred from its signature and annotations. inline=True
        (plain functions that never block, ours): a blocking execute calls it on
        the running thread instead of a worker thread, several times cheaper
        per call; but a call that blocks then holds the run past its limits.
        """
        if callable(name) and description is None and schema is None:
            fn = name  # used as a bare @registry.callback
            self.add(fn)
            return fn

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(fn, name=name, description=description, schema=schema, inline=inline)
            return fn
        return decorate

    def add(self, fn: Callable[..., Any], *, name: Optional[str] = None,
            description: Optional[str] = None, schema: Optional[Dict[str, Any]] = None,
            inline: bool = False) -> None:
        """Registers fn without the decorator (arguments as for callback())."""
        e = _entry(name, fn, description, schema, inline)
        if e.name in self._entries:  # (the last one silently won)
            raise ValueError(f"a callback named {e.name!r} is registered already")
        self._entries[e.name] = e

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for e in self._entries.values():
            yield {"name": e.name, "fn": e.fn, "description": e.description, "schema": e.schema}

    def __repr__(self) -> str:
        return f"CallbackRegistry({list(self._entries)!r})"


CallbacksArg = Union[CallbackRegistry, Sequence[Dict[str, Any]], None]


def normalise(callbacks: CallbacksArg) -> List[_Entry]:
    """The entries of a CallbackRegistry or a list of dicts."""
    if callbacks is None:
        return []
    if isinstance(callbacks, CallbackRegistry):
        return list(callbacks._entries.values())
    if isinstance(callbacks, (str, bytes, dict)) or not hasattr(callbacks, "__iter__"):
        raise TypeError("callbacks must be a CallbackRegistry or a list of dicts with "
                        "'name' and 'fn'")
    out: Dict[str, _Entry] = {}
    for item in callbacks:
        if not isinstance(item, dict):
            raise TypeError(f"a callback must be a dict with 'name' and 'fn', not "
                            f"{type(item).__name__}")
        unknown = set(item) - {"name", "fn", "description", "schema", "inline"}
        if unknown:
            raise TypeError(f"unknown callback keys: {sorted(unknown)}")
        if "fn" not in item:
            raise TypeError(f"callback {item.get('name')!r} has no 'fn'")
        e = _entry(item.get("name"), item["fn"], item.get("description"), item.get("schema"),
                   bool(item.get("inline", False)))
        if e.name in out:
            raise ValueError(f"two callbacks are named {e.name!r}")
        out[e.name] = e
    return list(out.values())


_local = threading.local()


class _WorkerLoop:
    """A worker thread's event loop, closed when the thread's locals go
    (the worker exits, or Python does) instead of left to be collected
    open, which warned "unclosed event loop" for every worker."""
    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        try:
            self.loop.close()
        except BaseException:  # at shutdown asyncio may be half gone
            pass


def _run_coroutine(aw: Any) -> Any:
    """Awaits aw on this worker thread's own event loop (one per thread, reused)."""
    held = getattr(_local, "held", None)
    if held is None or held.loop.is_closed():
        held = _local.held = _WorkerLoop()
    return held.loop.run_until_complete(_as_coroutine(aw))


async def _as_coroutine(aw: Any) -> Any:
    return await aw


def _describe(exc: BaseException) -> str:
    """The failure's message for the guest. Never raises: an exception
    whose __str__ fails (or one raised by such code) must still answer the
    call, or the run loses the call and, on the asynchronous paths, the
    session."""
    try:
        text = str(exc)
    except BaseException:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _bad_args(entry: _Entry, kw: Dict[str, Any]) -> Optional[str]:
    try:
        inspect.signature(entry.fn).bind(**kw)
    except TypeError as exc:
        return f"invalid arguments for {entry.name}: {exc}"
    except ValueError:
        return None
    return None


def encode_result(entry: _Entry, value: Any) -> Union[str, Tuple[int, str]]:
    try:
        return json.dumps(value, allow_nan=False)  # strict JSON: the host reads no NaN
    except Exception as exc:  # also a dict subclass whose items() raises
        return (_eryx.CALL_FAILED, f"callback {entry.name!r} returned a value that is not "
                                   f"JSON-serialisable: {_describe(exc)}")


def make_dispatch(entries: List[_Entry], reraise: Tuple[type, ...] = ()
                  ) -> Callable[[str, str], Union[str, Tuple[int, str]]]:
    """The function liberyx's worker threads call for every invocation of a
    blocking run: JSON text of the value, or (kind, message) for a failure.
    Exceptions of the reraise types pass through (eryx.remote's Suspend
    asks for the execution to be suspended, it is no failure)."""
    table = {e.name: e for e in entries}

    def dispatch(name: str, args_json: str) -> Union[str, Tuple[int, str]]:
        entry = table.get(name)
        if entry is None:
            return (_eryx.CALL_FAILED, f"no callback named {name!r}")
        try:
            kw = json.loads(args_json)
        except ValueError as exc:
            return (_eryx.CALL_INVALID_ARGS, f"arguments are not JSON: {exc}")
        try:
            value = entry.fn(**kw)
            if inspect.isawaitable(value):
                value = _run_coroutine(value)
        except reraise:
            raise
        except TypeError as exc:
            bad = _bad_args(entry, kw)
            if bad:
                return (_eryx.CALL_INVALID_ARGS, bad)
            return (_eryx.CALL_FAILED, _describe(exc))
        except BaseException as exc:  # a callback must never take the host down
            return (_eryx.CALL_FAILED, _describe(exc))
        return encode_result(entry, value)

    dispatch.table = table  # type: ignore[attr-defined]
    return dispatch


def declarations(entries: List[_Entry]) -> List[Tuple[str, str, str, bool]]:
    return [(e.name, e.description, json.dumps(e.schema), e.inline) for e in entries]
