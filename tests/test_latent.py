"""cotprobe.latent end to end on a tiny-random run: hidden states from the sweep, resumable
extraction, probes, figures; and the early-exit replay on the same run."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cotprobe.forcing import Prober
from cotprobe import hidden as hs
from cotprobe.backends import NoHiddenStates, fork
from cotprobe.backends.hf import HFBackend
from cotprobe.records import HiddenState, LatentPrediction, read_jsonl
from cotprobe.store import RunDir

N = 8


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """truncate --hidden-states --resample on the tiny model: 8 questions, 3 cut levels."""
    out = tmp_path_factory.mktemp("latent") / "run"
    cmd = [sys.executable, "-m", "cotprobe.truncate", "--model", "tiny-random", "--dataset", "arithmetic:1",
           "-n", str(N), "--budget", "12", "--fractions", "0,0.5,1", "--cut", "token", "--hidden-states",
           "--layers", "1,2", "--resample", "2", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "P(correct | prefix)" in proc.stdout
    return out


def test_sweep_stores_every_cut_and_the_end_of_the_thought(swept):
    records, array, layers = hs.load(swept)
    assert layers == [1, 2] and array.shape == (len(records), 2, 64) and array.dtype == np.float16
    keys = [(r.question_id, r.condition, r.token_index) for r in records]
    assert len(keys) == len(set(keys)) and [r.row for r in records] == list(range(len(records)))
    traces = [json.loads(line) for line in (swept / "traces.jsonl").read_text().splitlines()]
    for t in traces:
        n = len(t["cot_token_ids"])
        assert {(t["question_id"], "cut", k) for k in {0, round(n / 2), n}} <= set(keys)
    assert np.isfinite(np.asarray(array, dtype=np.float32)).all()
    assert (swept / "figures" / "prefix_accuracy.png").exists()
    resamples = [json.loads(line) for line in (swept / "resamples.jsonl").read_text().splitlines()]
    assert len(resamples) == 3 * N and all(len(r["answers"]) == 2 for r in resamples)


def test_latent_and_early_exit_commands_end_to_end(swept, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(swept, run)
    proc = subprocess.run([sys.executable, "-m", "cotprobe.latent", str(run), "--folds", "2", "--resamples", "50"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "latent - verbal" in proc.stdout and "extracting" not in proc.stderr  # every state came from the sweep
    result = json.loads((run / "metrics.json").read_text())["latent"]
    assert {r["layer"] for r in result["layers"]} == {1, 2} and result["n_questions"] == N
    assert "prefix" in result
    assert result["source"] == "sampled" and 0 <= result["n_verbal_unparsed"] <= result["n_probes"]
    chosen = result["layer_choice"]["per_fold"]
    assert len(chosen) == 2 and set(chosen) <= {1, 2} and result["best_layer_rule"].startswith("nested")
    assert result["fixed_layer"]["layer"] == 2 and "fixed L2" in proc.stdout
    predictions = read_jsonl(run / "latent.jsonl", LatentPrediction)
    assert len(predictions) == 3 * N and all(0 < p.confidence < 1 for p in predictions)
    assert all(p.layer == chosen[p.fold] for p in predictions)  # each fold's rows from the layer it chose
    table = json.loads((run / "metrics.json").read_text())["estimators"]  # every estimator, the probe's among them
    assert {"verbal:expected", "latent", "length", "prefix", "verbal+length"} <= set(table["estimators"])
    assert table["estimators"]["latent"]["pooled"]["mean_confidence"] == pytest.approx(
        np.mean([p.confidence for p in predictions]))
    assert table["estimators"]["prefix"]["pooled"]["n"] == 3 * N and "confidence estimators on the same" in proc.stdout
    for name in ("latent_vs_verbal", "latent_layers", "latent_prefix_accuracy", "estimators"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (run / "figures" / f"{name}.svg").exists()
    proc = subprocess.run([sys.executable, "-m", "cotprobe.early_exit", str(run), "--resamples", "50"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "latent >= 0.50" in proc.stdout and "budget 0.5" in proc.stdout
    exits = json.loads((run / "metrics.json").read_text())["early_exit"]
    assert any(r["source"] == "latent" for r in exits["policies"]) and exits["budget"] == 12
    traces = [json.loads(line) for line in (run / "traces.jsonl").read_text().splitlines()]
    assert exits["full"]["mean_tokens"] == pytest.approx(np.mean([len(t["cot_token_ids"]) for t in traces]))


def test_latent_pools_mean_and_max_beside_the_last_token(swept, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(swept, run)
    proc = subprocess.run([sys.executable, "-m", "cotprobe.latent", str(run), "--folds", "2", "--resamples", "20",
                           "--pool", "last,mean,max"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pools = json.loads((run / "metrics.json").read_text())["latent"]["pools"]
    assert list(pools) == ["last", "mean", "max"] and "poolings of the prefix's hidden states" in proc.stdout
    last, _, layers = hs.load(run)
    for pool in ("mean", "max"):
        records, array, _ = hs.load(run, pool)
        assert {(r.question_id, r.token_index) for r in records} <= {(r.question_id, r.token_index) for r in last}
        assert len(records) == 3 * N and array.shape[1:] == (len(layers), 64)
        assert 0 <= pools[pool]["pooled"]["auroc"] <= 1 or np.isnan(pools[pool]["pooled"]["auroc"])
    by_key = {(r.question_id, r.token_index): r.row for r in last}
    mean_records, mean_array, _ = hs.load(run, "mean")
    zero = [r for r in mean_records if r.token_index == 0]  # no CoT kept: the pooled state is the last one
    assert zero and all(np.allclose(np.asarray(mean_array[r.row], np.float32),
                                    np.asarray(hs.load(run)[1][by_key[(r.question_id, 0)]], np.float32),
                                    atol=2e-2) for r in zero)


def test_latent_compares_with_the_sampled_label_by_default(capsys):
    from cotprobe import latent

    with pytest.raises(SystemExit):
        latent.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default sampled)" in text and "the label the model wrote" in text and "--fixed-layer" in text


def test_extraction_resumes_after_a_kill_and_matches_the_sweep(swept, tmp_path, monkeypatch):
    from cotprobe import latent

    run = tmp_path / "run"
    shutil.copytree(swept, run)
    reference = {(r.question_id, r.token_index): np.array(a, dtype=np.float32)
                 for r, a in zip(*hs.load(run)[:2])}
    for name in (hs.ARRAY, hs.INDEX):
        (run / name).unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["stages"][hs.STAGE]
    (run / "manifest.json").write_text(json.dumps(manifest))

    real, calls = HFBackend.hidden_states, []

    def killed_on_the_fourth(self, *args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(HFBackend, "hidden_states", killed_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        latent.main([str(run), "--layers", "1,2", "--folds", "2", "--resamples", "20"])
    assert len(read_jsonl(run / hs.INDEX, HiddenState)) == 3 * 3  # three traces, three cuts each
    with (run / hs.ARRAY).open("ab") as fh:  # a torn row from the kill
        fh.write(b"\x00" * 100)
    assert latent.main([str(run), "--folds", "2", "--resamples", "20"]) == 0
    records, array, _ = hs.load(run)
    keys = [(r.question_id, r.condition, r.token_index) for r in records]
    assert len(keys) == len(set(keys)) == len(reference)
    assert (run / hs.ARRAY).stat().st_size == len(records) * 2 * 64 * 2
    for r, a in zip(records, array):  # a pass of its own agrees with the sweep's encoding pass
        assert np.allclose(np.asarray(a, dtype=np.float32), reference[(r.question_id, r.token_index)],
                           atol=2e-2, rtol=1e-2)


def test_other_layers_than_stored_are_refused_clearly(swept, tmp_path, capsys):
    from cotprobe.cli import run_main
    from cotprobe import latent

    run = tmp_path / "run"
    shutil.copytree(swept, run)
    assert run_main(latent.main, [str(run), "--layers", "0,1"]) == 2
    assert "stored at layers [1, 2]" in capsys.readouterr().err


def test_hidden_states_need_the_hf_backend(tiny_parts):
    from cotprobe.backends.scripted import ScriptedBackend

    backend = ScriptedBackend(lambda c: "x", tiny_parts[1])
    with pytest.raises(NoHiddenStates, match="no hidden states"):
        fork(backend, [1, 2, 3], [3], hidden_layers=[1])
    with pytest.raises(ValueError, match="no hidden states"):
        hs.model_layers(backend)


def test_layer_specs():
    assert hs.parse_layers("all", 4) == [0, 1, 2, 3, 4]
    assert hs.parse_layers("2,-1", 30) == [2, 30]
    assert hs.default_layers(30) == [4, 8, 11, 15, 19, 22, 26, 30]
    assert hs.default_layers(2) == [1, 2]
    with pytest.raises(ValueError, match="--layers"):
        hs.parse_layers("31", 30)


def test_store_refuses_other_layers_on_resume(tmp_path):
    with RunDir(tmp_path) as run:
        store = hs.HiddenStore(run, [1, 2], 4)
        store.append("q", "cut", [0, 3], np.ones((2, 2, 4)))
        store.append("q", "cut", [3], np.ones((1, 2, 4)))  # already stored: skipped
        assert len(hs.HiddenStore(run, [1, 2], 4).records) == 2
        with pytest.raises(Exception, match="different settings"):
            hs.HiddenStore(run, [1], 4)


def test_the_sweep_takes_the_cuts_hidden_states_from_its_own_pass(tiny, questions, tmp_path, monkeypatch):
    """No pass of its own: the states come from the encoding of the cuts, and equal what a pass
    over the trace gives (fp32, to rounding)."""
    from cotprobe.cuts import Sweep, parse_fractions, truncate
    from cotprobe.profiles import get_profile
    from cotprobe.scales import VERBAL_10
    from cotprobe.tracing import GenerationSettings, generate

    profile = get_profile("plain")
    with RunDir(tmp_path / "run") as run:
        traces = generate(Prober(tiny, profile, VERBAL_10, GenerationSettings(budget=24).force), questions, run, GenerationSettings(budget=24))
        store = hs.HiddenStore(run, [1, 2], hs.model_layers(tiny)[1])
        passes = []
        real = HFBackend.hidden_states
        monkeypatch.setattr(HFBackend, "hidden_states", lambda self, *a: passes.append(a) or real(self, *a))
        truncate(Prober(tiny, profile, VERBAL_10), traces, {q.id: q for q in questions}, run, Sweep(parse_fractions("0:1:0.25"), "token", hidden_store=store))
    assert passes == []  # the end of the thought is the 1.0 cut: every state came from the sweep
    records, array, _ = hs.load(tmp_path / "run")
    assert len(records) == 5 * len(traces)
    for trace in traces:
        prompt = tiny.encode(trace.prompt)
        mine = [(r.token_index, a) for r, a in zip(records, array) if r.question_id == trace.question_id]
        fresh = real(tiny, prompt + trace.cot_token_ids, [len(prompt) + t - 1 for t, _ in mine], [1, 2]).numpy()
        assert np.allclose(np.array([a for _, a in mine], dtype=np.float32), fresh, atol=1e-2)  # float16 storage
