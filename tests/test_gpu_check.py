"""benchmarks/gpu_check.py --smoke: the GPU check's code paths on tiny shapes, on the CPU."""

import importlib.util
import json
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_smoke_runs_every_part(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "figures.json"
    assert gpu_check.main(["--smoke", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "shared-prefix refusal: None" in printed
    assert [s["cot_tokens"] for s in report["sweep"]] == [48, 96]
    for part in report["sweep"]:
        assert part["cuts"] >= 5 and part["shared_s"] > 0 and part["naive_s"] > 0
        assert part["max_logprob_gap"] <= 1e-5  # float32: shared rows match fresh runs
    assert [g["batch"] for g in report["generation"]] == [1, 4, 16]
    assert all(math.isfinite(g["ratio"]) and g["ratio"] > 0 for g in report["generation"])
    cross = report["cross_trace"]  # #28: the cut rows of several traces as one batch
    assert (cross["cot_tokens"], cross["traces"], cross["traces_per_batch"]) == (48, 3, 3)
    assert cross["one_at_a_time_traces_per_s"] > 0 and cross["batched_traces_per_s"] > 0
    assert "cross-trace sweep 48 CoT tokens, 3 traces" in printed
