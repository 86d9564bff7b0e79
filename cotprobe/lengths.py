"""Cut tables within terciles of full-thought length: is a curve along the CoT a selection effect?

Hard questions have long thoughts, so a metric that falls along the CoT pooled over questions may
only say that the late cuts of long thoughts are hard questions' cuts. The "by_length" section of
metrics.json repeats the cut table (`summary.cut_metrics`: every metric per cut level with its
question-clustered interval, and their trends) within each tercile of the full thought's length in
tokens (`len(Trace.cot_token_ids)`): a curve that holds within every stratum is not the selection.

Strata are made by rank: the questions with cut probes, ordered by thought length (ties by
question id), are split into three groups of nearly equal size (`numpy.array_split`), so equal
lengths can fall either side of a boundary (a budget-capped run has many thoughts of the budget's
length); each stratum records its shortest and longest thought.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .metrics.sections import LengthSection, LengthStratum
from .records import Probe, Trace
from .summary import HEADER, cut_metrics, format_row

STRATA = ("short", "middle", "long")


def length_strata(probes: Iterable[Probe], traces: Iterable[Trace]) -> dict[str, list[str]]:
    """Stratum name -> its question ids: the questions with cut probes and a trace, split in three
    by full-thought length (fewer than three such questions: one stratum each, shortest first)."""
    have = {p.question_id for p in probes if p.condition == "cut"}
    lengths = {t.question_id: len(t.cot_token_ids) for t in traces if t.question_id in have}
    order = sorted(lengths, key=lambda q: (lengths[q], q))
    groups = [list(g) for g in np.array_split(np.array(order, dtype=object), len(STRATA)) if len(g)]
    return {name: group for name, group in zip(STRATA, groups)}


def length_metrics(probes: list[Probe], traces: list[Trace], source: str = "expected",
                   n_resamples: int = 1000, censored: frozenset[str] = frozenset(),
                   completed_only: bool = False) -> LengthSection:
    """The "by_length" section: `summary.cut_metrics` within each tercile of full-thought length."""
    lengths = {t.question_id: len(t.cot_token_ids) for t in traces}
    strata: list[LengthStratum] = []
    for name, questions in length_strata(probes, traces).items():
        keep = set(questions)
        cut = cut_metrics([p for p in probes if p.question_id in keep], source, n_resamples,
                          censored=censored, completed_only=completed_only)
        tokens = [lengths[q] for q in questions]
        strata.append({"stratum": name, "n_questions": len(questions), "min_tokens": int(min(tokens)),
                       "max_tokens": int(max(tokens)),
                       "censored": cut["censored"], "levels": cut["levels"],
                       "trends": cut["trends"]})
    return {"source": source, "length": "full-thought CoT tokens (terciles by rank)",
            "completed_only": completed_only, "strata": strata}


def as_cut_sections(section: LengthSection) -> dict[str, dict]:
    """Stratum label -> a cut-table-shaped dict (source, levels, trends), for `plots.draw_progress`."""
    return {f"{s['stratum']} ({s['min_tokens']}-{s['max_tokens']} tokens, n={s['n_questions']})":
            {"source": section["source"], "levels": s["levels"], "trends": s["trends"]} for s in section["strata"]}


def print_length_summary(section: LengthSection, run_dir, levels: bool = True) -> None:
    """Per stratum: the cut table's rows (unless not `levels`) and the clustered slope of every metric."""
    print(f"\n{run_dir}: calibration against CoT progress within terciles of full-thought length "
          f"(confidence={section['source']})")
    for s in section["strata"]:
        print(f"{s['stratum']}: {s['n_questions']} questions, thoughts of {s['min_tokens']}-{s['max_tokens']} tokens")
        if levels:
            print(HEADER.replace(" " * 22, f"{'cut (realised)':<22}", 1))
            for row in s["levels"]:
                print(format_row(f"{row['level']:.2f} ({row['fraction_realised']:.2f})", row))
        print("  slopes per unit of CoT [95% CI]: " + "  ".join(
            f"{name} {t['clustered']['slope']:+.3f} [{t['clustered']['low']:+.3f}, {t['clustered']['high']:+.3f}]"
            for name, t in s["trends"].items()))
