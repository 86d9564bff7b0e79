"""The Hugging Face transformers backend: batched generation and cache-reusing sessions."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

from . import Completion, check_fits, cut_at_stop


class HFBackend:
    """A causal LM and its tokenizer, run greedily.

    reuse_cache=False makes every `truncate_to` throw the key/value cache away, so each cut is
    re-encoded from scratch (the naive path, kept for comparison and for debugging).
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

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def chat_prompt(self, messages: list[dict[str, str]], **template_kwargs: Any) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **template_kwargs
        )

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
        for i, tok in enumerate(new):
            if tok in self.eos_ids:
                return Completion(new[:i], self.decode(new[:i]), "eos")
        text, stopped = cut_at_stop(self.decode(new), stop)
        return Completion(new, text, "stop" if stopped else "length")

    def session(self, ids: list[int]) -> "HFSession":
        return HFSession(self, ids)


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

    def truncate_to(self, n: int) -> None:
        """Cut the sequence to its first n tokens (a CoT cut)."""
        if not self.backend.reuse_cache:
            self.cache, self.cached = None, 0
        self._rewind(n)

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
