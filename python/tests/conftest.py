"""The eryx package's tests run against the staged build (PYTHONPATH set by
ctest: build/python) or an installed package."""
import os
import sys

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
