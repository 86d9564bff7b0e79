"""What every analysis script shares: loading run directories, labels, tables, the command line.

A *run* is one run directory made by cotprobe (one model, profile and prompt style on one
dataset), read through `cotprobe.store` (its manifest and records). Its label comes from the
manifest (``stages.generate.settings``): model, profile, style and dataset. Numbers come from
`cotprobe.summary` / `cotprobe.metrics` as the sections typed in `cotprobe.metrics.sections`;
nothing here computes a metric of its own.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cotprobe import metrics, summary
from cotprobe.conditions import CONDITIONS
from cotprobe.metrics import CALIBRATION, COMPARED, Resampling, metric_fns
from cotprobe.metrics import METRICS as FACTS
from cotprobe.metrics.sections import (ConditionSection, CutSection, DiffFit, TableRow, has_interval,
                                       interval, interval_fields)
from cotprobe.profiles import style_base
from cotprobe.records import Probe, Trace
from cotprobe.store import RECORD_FILES, RunDir, open_existing, read_manifest, stage_settings


class MissingInputs(ValueError):
    """The given runs lack what an analysis needs (e.g. no probes); the message says what."""


# The four metrics of every table, their labels and directions: from cotprobe's one table of facts.
METRICS = COMPARED
METRIC_LABELS = {name: FACTS[name].axis_label for name in METRICS}
METRIC_NAMES = {name: FACTS[name].label for name in METRICS}
LOWER_IS_BETTER = {name: not FACTS[name].higher_is_better for name in METRICS}

# Prompt styles in the order they are shown, and which count as "reasoning" prompting.
STYLE_ORDER = ("direct", "cot", "slow-think")
REASONING_STYLES = ("cot", "slow-think")

# Ablation conditions in the order they are shown (others follow in order of appearance).
CONDITION_ORDER = CONDITIONS


def short_model(model: str) -> str:
    """'deepseek-ai/DeepSeek-R1-Distill-Qwen-7B' -> 'DeepSeek-R1-Distill-Qwen-7B'."""
    return str(model).rstrip("/").split("/")[-1] or str(model)


def short_dataset(dataset: str) -> str:
    text = str(dataset)
    return Path(text).stem if text.endswith((".jsonl", ".csv", ".json")) else text


class Run:
    """One run directory: its manifest settings, records (read once) and label."""

    def __init__(self, path: str | Path):
        self.path = open_existing(path)
        self.manifest = read_manifest(self.path)
        gen = stage_settings(self.manifest, "generate")
        profile = gen.get("profile")
        self.model = str(gen.get("model", "?"))
        self.profile = str(profile.get("name", "?")) if isinstance(profile, dict) else str(profile or "?")
        self.reasoning = profile.get("reasoning") if isinstance(profile, dict) else None
        self.base_profile = style_base(self.profile)  # slow-think runs: the profile they came from
        self.style = str(gen.get("style", "?"))
        self.dataset = str(gen.get("dataset", "?"))
        self.data_hash = gen.get("data_hash")
        scale = gen.get("scale") if isinstance(gen.get("scale"), dict) else {}
        self.scale_labels = [str(x) for x in scale.get("labels", [])]
        self.scale_values = [float(x) for x in scale.get("values", [])]
        self.fields = {"model": short_model(self.model), "profile": self.profile, "style": self.style,
                       "dataset": short_dataset(self.dataset)}
        self.label = " · ".join(self.fields.values())
        self._tables: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, {self.label!r})"

    @property
    def title(self) -> str:
        """The label on two lines, for panel titles."""
        f = self.fields
        return f"{f['model']} · {f['profile']}\n{f['style']} · {f['dataset']}"

    @cached_property
    def traces(self) -> list[Trace]:
        return RunDir(self.path).traces()  # read only: no lock

    @cached_property
    def probes(self) -> list[Probe]:
        return RunDir(self.path).probes()

    def trace_items(self, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(question ids, confidence, correct as 0/1) of the graded traces with a confidence."""
        rows = [(t.question_id, summary.confidence_value(t.confidence, source), float(t.correct))
                for t in self.traces
                if t.correct is not None and summary.confidence_value(t.confidence, source) is not None]
        if not rows:
            return np.array([], dtype=object), np.array([]), np.array([])
        q, c, k = zip(*rows)
        return np.array(q, dtype=object), np.array(c, dtype=float), np.array(k, dtype=float)

    def trace_table(self, source: str, n_resamples: int) -> TableRow:
        """`cotprobe.summary.table` over the final answers (one per question), computed once."""
        key = ("traces", source, n_resamples)
        if key not in self._tables:
            items = [(t.question_id, t.confidence, t.correct) for t in self.traces]
            self._tables[key] = summary.table(items, source, n_resamples)
        return self._tables[key]

    def cut_table(self, source: str, n_resamples: int) -> CutSection:
        key = ("cuts", source, n_resamples)
        if key not in self._tables:
            self._tables[key] = summary.cut_metrics(self.probes, source, n_resamples)
        return self._tables[key]

    def condition_table(self, source: str, n_resamples: int, reference: str = "full") -> ConditionSection:
        key = ("conditions", source, n_resamples, reference)
        if key not in self._tables:
            self._tables[key] = summary.condition_metrics(self.probes, reference, source, n_resamples)
        return self._tables[key]


