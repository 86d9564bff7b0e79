"""python -m cotprobe.generate: run a model on a question set and record its reasoning traces.

For each question: build the chat prompt, let the model think (reasoning profiles: until its
think end tag or the thinking budget; non-reasoning: until it starts `**Answer**`), then force
the answer and the confidence (both sampled and scored), grade, and append one Trace to
traces.jsonl. Interrupted runs resume where they stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from . import data as datasets
from .backends import TINY_MODEL, fork, load_backend
from .grade import grade
from .models import DEFAULT_MODEL, EMBEDDED, check_name
from .probe import ForceSettings, force_answers
from .profiles import PROFILES, Profile, for_style, get_profile
from .prompts import ANSWER_PREFIX, CONFIDENCE_CUE, STYLES, few_shot_exemplars, few_shot_messages, prompt_spec
from .records import Question, Trace
from .scales import SCALES, Scale, get_scale
from .store import RunDir


@dataclass(frozen=True)
class GenerationSettings:
    style: str = "cot"
    budget: int = 256  # thinking tokens
    cue_budget: int = 512  # extra thinking after the confidence cue (profiles with confidence_cue)
    batch_size: int = 8
    force: ForceSettings = ForceSettings()


def build_prompt(backend, profile: Profile, scale: Scale, style: str, question: Question) -> str:
    messages = []
    if profile.system_prompt:
        messages.append({"role": "system", "content": profile.system_prompt})
    messages += few_shot_messages(style, scale, profile.think_start, profile.think_end)  # [] for most styles
    messages.append({"role": "user", "content": prompt_spec(style, scale).user_message(question)})
    text = backend.chat_prompt(messages, **profile.chat_template_kwargs)
    if profile.prefill_think and not text.rstrip().endswith(profile.think_start):
        text += profile.think_start + "\n"
    return text


def thought_ids(backend, completion, stop: list[str]) -> list[int]:
    """The generated tokens before the stop string: the longest prefix of whole tokens whose text
    ends before the stop string starts (a stop string may span several tokens)."""
    if completion.finish != "stop":
        return completion.token_ids
    ids = completion.token_ids
    text = backend.decode(ids)
    begin = min(text.find(s) for s in stop if s and s in text)
    keep = len(ids)
    while keep > 0 and len(backend.decode(ids[:keep])) > begin:
        keep -= 1
    return ids[:keep]


def trace_question(backend, question: Question, prompt: str, completion, profile: Profile,
                   scale: Scale, settings: GenerationSettings, stop: list[str]) -> Trace:
    prompt_ids = backend.encode(prompt)
    cot_ids = thought_ids(backend, completion, stop)
    ended = {"stop": "stop", "eos": "eos", "length": "budget"}[completion.finish]
    if profile.confidence_cue:
        cue_ids = backend.encode(CONFIDENCE_CUE)
        more = backend.session(prompt_ids + cot_ids + cue_ids).greedy(settings.cue_budget, stop)
        cot_ids = cot_ids + cue_ids + thought_ids(backend, more, stop)
        if more.finish == "length":
            ended = "budget"
    cot = backend.decode(cot_ids)
    rows = fork(backend, prompt_ids + cot_ids, [len(prompt_ids) + len(cot_ids)])
    ((answer, confidence),) = force_answers(rows, backend, profile, scale, [cot], settings.force)
    result = grade(question, answer)
    return Trace(
        question_id=question.id, model=backend.name, prompt=prompt, cot=cot, answer=answer,
        confidence=confidence, prompt_tokens=len(prompt_ids), cot_token_ids=cot_ids,
        thinking_ended=ended, raw_output=completion.text, correct=result.correct,
        grader=result.grader, style=settings.style,
    )


def generate(backend, questions: list[Question], run: RunDir, profile: Profile, scale: Scale,
             settings: GenerationSettings) -> list[Trace]:
    """Trace every question not yet in run/traces.jsonl; return all traces in question order."""
    profile = for_style(profile, settings.style)  # slow-think: a reasoning profile (no-op otherwise)
    run.repair("traces.jsonl")
    done = {t.question_id: t for t in run.read("traces.jsonl", Trace)}
    todo = [q for q in questions if q.id not in done]
    stop = [profile.think_end] if profile.reasoning else [ANSWER_PREFIX.rstrip(":")]
    with tqdm(total=len(questions), initial=len(questions) - len(todo), desc="generate", unit="q") as bar:
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start:start + settings.batch_size]
            prompts = [build_prompt(backend, profile, scale, settings.style, q) for q in batch]
            completions = backend.generate([backend.encode(p) for p in prompts], settings.budget, stop)
            for question, prompt, completion in zip(batch, prompts, completions):
                trace = trace_question(backend, question, prompt, completion, profile, scale, settings, stop)
                run.append("traces.jsonl", trace)
                done[question.id] = trace
                bar.update()
    return [done[q.id] for q in questions]


def traces_for(run: RunDir, reuse: bool, backend, questions: list[Question], profile: Profile,
               scale: Scale, settings: GenerationSettings, recorded: dict, stage: str) -> list[Trace]:
    """The run's existing traces (reuse) or freshly generated ones, checked against the questions."""
    if reuse:
        traces = run.read("traces.jsonl", Trace)
        if not traces:
            raise ValueError(f"{run.path}: no traces to {stage} (run python -m cotprobe.generate first)")
    else:
        run.start_stage("generate", recorded)
        traces = generate(backend, questions, run, profile, scale, settings)
    known = {q.id for q in questions}
    missing = [t.question_id for t in traces if t.question_id not in known]
    if missing:
        raise ValueError(f"{run.path}: traces for questions not in --dataset {recorded['dataset']}: {missing[:3]}")
    return traces


