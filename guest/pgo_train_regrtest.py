"""The second training run of the guest's profile-guided optimisation
(guest/pgo_train.sh, docs/performance.md): CPython's own PGO task, the 43
regression tests of `python -m test --pgo` that `./configure
--enable-optimizations` trains native CPython on, run inside the guest.
guest/pgo_train.sh mounts the source tree's Lib/test at /pgo/test (the
stdlib image does not ship the tests).

The task is for its profile, not its verdict: tests that fail or are skipped
under WASI still ran the interpreter, so any outcome of the run is a good
one, and only an error of the runner itself (no test ran) is not."""

import sys

sys.path.insert(0, "/pgo")
sys.argv = ["python -m test", "--pgo", "--quiet"]

from test.libregrtest.main import main  # noqa: E402

try:
    main()
except SystemExit as done:
    # regrtest's exit statuses: 0 all passed, 2 some failed, 3 interrupted,
    # 4 no test ran (the runner did not work here).
    if done.code not in (0, None, 2):
        raise
