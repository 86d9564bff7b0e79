"""python -m cotprobe.ablate [RUN_DIR]: remove behaviours from chains of thought and re-probe.

Each condition builds a modified CoT from a trace's steps (steps.jsonl) and behaviour tags
(tags.jsonl), then forces an answer and a confidence after it exactly as after a 100% cut
(`cotprobe.forcing.force_cuts`), grades it and appends a Probe(condition=...) to probes.jsonl
with the modified CoT (`cot`) and what was taken out (`removed`). The original traces are
never modified. Conditions (`cotprobe.conditions`):

- ``full``: the trace's own CoT, as its own token ids (the reference of the paired diffs).
- ``none``: an empty CoT (the thought closed at once).
- ``linear``: steps tagged backtracking, alternative or verification deleted.
- ``no-hedging``: hedging cue phrases removed inside steps by grammar-keeping rules (`cotprobe.hedges`):
  "I think (that) it is X" -> "It is X", "it is probably X" -> "it is X", "X, I think." ->
  "X.", "it might be X" -> "it is X", "it seems correct" -> "it is correct", a sentence of pure
  doubt ("I'm not sure.") is dropped; a cue that no rule covers is kept (and counted).
- ``random-deletion``: random steps deleted (seeded per question) until the deleted tokens
  match what ``linear`` deleted from that trace to within one step (length control).
- ``rewrite-linear``, ``rewrite-no-uncertainty``: a language model rewrites the CoT (any
  backend; prompts in cotprobe/_data/rewrite_prompts.json). A rewrite that is empty or does not finish
  within its token limit is recorded as a failed probe (Probe.error), never replaced.

A CoT a condition leaves unchanged is probed on the trace's own token ids (so it equals
``full`` exactly); a changed one is re-encoded from its text. ``fraction_realised`` is the
modified CoT's token count over the original's; ``fraction_requested`` is 1 (0 for ``none``).

With no arguments: the default experiment on the embedded model (the traces of
``python -m cotprobe.truncate``'s default run, runs/default, generated if missing), all
rule-based conditions, the table, metrics.json section "ablate" and figures/ablation.png.
Interrupted runs resume: (question, condition) pairs already in probes.jsonl are skipped.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from .backends import capabilities_of
from .cli import entry_point
from .conditions import (CONDITIONS, DEFAULT_CONDITIONS, LINEAR_BEHAVIOURS, REWRITE_CONDITIONS, RULE_CONDITIONS,
                         Variant, load_rewrite_prompts, rewrite_variant, rule_variants)
from .config import add_run_arguments, default_experiment, resolve_run
from .experiment import load_model, setup
from .forcing import Prober, force_cuts
from .hedges import HEDGE_RULES_VERSION
from .inflight import in_order
from .plots import plot_conditions
from .records import SOURCES, Confidence, Probe, Question, Step, Tag, Trace
from .steps import tagger_name, tags_for
from .store import RunDir, open_existing
from .summary import condition_metrics, print_condition_summary, print_scoring, update_metrics
from .tracing import remember_shared_prompt


def probe_variants(prober: Prober, trace: Trace, question: Question, variants: list[Variant]) -> list[Probe]:
    """Force an answer and a confidence after each variant's CoT, as after a 100% cut.

    Variants whose tokens are a prefix of the trace's own (full, none, unchanged CoTs) share
    one encoding of the trace (rows of one fork); every other variant is encoded on its own.
    """
    backend = prober.backend
    prompt_ids = backend.encode(trace.prompt)
    n_orig = len(trace.cot_token_ids)
    results: dict[tuple[int, ...], tuple[str, Confidence]] = {}
    ready = [v for v in variants if not v.error]
    for v in ready:
        if v.ids is None:
            v.ids = backend.encode(v.cot)
    prefixes = {tuple(v.ids): v for v in ready if v.ids == trace.cot_token_ids[:len(v.ids)]}
    if prefixes:
        keys = sorted(prefixes, key=len, reverse=True)
        ids = prompt_ids + trace.cot_token_ids
        results.update(zip(keys, force_cuts(prober, ids, len(prompt_ids), [len(prompt_ids) + len(k) for k in keys])))
    for v in ready:
        key = tuple(v.ids)
        if key not in results:
            ids = prompt_ids + v.ids
            (results[key],) = force_cuts(prober, ids, len(prompt_ids), [len(ids)])
    probes = []
    for v in variants:
        requested = 0.0 if v.condition == "none" else 1.0
        if v.error:
            probes.append(Probe(question_id=trace.question_id, condition=v.condition, fraction_requested=requested,
                                fraction_realised=0.0, step_index=0, token_index=0, answer="",
                                confidence=Confidence(), correct=None, grader="", cot=None, removed=[],
                                error=v.error))
            continue
        answer, confidence = results[tuple(v.ids)]
        result = prober.grade(question, answer)
        probes.append(Probe(
            question_id=trace.question_id, condition=v.condition, fraction_requested=requested,
            fraction_realised=len(v.ids) / n_orig if n_orig else 1.0, step_index=v.steps_kept,
            token_index=len(v.ids), answer=answer, confidence=confidence, correct=result.correct,
            grader=result.grader, cot=v.cot, removed=list(v.removed),
        ))
    return probes


@dataclass
class Rewriting:
    backend: Any
    prompts: dict[str, Any]
    max_tokens: int | None = None  # None: twice the CoT's tokens plus 64


@dataclass(frozen=True)
class Ablation:
    """What `ablate` probes: the conditions, built from the traces' steps and behaviour tags,
    random-deletion's seed, and the rewriting model of the rewrite conditions."""

    conditions: list[str]
    steps: dict[str, list[Step]]
    tags: list[Tag]
    seed: int = 0
    rewriting: Rewriting | None = None


