"""What unit and integration tests share: `tests.support` importable however pytest was started.

`pyproject.toml` sets `pythonpath = ["."]`, but only when pytest finds that config (not with
`-c other.ini`, or a rootdir elsewhere); the repository root is put on sys.path here, once, for
every test under tests/. Cluster fixtures stay in tests/integration/conftest.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
