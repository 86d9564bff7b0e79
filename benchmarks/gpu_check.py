"""GPU check: cotprobe on a random-weight 8B-class model (Qwen3-8B's architecture) with a real tokenizer.

    python benchmarks/gpu_check.py            # on a CUDA machine: ~5 minutes on one H200
    python benchmarks/gpu_check.py --smoke    # the same code paths, tiny shapes, on the CPU (< 1 minute;
                                            # batches 1/4/16, 48/96-token CoTs, shorter forced fields)

Prints, all measured in this one run:
  generation   tokens/s at batch 1, 16 and 64 through cotprobe's backend and through raw
               `model.generate` (target: cotprobe >= 0.9x raw at batch 16);
  sweep        an 11-cut truncation sweep of a CoT of 4k and 8k tokens, shared prefix against
               naive re-encoding: seconds, time ratio, and the max log-prob gap between the two
               (next-token distributions at every cut, in the run's dtype);
  cross-trace  traces per second of that sweep at 4k tokens (48 tokens with --smoke), one trace at
               a time against the cut rows of several traces decoded as one batch (`cuts.probe_traces`,
               `truncate --sweep-batch`; the batch size the backend picks for the device; expected
               >= 4x on one GPU, #28);
  memory       peak GPU memory of each part.
The weights are random (no reasoning model's weights can be fetched here): speed and memory are
those of the real architecture, the text is meaningless. The tokenizer is SmolLM2's (the embedded
model's), so the vocabulary is 49,152 instead of Qwen3's 151,936. --json FILE also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from truncate_cost import PARAGRAPH  # noqa: E402  (a reasoning-style paragraph)

from cotprobe import models  # noqa: E402
from cotprobe.backends import fork  # noqa: E402
from cotprobe.backends.hf import HFBackend, HFRows  # noqa: E402
from cotprobe.data import load_dataset  # noqa: E402
from cotprobe.tracing import build_prompt  # noqa: E402
from cotprobe.forcing import ForceSettings, Prober  # noqa: E402
from cotprobe.profiles import get_profile  # noqa: E402
from cotprobe.records import Confidence, Trace  # noqa: E402
from cotprobe.scales import VERBAL_10  # noqa: E402
from cotprobe.cuts import parse_fractions, plan_cuts, probe_cuts, probe_traces  # noqa: E402
from cotprobe.steps import segment_trace  # noqa: E402

QWEN3_8B = dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rope_theta=1_000_000.0,
                rms_norm_eps=1e-6, tie_word_embeddings=False)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=4096, tie_word_embeddings=False)
FULL = dict(config=QWEN3_8B, batches=(1, 16, 64), new_tokens=128, cot_tokens=(4096, 8192), device="cuda",
            dtype="bf16", force=ForceSettings(), cross=(4096, 8))
SMOKE = dict(config=TINY, batches=(1, 4, 16), new_tokens=4, cot_tokens=(48, 96), device="cpu", dtype="fp32",
             force=ForceSettings(answer_max_tokens=6, confidence_max_tokens=3), cross=(48, 3))


def build_model(tokenizer, shape: dict, device: str, dtype: torch.dtype):
    """A random-weight Qwen3 of the given shape, initialised directly on the device."""
    from transformers import AutoModelForCausalLM, Qwen3Config

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **shape)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


class Clock:
    """Wall time and peak GPU memory of a block (synchronised on CUDA)."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start
        self.peak_gib = torch.cuda.max_memory_allocated() / 2**30 if self.cuda else float("nan")


