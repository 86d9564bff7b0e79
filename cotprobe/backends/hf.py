"""The Hugging Face transformers backend: batched generation and cache-reusing sessions."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
from transformers import AttentionInterface

from . import TokenizerOps, Completion, check_fits, cut_at_stop


class HFBackend(TokenizerOps):
    """A causal LM and its tokenizer, run greedily.

    reuse_cache=False makes `fork` encode every prefix from scratch in its own session (the
    naive path, kept for comparison and for backends without cache access).
    """

    def __init__(self, model: Any, tokenizer: Any, name: str = "", reuse_cache: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "model")
        self.reuse_cache = reuse_cache
        self.device = next(model.parameters()).device
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048))
        eos = tokenizer.eos_token_id
        extra = model.generation_config.eos_token_id
        self.eos_ids = {i for i in ([eos] + (extra if isinstance(extra, list) else [extra])) if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        # transformers 5 renamed `past_key_values` to `cache`; accept both.
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[Completion]:
        """Greedy decoding of a batch of token-id prompts (left padded), each cut at its first stop."""
        for ids in prompts:
            check_fits(len(ids), max_new_tokens, self.context_length)
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        out = self.model.generate(
            input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
            max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.pad_id,
            stop_strings=[s for s in stop if s] or None, tokenizer=self.tokenizer,
            temperature=None, top_p=None, top_k=None,
        )
        return [self._finish(row[width:].tolist(), stop) for row in out]

    def _finish(self, new: list[int], stop: list[str]) -> Completion:
        # A row that met its stop string early is padded to the batch's length, and the pad token
        # may be the end-of-sequence token (SmolLM2): look for the stop string before the first
        # end-of-sequence token, so such a row counts as stopped, not as ended by eos.
        end = next((i for i, tok in enumerate(new) if tok in self.eos_ids), len(new))
        text, stopped = cut_at_stop(self.decode(new[:end]), stop)
        if stopped:
            return Completion(new[:end], text, "stop")
        return Completion(new[:end], text, "eos" if end < len(new) else "length")

    def session(self, ids: list[int]) -> "HFSession":
        return HFSession(self, ids)

    def fork(self, ids: list[int], lengths: list[int], hidden_layers: list[int] | None = None):
        """Rows for the prefixes ids[:n], n in lengths: one shared encoding of the longest prefix,
        then all rows decode as one batch (naive mode: every row re-encodes its own prefix).

        With hidden_layers, `rows.hidden` holds the hidden state of each prefix's last token at
        those layers (0 = embeddings), shape (rows, layers, hidden), from the encoding pass itself
        (naive mode: from one extra pass over the longest prefix)."""
        if not self.reuse_cache or not shares_prefixes(self.model):
            from . import SequentialRows

            rows = SequentialRows(self, ids, lengths)
            if hidden_layers:
                rows.hidden = self.hidden_states(ids[:max(lengths)], [n - 1 for n in lengths], hidden_layers)
            return rows
        return HFRows(self, ids, lengths, hidden_layers)

    @torch.inference_mode()
    def hidden_states(self, ids: list[int], positions: list[int], layers: list[int]) -> torch.Tensor:
        """Hidden states at `positions` of `ids` at `layers` (0 = embeddings): (positions, layers, hidden)."""
        check_fits(len(ids), 0, self.context_length, "sequence")
        out = self.model(input_ids=torch.tensor([ids], device=self.device), output_hidden_states=True)
        return pick_hidden(out.hidden_states, positions, layers)


class HFSession:
    """A token sequence with the model's key/value cache for as much of it as was run."""

    def __init__(self, backend: HFBackend, ids: list[int]):
        self.backend = backend
        self.ids = list(ids)
        self.cache: Any = None
        self.cached = 0  # tokens whose keys/values are in the cache
        self.forwarded_tokens = 0  # tokens run through the model (a cost counter)

    def extend(self, ids: list[int]) -> None:
        self.ids.extend(ids)

    def _rewind(self, n: int) -> None:
        del self.ids[n:]
        if self.cached > n:
            self._rewind_cache(n)

    @torch.inference_mode()
    def _logprobs_from(self, pos: int) -> torch.Tensor:
        """Next-token log-probs at positions pos .. len(ids)-1, running only uncached tokens."""
        check_fits(len(self.ids), 0, self.backend.context_length, "sequence")
        if self.cached > pos:
            self._rewind_cache(pos)
        start = self.cached
        new = torch.tensor([self.ids[start:]], device=self.backend.device)
        out = self.backend.model(input_ids=new, use_cache=True, **{self.backend.cache_arg: self.cache})
        self.cache, self.cached = out[self.backend.cache_arg], len(self.ids)
        self.forwarded_tokens += new.shape[1]
        return torch.log_softmax(out.logits[0, pos - start:].float(), dim=-1)

    def _rewind_cache(self, n: int) -> None:
        self.cache.crop(n - self.cached)  # a negative argument removes that many positions
        self.cached = n

    def sample(self, max_new_tokens: int, stop: list[str], temperature: float, seed: int) -> Completion:
        """Like greedy, with tokens drawn at `temperature` (seeded)."""
        return self.greedy(max_new_tokens, stop, pick=sampler(temperature, seed, self.backend.device))

    def rewind(self, n: int) -> None:
        """Take back the last n tokens."""
        if n > 0:
            self._rewind(len(self.ids) - n)

    @torch.inference_mode()
    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False, pick=None) -> Completion:
        """Greedy continuation until a stop string, an end-of-sequence token or the limit. With
        nonblank, neither ends it while its text is still blank. `pick` as in HFRows.greedy."""
        pick = pick or (lambda logprobs: logprobs.argmax(dim=-1))
        new: list[int] = []
        text = ""
        for _ in range(max_new_tokens):
            logprobs = self._logprobs_from(len(self.ids) - 1)[-1].clone()
            if nonblank and not text.strip():
                logprobs[list(self.backend.eos_ids)] = -torch.inf
            token = int(pick(logprobs[None])[0])
            if token in self.backend.eos_ids:
                return Completion(new, text, "eos")
            new.append(token)
            self.ids.append(token)
            text = self.backend.decode(new)
            cut, stopped = cut_at_stop(text, stop, nonblank)
            if stopped:
                return Completion(new, cut, "stop")
        return Completion(new, text, "length")

    @torch.inference_mode()
    def score(self, options: list[list[int]]) -> list[float]:
        """Total log-probability of each option as a continuation of the current sequence.

        The first tokens are scored from the sequence's own next-token distribution; the rest
        of all options run as one right-padded batch over a copy of the cache.
        """
        first = self._logprobs_from(len(self.ids) - 1)[-1]
        totals = [float(first[o[0]]) for o in options]
        width = max(len(o) for o in options) - 1
        if width == 0:
            return totals
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(len(options))
        rows = torch.tensor([o[:-1] + [o[-1]] * (width - len(o) + 1) for o in options],
                            device=self.backend.device)
        out = self.backend.model(input_ids=rows, use_cache=True, **{self.backend.cache_arg: cache})
        self.forwarded_tokens += rows.numel()
        logprobs = torch.log_softmax(out.logits.float(), dim=-1)
        for k, option in enumerate(options):
            totals[k] += float(sum(logprobs[k, i - 1, tok] for i, tok in enumerate(option) if i > 0))
        return totals


