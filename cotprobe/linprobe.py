"""Linear probes on hidden states: grouped cross-validation, Platt calibration, metric tables.

A probe is a logistic regression (scikit-learn) on standardised hidden states that predicts
whether the answer forced at a cut is correct. Every prediction is made out of fold: the
questions are split into folds and all cuts of a question sit in one fold, so a probe never
sees any cut of a question it is scored on (cuts of one trace share most of their context and
would leak). Within each training fold the probe's scores are Platt-scaled (a one-feature
logistic regression fitted on inner out-of-fold scores, again grouped by question) so the
output is a probability that can be compared with the verbal confidence.

Which layer to report is chosen without looking at what is reported (`choose_layers`): each
outer fold is predicted by the layer that scored best on that fold's own training questions,
and a layer fixed in advance (the last, or one named) is reported beside it. Picking the best
layer on the pooled out-of-fold predictions would flatter it: pure-noise features, 60
questions, 16 layers give a best-of AUROC well above any fixed layer's.
"""

from __future__ import annotations

import warnings
from collections import Counter
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


@dataclass(frozen=True)
class LayerFit:
    """One layer's probe under grouped cross-validation: the out-of-fold calibrated P(correct)
    of every row, the outer fold of every row, and per outer fold the AUROC of the inner
    out-of-fold scores on that fold's training rows (what the nested layer choice compares: it
    never sees the fold it chooses for)."""

    probs: np.ndarray
    folds: np.ndarray
    inner_auroc: tuple[float, ...]


def _score_auroc(scores, y) -> float:
    """AUROC of decision scores as predictors of y (NaN when y has one class)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores)) if np.unique(y).size == 2 else float("nan")


def fit_layer(X, y, groups, settings: ProbeSettings = ProbeSettings()) -> LayerFit:
    """Out-of-fold calibrated P(correct) for every row of one layer's features."""
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=int)
    groups = np.asarray(groups)
    folds = grouped_folds(groups, settings.folds, settings.seed)
    probs = np.empty(len(y))
    inner_auroc = []
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
        inner_auroc.append(_score_auroc(inner_scores, y[train]))
    return LayerFit(probs, folds, tuple(inner_auroc))


