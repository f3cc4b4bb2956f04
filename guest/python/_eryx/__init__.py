"""In-sandbox side of eryx: runs the host's requests and reports the outcome.

The host calls ``run(request)`` through the guest export ``eryx_exec``. The
request format is documented in guest/abi.h. ``run`` never raises: whatever the
user code does, it returns ``(status, exit_code, type, message, traceback)``.
"""

import sys

import _eryx_host

from . import callbacks

OK, EXCEPTION, EXIT, INTERNAL = 0, 1, 2, 3
EVENT_TRACE, EVENT_RESULT, EVENT_RESULT_ERROR, EVENT_STATE = 1, 2, 3, 4
PyCF_ALLOW_TOP_LEVEL_AWAIT = 0x2000
CO_COROUTINE = 0x80

def _install_chmod():
    """CPython's WASI build has no chmod: os.chmod returned success without
    asking the host, so a file on a read-only mount seemed to change. Modes
    do not exist in the sandbox; chmod now checks that the file may be
    changed at all by rewriting its times as they are, which the host
    refuses on read-only mounts and the standard library (EROFS)."""
    import os

    def chmod(path, mode, *, dir_fd=None, follow_symlinks=True):
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        kw = {} if dir_fd is None else {"dir_fd": dir_fd}
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), **kw)

    chmod.__doc__ = os.chmod.__doc__
    os.chmod = chmod


_install_chmod()


def _install_thread_time():
    """CPython's WASI build has no time.thread_time (wasi-libc has no
    CLOCK_THREAD_CPUTIME_ID), so code that profiles with it failed. The
    sandbox runs one thread: its CPU time is the process's, which
    process_time reads (the sandbox's own running time, docs/limits.md)."""
    import time
    if hasattr(time, "thread_time"):
        return
    get_clock_info = time.get_clock_info

    def clock_info(name):
        return get_clock_info("process_time" if name == "thread_time" else name)

    clock_info.__doc__ = get_clock_info.__doc__
    time.thread_time = time.process_time
    time.thread_time_ns = time.process_time_ns
    time.get_clock_info = clock_info


_install_thread_time()


def _install_network():
    """The sandbox's _socket, select and ssl (net.py, ssl.py): sockets whose
    connections the host makes under its policy."""
    from . import net
    net.install()


_install_network()
_main = sys.modules["__main__"]
_MISSING = object()
_STATE_RUN = object()   # export/import runs report their own result


def _parse(request):
    """(mode, flags, filename, callbacks, setup, argv, code) of a request."""
    mode, flags, filename, cbs, setup, argc, rest = request.split(b"\0", 6)
    argv = rest.split(b"\0", int(argc))
    code = argv.pop()
    text = [x.decode("utf-8", "surrogateescape") for x in (mode, flags, filename, *argv)]
    return text[0], text[1], text[2], cbs, setup, text[3:], code


def _setup(setup):
    """First run of a sandbox made from an image: the image holds the
    template's random state and environment, not this sandbox's. And
    first run of a loaded session: its imports come from this runtime."""
    if not setup:
        return
    import json
    spec = json.loads(setup)
    if spec.get("seed"):
        import random
        random.seed()
    if "env" in spec:
        import os
        os.environ.clear()
        os.environ.update(spec["env"])
        # As python does at its start: PYTHONPATH's directories come
        # first on sys.path (the binding's per-sandbox site_packages).
        path = spec["env"].get("PYTHONPATH")
        if path:
            sys.path[:0] = [d for d in path.split(os.pathsep) if d and d not in sys.path]
    imports = spec.get("imports")
    if isinstance(imports, str) and imports not in sys.path:
        # A loaded session keeps the sys.path it was saved with; the
        # runtime it is loaded into has packages (where site-packages is
        # in Python: after the standard library).
        sys.path.append(imports)
    if spec.get("mounts") or imports:
        # The image's import system cached its directory listings before
        # this sandbox's mounts existed; a loaded session's, those of the
        # runtime it was saved with.
        import importlib
        importlib.invalidate_caches()


