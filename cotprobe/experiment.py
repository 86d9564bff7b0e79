"""From a RunConfig to what the stages run: the `Prober` (the loaded backend, the profile and
scale, the forcing settings, the grader), the questions, the generation settings, and the
record of it all for the manifest; and the traces a probing stage works on."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from . import data as datasets
from .backends import TINY_MODEL, load_backend
from .config import RunConfig
from .forcing import Prober
from .grade import RULES, Grader, Graders
from .judge import grading_section
from .models import EMBEDDED, check_name
from .profiles import AUTO, PROFILES, Profile, for_style, get_profile
from .prompts import confidence_cue, few_shot_exemplars, get_template, prompt_spec
from .records import Question, Trace, Verdict
from .scales import get_scale
from .store import RECORD_FILES, RunDir
from .summary import update_metrics
from .template_probe import detect
from .tracing import GenerationSettings, check_prompts, generate

__all__ = [
    "Experiment",
    "chosen_profile",
    "default_profile",
    "load_model",
    "make_grader",
    "setup",
]


def default_profile(model: str, profile: str | None) -> Profile:
    """The named profile, else the embedded model's own; other models must name one."""
    if model != TINY_MODEL:
        check_name(model)
    if profile is not None:
        return get_profile(profile)
    if model in EMBEDDED:
        return get_profile(EMBEDDED[model].profile)
    if model == TINY_MODEL:
        return get_profile("plain")
    raise ValueError(f"--profile is required for {model!r}: auto (read off the chat template) or one of "
                     f"{', '.join(PROFILES)}")


def chosen_profile(config: RunConfig, backend) -> tuple[Profile, dict[str, Any] | None]:
    """The configuration's profile with --chat-template-kwargs over its own template options, and
    None; --profile auto: the profile read off the backend's chat template (`template_probe.detect`,
    said in one line on stderr) and what was read, for the manifest."""
    if config.profile == AUTO:
        detection = detect(backend.chat_prompt, backend.template_source(), config.chat_template_kwargs)
        print(detection.line(), file=sys.stderr)
        return detection.profile, detection.record()
    profile = default_profile(config.model, config.profile)
    options = {**profile.chat_template_kwargs, **config.chat_template_kwargs}
    return (replace(profile, chat_template_kwargs=options) if options != profile.chat_template_kwargs else profile), None


@dataclass(frozen=True)
class Experiment:
    """What a stage needs to make or probe the traces of one configuration: the `Prober` (backend,
    styled profile, scale, forcing settings, grader), the questions, the generation settings and
    the manifest record of the generate stage."""

    prober: Prober
    questions: list[Question]
    settings: GenerationSettings
    recorded: dict[str, Any]  # the generate stage's manifest settings
    judge: Any = None  # the grading judge (cotprobe.judge.AnswerJudge) when --grader judge

    @property
    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}

    def traces(self, run: RunDir, reuse: bool, stage: str) -> list[Trace]:
        """The run's existing traces (reuse) or freshly generated ones, checked against the questions.
        The manifest records the backend this stage runs on (`backend:<stage>`: kind, model, how
        it scores, the top-k of a server)."""
        if reuse:
            traces = run.traces()
            if not traces:
                raise ValueError(f"{run.path}: no traces to {stage} (run python -m cotprobe.generate first)")
        else:
            run.start_stage("generate", self.recorded)
            traces = generate(self.prober, self.questions, run, self.settings)
        size = self.prober.backend.vocab_size
        outside = next((t for t in traces if any(not 0 <= i < size for i in t.cot_token_ids)), None)
        if outside is not None:
            raise ValueError(f"{run.path / RECORD_FILES[Trace]} (question {outside.question_id!r}): cot_token_ids "
                             f"outside the vocabulary of {self.prober.backend.name} ({size} tokens); were these "
                             "traces made with another tokenizer?")
        known = {q.id for q in self.questions}
        missing = [t.question_id for t in traces if t.question_id not in known]
        if missing:
            raise ValueError(f"{run.path}: traces for questions not in --dataset {self.recorded['dataset']}: "
                             f"{missing[:3]}")
        run.record_stage(f"backend:{stage}", self.prober.backend.describe())
        return traces

    def report_grading(self, run_dir: str | Path) -> None:
        """With a grading judge: its verdict counts, printed and kept in metrics.json ("grading")."""
        if self.judge is not None:
            c = self.judge.counts()
            update_metrics(run_dir, {"grading": grading_section(self.judge)})
            print(f"grading judge {self.judge.key}: {c['verdicts']} verdicts ({c['asked']} asked now), "
                  f"{c['unparsed']} unparsed (graded incorrect; see verdicts.jsonl)")


