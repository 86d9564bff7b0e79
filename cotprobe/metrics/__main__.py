"""`python -m cotprobe.metrics RUN_DIR` (and the `cotprobe-metrics` script): recompute a run's
metric tables from its records (the command is `cotprobe.summary.main`).

It lives here and not in the package's `__init__`, so `import cotprobe.metrics` stays pure
(numpy, scipy) and `cotprobe.summary`, which imports the metrics, is only loaded by the command."""

from __future__ import annotations

import sys

from ..cli import run_main
from ..summary import main as tables_main


def main(argv: list[str] | None = None) -> int:
    """Run the command; a user error prints one `error:` line and returns 2."""
    return run_main(tables_main, argv)


if __name__ == "__main__":
    sys.exit(main())
