"""python -m cotprobe.generate: run a model on a question set and record its reasoning traces.

For each question: build the chat prompt, let the model think (reasoning profiles: until its
think end tag or the thinking budget; non-reasoning: until it starts `**Answer**`), then force
the answer and the confidence (both sampled and scored), grade, and append one Trace to
traces.jsonl. Interrupted runs resume where they stopped.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from . import data as datasets
from .backends import TINY_MODEL, PromptTooLong, load_backend
from .cli import given_options, non_negative_int, positive_float, positive_int
from .grade import grade
from .models import DEFAULT_MODEL, EMBEDDED, add_loading_arguments, check_name, loading_from
from .probe import ForceSettings, force_cuts, forcing_suffix
from .profiles import PROFILES, Profile, for_style, get_profile
from .prompts import (ANSWER_MARKERS, CONFIDENCE_PREFIX, DEFAULT_TEMPLATE, STYLES, TEMPLATE_NAMES,
                      confidence_cue, few_shot_block, few_shot_exemplars, few_shot_messages, get_template, prompt_spec)
from .records import Question, Trace
from .scales import SCALES, Scale, get_scale
from .store import RunDir


@dataclass(frozen=True)
class GenerationSettings:
    style: str = "cot"
    budget: int = 256  # thinking tokens
    cue_budget: int = 2048  # extra thinking after the confidence cue (profiles with confidence_cue), as the paper
    batch_size: int = 8
    template: str = DEFAULT_TEMPLATE  # prompt template (cotprobe/_data/prompt_templates.json) or a JSON file
    force: ForceSettings | None = None  # None: the template's (restating turn for non-reasoning models or not)

    def __post_init__(self) -> None:
        if self.force is None:
            object.__setattr__(self, "force", ForceSettings(restate=get_template(self.template).restate))


class ThinkTagError(ValueError):
    """A profile whose think tags do not fit the chat template."""


def _ends_with(ids: list[int], tail: list[int], backend) -> int | None:
    """Where `tail` starts if ids end with it (ignoring trailing blank tokens), else None."""
    end = len(ids)
    while end > 0 and not backend.decode(ids[end - 1:end]).strip():
        end -= 1
    start = end - len(tail)
    return start if tail and start >= 0 and ids[start:end] == tail else None


def open_thought(backend, profile: Profile, text: str) -> str:
    """Check, on token ids, whether the rendered prompt opened the profile's think tag; open it
    for profiles that prefill it, refuse for one that expects the template to.

    A template that opens and at once closes an empty thought (Qwen3 with enable_thinking=False)
    has that empty block replaced by an open one for prefilling profiles (slow-think)."""
    if not profile.reasoning:
        return text
    ids = backend.encode(text)
    start, end = backend.encode(profile.think_start), backend.encode(profile.think_end)
    opened = _ends_with(ids, start, backend) is not None
    closed_at = _ends_with(ids, end, backend)
    if closed_at is not None and _ends_with(ids[:closed_at], start, backend) is not None:
        body = text.rstrip().removesuffix(profile.think_end).rstrip()
        text = body[:body.rfind(profile.think_start)]
        opened = False
        if not profile.prefill_think:
            raise ThinkTagError(f"--profile {profile.name}: the chat template closes the thought before the model "
                                f"starts (an empty {profile.think_start}{profile.think_end}); use a non-reasoning "
                                f"profile, or chat-template options that turn thinking on")
    if opened:
        return text
    if not profile.prefill_think:
        raise ThinkTagError(
            f"--profile {profile.name}: the chat template does not open {profile.think_start!r} at the end of the "
            f"prompt; use --profile think-prefill (cotprobe opens it) for this model")
    return text + profile.think_start + "\n"


def build_prompt(backend, profile: Profile, scale: Scale, style: str, question: Question,
                 template: str = DEFAULT_TEMPLATE) -> str:
    """The chat prompt for one question, ending where the model starts (inside an open thought
    for reasoning profiles). Few-shot exemplars go in prior turns where the chat template keeps
    their thoughts, else into the user message."""
    spec = prompt_spec(style, scale, template, profile.reasoning)
    system = [{"role": "system", "content": profile.system_prompt}] if profile.system_prompt else []
    shots = few_shot_messages(style, scale, profile.think_start, profile.think_end, spec.template,
                              profile.reasoning)  # [] for most styles
    user = {"role": "user", "content": spec.user_message(question)}
    text = backend.chat_prompt(system + shots + [user], **profile.chat_template_kwargs)
    if shots and not all(m["content"] in text for m in shots if m["role"] == "assistant"):
        user = {"role": "user", "content": few_shot_block(shots) + "\n\n" + user["content"]}
        text = backend.chat_prompt(system + [user], **profile.chat_template_kwargs)
    return open_thought(backend, profile, text)


def thought_ids(backend, completion, stop: list[str]) -> list[int]:
    """The generated tokens before the stop string: the longest prefix of whole tokens whose text
    ends before the stop string starts (a stop string may span several tokens). An answer-line
    marker's line begins with any markdown before it ("## **Answer**" is cut before the "##")."""
    if completion.finish != "stop":
        return completion.token_ids
    ids = completion.token_ids
    text = backend.decode(ids)
    begin = min(text.find(s) for s in stop if s and s in text)
    if any(s in ANSWER_MARKERS for s in stop):
        while begin > 0 and text[begin - 1] in " \t*_#":
            begin -= 1
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
        cue_ids = backend.encode(confidence_cue())
        more = backend.session(prompt_ids + cot_ids + cue_ids).greedy(settings.cue_budget, stop)
        cot_ids = cot_ids + cue_ids + thought_ids(backend, more, stop)
        if more.finish == "length":
            ended = "budget"
    cot = backend.decode(cot_ids)
    ids = prompt_ids + cot_ids
    ((answer, confidence),) = force_cuts(backend, ids, len(prompt_ids), [len(ids)], profile, scale, settings.force)
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
    stop = [profile.think_end] if profile.reasoning else list(ANSWER_MARKERS)
    with tqdm(total=len(questions), initial=len(questions) - len(todo), desc="generate", unit="q") as bar:
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start:start + settings.batch_size]
            prompts = [build_prompt(backend, profile, scale, settings.style, q, settings.template) for q in batch]
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