def load_model(config: RunConfig, model: str | None = None, kind: str | None = None,
               base_url: str | list[str] | None = None):
    """The backend of the configuration's model (or another model through the same options)."""
    urls = base_url if base_url is not None else (list(config.base_url) if config.base_url else None)
    return load_backend(model or config.model, kind=kind or config.backend, cache_root=config.cache_dir,
                        reuse_cache=config.reuse_cache, base_url=urls, **config.server_options(),
                        loading=config.loading)


def make_grader(config: RunConfig, run_dir: str | Path) -> tuple[Any, Grader, Any]:
    """The grader the configuration asks for: (what to record of it, the grader, the judge or None).
    Nothing process-wide is changed: the grader travels in the experiment's `Prober`."""
    if config.grader == "rules":
        if config.judge_model:
            raise ValueError("--judge-model is for --grader judge")
        return "rules", RULES, None
    if not config.judge_model:
        raise ValueError("--grader judge needs --judge-model MODEL")
    from .judge import AnswerJudge, load_grader_prompt

    backend = load_backend(config.judge_model, kind=config.judge_backend, cache_root=config.cache_dir,
                           base_url=config.judge_base_url)
    judge = AnswerJudge(backend, config.judge_model, load_grader_prompt(), Path(run_dir) / RECORD_FILES[Verdict])
    return judge.describe(config.judge_backend), Graders.every_kind(judge), judge


def setup(config: RunConfig, run_dir: str | Path, new_traces: bool = True) -> Experiment:
    """Load everything a configuration names. new_traces: traces are to be made, so every
    question's prompt is first checked against the model's context."""
    if config.profile != AUTO:
        default_profile(config.model, config.profile)  # an unknown or missing profile: refused before loading
    scale = get_scale(config.scale)
    places: dict[str, str] = {}
    questions = datasets.load_dataset(config.dataset, n=config.limit, seed=config.seed,
                                      data_dir=config.data_dir, places=places)
    template = get_template(config.prompt_template)
    settings = GenerationSettings.from_config(config)
    recorded_grader, grader, judge = make_grader(config, run_dir)
    backend = load_model(config)
    if config.chat_template:
        backend.chat_template = Path(config.chat_template).read_text(encoding="utf-8")
    profile, detected = chosen_profile(config, backend)
    profile = for_style(profile, config.style)
    spec = prompt_spec(settings.style, scale, template, profile.reasoning)
    prober = Prober(backend, profile, scale, settings.force, grader)
    if new_traces:
        check_prompts(prober, questions, settings, places)
    recorded = config.to_manifest() | {
        "profile": asdict(profile), "scale": asdict(scale), "data_hash": datasets.dataset_hash(questions),
        "decoding": "greedy", "force": asdict(prober.force), "prompt_template": template.name,
        "prompt_instruction": spec.instruction(), "prompt_restate": spec.restate_message(),
    }
    if config.chat_template:
        recorded["chat_template_sha256"] = hashlib.sha256(backend.chat_template.encode("utf-8")).hexdigest()
    if detected:
        recorded["profile_auto"] = detected
    if config.loading.recorded():
        recorded["loading"] = config.loading.recorded()
    if profile.confidence_cue:
        recorded["confidence_cue"] = confidence_cue()
    recorded["grader"] = recorded_grader
    if few_shot_exemplars(settings.style):
        recorded["few_shot"] = few_shot_exemplars(settings.style)
    return Experiment(prober, questions, settings, recorded, judge)
