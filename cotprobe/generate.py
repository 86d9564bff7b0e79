"""python -m cotprobe.generate: run a model on a question set and record its reasoning traces.

For each question: build the chat prompt, let the model think (reasoning profiles: until its
think end tag or the thinking budget; non-reasoning: until it starts `**Answer**`), then force
the answer and the confidence (both sampled and scored), grade, and append one Trace to
traces.jsonl (see `cotprobe.tracing`). Interrupted runs resume where they stopped.
"""

from __future__ import annotations

import argparse

from .cli import entry_point
from .config import RunConfig, add_run_arguments
from .experiment import setup
from .store import RunDir
from .summary import print_traces, trace_metrics, update_metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.generate",
        description="Run a model on a question set; record CoT, forced answer, confidence and grade per question.",
    )
    add_run_arguments(parser)
    parser.add_argument("--out", required=True, help="run directory (created, or resumed if it exists)")
    args = parser.parse_args(argv)
    ex = setup(RunConfig.from_args(args), args.out)
    with RunDir(args.out) as run:
        traces = ex.traces(run, reuse=False, stage="generate")
    result = trace_metrics(traces)
    update_metrics(args.out, {"traces": result})
    print_traces(result, args.out)
    ex.report_grading(args.out)
    return 0


entry = entry_point(main)  # the console script (setup.cfg)

if __name__ == "__main__":
    entry()
