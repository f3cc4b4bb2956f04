"""``python -m eryx``: the eryx command line (same flags, same exit statuses).

It replaces this process with the ``eryx`` executable: ``$ERYX_CLI`` if set,
else the package's own copy (``eryx/bin/eryx``, put there by setup.py), else
the one of the build the package was made from (``_build_info.CLI``), else
``eryx`` on PATH (a staged, uninstalled package has no copy). Installed, the
script ``eryx`` runs this.
"""

import os
import shutil
import sys


def _find_cli() -> str:
    env = os.environ.get("ERYX_CLI")
    if env:
        return env
    own = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "eryx")
    if os.access(own, os.X_OK):
        return own
    try:
        from . import _build_info  # written by setup.py
        if os.access(_build_info.CLI, os.X_OK):
            return _build_info.CLI
    except ImportError:
        pass
    return shutil.which("eryx") or ""


def main() -> None:
    cli = _find_cli()
    if os.environ.get("ERYX_CLI") and not os.access(cli, os.X_OK):
        sys.stderr.write(f"python -m eryx: ERYX_CLI is {cli!r}, which is no executable "
                         "file\n")
        sys.exit(71)
    if not cli or not os.access(cli, os.X_OK):
        sys.stderr.write("python -m eryx: the eryx command was not found (the package has "
                         "none when not installed: set ERYX_CLI, or put eryx on PATH)\n")
        sys.exit(71)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cli, ["eryx"] + sys.argv[1:])


if __name__ == "__main__":
    main()
