"""python -m cotprobe.early_exit RUN_DIR: replay stopping policies on the recorded cut probes.

No model is loaded: the answers, grades and confidences at every cut (probes.jsonl, and the
latent probe's predictions in latent.jsonl when `python -m cotprobe.latent` has run) are walked
from the shortest cut to the longest under each policy of `cotprobe.stopping`, which sees only
the cuts up to where it stops; a policy that never fires thinks to the end, where the trace's
own answer (traces.jsonl) counts. Fixed budgets stop at fractions of the generate stage's
thinking budget (manifest.json), or at token counts when none is recorded. Prints, for each
policy and threshold, the thinking tokens used, the accuracy of the answer where it stopped and
its calibration, with 95% bootstrap intervals over questions; the Pareto frontier; and the token
reduction at matched accuracy (DEER-style), its setting chosen on held-out folds of questions.
Writes metrics.json section "early_exit" and figures/early_exit_pareto.png. The finer the cuts,
the finer the replay: `--cut every-step` runs stop at every step boundary.
"""

from __future__ import annotations


from .plots import plot_early_exit
from .records import LatentPrediction
from .stopping import early_exit_metrics, print_early_exit, views
from .cli import entry_point, run_dir_parser
from .store import RunDir, open_existing
from .summary import update_metrics


def main(argv: list[str] | None = None) -> int:
    parser = run_dir_parser(
        "python -m cotprobe.early_exit",
        "Replay early-exit policies (confidence thresholds: verbal, scored, latent; a stable answer over k cuts; "
        "fixed fractions of the thinking budget) on a run's cut probes: tokens used against accuracy, Pareto "
        "frontier, token reduction at matched accuracy (chosen on held-out questions). No model is loaded.",
        "a run directory with cut probes and traces (python -m cotprobe.truncate)")
    args = parser.parse_args(argv)
    run_dir = open_existing(args.run_dir)
    run = RunDir(run_dir)  # read only: no lock
    probes = run.probes()
    if not any(p.condition == "cut" for p in probes):
        raise ValueError(f"{run_dir}: no cut probes to replay (run python -m cotprobe.truncate --from-run {run_dir})")
    if not any(p.condition == "cut" and p.correct is not None for p in probes):
        raise ValueError(f"{run_dir}: none of the cut probes is graded (every forced answer is ungraded), so "
                         "there is no accuracy to replay; check the run's grading (metrics.json 'traces')")
    latent = {(r.question_id, r.token_index): r.confidence
              for r in run.records(LatentPrediction) if r.condition == "cut"} or None
    sources = ["verbal", "scored"] + (["latent"] if latent else [])
    questions = views(probes, latent, run.traces())
    if not questions:
        raise ValueError(f"{run_dir}: no question has both graded cuts and a graded trace (or a cut at the full "
                         f"thought) to replay")
    budget = run.stage_settings("generate").get("budget")  # 0 or absent (ingested runs): none
    result = early_exit_metrics(questions, sources, args.resamples, budget)
    update_metrics(run_dir, {"early_exit": result})
    print_early_exit(result, run_dir)
    if not latent:
        print("(no latent.jsonl: run python -m cotprobe.latent first to replay latent-confidence policies)")
    print(f"figure: {plot_early_exit(result, run_dir / 'figures' / 'early_exit_pareto')}")
    return 0


entry = entry_point(main)  # the console script (setup.cfg)

if __name__ == "__main__":
    entry()
