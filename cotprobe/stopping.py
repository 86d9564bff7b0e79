"""Early exit, replayed offline: when could the model have stopped thinking?

Every cut of a trace already has a forced answer, its grade and its confidences, so a stopping
policy can be replayed on the records without running the model: walk the cuts of each trace
from the shortest to the longest and stop at the first one where the policy fires (or at the
last cut, the full thought, if it never does). The answer given there is the policy's answer.

Policies: ``confidence`` (stop at the first cut whose confidence >= t; the sources are
``verbal``, the class the model wrote, ``scored``, the expected value of the scored label
distribution, and ``latent``, the linear probe of `cotprobe.latent`), ``stable`` (stop once the
forced answer has been the same at k consecutive cuts) and ``fraction`` (stop at the first cut
that keeps at least a fraction f of the thought: the fixed-budget baseline; f = 1 is the full
thought). The cost counted is the thinking tokens kept at the stopping cut; probing the cuts
before it costs forced decodes too, which these numbers leave out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .metrics.sections import EarlyExitSection, MatchedAccuracy, PolicyRow, has_interval, interval, interval_fields

CONFIDENCE_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.5, 0.96, 0.05))
STABLE_RUNS = (2, 3, 4, 5)
FRACTIONS = tuple(round(f, 1) for f in np.arange(0.0, 1.01, 0.1))


@dataclass(frozen=True)
class CutView:
    """What a policy sees at one cut of one trace."""

    token_index: int
    fraction: float  # realised fraction of the thought kept
    answer: str
    correct: bool
    confidence: dict[str, float | None] = field(default_factory=dict)  # source -> value


@dataclass(frozen=True)
class Policy:
    kind: str  # "confidence" | "stable" | "fraction"
    parameter: float
    source: str = ""  # confidence source for kind "confidence"

    @property
    def name(self) -> str:
        if self.kind == "confidence":
            return f"{self.source} >= {self.parameter:.2f}"
        if self.kind == "stable":
            return f"same answer x{int(self.parameter)}"
        return f"fraction {self.parameter:.1f}"

    @property
    def family(self) -> str:
        return f"confidence ({self.source})" if self.kind == "confidence" else self.kind


def normalise_answer(answer: str) -> str:
    return re.sub(r"[\s.,;:!*\"'`]+", " ", answer.lower()).strip()


def stop_index(cuts: list[CutView], policy: Policy) -> int:
    """Index into `cuts` (ordered by token_index) of the cut where the policy stops."""
    run, previous = 0, None
    for i, cut in enumerate(cuts):
        if policy.kind == "confidence":
            value = cut.confidence.get(policy.source)
            if value is not None and value >= policy.parameter - 1e-12:
                return i
        elif policy.kind == "stable":
            answer = normalise_answer(cut.answer)
            run = run + 1 if answer == previous else 1
            previous = answer
            if run >= policy.parameter:
                return i
        elif policy.kind == "fraction":
            if cut.fraction >= policy.parameter - 1e-9:
                return i
        else:
            raise ValueError(f"unknown policy kind {policy.kind!r}")
    return len(cuts) - 1


def policies(sources: list[str]) -> list[Policy]:
    out = [Policy("fraction", f) for f in FRACTIONS]
    out += [Policy("stable", k) for k in STABLE_RUNS]
    out += [Policy("confidence", t, s) for s in sources for t in CONFIDENCE_THRESHOLDS]
    return out


def views(probes, latent: dict | None = None) -> dict[str, list[CutView]]:
    """Per question, its graded cuts (one per distinct cut point) from the shortest to the
    longest; latent: (question_id, token_index) -> probe confidence."""
    by_q: dict[str, dict[int, CutView]] = defaultdict(dict)
    for p in probes:
        if p.condition != "cut" or p.correct is None:
            continue
        conf = {"verbal": p.confidence.sampled_value, "scored": p.confidence.expected_value}
        if latent is not None:
            conf["latent"] = latent.get((p.question_id, p.token_index))
        by_q[p.question_id][p.token_index] = CutView(p.token_index, p.fraction_realised, p.answer, bool(p.correct), conf)
    return {q: [cuts[t] for t in sorted(cuts)] for q, cuts in by_q.items()}


def replay(cuts_by_q: dict[str, list[CutView]], policy: Policy) -> list[tuple[str, CutView, CutView]]:
    """(question, stopping cut, last cut) for every question."""
    return [(q, cuts[stop_index(cuts, policy)], cuts[-1]) for q, cuts in sorted(cuts_by_q.items())]


def evaluate(cuts_by_q: dict[str, list[CutView]], policy: Policy, n_resamples: int = 1000, seed: int = 0) -> PolicyRow:
    """Tokens used, accuracy and calibration (scored confidence at the stopping cut) of one
    policy, with 95% bootstrap intervals over questions, and the paired accuracy difference to
    the full thought."""
    stops = replay(cuts_by_q, policy)
    used = np.array([s.token_index for _, s, _ in stops], dtype=float)
    full = np.array([last.token_index for _, _, last in stops], dtype=float)
    ok = np.array([s.correct for _, s, _ in stops], dtype=float)
    ok_full = np.array([last.correct for _, _, last in stops], dtype=float)
    conf = np.array([s.confidence.get("scored") for _, s, _ in stops], dtype=float)
    n = len(stops)

    def share(i):
        return float(used[i].sum() / full[i].sum()) if full[i].sum() else 1.0

    def with_interval(name: str, stat) -> dict[str, float]:
        return interval_fields(name, stat(np.arange(n)), metrics.bootstrap_stat(stat, n, None, n_resamples, seed=seed))

    row: PolicyRow = {"policy": policy.name, "family": policy.family, "kind": policy.kind,
                      "parameter": policy.parameter, "source": policy.source, "n": n,
                      **with_interval("mean_tokens", lambda i: float(used[i].mean())),
                      "mean_full_tokens": float(full.mean()), **with_interval("token_share", share),
                      **with_interval("accuracy", lambda i: float(ok[i].mean())),
                      "accuracy_full": float(ok_full.mean()), "stopped_early": float(np.mean(used < full)),
                      **with_interval("accuracy_diff", lambda i: float(ok[i].mean() - ok_full[i].mean()))}
    if not np.isnan(conf).any():
        for name in ("ece", "brier"):
            fn = metrics.METRICS[name].fn
            row.update(interval_fields(name, fn(conf, ok), metrics.bootstrap_ci(fn, conf, ok, None, n_resamples,
                                                                                 seed=seed)))
    return row


def pareto(rows: list[PolicyRow]) -> list[PolicyRow]:
    """Rows on the frontier: no other row uses no more tokens with higher accuracy (or fewer
    tokens at no lower accuracy); ordered by tokens."""
    front = []
    for r in sorted(rows, key=lambda r: (r["token_share"], -r["accuracy"])):
        if not front or r["accuracy"] > front[-1]["accuracy"] + 1e-12:
            front.append(r)
    return front


def matched_accuracy(rows: list[PolicyRow]) -> list[MatchedAccuracy]:
    """DEER-style: per policy family, the setting with the fewest tokens whose accuracy is at
    least the full thought's (point estimates), and its token reduction."""
    out = []
    for family in dict.fromkeys(r["family"] for r in rows):
        mine = [r for r in rows if r["family"] == family and r["accuracy"] >= r["accuracy_full"] - 1e-12]
        best = min(mine, key=lambda r: r["token_share"], default=None)
        out.append({"family": family, "policy": best["policy"] if best else None,
                    "token_reduction": 1 - best["token_share"] if best else None,
                    "accuracy": best["accuracy"] if best else None,
                    "accuracy_full": rows[0]["accuracy_full"],
                    **dict(zip(("accuracy_diff", "accuracy_diff_low", "accuracy_diff_high"),
                               interval(best, "accuracy_diff") if best else (None, None, None)))})
    return out


