"""What the servers offer, found with a few tiny requests at start-up (and top-k on first use).

`served_model`: the model entry every server lists; `find_context_length`: from the servers, else
the model's config or tokenizer; `probe_prompt_mode`: token-id prompts or text only;
`probe_id_fields`: how to get the generated token ids back; `probe_topk`: how many top
log-probabilities the servers hand out.
Refused probes are not cached (another server may sit behind the same name later).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .base import ServerError
from .client import CompletionsClient
from .dialect import Dialect

TOPK_TRIES = (100, 20, 10, 5, 1)  # alternatives asked for, most first (vLLM's default --max-logprobs is 20)
# Ways servers return generated token ids, tried in this order at start-up.
ID_FIELDS = ({"return_token_ids": True}, {"return_tokens": True}, {"logprobs": 0, "return_tokens_as_token_ids": True})
PROBE_TEXT = "The capital of France is"


def served_model(client: CompletionsClient, model: str | None) -> dict[str, Any]:
    """Every server must serve `model` (or exactly one model); its /v1/models entry, with
    "_server", the index of the server it came from."""
    entry = None
    for index, srv in enumerate(client.pool.servers):
        try:
            info = client.request("GET", "/v1/models", retries=1, server=index).get("data") or []
        except ServerError as exc:
            if len(client.pool.servers) == 1 or exc.status is not None:
                raise ServerError(f"cannot use the server at {srv.url}: {exc}") from None
            print(f"cotprobe: {srv.url} does not answer now; it gets requests once it does", file=sys.stderr)
            continue
        found = _entry_for(srv.url, info, model)
        model = model or found["id"]
        if entry is not None and found["id"] != entry["id"]:
            raise ServerError(f"{srv.url} serves {found['id']!r}, another server {entry['id']!r}: one model per run")
        entry = entry or {**found, "_server": index}
    if entry is None:
        raise ServerError(f"none of the servers answers ({client.where})")
    return entry


def _entry_for(url: str, info: list[Any], model: str | None) -> dict[str, Any]:
    """The entry of `model` in one server's model list (None: its first; a server with one model
    under another name: that one, said on stderr)."""
    ids = [m.get("id") for m in info if isinstance(m, dict)]
    want = model
    if want is None:
        if not ids:
            raise ServerError(f"{url}/v1/models lists no model; pass the model id")
        want = ids[0]
    elif want not in ids:
        if len(ids) != 1:
            raise ServerError(f"{url} does not serve {want!r} (it serves: {', '.join(map(str, ids))})")
        print(f"cotprobe: {url} serves one model, {ids[0]!r}; using it for {want!r}", file=sys.stderr)
        want = ids[0]
    return next(m for m in info if isinstance(m, dict) and m.get("id") == want)


def find_context_length(client: CompletionsClient, entry: dict[str, Any], given: int | None,
                   tokenizer: Any) -> tuple[int, str]:
    """The model's context length and where it came from: the argument, the model list, llama.cpp's
    /props, the model's config, the tokenizer, or the training context the server reports."""
    if given:
        return int(given), "argument"
    meta = entry.get("meta") or {}
    for where, key in [(entry, "max_model_len"), (entry, "context_length"), (entry, "context_window"),
                       (entry, "n_ctx"), (meta, "n_ctx")]:
        if isinstance(where.get(key), int) and where[key] > 0:
            return where[key], f"server ({key})"
    found = _props_context(client, entry["_server"]) or _local_context(tokenizer)
    if found:
        return found
    if isinstance(meta.get("n_ctx_train"), int):
        return meta["n_ctx_train"], "server (n_ctx_train)"
    raise ValueError(f"{client.where}: the context length of {client.model!r} is unknown; pass context_length")


def _props_context(client: CompletionsClient, server: int) -> tuple[int, str] | None:
    """llama.cpp's llama-server tells its per-slot context on /props."""
    try:
        props = client.request("GET", "/props", retries=0, server=server)
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
    except (ServerError, ValueError, AttributeError):
        return None
    return (n_ctx, "server (/props n_ctx)") if isinstance(n_ctx, int) and n_ctx > 0 else None


def _local_context(tokenizer: Any) -> tuple[int, str] | None:
    """From the config next to the tokenizer, else the tokenizer's own limit."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(tokenizer.name_or_path)
    except Exception:  # noqa: BLE001  (no config next to the tokenizer, in any of many ways: fall through)
        config = None
    config_len = getattr(config, "max_position_embeddings", None)
    if config_len:
        return int(config_len), "config (max_position_embeddings)"
    tok_len = getattr(tokenizer, "model_max_length", None)
    if tok_len and tok_len < 10**7:
        return int(tok_len), "tokenizer (model_max_length)"
    return None


def probe_prompt_mode(client: CompletionsClient, encode: Callable[[str], list[int]]) -> str:
    """"tokens" if the servers take token-id prompts, else "text"."""
    ok = client.complete({"prompt": encode("Hello"), "max_tokens": 1, "temperature": 0}, probing=True)
    return "tokens" if ok is not None else "text"


def probe_id_fields(client: CompletionsClient, dialect: Dialect, encode: Callable[[str], list[int]],
              spells: Callable[[list[int], str], bool]) -> dict[str, Any] | None:
    """The request fields that make the servers return generated token ids (None: none do).
    spells(ids, text): whether the returned ids decode to the returned text."""
    prompt = dialect.prompt_body(encode(PROBE_TEXT))
    for fields in ID_FIELDS:
        got = client.complete({**prompt, "max_tokens": 2, "temperature": 0, **fields}, probing=True)
        if got is not None and got.get("ids") and spells(got["ids"], got["text"]):
            return fields
    return None


def probe_topk(client: CompletionsClient, dialect: Dialect, encode: Callable[[str], list[int]],
         most: int) -> tuple[int, bool] | None:
    """(k, n_probs): the most top log-probabilities (up to `most`) the servers hand out, and
    whether they want llama.cpp's "n_probs" for it; None when they give none."""
    ids = encode(PROBE_TEXT)
    for k in sorted({most, *(k for k in TOPK_TRIES if k < most)}, reverse=True):
        for extra in ({}, {"n_probs": k}):  # llama.cpp's llama-server spells it n_probs
            got = client.complete({**dialect.prompt_body(ids), "max_tokens": 1, "temperature": 0, "logprobs": k,
                                   **extra}, probing=True)
            if got is not None and got.get("top") and got["top"][0]:
                return k, bool(extra)
    return None
