"""Attention of many rows over one shared prefix, registered with transformers (see `hf_rows`).

`shared_prefix_attention` is the kernel; `SharedPrefix` what it reads besides the new tokens;
`shared_prefix_refusal` says from a model's configuration why its attention is not this one
(sliding windows, soft-capping, sinks, attention outside the registry).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface

SHARED_PREFIX = "cotprobe-shared-prefix"
# Attention arguments the shared-prefix attention reads or may ignore; any other argument a model
# passes with a value makes it refuse rather than silently compute something else.
HARMLESS_ARGUMENTS = {"dropout", "position_ids", "use_cache", "cache_position", "output_attentions", "is_causal"}
UNSUPPORTED_ARGUMENTS = {"sliding_window": "sliding-window attention", "softcap": "attention logit soft-capping",
                         "s_aux": "attention sinks", "sinks": "attention sinks"}


class SharedPrefixUnsupported(RuntimeError):
    """A model whose attention the shared-prefix path does not implement (the message says what)."""


class SharedPrefix:
    """What the shared-prefix attention reads besides the new tokens' queries/keys/values.

    prefixes[t][l] = (keys, values) of sequence t's prefix at layer l, batch size 1 (one sequence
    usually; the cut rows of several traces with `HFRows.across`); owners[r] = the sequence row r
    belongs to (rows of one sequence are contiguous, in sequence order); lengths[r] = how much of
    its prefix row r sees; width = the longest prefix (the prefix part of the attention mask);
    own[l] = (keys, values) of the tokens appended to the rows since (batch R, one slot per
    appended position, masked where a row appended nothing); active = the rows in the current
    forward pass (None: all); calls counts attention calls (a guard against layers that bypass
    the registry).
    """

    def __init__(self, prefixes: list[list[tuple[torch.Tensor, torch.Tensor]]], lengths: list[int],
                 owners: list[int] | None = None):
        self.prefixes = prefixes
        self.layers = prefixes[0]  # the first (usually only) sequence's
        self.n_layers = len(prefixes[0])
        self.width = max((p[0][0].shape[2] for p in prefixes if p), default=0)
        self.lengths = list(lengths)
        self.owners = list(owners) if owners is not None else [0] * len(lengths)
        self.rows = len(lengths)
        self.own: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * self.n_layers
        self.active: torch.Tensor | None = None
        self.calls = 0

    def groups(self) -> list[tuple[int, int, int]]:
        """(sequence, first, end): the active rows of each sequence, as a slice of the active rows."""
        rows = range(self.rows) if self.active is None else self.active.tolist()
        out: list[tuple[int, int, int]] = []
        for a, r in enumerate(rows):
            t = self.owners[r]
            if out and out[-1][0] == t:
                out[-1] = (t, out[-1][1], a + 1)
            else:
                out.append((t, a, a + 1))
        return out

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the active rows' new keys/values; return the active rows' own keys/values so far."""
        if self.active is not None:  # rows not in this pass get masked filler slots
            full_k = key.new_zeros((self.rows, *key.shape[1:]))
            full_v = value.new_zeros((self.rows, *value.shape[1:]))
            full_k[self.active], full_v[self.active] = key, value
        else:
            full_k, full_v = key, value
        if self.own[layer] is not None:
            old_k, old_v = self.own[layer]
            full_k, full_v = torch.cat([old_k, full_k], dim=2), torch.cat([old_v, full_v], dim=2)
        self.own[layer] = (full_k, full_v)
        if self.active is None:
            return full_k, full_v
        return full_k[self.active], full_v[self.active]

    def crop(self, n: int) -> None:
        """Forget the last n appended positions."""
        self.own = [None if kv is None else (kv[0][:, :, :-n], kv[1][:, :, :-n]) for kv in self.own]


def shared_prefix_attention(module, query, key, value, attention_mask, **kwargs):
    """Attention of many rows over one prefix held once, plus each row's own later tokens.

    query/key/value are the new tokens of the rows in this pass (batch A); attention_mask is an
    additive float (A, 1, Q, P + S) over [prefix | own tokens so far | new tokens]. The prefix is
    never copied per row: rows are folded into the query dimension for it, so a decoding step
    reads the prefix once however many rows share it. Passes of several tokens per row (closing
    a cut, a restating turn, scoring options) go row by row through the fused attention over
    only the part of the prefix the row sees (`_attention_by_row`).

    kwargs carries `shared_prefix` (the `SharedPrefix` of this batch) and transformers' own
    arguments: `scaling` (None: 1/sqrt(head dim)), harmless ones (`dropout`: inference only), others refused.
    """
    shared_prefix, scaling = kwargs.pop("shared_prefix"), kwargs.pop("scaling", None)
    for name, given in kwargs.items():
        if given is not None and name not in HARMLESS_ARGUMENTS:
            raise SharedPrefixUnsupported(UNSUPPORTED_ARGUMENTS.get(name, f"the attention argument {name!r}"))
    shared_prefix.calls += 1
    key, value = shared_prefix.append(module.layer_idx, key, value)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    if query.shape[2] > 1:
        return _attention_by_row(shared_prefix, module.layer_idx, query, key, value, attention_mask, scaling), None
    if len(shared_prefix.prefixes) == 1:
        prefix_k, prefix_v = shared_prefix.layers[module.layer_idx]
        return _folded(query, key, value, attention_mask, prefix_k, prefix_v, scaling), None
    width, outs = shared_prefix.width, []
    for t, a, b in shared_prefix.groups():  # the rows of each sequence over that sequence's prefix alone
        prefix_k, prefix_v = shared_prefix.prefixes[t][module.layer_idx]
        n = prefix_k.shape[2]
        mask = torch.cat([attention_mask[a:b, :, :, :n], attention_mask[a:b, :, :, width:]], dim=-1)
        outs.append(_folded(query[a:b], key[a:b], value[a:b], mask, prefix_k, prefix_v, scaling))
    return torch.cat(outs), None