def default_profile(model: str, profile: str | None) -> Profile:
    if model != TINY_MODEL:
        check_name(model)
    if profile is not None:
        return get_profile(profile)
    if model in EMBEDDED:
        return get_profile(EMBEDDED[model].profile)
    if model == TINY_MODEL:
        return get_profile("plain")
    raise ValueError(f"--profile is required for {model!r} (one of: {', '.join(PROFILES)})")


# What `python -m cotprobe.truncate` (and `cotprobe.ablate`) run with no arguments at all: a small
# experiment that shows the method on a CPU in minutes. The embedded 135M chat model writes a
# one-sentence CoT under the plain cot prompt, so cuts collapse onto its two ends; the paper's
# in-context slow thinking (§4.3: three hesitant, self-correcting exemplars, thought in think
# tags) makes it write a thought of many steps. 30 questions and a 192-token budget keep it within
# minutes on two cores. Any argument given: the options' own defaults (the paper's cot prompt).
DEFAULT_EXPERIMENT = {"dataset": "trivia", "style": "slow-think", "limit": 30, "budget": 192}


def default_experiment(parser: argparse.ArgumentParser, argv: list[str] | None) -> list[str]:
    """The command line to parse: with none given, parser defaults become DEFAULT_EXPERIMENT."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.set_defaults(**DEFAULT_EXPERIMENT)
    return argv


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs a model."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"embedded model name, local model folder or Hugging Face id (default {DEFAULT_MODEL})")
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="model family profile (think tags, template options); required for non-embedded models")
    parser.add_argument("--dataset", default="trivia",
                        help=f"bundled set ({', '.join(datasets.DATASETS)}) or a .jsonl/.csv file (default trivia)")
    parser.add_argument("-n", "--limit", type=int, default=None, help="seeded sample of this many questions")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--style", choices=sorted(STYLES), default="cot", help="prompt style (default cot)")
    parser.add_argument("--scale", default="verbal10",
                        help=f"confidence scale: {', '.join(SCALES)} or a JSON file (default verbal10)")
    parser.add_argument("--budget", type=int, default=256, help="thinking token budget (default 256; paper: 4096-8192)")
    parser.add_argument("--batch-size", type=int, default=8, help="generation batch size (default 8)")
    parser.add_argument("--cache-dir", default=None, help="where embedded models are cached (default ~/.cache/cotprobe)")
    parser.add_argument("--backend", choices=("hf", "openai"), default="hf",
                        help="hf: run the model here with transformers (default); openai: send requests to an "
                             "OpenAI-compatible completions server (vLLM, SGLang, llama.cpp) at --base-url")
    parser.add_argument("--base-url", action="append", default=None, metavar="URL",
                        help="server address for --backend openai, e.g. http://localhost:8000/v1; several "
                             "servers of the same model: repeat it, separate with commas, or @FILE (one per line)")
    add_server_arguments(parser)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of every command that talks to a completions server (--backend openai)."""
    group = parser.add_argument_group("server options (--backend openai)")
    group.add_argument("--timeout", type=_positive(float), default=None, metavar="SECONDS",
                       help="seconds one request may take before it is retried (default 1800: an 8k-token "
                            "thought on a 32B model at a few tokens/s)")
    group.add_argument("--concurrency", type=_positive(int), default=None, metavar="N",
                       help="requests in flight at once (default 16 per server, or --batch-size if larger)")
    group.add_argument("--max-retries", type=_non_negative_int, default=None, metavar="N",
                       help="further tries of a request after a connection error, timeout, 429 or 5xx, on "
                            "another server where there are several (default 3); finished requests are cached")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be greater than 0")
        return value
    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 or more")
    return value


