"""Model loading options: --dtype, --device-map, --attn-implementation."""

import subprocess
import sys

import pytest
import torch

from cotprobe.backends import load_backend
from cotprobe.models import Loading, ModelError


def test_loading_defaults_follow_the_hardware():
    dtype, target = Loading().placement()
    assert (dtype, target) == ((torch.bfloat16, "cuda") if torch.cuda.is_available() else (torch.float32, "cpu"))
    assert Loading("fp16", "cpu").placement() == (torch.float16, "cpu")
    assert Loading("bf16").recorded() == {"dtype": "bf16"} and Loading().recorded() == {}


def test_bad_loading_options_name_the_option():
    with pytest.raises(ValueError, match="--dtype"):
        Loading("float8")
    with pytest.raises(ValueError, match="--device-map"):
        Loading(device_map="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA device"):
            Loading(device_map="cuda:0").placement()


def test_loading_options_reach_the_model():
    backend = load_backend("tiny-random", loading=Loading("bf16", "cpu", "eager"))
    assert next(backend.model.parameters()).dtype == torch.bfloat16
    assert backend.model.config._attn_implementation == "eager"
    assert backend.device.type == "cpu"


def test_generate_help_documents_loading_and_bad_values_fail_in_one_line(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "cotprobe.generate", "--help"],
                               check=False, capture_output=True, text=True, timeout=120).stdout
    for option in ("--dtype", "--device-map", "--attn-implementation"):
        assert option in help_text
    proc = subprocess.run([sys.executable, "-m", "cotprobe.generate", "--model", "tiny-random", "-n", "1",
                           "--device-map", "nowhere", "--out", str(tmp_path / "run")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --device-map 'nowhere': use auto or a device such as cuda, cuda:1, cpu"]
    assert not (tmp_path / "run").exists()
