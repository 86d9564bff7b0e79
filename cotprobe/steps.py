"""The steps and tags of a run: segmenting traces into steps in the model's own tokenization
(steps.jsonl), tagging the steps with the rule lexicon or an LLM judge (tags.jsonl,
judgements.jsonl), and knowing whether the tags are current."""

from __future__ import annotations

import hashlib
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import models
from .backends import TINY_MODEL, TokenizerOps
from .judge import JudgePrompt, describe, judge_key, judge_steps, judgement_tags
from .records import Judgement, Step, Tag, Trace
from .resources import data_path
from .segment import to_records, token_char_starts
from .store import RECORD_FILES, RunDir, steps_complete
from .tags import load_lexicon, tag_steps


def segment_trace(backend, trace: Trace) -> list[Step]:
    """The steps of a trace's CoT, with token spans in the backend's tokenization."""
    return to_records(trace.question_id, trace.cot, token_char_starts(backend, trace.cot_token_ids))


class TokenizerBackend(TokenizerOps):
    """Just enough of a backend to segment traces: encode/decode with the model's tokenizer."""

    def __init__(self, tokenizer: Any, name: str = ""):
        self.tokenizer = tokenizer
        self.name = name


def load_tokenizer(model: str, cache_dir: str | None = None) -> TokenizerBackend:
    """The tokenizer of a model name (tiny-random, embedded, folder or hub id), without its weights."""
    if model == TINY_MODEL:
        from .backends.tiny import tiny_tokenizer  # builds a model-free tokenizer (transformers)

        return TokenizerBackend(tiny_tokenizer(), model)
    from transformers import AutoTokenizer

    where = models.resolve(model, cache_dir)
    try:
        return TokenizerBackend(AutoTokenizer.from_pretrained(where), model)
    except OSError as exc:
        raise models.ModelError(f"could not load the tokenizer of {model!r}: {str(exc).splitlines()[0]}") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def group_by_question(records) -> dict[str, list]:
    """Records by question id, in their order."""
    out: dict[str, list] = defaultdict(list)
    for r in records:
        out[r.question_id].append(r)
    return out


@dataclass
class Tagged:
    traces: list[Trace]
    steps: dict[str, list[Step]]  # question id -> steps in order
    tags: list[Tag]
    settings: dict[str, Any]  # what was recorded in the manifest ("tag" stage)


def lexicon_settings(lexicon: str | Path | None) -> dict[str, Any]:
    path = Path(lexicon) if lexicon is not None else data_path("behaviours.json")
    lex = load_lexicon(path)
    return {"lexicon": "default" if lexicon is None else str(path), "version": lex.version,
            "lexicon_sha256": _sha256(path)}


def ensure_steps(run: RunDir, traces: list[Trace], backend=None, model: str = "",
                 cache_dir: str | None = None) -> dict[str, list[Step]]:
    """Steps of every trace; traces not yet (or not wholly) in steps.jsonl are segmented.

    A trace's steps are appended in one write, and read back only if they tile its CoT
    (`store.steps_complete`); a partial set left by an interrupted run is segmented again and
    steps.jsonl rewritten without it. `backend` (anything with encode/decode in the model's
    tokenization) is loaded from `model`'s tokenizer only if some trace needs segmenting.
    """
    run.repair_records(Step)
    steps = group_by_question(run.steps())
    for rows in steps.values():
        rows.sort(key=lambda s: s.index)
    missing = [t for t in traces if not steps_complete(t, steps.get(t.question_id, []))]
    partial = [t.question_id for t in missing if steps.get(t.question_id)]
    if missing:
        backend = backend or load_tokenizer(model, cache_dir)
        for trace in missing:
            steps[trace.question_id] = segment_trace(backend, trace)
            if not partial:
                run.add_many(steps[trace.question_id])
        if partial:
            print(f"cotprobe: {run.path / 'steps.jsonl'}: the steps of {len(partial)} trace(s) were incomplete "
                  f"(e.g. {partial[0]}); segmented again", file=sys.stderr)
            run.rewrite(Step, [s for rows in steps.values() for s in rows])
    return dict(steps)


@dataclass
class Judge:
    """The LLM-judge tagger: a loaded backend, the name it was loaded by, and the prompt."""

    backend: Any
    model: str
    kind: str
    prompt: JudgePrompt
    batch_size: int = 8


