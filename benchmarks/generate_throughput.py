"""Generation throughput on the embedded model: tokens/second at batch sizes 1, 4 and 16.

    python benchmarks/generate_throughput.py [--model smollm2-135m-instruct] [--tokens 64]

Each batch decodes --tokens new tokens per sequence (no stop strings, so every row runs to the
limit); the speed-up is measured against batch size 1 in the same run.
"""

import argparse
import time

import torch

from cotprobe.backends import load_backend
from cotprobe.data import load_dataset
from cotprobe.tracing import build_prompt
from cotprobe.profiles import get_profile
from cotprobe.scales import VERBAL_10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,4,16")
    args = parser.parse_args()
    backend = load_backend(args.model)
    questions = load_dataset("trivia", n=16, seed=0)
    prompts = [backend.encode(build_prompt(backend, get_profile("plain"), VERBAL_10, "cot", q)) for q in questions]
    backend.eos_ids = set()  # decode the full length on every row: equal work per token
    backend.model.generation_config.eos_token_id = None
    print(f"model {args.model}, {args.tokens} new tokens per sequence, torch threads {torch.get_num_threads()}")
    base = None
    for size in (int(s) for s in args.batch_sizes.split(",")):
        backend.generate(prompts[:size], 4, [])  # warm-up
        start = time.perf_counter()
        out = backend.generate(prompts[:size], args.tokens, [])
        elapsed = time.perf_counter() - start
        rate = sum(len(c.token_ids) for c in out) / elapsed
        base = base or rate
        print(f"batch {size:>3}: {rate:8.1f} tokens/s  ({elapsed:6.2f} s)  speed-up x{rate / base:.2f}")


if __name__ == "__main__":
    main()
