"""analyses/: figure scripts on run directories built from records written here (no model)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]

from analyses_fixtures import make_run, probe, trace

from analyses import (
    ablation,
    confidence_hist,
    main_table,
    progress,
    reliability,
    reproduce,
    slow_think,
)
from analyses.common import Run, load_runs, paired
from cotprobe import metrics
from cotprobe.cli import run_main

R = 40  # bootstrap resamples: small, for speed; the tests compare against the same R and seed
QIDS = [f"q{i:02d}" for i in range(20)]
CORRECT = [i % 2 == 0 for i in range(20)]  # 10 correct, 10 incorrect

# "reason": near-perfect; "direct": overconfident with values on and near bin edges
REASON = [0.95 if ok else 0.05 for ok in CORRECT]
DIRECT = [0.3, 0.3, 0.3, 0.29, 0.31, 0.7, 0.7, 1.0, 0.0, 0.95] * 2
SLOW = [0.85 if ok else 0.15 for ok in CORRECT]
# "think" beats "nothink" on ECE and Brier but not on AUROC (two swapped answers)
THINK = [0.95 if ok else 0.05 for ok in CORRECT]
THINK[0], THINK[1] = 0.05, 0.95
NOTHINK = [0.6 if ok else 0.4 for ok in CORRECT]
LEVELS = {0.0: [0.8] * 20, 0.5: [0.6 if ok else 0.5 for ok in CORRECT], 1.0: REASON}
LEVEL_CORRECT = {0.0: [i % 4 == 0 for i in range(20)], 0.5: CORRECT, 1.0: CORRECT}
CONDITIONS = {"full": REASON, "none": [0.8] * 20, "linear": [0.7 if ok else 0.35 for ok in CORRECT]}


def traces(values, style="cot", correct=CORRECT):
    return [trace(q, v, ok, style=style) for q, v, ok in zip(QIDS, values, correct)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cut = [probe(q, "cut", v, ok, f) for f in LEVELS for q, v, ok in zip(QIDS, LEVELS[f], LEVEL_CORRECT[f])]
    abl = [probe(q, c, v, ok) for c in CONDITIONS for q, v, ok in zip(QIDS, CONDITIONS[c], CORRECT)]
    abl.append(probe("q99", "linear", 0.5, True, error="rewrite failed: test"))
    return {
        "reason": make_run(root, "reason", traces(REASON), cut + abl, model="org/M-8B", style="cot"),
        "direct": make_run(root, "direct", traces(DIRECT, "direct"), model="org/M-8B", style="direct"),
        "slow": make_run(root, "slow", traces(SLOW, "slow-think"), model="org/M-8B", style="slow-think",
                         profile="slow-think", reasoning=True),  # as for_style makes it
        "think": make_run(root, "think", traces(THINK), model="Q/Qwen3-8B", profile="qwen3-thinking", reasoning=True),
        "nothink": make_run(root, "nothink", traces(NOTHINK), model="Q/Qwen3-8B", profile="qwen3-nothinking"),
    }


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory):
    """Every analysis once, each on the fewest runs its checks need (figures cost most of the time)."""
    out = tmp_path_factory.mktemp("figures")
    r = runs
    written = main_table.main(list(r.values()), out, n_resamples=R)
    written += reliability.main([r["direct"], r["reason"]], out, n_resamples=R)
    written += confidence_hist.main([r["reason"]], out, n_resamples=R)
    written += progress.main([r["reason"]], out, n_resamples=R)
    written += ablation.main([r["reason"]], out, n_resamples=R)
    written += slow_think.main([r["reason"], r["direct"], r["slow"], r["think"]], out, n_resamples=R)
    return out, written


def read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name)


def arrays(values, correct=CORRECT):
    return np.array(values, dtype=float), np.array(correct, dtype=float)


def test_every_script_writes_png_svg_csv(built):
    out, written = built
    for stem in ("main_table", "main_table_pairs", "reliability", "reliability_smooth", "reliability_classes", "confidence_hist",
                 "progress", "ablation", "slow_think"):
        for suffix in (".png", ".svg", ".csv"):
            path = out / f"{stem}{suffix}"
            assert path.exists() and path.stat().st_size > 0, path
            assert path in written
    assert (out / "main_table.md").read_text().startswith("# Main table")
    assert (out / "main_table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out / "main_table.svg").read_bytes()[:2000]


def test_main_table_numbers_equal_metrics(built, runs):
    out, _ = built
    table = read(out, "main_table.csv").set_index("path")
    for name, values in [("reason", REASON), ("direct", DIRECT), ("nothink", NOTHINK)]:
        row = table.loc[str(runs[name])]
        c, y = arrays(values)
        assert row["n"] == 20 and row["n_unparsed"] == 0
        assert row["accuracy"] == pytest.approx(metrics.accuracy(y))
        assert row["ece"] == pytest.approx(metrics.ece(c, y))
        assert row["brier"] == pytest.approx(metrics.brier(c, y))
        assert row["auroc"] == pytest.approx(metrics.auroc(c, y))
        direct = metrics.summarize(c, y, clusters=np.array(QIDS), n_resamples=R)
        for key in ("ece_low", "ece_high", "brier_low", "auroc_high"):
            assert row[key] == pytest.approx(direct[key])
    assert table.loc[str(runs["direct"]), "run"] == "M-8B · plain · direct · trivia"


def test_strictly_better_count(built, runs):
    out, _ = built
    pairs = read(out, "main_table_pairs.csv")
    got = {(Path(a).name, Path(b).name): row for a, b, row in zip(pairs["a_path"], pairs["b_path"],
                                                                 pairs.to_dict("records"))}
    # found automatically: cot and slow-think vs direct of M-8B; qwen3 thinking vs non-thinking
    assert set(got) == {("reason", "direct"), ("slow", "direct"), ("think", "nothink")}
    assert got[("reason", "direct")]["a_better_all"] and not got[("reason", "direct")]["b_better_all"]
    assert got[("slow", "direct")]["a_better_all"]
    mixed = got[("think", "nothink")]  # better ECE and Brier, worse AUROC: not strictly better on all three
    assert mixed["d_ece"] < 0 and mixed["d_brier"] < 0 and mixed["d_auroc"] < 0
    assert not mixed["a_better_all"] and not mixed["b_better_all"]
    c_a, y = arrays(THINK)
    c_b, _ = arrays(NOTHINK)
    d = metrics.paired_bootstrap_diff(metrics.ece, c_a, y, c_b, y, metrics.Resampling(R))
    assert (mixed["d_ece"], mixed["d_ece_low"], mixed["d_ece_high"]) == pytest.approx((d.estimate, d.low, d.high))
    assert "**2 of 3**" in (out / "main_table.md").read_text()


def test_declared_pair_on_shared_questions_only(runs, tmp_path):
    # B answered only 12 of A's questions: the difference is taken on those 12
    b = make_run(tmp_path, "b", traces(DIRECT)[:12], model="other", style="direct")
    a_run, b_run = load_runs([runs["reason"], b])
    row = paired(a_run, b_run, "expected", R)
    c_a, y = arrays(REASON[:12], CORRECT[:12])
    c_b, _ = arrays(DIRECT[:12], CORRECT[:12])
    assert row["n_shared"] == 12
    assert row["d_brier"] == pytest.approx(metrics.brier(c_a, y) - metrics.brier(c_b, y))
    assert row["a_better_all"]
    assert main_table.auto_pairs([a_run, b_run]) == []  # different models: only by declaration


def test_reliability_bins_with_value_on_edge(built, runs):
    out, _ = built
    bins = read(out, "reliability.csv")
    bins = bins[bins["path"] == str(runs["direct"])].set_index("bin")
    # DIRECT twice: 0.3 x3 and 0.31 -> [0.3, 0.4); 0.29 -> [0.2, 0.3); 0.7 x2 -> [0.7, 0.8);
    # 1.0 and 0.95 -> [0.9, 1.0]; 0.0 -> [0, 0.1); bins 1, 4, 5, 6, 8 empty and not drawn
    assert bins["n"].to_dict() == {0: 2, 2: 2, 3: 8, 7: 4, 9: 4}
    assert bins.loc[3, "bin_low"] == pytest.approx(0.3)
    c, y = arrays(DIRECT)
    in_bin = (c >= 0.3 - 1e-12) & (c < 0.4)
    assert bins.loc[3, "accuracy"] == pytest.approx(y[in_bin].mean())
    assert bins.loc[3, "mean_confidence"] == pytest.approx(c[in_bin].mean())
    assert bins["ece"].iloc[0] == pytest.approx(metrics.ece(c, y))
    # ECE recomputed from the drawn bins equals metrics.ece
    assert (bins["n"] * (bins["accuracy"] - bins["mean_confidence"]).abs()).sum() / 20 == pytest.approx(metrics.ece(c, y))
    classes = read(out, "reliability_classes.csv")
    assert set(classes["label"]) <= set(Run(runs["direct"]).scale_labels)


def test_smoothed_reliability_is_relplots_curve_with_the_smooth_ece(built, runs):
    import relplot

    out, _ = built
    smooth = read(out, "reliability_smooth.csv")
    part = smooth[smooth["path"] == str(runs["direct"])]
    c, y = arrays(DIRECT)
    diagram = relplot.prepare_rel_diagram(c, y, plot_confidence_band=False, report_CE_std=False)
    assert part["mu"].to_numpy() == pytest.approx(diagram["mu"])
    assert part["smooth_ece"].iloc[0] == pytest.approx(float(relplot.smECE(c, y)))
    assert part["smooth_ece_low"].iloc[0] <= part["smooth_ece"].iloc[0] <= part["smooth_ece_high"].iloc[0]


def test_confidence_hist_counts(built, runs):
    out, _ = built
    hist = read(out, "confidence_hist.csv")
    part = hist[hist["path"] == str(runs["reason"])]
    assert part["count"].sum() == 20
    assert part.groupby("correct")["proportion"].sum().tolist() == pytest.approx([1.0, 1.0])
    top = part[(part["label"] == "Almost certain")].set_index("correct")["count"]
    assert top[True] == 10 and top[False] == 0


def test_progress_and_ablation_numbers(built, runs):
    out, _ = built
    prog = read(out, "progress.csv").set_index("level")
    for level, values in LEVELS.items():
        c, y = arrays(values, LEVEL_CORRECT[level])
        assert prog.loc[level, "ece"] == pytest.approx(metrics.ece(c, y))
        assert prog.loc[level, "accuracy"] == pytest.approx(y.mean())
    trends = read(out, "progress_trends.csv").set_index("metric")
    assert trends.loc["ece", "slope"] < 0 and trends.loc["accuracy", "slope"] > 0
    abl = read(out, "ablation.csv").set_index("condition")
    for cond, values in CONDITIONS.items():
        c, y = arrays(values)
        assert abl.loc[cond, "brier"] == pytest.approx(metrics.brier(c, y))
        assert abl.loc[cond, "n"] == 20
    assert abl.loc["linear", "n_failed"] == 1
    c_none, y = arrays(CONDITIONS["none"])
    c_full, _ = arrays(CONDITIONS["full"])
    assert abl.loc["none", "d_ece"] == pytest.approx(metrics.ece(c_none, y) - metrics.ece(c_full, y))


def test_slow_think_rows(built, runs):
    out, _ = built
    st = read(out, "slow_think.csv")
    assert sorted(st["style"]) == ["cot", "direct", "slow-think"]  # only M-8B has several styles
    slow = st[st["style"] == "slow-think"].iloc[0]
    c, y = arrays(SLOW)
    c_d, _ = arrays(DIRECT)
    assert slow["auroc"] == pytest.approx(metrics.auroc(c, y))
    assert slow["d_ece_vs_direct"] == pytest.approx(metrics.ece(c, y) - metrics.ece(c_d, y))


def test_reproduce_skips_missing_inputs(runs, tmp_path, capsys):
    bare = make_run(tmp_path, "bare")  # manifest only
    written = reproduce.main([bare], tmp_path / "none", n_resamples=R)
    assert written == []
    text = capsys.readouterr().out
    for name in reproduce.ANALYSES:
        assert f"skipped {name}:" in text
    # traces of one style only: tables and histograms made; progress, ablation, slow_think skipped
    written = reproduce.main([runs["nothink"]], tmp_path / "some", n_resamples=R,
                             only=["main_table", "progress", "ablation", "slow_think"])
    text = capsys.readouterr().out
    assert "made main_table" in text
    for name in ("progress", "ablation", "slow_think"):
        assert f"skipped {name}:" in text
    assert {p.name for p in written} >= {"main_table.csv", "main_table.png", "main_table.svg"}
    assert not (tmp_path / "some" / "progress.png").exists()


def test_cli_errors_are_one_line(runs, capsys):
    assert run_main(main_table.cli, [str(runs["reason"]), "--pair", "only-one"]) == 2
    assert "--pair" in capsys.readouterr().err
    assert run_main(ablation.cli, [str(runs["direct"]), "--out", "/nonexistent/x"]) == 2
    assert "ablation probes" in capsys.readouterr().err
    with pytest.raises(ValueError):
        reliability.main([runs["reason"]], "/nonexistent/x", class_source="expected")


def test_draw_functions_compose_panels_into_one_figure(runs, tmp_path):
    import matplotlib.pyplot as plt

    from cotprobe import plots, summary
    from cotprobe.records import Probe, read_jsonl

    probes = read_jsonl(runs["reason"] / "probes.jsonl", Probe)
    cuts = summary.cut_metrics(probes, "expected", n_resamples=R)
    conditions = summary.condition_metrics(probes, n_resamples=R)
    k = len(plots.PROGRESS_PANELS)
    fig, axes = plt.subplots(1, k + 1, figsize=(4 * (k + 1), 4))
    assert plots.draw_progress({"reason": cuts}, axes=axes[:k]) is fig
    assert plots.draw_conditions(conditions, ax=axes[k]) is fig
    assert [ax.get_title() for ax in axes[:k]] == [metrics.METRICS[m].axis_label for m in plots.PROGRESS_PANELS]
    assert all(len(ax.lines) == 1 for ax in axes[:k]) and len(axes[k].patches) > 0
    png = plots.save(fig, tmp_path / "composed")
    assert png.exists() and png.with_suffix(".svg").exists()
