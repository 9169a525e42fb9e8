"""`python tools/step_search ...`: the step-variant search's entry point (step_search.cli)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, where the package lives

from step_search.cli import main  # noqa: E402

raise SystemExit(main())
