"""Rebuild every figure and table from run directories, skipping those whose inputs are missing.

    python -m analyses.reproduce RUN_DIR... [--out figures] [--source expected] [--resamples 1000]
                                 [--pair RUN_A:RUN_B ...] [--only NAME ...] [--class-source scored]

Runs main_table, reliability, confidence_hist, progress, ablation and slow_think in turn on the
same runs (records are read once). An analysis whose inputs the runs lack (no traces, no
truncation probes, no ablation probes, no two prompt styles of one model) is skipped with a
printed note; any other error stops the rebuild.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import ablation, confidence_hist, main_table, progress, reliability, slow_think
from .common import MissingInputs, Run, load_runs, parser

ANALYSES = {
    "main_table": main_table.main,
    "reliability": reliability.main,
    "confidence_hist": confidence_hist.main,
    "progress": progress.main,
    "ablation": ablation.main,
    "slow_think": slow_think.main,
}


def main(run_dirs: Sequence[str | Path | Run], out_dir: str | Path = "figures", source: str = "expected",
         n_resamples: int = 1000, pairs=None, only: Sequence[str] | None = None,
         class_source: str | None = None) -> list[Path]:
    """Run every analysis (or those named in `only`); return the files written. Skipped analyses
    are printed with the reason. class_source (the label of the per-class figures) defaults to
    sampled when source is sampled, else scored."""
    class_source = class_source or ("sampled" if source == "sampled" else "scored")
    runs = load_runs([*run_dirs, *(r for pair in (pairs or []) for r in pair)])
    written: list[Path] = []
    skipped: list[str] = []
    for name, fn in ANALYSES.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        kwargs = ({"pairs": pairs} if name == "main_table" else
                  {"class_source": class_source} if name in ("reliability", "confidence_hist") else {})
        try:
            made = fn(runs, out_dir, source=source, n_resamples=n_resamples, **kwargs)
        except MissingInputs as exc:
            print(f"skipped {name}: {exc}")
            skipped.append(name)
            continue
        written += made
        print(f"made {name} ({time.perf_counter() - start:.1f} s): {', '.join(p.name for p in made)}")
    print(f"{len(ANALYSES) - len(skipped) if not only else len(only) - len(skipped)} analyses made, "
          f"{len(skipped)} skipped{': ' + ', '.join(skipped) if skipped else ''}; output in {out_dir}")
    return written


def cli(argv: list[str] | None = None) -> int:
    p = parser("reproduce", "Rebuild every figure and table of the paper from run directories; analyses whose "
                            "inputs the runs lack are skipped with a note.")
    p.add_argument("--pair", action="append", default=[], metavar="RUN_A:RUN_B",
                   help="reasoning run A and its non-reasoning counterpart B for the main table (repeatable; "
                        "default: found automatically)")
    p.add_argument("--only", action="append", choices=list(ANALYSES), default=None,
                   help="make only this analysis (repeatable)")
    p.add_argument("--class-source", choices=("scored", "sampled"), default=None,
                   help="label used by the per-class figures (default: sampled with --source sampled, else scored)")
    args = p.parse_args(argv)
    pairs = [main_table.parse_pair(x) for x in args.pair] or None
    main(args.run_dirs, args.out, source=args.source, n_resamples=args.resamples, pairs=pairs, only=args.only,
         class_source=args.class_source)
    return 0


if __name__ == "__main__":
    from cotprobe.cli import run_main

    sys.exit(run_main(cli))
