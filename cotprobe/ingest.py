"""python -m cotprobe.ingest FILE... --out RUN_DIR: a run directory from traces made elsewhere.

Reads traces in one of the formats of `cotprobe.traces_in` (generic JSONL with a `response` or
`reasoning_content`/`content`, OpenAI/vLLM chat-completion dumps, thought-anchors folders,
ReasoningFlow's data_raw JSONL), and writes manifest.json, questions.jsonl and traces.jsonl so
that every later stage (tag, truncate/ablate --from-run, report, metrics) reads the run.

The CoT of each trace is the thought alone; the answer and its written confidence are parsed
from what follows the thought and graded. Token ids come from --tokenizer (the embedded
model's by default), which is also the model that later stages load as the reader: it is
recorded as the run's model, while each trace keeps the model that wrote it (--model-name, or
the file's own `model` field). When they differ, probes measure how a reader judges another
model's thought, not the author's own confidence. The prompt recorded with each trace is the
reader's chat prompt for the question (the cot style), so probes ask the reader as cotprobe
would. Every input row is read and checked before anything is written; re-running the same
command resumes (traces already in traces.jsonl are skipped).
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from .cli import entry_point
from .grade import grade
from .models import DEFAULT_MODEL
from .profiles import PROFILES
from .records import Confidence, Trace, write_jsonl
from .scales import SCALES, get_scale
from .experiment import default_profile
from .steps import load_tokenizer
from .store import QUESTIONS, RunDir
from .summary import print_traces, trace_metrics, update_metrics
from .tracing import build_prompt
from .traces_in import DEFAULT_TAGS, FORMATS, ExternalTrace, TraceFormatError, parse_answer, read_traces

def _sha256(path: Path) -> str:
    if path.is_dir():
        digest = hashlib.sha256()
        for f in sorted(path.rglob("*.json")):
            digest.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes())
        return digest.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def to_trace(ext: ExternalTrace, tokenizer, prompt: str, scale, author: str) -> Trace:
    """A Trace record of one external trace, tokenized by the reader's tokenizer."""
    ids = tokenizer.encode(ext.thought) if ext.thought else []
    answer, written = parse_answer(ext.after)
    label = scale.parse(written) if written else None
    result = grade(ext.question, answer)
    return Trace(
        question_id=ext.question.id, model=author or ext.model or "unknown", prompt=prompt,
        cot=tokenizer.decode(ids), answer=answer,
        confidence=Confidence(sampled_text=written, sampled_label=label,
                              sampled_value=scale.value(label) if label else None),
        prompt_tokens=len(tokenizer.encode(prompt)), cot_token_ids=ids, thinking_ended=ext.ended,
        raw_output=ext.response, correct=result.correct if ext.ended != "unclosed" else None,
        grader=result.grader, style="cot",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.ingest",
        description="Write a run directory from reasoning traces made elsewhere (vLLM/API JSONL dumps, "
                    "thought-anchors, ReasoningFlow), for tag, truncate/ablate --from-run, report and metrics.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="trace files (or thought-anchors folders)")
    parser.add_argument("--out", required=True, help="run directory (created, or resumed if it exists)")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="input format (default auto: from the layout and the first row's fields)")
    parser.add_argument("--tokenizer", default=DEFAULT_MODEL,
                        help=f"model whose tokenizer gives the token ids, and that later stages load as the "
                             f"reader (default {DEFAULT_MODEL})")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="the reader's profile (default: the embedded model's); its think tags are also "
                             "looked for in the responses")
    parser.add_argument("--model-name", default=None,
                        help="the model that wrote the traces (default: each row's 'model' field)")
    parser.add_argument("--scale", default="verbal10",
                        help=f"confidence scale the written confidences use: {', '.join(SCALES)} or a JSON file")
    parser.add_argument("--cache-dir", default=None, help="where embedded models are cached")
    args = parser.parse_args(argv)

    profile = default_profile(args.tokenizer, args.profile)
    scale = get_scale(args.scale)
    tags = tuple(dict.fromkeys(((profile.think_start, profile.think_end),) * bool(profile.think_start)
                               + DEFAULT_TAGS))
    external: list[ExternalTrace] = []
    for name in args.files:
        external += read_traces(name, args.format, tags)
    seen: dict[str, str] = {}
    for ext in external:
        if ext.question.id in seen:
            raise TraceFormatError(f"{ext.where}: question id {ext.question.id!r} repeats "
                                   f"{seen[ext.question.id]}; ids must be unique")
        seen[ext.question.id] = ext.where
    if not external:
        raise TraceFormatError("no traces in the input")

    tokenizer = load_tokenizer(args.tokenizer, args.cache_dir)
    out = Path(args.out)
    recorded = {
        "source": "ingest", "model": args.tokenizer, "author_model": args.model_name,
        "inputs": [{"path": str(Path(f).resolve()), "sha256": _sha256(Path(f))} for f in args.files],
        "format": args.format, "profile": asdict(profile), "scale": asdict(scale), "scale_spec": args.scale,
        "dataset": QUESTIONS, "limit": None, "seed": 0, "style": "cot", "budget": 0,
        "decoding": "as recorded by the source", "thinking_ended_values": {
            "stop": "the thought was closed", "unclosed": "the thought never closed (no answer)",
            "none": "no thought in the response"},
    }
    with RunDir(out) as run:
        run.start_stage("generate", recorded)
        write_jsonl(out / QUESTIONS, [e.question for e in external])
        run.repair_records(Trace)
        done = {t.question_id: t for t in run.traces()}
        for ext in tqdm([e for e in external if e.question.id not in done], desc="ingest", unit="trace"):
            prompt = build_prompt(tokenizer, profile, scale, "cot", ext.question)
            trace = to_trace(ext, tokenizer, prompt, scale, args.model_name or "")
            run.add(trace)
            done[trace.question_id] = trace
    traces = [done[e.question.id] for e in external]
    ended = Counter(t.thinking_ended for t in traces)
    print(f"{out}: ingested {len(traces)} traces ({', '.join(f'{k}: {v}' for k, v in sorted(ended.items()))}); "
          f"token ids from {args.tokenizer}")
    result = trace_metrics(traces)
    update_metrics(out, {"traces": result})
    print_traces(result, out)
    return 0


entry = entry_point(main)  # the console script (setup.cfg)

if __name__ == "__main__":
    entry()
