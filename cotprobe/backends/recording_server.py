"""A local server that speaks vLLM's dialect of /v1/completions and records what each request costs.

For tests and benchmarks of the OpenAI backend at the paper's scale without a GPU. A synthetic
language model (`SyntheticLM`: deterministic next-token log-probabilities from a hash of the
recent context, over a real tokenizer's vocabulary) answers requests the way vLLM does:

* fields: prompt (text or token ids), max_tokens, temperature (0 only), min_tokens, stop,
  logprobs (at most `max_logprobs`, else HTTP 400 like vLLM's --max-logprobs), echo,
  prompt_logprobs, return_token_ids, return_tokens_as_token_ids, n (1); unknown fields are
  ignored, as vLLM does; /v1/models gives max_model_len.
* answers: choices[0] with text (stop strings cut off, stop_reason names them), finish_reason,
  legacy logprobs (tokens, token_logprobs, top_logprobs, text_offset), token_ids and
  prompt_token_ids; usage with prompt_tokens_details.cached_tokens.
* a prefix cache of 16-token blocks over prompts and generated tokens (automatic prefix caching),
  which requests asking for prompt log-probabilities (echo + logprobs, prompt_logprobs) do not
  read: vLLM computes those prompts in full (vLLM PRs #17251, #23399).

`ModelLM` puts a transformers model in the synthetic model's place, so that what the client
computes through the server can be compared exactly with the same model run in-process.
`step=SECONDS` makes each request take a batching engine's time (`step_clock.StepClock`: its
prefill and each generated token one step, steps shared by the requests in flight together).
`forward=URL` sends each request on to a real server (llama.cpp) instead and records it the same
way, so that the same figures can be taken of it. `RecordingServer.kill()` stops answering as a
crashed process would (open connections are dropped).
"""

from __future__ import annotations

import inspect
import json
import math
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .step_clock import StepClock

BLOCK = 16  # vLLM's default KV-cache block size


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    prompt_tokens: int = 0
    cached_tokens: int = 0  # served by the prefix cache
    prompt_logprobs: bool = False  # asked for prompt log-probabilities (never served from the cache)
    completion_tokens: int = 0
    response_bytes: int = 0
    fields: list[str] = field(default_factory=list)

    @property
    def uncached_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens


class PrefixCache:
    """vLLM-style automatic prefix caching: full blocks, identified by the chain of their tokens."""

    def __init__(self, capacity_blocks: int = 1 << 20):
        self.blocks: dict[int, None] = {}  # insertion-ordered: oldest first (evicted first)
        self.capacity = capacity_blocks

    @staticmethod
    def _chain(ids: list[int]) -> list[int]:
        out, h = [], 0
        for end in range(BLOCK, len(ids) + 1, BLOCK):
            h = hash((h, tuple(ids[end - BLOCK:end])))
            out.append(h)
        return out

    def lookup(self, prompt: list[int]) -> int:
        """Prompt tokens served from the cache (the last one is always computed, as in vLLM)."""
        n = 0
        for h in self._chain(prompt):
            if h not in self.blocks:
                break
            n += 1
        return min(n * BLOCK, max(len(prompt) - 1, 0))

    def insert(self, ids: list[int]) -> None:
        for h in self._chain(ids):
            self.blocks.pop(h, None)
            self.blocks[h] = None
        while len(self.blocks) > self.capacity:
            self.blocks.pop(next(iter(self.blocks)))


