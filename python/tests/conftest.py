"""The eryx package's tests run against the staged build (PYTHONPATH set by
ctest: build/python) or an installed package."""
import os
import subprocess
import sys
import textwrap

import pytest

import eryx


@pytest.fixture
def sandbox():
    sb = eryx.Sandbox()
    yield sb
    sb.close()


@pytest.fixture
def session():
    s = eryx.Session()
    yield s
    s.close()


def cli_path():
    return os.environ.get("ERYX_CLI")


def run_script(code, timeout=60):
    """Runs code (dedented) in a Python process of its own, for what needs
    one: Ctrl-C, interpreter exit."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ))
