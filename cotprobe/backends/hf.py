"""The Hugging Face transformers backend: batched generation and cache-reusing sessions.

Its rows (`fork`) run over one shared encoding of the longest prefix: `hf_rows`, with the
attention that makes that possible in `hf_attention`.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import torch

from .base import Completion, TokenizerOps, check_fits, cut_at_stop
from .hf_attention import SharedPrefixUnsupported, shared_prefix_refusal
from .hf_rows import HFRows, PrefixMemory, pick_hidden, sampler
from .rows import SequentialRows

__all__ = ["HFBackend", "HFRows", "HFSession"]


class HFBackend(TokenizerOps):
    """A causal LM and its tokenizer, run greedily.

    reuse_cache=False makes `fork` encode every prefix from scratch in its own session (the
    naive path, kept for comparison and for backends without cache access).
    """

    samples = True  # sessions and rows sample (`protocols.SamplingBackend`)

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
        self.keeps_logits = "logits_to_keep" in params
        self._refusal: str | None | bool = False  # False: not checked yet
        self._memory: PrefixMemory | None = None  # see remember_prefix

    @torch.inference_mode()
    def remember_prefix(self, ids: list[int]) -> None:
        """Keep the keys/values of `ids`, the part every prompt of a run starts with (system
        prompt, instructions, few-shot exemplars): rows over a sequence that starts with it
        (`fork`, and `generate` when every prompt does) read it from here instead of encoding it
        again. Results agree with encoding it afresh up to float rounding. One prefix at a time;
        [] forgets it. Naive mode (reuse_cache=False) remembers nothing."""
        if not ids or not self.shares_rows:
            self._memory = None
            return
        if self._memory is not None and self._memory.ids == tuple(ids):
            return
        check_fits(len(ids), 0, self.context_length, "sequence")
        out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, **self.logits_args(1))
        self._memory = PrefixMemory(tuple(ids), [(layer.keys, layer.values) for layer in out[self.cache_arg].layers],
                                    torch.log_softmax(out.logits[0, -1].float(), dim=-1))

    def known_prefix(self, ids: list[int], limit: int) -> PrefixMemory | None:
        """The remembered prefix if `ids` starts with it and it is at most `limit` tokens long."""
        memory = self._memory
        if memory is None or len(memory.ids) > limit or tuple(ids[:len(memory.ids)]) != memory.ids:
            return None
        return memory

    def logits_args(self, keep: int | torch.Tensor) -> dict:
        """Keyword arguments computing logits only at `keep` (the last n positions, or these indices)."""
        return {"logits_to_keep": keep} if self.keeps_logits else {}

    @property
    def shared_prefix_refusal(self) -> str | None:
        """Why cut rows cannot share one prefix encoding on this model (None: they can). Checked once:
        the model's configuration, then one tiny shared-prefix step, which must route every layer
        through the shared-prefix attention and pass it no argument it does not implement."""
        if self._refusal is False:
            reason = shared_prefix_refusal(self.model)
            kind = getattr(self.model.config, "model_type", type(self.model).__name__)
            if reason is None:
                try:
                    rows = HFRows(self, [self.pad_id] * 4, [2, 4])
                    rows.extend([[self.pad_id], [self.pad_id]])
                except SharedPrefixUnsupported as exc:
                    reason = f"{kind} uses {exc}"
                except Exception as exc:  # noqa: BLE001  (a model whose layers do not take the shared prefix's inputs)
                    reason = f"{kind} fails a shared-prefix step ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            self._refusal = reason
            if reason is not None:
                print(f"cotprobe: {reason}, which the shared-prefix attention does not implement; "
                      "cut rows run one at a time (same results, slower)", file=sys.stderr)
        return self._refusal

    @property
    def shares_rows(self) -> bool:
        """Whether `fork` runs its rows as one batch over a shared prefix (else one at a time)."""
        return self.reuse_cache and self.shared_prefix_refusal is None

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[Completion]:
        """Greedy decoding of a batch of token-id prompts (left padded), each cut at its first stop.
        When every prompt starts with the remembered prefix, the rows decode over it (`HFRows`)."""
        for ids in prompts:
            check_fits(len(ids), max_new_tokens, self.context_length)
        known = self._memory
        if known is not None and all(self.known_prefix(ids, len(ids)) for ids in prompts):
            rows = HFRows(self, list(known.ids), [len(known.ids)] * len(prompts))
            rows.extend([ids[len(known.ids):] for ids in prompts])
            return rows.greedy(max_new_tokens, stop)
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

    def session(self, ids: list[int]) -> HFSession:
        return HFSession(self, ids)

    def fork(self, ids: list[int], lengths: list[int], hidden_layers: list[int] | None = None,
             hidden_positions: list[int] | None = None):
        """Rows for the prefixes ids[:n], n in lengths: one shared encoding of the longest prefix,
        then all rows decode as one batch (naive mode: every row re-encodes its own prefix).

        With hidden_layers, `rows.hidden` holds the hidden states at those layers (0 = embeddings)
        of each prefix's last token, or of `hidden_positions` of ids (the encoding then reaches
        them), shape (positions, layers, hidden), from the encoding pass itself (naive mode: from
        one extra pass)."""
        if not self.shares_rows:
            rows = SequentialRows(self, ids, lengths)
            if hidden_layers:
                positions = hidden_positions if hidden_positions is not None else [n - 1 for n in lengths]
                rows.hidden = self.hidden_states(ids[:max(positions) + 1], positions, hidden_layers)
            return rows
        return HFRows(self, ids, lengths, hidden_layers, hidden_positions)

    def fork_across(self, sequences: list[tuple[list[int], list[int]]]) -> HFRows:
        """Rows for several sequences' prefixes as one batch (`HFRows.across`): each sequence
        encoded once, every row attending only to its own sequence up to its cut."""
        if not self.shares_rows:
            raise ValueError("fork_across needs rows over a shared prefix (see shares_rows)")
        return HFRows.across(self, sequences)

    def traces_per_batch(self, rows_per_trace: int, tokens: int) -> int:
        """Traces whose cut rows decode as one batch (the automatic --sweep-batch). A CPU is nearly
        compute-bound at a dozen rows, so batching there saves only the per-step overhead: up to
        48 rows (four traces of 11 cuts). A GPU decodes memory-bound, so up to 256 rows, as long as
        the traces' keys and values take at most a quarter of the free device memory."""
        rows = max(1, rows_per_trace)
        if self.device.type != "cuda":
            return max(1, 48 // rows)
        text = getattr(self.model.config, "text_config", self.model.config)
        heads = int(getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
        head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads)
        per_trace = 2 * int(text.num_hidden_layers) * heads * head_dim * max(tokens, 1) * self.model.dtype.itemsize
        free, _ = torch.cuda.mem_get_info(self.device)
        return max(1, min(256 // rows, int(free // 4 // per_trace)))

    def describe(self) -> dict[str, Any]:
        """What a run's manifest records: the model here, its dtype and device, exact scoring."""
        return {"backend": "hf", "model": self.name, "dtype": str(self.model.dtype).removeprefix("torch."),
                "device": str(self.device), "shares_rows": self.shares_rows, "score_mode": "exact"}

    @property
    def hidden_shape(self) -> tuple[int, int]:
        """(number of layers, hidden size) of the model (of its text part, for multimodal ones)."""
        text = getattr(self.model.config, "text_config", self.model.config)
        return int(text.num_hidden_layers), int(text.hidden_size)

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
        out = self.backend.model(input_ids=new, use_cache=True, **{self.backend.cache_arg: self.cache},
                                 **self.backend.logits_args(len(self.ids) - pos))
        self.cache, self.cached = out[self.backend.cache_arg], len(self.ids)
        self.forwarded_tokens += new.shape[1]
        return torch.log_softmax(out.logits[0, -(len(self.ids) - pos):].float(), dim=-1)

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

        The first tokens are scored from the sequence's own next-token distribution; each option's
        later tokens run over the sequence's cache, which is cropped back after it (the cache is
        never copied, so memory stays that of one sequence).
        """
        first = self._logprobs_from(len(self.ids) - 1)[-1]
        totals = [float(first[o[0]]) for o in options]
        end = len(self.ids)
        for k, option in enumerate(options):
            if len(option) > 1:
                self.ids.extend(option[:-1])
                logprobs = self._logprobs_from(end)
                picked = logprobs[torch.arange(len(option) - 1, device=logprobs.device),
                                  torch.tensor(option[1:], device=logprobs.device)]
                totals[k] += float(picked.sum())
                self._rewind(end)
        return totals
