"""python -m cotprobe.latent RUN_DIR: does the model know more than it says? Latent confidence.

Linear probes on the hidden states at every cut predict whether the answer forced there is
correct (`cotprobe.linprobe`: logistic regression on standardised features, grouped by question
across folds, Platt-calibrated on held-out inner folds). Their out-of-fold P(correct) is set
beside the verbal confidence of the same probes: AUROC, ECE, Brier per cut level and per layer,
with intervals that resample questions.

Hidden states come from `python -m cotprobe.truncate --hidden-states` (taken in the pass that
encodes each trace for the sweep). Positions the run has no state for are extracted here, one
pass over each trace (or over each ablated CoT with --source-stage ablate), resumably, with the
run's own model on the Hugging Face backend: a server backend has no hidden states.

The layer is chosen inside each outer fold, on its training questions only (nested), and a
layer fixed in advance (the last, or --fixed-layer) is reported beside it.

Beside the latent section, the cut sweep's probes get the table of every confidence estimator
(`cotprobe.estimators`: verbal, latent, thought length so far, P(correct | prefix) where resampled,
verbal + length), section "estimators" and figures/estimators.png.

Writes hidden_states.f16/.jsonl (see `cotprobe.hidden`), latent.jsonl (the out-of-fold
predictions of the layer each fold chose), metrics.json sections "latent" and "estimators",
figures/latent_vs_verbal.png, figures/estimators.png,
figures/latent_layers.png and, when the run has resamples (truncate --resample),
figures/latent_prefix_accuracy.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import hidden as hs
from .backends import load_backend
from .cli import entry_point, run_dir_parser
from .estimators import EstimatorSettings, estimator_metrics, print_estimators
from .linprobe import LayerChoice, ProbeSettings, choose_layers, fit_layer, latent_metrics, print_latent_summary
from .metrics.sections import LatentSection, PoolRow, PrefixSection
from .plots import plot_estimators, plot_latent_layers, plot_latent_vs_verbal, plot_prefix_accuracy
from .records import SOURCES, LatentPrediction, Probe, Trace
from .resample import prefix_metrics
from .store import RunDir, open_existing
from .summary import update_metrics


def main(argv: list[str] | None = None) -> int:
    parser = run_dir_parser(
        "python -m cotprobe.latent",
        "Train linear probes on the hidden states at every cut to predict whether the forced answer is correct, "
        "and compare that latent confidence with the verbal one (AUROC, ECE, Brier per cut and layer). Missing "
        "hidden states are extracted with the run's model (hf backend).",
        "a run directory with probes (python -m cotprobe.truncate or cotprobe.ablate)")
    parser.add_argument("--layers", default=None,
                        help="layers: 'default' (8 spread over the depth, with the last), 'all' or a list such as "
                             "6,12,-1 (0 = embeddings); default: the layers already stored, else 'default'")
    parser.add_argument("--source-stage", choices=("truncate", "ablate"), default="truncate",
                        help="probes to predict: the cut sweep (default) or the ablation conditions")
    parser.add_argument("--source", choices=SOURCES, default="sampled",
                        help="verbal confidence to compare with: sampled (the label the model wrote, the paper's "
                             "measure; unparsed ones are counted and left out), expected or scored (default sampled)")
    parser.add_argument("--fixed-layer", type=int, default=None,
                        help="the layer fixed in advance, reported beside the selected one (default the last)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds over questions (default 5)")
    parser.add_argument("--C", type=float, default=ProbeSettings.C,
                        help=f"inverse L2 strength of the logistic probes (default {ProbeSettings.C})")
    parser.add_argument("--pool", default="last",
                        help="poolings of the prefix's hidden states to probe side by side: last (the last token "
                             "before the cut, the default), mean, max (over the CoT tokens kept); a comma list such "
                             "as last,mean,max. mean and max are extracted with the run's model, one pass per trace "
                             "(hidden_states_<pool>.*, as much disk per cut as last); cut sweep only")
    parser.add_argument("--cache-dir", default=None, help="where embedded models are cached (default ~/.cache/cotprobe)")
    args = parser.parse_args(argv)
    if not 0 < args.C < float("inf"):
        raise ValueError(f"--C must be a finite number > 0, got {args.C}")
    if args.folds < 2:
        raise ValueError(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    pools = hs.parse_pools(args.pool)  # an unknown pooling is refused, naming the known ones
    if pools != ["last"] and args.source_stage != "truncate":
        raise ValueError("--pool mean/max pools over the cut sweep's CoT tokens: use it with --source-stage truncate")

    run_dir = open_existing(args.run_dir)
    reader = RunDir(run_dir)  # read only: no lock
    traces = {t.question_id: t for t in reader.traces()}
    probes = [p for p in reader.probes()
              if (p.condition == "cut") == (args.source_stage == "truncate") and not p.error
              and p.question_id in traces]
    if not probes:
        command = "truncate --from-run" if args.source_stage == "truncate" else "ablate"
        raise ValueError(f"{run_dir}: no {args.source_stage} probes (run python -m cotprobe.{command} {run_dir} first)")
    check_folds(args.folds, len({p.question_id for p in probes if p.correct is not None}))  # before extracting
    stored = reader.stage_settings(hs.STAGE)

    with RunDir(run_dir) as run:
        needed = wanted_positions(probes, traces, args.source_stage)
        have = {(r.question_id, r.condition, r.token_index) for r in hs.load(run_dir)[0]} if stored else set()
        missing = {key: cot for key, cot in needed.items() if key not in have}
        if missing:
            backend = extraction_backend(reader.stage_settings("generate").get("model"), args.cache_dir)
            n_layers, size = hs.model_layers(backend)
            layers = stored["layers"] if stored and args.layers is None else hs.parse_layers(args.layers, n_layers)
            extract(backend, traces, missing, hs.HiddenStore(run, layers, size))
        elif args.layers is not None and hs.parse_layers(args.layers, max(stored["layers"])) != stored["layers"]:
            raise ValueError(f"{run_dir}: hidden states are stored at layers {stored['layers']}; --layers "
                             f"{args.layers} asks for others (omit --layers, or delete hidden_states.* to extract again)")
    records, array, layers = hs.load(run_dir)
    row_of = {(r.question_id, r.condition, r.token_index): r.row for r in records}
    rows = [row_of[key_of(p)] for p in probes]
    groups = np.array([p.question_id for p in probes])
    correct = np.array([p.correct for p in probes])
    graded = np.array([c is not None for c in correct])
    probes = [p for p, ok in zip(probes, graded) if ok]
    rows, groups = np.array(rows)[graded], groups[graded]
    y = np.array([bool(p.correct) for p in probes], dtype=int)
    settings = ProbeSettings(folds=args.folds, C=args.C)
    if args.fixed_layer is not None and args.fixed_layer not in layers:
        raise ValueError(f"--fixed-layer {args.fixed_layer} is not among the stored layers {layers}")
    fits = {layer: fit_layer(np.asarray(array[rows, i], dtype=np.float32), y, groups, settings)
            for i, layer in enumerate(tqdm(layers, desc="latent probes", unit="layer"))}
    choice = choose_layers(fits, args.fixed_layer)
    prefix = prefix_against(run_dir, probes, choice.probs, args)
    per_layer = {layer: fit.probs for layer, fit in fits.items()}
    result = latent_metrics(probes, per_layer, args.source, settings, args.resamples, prefix, choice)
    if pools != ["last"]:
        result["pools"] = {pool: pool_row(choice if pool == "last" else pooled_choice(run_dir, traces, probes, pool,
                                                                                       settings, args),
                                          probes, args.resamples) for pool in pools}
    sections = {"latent": result}
    if args.source_stage == "truncate":  # every confidence estimator of these cuts, the probe's among them
        by_cut = {(p.question_id, round(p.fraction_requested, 6)): float(c) for p, c in zip(probes, choice.probs)}
        sections["estimators"] = estimator_metrics(probes, by_cut, reader.resamples(), args.resamples,
                                                   EstimatorSettings(folds=args.folds))
    with RunDir(run_dir) as run:
        run.rewrite(LatentPrediction, [
            LatentPrediction(p.question_id, p.condition, p.fraction_requested, p.token_index,
                             choice.per_fold[f], float(c), int(f))
            for p, c, f in zip(probes, choice.probs, choice.folds)])
        update_metrics(run_dir, sections)
    print_latent_summary(result, run_dir)
    if "pools" in result:
        print_pools(result)
    figures = plot_latent(run_dir, result)
    if "estimators" in sections:
        print_estimators(sections["estimators"], run_dir)
        figures.append(plot_estimators(sections["estimators"], run_dir / "figures" / "estimators"))
    for figure in figures:
        print(f"figure: {figure}")
    return 0


def check_folds(folds: int, n_questions: int) -> None:
    """--folds against the questions with graded probes: every fold must leave at least two
    questions to train on (the layer is chosen by inner folds over them)."""
    def fits(k: int) -> bool:
        return n_questions >= k and n_questions - -(-n_questions // k) >= 2
    if not fits(folds):
        best = max((k for k in range(2, n_questions + 1) if fits(k)), default=None)
        hint = f"use --folds {best} or fewer" if best else "it needs at least 3 questions"
        raise ValueError(f"--folds {folds}: the run has {n_questions} question(s) with graded probes, too few for "
                         f"{folds}-fold cross-validation that leaves at least 2 questions to train on ({hint})")


def key_of(p: Probe) -> tuple[str, str, int]:
    return (p.question_id, "cut" if p.condition == "cut" else p.condition, p.token_index)


def wanted_positions(probes: list[Probe], traces: dict[str, Trace], stage: str) -> dict[tuple, str | None]:
    """(question, condition, token index) -> the CoT text to encode (None: the trace's own tokens)."""
    needed: dict[tuple, str | None] = {}
    for p in probes:
        needed[key_of(p)] = None if stage == "truncate" else p.cot
    if stage == "truncate":
        for qid in {p.question_id for p in probes}:  # the end of the thought
            needed[(qid, "cut", len(traces[qid].cot_token_ids))] = None
    return needed


def extraction_backend(model: str | None, cache_dir: str | None):
    """The run's model on the Hugging Face backend (hidden states need the weights)."""
    if not model:
        raise ValueError("the run's manifest records no generation (no model to extract hidden states with)")
    print(f"cotprobe.latent: extracting hidden states with {model} (hf backend)", file=sys.stderr)
    return load_backend(model, cache_root=cache_dir)


def extract(backend, traces: dict[str, Trace], missing: dict[tuple, str | None], store) -> None:
    """One pass per trace (all its missing cuts) or per ablated CoT, stored as it goes."""
    by_sequence: dict[tuple, list[int]] = {}
    for (qid, condition, t), cot in sorted(missing.items(), key=lambda item: item[0]):
        by_sequence.setdefault((qid, condition, cot), []).append(t)
    for (qid, condition, cot), points in tqdm(by_sequence.items(), desc="hidden states", unit="seq"):
        trace = traces[qid]
        prompt_ids = backend.encode(trace.prompt)
        if cot is None:  # cuts of the trace's own tokens
            ids, positions = trace.cot_token_ids[:max(points)], [len(prompt_ids) + t - 1 for t in points]
        else:  # an ablated CoT: probed on the trace's own tokens when unchanged, else re-encoded (as ablate does)
            own = trace.cot_token_ids[:points[0]]
            ids = own if backend.decode(own) == cot else backend.encode(cot)
            positions = [len(prompt_ids) + len(ids) - 1]
        states = backend.hidden_states(prompt_ids + ids, positions, store.layers)
        store.append(qid, condition, points, states.numpy())


def pooled_choice(run_dir: Path, traces: dict[str, Trace], probes: list[Probe], pool: str, settings: ProbeSettings,
                  args) -> LayerChoice:
    """The nested-choice probe on one pooling's states at the probes' cuts (extracted where missing)."""
    stored = RunDir(run_dir).stage_settings(hs.STAGE)
    with RunDir(run_dir) as run:
        store = hs.HiddenStore(run, stored["layers"], stored["hidden_size"], pool)
        missing = sorted({key_of(p) for p in probes if not store.has(*key_of(p))})
        if missing:
            backend = extraction_backend(RunDir(run_dir).stage_settings("generate").get("model"), args.cache_dir)
            hs.extract_pooled(backend, traces, missing, store)
    records, array, layers = hs.load(run_dir, pool)
    row_of = {(r.question_id, r.condition, r.token_index): r.row for r in records}
    rows = [row_of[key_of(p)] for p in probes]
    y = np.array([bool(p.correct) for p in probes], dtype=int)
    groups = np.array([p.question_id for p in probes])
    fits = {layer: fit_layer(np.asarray(array[rows, i], dtype=np.float32), y, groups, settings)
            for i, layer in enumerate(tqdm(layers, desc=f"latent probes ({pool})", unit="layer"))}
    return choose_layers(fits, args.fixed_layer)


def pool_row(choice: LayerChoice, probes: list[Probe], n_resamples: int) -> PoolRow:
    """One pooling's probe: the layer per fold, pooled metrics with intervals, AUROC per cut level."""
    import warnings

    from . import metrics

    y = np.array([float(p.correct) for p in probes])
    q = np.array([p.question_id for p in probes])
    levels = np.array([round(p.fraction_requested, 6) for p in probes])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pooled = metrics.summarize(choice.probs, y, clusters=q, n_resamples=n_resamples)
        per_level = {str(v): metrics.auroc(choice.probs[levels == v], y[levels == v]) for v in sorted(set(levels))}
    return {"per_fold": [int(layer) for layer in choice.per_fold], "pooled": pooled, "auroc_per_level": per_level}


def print_pools(result: LatentSection) -> None:
    """The poolings side by side: pooled over the cuts, with question-clustered intervals."""
    print("poolings of the prefix's hidden states (nested layer choice; pooled over cuts, 95% CI):")
    for pool, row in result["pools"].items():
        print(f"  {pool:<5} folds chose {','.join(f'L{x}' for x in row['per_fold'])}: " + "  ".join(
            f"{m} {row['pooled'][m]:.3f} [{row['pooled'][m + '_low']:.3f}, {row['pooled'][m + '_high']:.3f}]"
            for m in ("auroc", "brier", "smooth_ece")))


def prefix_against(run_dir: Path, probes: list[Probe], latent: np.ndarray, args) -> PrefixSection | None:
    """The verbal and the latent confidence (of the selected layers) against P(correct | prefix), when
    the run has resampled its cuts (truncate --resample); None otherwise."""
    resamples = RunDir(run_dir).resamples()  # read only: no lock
    if not resamples or args.source_stage != "truncate":
        return None
    by_cut = {(p.question_id, round(p.fraction_requested, 6)): float(c) for p, c in zip(probes, latent)}
    return prefix_metrics(probes, resamples, {f"verbal:{args.source}": args.source, "latent": by_cut}, args.resamples)


def plot_latent(run_dir: Path, result: LatentSection) -> list[Path]:
    """Draw the latent section's figures; return their paths."""
    figures = [plot_latent_vs_verbal(result, run_dir / "figures" / "latent_vs_verbal"),
               plot_latent_layers(result, run_dir / "figures" / "latent_layers")]
    if "prefix" in result:
        figures.append(plot_prefix_accuracy(result["prefix"], run_dir / "figures" / "latent_prefix_accuracy"))
    return figures


entry = entry_point(main)  # the console script (setup.cfg)

if __name__ == "__main__":
    entry()
