"""The README's Python API lines run as written (on the in-process tiny model, in a temporary folder)."""

import os
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_python_api_block_runs(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S).group(1)
    rng = np.random.default_rng(0)
    names = {"conf": rng.uniform(size=40), "correct": rng.integers(0, 2, size=40),
             "question_ids": np.repeat(np.arange(10), 4)}
    monkeypatch.chdir(tmp_path)
    os.makedirs("runs/default")  # RunDir("runs/default").probes() reads an empty run
    exec(compile(block, str(README), "exec"), names)
    probes = names["probes"]
    assert {p.fraction_requested for p in probes} == {0, 0.5, 1} and len(probes) == 3 * 2
    assert names["ex"].prober.grader.name == "rules"
