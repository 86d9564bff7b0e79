"""The Hugging Face transformers backend: batched generation and cache-reusing sessions."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

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

    def fork(self, ids: list[int], lengths: list[int]):
        """Rows for the prefixes ids[:n], n in lengths: one shared encoding of the longest prefix,
        then all rows decode as one batch (naive mode: every row re-encodes its own prefix)."""
        if not self.reuse_cache:
            from . import SequentialRows

            return SequentialRows(self, ids, lengths)
        return HFRows(self, ids, lengths)


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

    def greedy(self, max_new_tokens: int, stop: list[str]) -> Completion:
        """Greedy continuation until a stop string, an end-of-sequence token or the limit."""
        new: list[int] = []
        for _ in range(max_new_tokens):
            token = int(self._logprobs_from(len(self.ids) - 1)[-1].argmax())
            if token in self.backend.eos_ids:
                return Completion(new, self.backend.decode(new), "eos")
            new.append(token)
            self.ids.append(token)
            text, stopped = cut_at_stop(self.backend.decode(new), stop)
            if stopped:
                return Completion(new, text, "stop")
        return Completion(new, self.backend.decode(new), "length")

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


class HFRows:
    """Several prefixes of one sequence, decoded together over one shared key/value cache.

    The longest prefix is encoded once; the cache is copied per row and each row masks the
    positions beyond its own prefix. New tokens get the position ids they would have right after
    that prefix, so every row computes what a fresh run of its own prefix would (up to float
    rounding), while the prefix is encoded once and the decoding of all rows is batched.
    """

    def __init__(self, backend: HFBackend, ids: list[int], lengths: list[int]):
        self.backend = backend
        self.ids = [list(ids[:n]) for n in lengths]
        base = max(lengths)
        check_fits(base, 0, backend.context_length, "sequence")
        device = backend.device
        with torch.inference_mode():
            out = backend.model(input_ids=torch.tensor([ids[:base]], device=device), use_cache=True)
        self.cache = out[backend.cache_arg]
        self.cache.batch_repeat_interleave(len(lengths))
        self.forwarded_tokens = base
        index = torch.tensor(lengths, device=device)
        self.mask = (torch.arange(base, device=device)[None, :] < index[:, None]).long()
        self.position = index.clone()  # next position id of each row
        self.last = torch.log_softmax(out.logits[0, index - 1].float(), dim=-1)  # next-token log-probs

    @torch.inference_mode()
    def _forward(self, rows: list[list[int]]) -> torch.Tensor:
        """Append each row's tokens (rows may differ in length); return log-probs per position."""
        width = max(len(r) for r in rows)
        device = self.backend.device
        pad = self.backend.pad_id
        inputs = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        real = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
        positions = self.position[:, None] + torch.arange(width, device=device)[None, :]
        self.mask = torch.cat([self.mask, real], dim=1)
        check_fits(int(self.position.max()) + width, 0, self.backend.context_length, "sequence")
        out = self.backend.model(input_ids=inputs, attention_mask=self.mask, position_ids=positions,
                                 use_cache=True, **{self.backend.cache_arg: self.cache})
        self.cache = out[self.backend.cache_arg]
        self.forwarded_tokens += int(real.sum())
        lengths = real.sum(dim=1)
        self.position = self.position + lengths
        logprobs = torch.log_softmax(out.logits.float(), dim=-1)
        moved = lengths > 0
        self.last[moved] = logprobs[moved, lengths[moved] - 1]
        return logprobs

    def extend(self, rows: list[list[int]]) -> None:
        for ids, new in zip(self.ids, rows, strict=True):
            ids.extend(new)
        if any(rows):
            self._forward(rows)

    def greedy(self, max_new_tokens: int, stop: list[str]) -> list[Completion]:
        """Greedy continuation of every row until its stop string, end of sequence or the limit."""
        new: list[list[int]] = [[] for _ in self.ids]
        finish: list[str | None] = [None] * len(self.ids)
        for _ in range(max_new_tokens):
            step: list[list[int]] = []
            for k, token in enumerate(self.last.argmax(dim=-1).tolist()):
                if finish[k] is None and token in self.backend.eos_ids:
                    finish[k] = "eos"
                if finish[k] is not None:
                    step.append([])
                    continue
                new[k].append(token)
                step.append([token])
                if cut_at_stop(self.backend.decode(new[k]), stop)[1]:
                    finish[k] = "stop"
            self.extend(step)
            if all(f is not None for f in finish):
                break
        out = []
        for k, tokens in enumerate(new):
            text = self.backend.decode(tokens)
            out.append(Completion(tokens, cut_at_stop(text, stop)[0], finish[k] or "length"))
        return out

    def score(self, options: list[list[int]]) -> list[list[float]]:
        """Total log-probability of each option after each row: totals[row][option]."""
        totals = [[float(self.last[k, o[0]]) for o in options] for k in range(len(self.ids))]
        saved = (self.mask, self.position, self.last.clone())
        for j, option in enumerate(options):
            if len(option) == 1:
                continue
            logprobs = self._forward([option[:-1]] * len(self.ids))
            for k in range(len(self.ids)):
                totals[k][j] += float(sum(logprobs[k, i - 1, tok] for i, tok in enumerate(option) if i > 0))
            self.cache.crop(1 - len(option))  # drop the option's positions again
            self.mask, self.position, self.last = saved[0], saved[1], saved[2].clone()
        return totals
