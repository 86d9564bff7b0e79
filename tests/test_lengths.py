"""Cut tables within terciles of full-thought length (`cotprobe.lengths`, the "by_length" section)."""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]

from analyses_fixtures import make_run, probe, trace  # noqa: E402

from cotprobe.lengths import STRATA, as_cut_sections, length_metrics, length_strata  # noqa: E402

LEVELS = (0.0, 0.5, 1.0)


def _records(lengths, seed=0):
    """One trace per question with a thought of the given length, cut probes at three levels whose
    correctness depends on the question (long thoughts mostly wrong)."""
    rng = np.random.default_rng(seed)
    traces, probes = [], []
    for i, n in enumerate(lengths):
        qid = f"q{i:02d}"
        traces.append(replace(trace(qid, 0.6, True), cot_token_ids=list(range(n))))
        for level in LEVELS:
            c = float(np.clip(rng.uniform(0.1, 0.9), 0, 1))
            probes.append(probe(qid, "cut", c, bool(rng.random() < (0.8 if n < 50 else 0.3)), fraction=level))
    return traces, probes


def test_strata_are_terciles_by_rank_with_ties_broken_by_question_id():
    traces, probes = _records([40, 10, 90, 10, 70, 20, 100])
    strata = length_strata(probes, traces)
    # by (length, id): q01 10, q03 10, q05 20 | q00 40, q04 70 | q02 90, q06 100 (array_split: 3, 2, 2)
    assert strata == {"short": ["q01", "q03", "q05"], "middle": ["q00", "q04"], "long": ["q02", "q06"]}
    assert list(length_strata(probes[:3], traces)) == ["short"]  # one question: one stratum
    assert length_strata([], traces) == {}


def test_each_stratum_is_the_cut_table_of_its_questions():
    import relplot

    lengths = [10 + 7 * i for i in range(24)]
    traces, probes = _records(lengths, seed=1)
    section = length_metrics(probes, traces, "expected", n_resamples=30)
    assert [s["stratum"] for s in section["strata"]] == list(STRATA)
    assert [s["n_questions"] for s in section["strata"]] == [8, 8, 8]
    for s in section["strata"]:
        qids = set(length_strata(probes, traces)[s["stratum"]])
        assert (s["min_tokens"], s["max_tokens"]) == (min(lengths[int(q[1:])] for q in qids),
                                                      max(lengths[int(q[1:])] for q in qids))
        for row in s["levels"]:
            mine = [p for p in probes if p.question_id in qids and p.fraction_requested == row["level"]]
            conf = np.array([p.confidence.expected_value for p in mine])
            y = np.array([float(p.correct) for p in mine])
            assert row["n"] == len(mine) == 8
            assert row["accuracy"] == pytest.approx(y.mean())
            assert row["brier"] == pytest.approx(np.mean((conf - y) ** 2))
            assert row["smooth_ece"] == pytest.approx(float(relplot.smECE(conf, y)))
        acc = [row["accuracy"] for row in s["levels"]]
        assert s["trends"]["accuracy"]["clustered"]["slope"] == pytest.approx(np.polyfit(LEVELS, acc, 1)[0])
    short, long = section["strata"][0], section["strata"][-1]
    assert short["levels"][0]["accuracy"] > long["levels"][0]["accuracy"]  # the selection the strata separate
    assert set(as_cut_sections(section)) == {f"{s['stratum']} ({s['min_tokens']}-{s['max_tokens']} tokens, "
                                             f"n={s['n_questions']})" for s in section["strata"]}


def test_metrics_command_and_progress_by_length_write_the_strata(tmp_path, capsys):
    from analyses import progress
    from cotprobe.metrics.__main__ import main as metrics_main
    from cotprobe.summary import read_metrics

    traces, probes = _records([10 + 5 * i for i in range(12)], seed=2)
    run = make_run(tmp_path, "run", traces, probes)
    assert metrics_main([str(run), "--resamples", "20", "--source", "expected"]) == 0
    section = read_metrics(run)["by_length"]
    assert [s["n_questions"] for s in section["strata"]] == [4, 4, 4]
    assert "within terciles of full-thought length" in capsys.readouterr().out
    written = progress.main([run], tmp_path / "figs", n_resamples=20, by_length=True)
    for name in ("progress_by_length.csv", "progress_by_length_trends.csv", "progress_by_length.png"):
        assert tmp_path / "figs" / name in written and (tmp_path / "figs" / name).stat().st_size > 0


def test_the_section_holds_only_the_keys_its_types_declare():
    from cotprobe.metrics.sections import LengthSection, LengthStratum, LevelRow

    def keys(typed):
        return set(typed.__required_keys__ | typed.__optional_keys__)

    traces, probes = _records([10 + 5 * i for i in range(9)], seed=3)
    section = length_metrics(probes, traces, "expected", n_resamples=10)
    assert set(section) == keys(LengthSection)
    assert all(set(s) == keys(LengthStratum) for s in section["strata"])
    assert all(set(row) <= keys(LevelRow) for s in section["strata"] for row in s["levels"])


def test_a_stratum_whose_cuts_all_realise_one_fraction_gets_no_per_level_ols():
    from cotprobe.summary import cut_metrics

    traces, probes = _records([3] * 6, seed=4)
    same = [replace(p, fraction_realised=1.0) for p in probes]  # one-step thoughts: every cut keeps it all
    result = cut_metrics(same, "expected", n_resamples=10)
    assert len(result["levels"]) == 3 and all(t["ols_per_level"] is None for t in result["trends"].values())