def server_options(args: argparse.Namespace) -> dict:
    """--timeout, --concurrency, --max-retries as `load_backend` keyword arguments (None: default)."""
    concurrency = getattr(args, "concurrency", None)
    if concurrency is None and getattr(args, "batch_size", 0) > 16:
        concurrency = args.batch_size
    return {"timeout": getattr(args, "timeout", None), "concurrency": concurrency,
            "retries": getattr(args, "max_retries", None)}


def settings_from_run(args: argparse.Namespace, run_dir: str | Path) -> None:
    """Take model, profile, data and prompt options from the run that made the traces."""
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text()) if (Path(run_dir) / "manifest.json").exists() else {}
    try:
        made = manifest["stages"]["generate"]["settings"]
    except KeyError:
        raise ValueError(f"{run_dir}: no generation recorded in manifest.json; is it a cotprobe run?") from None
    for option, key in [("model", "model"), ("dataset", "dataset"), ("limit", "limit"), ("seed", "seed"),
                        ("style", "style"), ("scale", "scale_spec"), ("budget", "budget")]:
        setattr(args, option, made[key])
    if made.get("source") == "ingest":  # cotprobe.ingest keeps the questions in the run directory
        args.dataset = str(Path(run_dir) / made["dataset"])
    args.profile = made["profile"]["name"]


def setup_generation(args: argparse.Namespace):
    """(backend, questions, profile, scale, settings, manifest settings) from parsed options."""
    profile = for_style(default_profile(args.model, args.profile), args.style)
    scale = get_scale(args.scale)
    questions = datasets.load_dataset(args.dataset, n=args.limit, seed=args.seed)
    settings = GenerationSettings(style=args.style, budget=args.budget, batch_size=args.batch_size)
    backend = load_backend(args.model, kind=getattr(args, "backend", "hf"), cache_root=args.cache_dir,
                           reuse_cache=not getattr(args, "naive", False), base_url=getattr(args, "base_url", None),
                           **server_options(args))
    recorded = {
        "model": args.model, "profile": asdict(profile), "scale": asdict(scale),
        "dataset": args.dataset, "limit": args.limit, "seed": args.seed,
        "data_hash": datasets.dataset_hash(questions), "style": settings.style,
        "scale_spec": args.scale, "budget": settings.budget, "cue_budget": settings.cue_budget, "decoding": "greedy",
        "force": asdict(settings.force), "prompt_template": STYLES[settings.style],
    }
    if few_shot_exemplars(settings.style):
        recorded["few_shot"] = few_shot_exemplars(settings.style)
    return backend, questions, profile, scale, settings, recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.generate",
        description="Run a model on a question set; record CoT, forced answer, confidence and grade per question.",
    )
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="run directory (created, or resumed if it exists)")
    args = parser.parse_args(argv)
    backend, questions, profile, scale, settings, recorded = setup_generation(args)
    with RunDir(args.out) as run:
        run.start_stage("generate", recorded)
        traces = generate(backend, questions, run, profile, scale, settings)
    from .summary import print_trace_summary

    print_trace_summary(traces, args.out)
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
