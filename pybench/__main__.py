"""`python -m pybench`: the command line (see pybench.cli)."""

from pybench.cli import main

raise SystemExit(main())
