"""Linear probes on hidden states: grouped cross-validation, Platt calibration, metric tables.

A probe is a logistic regression (scikit-learn) on standardised hidden states that predicts
whether the answer forced at a cut is correct. Every prediction is made out of fold: the
questions are split into folds and all cuts of a question sit in one fold, so a probe never
sees any cut of a question it is scored on (cuts of one trace share most of their context and
would leak). Within each training fold the probe's scores are Platt-scaled (a one-feature
logistic regression fitted on inner out-of-fold scores, again grouped by question) so the
output is a probability that can be compared with the verbal confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics
from .metrics.sections import DiffInterval, LatentSection, PrefixSection, Summary


def grouped_folds(groups, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold number of every row: groups are shuffled (seeded) and dealt to folds so that the
    folds hold nearly equal numbers of rows; all rows of a group get the same fold."""
    groups = np.asarray(groups)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds, got {n_folds}")
    if names.size < n_folds:
        raise ValueError(f"{names.size} questions cannot fill {n_folds} folds: use fewer folds or more questions")
    order = np.random.default_rng(seed).permutation(names.size)
    order = order[np.argsort(-counts[order], kind="stable")]  # big groups first, ties in random order
    load = np.zeros(n_folds)
    fold_of_group = np.empty(names.size, dtype=int)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += counts[g]
    return fold_of_group[inverse.ravel()]


@dataclass(frozen=True)
class ProbeSettings:
    folds: int = 5
    inner_folds: int = 3
    C: float = 0.05  # inverse L2 strength of the logistic regression on standardised features
    seed: int = 0
    max_iter: int = 2000


def _fit_scores(X_train, y_train, X_test, settings: ProbeSettings) -> np.ndarray:
    """Decision scores on X_test of a probe fitted on (X_train, y_train); a one-class training
    set gives the log-odds of its (smoothed) base rate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if np.unique(y_train).size < 2:
        rate = (y_train.sum() + 0.5) / (y_train.size + 1)
        return np.full(len(X_test), np.log(rate / (1 - rate)))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=settings.C, max_iter=settings.max_iter))
    model.fit(X_train, y_train)
    return model.decision_function(X_test)


def _platt(scores_train, y_train, scores_test) -> np.ndarray:
    """P(correct) from scores: a logistic regression of the labels on the score (Platt scaling)."""
    from sklearn.linear_model import LogisticRegression

    if np.unique(y_train).size < 2:
        rate = (y_train.sum() + 0.5) / (y_train.size + 1)
        return np.full(len(scores_test), rate)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(scores_train[:, None], y_train)
    return platt.predict_proba(np.asarray(scores_test)[:, None])[:, 1]


def cross_validate(X, y, groups, settings: ProbeSettings = ProbeSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold calibrated P(correct) for every row, and the fold of every row."""
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=int)
    groups = np.asarray(groups)
    folds = grouped_folds(groups, settings.folds, settings.seed)
    probs = np.empty(len(y))
    for f in range(settings.folds):
        test, train = folds == f, folds != f
        inner = grouped_folds(groups[train], min(settings.inner_folds, np.unique(groups[train]).size),
                              settings.seed + 1 + f)
        inner_scores = np.empty(int(train.sum()))
        for g in np.unique(inner):
            held = inner == g
            inner_scores[held] = _fit_scores(X[train][~held], y[train][~held], X[train][held], settings)
        scores = _fit_scores(X[train], y[train], X[test], settings)
        probs[test] = _platt(inner_scores, y[train], scores)
    return probs, folds


# ------------------------------------------------------------------ tables


def _levels(probes) -> list:
    """Each probe's level: its cut level (`summary.cut_level`, every-step cuts binned to tenths),
    or its ablation condition."""
    from .summary import MAX_LEVELS, cut_level

    cuts = [p for p in probes if p.condition == "cut"]
    binned = len({round(p.fraction_requested, 6) for p in cuts}) > MAX_LEVELS
    return [cut_level(p, binned) if p.condition == "cut" else p.condition for p in probes]


def best_layer(per_layer: dict[int, np.ndarray], probes) -> int:
    """The layer whose out-of-fold P(correct) has the lowest Brier score over all the probes;
    picking it among the layers on the same folds flatters it slightly (the per-layer table of
    `latent_metrics` shows them all)."""
    y = np.array([float(p.correct) for p in probes])
    return int(min(per_layer, key=lambda layer: metrics.brier(per_layer[layer], y)))


