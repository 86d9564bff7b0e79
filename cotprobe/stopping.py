"""Early exit, replayed offline and causally: when could the model have stopped thinking?

Every cut of a trace already has a forced answer, its grade and its confidences, so a stopping
policy can be replayed on the records without running the model. A policy walks the probed cuts
of a trace from the shortest to the longest and sees nothing beyond the cut it is at: it stops at
the first cut where it fires, or, if it never does, the model thinks to the end and the whole
trace (its own answer and grade, from traces.jsonl) is the answer. Nothing a policy reads depends
on the trace's final length.

Policies: ``confidence`` (stop at the first cut whose confidence >= t; the sources are ``verbal``,
the class the model wrote, ``scored``, the expected value of the scored label distribution, and
``latent``, the linear probe of `cotprobe.latent`), ``stable`` (stop once the forced answer has
been the same at k consecutive cuts), ``budget`` (a fixed budget: stop after f x the thinking
budget of the generate stage) or ``tokens`` (after a fixed number of tokens, for runs without a
recorded budget), and ``full`` (the whole trace). A fixed budget answers at the last probed cut
within it (the first cut if none is), or at the trace's end when the trace ends first.

The cost counted is the thinking tokens kept at the stopping point; probing the cuts before it
costs forced decodes too, which these numbers leave out. Where cuts were placed at fractions of
each trace's length (truncate's fraction cuts), the probed points themselves still depend on
the final length; token or step cuts (`--cut every-step`) do not.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .metrics.sections import EarlyExitSection, MatchedAccuracy, PolicyRow, has_interval, interval, interval_fields

CONFIDENCE_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.5, 0.96, 0.05))
STABLE_RUNS = (2, 3, 4, 5)
BUDGET_FRACTIONS = tuple(round(f, 1) for f in np.arange(0.0, 1.01, 0.1))
FOLDS = 5  # folds over questions for the cross-fitted matched-accuracy choice


@dataclass(frozen=True)
class CutView:
    """What a policy sees at one point of one trace: the thinking tokens kept, the answer given
    there, its grade and its confidences (source -> value; None where unparsed)."""

    token_index: int
    answer: str
    correct: bool
    confidence: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Question:
    """One trace to replay: its probed cuts from the shortest to the longest, and its end (the
    whole thought with the trace's own answer)."""

    cuts: list[CutView]
    end: CutView


@dataclass(frozen=True)
class Policy:
    kind: str  # "confidence" | "stable" | "budget" | "tokens" | "full" | "oracle"
    parameter: float = 0.0  # threshold, run length, budget fraction or token count
    source: str = ""  # confidence source for kind "confidence"
    budget: int = 0  # the thinking budget, for kind "budget"

    @property
    def name(self) -> str:
        if self.kind == "confidence":
            return f"{self.source} >= {self.parameter:.2f}"
        if self.kind == "stable":
            return f"same answer x{int(self.parameter)}"
        if self.kind == "budget":
            return f"budget {self.parameter:.1f}"
        if self.kind == "tokens":
            return f"{int(self.parameter)} tokens"
        if self.kind == "oracle":
            return "oracle (hindsight)"
        return "full thought"

    @property
    def family(self) -> str:
        if self.kind == "confidence":
            return f"confidence ({self.source})"
        return {"budget": "fixed budget", "tokens": "fixed tokens", "full": "full thought",
                "oracle": "oracle (hindsight)"}.get(self.kind, self.kind)

    @property
    def limit(self) -> float:
        """The token count a fixed-budget policy stops at."""
        return self.parameter * self.budget if self.kind == "budget" else self.parameter


FULL = Policy("full")
# The ceiling no online policy can reach: stop at the earliest recorded cut whose forced answer is
# right (else think to the end), chosen in hindsight from the grades.
ORACLE = Policy("oracle")


def normalise_answer(answer: str) -> str:
    return re.sub(r"[\s.,;:!*\"'`]+", " ", answer.lower()).strip()


def stop(question: Question, policy: Policy) -> CutView:
    """Where the policy stops on one trace: a probed cut, or the trace's end. The cuts are
    walked in order and the walk returns at the first cut where the policy fires: a policy
    never sees a cut beyond the one it stops at."""
    if policy.kind == "full":
        return question.end
    if policy.kind == "oracle":  # hindsight: reads every cut's grade
        return next((c for c in question.cuts if c.correct), question.end)
    if policy.kind in ("budget", "tokens"):
        if question.end.token_index <= policy.limit + 1e-9:
            return question.end
        within = [c for c in question.cuts if c.token_index <= policy.limit + 1e-9]
        return within[-1] if within else question.cuts[0]
    run, previous = 0, None
    for cut in question.cuts:
        if policy.kind == "confidence":
            value = cut.confidence.get(policy.source)
            if value is not None and value >= policy.parameter - 1e-12:
                return cut
        elif policy.kind == "stable":
            answer = normalise_answer(cut.answer)
            run = run + 1 if answer == previous else 1
            previous = answer
            if run >= policy.parameter:
                return cut
        else:
            raise ValueError(f"unknown policy kind {policy.kind!r}")
    return question.end


def token_counts(questions: dict[str, Question]) -> list[int]:
    """Fixed token counts for a run without a recorded budget: powers of two from 16 up to the
    first one that holds the longest trace."""
    longest = max(q.end.token_index for q in questions.values())
    counts = [16]
    while counts[-1] < longest:
        counts.append(2 * counts[-1])
    return counts


def policies(sources: list[str], budget: int | None, questions: dict[str, Question]) -> list[Policy]:
    """Every setting replayed: fixed budgets (fractions of `budget`, else fixed token counts),
    stable answers, confidence thresholds per source, and the full thought."""
    if budget:
        out = [Policy("budget", f, budget=budget) for f in BUDGET_FRACTIONS]
    else:
        out = [Policy("tokens", n) for n in token_counts(questions)]
    out += [Policy("stable", k) for k in STABLE_RUNS]
    out += [Policy("confidence", t, s) for s in sources for t in CONFIDENCE_THRESHOLDS]
    return out + [FULL]


def views(probes, latent: dict | None = None, traces=None) -> dict[str, Question]:
    """Per question, its graded cuts (one per distinct cut point) from the shortest to the
    longest, and its end: the trace's own answer, grade and confidence at its full length (from
    `traces`), or without a graded trace the cut that keeps the whole thought. Questions with
    neither are left out. latent: (question_id, token_index) -> probe confidence."""
    by_q: dict[str, dict[int, CutView]] = defaultdict(dict)
    whole: dict[str, CutView] = {}
    for p in probes:
        if p.condition != "cut" or p.correct is None:
            continue
        conf = {"verbal": p.confidence.sampled_value, "scored": p.confidence.expected_value}
        if latent is not None:
            conf["latent"] = latent.get((p.question_id, p.token_index))
        view = CutView(p.token_index, p.answer, bool(p.correct), conf)
        by_q[p.question_id][p.token_index] = view
        if p.fraction_realised >= 1 - 1e-9:
            whole[p.question_id] = view
    for t in traces or []:
        if t.question_id in by_q and t.correct is not None:
            conf = {"verbal": t.confidence.sampled_value, "scored": t.confidence.expected_value}
            whole[t.question_id] = CutView(len(t.cot_token_ids), t.answer, bool(t.correct), conf)
    return {q: Question([cuts[t] for t in sorted(cuts)], whole[q]) for q, cuts in sorted(by_q.items()) if q in whole}


@dataclass(frozen=True)
class Outcomes:
    """One policy on every question (sorted by id): tokens used, the full thought's tokens,
    correctness there and of the full thought, and the scored confidence where it stopped."""

    used: np.ndarray
    full: np.ndarray
    ok: np.ndarray
    ok_full: np.ndarray
    confidence: np.ndarray


def outcomes(questions: dict[str, Question], policy: Policy) -> Outcomes:
    stops = [(stop(q, policy), q.end) for _, q in sorted(questions.items())]

    def column(values):
        return np.array(list(values), dtype=float)

    return Outcomes(column(s.token_index for s, _ in stops), column(e.token_index for _, e in stops),
                    column(s.correct for s, _ in stops), column(e.correct for _, e in stops),
                    column(np.nan if s.confidence.get("scored") is None else s.confidence["scored"] for s, _ in stops))


def evaluate(questions: dict[str, Question], policy: Policy, n_resamples: int = 1000, seed: int = 0) -> PolicyRow:
    """Tokens used, accuracy and calibration (scored confidence where it stopped) of one policy,
    with 95% bootstrap intervals over questions, and the paired accuracy difference to the full
    thought."""
    o = outcomes(questions, policy)
    n = o.used.size

    def share(i):
        return float(o.used[i].sum() / o.full[i].sum()) if o.full[i].sum() else 1.0

    def with_interval(name: str, stat) -> dict[str, float]:
        return interval_fields(name, stat(np.arange(n)), metrics.bootstrap_stat(stat, n, None, n_resamples, seed=seed))

    row: PolicyRow = {"policy": policy.name, "family": policy.family, "kind": policy.kind,
                      "parameter": policy.parameter, "source": policy.source, "n": n,
                      **with_interval("mean_tokens", lambda i: float(o.used[i].mean())),
                      "mean_full_tokens": float(o.full.mean()), **with_interval("token_share", share),
                      **with_interval("accuracy", lambda i: float(o.ok[i].mean())),
                      "accuracy_full": float(o.ok_full.mean()), "stopped_early": float(np.mean(o.used < o.full)),
                      **with_interval("accuracy_diff", lambda i: float(o.ok[i].mean() - o.ok_full[i].mean()))}
    if policy.kind == "budget":
        row["stop_tokens"] = policy.limit
    if not np.isnan(o.confidence).any():
        for name in ("ece", "brier"):
            fn = metrics.METRICS[name].fn
            row.update(interval_fields(name, fn(o.confidence, o.ok), metrics.bootstrap_ci(
                fn, o.confidence, o.ok, None, n_resamples, seed=seed)))
    return row


def pareto(rows: list[PolicyRow]) -> list[PolicyRow]:
    """Rows on the frontier: no other row uses no more tokens with higher accuracy (or fewer
    tokens at no lower accuracy); ordered by tokens. Descriptive: every setting on every question."""
    front = []
    for r in sorted(rows, key=lambda r: (r["token_share"], -r["accuracy"])):
        if not front or r["accuracy"] > front[-1]["accuracy"] + 1e-12:
            front.append(r)
    return front


def question_folds(n: int, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold of each of n questions (sorted by id): a seeded permutation dealt round-robin."""
    folds = np.empty(n, dtype=int)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_folds
    return folds


def threshold_choice(n_folds: int) -> str:
    return (f"cross-fitted over {n_folds} folds of questions: each fold uses the setting with the fewest tokens whose "
            f"accuracy reaches the full thought's on the other folds (none: that fold thinks to the end)")


def matched_accuracy(questions: dict[str, Question], settings: list[Policy], n_folds: int = FOLDS,
                     n_resamples: int = 1000, seed: int = 0) -> list[MatchedAccuracy]:
    """DEER-style token reduction at matched accuracy, per policy family, cross-fitted: the
    questions are split into folds; for each fold the setting is chosen on the other folds (the
    fewest tokens among those whose accuracy there is at least the full thought's) and applied
    to this fold, so no question's outcome takes part in choosing the setting it is scored
    under. The interval resamples questions with the choices held fixed."""
    n = len(questions)
    k = min(n_folds, n)
    full = outcomes(questions, FULL)
    families = dict.fromkeys(p.family for p in settings if p.kind != "full")
    if k < 2:
        return [{"family": family, "chosen": [], "threshold_choice": threshold_choice(k), "token_reduction": None,
                 "accuracy": None, "accuracy_full": float(full.ok.mean()) if n else None, "accuracy_diff": None,
                 "accuracy_diff_low": None, "accuracy_diff_high": None} for family in families]
    fold = question_folds(n, k, seed)
    out = []
    for family in families:
        mine = [(p, outcomes(questions, p)) for p in settings if p.family == family]
        used, ok, chosen = full.used.copy(), full.ok.copy(), []
        for f in range(k):
            train, test = fold != f, fold == f
            fits = [(p, o) for p, o in mine if o.ok[train].mean() >= full.ok[train].mean() - 1e-12]
            best = min(fits, key=lambda po: po[1].used[train].sum(), default=None)
            chosen.append(best[0].name if best else None)
            if best:
                used[test], ok[test] = best[1].used[test], best[1].ok[test]

        def gain(i, ok=ok):
            return float(ok[i].mean() - full.ok[i].mean())

        low, high = metrics.bootstrap_stat(gain, n, None, n_resamples, seed=seed)
        out.append({"family": family, "chosen": chosen, "threshold_choice": threshold_choice(k),
                    "token_reduction": float(1 - used.sum() / full.used.sum()), "accuracy": float(ok.mean()),
                    "accuracy_full": float(full.ok.mean()), "accuracy_diff": gain(np.arange(n)),
                    "accuracy_diff_low": low, "accuracy_diff_high": high})
    return out


def early_exit_metrics(questions: dict[str, Question], sources: list[str], n_resamples: int = 1000,
                       budget: int | None = None, n_folds: int = FOLDS, seed: int = 0) -> EarlyExitSection:
    """The "early_exit" section: every policy replayed, the Pareto frontier, and the token
    reduction at matched accuracy (cross-fitted over `n_folds` folds of questions)."""
    settings = policies(sources, budget, questions)
    rows = [evaluate(questions, p, n_resamples, seed) for p in settings]
    return {"n_questions": len(questions), "mean_cuts": float(np.mean([len(q.cuts) for q in questions.values()])),
            "sources": sources, "budget": budget or None, "policies": rows, "full": rows[-1],
            "pareto": [r["policy"] for r in pareto(rows)],
            "oracle": evaluate(questions, ORACLE, n_resamples, seed),
            "matched_accuracy": matched_accuracy(questions, settings, n_folds, n_resamples, seed),
            "threshold_choice": threshold_choice(min(n_folds, len(questions))),
            "full_thought": "the whole trace: its thinking tokens and its own final answer and grade",
            "cost_note": "tokens are the thinking tokens kept at the stopping point; the forced decodes at the "
                         "cuts before it are not counted"}


def print_early_exit(result: EarlyExitSection, run_dir) -> None:
    stops = (f"fixed budgets stop at a fraction of the thinking budget ({result['budget']} tokens)" if result["budget"]
             else "no thinking budget recorded: fixed budgets stop at a token count")
    print(f"\n{run_dir}: early exit replayed on {result['n_questions']} traces "
          f"({result['mean_cuts']:.1f} distinct cuts per trace); full thought (the whole trace): accuracy "
          f"{result['full']['accuracy']:.3f}, {result['full']['mean_tokens']:.1f} tokens; {stops}")
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
    o = result["oracle"]
    print(f" {o['policy']:<23} {o['mean_tokens']:>7.1f} {cell(o, 'token_share')}  {cell(o, 'accuracy')}  "
          f"{cell(o, 'accuracy_diff', '+')}  (the earliest cut whose answer is right: a ceiling, not a policy)")
    print("* on the tokens/accuracy Pareto frontier (every setting on every question: descriptive)")
    print(f"\ntoken reduction at matched accuracy, setting {result['threshold_choice']}:")
    for r in result["matched_accuracy"]:
        if r["token_reduction"] is None:
            print(f"  {r['family']:<22} too few questions to choose on held-out folds")
            continue
        chosen = ", ".join(f"{name or 'none (full thought)'} x{count}" for name, count in Counter(r["chosen"]).items())
        print(f"  {r['family']:<22} -{100 * r['token_reduction']:.1f}% tokens, accuracy {r['accuracy']:.3f} "
              f"({cell(r, 'accuracy_diff', '+')}); folds chose {chosen}")
