"""Pooled hidden states (`hidden.pool_cuts`, `latent --pool`): last, mean and max over the kept CoT."""

import numpy as np
import pytest

from cotprobe import hidden as hs
from cotprobe.store import RunDir


def test_pool_cuts_against_plain_loops():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(1 + 7, 2, 5))  # row 0: the prompt's last token; rows 1..7: CoT tokens
    cuts = [0, 1, 3, 7]
    last, mean, mx = (hs.pool_cuts(states, cuts, pool) for pool in hs.POOLS)
    for i, t in enumerate(cuts):
        assert last[i] == pytest.approx(states[t])
        kept = states[1:t + 1] if t else states[:1]
        assert mean[i] == pytest.approx(sum(kept) / len(kept))
        assert mx[i] == pytest.approx(np.array([[max(kept[:, l, h]) for h in range(5)] for l in range(2)]))
    with pytest.raises(ValueError, match="use one of last, mean, max"):
        hs.pool_cuts(states, cuts, "min")


def test_each_pooling_has_its_own_files_and_reads_back(tmp_path):
    assert hs.files("last") == (hs.ARRAY, hs.INDEX, hs.STAGE)
    assert hs.files("max") == ("hidden_states_max.f16", "hidden_states_max.jsonl", "hidden_states_max")
    with RunDir(tmp_path / "run") as run:
        last = hs.HiddenStore(run, [1, 2], 3)
        mean = hs.HiddenStore(run, [1, 2], 3, "mean")
        last.append("q", "cut", [0, 4], np.zeros((2, 2, 3)))
        mean.append("q", "cut", [4], np.ones((1, 2, 3)))
    records, array, layers = hs.load(tmp_path / "run", "mean")
    assert [(r.token_index, r.row) for r in records] == [(4, 0)] and layers == [1, 2]
    assert np.asarray(array, dtype=np.float32) == pytest.approx(np.ones((1, 2, 3)))
    assert len(hs.load(tmp_path / "run")[0]) == 2  # "last" untouched by the other pooling
    assert hs.load(tmp_path / "run", "max")[0] == []


def test_latent_refuses_an_unknown_pooling_and_pooling_ablations(tmp_path, capsys):
    from cotprobe import latent
    from cotprobe.cli import run_main

    assert run_main(latent.main, [str(tmp_path), "--pool", "last,min"]) == 2
    assert "use one of last, mean, max" in capsys.readouterr().err
    assert run_main(latent.main, [str(tmp_path), "--pool", "mean", "--source-stage", "ablate"]) == 2
    assert "--source-stage truncate" in capsys.readouterr().err


def test_truncate_stores_the_poolings_beside_the_last_token(tmp_path, capsys):
    from cotprobe import truncate
    from cotprobe.cli import run_main

    out = tmp_path / "run"
    args = ["--model", "tiny-random", "--dataset", "arithmetic:1", "-n", "2", "--budget", "10", "--fractions", "0,0.1,1",
            "--cut", "token", "--out", str(out)]
    assert run_main(truncate.main, args + ["--pool", "mean"]) == 2  # pooling needs the hidden states
    assert "needs --hidden-states" in capsys.readouterr().err
    assert run_main(truncate.main, args + ["--hidden-states", "--layers", "1,2", "--pool", "last,mean,max"]) == 0
    last, last_array, layers = hs.load(out)
    for pool in ("mean", "max"):
        records, array, _ = hs.load(out, pool)
        assert {(r.question_id, r.token_index) for r in records} == {(r.question_id, r.token_index) for r in last}
        assert array.shape == (len(last), len(layers), last_array.shape[2])
    row = {(r.question_id, r.token_index): r.row for r in last}
    checked = 0
    for pool, t in (("mean", 0), ("max", 0), ("mean", 1), ("max", 1)):  # no or one CoT token kept: pooled = last
        records, array, _ = hs.load(out, pool)
        for r in (r for r in records if r.token_index == t):
            checked += 1
            assert np.asarray(array[r.row], np.float32) == pytest.approx(
                np.asarray(last_array[row[(r.question_id, t)]], np.float32), abs=2e-2)
    assert checked >= 4
