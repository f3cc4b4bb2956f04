"""``python -m eryx``: the eryx command line (same flags, same exit statuses).

It replaces this process with the ``eryx`` executable: ``$ERYX_CLI`` if set,
else the one recorded when the package was built (``_build_info.CLI``), else
``eryx`` on PATH.
"""

import os
import shutil
import sys


def _find_cli() -> str:
    env = os.environ.get("ERYX_CLI")
    if env:
        return env
    try:
        from . import _build_info  # written by setup.py
        if os.access(_build_info.CLI, os.X_OK):
            return _build_info.CLI
    except ImportError:
        pass
    return shutil.which("eryx") or ""


def main() -> None:
    cli = _find_cli()
    if not cli or not os.access(cli, os.X_OK):
        sys.stderr.write("python -m eryx: the eryx command was not found (set ERYX_CLI, "
                         "or put eryx on PATH)\n")
        sys.exit(71)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cli, ["eryx"] + sys.argv[1:])


if __name__ == "__main__":
    main()