def cross_validate(X, y, groups, settings: ProbeSettings = ProbeSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold calibrated P(correct) for every row, and the fold of every row."""
    fit = fit_layer(X, y, groups, settings)
    return fit.probs, fit.folds


@dataclass(frozen=True)
class LayerChoice:
    """The latent confidence reported: per outer fold the layer chosen on that fold's training
    questions only (nested), the resulting out-of-fold P(correct) of every row, and a layer
    fixed in advance, reported beside it."""

    per_fold: tuple[int, ...]
    probs: np.ndarray
    folds: np.ndarray
    fixed: int
    rule: str


NESTED_RULE = ("nested: per outer fold, the layer whose inner out-of-fold scores have the highest AUROC on that "
               "fold's training questions")


def choose_layers(fits: dict[int, LayerFit], fixed: int | None = None) -> LayerChoice:
    """Nested layer choice: each outer fold is predicted by the layer that did best on its own
    training questions (inner cross-validation), so the choice never sees the predictions it is
    scored on. `fixed`: the layer reported beside it (default the last)."""
    folds = next(iter(fits.values())).folds
    if any(not np.array_equal(fit.folds, folds) for fit in fits.values()):
        raise ValueError("the layers were cross-validated on different folds")
    fixed = max(fits) if fixed is None else fixed
    if fixed not in fits:
        raise ValueError(f"fixed layer {fixed} is not among the probed layers {sorted(fits)}")
    n_folds = len(fits[fixed].inner_auroc)
    per_fold = tuple(max(fits, key=lambda layer: np.nan_to_num(fits[layer].inner_auroc[f], nan=0.5))
                     for f in range(n_folds))
    probs = np.empty(folds.size)
    for f, layer in enumerate(per_fold):
        probs[folds == f] = fits[layer].probs[folds == f]
    return LayerChoice(per_fold, probs, folds, fixed, NESTED_RULE)


def in_sample_choice(per_layer: dict[int, np.ndarray], probes) -> LayerChoice:
    """For predictions without their inner folds: every row from the layer with the lowest Brier
    on these same predictions. Choosing on what is reported flatters it (pure-noise features,
    16 layers: AUROC well above a fixed layer's); `choose_layers` does not."""
    y = np.array([float(p.correct) for p in probes])
    best = int(min(per_layer, key=lambda layer: metrics.brier(per_layer[layer], y)))
    return LayerChoice((best,), per_layer[best], np.zeros(y.size, dtype=int), max(per_layer),
                       "in-sample: lowest pooled out-of-fold Brier on the reported predictions (optimistic)")


# ------------------------------------------------------------------ tables


def masked_summary(conf: np.ndarray, y: np.ndarray, clusters: np.ndarray, mask: np.ndarray,
                   n_resamples: int) -> Summary:
    """metrics.summarize of the rows in mask where conf is defined (question-clustered); {"n": 0} where none is."""
    mask = mask & ~np.isnan(conf)
    if not mask.any():
        return {"n": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return metrics.summarize(conf[mask], y[mask], clusters=clusters[mask], n_resamples=n_resamples)


def _levels(probes) -> list:
    """Each probe's level: its cut level (`summary.cut_level`, every-step cuts binned to tenths),
    or its ablation condition."""
    from .summary import MAX_LEVELS, cut_level

    cuts = [p for p in probes if p.condition == "cut"]
    binned = len({round(p.fraction_requested, 6) for p in cuts}) > MAX_LEVELS
    return [cut_level(p, binned) if p.condition == "cut" else p.condition for p in probes]


def latent_metrics(probes, per_layer: dict[int, np.ndarray], source: str = "sampled",
                   settings: ProbeSettings = ProbeSettings(), n_resamples: int = 1000,
                   prefix: PrefixSection | None = None, choice: LayerChoice | None = None) -> LatentSection:
    """The "latent" section: latent (per layer) and verbal confidence of the same probes; pooled
    and per level for the selected layer (`choice`: the nested `choose_layers`; without it the
    optimistic `in_sample_choice`), pooled for the layer fixed in advance beside it; with
    `prefix` (`resample.prefix_metrics` of the selected confidence, when the run has resamples)
    kept in the section as given."""
    from .summary import confidence_value

    choice = choice or in_sample_choice(per_layer, probes)
    y = np.array([float(p.correct) for p in probes])
    q = np.array([p.question_id for p in probes])
    verbal = np.array([np.nan if confidence_value(p.confidence, source) is None
                       else confidence_value(p.confidence, source) for p in probes])
    levels = _levels(probes)
    order = sorted(set(levels), key=lambda v: (isinstance(v, str), v))
    lv = np.array(levels, dtype=object)

    def summary(conf, mask) -> Summary:
        return masked_summary(conf, y, q, mask, n_resamples)

    def auroc(conf, mask):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return metrics.auroc(conf[mask], y[mask])

    both = ~np.isnan(verbal)

    def minus_verbal(latent) -> dict[str, DiffInterval]:
        """Paired on the probes with a parsed verbal confidence (none parsed: empty)."""
        diffs = {}
        for name, fn in (metrics.metric_fns(("auroc", "brier", "ece")) if both.any() else {}).items():
            c1, c2, yy, qq = latent[both], verbal[both], y[both], q[both]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                estimate = fn(c1, yy) - fn(c2, yy)
                low, high = metrics.bootstrap_stat(lambda i: fn(c1[i], yy[i]) - fn(c2[i], yy[i]), int(both.sum()),
                                                   qq, n_resamples)
            diffs[name] = {"estimate": float(estimate), "low": low, "high": high}
        return diffs

    everything = np.ones(len(probes), dtype=bool)
    layers = []
    for layer, conf in per_layer.items():
        row = {"layer": int(layer), **summary(conf, everything)}
        row["auroc_per_level"] = {str(v): auroc(conf, lv == v) for v in order}
        layers.append(row)
    latent = choice.probs
    per_level = []
    for v in order:
        m = lv == v
        per_level.append({"level": v, "fraction_realised": float(np.mean([p.fraction_realised for p, k in zip(probes, m) if k])),
                          "latent": summary(latent, m), "verbal": summary(verbal, m)})
    fixed = per_layer[choice.fixed]
    section: LatentSection = {
        "source": source, "n_probes": len(probes), "n_questions": int(np.unique(q).size),
        "n_verbal_unparsed": int((~both).sum()),
        "probe": {"model": "logistic regression on standardised hidden states, L2", "C": settings.C,
                  "folds": settings.folds, "inner_folds": settings.inner_folds, "grouped_by": "question",
                  "calibration": "Platt scaling on inner out-of-fold scores", "seed": settings.seed},
        "best_layer": Counter(choice.per_fold).most_common(1)[0][0], "best_layer_rule": choice.rule,
        "layer_choice": {"rule": choice.rule, "per_fold": [int(layer) for layer in choice.per_fold]},
        "layers": layers, "levels": per_level,
        "pooled": {"latent": summary(latent, everything), "verbal": summary(verbal, everything)},
        "latent_minus_verbal": minus_verbal(latent),
        "fixed_layer": {"layer": int(choice.fixed), "latent": summary(fixed, everything),
                        "latent_minus_verbal": minus_verbal(fixed)},
    }
    if prefix is not None:
        section["prefix"] = prefix
    return section


def print_latent_summary(result: LatentSection, run_dir) -> None:
    from .summary import HEADER, format_row

    def row_of(summary, total):
        return {"n_total": total, "n_unparsed": total - summary.get("n", 0), **summary}

    chosen = result["layer_choice"]["per_fold"]
    print(f"\n{run_dir}: latent confidence (linear probe, {result['probe']['folds']}-fold grouped by question, "
          f"Platt-calibrated; selected layer {result['best_layer_rule']}: folds chose "
          f"{', '.join(f'L{layer}' for layer in chosen)}) against verbal confidence ({result['source']}); "
          f"{result['n_probes']} probes of {result['n_questions']} questions, verbal unparsed on "
          f"{result['n_verbal_unparsed']}")
    print(HEADER.replace(" " * 22, f"{'level / source':<22}", 1))
    for row in result["levels"]:
        name = row["level"] if isinstance(row["level"], str) else f"{row['level']:.2f} ({row['fraction_realised']:.2f})"
        total = row["latent"].get("n", 0)
        for kind in ("latent", "verbal"):
            if total:
                print(format_row(f"{name} {kind}", row_of(row[kind], total)))
    fixed = result["fixed_layer"]
    for name, summary in (("all latent", result["pooled"]["latent"]), ("all verbal", result["pooled"]["verbal"]),
                          (f"all latent L{fixed['layer']} fixed", fixed["latent"])):
        print(format_row(name, row_of(summary, result["n_probes"])))
    for name, d in (("latent - verbal", result["latent_minus_verbal"]),
                    (f"fixed L{fixed['layer']} - verbal", fixed["latent_minus_verbal"])):
        print(f"{name} (question-clustered 95% CI): " + ("  ".join(
            f"{m} {d[m]['estimate']:+.3f} [{d[m]['low']:+.3f}, {d[m]['high']:+.3f}]" for m in ("auroc", "brier", "ece"))
            if d else f"no parsed verbal confidence ({result['source']}) to compare with"))
    print("per layer (pooled): " + "  ".join(
        f"L{r['layer']} AUROC {r['auroc']:.3f} Brier {r['brier']:.3f}" for r in result["layers"]))