def early_exit_metrics(cuts_by_q: dict[str, list[CutView]], sources: list[str],
                       n_resamples: int = 1000) -> EarlyExitSection:
    """The "early_exit" section: every policy replayed, the Pareto frontier, matched accuracy."""
    rows = [evaluate(cuts_by_q, p, n_resamples) for p in policies(sources)]
    full = next(r for r in rows if r["kind"] == "fraction" and r["parameter"] == 1.0)
    return {"n_questions": len(cuts_by_q), "mean_cuts": float(np.mean([len(c) for c in cuts_by_q.values()])),
            "sources": sources, "policies": rows, "full": full, "pareto": [r["policy"] for r in pareto(rows)],
            "matched_accuracy": matched_accuracy(rows),
            "cost_note": "tokens are the thinking tokens kept at the stopping cut; the forced decodes at the "
                         "cuts before it are not counted"}


def print_early_exit(result: EarlyExitSection, run_dir) -> None:
    print(f"\n{run_dir}: early exit replayed on {result['n_questions']} traces "
          f"({result['mean_cuts']:.1f} distinct cuts per trace); full thought: accuracy "
          f"{result['full']['accuracy']:.3f}, {result['full']['mean_tokens']:.1f} tokens")
    print(f"{'policy':<24} {'tokens':>7} {'share [95% CI]':<22} {'accuracy [95% CI]':<22} "
          f"{'vs full [95% CI]':<24} {'Brier':>6}")
    front = set(result["pareto"])

    def cell(row, name: str, sign: str = "") -> str:
        value, low, high = interval(row, name)
        return f"{value:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"

    for r in result["policies"]:
        mark = "*" if r["policy"] in front else " "
        brier = f"{r['brier']:.3f}" if has_interval(r, "brier") else "  -  "
        print(f"{mark}{r['policy']:<23} {r['mean_tokens']:>7.1f} {cell(r, 'token_share')}  {cell(r, 'accuracy')}  "
              f"{cell(r, 'accuracy_diff', '+')}  {brier:>6}")
    print("* on the tokens/accuracy Pareto frontier")
    print("\ntoken reduction at matched accuracy (fewest tokens with accuracy >= the full thought's):")
    for r in result["matched_accuracy"]:
        if r["policy"] is None:
            print(f"  {r['family']:<22} none reaches the full thought's accuracy")
        else:
            print(f"  {r['family']:<22} {r['policy']:<22} -{100 * r['token_reduction']:.1f}% tokens, accuracy "
                  f"{r['accuracy']:.3f} ({cell(r, 'accuracy_diff', '+')})")
