"""Test-wide setup. Fixtures belong in conftest files next to the tests that use them."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import settings

# provd is not installed: test the tree these tests sit in (`make test` also sets PYTHONPATH).
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# No test may time things: hypothesis' per-example deadline would make a slow CI machine fail
# tests whose results are right.
settings.register_profile("provd", deadline=None)
settings.load_profile("provd")
