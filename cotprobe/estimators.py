"""Every confidence estimator of a run in one table, on the same cut probes.

No single estimator wins both discrimination and calibration (RMCB reports the best hidden-state
estimators at AUROC 0.672 and ECE 0.148 from different methods), so each is reported on both, per
cut level and pooled, with question-clustered 95% intervals: accuracy, AUROC, Brier, ECE, smooth
ECE (`metrics.summarize`). The estimators of P(the answer forced at this cut is correct):

- `verbal:sampled`: the class the model wrote (parsed probes only);
- `verbal:expected`: the expected value of the scored label distribution (scored probes only);
- `latent`: the linear probe's out-of-fold, Platt-calibrated P(correct) (`cotprobe.latent`; the
  layer chosen per fold on its training questions), where the run has one;
- `length`: the thought's length so far (CoT tokens before the cut) through an isotonic regression
  on it (`sklearn.isotonic.IsotonicRegression`, direction chosen on the training folds), fitted out
  of fold: a monotone baseline that knows nothing but how long the model has thought;
- `prefix`: P(correct | prefix), the share of K resampled continuations that ended correct
  (`truncate --resample`), at the resampled cuts only;
- `verbal+length`: a logistic regression on the logit of the verbal confidence
  (`combine_source`, default expected, else sampled) and log(1 + tokens so far), fitted out of fold.

The two fitted estimators are predicted out of fold, with folds grouped by question
(`linprobe.grouped_folds`: no question's cuts on both sides). An estimator is scored on the probes
where it is defined; its `n` says how many, so rows of different `n` (prefix, sampled with
unparsed labels) are not on exactly the same probes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import metrics
from .linprobe import grouped_folds, masked_summary
from .metrics.sections import EstimatorRow, EstimatorSection, Summary
from .records import Probe, Resample

DESCRIPTIONS = {
    "verbal:sampled": "the confidence class the model wrote",
    "verbal:expected": "expected value of the scored label distribution",
    "latent": "linear probe on hidden states (out of fold, Platt-calibrated)",
    "length": "isotonic in CoT tokens so far (out of fold)",
    "prefix": "P(correct | prefix): share of resampled continuations correct",
    "verbal+length": "logistic on logit(verbal) and log(1 + tokens so far) (out of fold)",
}


@dataclass(frozen=True)
class EstimatorSettings:
    """How the fitted estimators are cross-fitted, and which verbal confidence the combination uses."""

    folds: int = 5
    seed: int = 0
    combine_source: str = "expected"  # falls back to sampled when the run has no scored confidence


def _key(p: Probe) -> tuple[str, float]:
    return (p.question_id, round(p.fraction_requested, 6))


def _oof(fit_predict, X: np.ndarray, y: np.ndarray, groups: np.ndarray, settings: EstimatorSettings) -> np.ndarray:
    """Out-of-fold predictions of fit_predict(X_train, y_train, X_test) over question-grouped folds
    (rows with a NaN feature are neither trained on nor predicted; NaN without two questions)."""
    out = np.full(len(y), np.nan)
    ok = ~np.isnan(X).any(axis=1)
    n_groups = np.unique(groups[ok]).size
    if n_groups < 2:
        return out
    folds = grouped_folds(groups[ok], min(settings.folds, n_groups), settings.seed)
    Xo, yo, pred = X[ok], y[ok], np.empty(int(ok.sum()))
    for f in np.unique(folds):
        test = folds == f
        train_y = yo[~test]
        if np.unique(train_y).size < 2:  # one class to learn from: its (smoothed) rate
            pred[test] = (train_y.sum() + 0.5) / (train_y.size + 1)
        else:
            pred[test] = fit_predict(Xo[~test], train_y, Xo[test])
    out[ok] = pred
    return out


def _isotonic(X_train, y_train, X_test) -> np.ndarray:
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(increasing="auto", y_min=0.0, y_max=1.0, out_of_bounds="clip")
    with warnings.catch_warnings():  # "increasing may be suspect" when length and outcome hardly correlate
        warnings.simplefilter("ignore", UserWarning)
        return model.fit(X_train[:, 0], y_train).predict(X_test[:, 0])


def _logistic(X_train, y_train, X_test) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    return model.fit(X_train, y_train).predict_proba(X_test)[:, 1]


def estimator_values(probes: list[Probe], latent: dict[tuple[str, float], float] | None = None,
                     resamples: list[Resample] = (), settings: EstimatorSettings = EstimatorSettings()
                     ) -> dict[str, np.ndarray]:
    """Estimator name -> its value at every probe (NaN where it is not defined); graded cut probes only."""
    def column(values) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in values])

    y = np.array([float(p.correct) for p in probes])
    groups = np.array([p.question_id for p in probes])
    tokens = np.array([float(p.token_index) for p in probes])
    values = {"verbal:sampled": column(p.confidence.sampled_value for p in probes),
              "verbal:expected": column(p.confidence.expected_value for p in probes)}
    if latent:
        values["latent"] = column(latent.get(_key(p)) for p in probes)
    values["length"] = _oof(_isotonic, tokens[:, None], y, groups, settings)
    prefix = {(r.question_id, round(r.fraction_requested, 6)): r.p_correct for r in resamples}
    if any(v is not None for v in prefix.values()):
        values["prefix"] = column(prefix.get(_key(p)) for p in probes)
    source = "verbal:expected" if not np.isnan(values["verbal:expected"]).all() else "verbal:sampled"
    source = f"verbal:{settings.combine_source}" if not np.isnan(values[f"verbal:{settings.combine_source}"]).all() \
        else source
    verbal = np.clip(values[source], 0.01, 0.99)
    X = np.column_stack([np.log(verbal / (1 - verbal)), np.log1p(tokens)])
    values["verbal+length"] = _oof(_logistic, X, y, groups, settings)
    return {name: v for name, v in values.items() if not np.isnan(v).all()}


def _levels(probes: list[Probe]) -> np.ndarray:
    from .summary import MAX_LEVELS, cut_level

    binned = len({round(p.fraction_requested, 6) for p in probes}) > MAX_LEVELS
    return np.array([cut_level(p, binned) for p in probes])


def estimator_metrics(probes: list[Probe], latent: dict[tuple[str, float], float] | None = None,
                      resamples: list[Resample] = (), n_resamples: int = 1000,
                      settings: EstimatorSettings = EstimatorSettings()) -> EstimatorSection:
    """The "estimators" section: every estimator's metrics with intervals, pooled and per cut level.

    latent: (question, rounded requested fraction) -> the probe's latent P(correct), if any."""
    probes = [p for p in probes if p.condition == "cut" and p.correct is not None and not p.error]
    y = np.array([float(p.correct) for p in probes])
    q = np.array([p.question_id for p in probes])
    levels = _levels(probes)
    frac = np.array([p.fraction_realised for p in probes])

    def summary(conf, mask) -> Summary:
        return masked_summary(conf, y, q, mask, n_resamples)

    table: dict[str, EstimatorRow] = {}
    for name, conf in (estimator_values(probes, latent, resamples, settings) if probes else {}).items():
        table[name] = {"description": DESCRIPTIONS[name], "pooled": summary(conf, np.ones(len(y), dtype=bool)),
                       "levels": [{"level": float(v), "fraction_realised": float(frac[levels == v].mean()),
                                   **summary(conf, levels == v)} for v in sorted(set(levels))]}
    return {"n_probes": len(probes), "n_questions": int(np.unique(q).size), "folds": settings.folds,
            "estimators": table}


