"""The type stub (eryx/_eryx.pyi) against the extension it describes: every
name and every method on one side is on the other. The stub lacked
Runtime's save_image and image_size, and most of its arguments, until
2026-12-07."""
import ast
import inspect
import pathlib

import eryx
from eryx import _eryx

STUB = pathlib.Path(eryx.__file__).with_name("_eryx.pyi")


def _stub():
    """{name: None for a constant or function, set of members for a class}."""
    tree = ast.parse(STUB.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {n.name for n in node.body
                                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))} | \
                               {n.target.id for n in node.body
                                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
    return names


def _public(members):
    return {m for m in members if not m.startswith("_")}


def test_stub_names_the_module():
    stub = _stub()
    module = _public(dir(_eryx))
    assert sorted(set(stub) - set(dir(_eryx))) == []
    assert sorted(module - set(stub)) == []


def test_stub_names_every_class_member():
    for name, members in _stub().items():
        if members is None:
            continue
        cls = getattr(_eryx, name)
        assert inspect.isclass(cls), name
        own = {m for m in vars(cls) if not m.startswith("_")}
        if issubclass(cls, BaseException):
            continue   # attributes set on instances, not the class
        assert sorted(own - members) == [], name
        assert sorted(_public(members) - set(dir(cls))) == [], name


def test_runtime_takes_the_stubs_arguments():
    init = next(n for n in ast.parse(STUB.read_text()).body
                if isinstance(n, ast.ClassDef) and n.name == "Runtime")
    init = next(n for n in init.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    args = [a.arg for a in init.args.args[1:]]
    # The extension's own signature, from its docstring.
    doc = _eryx.Runtime.__doc__
    assert doc.startswith("Runtime(" + ", ".join(args[:1]) + "=0, "), doc
    for a in args:
        assert a + "=" in doc.split(")")[0], (a, doc)
