"""P(correct | prefix): sample continuations of a cut thought and grade the answers they lead to.

At a cut, the final outcome of the one recorded trace is a noisy label for the prefix. Sampling
K continuations of the thought from the prefix (at a temperature, up to what is left of the
thinking budget), closing each thought and forcing its answer exactly as at a cut (greedy, see
`cotprobe.forcing`), and grading them gives the empirical share of continuations that end correct:
the quantity confidence at that cut should track. The K samples of every cut of a trace are rows
of one batch over the trace's single encoding (`backends.fork`); after sampling, the tokens a row
wrote after its thought ended (the start of `**Answer**` or the think end tag) are taken back,
and the thought is closed exactly as the sweep closes a cut (`forcing.close_at`: its last words
re-encoded together with the closing) before the answer is forced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from dataclasses import dataclass

from .backends import capabilities_of, fork
from .config import RunConfig
from .metrics import binomial_ci
from .metrics.sections import PrefixSection, interval
from .forcing import Prober, answer_and_confidence, close_at, closing_for
from .profiles import Profile
from .prompts import ANSWER_PREFIX
from .records import Question, Resample, Trace


def thought_stop(profile: Profile) -> list[str]:
    """Where a thought ends: the think end tag, or (non-reasoning) the start of `**Answer**`."""
    return [profile.think_end] if profile.reasoning else [ANSWER_PREFIX.rstrip(":")]


def thought_length(backend, token_ids: list[int], stop: list[str]) -> int:
    """How many of `token_ids` come before the first stop string (whole tokens only)."""
    text = backend.decode(token_ids)
    starts = [text.find(s) for s in stop if s and s in text]
    if not starts:
        return len(token_ids)
    begin = min(starts)
    keep = len(token_ids)
    while keep > 0 and len(backend.decode(token_ids[:keep])) > begin:
        keep -= 1
    return keep


def cut_seed(seed: int, question_id: str, token_index: int) -> int:
    """A sampling seed per (question, cut), stable across runs and resumes."""
    digest = hashlib.sha256(f"{seed}/{question_id}/{token_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def fork_point(backend, ids: list[int], cut: int, floor: int) -> int:
    """Where the rows sampling from ids[:cut] start (they are then given ids[start:cut]): early
    enough that closing a sampled thought only takes back tokens the row holds itself, which is
    all a batch of rows can take back (`HFRows.rewind`). `close_at` re-encodes, before a
    continuation's end, at most the blanks that end ids[:cut] and five more tokens (the last words
    and the rest of a character of at most four bytes); it never goes before `floor`."""
    start, special = cut, backend.special_ids
    while start > floor and ids[start - 1] not in special and not backend.decode(ids[start - 1:start]).strip():
        start -= 1
    return max(floor, start - 5)


@dataclass(frozen=True)
class ResampleSettings:
    """truncate --resample: k continuations per cut at `temperature`, within `budget` thinking
    tokens in all (the run's --budget), seeded from `seed` (the run's --seed), at the cut levels
    in `fractions` (None: every level). `budget` and `seed` are the `RunConfig` options: their
    default and their name in the manifest are those."""

    k: int
    temperature: float = 0.7
    budget: int = RunConfig.budget
    seed: int = RunConfig.seed
    fractions: tuple[float, ...] | None = None


def resample_cuts(prober: Prober, trace: Trace, question: Question, cuts: Sequence, settings: ResampleSettings,
                  max_rows: int = 16) -> list[Resample]:
    """K continuations at every cut (objects with fraction_requested and token_index), forced and
    graded. A continuation may add up to `budget` minus the tokens the cut kept (the trace's own
    thinking budget). Rows are batched a whole cut at a time, at most max(max_rows, k) per batch."""
    backend, k, temperature = prober.backend, settings.k, settings.temperature
    if k < 1:
        raise ValueError(f"--resample must be >= 1, got {k}")
    if not capabilities_of(backend).samples:
        raise ValueError(f"--resample needs a backend that samples; {type(backend).__name__} does not "
                         "(use --backend hf)")
    prompt_ids = backend.encode(trace.prompt)
    ids = prompt_ids + trace.cot_token_ids
    stop = thought_stop(prober.profile)
    points = sorted({c.token_index for c in cuts}, reverse=True)
    per_batch = max(1, max_rows // k)
    made: dict[int, Resample] = {}
    closing, floor = closing_for(prober), len(prompt_ids)
    for start in range(0, len(points), per_batch):
        chunk = points[start:start + per_batch]
        cuts_of_rows = [floor + t for t in chunk for _ in range(k)]
        starts = [fork_point(backend, ids, c, floor) for c in cuts_of_rows]
        rows = fork(backend, ids, starts)
        rows.extend([ids[s:c] for s, c in zip(starts, cuts_of_rows)])
        allowed = [max(settings.budget - t, 0) for t in chunk for _ in range(k)]
        seeds = cut_seed(settings.seed, trace.question_id, chunk[0])
        written = rows.sample(max(allowed), stop, temperature, seeds)
        kept = [min(thought_length(backend, c.token_ids, stop), limit) for c, limit in zip(written, allowed)]
        thoughts = [row[:len(row) - len(c.token_ids) + n] for row, c, n in zip(rows.ids, written, kept)]
        plans = [close_at(backend, thought, floor, closing) for thought in thoughts]
        if any(keep < s for (keep, _), s in zip(plans, starts)):
            raise RuntimeError("closing a sampled thought re-encodes tokens before its row started (fork_point)")
        rows.rewind([len(row) - keep for row, (keep, _) in zip(rows.ids, plans)])
        rows.extend([new for _, new in plans])
        forced = answer_and_confidence(rows, prober)
        for j, t in enumerate(chunk):
            mine = range(j * k, (j + 1) * k)
            answers = [forced[i][0] for i in mine]
            correct = [prober.grade(question, a).correct for a in answers]
            graded = [c for c in correct if c is not None]
            n_correct = sum(bool(c) for c in graded)
            low, high = binomial_ci(n_correct, len(graded)) if graded else (None, None)
            made[t] = Resample(
                question_id=trace.question_id, fraction_requested=0.0, token_index=t, temperature=temperature,
                answers=answers, correct=correct, continuation_tokens=[kept[i] for i in mine],
                n_correct=n_correct, n_graded=len(graded),
                p_correct=n_correct / len(graded) if graded else None, low=low, high=high)
    out = []
    for cut in cuts:
        record = made[cut.token_index]
        out.append(Resample(**{**vars(record), "fraction_requested": cut.fraction_requested}))
    return out


# ------------------------------------------------------------------ metrics against P(correct | prefix)


def prefix_metrics(probes, resamples: list[Resample], sources: dict, n_resamples: int = 1000) -> PrefixSection:
    """Confidence at each cut against the prefix accuracy of that cut (and against the outcome).

    sources: name -> a confidence source of `cotprobe.summary` ("expected", "scored", "sampled")
    or a dict (question_id, rounded fraction_requested) -> confidence (e.g. latent). Per source,
    pooled over cuts and per cut level: Brier and ECE against P(correct | prefix) and against the
    forced answer's outcome, mean confidence, mean prefix accuracy, each with a 95% bootstrap
    interval over questions (clustered across cuts)."""
    import numpy as np

    from . import metrics
    from .metrics.sections import PrefixRow, interval_fields
    from .summary import confidence_value

    by_key = {(r.question_id, round(r.fraction_requested, 6)): r for r in resamples if r.p_correct is not None}
    cut_probes = [p for p in probes if p.condition == "cut" and p.correct is not None
                  and (p.question_id, round(p.fraction_requested, 6)) in by_key]
    out: PrefixSection = {"n_pairs": len(cut_probes), "k": max((r.n_graded for r in resamples), default=0),
                 "temperature": resamples[0].temperature if resamples else None, "sources": {}}
    stats = {"brier_prefix": lambda c, t, y: metrics.brier_target(c, t),
             "ece_prefix": lambda c, t, y: metrics.ece_target(c, t),
             "brier_outcome": lambda c, t, y: metrics.brier(c, y),
             "ece_outcome": lambda c, t, y: metrics.ece(c, y),
             "mean_confidence": lambda c, t, y: float(np.mean(c)),
             "prefix_accuracy": lambda c, t, y: float(np.mean(t)),
             "outcome_accuracy": lambda c, t, y: float(np.mean(y))}

    def table(c, t, y, q) -> PrefixRow:
        row = {"n": int(c.size)}
        for name, fn in stats.items():
            row.update(interval_fields(name, float(fn(c, t, y)), metrics.bootstrap_stat(
                lambda i: fn(c[i], t[i], y[i]), c.size, q, n_resamples)))
        return row

    for name, source in sources.items():
        keyed = [(p, (source.get((p.question_id, round(p.fraction_requested, 6))) if isinstance(source, dict)
                      else confidence_value(p.confidence, source))) for p in cut_probes]
        keyed = [(p, c) for p, c in keyed if c is not None]
        if not keyed:
            continue
        c = np.array([v for _, v in keyed])
        t = np.array([by_key[(p.question_id, round(p.fraction_requested, 6))].p_correct for p, _ in keyed])
        y = np.array([float(p.correct) for p, _ in keyed])
        q = np.array([p.question_id for p, _ in keyed])
        level = np.array([round(p.fraction_requested, 6) for p, _ in keyed])
        frac = np.array([p.fraction_realised for p, _ in keyed])
        levels = []
        for lv in sorted(set(level)):
            m = level == lv
            levels.append({"level": float(lv), "fraction_realised": float(frac[m].mean()), **table(c[m], t[m], y[m], q[m])})
        out["sources"][name] = {"overall": table(c, t, y, q), "levels": levels}
    return out


def print_prefix_summary(result: dict, run_dir) -> None:
    print(f"\n{run_dir}: confidence against P(correct | prefix) ({result['k']} continuations per cut at "
          f"temperature {result['temperature']}; {result['n_pairs']} cuts)")
    print(f"{'source':<16} {'cut':>5} {'n':>5}  {'P(correct|prefix)':<22} {'confidence':>10}  "
          f"{'Brier vs prefix':<22} {'Brier vs outcome':<22}")
    for name, section in result["sources"].items():
        for row in section["levels"] + [dict(section["overall"], level=None)]:
            cell = lambda k: "{:.3f} [{:.3f}, {:.3f}]".format(*interval(row, k))  # noqa: E731
            cut = "all" if row["level"] is None else f"{row['level']:.2f}"
            print(f"{name:<16} {cut:>5} {row['n']:>5}  {cell('prefix_accuracy'):<22} {row['mean_confidence']:>10.3f}  "
                  f"{cell('brier_prefix'):<22} {cell('brier_outcome'):<22}")