def latent_metrics(probes, per_layer: dict[int, np.ndarray], source: str = "expected",
                   settings: ProbeSettings = ProbeSettings(), n_resamples: int = 1000,
                   prefix: PrefixSection | None = None) -> LatentSection:
    """The "latent" section: latent (per layer) and verbal confidence of the same probes, pooled
    and per level, for the `best_layer`; with `prefix` (`resample.prefix_metrics` of that layer's
    confidence, when the run has resamples) kept in the section as given."""
    import warnings

    from .summary import confidence_value

    y = np.array([float(p.correct) for p in probes])
    q = np.array([p.question_id for p in probes])
    verbal = np.array([np.nan if confidence_value(p.confidence, source) is None
                       else confidence_value(p.confidence, source) for p in probes])
    levels = _levels(probes)
    order = sorted(set(levels), key=lambda v: (isinstance(v, str), v))
    lv = np.array(levels, dtype=object)

    def summary(conf, mask) -> Summary:
        mask = mask & ~np.isnan(conf)
        if not mask.any():
            return {"n": 0}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return metrics.summarize(conf[mask], y[mask], clusters=q[mask], n_resamples=n_resamples)

    def auroc(conf, mask):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return metrics.auroc(conf[mask], y[mask])

    everything = np.ones(len(probes), dtype=bool)
    layers = []
    for layer, conf in per_layer.items():
        row = {"layer": int(layer), **summary(conf, everything)}
        row["auroc_per_level"] = {str(v): auroc(conf, lv == v) for v in order}
        layers.append(row)
    best = best_layer(per_layer, probes)
    latent = per_layer[best]
    per_level = []
    for v in order:
        m = lv == v
        per_level.append({"level": v, "fraction_realised": float(np.mean([p.fraction_realised for p, k in zip(probes, m) if k])),
                          "latent": summary(latent, m), "verbal": summary(verbal, m)})
    both = ~np.isnan(verbal)
    diffs: dict[str, DiffInterval] = {}
    for name, fn in metrics.metric_fns(("auroc", "brier", "ece")).items():
        c1, c2, yy, qq = latent[both], verbal[both], y[both], q[both]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            estimate = fn(c1, yy) - fn(c2, yy)
            low, high = metrics.bootstrap_stat(lambda i: fn(c1[i], yy[i]) - fn(c2[i], yy[i]), int(both.sum()), qq,
                                               n_resamples)
        diffs[name] = {"estimate": float(estimate), "low": low, "high": high}
    section: LatentSection = {
        "source": source, "n_probes": len(probes), "n_questions": int(np.unique(q).size),
        "probe": {"model": "logistic regression on standardised hidden states, L2", "C": settings.C,
                  "folds": settings.folds, "inner_folds": settings.inner_folds, "grouped_by": "question",
                  "calibration": "Platt scaling on inner out-of-fold scores", "seed": settings.seed},
        "best_layer": int(best), "best_layer_rule": "lowest pooled out-of-fold Brier",
        "layers": layers, "levels": per_level,
        "pooled": {"latent": summary(latent, everything), "verbal": summary(verbal, everything)},
        "latent_minus_verbal": diffs,
    }
    if prefix is not None:
        section["prefix"] = prefix
    return section


def print_latent_summary(result: LatentSection, run_dir) -> None:
    from .summary import HEADER, format_row

    def row_of(summary):
        return {"n_total": summary.get("n", 0), "n_unparsed": 0, **summary}

    print(f"\n{run_dir}: latent confidence (linear probe, layer {result['best_layer']}, {result['probe']['folds']}-fold "
          f"grouped by question, Platt-calibrated) against verbal confidence ({result['source']}); "
          f"{result['n_probes']} probes of {result['n_questions']} questions")
    print(HEADER.replace(" " * 22, f"{'level / source':<22}", 1))
    for row in result["levels"]:
        name = row["level"] if isinstance(row["level"], str) else f"{row['level']:.2f} ({row['fraction_realised']:.2f})"
        for kind in ("latent", "verbal"):
            if row[kind].get("n"):
                print(format_row(f"{name} {kind}", row_of(row[kind])))
    for kind in ("latent", "verbal"):
        print(format_row(f"all {kind}", row_of(result["pooled"][kind])))
    d = result["latent_minus_verbal"]
    print("latent - verbal (question-clustered 95% CI): " + "  ".join(
        f"{m} {d[m]['estimate']:+.3f} [{d[m]['low']:+.3f}, {d[m]['high']:+.3f}]" for m in ("auroc", "brier", "ece")))
    print("per layer (pooled): " + "  ".join(
        f"L{r['layer']} AUROC {r['auroc']:.3f} Brier {r['brier']:.3f}" for r in result["layers"]))
