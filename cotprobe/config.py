"""The run configuration: one frozen record of what a run is made with, and the command-line
options shared by every stage that runs a model.

`RunConfig.from_args` builds it from parsed options; `RunConfig.from_run` takes the model and
data options from the manifest of the run that made the traces (refusing, by name, an option
the user gave that contradicts it). `resolve_run` is the one rule of the probing commands
(truncate, ablate) for where they work and with which settings, including the default
experiment that a command line without arguments runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .cli import given_options, non_negative_int, positive_float, positive_int
from .data import DATASETS
from .models import DEFAULT_MODEL, Loading, add_loading_arguments, loading_from
from .profiles import AUTO, PROFILES, get_profile
from .prompts import DEFAULT_TEMPLATE, STYLES, TEMPLATE_NAMES
from .scales import SCALES
from .store import open_existing, read_manifest, stage_settings

# What `python -m cotprobe.truncate` (and `cotprobe.ablate`) run with no arguments at all: a small
# experiment that shows the method on a CPU in minutes. The embedded 135M chat model writes a
# one-sentence CoT under the plain cot prompt, so cuts collapse onto its two ends; the paper's
# in-context slow thinking (§4.3: three hesitant, self-correcting exemplars, thought in think
# tags) makes it write a thought of many steps. 30 questions and a 192-token budget keep it under
# 10 minutes on two cores (6 measured; the exemplars, the same in every prompt, are encoded once:
# `tracing.remember_shared_prompt`, and the 30 questions generate as one batch: 2 min 18 s against
# 4 min 18 s in batches of 8). Any argument given: the options' own defaults (the paper's cot prompt).
DEFAULT_EXPERIMENT = {"dataset": "trivia", "style": "slow-think", "limit": 30, "budget": 192, "batch_size": 32}
DEFAULT_EXPERIMENT_N = DEFAULT_EXPERIMENT["limit"]  # questions of the default experiment


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides which traces a run holds and how a model is run and graded."""

    model: str = DEFAULT_MODEL
    profile: str | None = None  # None: the model's own (embedded models) or refused; "auto": from the chat template
    chat_template: str | None = None  # a Jinja file rendering the prompts instead of the tokenizer's template
    chat_template_kwargs: dict = field(default_factory=dict)  # options to the chat template (over the profile's)
    dataset: str = "trivia"
    limit: int | None = None
    seed: int = 0
    style: str = "cot"
    prompt_template: str = DEFAULT_TEMPLATE
    scale: str = "verbal10"
    budget: int = 256
    cue_budget: int = 2048
    batch_size: int = 8
    cache_dir: str | None = None
    data_dir: str | None = None
    backend: str = "hf"
    base_url: tuple[str, ...] | None = None
    timeout: float | None = None
    concurrency: int | None = None
    max_retries: int | None = None
    loading: Loading = Loading()
    reuse_cache: bool = True  # False: --naive (re-encode every cut)
    grader: str = "rules"
    judge_model: str | None = None
    judge_backend: str = "hf"
    judge_base_url: str | None = None

    def __post_init__(self) -> None:
        if self.cue_budget < 0:
            raise ValueError(f"--cue-budget {self.cue_budget}: must be 0 or more")
        if self.timeout is not None and not 0 < self.timeout <= MAX_TIMEOUT:
            raise ValueError(f"--timeout {self.timeout:g}: must lie in (0, {MAX_TIMEOUT:g}] seconds")
        if self.chat_template is not None and not Path(self.chat_template).is_file():
            raise ValueError(f"--chat-template {self.chat_template}: no such file (give a Jinja chat template file)")
        if self.grader == "judge" and self.judge_backend == "openai" and not self.judge_base_url:
            raise ValueError("--judge-backend openai needs --judge-base-url (the judge's server, e.g. "
                             "http://localhost:8001/v1)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunConfig":
        """From parsed options (add_run_arguments); options a command lacks keep their defaults."""
        names = {f.name for f in fields(cls)} - {"loading", "reuse_cache", "base_url"}
        given = {name: getattr(args, name) for name in names if hasattr(args, name)}
        urls = getattr(args, "base_url", None)
        return cls(**given, base_url=tuple(urls) if urls else None, loading=loading_from(args),
                   reuse_cache=not getattr(args, "naive", False))

    def server_options(self) -> dict:
        """--timeout, --concurrency, --max-retries as `load_backend` keyword arguments (None: default)."""
        concurrency = self.concurrency
        if concurrency is None and self.batch_size > 16:
            concurrency = self.batch_size
        return {"timeout": self.timeout, "concurrency": concurrency, "retries": self.max_retries}

    def to_manifest(self) -> dict:
        """The options that decide which traces a run holds, under their manifest keys
        (`MANIFEST_KEYS`): what `from_run` reads back."""
        return {key: getattr(self, option) for option, key in MANIFEST_KEYS}

    def from_run(self, run_dir: str | Path, given: set[str] = frozenset()) -> "RunConfig":
        """This configuration with the model, profile, data and prompt options of the run that
        made the traces. `given`: the options the user wrote (cli.given_options); one that
        contradicts the run is refused, naming it, instead of being silently replaced."""
        made = stage_settings(read_manifest(run_dir), "generate")
        if not made:
            raise ValueError(f"{run_dir}: no generation recorded in manifest.json; is it a cotprobe run?")
        recorded = recorded_options(made, Path(run_dir) / "manifest.json")
        recorded |= {"chat_template": made.get("chat_template"),
                     "chat_template_kwargs": made.get("chat_template_kwargs") or {}}
        for option, value in recorded.items():
            if option in given and getattr(self, option) != value:
                flag = "-n" if option == "limit" else f"--{option.replace('_', '-')}"
                raise ValueError(
                    f"{flag} {getattr(self, option)}: the traces of {run_dir} were made with {flag} {value}; "
                    f"leave {flag} out to probe them, or generate new traces into a new --out"
                )
        if made.get("source") == "ingest":  # cotprobe.ingest keeps the questions in the run directory
            recorded["dataset"] = str(Path(run_dir) / made["dataset"])
        # runs made before these were recorded used the compact prompt and a 512-token cue budget
        return replace(self, **recorded, prompt_template=made.get("prompt_template_spec", "compact"),
                       cue_budget=made.get("cue_budget", 512))


# Options that say which traces a run holds: (option, manifest key of the generate stage). A user's
# option that contradicts the run is refused (RUN_OPTIONS); the prompt options are taken as recorded.
# The two "_spec" keys hold the option as given: "scale" and "prompt_template" hold what it resolved to.
RUN_OPTIONS = [("model", "model"), ("dataset", "dataset"), ("limit", "limit"), ("seed", "seed"),
               ("style", "style"), ("scale", "scale_spec"), ("budget", "budget")]
MANIFEST_KEYS = RUN_OPTIONS + [("cue_budget", "cue_budget"), ("prompt_template", "prompt_template_spec"),
                               ("profile", "profile_spec"), ("chat_template", "chat_template"),
                               ("chat_template_kwargs", "chat_template_kwargs")]


MAX_TIMEOUT = 7 * 24 * 3600.0  # seconds: a week; more is no limit at all (and overflows the HTTP client)

# The type of each recorded generate setting from_run reads (limit may be null).
_RECORDED_TYPES = {"model": str, "dataset": str, "limit": (int, type(None)), "seed": int, "style": str,
                   "scale_spec": str, "budget": int}


def recorded_options(made: dict, manifest: Path) -> dict:
    """The RUN_OPTIONS and the profile name of a generate stage's settings, each checked for its
    type (a hand-edited manifest is named by its field, not met later as a TypeError)."""
    recorded = {}
    for option, key in RUN_OPTIONS:
        if key not in made:
            raise ValueError(f"{manifest}: stages.generate.settings has no '{key}'; is it a cotprobe run?")
        value, wanted = made[key], _RECORDED_TYPES[key]
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise ValueError(f"{manifest}: stages.generate.settings.{key} should be "
                             f"{'a whole number' if wanted in (int, (int, type(None))) else 'text'}, got {value!r}")
        recorded[option] = value
    profile = made.get("profile")
    name = profile.get("name") if isinstance(profile, dict) else profile  # a profile given by its name
    if made.get("profile_spec") == AUTO:  # chosen from the chat template: chosen again, the same way
        return recorded | {"profile": AUTO}
    if not isinstance(name, str) or not _known_profile(name):
        raise ValueError(f"{manifest}: stages.generate.settings.profile should be one of {', '.join(sorted(PROFILES))} "
                         f"(or an object with its 'name'), got {profile!r}")
    return recorded | {"profile": name}


def _known_profile(name: str) -> bool:
    if name == AUTO:
        return True
    try:
        get_profile(name)
    except ValueError:
        return False
    return True


def default_experiment(parser: argparse.ArgumentParser, argv: list[str] | None) -> list[str]:
    """The command line to parse: with none given, parser defaults become DEFAULT_EXPERIMENT."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.set_defaults(**DEFAULT_EXPERIMENT)
    return argv


def resolve_run(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None,
                run_dir: str | None, run_flag: str) -> tuple[Path, RunConfig]:
    """The run directory a probing command (truncate, ablate) works in, and its configuration.

    With a run to reuse (`run_dir`, given as `run_flag`): its recorded model and data options
    are taken, and an option the user gave that contradicts them is refused, as is an --out
    elsewhere (the probes go into the run that holds the traces). Without one: the default
    experiment (no --dataset, no -n) is DEFAULT_EXPERIMENT_N questions of the default
    dataset, said on stderr; any --dataset given runs all of it unless -n says otherwise."""
    given = given_options(parser, argv)
    config = RunConfig.from_args(args)
    if run_dir:
        open_existing(run_dir)
        if "out" in given and Path(args.out).resolve() != Path(run_dir).resolve():
            raise ValueError(f"--out {args.out}: {run_flag} {run_dir} writes its probes into {run_dir}; "
                             f"leave --out out (or copy the run directory to {args.out} and probe the copy)")
        return Path(run_dir), config.from_run(run_dir, given)
    if "dataset" not in given and "limit" not in given:
        config = replace(config, limit=DEFAULT_EXPERIMENT_N)
        print(f"default experiment: {DEFAULT_EXPERIMENT_N} questions of {config.dataset} "
              "(give -n or --dataset to change)", file=sys.stderr)
    return Path(args.out), config


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs a model (the fields of RunConfig)."""
    parser.add_argument("--model", default=RunConfig.model,
                        help=f"embedded model name, local model folder or Hugging Face id (default {DEFAULT_MODEL})")
    parser.add_argument("--profile", choices=[AUTO] + sorted(PROFILES), metavar="NAME",
                        help="model family profile (think tags, who opens the thought, how the answer is opened, "
                             "template options); required for non-embedded models. auto: read off the chat template "
                             "(rendered with a probe conversation, never from the model's name); an ambiguous "
                             f"template is refused, naming the profiles to choose from. Names: {', '.join(sorted(PROFILES))}")
    parser.add_argument("--chat-template", default=None, metavar="FILE",
                        help="a Jinja chat template file to render the prompts with instead of the tokenizer's own "
                             "(as transformers and vLLM take it); recorded in the manifest")
    parser.add_argument("--chat-template-kwargs", type=json_object, default={}, metavar="JSON",
                        help="options passed to the chat template, over the profile's, e.g. "
                             "'{\"reasoning_effort\": \"high\"}' or '{\"enable_thinking\": false}'; recorded in the manifest")
    parser.add_argument("--dataset", default=RunConfig.dataset,
                        help=f"bundled set ({', '.join(DATASETS)}) or a .jsonl/.csv file (default trivia)")
    parser.add_argument("-n", "--limit", type=positive_int, default=None,
                        help="seeded sample of this many questions (default: all of --dataset; arithmetic: 100)")
    parser.add_argument("--seed", type=int, default=RunConfig.seed, help="sampling seed (default %(default)s)")
    parser.add_argument("--style", choices=sorted(STYLES), default=RunConfig.style,
                        help="prompt style (default %(default)s)")
    parser.add_argument("--prompt-template", default=RunConfig.prompt_template, metavar="NAME|FILE",
                        help=f"prompt template: {', '.join(TEMPLATE_NAMES)} or a JSON file (default {DEFAULT_TEMPLATE}: "
                             "the paper's prompt, with the classes' probability ranges; non-reasoning models restate "
                             "answer and confidence in a second turn; 'compact' is the earlier short prompt)")
    parser.add_argument("--scale", default=RunConfig.scale,
                        help=f"confidence scale: {', '.join(SCALES)} or a JSON file (default verbal10)")
    parser.add_argument("--budget", type=positive_int, default=RunConfig.budget,
                        help="thinking token budget (default %(default)s; paper: 4096-8192)")
    parser.add_argument("--cue-budget", type=int, default=RunConfig.cue_budget,
                        help="profiles with the confidence cue (think-cue): tokens the model may think on after the "
                             "cue (default 2048, as the paper)")
    parser.add_argument("--batch-size", type=positive_int, default=RunConfig.batch_size,
                        help="generation batch size (default %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="where embedded models are cached (default ~/.cache/cotprobe)")
    parser.add_argument("--backend", choices=("hf", "openai"), default=RunConfig.backend,
                        help="hf: run the model here with transformers (default); openai: send requests to an "
                             "OpenAI-compatible completions server (vLLM, SGLang, llama.cpp) at --base-url")
    parser.add_argument("--base-url", action="append", default=None, metavar="URL",
                        help="server address for --backend openai, e.g. http://localhost:8000/v1; several "
                             "servers of the same model: repeat it, separate with commas, or @FILE (one per line)")
    parser.add_argument("--data-dir", default=None,
                        help="where a paper benchmark's files are (folder or file; default "
                             "~/.cache/cotprobe/datasets/<name>/; see docs/datasets.md)")
    add_server_arguments(parser)
    add_loading_arguments(parser)
    grading = parser.add_argument_group(
        "grading", "rules (default, offline): alias match, choice letters, numbers (cotprobe.grade). judge: the "
                   "paper's grader, an LLM judge (SimpleQA-style correct / incorrect / not attempted; only correct "
                   "counts; prompt cotprobe/_data/grader_prompt.json) through any backend; its verdicts go to "
                   "<run>/verdicts.jsonl, are not asked again, and unparsed ones are counted and graded incorrect")
    grading.add_argument("--grader", choices=("rules", "judge"), default=RunConfig.grader, help="default rules")
    grading.add_argument("--judge-model", default=None, metavar="MODEL",
                         help="the grading judge (embedded name, local folder, hub id, or the served model's name)")
    grading.add_argument("--judge-backend", choices=("hf", "openai"), default=RunConfig.judge_backend, help="default hf")
    grading.add_argument("--judge-base-url", default=None, help="server of --judge-backend openai")


def json_object(text: str) -> dict:
    """argparse type: a JSON object (the chat template's options)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at character {exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"enable_thinking\": true}}', got {text!r}")
    return value


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
