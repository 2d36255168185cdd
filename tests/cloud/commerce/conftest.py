"""Commerce tests reuse the dispatcher tests' connected fleet (``tests/cloud/control/rig.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "control"))