class SyntheticLM:
    """Next-token log-probabilities that depend only on the last `window` tokens.

    A set of candidate tokens (words, punctuation, newline, every token of the given labels)
    shares `mass` of the probability with softmax weights drawn from a hash of the context; the
    rest of the vocabulary (end-of-sequence included) shares the remainder evenly."""

    WORDS = (" the", " answer", " is", " so", " Wait", " think", " Paris", " France", " capital", " 5", " yes",
             ",", ".", "\n", " Let", " me", " check", " Hmm", " maybe", " not", " sure", " Almost", " Highly")

    def __init__(self, tokenizer, labels: list[str] = (), window: int = 6, mass: float = 0.97, seed: int = 0):
        self.tokenizer, self.window, self.seed = tokenizer, window, seed
        self.vocab = len(tokenizer)
        cands = {t for w in [*self.WORDS, *(" " + lab for lab in labels)]
                 for t in tokenizer.encode(w, add_special_tokens=False)}
        cands.discard(tokenizer.eos_token_id)
        self.cands = sorted(cands)
        self.rest = math.log((1 - mass) / (self.vocab - len(self.cands)))
        self.log_mass = math.log(mass)
        self.others = [t for t in range(self.vocab) if t not in cands][:200]  # listed past the candidates
        self._memo: dict[tuple, list[tuple[int, float]]] = {}

    def dist(self, context: list[int]) -> list[tuple[int, float]]:
        """(token, logprob) of the candidates, most likely first."""
        key = tuple(context[-self.window:])
        got = self._memo.get(key)
        if got is None:
            rng = random.Random(hash((self.seed, key)))
            logits = [rng.gauss(0.0, 2.0) for _ in self.cands]
            top = max(logits)
            z = top + math.log(sum(math.exp(v - top) for v in logits))
            got = sorted(((t, v - z + self.log_mass) for t, v in zip(self.cands, logits)), key=lambda x: -x[1])
            if len(self._memo) > 200_000:
                self._memo.clear()
            self._memo[key] = got
        return got

    def logprob(self, context: list[int], token: int) -> float:
        return next((v for t, v in self.dist(context) if t == token), self.rest)

    def top(self, context: list[int], k: int) -> list[tuple[int, float]]:
        got = self.dist(context)[:k]
        return got + [(t, self.rest) for t in self.others[: max(0, k - len(got))]]


class ModelLM:
    """Next-token log-probabilities of a transformers causal LM over the whole context, with the
    interface of `SyntheticLM`: the server then answers as that model run in-process would (tests
    compare the client's results with the model's exactly). The end-of-sequence token ends a
    completion (finish_reason "stop", stop_reason None, as in vLLM)."""

    window = 1 << 30  # the whole context
    memo_size = 256  # contexts whose log-probabilities are kept (a vocabulary of float32 each)

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer
        self._memo: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()  # the server answers requests on several threads; one model
        self._ids: list[int] = []  # the sequence `_past` holds the keys and values of
        self._past: Any = None

    def _logprobs(self, context: list[int]):
        key = tuple(context)
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
            values = self._memo[key] = self._forward(context)
            if len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
            return values

    def _forward(self, context: list[int]):
        """Next-token log-probabilities after `context`, encoding only what it does not share with
        the last sequence encoded (whose keys and values are kept, as a server's prefix cache keeps them)."""
        import torch
        from transformers import DynamicCache

        same = 0
        for a, b in zip(context[:-1], self._ids):
            if a != b:
                break
            same += 1
        if same and self._past is not None:
            if len(self._ids) > same:
                self._past.crop(same - len(self._ids))  # take back what the contexts do not share
        else:
            same, self._past = 0, DynamicCache()
        params = inspect.signature(self.model.forward).parameters  # transformers 5 calls it `cache`
        cache = {("cache" if "cache" in params else "past_key_values"): self._past}
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([context[same:]]), use_cache=True, **cache)
        self._ids = list(context)
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    def top(self, context: list[int], k: int) -> list[tuple[int, float]]:
        import torch

        values, ids = torch.topk(self._logprobs(context), k)
        return list(zip(ids.tolist(), values.tolist()))

    def dist(self, context: list[int]) -> list[tuple[int, float]]:
        """The most likely next tokens, best first (enough to decode greedily past an end token)."""
        return self.top(context, 16)

    def logprob(self, context: list[int], token: int) -> float:
        return float(self._logprobs(context)[token])