def sampler(temperature: float, seed: int, device) -> Any:
    """pick(logprobs) drawing one token per row from softmax(logprobs / temperature), seeded."""
    if not temperature > 0:
        raise ValueError(f"--temperature must be > 0 to sample, got {temperature}")
    generator = torch.Generator(device=device).manual_seed(seed)

    def pick(logprobs: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logprobs.float() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return pick


SHARED_PREFIX = "cotprobe-shared-prefix"


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                            shared_prefix=None, **kwargs):
    """Attention of many rows over one prefix held once, plus each row's own later tokens.

    shared_prefix[layer] = (keys, values) of the prefix with batch size 1; key/value are the rows'
    own tokens (batch R); attention_mask is a boolean (R, 1, Q, P + S) over [prefix | own tokens].
    The prefix is never copied per row: rows are folded into the query dimension for it, so a
    decoding step reads the prefix once however many rows share it.
    """
    prefix_k, prefix_v = shared_prefix[module.layer_idx]
    rows, heads, q_len, dim = query.shape
    kv_heads, n_prefix = prefix_k.shape[1], prefix_k.shape[2]
    groups = heads // kv_heads
    scaling = dim ** -0.5 if scaling is None else scaling
    q = query.reshape(rows, kv_heads, groups * q_len, dim)  # query head h uses key/value head h // groups
    folded = q.transpose(0, 1).reshape(kv_heads, rows * groups * q_len, dim)
    scores_prefix = torch.bmm(folded, prefix_k[0].transpose(1, 2))
    scores_prefix = scores_prefix.reshape(kv_heads, rows, groups * q_len, n_prefix).transpose(0, 1)
    scores = torch.cat([scores_prefix, q @ key.transpose(2, 3)], dim=-1).float() * scaling
    mask = attention_mask[:, :, None].expand(rows, kv_heads, groups, q_len, -1)
    mask = mask.reshape(rows, kv_heads, groups * q_len, -1)
    probs = torch.softmax(scores.masked_fill(~mask, -torch.inf), dim=-1).to(query.dtype)
    folded_probs = probs[..., :n_prefix].transpose(0, 1).reshape(kv_heads, rows * groups * q_len, n_prefix)
    v_dim = prefix_v.shape[-1]
    out = torch.bmm(folded_probs, prefix_v[0]).reshape(kv_heads, rows, groups * q_len, v_dim).transpose(0, 1)
    out = out + probs[..., n_prefix:] @ value
    return out.reshape(rows, heads, q_len, v_dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(SHARED_PREFIX, shared_prefix_attention)


def pick_hidden(hidden_states, positions: list[int], layers: list[int]) -> torch.Tensor:
    """(positions, layers, hidden) float32 from a model's per-layer hidden states (batch 1)."""
    index = torch.tensor(positions, device=hidden_states[0].device)
    return torch.stack([hidden_states[layer][0, index] for layer in layers], dim=1).float().cpu()


def shares_prefixes(model: Any) -> bool:
    """Whether `HFRows` can run this model: every layer attends to all earlier positions (no
    sliding window, no recurrent layers)."""
    config = model.config
    types = getattr(config, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return getattr(config, "sliding_window", None) is None or getattr(config, "use_sliding_window", True) is False


class HFRows:
    """Several prefixes of one sequence, decoded together over one shared key/value cache.

    The longest prefix is encoded once and its keys/values are kept once (batch 1); each row
    attends to the part of it up to its own cut and to the tokens appended to it since, which
    get the position ids they would have right after that cut. Every row so computes what a
    fresh run of its own prefix would (up to float rounding), the prefix is encoded once, and
    the rows decode as one batch whose cost grows with the prefix read once, not once per row.
    """

    def __init__(self, backend: HFBackend, ids: list[int], lengths: list[int],
                 hidden_layers: list[int] | None = None):
        self.backend = backend
        self.ids = [list(ids[:n]) for n in lengths]
        base = max(lengths)
        check_fits(base, 0, backend.context_length, "sequence")
        device = backend.device
        with torch.inference_mode():
            out = backend.model(input_ids=torch.tensor([ids[:base]], device=device), use_cache=True,
                                output_hidden_states=bool(hidden_layers))
        # hidden state of each prefix's last token, from this same pass (see HFBackend.fork)
        self.hidden = pick_hidden(out.hidden_states, [n - 1 for n in lengths], hidden_layers) if hidden_layers else None
        prefix = out[backend.cache_arg]
        self.prefix = [(layer.keys, layer.values) for layer in prefix.layers]
        self.cache: Any = None  # the rows' own tokens (batch R), created by the first forward
        self.forwarded_tokens = base
        index = torch.tensor(lengths, device=device)
        self.prefix_mask = torch.arange(base, device=device)[None, :] < index[:, None]
        self.own_mask = torch.zeros((len(lengths), 0), dtype=torch.bool, device=device)
        self.position = index.clone()  # next position id of each row
        self.last = torch.log_softmax(out.logits[0, index - 1].float(), dim=-1)  # next-token log-probs

    @torch.inference_mode()
    def _forward(self, rows: list[list[int]], offsets: list[int] | None = None,
                 visible: torch.Tensor | None = None) -> torch.Tensor:
        """Append each row's tokens (rows may differ in length); return log-probs per position.

        By default the new tokens are causal within each row, at consecutive positions; score()
        passes its own `offsets` (position of each token after the row's last) and `visible`
        (which new tokens each new token sees) to run several options side by side."""
        width = max(len(r) for r in rows)
        device = self.backend.device
        pad = self.backend.pad_id
        inputs = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        real = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in rows], device=device)
        steps = torch.tensor(offsets if offsets is not None else range(width), device=device)
        positions = self.position[:, None] + steps[None, :]
        check_fits(int(positions.max()) + 1, 0, self.backend.context_length, "sequence")
        if visible is None:
            visible = torch.ones((width, width), dtype=torch.bool, device=device).tril()
        n = len(rows)
        mask = torch.cat([self.prefix_mask[:, None, :].expand(n, width, -1),
                          self.own_mask[:, None, :].expand(n, width, -1),
                          visible[None] & real[:, None, :]], dim=2)
        model = self.backend.model
        implementation = model.config._attn_implementation
        model.config._attn_implementation = SHARED_PREFIX
        try:
            out = model(input_ids=inputs, attention_mask=mask[:, None], position_ids=positions, use_cache=True,
                        shared_prefix=self.prefix, **{self.backend.cache_arg: self.cache})
        finally:
            model.config._attn_implementation = implementation
        self.cache = out[self.backend.cache_arg]
        self.own_mask = torch.cat([self.own_mask, real], dim=1)
        self.forwarded_tokens += int(real.sum())
        return torch.log_softmax(out.logits.float(), dim=-1)

    def _advance(self, rows: list[list[int]]) -> None:
        logprobs = self._forward(rows)
        lengths = torch.tensor([len(r) for r in rows], device=self.backend.device)
        self.position = self.position + lengths
        moved = lengths > 0
        self.last[moved] = logprobs[moved, lengths[moved] - 1]

    def extend(self, rows: list[list[int]]) -> None:
        for ids, new in zip(self.ids, rows, strict=True):
            ids.extend(new)
        if any(rows):
            self._advance(rows)

    def sample(self, max_new_tokens: int, stop: list[str], temperature: float, seed: int) -> list[Completion]:
        """Like greedy, but every row draws its tokens at `temperature` (seeded)."""
        return self.greedy(max_new_tokens, stop, pick=sampler(temperature, seed, self.backend.device))

    @torch.inference_mode()
    def rewind(self, counts: list[int]) -> None:
        """Take back the last counts[k] tokens of each row: they stay in the cache but no later
        token sees them, and the row's next tokens take their positions. A rewound row must be
        extended before it is decoded or scored."""
        for k, n in enumerate(counts):
            if n <= 0:
                continue
            own = torch.nonzero(self.own_mask[k]).flatten()
            self.own_mask[k, own[-n:]] = False
            self.position[k] -= n
            del self.ids[k][-n:]
            self.last[k] = torch.nan

    @torch.inference_mode()
    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False, pick=None) -> list[Completion]:
        """Greedy continuation of every row until its stop string, end of sequence or the limit.
        With nonblank, neither ends a row while its text is still blank. `pick(logprobs)` may
        choose the tokens instead of the argmax (see `sample`)."""
        pick = pick or (lambda logprobs: logprobs.argmax(dim=-1))
        new: list[list[int]] = [[] for _ in self.ids]
        texts = [""] * len(self.ids)
        finish: list[str | None] = [None] * len(self.ids)
        for _ in range(max_new_tokens):
            logprobs = self.last.clone()
            if nonblank:
                blank = [k for k, text in enumerate(texts) if not text.strip()]
                logprobs[torch.tensor(blank, dtype=torch.long)[:, None], list(self.backend.eos_ids)] = -torch.inf
            step: list[list[int]] = []
            for k, token in enumerate(pick(logprobs).tolist()):
                if finish[k] is None and token in self.backend.eos_ids:
                    finish[k] = "eos"
                if finish[k] is not None:
                    step.append([])
                    continue
                new[k].append(token)
                step.append([token])
                texts[k] = self.backend.decode(new[k])
                if cut_at_stop(texts[k], stop, nonblank)[1]:
                    finish[k] = "stop"
            self.extend(step)
            if all(f is not None for f in finish):
                break
        return [Completion(tokens, cut_at_stop(text, stop, nonblank)[0], finish[k] or "length")
                for k, (tokens, text) in enumerate(zip(new, texts))]

    def score(self, options: list[list[int]]) -> list[list[float]]:
        """Total log-probability of each option after each row: totals[row][option].

        All options run in one forward pass, side by side after each row: every option's tokens
        see the row and the option's own earlier tokens, at the positions they would have."""
        totals = [[float(self.last[k, o[0]]) for o in options] for k in range(len(self.ids))]
        spans, offsets = [], []
        for option in options:
            spans.append((len(offsets), len(option) - 1))
            offsets += range(len(option) - 1)
        if not offsets:
            return totals
        width = len(offsets)
        visible = torch.zeros((width, width), dtype=torch.bool, device=self.backend.device)
        for begin, n in spans:
            visible[begin:begin + n, begin:begin + n] = torch.ones((n, n), dtype=torch.bool).tril()
        tokens = [tok for option in options for tok in option[:-1]]
        logprobs = self._forward([tokens] * len(self.ids), offsets, visible)
        for j, (option, (begin, n)) in enumerate(zip(options, spans)):
            for k in range(len(self.ids)):
                totals[k][j] += float(sum(logprobs[k, begin + i, option[i + 1]] for i in range(n)))
        self.cache.crop(-width)  # the options' positions go again
        self.own_mask = self.own_mask[:, :-width]
        return totals
