"""The typed shape of metrics.json: one TypedDict per section, and the accessors of its computed keys.

metrics.json is an object of sections (`Metrics`), each written by the stage that computes it:
"traces" (generate, ingest), "truncate", "by_length" and "resample" (truncate), "ablate",
"behaviours" (tag), "latent", "estimators" (latent, or metrics) and "early_exit". Sections are plain
dicts in memory and on disk; these types say what they hold. A value with a 95% interval is stored
flat in its row as `name`, `name_low` and `name_high`; a condition's paired difference to the
reference as `diff_vs_<reference>`. Those key names are made here and nowhere else: writers use
`interval_fields` and `diff_key`, readers `interval`, `has_interval` and `diff`.

Typed for Python 3.10 (no `NotRequired`): a TypedDict with optional keys is a `total=False`
subclass of one holding the keys every row has. The "early_exit" types live in
`early_exit_sections` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from .early_exit_sections import EarlyExitSection, MatchedAccuracy, PolicyRow  # noqa: F401 (re-exported)
from .keys import Interval, diff_key, has_interval, interval, interval_fields  # noqa: F401 (re-exported)

# ------------------------------------------------------------------ computed keys


def diff(row: Mapping[str, Any], reference: str) -> PairedDiff | None:
    """A condition's paired difference to `reference` (None for the reference itself or without pairs)."""
    return row.get(diff_key(reference))


# ------------------------------------------------------------------ shared rows


class Summary(TypedDict, total=False):
    """`metrics.summarize`: n, and every metric of `metrics.METRICS` with its interval (only n when
    no row had a usable confidence)."""

    n: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    ece: float
    ece_low: float
    ece_high: float
    smooth_ece: float
    smooth_ece_low: float
    smooth_ece_high: float
    brier: float
    brier_low: float
    brier_high: float
    auroc: float
    auroc_low: float
    auroc_high: float
    mean_confidence: float
    mean_confidence_low: float
    mean_confidence_high: float


class _Counted(TypedDict):
    n_total: int  # items in the group
    n_unparsed: int  # of them, without a usable confidence or grade


class TableRow(_Counted, Summary, total=False):
    """`summary.table`: the metrics of one group for one confidence source."""

    unavailable: str  # why the source has no values (not scored)
    note: str  # e.g. AUROC undefined


class DiffFit(TypedDict):
    """A difference with its bootstrap interval and two-sided p-value (`metrics.Diff`)."""

    estimate: float
    low: float
    high: float
    p_value: float


class SlopeFit(TypedDict):
    """A trend over cut level (`metrics.Slope`)."""

    slope: float
    intercept: float
    p_value: float
    low: float
    high: float


# ------------------------------------------------------------------ traces


class TraceSection(TypedDict):
    """"traces": the final answers, per confidence source."""

    n: int
    thinking_ended: dict[str, int]
    sources: dict[str, TableRow]


# ------------------------------------------------------------------ truncate


class BesideRow(TableRow, total=False):
    source: str  # the other confidence source, shown beside the headline one


class _Level(TableRow):
    level: float
    fraction_realised: float


class LevelRow(_Level, total=False):
    beside: BesideRow


class Trend(TypedDict):
    clustered: SlopeFit  # question-clustered bootstrap of the slope
    ols_per_level: SlopeFit | None  # OLS over the per-level values (None under 3 levels)


class QuestionTrajectory(TypedDict):
    question_id: str
    first: float
    last: float
    change: float
    largest_jump: float
    direction_changes: int


class _Counts(TypedDict):
    n: int


class Trajectories(_Counts, total=False):
    mean_change: float
    mean_abs_largest_jump: float
    mean_direction_changes: float
    per_question: list[QuestionTrajectory]


class CutSection(TypedDict):
    """"truncate": calibration per cut level and its trend along the CoT."""

    source: str
    binned: str | None  # how every-step cuts were binned, or None
    censored: int  # questions whose thought hit the thinking budget (a truncated thought, not a finished one)
    completed_only: bool  # True: those questions are left out of every row
    levels: list[LevelRow]
    trends: dict[str, Trend]
    trajectories: Trajectories


class LengthStratum(TypedDict):
    """One tercile of full-thought length: its cut table and trends (`lengths.length_metrics`)."""

    stratum: str  # short, middle, long
    n_questions: int
    min_tokens: int  # the stratum's shortest and longest full thought
    max_tokens: int
    censored: int
    levels: list[LevelRow]
    trends: dict[str, Trend]


class LengthSection(TypedDict):
    """"by_length": the cut table within terciles of full-thought length."""

    source: str
    length: str  # what the strata split on
    completed_only: bool
    strata: list[LengthStratum]


# ------------------------------------------------------------------ ablate


class PairedDiff(_Counts, total=False):
    """Per compared metric, condition minus reference on the questions both answered (n)."""

    accuracy: DiffFit
    ece: DiffFit
    smooth_ece: DiffFit
    brier: DiffFit
    auroc: DiffFit


class ConditionRow(TableRow, total=False):
    """One condition; beside its metrics, `diff_vs_<reference>` (read with `diff`)."""

    n_failed: int


class _Conditions(TypedDict):
    source: str
    reference: str
    conditions: dict[str, ConditionRow]


class ConditionSection(_Conditions, total=False):
    """"ablate": calibration per condition and the paired difference to the reference."""

    edits: dict[str, dict[str, Any]]  # what each rule-based condition changed (cotprobe.ablate)


# ------------------------------------------------------------------ resample