def forcing_room(backend, profile: Profile, scale: Scale, force: ForceSettings) -> int:
    """Tokens that forcing adds after a CoT at most: the suffix, the answer, the confidence
    prefix, the longest label (scored) or the written confidence, whichever is longer."""
    suffix = len(backend.encode(forcing_suffix(profile, "x")))
    prefix = len(backend.encode("\n" + CONFIDENCE_PREFIX))
    longest = max(len(backend.encode(" " + label)) for label in scale.labels)
    return suffix + force.answer_max_tokens + prefix + max(longest, force.confidence_max_tokens)


def check_prompts(backend, questions: list[Question], profile: Profile, scale: Scale,
                  settings: GenerationSettings, places: dict[str, str] | None = None) -> None:
    """Before anything is run or written: every question's prompt, plus the thinking budget
    (and the confidence cue's) and the forcing, must fit the model's context. Names the
    first question that does not (where it was read and its id) and how many do not."""
    context = getattr(backend, "context_length", None)
    if not context:
        return
    profile = for_style(profile, settings.style)
    extra = settings.budget + forcing_room(backend, profile, scale, settings.force)
    if profile.confidence_cue:
        extra += len(backend.encode(confidence_cue())) + settings.cue_budget
    too_long = []
    for question in questions:
        n = len(backend.encode(build_prompt(backend, profile, scale, settings.style, question, settings.template)))
        if n + extra > context:
            too_long.append((question, n))
    if too_long:
        question, n = too_long[0]
        where = (places or {}).get(question.id, "dataset")
        others = f"; {len(too_long)} of {len(questions)} questions are too long" if len(too_long) > 1 else ""
        raise PromptTooLong(
            f"{where} (id {question.id!r}): prompt of {n} tokens plus {extra} to think and answer "
            f"exceeds the model's context of {context} tokens{others}; lower --budget or leave the "
            "question out (cotprobe never truncates a prompt)"
        )


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
    parser.add_argument("-n", "--limit", type=positive_int, default=None,
                        help="seeded sample of this many questions (default: all of --dataset; arithmetic: 100)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--style", choices=sorted(STYLES), default="cot", help="prompt style (default cot)")
    parser.add_argument("--prompt-template", default=DEFAULT_TEMPLATE, metavar="NAME|FILE",
                        help=f"prompt template: {', '.join(TEMPLATE_NAMES)} or a JSON file (default {DEFAULT_TEMPLATE}: "
                             "the paper's prompt, with the classes' probability ranges; non-reasoning models restate "
                             "answer and confidence in a second turn; 'compact' is the earlier short prompt)")
    parser.add_argument("--scale", default="verbal10",
                        help=f"confidence scale: {', '.join(SCALES)} or a JSON file (default verbal10)")
    parser.add_argument("--budget", type=positive_int, default=256,
                        help="thinking token budget (default %(default)s; paper: 4096-8192)")
    parser.add_argument("--cue-budget", type=int, default=2048,
                        help="profiles with the confidence cue (think-cue): tokens the model may think on after the "
                             "cue (default 2048, as the paper)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="generation batch size (default %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="where embedded models are cached (default ~/.cache/cotprobe)")
    parser.add_argument("--backend", choices=("hf", "openai"), default="hf",
                        help="hf: run the model here with transformers (default); openai: send requests to an "
                             "OpenAI-compatible completions server (vLLM, SGLang, llama.cpp) at --base-url")
    parser.add_argument("--base-url", action="append", default=None, metavar="URL",
                        help="server address for --backend openai, e.g. http://localhost:8000/v1; several "
                             "servers of the same model: repeat it, separate with commas, or @FILE (one per line)")
    parser.add_argument("--data-dir", default=None,
                        help="where a paper benchmark's files are (folder or file; default "
                             "~/.cache/cotprobe/datasets/<name>/; see data/README.md)")
    add_server_arguments(parser)
    add_loading_arguments(parser)
    grading = parser.add_argument_group(
        "grading", "rules (default, offline): alias match, choice letters, numbers (cotprobe.grade). judge: the "
                   "paper's grader, an LLM judge (SimpleQA-style correct / incorrect / not attempted; only correct "
                   "counts; prompt cotprobe/_data/grader_prompt.json) through any backend; its verdicts go to "
                   "<run>/verdicts.jsonl, are not asked again, and unparsed ones are counted and graded incorrect")
    grading.add_argument("--grader", choices=("rules", "judge"), default="rules", help="default rules")
    grading.add_argument("--judge-model", default=None, metavar="MODEL",
                         help="the grading judge (embedded name, local folder, hub id, or the served model's name)")
    grading.add_argument("--judge-backend", choices=("hf", "openai"), default="hf", help="default hf")
    grading.add_argument("--judge-base-url", default=None, help="server of --judge-backend openai")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of every command that talks to a completions server (--backend openai)."""
    group = parser.add_argument_group("server options (--backend openai)")
    group.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS",
                       help="seconds one request may take before it is retried (default 1800: an 8k-token "
                            "thought on a 32B model at a few tokens/s)")
    group.add_argument("--concurrency", type=positive_int, default=None, metavar="N",
                       help="requests in flight at once (default 16 per server, or --batch-size if larger)")
    group.add_argument("--max-retries", type=non_negative_int, default=None, metavar="N",
                       help="further tries of a request after a connection error, timeout, 429 or 5xx, on "
                            "another server where there are several (default 3); finished requests are cached")


def server_options(args: argparse.Namespace) -> dict:
    """--timeout, --concurrency, --max-retries as `load_backend` keyword arguments (None: default)."""
    concurrency = getattr(args, "concurrency", None)
    if concurrency is None and getattr(args, "batch_size", 0) > 16:
        concurrency = args.batch_size
    return {"timeout": getattr(args, "timeout", None), "concurrency": concurrency,
            "retries": getattr(args, "max_retries", None)}


# Options that say which traces a run holds: (option, manifest key of the generate stage).
RUN_OPTIONS = [("model", "model"), ("dataset", "dataset"), ("limit", "limit"), ("seed", "seed"),
               ("style", "style"), ("scale", "scale_spec"), ("budget", "budget")]


def settings_from_run(args: argparse.Namespace, run_dir: str | Path, given: set[str] = frozenset()) -> None:
    """Take model, profile, data and prompt options from the run that made the traces.

    `given`: the options the user wrote (cli.given_options); one that contradicts the run is
    refused, naming it, instead of being silently replaced."""
    from .store import read_manifest

    manifest = read_manifest(run_dir)
    try:
        made = manifest["stages"]["generate"]["settings"]
        recorded = {option: made[key] for option, key in RUN_OPTIONS} | {"profile": made["profile"]["name"]}
    except (KeyError, TypeError):
        raise ValueError(f"{run_dir}: no generation recorded in manifest.json; is it a cotprobe run?") from None
    for option, value in recorded.items():
        if option in given and getattr(args, option) != value:
            flag = "-n" if option == "limit" else f"--{option.replace('_', '-')}"
            raise ValueError(
                f"{flag} {getattr(args, option)}: the traces of {run_dir} were made with {flag} {value}; "
                f"leave {flag} out to probe them, or generate new traces into a new --out"
            )
        setattr(args, option, value)
    if made.get("source") == "ingest":  # cotprobe.ingest keeps the questions in the run directory
        args.dataset = str(Path(run_dir) / made["dataset"])
    # runs made before these were recorded used the compact prompt and a 512-token cue budget
    args.prompt_template = made.get("prompt_template_spec", "compact")
    args.cue_budget = made.get("cue_budget", 512)


def setup_grader(args: argparse.Namespace):
    """Install the grader the options ask for (every question kind); what to record of it."""
    from . import grade as grading

    choice = getattr(args, "grader", "rules")
    model = getattr(args, "judge_model", None)
    for kind, default in grading.DEFAULT_GRADERS.items():
        grading.register_grader(kind, default)
    if choice == "rules":
        if model:
            raise ValueError("--judge-model is for --grader judge")
        return "rules"
    if not model:
        raise ValueError("--grader judge needs --judge-model MODEL")
    from .judge import AnswerJudge, load_grader_prompt

    kind = getattr(args, "judge_backend", "hf")
    backend = load_backend(model, kind=kind, cache_root=args.cache_dir, base_url=getattr(args, "judge_base_url", None))
    out = Path(getattr(args, "from_run", None) or getattr(args, "run_dir", None) or args.out)
    judge = AnswerJudge(backend, model, load_grader_prompt(), out / "verdicts.jsonl")
    for kind_name in grading.DEFAULT_GRADERS:
        grading.register_grader(kind_name, judge)
    args.answer_judge = judge
    return judge.describe(kind)


def print_verdicts(args: argparse.Namespace) -> None:
    judge = getattr(args, "answer_judge", None)
    if judge is not None:
        c = judge.counts()
        print(f"grading judge {judge.key}: {c['verdicts']} verdicts ({c['asked']} asked now), "
              f"{c['unparsed']} unparsed (graded incorrect; see verdicts.jsonl)")


def setup_generation(args: argparse.Namespace):
    """(backend, questions, profile, scale, settings, manifest settings) from parsed options."""
    profile = for_style(default_profile(args.model, args.profile), args.style)
    scale = get_scale(args.scale)
    places: dict[str, str] = {}
    questions = datasets.load_dataset(args.dataset, n=args.limit, seed=args.seed,
                                      data_dir=getattr(args, "data_dir", None), places=places)
    template_spec = getattr(args, "prompt_template", DEFAULT_TEMPLATE)
    template = get_template(template_spec)
    if getattr(args, "cue_budget", 2048) < 0:
        raise ValueError(f"--cue-budget {args.cue_budget}: must be 0 or more")
    settings = GenerationSettings(style=args.style, budget=args.budget, batch_size=args.batch_size,
                                  cue_budget=getattr(args, "cue_budget", 2048), template=template_spec)
    spec = prompt_spec(settings.style, scale, template, profile.reasoning)
    loading = loading_from(args)
    backend = load_backend(args.model, kind=getattr(args, "backend", "hf"), cache_root=args.cache_dir,
                           reuse_cache=not getattr(args, "naive", False), base_url=getattr(args, "base_url", None),
                           **server_options(args), loading=loading)
    if not (getattr(args, "from_run", None) or getattr(args, "run_dir", None)):  # traces to be made
        check_prompts(backend, questions, profile, scale, settings, places)
    recorded = {
        "model": args.model, "profile": asdict(profile), "scale": asdict(scale),
        "dataset": args.dataset, "limit": args.limit, "seed": args.seed,
        "data_hash": datasets.dataset_hash(questions), "style": settings.style,
        "scale_spec": args.scale, "budget": settings.budget, "cue_budget": settings.cue_budget, "decoding": "greedy",
        "force": asdict(settings.force), "prompt_template": template.name, "prompt_template_spec": template_spec,
        "prompt_instruction": spec.instruction(), "prompt_restate": spec.restate_message(),
    }
    if loading.recorded():
        recorded["loading"] = loading.recorded()
    if profile.confidence_cue:
        recorded["confidence_cue"] = confidence_cue()
    recorded["grader"] = setup_grader(args)
    if few_shot_exemplars(settings.style):
        recorded["few_shot"] = few_shot_exemplars(settings.style)
    return backend, questions, profile, scale, settings, recorded


DEFAULT_EXPERIMENT_N = DEFAULT_EXPERIMENT["limit"]  # questions of the default experiment of truncate and ablate


def resolve_run_options(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None,
                        run_dir: str | None, run_flag: str) -> Path:
    """The run directory a probing command (truncate, ablate) works in, and its options.

    With a run to reuse (`run_dir`, given as `run_flag`): its recorded model and data options
    are taken, and an option the user gave that contradicts them is refused, as is an --out
    elsewhere (the probes go into the run that holds the traces). Without one: the default
    experiment (no --dataset, no -n) is DEFAULT_EXPERIMENT_N questions of the default
    dataset, said on stderr; any --dataset given runs all of it unless -n says otherwise."""
    given = given_options(parser, argv)
    if run_dir:
        from .store import open_existing

        open_existing(run_dir)
        if "out" in given and Path(args.out).resolve() != Path(run_dir).resolve():
            raise ValueError(f"--out {args.out}: {run_flag} {run_dir} writes its probes into {run_dir}; "
                             f"leave --out out (or copy the run directory to {args.out} and probe the copy)")
        settings_from_run(args, run_dir, given)
        return Path(run_dir)
    if "dataset" not in given and "limit" not in given:
        args.limit = DEFAULT_EXPERIMENT_N
        print(f"default experiment: {DEFAULT_EXPERIMENT_N} questions of {args.dataset} "
              "(give -n or --dataset to change)", file=sys.stderr)
    return Path(args.out)


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
    print_verdicts(args)
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
