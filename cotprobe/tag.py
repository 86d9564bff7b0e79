"""python -m cotprobe.tag RUN_DIR: tag reasoning behaviours in every step of a run's traces.

Segments the traces into steps if that has not been done (steps.jsonl, token spans in the
model's own tokenization: only the tokenizer is loaded, never the model), tags every step with
the rule tagger of `cotprobe.tags` (tags.jsonl, rewritten atomically on every run: tagging is
cheap and deterministic) or, with --judge MODEL, with an LLM judge (`cotprobe.judge`; its
answers are kept in judgements.jsonl and not asked again), prints per-behaviour counts and
writes the "behaviours" section of metrics.json plus figures/behaviour_frequency.png (and
figures/behaviour_trajectories.png when the run has cut probes). How behaviours relate to
confidence changes: see `cotprobe.behaviours`.
"""

from __future__ import annotations


from .backends import load_backend
from .behaviours import behaviour_section, print_behaviours, trajectories
from .cli import entry_point, positive_int, run_dir_parser
from .config import RunConfig, add_server_arguments
from .judge import load_judge_prompt
from .models import add_loading_arguments, loading_from
from .plots import plot_behaviour_frequency, plot_trajectories
from .steps import Judge, tag_run
from .records import SOURCES
from .store import RunDir, open_existing
from .summary import update_metrics


def main(argv: list[str] | None = None) -> int:
    parser = run_dir_parser(
        "python -m cotprobe.tag",
        "Tag reasoning behaviours (backtracking, alternatives, verification, hedging, conclusion) in every step "
        "of a run's traces; print counts; relate behaviours to confidence changes.",
        "a run directory with traces.jsonl")
    parser.add_argument("--lexicon", default=None, help="behaviour lexicon JSON (default: the shipped cotprobe/_data/behaviours.json)")
    parser.add_argument("--source", choices=SOURCES, default="sampled",
                        help="confidence used for the change analysis: sampled, the label the model wrote "
                             "(default: the paper's measure, as in truncate); expected, the expected value of the "
                             "scored label distribution; scored, its most likely label")
    parser.add_argument("--cache-dir", default=None, help="where embedded models are cached (for the tokenizer)")
    judging = parser.add_argument_group(
        "LLM judge", "tag with a model instead of the lexicon: it is asked, step by step, which behaviours "
                     "the step shows (prompt: cotprobe/_data/judge_prompt.json); its answers go to judgements.jsonl, "
                     "unparsed ones are counted and left untagged")
    judging.add_argument("--judge", metavar="MODEL", default=None,
                         help="judge model (embedded name, local folder, hub id, or the served model's name)")
    judging.add_argument("--judge-backend", choices=("hf", "openai"), default="hf", help="default hf")
    judging.add_argument("--judge-base-url", default=None, help="server of --judge-backend openai")
    judging.add_argument("--judge-prompt", default=None, help="judge prompt JSON (default cotprobe/_data/judge_prompt.json)")
    judging.add_argument("--judge-batch-size", type=positive_int, default=8, help="steps per batch (default 8)")
    add_server_arguments(parser)
    add_loading_arguments(parser)
    args = parser.parse_args(argv)
    out = open_existing(args.run_dir)
    judge = None
    if args.judge:
        if args.judge_backend == "openai" and not args.judge_base_url:
            raise ValueError("--judge-backend openai needs --judge-base-url (the judge's server, e.g. "
                             "http://localhost:8001/v1)")
        prompt = load_judge_prompt(args.judge_prompt)
        backend = load_backend(args.judge, kind=args.judge_backend, cache_root=args.cache_dir,
                               base_url=args.judge_base_url, **RunConfig.from_args(args).server_options(), loading=loading_from(args))
        judge = Judge(backend, args.judge, args.judge_backend, prompt, args.judge_batch_size)
    with RunDir(out) as run:
        tagged = tag_run(run, args.lexicon, cache_dir=args.cache_dir, judge=judge)
        probes = run.probes()
    section = behaviour_section(tagged, probes, args.source, args.resamples)
    update_metrics(out, {"behaviours": section})
    print_behaviours(section, out)
    figures = [plot_behaviour_frequency(section, out / "figures" / "behaviour_frequency")]
    traj = trajectories(tagged, probes, args.source)
    if traj:
        figures.append(plot_trajectories(traj, out / "figures" / "behaviour_trajectories",
                                         source=args.source))
    print(f"tags: {out / 'tags.jsonl'} ({len(tagged.tags)} tags)")
    for f in figures:
        print(f"figure: {f}")
    return 0


entry = entry_point(main)  # the console script (setup.cfg)

if __name__ == "__main__":
    entry()
