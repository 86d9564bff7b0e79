"""The wheel carries every data file the package reads: build it, install it non-editable into a
target folder, and load the bundled sets, the lexicon, the prompts and the exemplars from another
working directory, with the source checkout off the path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.relative_to(ROOT / "cotprobe" / "_data").as_posix() for p in (ROOT / "cotprobe" / "_data").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts)
READ_BY_THE_PACKAGE = {"trivia.jsonl", "mc.jsonl", "behaviours.json", "behaviour_colours.json", "judge_prompt.json",
                       "rewrite_prompts.json", "grader_prompt.json", "prompt_templates.json", "report/fragments.html",
                       "slow_think_exemplars.json", "report/page.html", "report/style.css", "report/script.js"}

PROBE = r"""
import json, sys
import cotprobe
from cotprobe import data, resources, tags
names = sys.argv[1:]
print(json.dumps({
    "package": cotprobe.__file__,
    "trivia": len(data.load_dataset("trivia", n=None)),
    "mc": len(data.load_dataset("mc", n=None)),
    "tagged": [hit.behaviour for hit in tags.tag_step("Wait, that's not right.", tags.load_lexicon())],
    "json": {n: bool(json.loads(resources.data_path(n).read_text())) for n in names if n.endswith(".json")},
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # built from a copy, so that setuptools' build/ folder neither lands in the checkout nor feeds
    # stale files from an earlier build into this wheel
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "cotprobe", source / "cotprobe", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(source)], check=True, capture_output=True, text=True)
    (path,) = out.glob("cotprobe-*.whl")
    return path


def test_wheel_lists_every_shipped_data_file(wheel):
    assert READ_BY_THE_PACKAGE <= set(SHIPPED)
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in SHIPPED if f"cotprobe/_data/{n}" not in names]
    assert not missing, missing


def test_non_editable_install_loads_its_data_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", PROBE, *SHIPPED], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert Path(got["package"]).resolve().is_relative_to(target.resolve())  # not the source checkout
    assert got["trivia"] == 352 and got["mc"] == 171
    assert "backtracking" in got["tagged"]
    assert got["json"] == {n: True for n in SHIPPED if n.endswith(".json")}
