"""Cost of segmenting one trace: token offsets in linear time against decoding every prefix.

    python benchmarks/segment_cost.py [--model smollm2-135m-instruct] [--lengths 1024,2048,4096,8192,16384]
                                      [--old-max 16384]

For a reasoning-style CoT of each length (in the model's tokens), times in the same run:
  old      token char offsets by decoding every prefix ids[:k] (what cotprobe did before; quadratic),
  offsets  token char offsets as cotprobe computes them now (one windowed batch decode; linear),
  steps    the rest of segmentation (sentence splitting and token spans),
and checks that the two offset methods give the same steps. Target: offsets + steps < 0.5 s at
8,192 tokens. Lengths above --old-max skip the old method (it takes ~30 s at 16k tokens).
Only the tokenizer is loaded, never the model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cotprobe.segment import split_steps, step_token_spans, token_char_starts  # noqa: E402
from cotprobe.steps import load_tokenizer  # noqa: E402

PARAGRAPHS = [
    "Okay, so I need to find how many ways there are to arrange the letters of the word. "
    "There are 9 letters, so the total is 9! divided by (5! * 2! * 2!) because some letters repeat. "
    "Let me compute that: 9! = 362880, and 5! = 120, so the denominator is 120 * 2 * 2 = 480.",
    "Wait, that doesn't look right. Let me double-check the counts of each letter. "
    "Hmm, maybe I miscounted: the pressure is about 101,325 Pa. So, if I calculate it again, "
    "I get $\\frac{362880}{480} = 756$.",
    "\\[ \\binom{n}{k} = \\frac{n!}{k!(n-k)!} \\]",
    "Alternatively, I could count the arrangements step by step, e.g. first place the repeated "
    "letters and then the others. Is there any trick here that I'm missing? I'm not completely "
    "confident, but the answer seems to be 756.",
]


def cot_ids(tokenizer, n_tokens: int) -> list[int]:
    text, k = "", 0
    while True:
        text += PARAGRAPHS[k % len(PARAGRAPHS)].replace("9", str(9 + k % 7)) + "\n\n"
        k += 1
        if k % 8 == 0 and len(tokenizer.encode(text)) >= n_tokens:
            return tokenizer.encode(text)[:n_tokens]


def old_starts(backend, ids: list[int]) -> list[int]:
    starts, prev = [], 0
    for k in range(len(ids)):
        starts.append(prev)
        prev = max(prev, len(backend.decode(ids[: k + 1])))
    return starts


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="whose tokenizer (default embedded)")
    parser.add_argument("--lengths", default="1024,2048,4096,8192,16384", help="CoT lengths in tokens")
    parser.add_argument("--old-max", type=int, default=16384, help="skip the old method above this length")
    args = parser.parse_args(argv)
    backend = load_tokenizer(args.model)
    split_steps("Warm up. The pipeline loads once.")
    print(f"tokenizer {args.model}; load average {os.getloadavg()[0]:.2f} (times are wall-clock, one process)")
    print(f"{'tokens':>7} {'chars':>7} {'steps':>6} {'old s':>8} {'offsets s':>10} {'steps s':>8} "
          f"{'total s':>8} {'old/new':>8} same")
    for n in (int(x) for x in args.lengths.split(",")):
        ids = cot_ids(backend, n)
        text = backend.decode(ids)
        new, t_new = timed(lambda: token_char_starts(backend, ids))
        (spans, tokens), t_steps = timed(lambda: (lambda sp: (sp, step_token_spans(sp, new, len(text))))(split_steps(text)))
        if n <= args.old_max:
            old, t_old = timed(lambda: old_starts(backend, ids))
            same = "yes" if step_token_spans(spans, old, len(text)) == tokens else "NO"
            old_cell, ratio = f"{t_old:8.2f}", f"{t_old / t_new:7.0f}x"
        else:
            old_cell, ratio, same = f"{'-':>8}", f"{'-':>8}", "-"
        print(f"{n:>7} {len(text):>7} {len(spans):>6} {old_cell} {t_new:10.3f} {t_steps:8.3f} "
              f"{t_new + t_steps:8.3f} {ratio} {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
