"""Suite-wide setup: runs checkpoint into a throwaway directory, never the user's cache.

Set before any test module imports convviz, so every manager, and every server a
browser test starts (they inherit the environment), writes there.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "CONVVIZ_RUNS_DIR" not in os.environ:
    _runs = tempfile.mkdtemp(prefix="convviz-test-runs-")
    os.environ["CONVVIZ_RUNS_DIR"] = _runs
    atexit.register(shutil.rmtree, _runs, ignore_errors=True)