def load_runs(run_dirs: Iterable[str | Path | Run]) -> list[Run]:
    """Runs from paths (Run objects pass through); the same directory twice is read once.

    Labels that would be equal (two runs with the same settings) get the directory name added.
    """
    runs: list[Run] = []
    seen: set[Path] = set()
    for item in run_dirs:
        run = item if isinstance(item, Run) else Run(item)
        if run.path.resolve() not in seen:
            seen.add(run.path.resolve())
            runs.append(run)
    if not runs:
        raise MissingInputs("no run directories given")
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    for run in runs:
        if counts[run.label] > 1:
            run.label = f"{run.label} [{run.path.name}]"
    return runs


def with_traces(runs: Sequence[Run], what: str) -> list[Run]:
    """The runs that have traces; a note for each that has none; MissingInputs if none has."""
    keep = []
    for run in runs:
        if run.traces:
            keep.append(run)
        else:
            note(f"{run.path} has no {RECORD_FILES[Trace]} records; left out of {what}")
    if not keep:
        raise MissingInputs(f"{what} needs {RECORD_FILES[Trace]} in at least one run (none of the given runs has traces)")
    return keep


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def pair_label(a: Run, b: Run) -> str:
    """What the two runs share, then what differs: 'Qwen3-8B · trivia: cot − direct'."""
    same = [v for k, v in a.fields.items() if b.fields[k] == v]
    da = [v for k, v in a.fields.items() if b.fields[k] != v]
    db = [v for k, v in b.fields.items() if a.fields[k] != v]
    if not da:
        return f"{a.label} [{a.path.name}] − [{b.path.name}]"
    head = " · ".join(same)
    return (head + ": " if head else "") + f"{' · '.join(da)} − {' · '.join(db)}"


