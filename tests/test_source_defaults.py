"""ablate and tag measure confidence as truncate does by default: the label the model wrote (sampled),
the paper's measure."""

import json


def test_tag_relates_behaviours_to_the_sampled_confidence_by_default(scripted_traces):
    from cotprobe.tag import main

    _, path, _, _ = scripted_traces
    assert main([str(path)]) == 0
    section = json.loads((path / "metrics.json").read_text())["behaviours"]
    assert section["confidence_change"]["source"] == "sampled"


def test_ablate_measures_the_sampled_confidence_by_default(tmp_path, capsys):
    from cotprobe.ablate import main
    from cotprobe.cli import run_main
    from cotprobe.generate import main as generate_main

    out = tmp_path / "run"
    assert generate_main(["--model", "tiny-random", "-n", "2", "--budget", "16", "--out", str(out)]) == 0
    assert run_main(main, [str(out), "--conditions", "full,none"]) == 0
    assert json.loads((out / "metrics.json").read_text())["ablate"]["source"] == "sampled"
    assert run_main(main, [str(out), "--conditions", "full,none", "--source", "expected"]) == 0
    assert json.loads((out / "metrics.json").read_text())["ablate"]["source"] == "expected"
