"""The ablation conditions: small builders that make a modified CoT (a Variant) from one
trace's steps and behaviour tags, in a registry by name, and the model rewrites."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import PromptTooLong, cut_at_stop
from .hedges import dehedge
from .records import Step, Tag, Trace
from .resources import data_path

REWRITE_CONDITIONS = ("rewrite-linear", "rewrite-no-uncertainty")
LINEAR_BEHAVIOURS = ("backtracking", "alternative", "verification")


@dataclass
class Variant:
    """A modified CoT for one condition (or why it could not be made)."""

    condition: str
    cot: str
    removed: list[str] = field(default_factory=list)
    steps_kept: int = 0
    ids: list[int] | None = None  # token ids to probe; None: encode `cot`
    error: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def _stronger(a: str, b: str) -> str:
    """The separator that breaks more: more newlines, then longer."""
    return max(a, b, key=lambda s: (s.count("\n"), len(s)))


def rebuild(cot: str, steps: list[Step], texts: dict[int, str]) -> tuple[str, int]:
    """The CoT with step i's text replaced by texts[i] ("" deletes it): (text, steps kept).

    Unchanged steps keep their separators; where steps are deleted the stronger of the
    separators around them is kept (a paragraph break survives), and the CoT keeps its own
    trailing whitespace. With no change this returns `cot` itself.
    """
    if not steps:
        return cot, 0
    parts: list[str] = []
    sep = ""
    for step in steps:
        text = texts.get(step.index, step.text)
        if text:
            if parts:
                parts.append(sep)
            parts.append(text)
            sep = step.sep
        elif parts:
            sep = _stronger(sep, step.sep)
    if not parts:
        return "", 0
    kept = sum(1 for s in steps if texts.get(s.index, s.text))
    return cot[:steps[0].start] + "".join(parts) + steps[-1].sep, kept


def _tokens(step: Step) -> int:
    return max(step.token_end - step.token_start, 0)


def _unchanged(variant: Variant, trace: Trace) -> Variant:
    if variant.cot == trace.cot:
        variant.ids = list(trace.cot_token_ids)
    return variant


def linear_variant(trace: Trace, steps: list[Step], tags: list[Tag],
                   behaviours: tuple[str, ...] = LINEAR_BEHAVIOURS) -> Variant:
    drop = {t.step_index for t in tags if t.behaviour in behaviours}
    deleted = [s for s in steps if s.index in drop]
    cot, kept = rebuild(trace.cot, steps, {s.index: "" for s in deleted})
    return _unchanged(Variant("linear", cot, [s.text for s in deleted], kept,
                              info={"deleted_steps": len(deleted), "deleted_tokens": sum(map(_tokens, deleted))}), trace)


def random_deletion_variant(trace: Trace, steps: list[Step], target_tokens: int, seed: int = 0) -> Variant:
    """Delete random steps (seeded by seed and question id) until the deleted tokens match
    `target_tokens` within one step: a greedy pass in shuffled order keeps every step that
    still fits under the target, then the one step that brings the total closest (if any)."""
    rng = random.Random(f"{seed}:{trace.question_id}")
    order = [s for s in steps if _tokens(s) > 0]
    rng.shuffle(order)
    chosen, total = [], 0
    for s in order:
        if total + _tokens(s) <= target_tokens:
            chosen.append(s)
            total += _tokens(s)
    rest = [s for s in order if s not in chosen]
    if rest and total < target_tokens:
        best = min(rest, key=lambda s: abs(total + _tokens(s) - target_tokens))
        if abs(total + _tokens(best) - target_tokens) < target_tokens - total:
            chosen.append(best)
            total += _tokens(best)
    chosen.sort(key=lambda s: s.index)
    cot, kept = rebuild(trace.cot, steps, {s.index: "" for s in chosen})
    return _unchanged(Variant("random-deletion", cot, [s.text for s in chosen], kept,
                              info={"deleted_steps": len(chosen), "deleted_tokens": total,
                                    "target_tokens": target_tokens}), trace)


def no_hedging_variant(trace: Trace, steps: list[Step], tags: list[Tag]) -> Variant:
    cues: dict[int, list[tuple[int, int]]] = {}
    for t in tags:
        if t.behaviour == "hedging":
            cues.setdefault(t.step_index, []).append((t.start, t.end))
    texts, removed, n_cues, kept_cues = {}, [], 0, []
    for step in steps:
        if step.index in cues:
            result = dehedge(step.text, cues[step.index])
            texts[step.index] = result.text
            removed += result.removed
            n_cues += result.cues
            kept_cues += result.kept
    cot, kept = rebuild(trace.cot, steps, texts)
    return _unchanged(Variant("no-hedging", cot, removed, kept,
                              info={"cues": n_cues, "cues_kept": len(kept_cues), "kept": kept_cues,
                                    "steps_emptied": sum(1 for t in texts.values() if not t)}), trace)


def _full(trace: Trace, steps: list[Step], tags: list[Tag], seed: int) -> Variant:
    return Variant("full", trace.cot, [], len(steps), list(trace.cot_token_ids))


def _none(trace: Trace, steps: list[Step], tags: list[Tag], seed: int) -> Variant:
    return Variant("none", "", [s.text for s in steps], 0, [])


def _linear(trace: Trace, steps: list[Step], tags: list[Tag], seed: int) -> Variant:
    return linear_variant(trace, steps, tags)


def _no_hedging(trace: Trace, steps: list[Step], tags: list[Tag], seed: int) -> Variant:
    return no_hedging_variant(trace, steps, tags)


def _random_deletion(trace: Trace, steps: list[Step], tags: list[Tag], seed: int) -> Variant:
    target = linear_variant(trace, steps, tags).info["deleted_tokens"]  # length control: what linear deletes
    return random_deletion_variant(trace, steps, target, seed)


# The rule-based conditions, in the order they are probed and shown: name -> builder(trace,
# steps, tags, seed). Cheap; no model.
RULE_BUILDERS: dict[str, Callable[[Trace, list[Step], list[Tag], int], Variant]] = {
    "full": _full, "none": _none, "linear": _linear, "no-hedging": _no_hedging, "random-deletion": _random_deletion,
}
RULE_CONDITIONS = tuple(RULE_BUILDERS)
CONDITIONS = RULE_CONDITIONS + REWRITE_CONDITIONS
DEFAULT_CONDITIONS = ",".join(RULE_CONDITIONS)


def rule_variants(trace: Trace, steps: list[Step], tags: list[Tag], conditions: list[str],
                  seed: int = 0) -> list[Variant]:
    """The rule-based conditions of one trace, in the order asked."""
    return [RULE_BUILDERS[c](trace, steps, tags, seed) for c in conditions if c in RULE_BUILDERS]


def load_rewrite_prompts(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path else data_path("rewrite_prompts.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    for cond in REWRITE_CONDITIONS:
        spec = data.get("conditions", {}).get(cond)
        if not spec or not all(isinstance(spec.get(k), str) for k in ("instruction", "open", "close")):
            raise ValueError(f"{path}: condition {cond!r} needs 'instruction', 'open' and 'close' strings")
        if "{cot}" not in spec["instruction"]:
            raise ValueError(f"{path}: the instruction of {cond!r} has no {{cot}} placeholder")
    data["_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return data


def rewrite_variant(rewriter, spec: dict[str, str], condition: str, trace: Trace, steps: list[Step],
                    max_tokens: int) -> Variant:
    """Let `rewriter` (any backend) rewrite the CoT greedily; a failure is a Variant with error."""
    if not trace.cot.strip():
        return Variant(condition, trace.cot, [], 0, list(trace.cot_token_ids), info={"rewrite": "empty CoT"})
    prompt = rewriter.chat_prompt([{"role": "user", "content": spec["instruction"].replace("{cot}", trace.cot)}])
    prompt += spec["open"]
    try:
        completion = rewriter.session(rewriter.encode(prompt)).greedy(max_tokens, [spec["close"]])
    except PromptTooLong as exc:
        return Variant(condition, "", error=f"rewrite failed: {exc}")
    text = cut_at_stop(completion.text, [spec["close"]])[0]
    if completion.finish == "stop":
        text = text[: len(text) - len(spec["close"])]
    text = text.strip()
    excerpt = json.dumps(text[:160] + ("..." if len(text) > 160 else ""), ensure_ascii=False)
    if completion.finish == "length":
        return Variant(condition, "", error=f"rewrite failed: hit the token limit ({max_tokens} tokens) "
                                            f"before {spec['close']!r}; output began {excerpt}")
    if not text:
        return Variant(condition, "", error=f"rewrite failed: empty output (finish: {completion.finish})")
    removed = [s.text for s in steps if s.text not in text]
    return _unchanged(Variant(condition, text, removed, len(steps) - len(removed),
                              info={"finish": completion.finish}), trace)
