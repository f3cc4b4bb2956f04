"""In-sandbox side of eryx: runs the host's requests and reports the outcome.

The host calls ``run(request)`` through the guest export ``eryx_exec``. The
request format is documented in guest/abi.h. ``run`` never raises: whatever the
user code does, it returns ``(status, exit_code, type, message, traceback)``.
"""

import sys

OK, EXCEPTION, EXIT, INTERNAL = 0, 1, 2, 3

_main = sys.modules["__main__"]


def _parse(request):
    """(mode, filename, argv, code) of a request (format: guest/abi.h)."""
    mode, filename, argc, rest = request.split(b"\0", 3)
    argv = rest.split(b"\0", int(argc))
    code = argv.pop()
    text = [x.decode("utf-8", "surrogateescape") for x in (mode, filename, *argv)]
    return text[0], text[1], text[2:], code


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


def _type_name(exc):
    cls = type(exc)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(exc, tb):
    """(type, message, traceback) of an exception, skipping this module's frame."""
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


def _run_code(filename, code):
    g = _main.__dict__
    g["__file__" if filename != "<string>" else "__eryx_unused__"] = filename
    g.pop("__eryx_unused__", None)
    exec(compile(code, filename, "exec", dont_inherit=True), g)


def _run_module(name):
    import runpy
    runpy._run_module_as_main(name, alter_argv=True)


def _stream(fd, mode):
    import io
    raw = io.FileIO(fd, mode, closefd=False)
    buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    errors = "surrogateescape" if fd == 0 else "backslashreplace" if fd == 2 else "strict"
    return io.TextIOWrapper(buffered, encoding="utf-8", errors=errors)


def _fresh_stdio():
    """Standard streams fit for the next run. stdin is new each time: each run
    has its own stdin bytes and the old object may hold buffered data. stdout
    and stderr are replaced only when a previous run closed them (site's
    exit() closes sys.stdin, json.tool closes sys.stdout): in a real process
    that would not matter, in a session it would break every later run."""
    sys.stdin = sys.__stdin__ = _stream(0, "r")
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None or stream.closed:
            stream = _stream(fd, "w")
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def run(request):
    try:
        mode, filename, argv, code = _parse(request)
        sys.argv = argv or [""]
        _fresh_stdio()
    except Exception as exc:
        return INTERNAL, 1, "InternalError", f"bad request: {exc}", ""
    try:
        if mode == "m":
            _run_module(code.decode("utf-8", "surrogateescape"))
        else:
            _run_code(filename, code)
        status = (OK, 0, "", "", "")
    except SystemExit as exc:
        status = (EXIT, _exit_code(exc), "SystemExit", str(exc.code), "")
    except BaseException as exc:
        # Frames of this module come first: the user does not need them.
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_globals is globals():
            tb = tb.tb_next
        status = (EXCEPTION, 1) + _describe(exc, tb)
        del exc, tb
    _flush()
    return status