class PrefixRow(_Counts):
    """Confidence against P(correct | prefix) and against the outcome, each with its interval."""

    brier_prefix: float
    brier_prefix_low: float
    brier_prefix_high: float
    ece_prefix: float
    ece_prefix_low: float
    ece_prefix_high: float
    brier_outcome: float
    brier_outcome_low: float
    brier_outcome_high: float
    ece_outcome: float
    ece_outcome_low: float
    ece_outcome_high: float
    mean_confidence: float
    mean_confidence_low: float
    mean_confidence_high: float
    prefix_accuracy: float
    prefix_accuracy_low: float
    prefix_accuracy_high: float
    outcome_accuracy: float
    outcome_accuracy_low: float
    outcome_accuracy_high: float


class PrefixLevel(PrefixRow):
    level: float
    fraction_realised: float


class PrefixSource(TypedDict):
    overall: PrefixRow
    levels: list[PrefixLevel]


class PrefixSection(TypedDict):
    """"resample" (and "latent"'s "prefix"): confidence against the prefix accuracy, per source."""

    n_pairs: int
    k: int
    temperature: float | None
    sources: dict[str, PrefixSource]


# ------------------------------------------------------------------ behaviours


class PerTrace(TypedDict, total=False):
    mean: float
    sd: float
    median: float
    max: float


class Frequency(TypedDict):
    steps: int
    steps_fraction: float
    traces: int
    traces_fraction: float
    tags: int
    tags_per_trace: PerTrace


class _Group(TypedDict):
    n_steps: int
    n_traces: int


class ChangeGroup(_Group, total=False):
    """Steps with one behaviour (or "none"): mean (absolute) confidence change, and vs none."""

    mean_change: float
    mean_change_low: float
    mean_change_high: float
    mean_abs_change: float
    mean_abs_change_low: float
    mean_abs_change_high: float
    diff_change_vs_none: DiffFit
    diff_abs_change_vs_none: DiffFit


class ChangeRelation(TypedDict, total=False):
    definition: str
    n_steps: int
    n_traces: int
    groups: dict[str, ChangeGroup]
    source: str


class _Behaviours(TypedDict):
    tagger: str
    n_traces: int
    n_steps: int
    steps_per_trace: PerTrace
    steps_without_behaviour: int
    per_behaviour: dict[str, Frequency]
    per_trace: dict[str, dict[str, int]]
    confidence_change: ChangeRelation


class BehaviourSection(_Behaviours, total=False):
    """"behaviours": frequencies and the confidence change across tagged steps."""

    lexicon: str | None  # rule tagger
    judged_steps: int  # LLM judge
    unparsed: int


# ------------------------------------------------------------------ latent


class LayerRow(Summary, total=False):
    layer: int
    auroc_per_level: dict[str, float]


class LatentLevel(TypedDict):
    level: float | str  # cut level, or ablation condition
    fraction_realised: float
    latent: Summary
    verbal: Summary


class LatentPair(TypedDict):
    latent: Summary
    verbal: Summary


class DiffInterval(TypedDict):
    estimate: float
    low: float
    high: float


class ProbeDescription(TypedDict):
    model: str
    C: float
    folds: int
    inner_folds: int
    grouped_by: str
    calibration: str
    seed: int


class LayerChoice(TypedDict):
    rule: str  # nested (per outer fold, on its training questions) or in-sample
    per_fold: list[int]  # the layer each outer fold was predicted with


class FixedLayer(TypedDict):
    """The layer fixed in advance (the last, or --fixed-layer), beside the selected one."""

    layer: int
    latent: Summary
    latent_minus_verbal: dict[str, DiffInterval]


class _Latent(TypedDict):
    source: str
    n_probes: int
    n_questions: int
    n_verbal_unparsed: int  # probes whose verbal confidence (source) did not parse
    probe: ProbeDescription
    best_layer: int  # the layer most outer folds chose
    best_layer_rule: str
    layer_choice: LayerChoice
    layers: list[LayerRow]
    levels: list[LatentLevel]  # latent: the selected layer's predictions
    pooled: LatentPair
    latent_minus_verbal: dict[str, DiffInterval]
    fixed_layer: FixedLayer


class PoolRow(TypedDict):
    """One pooling of the prefix's hidden states (last token, mean, max): its nested-choice probe."""

    per_fold: list[int]  # the layer each outer fold chose
    pooled: Summary
    auroc_per_level: dict[str, float]


class LatentSection(_Latent, total=False):
    """"latent": the linear probe's confidence against the verbal one."""

    prefix: PrefixSection  # when the run has resamples
    pools: dict[str, PoolRow]  # with --pool: every pooling side by side


class EstimatorLevel(Summary, total=False):  # one cut level
    level: float
    fraction_realised: float


class EstimatorRow(TypedDict):
    """One confidence estimator: what it is, its metrics pooled over the cuts and per cut level."""

    description: str
    pooled: Summary
    levels: list[EstimatorLevel]


class EstimatorSection(TypedDict):
    """"estimators": every confidence estimator on the same cut probes (`estimators.estimator_metrics`)."""

    n_probes: int
    n_questions: int
    folds: int  # of the out-of-fold fits (length, verbal+length), grouped by question
    estimators: dict[str, EstimatorRow]


# ------------------------------------------------------------------ the file


class Metrics(TypedDict, total=False):
    """metrics.json: each section is there once its stage has run."""

    traces: TraceSection
    truncate: CutSection
    by_length: LengthSection
    resample: PrefixSection
    ablate: ConditionSection
    behaviours: BehaviourSection
    latent: LatentSection
    estimators: EstimatorSection
    early_exit: EarlyExitSection
    grading: dict  # the LLM judge's verdict counts (`judge.grading_section`), when --grader judge


SECTIONS = tuple(Metrics.__annotations__)  # the section names, in the file's usual order