def judge_run(run: RunDir, judge: Judge, traces: list[Trace], steps: dict[str, list[Step]]) -> list[Judgement]:
    """This judge's judgement of every step; steps it already judged (judgements.jsonl) are not
    asked again, and each new judgement is appended as it comes, so an interrupted run resumes."""
    from tqdm import tqdm

    key = judge_key(judge.model, judge.prompt)
    run.repair_records(Judgement)
    done = {(j.question_id, j.step_index): j for j in run.records(Judgement) if j.judge == key}
    todo = [(step, rows[step.index - 1].text if step.index else "")
            for t in traces for rows in [steps.get(t.question_id, [])] for step in rows
            if (t.question_id, step.index) not in done]
    for j in tqdm(judge_steps(judge.backend, judge.prompt, key, todo, judge.batch_size),
                  total=len(todo), desc="judge", unit="step", disable=not todo):
        run.add(j)
        done[(j.question_id, j.step_index)] = j
    return [done[(t.question_id, s.index)] for t in traces for s in steps.get(t.question_id, [])]


def tag_run(run: RunDir, lexicon: str | Path | None = None, backend=None,
            cache_dir: str | None = None, judge: Judge | None = None) -> Tagged:
    """Segment (if needed) and tag every trace of an open run directory; rewrite tags.jsonl.

    Tags come from the rule lexicon, or from `judge` (an LLM) when one is given."""
    run.repair_records(Trace)
    traces = run.traces()
    if not traces:
        raise ValueError(f"{run.path}: no traces to tag (run python -m cotprobe.generate first)")
    model = run.stage_settings("generate").get("model") or traces[0].model
    steps = ensure_steps(run, traces, backend, model, cache_dir)  # in the run's model's tokenization
    if judge is None:
        settings = {"tagger": "rules", **lexicon_settings(lexicon)}
        lex = load_lexicon(Path(lexicon) if lexicon is not None else None)
        tags = [tag for t in traces for tag in tag_steps(t.question_id, steps.get(t.question_id, []), lex)]
    else:
        judgements = judge_run(run, judge, traces, steps)
        settings = describe(judge.model, judge.kind, judge.prompt)
        settings["unparsed"] = sum(1 for j in judgements if j.error)
        settings["judged_steps"] = len(judgements)
        tags = judgement_tags((j for j in judgements if not j.error), steps)
    run.rewrite(Tag, tags)
    settings["steps_sha256"] = _sha256(run.path / RECORD_FILES[Step])
    settings["n_traces"] = len(traces)
    # Tagging replaces its output every time, so the manifest keeps the latest settings (no
    # resume check as for the model stages); ablations record the lexicon hash they used.
    run.record_stage("tag", settings)
    return Tagged(traces, {t.question_id: steps.get(t.question_id, []) for t in traces}, tags, settings)


def tagger_name(settings: dict[str, Any]) -> str:
    """'rules@LEXICON_VERSION' or 'judge:MODEL@PROMPT_HASH', from the tag stage's settings."""
    if settings.get("tagger") == "judge":
        return settings["judge"]
    return f"rules@{settings.get('version', '?')}"


def tags_are_current(run: RunDir) -> bool:
    """Whether tags.jsonl exists and was made from the current steps.jsonl."""
    recorded = run.stage_settings("tag")
    return (run.path / RECORD_FILES[Tag]).exists() and recorded.get("steps_sha256") == _sha256(run.path / RECORD_FILES[Step])


def tags_for(run: RunDir, backend) -> tuple[dict[str, list[Step]], list[Tag], dict[str, Any]]:
    """Steps and tags of the run, tagging first if tags.jsonl is missing or older than steps.jsonl."""
    traces = run.traces()
    recorded = run.stage_settings("tag")
    steps = ensure_steps(run, traces, backend)
    if not tags_are_current(run):
        if recorded.get("tagger") == "judge":
            raise ValueError(f"{run.path}: tags.jsonl came from the judge {recorded['judge_model']!r} but is "
                             f"older than steps.jsonl; re-run python -m cotprobe.tag {run.path} --judge ...")
        lexicon = recorded.get("lexicon")
        tagged = tag_run(run, None if lexicon in (None, "default") else lexicon, backend=backend)
        return tagged.steps, tagged.tags, tagged.settings
    return steps, run.tags(), recorded

