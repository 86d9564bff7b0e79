"""The typed shape of metrics.json's "early_exit" section (`cotprobe.stopping`), re-exported by
`cotprobe.metrics.sections`; intervals are stored flat as `name`, `name_low`, `name_high`."""

from __future__ import annotations

from typing import TypedDict


class _Policy(TypedDict):
    policy: str
    family: str
    kind: str  # "confidence" | "stable" | "budget" | "tokens" | "full"
    parameter: float
    source: str
    n: int
    mean_tokens: float
    mean_tokens_low: float
    mean_tokens_high: float
    mean_full_tokens: float  # the whole traces' thinking tokens
    token_share: float
    token_share_low: float
    token_share_high: float
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    accuracy_full: float  # the traces' own final answers
    stopped_early: float
    accuracy_diff: float
    accuracy_diff_low: float
    accuracy_diff_high: float


class PolicyRow(_Policy, total=False):
    """One replayed stopping policy; ece and brier where every stop had a scored confidence."""

    stop_tokens: float  # kind "budget": the fraction times the thinking budget
    ece: float
    ece_low: float
    ece_high: float
    brier: float
    brier_low: float
    brier_high: float


class MatchedAccuracy(TypedDict):
    """One policy family at matched accuracy, its setting chosen per fold on the other folds."""

    family: str
    chosen: list[str | None]  # per fold; None: nothing reached the full thought's accuracy there
    threshold_choice: str
    token_reduction: float | None  # None: too few questions to cross-fit
    accuracy: float | None
    accuracy_full: float | None
    accuracy_diff: float | None
    accuracy_diff_low: float | None
    accuracy_diff_high: float | None


class EarlyExitSection(TypedDict):
    """"early_exit": stopping policies replayed causally on the cut probes."""

    n_questions: int
    mean_cuts: float
    sources: list[str]
    budget: int | None  # the generate stage's thinking budget (None: fixed token counts instead)
    policies: list[PolicyRow]
    full: PolicyRow
    pareto: list[str]
    oracle: PolicyRow  # the earliest cut whose answer is right, in hindsight: the ceiling of any policy
    matched_accuracy: list[MatchedAccuracy]
    threshold_choice: str
    full_thought: str
    cost_note: str