class RecordingServer:
    """A threaded HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, tokenizer, model: str = "synthetic", *, lm: SyntheticLM | ModelLM | None = None, labels=(),
                 context: int = 32768, max_logprobs: int = 20, logprobs: bool = True,
                 delays: list[float] | None = None, forward: str | None = None, step: float = 0.0):
        self.tokenizer, self.name, self.context, self.max_logprobs = tokenizer, model, context, max_logprobs
        self.lm = lm or SyntheticLM(tokenizer, labels)
        self.offers_logprobs = logprobs
        self.delays = list(delays or [])  # seconds to stall the first completions requests
        self.forward = forward
        self.clock = StepClock(step)  # step: seconds per decoding step, shared by requests in flight together
        self.cache = PrefixCache()
        self.records: list[Recorded] = []
        self.lock = threading.Lock()
        self.dead = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code: int, payload: dict) -> int:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return len(data)

            def do_GET(self):
                if outer.dead:
                    self.close_connection = True
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": outer.name, "object": "model", "max_model_len": outer.context}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.dead:
                    self.close_connection = True
                    return
                if self.path != "/v1/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with outer.lock:
                    delay = outer.delays.pop(0) if outer.delays else 0.0
                if delay:
                    time.sleep(delay)
                try:
                    body = json.loads(raw)
                    code, payload, rec = outer.complete(body)
                except (ValueError, TypeError, KeyError) as exc:
                    code, payload, rec = 400, {"error": {"message": str(exc)}}, None
                if outer.dead:
                    self.close_connection = True
                    return
                if rec is not None:
                    outer.clock.wait(1 + rec.completion_tokens)  # its prefill, then one step per token
                if rec is not None:  # recorded before the answer leaves, so a client that has it sees it
                    rec.response_bytes = len(json.dumps(payload).encode())
                    with outer.lock:
                        outer.records.append(rec)
                self._send(code, payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # -- the server's life -----------------------------------------------------------------------
    def kill(self) -> None:
        """Stop answering at once: open connections are dropped, new ones refused."""
        self.dead = True
        self.httpd.shutdown()
        self.httpd.server_close()

    close = kill

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if not self.dead:
            self.kill()

    def completions(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.records if r.path == "/v1/completions"]

    # -- /v1/completions ---------------------------------------------------------------------------
    def _ids(self, prompt: Any) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt, add_special_tokens=False)
        if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            if any(not 0 <= t < len(self.tokenizer) for t in prompt):
                raise ValueError("prompt: token id out of vocabulary")
            return list(prompt)
        raise ValueError("prompt: a string or one list of token ids")

    def complete(self, body: dict[str, Any]) -> tuple[int, dict, Recorded | None]:
        if body.get("model") != self.name:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}, None
        prompt = self._ids(body["prompt"])
        k = body.get("logprobs")
        if k is not None and not self.offers_logprobs:
            k = None  # a server without log-probabilities ignores the field
        if k is not None and (not isinstance(k, int) or k < 0 or k > self.max_logprobs):
            return 400, {"error": {"message": f"Requested sample logprobs of {k}, which is greater than "
                                              f"max allowed: {self.max_logprobs}"}}, None
        if float(body.get("temperature", 1.0)) != 0.0:
            raise ValueError("temperature: this server decodes greedily only (0)")
        if body.get("n", 1) != 1 or body.get("stream"):
            raise ValueError("n > 1 and stream are not offered here")
        max_tokens = int(body.get("max_tokens", 16))
        if len(prompt) + max_tokens > self.context:
            raise ValueError(f"This model's maximum context length is {self.context} tokens. However, you "
                             f"requested {len(prompt) + max_tokens} tokens")
        echo = bool(body.get("echo"))
        prompt_lp = (echo and k is not None) or body.get("prompt_logprobs") is not None
        rec = Recorded("/v1/completions", len(prompt), 0, prompt_lp, fields=sorted(body))
        if not prompt_lp:
            rec.cached_tokens = self.cache.lookup(prompt)
        if self.forward:
            code, payload, new = self._forwarded(body)
        else:
            code, payload, new = 200, self._synthetic(body, prompt, k, echo, max_tokens), None
        if code != 200:
            return code, payload, None
        new = new if new is not None else payload["choices"][0].pop("_ids")
        rec.completion_tokens = len(new)
        self.cache.insert(prompt + new[:-1])
        payload["usage"] = {"prompt_tokens": len(prompt), "completion_tokens": len(new),
                            "total_tokens": len(prompt) + len(new),
                            "prompt_tokens_details": {"cached_tokens": rec.cached_tokens}}
        return 200, payload, rec

    def _greedy(self, prompt: list[int], max_tokens: int, stops: list[str], min_tokens: int
                ) -> tuple[list[int], str, str, str | None]:
        """(new token ids, text, finish_reason, stop_reason) of a greedy completion: text cut off
        before the first stop string, which stop_reason names; end-of-sequence (never before
        min_tokens) is not part of the ids or the text."""
        tok, lm = self.tokenizer, self.lm
        new: list[int] = []
        tail = prompt[-lm.window:]
        for _ in range(max_tokens):
            nxt = next(t for t, _ in lm.dist(tail) if t != tok.eos_token_id or len(new) >= min_tokens)
            if nxt == tok.eos_token_id:  # (SyntheticLM never has it among its candidates)
                return new, tok.decode(new, skip_special_tokens=True), "stop", None
            new.append(nxt)
            tail = (tail + [nxt])[-lm.window:]
            # stop strings: looked for in the last tokens' text, then in the whole text once found
            if stops and len(new) >= min_tokens and any(s in tok.decode(new[-24:]) for s in stops if s):
                text = tok.decode(new, skip_special_tokens=True)
                hit = min(((text.find(s), s) for s in stops if s and s in text), default=None)
                if hit:
                    return new, text[: hit[0]], "stop", hit[1]
        return new, tok.decode(new, skip_special_tokens=True), "length", None

    def _synthetic(self, body: dict, prompt: list[int], k: int | None, echo: bool, max_tokens: int) -> dict:
        tok, lm = self.tokenizer, self.lm
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        new, text, finish, reason = self._greedy(prompt, max_tokens, stops, int(body.get("min_tokens") or 0))
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
                                  "stop_reason": reason, "_ids": new}
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        name = (lambda t: f"token_id:{t}") if as_ids else (lambda t: tok.decode([t]))
        if k is not None:
            seq = prompt + new
            first = 0 if echo else len(prompt)
            tokens, lps, tops, offsets, pos = [], [], [], [], 0
            if echo:
                choice["text"] = tok.decode(prompt, skip_special_tokens=True) + text
            for i in range(first, len(seq)):
                tokens.append(name(seq[i]))
                offsets.append(pos)
                pos += len(tok.decode([seq[i]]))
                if i == 0:
                    lps.append(None)
                    tops.append(None)
                    continue
                context = seq[max(0, i - lm.window):i]
                lps.append(lm.logprob(context, seq[i]))
                alts = {name(t): v for t, v in lm.top(context, k)}
                alts.setdefault(name(seq[i]), lps[-1])  # vLLM lists the chosen token too
                tops.append(alts)
            choice["logprobs"] = {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops,
                                  "text_offset": offsets}
        if body.get("return_token_ids"):
            choice["token_ids"] = list(new)
            choice["prompt_token_ids"] = list(prompt)
        return {"id": f"cmpl-{len(self.records)}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": [choice]}

    def _forwarded(self, body: dict) -> tuple[int, dict, list[int]]:
        import httpx

        resp = httpx.post(f"{self.forward.rstrip('/')}/completions", json=body, timeout=None)
        try:
            payload = resp.json()
        except ValueError:
            payload = {"error": {"message": resp.text[:500]}}
        if resp.status_code != 200:
            return resp.status_code, payload, []
        choice = payload["choices"][0]
        new = choice.get("token_ids") or choice.get("tokens")
        if not (isinstance(new, list) and all(isinstance(t, int) for t in new)):
            new = self.tokenizer.encode(choice.get("text") or "", add_special_tokens=False)
        return 200, payload, new
