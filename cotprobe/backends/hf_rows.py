"""Rows of the Hugging Face backend: several prefixes of one sequence over one shared encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from .base import Completion, check_fits, cut_at_stop
from .hf_attention import SHARED_PREFIX, SharedPrefix, SharedPrefixUnsupported


def sampler(temperature: float, seed: int, device) -> Any:
    """pick(logprobs) drawing one token per row from softmax(logprobs / temperature), seeded."""
    if not temperature > 0:
        raise ValueError(f"--temperature must be > 0 to sample, got {temperature}")
    generator = torch.Generator(device=device).manual_seed(seed)

    def pick(logprobs: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logprobs.float() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return pick


def pick_hidden(hidden_states, positions: list[int], layers: list[int]) -> torch.Tensor:
    """(positions, layers, hidden) float32 from a model's per-layer hidden states (batch 1)."""
    index = torch.tensor(positions, device=hidden_states[0].device)
    return torch.stack([hidden_states[layer][0, index] for layer in layers], dim=1).float().cpu()


def _encode(backend: Any, ids: list[int], lengths: list[int], hidden_layers: list[int] | None = None,
            hidden_positions: list[int] | None = None) -> tuple[list, torch.Tensor, Any, int]:
    """(per-layer (keys, values) of ids up to its longest prefix, the next-token log-probs after
    each prefix ids[:n], the hidden states asked for, tokens run through the model): one pass.

    Hidden states: at each row's last token, or at the positions asked (encoded up to them). The
    part of the sequence the backend remembers (`HFBackend.remember_prefix`) is not encoded
    again; hidden states are only taken after it."""
    positions = hidden_positions if hidden_positions is not None else [n - 1 for n in lengths]
    base = max(lengths + ([max(positions) + 1] if hidden_layers else []))
    check_fits(base, 0, backend.context_length, "sequence")
    device = backend.device
    index = torch.tensor(lengths, device=device)
    known = backend.known_prefix(ids, min(lengths + (positions if hidden_layers else [])))
    start = len(known.ids) if known else 0
    last = known.last.expand(len(lengths), -1).clone() if known else None
    layers = known.layers if known else []
    hidden = None
    if base > start:
        after = index - 1 - start  # each row's last position among the encoded tokens (< 0: remembered)
        keep = backend.logits_args(after.clamp(min=0))  # logits only where they are read
        cache = {backend.cache_arg: known.cache(backend.model.config)} if known else {}
        with torch.inference_mode():
            out = backend.model(input_ids=torch.tensor([ids[start:base]], device=device), use_cache=True,
                                output_hidden_states=bool(hidden_layers), **cache, **keep)
        if hidden_layers:  # from this same pass (see HFBackend.fork)
            hidden = pick_hidden(out.hidden_states, [p - start for p in positions], hidden_layers)
        layers = [(layer.keys, layer.values) for layer in out[backend.cache_arg].layers]
        logits = out.logits[0] if keep else out.logits[0, after.clamp(min=0)]
        encoded = torch.log_softmax(logits.float(), dim=-1)
        last = encoded if last is None else torch.where((after >= 0)[:, None], encoded, last)
    return layers, last, hidden, base - start


@dataclass(frozen=True)
class PrefixMemory:
    """The keys/values of a token prefix kept by the backend, and the log-probs after it."""

    ids: tuple[int, ...]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), batch 1
    last: torch.Tensor  # next-token log-probs after the prefix

    def cache(self, config: Any) -> DynamicCache:
        """A fresh model cache holding the prefix (the model appends to it; the memory stays)."""
        cache = DynamicCache(config=config)
        for i, (keys, values) in enumerate(self.layers):
            cache.update(keys, values, i)
        return cache


