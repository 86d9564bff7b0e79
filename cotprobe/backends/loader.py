"""`load_backend`: a backend for a model name and a backend kind ("hf" or "openai")."""

from __future__ import annotations

from .base import TINY_MODEL
from .protocols import Backend


def load_backend(model: str, kind: str = "hf", cache_root: str | None = None, reuse_cache: bool = True,
                 base_url: str | list[str] | None = None, loading=None, **server_options) -> Backend:
    """A backend for a model name (see `cotprobe.models.resolve`; also "tiny-random").

    loading: a `cotprobe.models.Loading` (dtype, device map, attention kernel) for kind "hf".

    kind "openai": the model runs on an OpenAI-compatible server at `base_url`; only its tokenizer
    is loaded here (embedded model: from the converted folder; else the folder or hub id).
    Its requests are cached under <cache>/requests; `server_options` (timeout, concurrency,
    retries: see `OpenAIBackend`) go to it, None meaning its default.
    """
    if kind not in ("hf", "openai"):
        raise ValueError(f"unknown backend {kind!r}: use 'hf' or 'openai'")
    if kind == "openai":
        return _openai_backend(model, cache_root, base_url, server_options)
    from .. import models
    from .hf import HFBackend

    if model == TINY_MODEL:
        net, tokenizer = _tiny_parts(loading or models.Loading())
    else:
        net, tokenizer = models.load(model, root=cache_root, loading=loading)
    return HFBackend(net, tokenizer, name=model, reuse_cache=reuse_cache)


def _openai_backend(model: str, cache_root: str | None, base_url, server_options: dict) -> Backend:
    from .. import models
    from .openai import OpenAIBackend

    if not base_url:
        raise ValueError("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
    if model == TINY_MODEL:
        raise ValueError(f"{TINY_MODEL} runs in-process only; use --backend hf")
    given = {k: v for k, v in server_options.items() if v is not None}
    return OpenAIBackend(base_url, model, models.resolve(model, cache_root), name=model,
                         cache_dir=models.cache_dir(cache_root) / "requests", **given)


def _tiny_parts(loading):
    """The tiny random model (on the loading's device and dtype) and its tokenizer."""
    from .tiny import tiny_model, tiny_tokenizer

    dtype, target = loading.placement()
    tokenizer = tiny_tokenizer()
    net = tiny_model(tokenizer, attn_implementation=loading.attn_implementation)
    if target == "auto":
        import torch

        target = "cuda" if torch.cuda.is_available() else "cpu"
    return net.to(device=target, dtype=dtype), tokenizer
