"""Run directories built from records written directly (no model), for the analyses tests.

`make_run` writes manifest.json, traces.jsonl and probes.jsonl with known values; `synthetic_runs`
builds a realistic-looking set (a calibrated reasoning run, an overconfident direct one, cut probes
and ablations) for looking at the figures: `python tests/analyses_fixtures.py OUT_DIR`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cotprobe.records import Confidence, Probe, Trace, write_jsonl
from cotprobe.scales import VERBAL_10


def confidence(value: float | None, sampled: float | None | str = "same") -> Confidence:
    """expected = value; scored = the nearest class; sampled = that class (or `sampled`; None = unparsed)."""
    if value is None:
        return Confidence()
    k = int(np.argmin([abs(v - value) for v in VERBAL_10.values]))
    label, cls = VERBAL_10.labels[k], VERBAL_10.values[k]
    if sampled == "same":
        s_label, s_value = label, cls
    elif sampled is None:
        s_label, s_value = None, None
    else:
        j = int(np.argmin([abs(v - float(sampled)) for v in VERBAL_10.values]))
        s_label, s_value = VERBAL_10.labels[j], VERBAL_10.values[j]
    return Confidence(sampled_text=s_label or "??", sampled_label=s_label, sampled_value=s_value,
                      scored_probs=[0.1] * 10, scored_label=label, scored_value=cls, expected_value=value)


def trace(qid: str, value: float | None, correct: bool | None, style: str = "cot", **kw) -> Trace:
    return Trace(question_id=qid, model="synthetic", prompt="Q?", cot="step one. step two.", answer="a",
                 confidence=confidence(value, **kw), prompt_tokens=3, cot_token_ids=[1, 2, 3],
                 thinking_ended="stop", correct=correct, grader="test", style=style)


def probe(qid: str, condition: str, value: float, correct: bool, fraction: float = 1.0, error: str = "") -> Probe:
    return Probe(question_id=qid, condition=condition, fraction_requested=fraction, fraction_realised=fraction,
                 step_index=0, token_index=0, answer="a", confidence=confidence(value), correct=correct,
                 grader="test", error=error)


def make_run(root: Path, name: str, traces: Sequence[Trace] = (), probes: Iterable[Probe] = (), *,
             model: str = "org/model-7b", profile: str = "plain", reasoning: bool = False,
             style: str = "cot", dataset: str = "trivia") -> Path:
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    settings = {"model": model, "profile": {"name": profile, "reasoning": reasoning}, "style": style,
                "dataset": dataset, "scale": {"name": "verbal10", "labels": list(VERBAL_10.labels),
                                              "values": list(VERBAL_10.values)}}
    (path / "manifest.json").write_text(json.dumps({"stages": {"generate": {"settings": settings}}}))
    if traces:
        write_jsonl(path / "traces.jsonl", [t for t in traces])
    probes = list(probes)
    if probes:
        write_jsonl(path / "probes.jsonl", probes)
    return path


def _outcomes(rng, n: int, skill: float, sharp: float, bias: float, noise: float):
    """Confidences and outcomes: p(correct) from a latent ability; confidence = p + bias + noise."""
    p = 1 / (1 + np.exp(-(skill + sharp * rng.normal(size=n))))
    correct = rng.random(n) < p
    conf = np.clip(p + bias + noise * rng.normal(size=n), 0.02, 0.98)
    return p, correct, conf


def synthetic_runs(root: Path, n: int = 120, seed: int = 0) -> list[Path]:
    """Reasoning (cot, slow-think) and direct runs of one model, plus a second model, with cuts and ablations."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i:03d}" for i in range(n)]
    fractions = np.round(np.linspace(0, 1, 11), 2)
    paths = []
    specs = [("model-a-cot", "org/Model-A-8B", "cot", 0.6, 2.0, 0.02, 0.08),
             ("model-a-slow", "org/Model-A-8B", "slow-think", 0.7, 2.2, 0.0, 0.07),
             ("model-a-direct", "org/Model-A-8B", "direct", 0.3, 1.0, 0.25, 0.10),
             ("model-b-think", "org/Model-B-R1-7B", "cot", 0.8, 2.5, 0.0, 0.06)]
    for name, model, style, skill, sharp, bias, noise in specs:
        _, correct, conf = _outcomes(rng, n, skill, sharp, bias, noise)
        traces = [trace(q, float(c), bool(k), style=style, sampled=(float(c) if rng.random() > 0.1 else None))
                  for q, c, k in zip(qids, conf, correct)]
        probes = []
        if style != "direct":
            for f in fractions:  # early cuts: overconfident and less discriminating
                cf = np.clip((1 - f) * (0.8 + 0.1 * rng.normal(size=n)) + f * conf, 0.02, 0.98)
                kf = np.where(rng.random(n) < f, correct, rng.random(n) < 0.4)
                probes += [probe(q, "cut", float(c), bool(k), float(f)) for q, c, k in zip(qids, cf, kf)]
            for cond, shift, mix in [("full", 0.0, 0.0), ("none", 0.25, 0.9), ("linear", 0.15, 0.5),
                                     ("no-hedging", 0.12, 0.2), ("random-deletion", 0.03, 0.1)]:
                cc = np.clip((1 - mix) * conf + mix * 0.85 + shift * 0.2, 0.02, 0.98)
                probes += [probe(q, cond, float(c), bool(k)) for q, c, k in zip(qids, cc, correct)]
        paths.append(make_run(root, name, traces, probes, model=model, style=style,
                              profile="think" if "R1" in model else "plain", reasoning="R1" in model))
    return paths


if __name__ == "__main__":
    for path in synthetic_runs(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/runs/synthetic")):
        print(path)