def paired(a: Run, b: Run, source: str, n_resamples: int) -> dict[str, Any]:
    """metric(A) - metric(B) on the questions both runs answered, with paired bootstrap intervals.

    Also the point metrics of A and B on those shared questions, and whether A (or B) is
    strictly better on all three calibration metrics (lower ECE, lower Brier, higher AUROC).
    """
    qa, ca, ka = a.trace_items(source)
    qb, cb, kb = b.trace_items(source)
    ia = {q: i for i, q in enumerate(qa)}
    ib = {q: i for i, q in enumerate(qb)}
    shared = [q for q in qa if q in ib]
    row: dict[str, Any] = {"a": a.label, "b": b.label, "a_path": str(a.path), "b_path": str(b.path),
                           "setting": pair_label(a, b), "source": source, "n_shared": len(shared)}
    if len(shared) < 2:
        row.update(a_better_all=False, b_better_all=False, a_better_all_significant=False,
                   b_better_all_significant=False, note="fewer than 2 shared questions")
        return row
    sa = np.array([ia[q] for q in shared])
    sb = np.array([ib[q] for q in shared])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, fn in metric_fns().items():
            row[f"{name}_a"] = float(fn(ca[sa], ka[sa]))
            row[f"{name}_b"] = float(fn(cb[sb], kb[sb]))
            d = metrics.paired_bootstrap_diff(fn, ca[sa], ka[sa], cb[sb], kb[sb], Resampling(n_resamples))
            row.update(diff_columns(name, asdict(d)))

    def better(sign: int, significant: bool) -> bool:
        ok = True
        for name in CALIBRATION:
            want = -sign if LOWER_IS_BETTER[name] else sign  # sign=+1: A better means d<0 for ECE
            d = interval(row, diff_column(name))
            est = d.estimate if not significant else (d.high if want < 0 else d.low)
            ok &= bool(np.isfinite(est) and est * want > 0)
        return ok

    row["a_better_all"] = better(+1, False)
    row["b_better_all"] = better(-1, False)
    row["a_better_all_significant"] = better(+1, True)
    row["b_better_all_significant"] = better(-1, True)
    return row


def metric_columns(row: Mapping[str, Any], names: Sequence[str] = (*METRICS, "mean_confidence")) -> dict[str, float]:
    """The named metrics of a metrics.json row with their intervals, as table columns `name`,
    `name_low`, `name_high` (NaN where the row has none)."""
    nan = float("nan")
    out: dict[str, float] = {}
    for name in names:
        value, low, high = interval(row, name) if has_interval(row, name) else (nan, nan, nan)
        out.update(interval_fields(name, value, (nan if low is None else low, nan if high is None else high)))
    return out


def diff_column(name: str) -> str:
    """The table column of a difference in metric `name` (its interval beside it, see `diff_columns`)."""
    return f"d_{name}"


def diff_columns(name: str, d: DiffFit | None) -> dict[str, float]:
    """A difference in metric `name` as table columns d_name, d_name_low, d_name_high and d_name_p
    (NaN where absent)."""
    nan = float("nan")
    d = d or {"estimate": nan, "low": nan, "high": nan, "p_value": nan}
    key = diff_column(name)
    return {**interval_fields(key, d["estimate"], (d["low"], d["high"])), f"{key}_p": d["p_value"]}


def ci_text(row: Mapping[str, Any], key: str, digits: int = 3, signed: bool = False) -> str:
    """A value of a table row with its interval, as text ("n/a" when the value is missing or NaN)."""
    value, low, high = interval(row, key) if has_interval(row, key) else (None, None, None)
    if value is None or not np.isfinite(value):
        return "n/a"
    fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return fmt.format(value)
    return f"{fmt.format(value)} [{fmt.format(low)}, {fmt.format(high)}]"


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table with full float precision (the numbers behind a figure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def outputs(stem: Path, *suffixes: str) -> list[Path]:
    return [stem.with_suffix(s) for s in suffixes]


def order_by(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    """Distinct values: those in `preferred` in its order, then the rest in order of appearance."""
    seen = list(dict.fromkeys(values))
    return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]


def error_bars(values: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> np.ndarray:
    """Asymmetric error bar lengths for matplotlib; NaN interval -> no bar."""
    v, lo, hi = (np.asarray(x, dtype=float) for x in (values, lows, highs))
    err = np.vstack([v - lo, hi - v])
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)


def parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m analyses.{name}", description=description)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories made by cotprobe")
    p.add_argument("--out", default="figures", help="output folder (default figures)")
    p.add_argument("--source", choices=summary.SOURCES, default="expected",
                   help="confidence used: expected value of the scored label distribution (default), "
                        "its most likely label (scored), or the label the model wrote (sampled)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    return p


def run_cli(main: Callable[..., list[Path]], args: argparse.Namespace, **extra: Any) -> int:
    """Call an analysis' main from parsed options; print what it wrote."""
    written = main(args.run_dirs, args.out, source=args.source, n_resamples=args.resamples, **extra)
    for path in written:
        print(path)
    return 0
