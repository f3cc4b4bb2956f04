"""The MCP servers that agents' and editors' configuration files name.

``connect_servers()`` reads the files below, starts every stdio server they
name and returns an ``MCPManager`` for ``Sandbox(mcp=...)``, so that code in
the sandbox can use the tools a user's agent already has
(``await mcp.github.search_issues(...)``). ``discover_servers()`` only
reads. The ``eryx`` command does the same with ``--mcp`` and
``--mcp-config PATH`` (docs/mcp.md, "Servers from agents' configurations").

Read in this order, a later file's server replacing an earlier one's of the
same name (``~`` is the home directory, the others are relative to the
current directory):

- ``~/.claude.json`` (Claude Code, ``mcpServers``), ``~/.cursor/mcp.json``
  (Cursor), ``~/.codeium/windsurf/mcp_config.json`` (Windsurf),
  ``~/.config/zed/settings.json`` (Zed, ``context_servers``),
  ``~/.gemini/settings.json`` (Gemini CLI), ``~/.codex/config.toml``
  (OpenAI Codex, ``mcp_servers``);
- ``.mcp.json`` (Claude Code), ``.cursor/mcp.json``, ``.vscode/mcp.json``
  (VS Code, ``servers``), ``.zed/settings.json``, ``.gemini/settings.json``,
  ``.codex/config.toml``;
- last, the servers ``~/.claude.json`` keeps for this directory (Claude
  Code's "local" scope, which wins over the others there).

A server is a stdio one (``command``, ``args``, ``env``) or a remote one
(``url``, ``headers``) speaking Streamable HTTP (``"type": "http"``), the
older HTTP+SSE (``"type": "sse"``) or, untyped, either (tried in that
order), which ``connect_servers`` reaches through the eryx command's
``eryx mcp-proxy``; an entry of another transport (``"ws"``), with
``"disabled": true`` or ``"enabled": false`` is passed over. Comments and trailing commas (VS
Code's and Zed's files) are allowed. ``$VAR``, ``${VAR}`` and
``${VAR:-default}`` in the command, the arguments and the environment's
values take this process's environment (an unset one: empty).

A project's files come with whatever repository you are in, and the
commands they name are run: call these only where you trust them.

The reference binding's module of the same name reads the same files;
differences: docs/python.md, "MCP servers from agents' configurations".
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._mcp import MCPManager, _py_name

__all__ = ["discover_servers", "connect_servers"]

# (base, path, key, format): base "home" or "cwd"; key "projects" is
# ~/.claude.json's servers of the current directory.
_SOURCES: List[Tuple[str, str, str, str]] = [
    ("home", ".claude.json", "mcpServers", "json"),
    ("home", ".cursor/mcp.json", "mcpServers", "json"),
    ("home", ".codeium/windsurf/mcp_config.json", "mcpServers", "json"),
    ("home", ".config/zed/settings.json", "context_servers", "json"),
    ("home", ".gemini/settings.json", "mcpServers", "json"),
    ("home", ".codex/config.toml", "mcp_servers", "toml"),
    ("cwd", ".mcp.json", "mcpServers", "json"),
    ("cwd", ".cursor/mcp.json", "mcpServers", "json"),
    ("cwd", ".vscode/mcp.json", "servers", "json"),
    ("cwd", ".zed/settings.json", "context_servers", "json"),
    ("cwd", ".gemini/settings.json", "mcpServers", "json"),
    ("cwd", ".codex/config.toml", "mcp_servers", "toml"),
    ("home", ".claude.json", "projects", "json"),
]

# The keys a file given by path may keep its servers under, tried in order.
_ANY_KEY = ("mcpServers", "servers", "context_servers", "mcp_servers")

_MAX_BYTES = 64 << 20

_VAR = re.compile(r"\$(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                  r"|\{(?P<brace>[A-Za-z_][A-Za-z0-9_]*)\}"
                  r"|\{(?P<defname>[A-Za-z_][A-Za-z0-9_]*):-(?P<default>[^}]*)\})")


def _expand(value: str) -> str:
    """$VAR, ${VAR}, ${VAR:-default} from the environment (as the eryx command)."""
    def repl(m: "re.Match[str]") -> str:
        name = m.group("name") or m.group("brace")
        if name:
            return os.environ.get(name, "")
        return os.environ.get(m.group("defname"), "") or m.group("default")
    return _VAR.sub(repl, value)


def _blank_comments(text: str) -> str:
    """JSON with comments and trailing commas made JSON (line breaks kept)."""
    out = list(text)
    i, n, comma = 0, len(text), -1
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            comma = -1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for k in range(i, end):
                if out[k] != "\n":
                    out[k] = " "
            i = end
        else:
            if ch == ",":
                comma = i
            elif ch in "}]" and comma >= 0:
                out[comma] = " "
            if ch not in ", \t\r\n":
                comma = -1
            i += 1
    return "".join(out)


def _read(path: Path, fmt: str) -> Optional[Dict[str, Any]]:
    """The file's document, None if it is missing; raises ValueError when it
    cannot be read or parsed."""
    try:
        # O_NONBLOCK: a FIFO planted at a project's path must not hang us.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(_MAX_BYTES + 1)
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > _MAX_BYTES:
        raise ValueError(f"{path}: larger than 64 MiB")
    try:
        text = data.decode("utf-8")
        if fmt == "toml":
            import tomllib
            doc = tomllib.loads(text)
        else:
            doc = json.loads(_blank_comments(text))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not {'TOML' if fmt == 'toml' else 'JSON'}: {e}") from None
    return doc if isinstance(doc, dict) else {}


def _servers_of(doc: Dict[str, Any], key: Optional[str]) -> Any:
    if key == "projects":
        project = doc.get("projects", {})
        project = project.get(os.getcwd()) if isinstance(project, dict) else None
        return project.get("mcpServers") if isinstance(project, dict) else None
    if key is None:
        return next((doc[k] for k in _ANY_KEY if isinstance(doc.get(k), dict)), None)
    return doc.get(key)


_HTTP_TYPES = ("http", "streamable-http", "streamableHttp")


def _server(entry: Any) -> Union[Dict[str, Any], str, None]:
    """A stdio server's {command, args, env}, or a remote one's {url,
    headers, transport}; None for an entry passed over without a word
    (disabled, another transport); a str saying why it cannot be used."""
    if not isinstance(entry, dict):
        return "not an object"
    kind = entry.get("type")
    if entry.get("disabled") is True or entry.get("enabled") is False or \
            (kind is not None and kind != "stdio" and kind != "sse" and kind not in _HTTP_TYPES):
        return None
    command, args, env = entry.get("command"), entry.get("args"), entry.get("env")
    if isinstance(command, dict):  # Zed's older form
        command, args, env = command.get("path"), command.get("args"), command.get("env")
    url = next((entry[k] for k in ("httpUrl", "url", "serverUrl") if k in entry), None)
    # Gemini's httpUrl is Streamable HTTP; an untyped url may be either.
    transport = "sse" if kind == "sse" else "http" if kind in _HTTP_TYPES or \
        "httpUrl" in entry else "auto"
    if kind == "sse" or kind in _HTTP_TYPES or \
            (kind is None and command is None and url is not None):
        headers = entry.get("headers") or {}
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return "its url is not http:// or https://"
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and k and not any(c in k for c in ": \t\r\n") and
                isinstance(v, str) for k, v in headers.items()):
            return "its headers are not names and strings"
        return {"url": url, "headers": dict(headers), "transport": transport}
    if not isinstance(command, str) or not command:
        return "no command"
    args = [] if args is None else args
    env = {} if env is None else env
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return "its args are not a list of strings"
    if not isinstance(env, dict) or not all(isinstance(k, str) and k and "=" not in k and
                                            isinstance(v, str) for k, v in env.items()):
        return "its env is not names and strings"
    return {"command": command, "args": list(args), "env": dict(env)}


def _sources(config_paths: Optional[Sequence[Union[str, Path]]]
             ) -> List[Tuple[Path, Optional[str], str, bool]]:
    if config_paths is not None:
        if isinstance(config_paths, (str, bytes, os.PathLike)):
            raise TypeError("config_paths is a list of paths, not one path")
        return [(Path(p), None, "toml" if str(p).endswith(".toml") else "json", True)
                for p in config_paths]
    home, cwd = Path.home(), Path.cwd()
    return [((home if base == "home" else cwd) / path, key, fmt, False)
            for base, path, key, fmt in _SOURCES]


def discover_servers(config_paths: Optional[Sequence[Union[str, Path]]] = None, *,
                     include_remote: bool = False) -> Dict[str, Dict[str, Any]]:
    """The stdio MCP servers the configuration files name (and, with
    include_remote, the remote ones).

    Args:
        config_paths: files to read instead of the usual ones (see the
            module's text), in order: JSON with the servers under
            ``mcpServers``, ``servers`` or ``context_servers``, or, for a
            name ending in ``.toml``, TOML with ``mcp_servers``.
        include_remote: also the remote servers (``"type": "http"`` or
            ``"sse"``, or a ``url`` and no command), as ``{"url": str,
            "headers": {str: str}, "transport": "http" | "sse" | "auto"}``
            (ours; the reference's has none).

    Returns:
        ``{name: {"command": str, "args": [str], "env": {str: str}}}``, the
        names and values as the files have them (``$VAR`` not yet expanded;
        ``connect_servers`` expands them and makes the names identifiers).

    Raises:
        ValueError: a file of ``config_paths`` is missing, cannot be read or
            is not JSON (TOML). One of the usual files that is not is
            passed over with a word on stderr; a missing one silently.
    """
    servers: Dict[str, Dict[str, Any]] = {}
    for path, key, fmt, required in _sources(config_paths):
        try:
            doc = _read(path, fmt)
            if doc is None and required:
                raise ValueError(f"{path}: no such file")
        except ValueError as e:
            if required:
                raise
            print(f"MCP: {e}", file=sys.stderr)
            continue
        found = _servers_of(doc or {}, key)
        if not isinstance(found, dict):
            continue
        for name, entry in found.items():
            server = _server(entry)
            if isinstance(server, str):
                print(f"MCP: {path}: server {name!r} is left out: {server}", file=sys.stderr)
            elif server is not None and (include_remote or "command" in server):
                servers.pop(name, None)  # a later file's comes after the others
                servers[name] = server
    return servers


def connect_servers(config_paths: Optional[Sequence[Union[str, Path]]] = None,
                    connect_timeout: float = 30.0, *,
                    result_format: str = "eryx") -> Optional[MCPManager]:
    """Starts the servers ``discover_servers(config_paths,
    include_remote=True)`` finds.

    Each is reached in the sandbox as ``mcp.NAME`` with its name made an
    identifier as a tool's is (``my-server``: ``mcp.my_server``; two names
    that become the same: the later file's). A remote one is connected
    with ``MCPManager.connect_http`` (the eryx command's ``eryx mcp-proxy``;
    docs/mcp.md). A server that cannot be
    started or does not speak MCP within ``connect_timeout`` seconds is
    left out, with a line on stderr, as is each server connected.
    result_format: what the tools' calls return, as ``MCPManager`` takes it.

    Returns:
        An ``MCPManager`` of the servers connected (close it, or use it as a
        context manager), or None when none was.

    Raises:
        ValueError: as ``discover_servers``, or another result_format.
    """
    manager = MCPManager(result_format=result_format)  # checks it first
    servers = discover_servers(config_paths, include_remote=True)
    by_name: Dict[str, Tuple[str, Dict[str, Any]]] = {}
    for name, server in servers.items():
        by_name.pop(_py_name(name), None)
        by_name[_py_name(name)] = (name, server)
    if not by_name:
        return None
    for pyname, (name, server) in by_name.items():
        shown = name if pyname == name else f"{name} (mcp.{pyname})"
        try:
            if "command" in server:
                n = manager.connect(pyname, _expand(server["command"]),
                                    [_expand(a) for a in server["args"]],
                                    {k: _expand(v) for k, v in server["env"].items()},
                                    connect_timeout)
            else:
                n = manager.connect_http(pyname, _expand(server["url"]),
                                         {k: _expand(v) for k, v in server["headers"].items()},
                                         connect_timeout, transport=server["transport"])
        except Exception as e:  # noqa: BLE001 - any failure leaves this one out
            print(f"MCP: failed to connect to {shown!r}: {e}", file=sys.stderr)
            continue
        print(f"MCP: connected to {shown!r} ({n} tools)", file=sys.stderr)
    if not manager.server_names:
        manager.close()
        return None
    return manager