def ablate(prober: Prober, traces: list[Trace], questions: dict[str, Question], run: RunDir,
           ablation: Ablation) -> tuple[list[Probe], dict[str, Any]]:
    """Probe every (trace, condition) not yet in probes.jsonl; return all ablation probes and
    statistics of the edits (rule-based conditions: over every trace)."""
    conditions, rewriting = ablation.conditions, ablation.rewriting
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}: choose from {', '.join(CONDITIONS)}")
    if any(c in REWRITE_CONDITIONS for c in conditions) and rewriting is None:
        raise ValueError("rewrite conditions need a rewriting backend")
    run.repair_records(Probe)
    remember_shared_prompt(prober.backend, [t.prompt for t in traces])
    done: dict[tuple[str, str], Probe] = {(p.question_id, p.condition): p
                                          for p in run.probes() if p.condition != "cut"}
    tags_by_q: dict[str, list[Tag]] = {}
    for t in ablation.tags:
        tags_by_q.setdefault(t.question_id, []).append(t)
    rule_conds = [c for c in conditions if c in RULE_CONDITIONS]
    order = {c: i for i, c in enumerate(conditions)}

    def work(trace: Trace) -> tuple[list[Variant], list[Probe]]:
        """The trace's variants and the probes of those not probed yet (nothing written here)."""
        q_steps = ablation.steps.get(trace.question_id, [])
        q_tags = tags_by_q.get(trace.question_id, [])
        variants = rule_variants(trace, q_steps, q_tags, rule_conds, ablation.seed)
        todo = [v for v in variants if (trace.question_id, v.condition) not in done]
        for cond in conditions:
            if cond in REWRITE_CONDITIONS and (trace.question_id, cond) not in done:
                limit = rewriting.max_tokens or 2 * len(trace.cot_token_ids) + 64
                todo.append(rewrite_variant(rewriting.backend, rewriting.prompts["conditions"][cond], cond,
                                            trace, q_steps, limit))
        todo.sort(key=lambda v: order[v.condition])
        return variants, probe_variants(prober, trace, questions[trace.question_id], todo) if todo else []

    # On a server, several traces in flight at once (their records still written in order, so a
    # rerun resumes exactly); a local rewriting model keeps it to one trace at a time.
    in_flight = capabilities_of(prober.backend).in_flight
    if rewriting is not None and any(c in REWRITE_CONDITIONS for c in conditions):
        in_flight = min(in_flight, capabilities_of(rewriting.backend).in_flight)
    together = 1 if in_flight <= 1 else max(1, min(len(traces), -(-2 * in_flight // max(1, len(conditions)))))
    made: list[Variant] = []
    for trace, (variants, probes) in tqdm(in_order(work, traces, together), total=len(traces), desc="ablate",
                                          unit="trace"):
        made.extend(variants)
        run.add_many(probes)
        done.update({(probe.question_id, probe.condition): probe for probe in probes})
    probes = [p for p in run.probes() if p.condition != "cut"]
    return probes, edit_statistics(made)


def edit_statistics(variants: list[Variant]) -> dict[str, Any]:
    """Per rule-based condition: how much was taken out."""
    out: dict[str, Any] = {}
    by: dict[str, list[Variant]] = {}
    for v in variants:
        by.setdefault(v.condition, []).append(v)
    for cond, group in by.items():
        row: dict[str, Any] = {"traces": len(group), "changed": sum(1 for v in group if v.removed),
                               "mean_removed_items": float(np.mean([len(v.removed) for v in group]))}
        if cond in ("linear", "random-deletion"):
            row["mean_deleted_tokens"] = float(np.mean([v.info["deleted_tokens"] for v in group]))
            row["mean_deleted_steps"] = float(np.mean([v.info["deleted_steps"] for v in group]))
        if cond == "random-deletion":
            row["max_abs_token_gap_to_linear"] = int(max(abs(v.info["deleted_tokens"] - v.info["target_tokens"])
                                                         for v in group))
        if cond == "no-hedging":
            row["cues"] = int(sum(v.info["cues"] for v in group))
            row["cues_without_rule"] = int(sum(v.info["cues_kept"] for v in group))
            kept: dict[str, int] = {}
            for v in group:
                for cue in v.info["kept"]:
                    kept[cue.lower()] = kept.get(cue.lower(), 0) + 1
            row["kept_cues"] = dict(sorted(kept.items(), key=lambda kv: -kv[1]))
        out[cond] = row
    return out


def print_edits(edits: dict[str, Any]) -> None:
    for cond, row in edits.items():
        if cond in ("full", "none"):
            continue
        extra = ""
        if "mean_deleted_tokens" in row:
            extra = f"; mean {row['mean_deleted_steps']:.1f} steps / {row['mean_deleted_tokens']:.1f} tokens deleted"
        if "max_abs_token_gap_to_linear" in row:
            extra += f" (largest gap to linear: {row['max_abs_token_gap_to_linear']} tokens)"
        if "cues" in row:
            extra = f"; {row['cues']} hedging cues, {row['cues_without_rule']} left in place (no rule)"
        print(f"edits {cond:<16} changed {row['changed']}/{row['traces']} traces{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.ablate",
        description=(
            "Remove behaviours (backtracking, alternatives, verification, hedging) from chains of thought, "
            "force an answer and a confidence after each modified CoT, and compare calibration with the full "
            "CoT. With no arguments: the default experiment on the embedded model (traces of runs/default, "
            "shared with python -m cotprobe.truncate; a few minutes on a CPU)."
        ),
    )
    parser.add_argument("run_dir", nargs="?", help="a run directory with traces (default: generate into --out)")
    add_run_arguments(parser)
    parser.add_argument("--out", default="runs/default", help="run directory when RUN_DIR is not given (default runs/default)")
    parser.add_argument("--conditions", default=DEFAULT_CONDITIONS,
                        help=f"comma list from {', '.join(CONDITIONS)} (default {DEFAULT_CONDITIONS})")
    parser.add_argument("--deletion-seed", type=int, default=0, help="seed of random-deletion (default 0)")
    parser.add_argument("--source", choices=SOURCES, default="sampled",
                        help="confidence for the metrics: sampled, the label the model wrote (default: the "
                             "paper's measure, as in truncate); expected, the expected value of the scored "
                             "label distribution; scored, its most likely label")
    parser.add_argument("--rewrite-model", default=None, help="model that rewrites CoTs (default: the run's model)")
    parser.add_argument("--rewrite-backend", choices=("hf", "openai"), default=None,
                        help="backend of the rewrite model (default: the run's backend)")
    parser.add_argument("--rewrite-base-url", default=None, help="server of --rewrite-backend openai")
    parser.add_argument("--rewrite-max-tokens", type=int, default=None,
                        help="token limit of a rewrite (default: twice the CoT's tokens plus 64)")
    parser.add_argument("--rewrite-prompts", default=None, help="rewrite prompts JSON (default cotprobe/_data/rewrite_prompts.json)")
    args = parser.parse_args(default_experiment(parser, argv))

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise ValueError(f"--conditions: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CONDITIONS)}")
    if args.run_dir:
        open_existing(args.run_dir)
    out, config = resolve_run(parser, args, argv, args.run_dir, "RUN_DIR")
    ex = setup(config, out, new_traces=not args.run_dir)
    rewriting = None
    if any(c in REWRITE_CONDITIONS for c in conditions):
        prompts = load_rewrite_prompts(args.rewrite_prompts)
        rewriter = ex.prober.backend
        kind = args.rewrite_backend or config.backend
        if (args.rewrite_model and args.rewrite_model != config.model) or kind != config.backend:
            rewriter = load_model(config, args.rewrite_model, kind, args.rewrite_base_url)
        rewriting = Rewriting(rewriter, prompts, args.rewrite_max_tokens)
    with RunDir(out) as run:
        traces = ex.traces(run, reuse=bool(args.run_dir), stage="ablate")
        steps, tags, tag_settings = tags_for(run, ex.prober.backend)
        run.start_stage("ablate", {"tagger": tagger_name(tag_settings),
                                   "lexicon_sha256": tag_settings.get("lexicon_sha256"),
                                   "prompt_sha256": tag_settings.get("prompt_sha256"),
                                   "linear_behaviours": list(LINEAR_BEHAVIOURS),
                                   "hedge_rules": HEDGE_RULES_VERSION, "deletion_seed": args.deletion_seed,
                                   "force": asdict(ex.prober.force)})
        if rewriting is not None:
            run.start_stage("ablate-rewrite", {"rewrite_model": args.rewrite_model or config.model,
                                               "rewrite_backend": args.rewrite_backend or config.backend,
                                               "prompts_sha256": rewriting.prompts["_sha256"],
                                               "max_tokens": args.rewrite_max_tokens, "decoding": "greedy"})
        ablation = Ablation(conditions, steps, tags, args.deletion_seed, rewriting)
        probes, edits = ablate(ex.prober, traces, ex.by_id, run, ablation)
    result = condition_metrics(probes, source=args.source, edits=edits)
    update_metrics(out, {"ablate": result})
    print_condition_summary(result, out)
    print_scoring(probes)
    ex.report_grading(out)
    print_edits(edits)
    failed = [p for p in probes if p.error]
    if failed:
        print(f"{len(failed)} probe(s) failed and were not scored, e.g. {failed[0].condition} on "
              f"{failed[0].question_id}: {failed[0].error}")
    figure = plot_conditions(result, out / "figures" / "ablation",
                             title=f"Calibration after ablating the CoT ({config.model}, confidence: {args.source})")
    print(f"figure: {figure}")
    return 0


entry = entry_point(main)  # the console script (setup.cfg)

if __name__ == "__main__":
    entry()