def _folded(query, key, value, attention_mask, prefix_k, prefix_v, scaling) -> torch.Tensor:
    """One decoding step of rows over one prefix held once: rows are folded into the query
    dimension for it, so the step reads the prefix once however many rows share it."""
    rows, heads, q_len, dim = query.shape
    kv_heads, n_prefix = prefix_k.shape[1], prefix_k.shape[2]
    groups = heads // kv_heads
    q = query.reshape(rows, kv_heads, groups * q_len, dim)  # query head h uses key/value head h // groups
    folded = q.transpose(0, 1).reshape(kv_heads, rows * groups * q_len, dim)
    scores_prefix = torch.bmm(folded, prefix_k[0].transpose(1, 2))
    scores_prefix = scores_prefix.reshape(kv_heads, rows, groups * q_len, n_prefix).transpose(0, 1)
    scores = torch.cat([scores_prefix, q @ key.transpose(2, 3)], dim=-1).float()
    scores = scores.view(rows, kv_heads, groups, q_len, -1).mul_(scaling).add_(attention_mask[:, :, None])
    probs = torch.softmax(scores, dim=-1).to(query.dtype).view(rows, kv_heads, groups * q_len, -1)
    folded_probs = probs[..., :n_prefix].transpose(0, 1).reshape(kv_heads, rows * groups * q_len, n_prefix)
    v_dim = prefix_v.shape[-1]
    out = torch.bmm(folded_probs, prefix_v[0]).reshape(kv_heads, rows, groups * q_len, v_dim).transpose(0, 1)
    out = out + probs[..., n_prefix:] @ value
    return out.reshape(rows, heads, q_len, v_dim).transpose(1, 2).contiguous()


def _attention_by_row(shared_prefix: SharedPrefix, layer: int, query, key, value, attention_mask,
                      scaling) -> torch.Tensor:
    """Several new tokens per row: each row's queries over its own part of the prefix and its own
    tokens, through torch's fused attention. The folded product above would score every row
    against the whole prefix (about half of it masked for cuts spread over the thought) and hold
    the scores in float32; here nothing masked is computed and no score matrix is kept."""
    width = shared_prefix.width
    rows = range(shared_prefix.rows) if shared_prefix.active is None else shared_prefix.active.tolist()
    outs = []
    for a, r in enumerate(rows):
        prefix_k, prefix_v = shared_prefix.prefixes[shared_prefix.owners[r]][layer]
        n = shared_prefix.lengths[r]
        k = torch.cat([prefix_k[:, :, :n], key[a:a + 1]], dim=2)
        v = torch.cat([prefix_v[:, :, :n], value[a:a + 1]], dim=2)
        mask = torch.cat([attention_mask[a:a + 1, :, :, :n], attention_mask[a:a + 1, :, :, width:]], dim=-1)
        outs.append(torch.nn.functional.scaled_dot_product_attention(
            query[a:a + 1], k, v, attn_mask=mask.to(query.dtype), scale=scaling, enable_gqa=True))
    return torch.cat(outs).transpose(1, 2).contiguous()


AttentionInterface.register(SHARED_PREFIX, shared_prefix_attention)


def shared_prefix_refusal(model: Any) -> str | None:
    """Why `HFRows` cannot run this model (None when it can): it needs every layer to attend to all
    earlier positions through transformers' attention registry, with nothing but a scale."""
    config = model.config
    kind = getattr(config, "model_type", type(model).__name__)
    if not getattr(type(model), "_supports_attention_backend", False):
        return f"{kind} computes attention itself, bypassing transformers' attention registry"
    types = getattr(config, "layer_types", None)
    if types is not None and any(t != "full_attention" for t in types):
        other = sorted({t for t in types if t != "full_attention"})
        return f"{kind} has {', '.join(other)} layers"
    if types is None and getattr(config, "sliding_window", None) is not None \
            and getattr(config, "use_sliding_window", True) is not False:
        return f"{kind} uses sliding-window attention"
    if getattr(config, "attn_logit_softcapping", None) is not None:
        return f"{kind} soft-caps attention logits"
    if any(name.endswith("sinks") for name, _ in model.named_parameters()):
        return f"{kind} has attention sinks"
    return None
