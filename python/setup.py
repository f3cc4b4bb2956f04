"""Builds and installs the eryx package (the C extension over liberyx).

    pip install --break-system-packages --no-build-isolation ./python

links the static liberyx of the CMake build in $ERYX_BUILD_DIR (default:
build/ at the top of the repository), running scripts/build.sh first if it
is not built yet, and copies the build's eryx command into the package
(eryx/bin/eryx, run by the script `eryx` it installs). Everything comes
from Debian packages (python3-dev, python3-setuptools, python3-pip);
nothing is downloaded. See docs/python.md.
"""

import os
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("ERYX_BUILD_DIR") or os.path.join(ROOT, "build"))
LIB = os.path.join(BUILD, "lib", "liberyx.a")
CLI = os.path.join(BUILD, "bin", "eryx")


def ensure_liberyx():
    if os.path.exists(LIB):
        return
    if "egg_info" in sys.argv or "sdist" in sys.argv:
        return
    print(f"setup.py: {LIB} is missing: running scripts/build.sh {BUILD}", file=sys.stderr)
    subprocess.check_call([os.path.join(ROOT, "scripts", "build.sh"), BUILD])


def link_libraries():
    """What liberyx.a needs at link time, from the build's eryx.pc
    (Requires.private through pkg-config, then Libs.private)."""
    pc = os.path.join(BUILD, "eryx.pc")
    requires, private = [], []
    if os.path.exists(pc):
        with open(pc) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "Requires.private":
                    requires = value.replace(",", " ").split()
                elif key.strip() == "Libs.private":
                    private = value.split()
    flags = []
    if requires:
        out = subprocess.run(["pkg-config", "--libs"] + requires, capture_output=True,
                             text=True)
        if out.returncode != 0:
            sys.exit(f"setup.py: pkg-config --libs {' '.join(requires)} failed: {out.stderr}")
        flags = out.stdout.split()
    else:  # an older build without the file: what liberyx has needed so far
        flags = ["-ljansson", "-lxxhash", "-lssl", "-lcrypto"]
    return flags + (private or ["-lpthread", "-lm"])


class BuildPy(build_py):
    """Also copies the eryx command into the package (eryx/bin/eryx), so
    that `python -m eryx`, the `eryx` script and the remote MCP servers
    (`eryx mcp-proxy`) need nothing of the build tree once installed, and
    writes eryx/_build_info.py (where the build was)."""

    def run(self):
        super().run()
        if not os.access(CLI, os.X_OK):
            sys.exit(f"setup.py: the eryx command {CLI} is missing: build it "
                     f"(scripts/build.sh {BUILD})")
        bindir = os.path.join(self.build_lib, "eryx", "bin")
        os.makedirs(bindir, exist_ok=True)
        self.copy_file(CLI, os.path.join(bindir, "eryx"), preserve_mode=True)
        target = os.path.join(self.build_lib, "eryx", "_build_info.py")
        with open(target, "w") as f:
            f.write(f'"""Written by setup.py."""\nCLI = {CLI!r}\nBUILD_DIR = {BUILD!r}\n')


ensure_liberyx()
ext = Extension(
    "eryx._eryx",
    sources=[os.path.join("src", "module.c"), os.path.join("src", "sandbox.c")],
    include_dirs=[os.path.join(ROOT, "include")],
    extra_objects=[LIB],
    extra_link_args=link_libraries() if os.path.exists(LIB) else [],
    extra_compile_args=["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                        "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
    depends=[os.path.join("src", "pyeryx.h"), LIB],
)

setup(
    name="eryx",
    version="0.1.0",
    description="Run untrusted Python in a WebAssembly sandbox inside this process",
    packages=["eryx"],
    package_data={"eryx": ["py.typed", "*.pyi"]},
    ext_modules=[ext],
    cmdclass={"build_py": BuildPy},
    # `eryx` on PATH, as the reference's package has it: the command above.
    entry_points={"console_scripts": ["eryx = eryx.__main__:main"]},
    python_requires=">=3.11",
)