def _exit_code(exc):
    """Maps SystemExit's argument to a process status, like CPython's main."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code if -2**31 <= code < 2**31 else 1
    try:
        sys.stderr.write(f"{code}\n")
    except Exception:
        pass
    return 1


def _exit_status(exc):
    """The status of a SystemExit. Its code's text may not be made: an int
    of more digits than str() writes (sys.exit(10**5000)), a __str__ that
    raises; that escaped and was reported as a KeyboardInterrupt."""
    status = _exit_code(exc)
    try:
        text = str(exc.code)
    except Exception:
        text = f"(a {type(exc.code).__name__} that str() refuses)"
    return EXIT, status, "SystemExit", text, ""


def _stop_name(exc):
    """The type reported when describing exc failed even twice: a stop's
    late KeyboardInterrupt, or memory too full to describe it."""
    return "MemoryError" if isinstance(exc, MemoryError) else "KeyboardInterrupt"


def _type_name(exc):
    cls = type(exc)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(exc, tb):
    """(type, message, traceback) of an exception."""
    try:
        message = str(exc)
    except BaseException:
        message = "<exception str() failed>"
    try:
        import traceback
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        text = f"{_type_name(exc)}: {message}\n"
    return _type_name(exc), message, text


_TRACE_TOOLS = (4, 3)   # sys.monitoring ids no tool of CPython's claims


def _start_trace(filename):
    """Reports the line events of the user's code (co_filename is the run's
    filename) through sys.monitoring (PEP 669), whose LINE callback is
    _eryx_host.trace_line, in C: the interpreter calls it for instrumented
    lines only, and a line of other code (the standard library, the glue)
    gets DISABLE the first time it runs, so that it costs nothing after.
    sys.settrace instead called a Python function at every call of every
    function, and a LINE callback in Python cost a frame per line
    (docs/performance.md). Returns the tool id to stop, or None if
    sys.monitoring has none free (the user's code took both): then
    sys.settrace does the same, slower."""
    mon = sys.monitoring
    for tool in _TRACE_TOOLS:
        if mon.get_tool(tool) is None:
            mon.use_tool_id(tool, "eryx trace")
            _eryx_host.trace_begin(filename, mon.DISABLE)
            mon.register_callback(tool, mon.events.LINE, _eryx_host.trace_line)
            mon.set_events(tool, mon.events.LINE)
            mon.restart_events()  # lines a previous run's filename disabled
            return tool
    _settrace(filename)
    return None


def _settrace(filename):
    """The fallback of _start_trace: sys.settrace, its line events reported
    by trace_line as sys.monitoring's are."""
    _eryx_host.trace_begin(filename, None)
    trace_line = _eryx_host.trace_line

    def local(frame, what, arg):
        if what == "line":
            trace_line(frame.f_code, frame.f_lineno)
        return local
    sys.settrace(lambda frame, what, arg:
                 local if frame.f_code.co_filename == filename else None)


def _stop_trace(tool):
    if tool is None:
        sys.settrace(None)
        _eryx_host.trace_end()
        return
    mon = sys.monitoring
    mon.set_events(tool, 0)
    mon.register_callback(tool, mon.events.LINE, None)
    mon.free_tool_id(tool)
    _eryx_host.trace_end()


def _install_asyncio_policy(code):
    """Gives asyncio the sandbox's event loop (its default one cannot start
    under WASI) when the code may use it. Importing asyncio costs tens of
    milliseconds, so code that does not mention it does not pay."""
    if "asyncio" in sys.modules or b"asyncio" in code:
        from . import loop  # installs the policy


def _forget_stale_loop():
    """No event loop runs between runs: one still marked running is the
    mark of a loop that a stop (the KeyboardInterrupt of a timeout or an
    interrupt) left in asyncio's own bookkeeping, between the loop marking
    itself running and unmarking. Kept, every later top-level await and
    asyncio.run of the session raised "Cannot run the event loop while
    another loop is running"."""
    events = sys.modules.get("asyncio.events")
    if events is not None and events._get_running_loop() is not None:
        events._set_running_loop(None)


def _run_code(filename, code, trace, interactive=False):
    global _last_code
    g = _main.__dict__
    if filename not in ("<string>", "<stdin>"):
        g["__file__"] = filename
    co = compile(code, filename, "single" if interactive else "exec",
                 flags=PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    _last_code = co
    tool = _start_trace(filename) if trace else _MISSING
    try:
        if co.co_flags & CO_COROUTINE:
            from . import loop
            loop.run_top_level(eval(co, g))
        else:
            exec(co, g)
    finally:
        if tool is not _MISSING:
            _stop_trace(tool)


def _run_module(name):
    # runpy._run_module_as_main, but its error names sys.executable, which
    # is empty here (the guest has no executable): ": No module named x".
    import runpy
    try:
        name, spec, code = runpy._get_module_details(name, runpy._Error)
    except runpy._Error as exc:
        sys.exit("eryx: %s" % exc)
    main_globals = sys.modules["__main__"].__dict__
    sys.argv[0] = spec.origin
    runpy._run_code(code, main_globals, None, "__main__", spec)


def _stream(fd, mode):
    import io
    raw = io.FileIO(fd, mode, closefd=False)
    buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    errors = "surrogateescape" if fd == 0 else "backslashreplace" if fd == 2 else "strict"
    return io.TextIOWrapper(buffered, encoding="utf-8", errors=errors,
                            line_buffering=mode == "w")


_quiet_stdin = None  # our stdin object of a run without stdin bytes


def _closed(stream):
    """Whether a stream the user may have put in place cannot be written
    to: None, closed, or an object whose `closed` cannot be read (every
    later run failed on it)."""
    try:
        return stream is None or bool(stream.closed)
    except BaseException:  # SystemExit, KeyboardInterrupt: the user's too
        return True


def _fresh_stdio(has_stdin):
    """Standard streams fit for the next run. stdin is new when this run or
    the one that made the current object had stdin bytes (the old object may
    hold buffered data), or when the user replaced or closed it; otherwise
    it never saw a byte and is kept (making one costs ~6 us, half of a
    `pass` run). stdout and stderr are replaced only when a previous run
    closed them (site's exit() closes sys.stdin, json.tool closes
    sys.stdout): in a real process that would not matter, in a session it
    would break every later run."""
    global _quiet_stdin
    if has_stdin or sys.stdin is not _quiet_stdin or sys.stdin.closed:
        sys.stdin = sys.__stdin__ = _stream(0, "r")
    _quiet_stdin = None if has_stdin else sys.stdin
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if _closed(stream):
            stream = _stream(fd, "w")
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)
        elif stream is getattr(sys, f"__{name}__"):
            # Line by line, so that output streams to the host as it is
            # printed; a write is a host call, not a system call. An object
            # the user put in both places buffers as it likes.
            try:
                if not stream.line_buffering:
                    stream.reconfigure(line_buffering=True)
            except BaseException:
                pass


def _flush():
    """Flushes the streams. One that cannot flush (the output limit refused
    the bytes) is replaced: what it still buffers must not reach the next
    run's output."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        try:
            stream.flush()
        except BaseException:
            fresh = _stream(fd, "w")
            setattr(sys, name, fresh)
            if getattr(sys, f"__{name}__") is stream:
                setattr(sys, f"__{name}__", fresh)


def _report_result(before):
    """Hands the host the JSON of `result` if this run assigned it."""
    if before is _STATE_RUN:
        return
    value = _main.__dict__.get("result", _MISSING)
    if value is _MISSING or (value is before and not _stores_result(_last_code)):
        return
    try:
        import json
        # Strict JSON (no NaN or Infinity): result_json is read by JSON
        # parsers that know no such token (the MCP server's, the service's).
        data = json.dumps(value, allow_nan=False)
    except BaseException as exc:
        _eryx_host.event(EVENT_RESULT_ERROR,
                         f"result is not JSON-serialisable: {_type_name(exc)}: {exc}".encode())
        return
    _eryx_host.event(EVENT_RESULT, data.encode())


_last_code = None  # the code object of this run's source, if it had one
_prev_code = None  # the last run's


def _stores_result(co, name="result"):
    """Whether code object co (or one nested in it) assigns the global
    `name`: a run that sets it to the object it already held (True, a
    small int, a shared string) assigned it all the same. (The Python
    package asks it of another name, its result_variable, in a run of its
    own after the user's: about _prev_code.)"""
    if co is None:
        return False
    if name in co.co_names:
        import dis
        for ins in dis.get_instructions(co):
            if ins.opname in ("STORE_NAME", "STORE_GLOBAL") and ins.argval == name:
                return True
    return any(_stores_result(c, name) for c in co.co_consts if isinstance(c, type(co)))


def _user_traceback(tb, filename):
    """The traceback from the user's first frame on: the glue's frames and
    asyncio's driving frames above it are noise to the user. Without a user
    frame (runpy, errors of the glue), only the glue's frames go."""
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename != filename:
        first = first.tb_next
    if first is not None:
        return first
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("_eryx"):
        tb = tb.tb_next
    return tb


def _failure(exc, filename):
    """The status of an uncaught exception. A timeout or interrupt raises its
    KeyboardInterrupt once, at the next bytecode, which may fall while the
    exception is being described: then describe again."""
    for _ in range(2):
        try:
            tb = _user_traceback(exc.__traceback__, filename)
            return (EXCEPTION, 1) + _describe(exc, tb)
        except BaseException as late:
            if not isinstance(exc, KeyboardInterrupt):
                late.__context__ = exc
                exc = late
    return EXCEPTION, 1, _stop_name(exc), "", ""


def _execute(mode, filename, code, trace):
    """Runs the user's code; returns the status. Never raises but for a late
    KeyboardInterrupt of a timeout, raised once at the next bytecode."""
    try:
        if mode == "z":
            _clear()
        elif mode == "x":
            _export_state()
        elif mode == "y":
            _import_state(code)
        elif mode == "m":
            _run_module(code.decode("utf-8", "surrogateescape"))
        else:
            _run_code(filename, code, trace, interactive=mode == "i")
        return OK, 0, "", "", ""
    except SystemExit as exc:
        return _exit_status(exc)
    except BaseException as exc:
        return _failure(exc, filename)


def _clear():
    """Drops the user's globals; keeps the dunders and the glue's names."""
    g = _main.__dict__
    keep = {"list_callbacks", "invoke", "CallbackError"}
    for name in [n for n in g if not n.startswith("__") and n not in keep]:
        del g[name]


def _export_state():
    """The session's globals as bytes (an EVENT_STATE report) and the names
    skipped (as the JSON `result`)."""
    import json
    from . import state
    data, skipped = state.export(_main.__dict__)
    _eryx_host.event(EVENT_STATE, data)
    _eryx_host.event(EVENT_RESULT, json.dumps(skipped).encode())


def _import_state(data):
    import json
    from . import state
    failed = state.import_(_main.__dict__, data)
    _eryx_host.event(EVENT_RESULT, json.dumps(failed).encode())


def _finish(before):
    _report_result(before)
    _flush()


def run(request):
    global _last_code, _prev_code
    try:
        mode, flags, filename, cbs, setup, argv, code = _parse(request)
        _setup(setup)
        sys.argv = argv or [""]
        _fresh_stdio("s" in flags)
        callbacks.install(_main.__dict__, cbs)
        _install_asyncio_policy(code)
        _forget_stale_loop()
    except Exception as exc:
        return INTERNAL, 1, "InternalError", f"bad request: {exc!r}", ""
    _prev_code, _last_code = _last_code, None
    before = _STATE_RUN if mode in ("x", "y", "z") else _main.__dict__.get("result", _MISSING)
    # A timeout's KeyboardInterrupt may land in the glue's own code after the
    # user's: it is raised only once, so each step is tried twice. No
    # bytecode between the two try statements checks for it.
    try:
        status = _execute(mode, filename, code, "t" in flags)
    except BaseException as exc:
        status = EXCEPTION, 1, _stop_name(exc), "", ""
    try:
        _finish(before)
    except BaseException:
        _finish(before)
    return status