class HFRows:
    """Several prefixes of one sequence (or of several: `across`), decoded together over one
    shared key/value cache per sequence.

    The longest prefix is encoded once and its keys/values are kept once (batch 1); each row
    attends to the part of it up to its own cut and to the tokens appended to it since, which
    get the position ids they would have right after that cut. Every row so computes what a
    fresh run of its own prefix would (up to float rounding), the prefix is encoded once, and
    the rows decode as one batch whose cost grows with the prefix read once, not once per row.
    `backend` is the `hf.HFBackend` whose model runs them.
    """

    def __init__(self, backend: Any, ids: list[int], lengths: list[int],
                 hidden_layers: list[int] | None = None, hidden_positions: list[int] | None = None):
        self.backend = backend
        layers, last, self.hidden, forwarded = _encode(backend, ids, lengths, hidden_layers, hidden_positions)
        self._setup([layers], [list(ids[:n]) for n in lengths], lengths, [0] * len(lengths), last)
        self.forwarded_tokens = forwarded

    @classmethod
    def across(cls, backend: Any, sequences: list[tuple[list[int], list[int]]]) -> HFRows:
        """Rows of several sequences at once (the cut rows of several traces): for each (ids,
        lengths), rows holding ids[:n] for n in lengths, in that order. Each sequence's longest
        prefix is encoded once (one pass per sequence, as `HFRows` does), and every row attends
        only to its own sequence's prefix up to its cut; all rows then decode as one batch."""
        rows = cls.__new__(cls)
        rows.backend, rows.hidden = backend, None
        prefixes, ids, lengths, owners, lasts, forwarded = [], [], [], [], [], 0
        for t, (seq, cuts) in enumerate(sequences):
            layers, last, _, n = _encode(backend, seq, cuts)
            prefixes.append(layers)
            ids += [list(seq[:c]) for c in cuts]
            lengths += list(cuts)
            owners += [t] * len(cuts)
            lasts.append(last)
            forwarded += n
        rows._setup(prefixes, ids, lengths, owners, torch.cat(lasts))
        rows.forwarded_tokens = forwarded
        return rows

    def _setup(self, prefixes: list, ids: list[list[int]], lengths: list[int], owners: list[int],
               last: torch.Tensor) -> None:
        device = self.backend.device
        self.ids = ids
        index = torch.tensor(lengths, device=device)
        self.prefix = SharedPrefix(prefixes, lengths, owners)
        self.prefix_mask = torch.arange(self.prefix.width, device=device)[None, :] < index[:, None]
        self.own_mask = torch.zeros((len(lengths), 0), dtype=torch.bool, device=device)
        self.position = index.clone()  # next position id of each row
        self.last = last  # next-token log-probs of each row

    @torch.inference_mode()
    def _forward(self, rows: list[list[int]], offsets: list[int] | None = None,
                 visible: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """Append each row's tokens (rows may differ in length; rows with none sit the pass out);
        return the log-probs at every new position of every row (last_only: at each row's last).

        By default the new tokens are causal within each row, at consecutive positions; score()
        passes its own `offsets` (position of each token after the row's last) and `visible`
        (which new tokens each new token sees) to run several options side by side."""
        device = self.backend.device
        taking = [k for k, r in enumerate(rows) if r]
        active = None if len(taking) == len(rows) else torch.tensor(taking, device=device)
        width = max(len(r) for r in rows)
        pad = self.backend.pad_id
        inputs = torch.tensor([rows[k] + [pad] * (width - len(rows[k])) for k in taking], device=device)
        real = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in rows], device=device)
        steps = torch.tensor(offsets if offsets is not None else range(width), device=device)
        positions = self.position[:, None] + steps[None, :]
        check_fits(int(positions.max()) + 1, 0, self.backend.context_length, "sequence")
        if visible is None:
            visible = torch.ones((width, width), dtype=torch.bool, device=device).tril()
        pick = slice(None) if active is None else active
        sees = torch.cat([self.prefix_mask[pick, None, :].expand(-1, width, -1),
                          self.own_mask[pick, None, :].expand(-1, width, -1),
                          visible[None] & real[pick, None, :]], dim=2)
        bias = torch.zeros(sees.shape, dtype=torch.float32, device=device).masked_fill_(~sees, -torch.inf)
        keep = {}
        if last_only:
            last = torch.tensor([len(rows[k]) - 1 for k in taking], device=device)[:, None]
            keep = self.backend.logits_args(last)
        model = self.backend.model
        implementation = model.config._attn_implementation
        model.config._attn_implementation = SHARED_PREFIX
        calls, self.prefix.active = self.prefix.calls, active
        try:
            out = model(input_ids=inputs, attention_mask=bias[:, None], position_ids=positions[pick],
                        use_cache=False, shared_prefix=self.prefix, **keep)
        finally:
            model.config._attn_implementation = implementation
            self.prefix.active = None
        layers = self.prefix.n_layers
        if self.prefix.calls - calls != layers:
            raise SharedPrefixUnsupported(
                f"attention outside transformers' registry ({self.prefix.calls - calls} of {layers} "
                "layers used the shared prefix)")
        self.own_mask = torch.cat([self.own_mask, real], dim=1)
        self.forwarded_tokens += int(real.sum())
        logits = out.logits
        if last_only and not keep:
            logits = logits[torch.arange(len(taking), device=device)[:, None], last]
        return torch.log_softmax(logits.float(), dim=-1)

    def _advance(self, rows: list[list[int]]) -> None:
        logprobs = self._forward(rows, last_only=True)
        lengths = torch.tensor([len(r) for r in rows], device=self.backend.device)
        self.position = self.position + lengths
        self.last[lengths > 0] = logprobs[:, -1]

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
            if n > len(own):  # the shared prefix cannot be taken back: the row would silently be wrong
                raise ValueError(f"rewind of {n} tokens on row {k}, which has added only {len(own)}")
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
        device = self.backend.device
        totals = self.last[:, torch.tensor([o[0] for o in options], device=device)].double()  # (rows, options)
        spans, offsets = [], []
        for option in options:
            spans.append((len(offsets), len(option) - 1))
            offsets += range(len(option) - 1)
        if not offsets:
            return totals.tolist()
        width = len(offsets)
        visible = torch.zeros((width, width), dtype=torch.bool, device=device)
        for begin, n in spans:
            visible[begin:begin + n, begin:begin + n] = torch.ones((n, n), dtype=torch.bool).tril()
        tokens = [tok for option in options for tok in option[:-1]]
        logprobs = self._forward([tokens] * len(self.ids), offsets, visible)
        targets = torch.tensor([tok for option in options for tok in option[1:]], device=device)
        owner = torch.tensor([j for j, option in enumerate(options) for _ in option[1:]], device=device)
        totals.index_add_(1, owner, logprobs[:, torch.arange(width, device=device), targets].double())
        self.prefix.crop(width)  # the options' positions go again
        self.own_mask = self.own_mask[:, :-width]
        return totals.tolist()