def print_estimators(section: EstimatorSection, run_dir) -> None:
    """The pooled table (every metric with its interval), then AUROC and smooth ECE per cut level."""
    names = list(section["estimators"])
    print(f"\n{run_dir}: confidence estimators on the same {section['n_probes']} cut probes of "
          f"{section['n_questions']} questions (fitted ones out of fold, {section['folds']} folds grouped by question)")
    print(f"{'estimator':<16} {'n':>5}  " + "  ".join(f"{metrics.METRICS[m].label + ' [95% CI]':<22}"
                                                     for m in ("auroc", "brier", "ece", "smooth_ece")))
    for name in names:
        row = section["estimators"][name]["pooled"]
        if not row.get("n"):
            continue
        cells = [f"{row[m]:.3f} [{row[f'{m}_low']:.3f}, {row[f'{m}_high']:.3f}]" for m in ("auroc", "brier", "ece",
                                                                                          "smooth_ece")]
        print(f"{name:<16} {row['n']:>5}  " + "  ".join(f"{c:<22}" for c in cells))
    for metric in ("auroc", "smooth_ece"):
        print(f"{metrics.METRICS[metric].label} per cut level: {'level':>6} " + " ".join(f"{n:>15}" for n in names))
        rows = {name: {r["level"]: r for r in section["estimators"][name]["levels"]} for name in names}
        for level in sorted({lv for r in rows.values() for lv in r}):
            cells = [rows[n].get(level, {}).get(metric) for n in names]
            print(f"{'':<{len(metrics.METRICS[metric].label) + 15}} {level:>6.2f} "
                  + " ".join(f"{c:>15.3f}" if c is not None else f"{'-':>15}" for c in cells))
