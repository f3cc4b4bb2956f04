"""The Python examples in examples/ run and print what they promise."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_python_tools_example():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python_tools.py")],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("fetched 2\n"
                        "result: {'Oslo': 53.6, 'Lisbon': 64.4} - weather calls in flight at once: 2\n"
                        "parent keeps 2 reports; fork has 3\n")
