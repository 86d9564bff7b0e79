"""What an 11-cut truncation sweep of an 8,192-token CoT costs a vLLM server, measured without a GPU.

The real OpenAI backend drives the recording server (cotprobe.backends.recording_server), which
speaks vLLM's dialect of /v1/completions (max_logprobs 20 as vLLM's default or --max-logprobs, token-id prompts,
return_token_ids, 16-token prefix-cache blocks that prompt-log-prob requests do not read) with a
synthetic model over the embedded model's real tokenizer. One trace is generated first (an
8,192-token thought); the sweep then runs against a fresh server (cold prefix cache) with a
fresh request cache, so every figure is what one trace costs on its own:

  requests/trace          completions requests of the sweep (start-up probes counted apart)
  uncached prompt tokens  prompt tokens the server's prefix cache could not serve
  cache bytes/trace       bytes the request cache holds after the sweep

With --compare-prompt the same sweep is also run with echoed prompt log-probabilities (the
former design). With --llama the same figures are taken of the llama.cpp server the tests start
(a shorter CoT: it runs on this CPU), through the recording server as a forwarding proxy. It
ends with the line

  serving cost: <R> requests/trace, <U> uncached prompt tokens/trace, <B> cache bytes/trace

    python benchmarks/serving_cost.py [--cot-tokens 8192] [--max-logprobs 20] [--compare-prompt] [--llama]
        [--llama-cot-tokens 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cotprobe.forcing import Prober
from cotprobe import models
from cotprobe.backends.openai import OpenAIBackend
from cotprobe.backends.recording_server import RecordingServer
from cotprobe.tracing import GenerationSettings, generate
from cotprobe.profiles import get_profile
from cotprobe.records import Question
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.cuts import Sweep, parse_fractions, truncate

MODEL = models.DEFAULT_MODEL
PROFILE = get_profile("plain")
QUESTION = Question(id="q", question="Which planet has the shortest day in the Solar System?", answer="Jupiter")
FRACTIONS = parse_fractions("0:1:0.1")


def sweep_cost(make_server, tokenizer, cot_tokens: int, workdir: Path, **backend_options) -> dict:
    """Generate one trace, then sweep it at 11 cuts on a fresh server with a fresh request cache."""
    with make_server() as server:
        maker = OpenAIBackend(server.url, server.name, tokenizer, cache_dir=workdir / "gen-cache")
        probes_at_start = len(server.completions())
        with RunDir(workdir / "gen") as run:
            (trace,) = generate(Prober(maker, PROFILE, VERBAL_10, GenerationSettings(budget=cot_tokens, batch_size=1).force), [QUESTION], run, GenerationSettings(budget=cot_tokens, batch_size=1))
        made = server.completions()[probes_at_start:]
        maker.close()
    generation = {"requests": len(made), "uncached": sum(r.uncached_tokens for r in made),
                  "generated": sum(r.completion_tokens for r in made), "cache_bytes": maker.cache.bytes}
    with make_server() as server:
        backend = OpenAIBackend(server.url, server.name, tokenizer, cache_dir=workdir / "sweep-cache",
                                **backend_options)
        backend.score_mode  # start-up probes, counted apart
        startup = len(server.completions())
        start = time.perf_counter()
        with RunDir(workdir / "sweep") as run:
            probes = truncate(Prober(backend, PROFILE, VERBAL_10), [trace], {QUESTION.id: QUESTION}, run, Sweep(FRACTIONS, "token"))
        seconds = time.perf_counter() - start
        sent = server.completions()[startup:]
        backend.close()
    return {"cot_tokens": len(trace.cot_token_ids), "prompt_tokens": trace.prompt_tokens, "cuts": len(probes),
            "startup": startup, "requests": len(sent), "uncached": sum(r.uncached_tokens for r in sent),
            "prompt_tokens_sent": sum(r.prompt_tokens for r in sent),
            "prompt_logprob_requests": sum(r.prompt_logprobs for r in sent),
            "cache_bytes": backend.cache.bytes, "response_bytes": sum(r.response_bytes for r in sent),
            "seconds": seconds, "score_mode": backend.score_mode, "topk": backend.topk,
            "ids": backend.ids_source, "misses": backend.topk_misses,
            "label_mass": sum(p.confidence.label_mass or 0 for p in probes) / max(len(probes), 1),
            "generation": generation}


def show(name: str, c: dict) -> None:
    print(f"\n{name}: {c['cuts']} cuts of a {c['cot_tokens']}-token CoT (prompt {c['prompt_tokens']} tokens); "
          f"scoring {c['score_mode']} (top-{c['topk']}), token ids {c['ids']}")
    print(f"  requests/trace          {c['requests']:>9}  ({c['requests'] / max(c['cuts'], 1):.1f} per cut; "
          f"{c['startup']} start-up probes once per run; {c['prompt_logprob_requests']} ask for prompt log-probs)")
    print(f"  uncached prompt tokens  {c['uncached']:>9}  (of {c['prompt_tokens_sent']} prompt tokens sent)")
    print(f"  cache bytes/trace       {c['cache_bytes']:>9}  (responses on the wire: {c['response_bytes']} bytes)")
    print(f"  label tokens outside the top-k: {c['misses']}; mean label mass {c['label_mass']:.3f}; "
          f"{c['seconds']:.1f} s")
    g = c["generation"]
    print(f"  generating the trace (thought + forcing, before the sweep): {g['requests']} requests, "
          f"{g['uncached']} uncached prompt tokens, {g['generated']} generated tokens, {g['cache_bytes']} cache bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cot-tokens", type=int, default=8192, help="thought length (default 8192)")
    parser.add_argument("--compare-prompt", action="store_true",
                        help="also run the sweep with echoed prompt log-probabilities (score_mode prompt)")
    parser.add_argument("--llama", action="store_true", help="also measure the llama.cpp server the tests start")
    parser.add_argument("--llama-cot-tokens", type=int, default=256, help="thought length on llama.cpp (default 256)")
    parser.add_argument("--max-logprobs", type=int, default=20,
                        help="the server's top-k cap, as vLLM's --max-logprobs (default 20, vLLM's default)")
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(models.embedded_folder(MODEL)))
    context = args.cot_tokens + 4096

    def vllm_like() -> RecordingServer:
        return RecordingServer(tokenizer, MODEL, labels=VERBAL_10.labels, context=context,
                               max_logprobs=args.max_logprobs)

    with tempfile.TemporaryDirectory() as tmp:
        main_cost = sweep_cost(vllm_like, tokenizer, args.cot_tokens, Path(tmp) / "topk")
        show("vLLM dialect (recording server)", main_cost)
        if args.compare_prompt:
            show("vLLM dialect, echoed prompt log-probabilities (score_mode prompt)",
                 sweep_cost(vllm_like, tokenizer, args.cot_tokens, Path(tmp) / "prompt", score_mode="prompt"))
        if args.llama:
            from cotprobe.backends.local_server import LocalServer

            n_ctx = args.llama_cot_tokens + 1024
            with LocalServer(models.embedded_gguf(MODEL), MODEL, n_ctx=n_ctx, threads=1) as llama:
                def proxy() -> RecordingServer:
                    return RecordingServer(tokenizer, MODEL, context=n_ctx, forward=llama.url)

                show(f"llama.cpp ({llama.kind}) through the recording proxy",
                     sweep_cost(proxy, tokenizer, args.llama_cot_tokens, Path(tmp) / "llama"))
    c = main_cost
    print(f"\nserving cost: {c['requests']} requests/trace, {c['uncached']} uncached prompt tokens/trace, "
          f"{c['cache_bytes']} cache bytes/trace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
