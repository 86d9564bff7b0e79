"""The console scripts of setup.cfg run each stage through the same runner as `python -m`: a
user error is one `error:` line on stderr and exit status 2, not a traceback."""

import configparser
import importlib
import sys
from pathlib import Path

import pytest

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def console_scripts() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG, encoding="utf-8")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(line.replace(" ", "").split("=") for line in lines)


# one bad command line per script: a run directory, question file or input file that is not there
MISSING = {"cotprobe-generate": ["--dataset", "{missing}.jsonl", "--out", "{tmp}/run"],
           "cotprobe-truncate": ["--dataset", "{missing}.jsonl", "--out", "{tmp}/run"],
           "cotprobe-ingest": ["{missing}.jsonl", "--out", "{tmp}/run"]}


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_console_script_reports_a_user_error_in_one_line(script, tmp_path, monkeypatch, capsys):
    module, function = console_scripts()[script].split(":")
    entry = getattr(importlib.import_module(module), function)
    args = [a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in MISSING.get(script, ["{missing}"])]
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as stopped:
        entry()
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and "missing" in err[0], err


def test_every_stage_has_a_console_script():
    modules = {target.split(":")[0] for target in console_scripts().values()}
    assert modules == {f"cotprobe.{m}" for m in ("generate", "truncate", "metrics.__main__", "tag", "ablate",
                                                  "report", "latent", "early_exit", "ingest")}