def generation(backend: HFBackend, prompts: list[list[int]], batches, new_tokens: int, device: str) -> list[dict]:
    """Tokens/s of cotprobe's batched generation and of raw model.generate on the same prompts;
    no end-of-sequence token, so every row decodes exactly new_tokens tokens."""
    model, pad = backend.model, backend.pad_id
    backend.eos_ids = set()
    model.generation_config.eos_token_id = None

    def raw(batch):
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                           pad_token_id=pad, temperature=None, top_p=None, top_k=None)

    rows = []
    for size in batches:
        batch = (prompts * (size // len(prompts) + 1))[:size]
        backend.generate(batch[:1], 2, [])  # warm-up
        result = {"batch": size}
        for name, run in (("cotprobe", lambda: backend.generate(batch, new_tokens, [])), ("raw", lambda: raw(batch))):
            with Clock(device) as clock:
                run()
            result[f"{name}_tokens_per_s"] = size * new_tokens / clock.seconds
            result[f"{name}_peak_gib"] = clock.peak_gib
        result["ratio"] = result["cotprobe_tokens_per_s"] / result["raw_tokens_per_s"]
        rows.append(result)
        print(f"generation batch {size:>3}: cotprobe {result['cotprobe_tokens_per_s']:9.1f} tok/s   "
              f"raw {result['raw_tokens_per_s']:9.1f} tok/s   cotprobe/raw {result['ratio']:.2f}   "
              f"peak {result['cotprobe_peak_gib']:.1f} / {result['raw_peak_gib']:.1f} GiB", flush=True)
    return rows


def cut_gap(shared: HFBackend, naive: HFBackend, ids: list[int], lengths: list[int]) -> float:
    """Max |log p| gap between the shared rows' next-token distributions at every cut and one
    fresh run of each prefix (what the naive path computes)."""
    rows = fork(shared, ids, lengths)
    assert isinstance(rows, HFRows), "the shared-prefix path refused this model"
    gap = 0.0
    for k, n in enumerate(lengths):
        session = naive.session(ids[:n])
        alone = session._logprobs_from(n - 1)[-1]
        gap = max(gap, float((rows.last[k] - alone).abs().max()))
    return gap


def sweep(shared: HFBackend, naive: HFBackend, prompt: str, question, cot_tokens, device: str,
          force: ForceSettings) -> list[dict]:
    profile = get_profile("plain")
    fractions = parse_fractions("0:1:0.1")
    prompt_ids = shared.encode(prompt)
    rows = []
    for n in cot_tokens:
        cot_ids = shared.encode(PARAGRAPH * (n // 20 + 1))[:n]
        trace = Trace(question_id=question.id, model=shared.name, prompt=prompt, cot=shared.decode(cot_ids),
                      answer="", confidence=Confidence(), prompt_tokens=len(prompt_ids),
                      cot_token_ids=cot_ids, thinking_ended="budget")
        cuts = plan_cuts(segment_trace(shared, trace), n, fractions, "step")
        result = {"cot_tokens": n, "cuts": len({c.token_index for c in cuts})}
        with Clock(device) as clock:
            fork(shared, prompt_ids + cot_ids, [len(prompt_ids) + n])
        result["full_pass_s"] = clock.seconds
        for name, backend in (("shared", shared), ("naive", naive)):
            with Clock(device) as clock:
                probe_cuts(Prober(backend, profile, VERBAL_10, force), trace, question, cuts)
            result[f"{name}_s"], result[f"{name}_peak_gib"] = clock.seconds, clock.peak_gib
        result["naive_over_shared"] = result["naive_s"] / result["shared_s"]
        result["shared_over_full_pass"] = result["shared_s"] / result["full_pass_s"]
        lengths = sorted({len(prompt_ids) + c.token_index for c in cuts})
        result["max_logprob_gap"] = cut_gap(shared, naive, prompt_ids + cot_ids, lengths)
        rows.append(result)
        print(f"sweep {n:>5} CoT tokens, {result['cuts']} cuts: full pass {result['full_pass_s']:6.2f} s   "
              f"shared {result['shared_s']:6.2f} s   naive {result['naive_s']:7.2f} s   "
              f"naive/shared {result['naive_over_shared']:5.2f}   shared/full {result['shared_over_full_pass']:5.2f}   "
              f"max log-prob gap {result['max_logprob_gap']:.2e}   "
              f"peak {result['shared_peak_gib']:.1f} / {result['naive_peak_gib']:.1f} GiB", flush=True)
    return rows


def cross_trace(shared: HFBackend, texts: list[str], questions, plan: dict) -> dict:
    """Traces per second of the 11-cut sweep at one CoT length: one trace at a time (`probe_cuts`)
    against batches of traces (`probe_traces`, as many per batch as the backend picks)."""
    (n, count), device = plan["cross"], plan["device"]
    prober = Prober(shared, get_profile("plain"), VERBAL_10, plan["force"])
    fractions = parse_fractions("0:1:0.1")
    items = []
    for k in range(count):
        prompt_ids = shared.encode(texts[k])
        cot_ids = shared.encode(PARAGRAPH * (n // 20 + 2))[7 * k:7 * k + n]
        trace = Trace(question_id=questions[k].id, model=shared.name, prompt=texts[k], cot=shared.decode(cot_ids),
                      answer="", confidence=Confidence(), prompt_tokens=len(prompt_ids), cot_token_ids=cot_ids,
                      thinking_ended="budget")
        items.append((trace, questions[k], plan_cuts(segment_trace(shared, trace), n, fractions, "step")))
    per_batch = max(1, min(count, shared.traces_per_batch(len(fractions), n + len(prompt_ids))))
    with Clock(device) as alone:
        for trace, question, cuts in items:
            probe_cuts(prober, trace, question, cuts)
    with Clock(device) as together:
        for start in range(0, count, per_batch):
            probe_traces(prober, items[start:start + per_batch])
    result = {"cot_tokens": n, "traces": count, "traces_per_batch": per_batch,
              "one_at_a_time_traces_per_s": count / alone.seconds, "batched_traces_per_s": count / together.seconds,
              "one_at_a_time_peak_gib": alone.peak_gib, "batched_peak_gib": together.peak_gib}
    result["speedup"] = result["batched_traces_per_s"] / result["one_at_a_time_traces_per_s"]
    print(f"cross-trace sweep {n} CoT tokens, {count} traces: one at a time "
          f"{result['one_at_a_time_traces_per_s']:.3f} traces/s   {per_batch} per batch "
          f"{result['batched_traces_per_s']:.3f} traces/s   batched/one {result['speedup']:.2f}x   "
          f"peak {alone.peak_gib:.1f} / {together.peak_gib:.1f} GiB", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (what CI runs)")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None,
                        help="default bf16 (full), fp32 (--smoke)")
    parser.add_argument("--cache-dir", default=None, help="where the embedded model (its tokenizer) is cached")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    device = plan["device"]
    if device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; run with --smoke for the CPU check", file=sys.stderr)
        return 2
    dtype_name = args.dtype or plan["dtype"]
    dtype = getattr(torch, models.DTYPES[dtype_name])
    started, cpu = time.perf_counter(), time.process_time()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models.resolve(models.DEFAULT_MODEL, args.cache_dir))
    model = build_model(tokenizer, plan["config"], device, dtype)
    shared = HFBackend(model, tokenizer, name="random-qwen3")
    naive = HFBackend(model, tokenizer, name="random-qwen3", reuse_cache=False)
    params = sum(p.numel() for p in model.parameters())
    where = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"random-weight Qwen3 ({params / 1e9:.2f} B parameters, {dtype_name}) on {where}; "
          f"tokenizer SmolLM2 ({len(tokenizer)} tokens); torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; shared-prefix refusal: {shared.shared_prefix_refusal}", flush=True)
    questions = load_dataset("trivia", n=64, seed=0)
    texts = [build_prompt(shared, get_profile("plain"), VERBAL_10, "cot", q) for q in questions]
    prompts = [shared.encode(t) for t in texts]
    report = {"model": "random Qwen3", "parameters": params, "dtype": dtype_name, "device": where,
              "smoke": args.smoke}
    report["sweep"] = sweep(shared, naive, texts[0], questions[0], plan["cot_tokens"], device, plan["force"])
    report["cross_trace"] = cross_trace(shared, texts, questions, plan)
    report["generation"] = generation(shared, prompts, plan["batches"], plan["new_tokens"], device)
    report["seconds"], report["cpu_seconds"] = time.perf_counter() - started, time.process_time() - cpu
    late = "" if args.smoke or report["seconds"] <= 300 else "  (over the 5-minute target)"
    print(f"total {report['seconds']:.0f} s wall, {report['cpu_seconds']:.0f} s CPU" + late)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
