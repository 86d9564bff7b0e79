"""From a RunConfig to what the stages run: the loaded backend, the questions, the profile and
scale, the generation settings, the grader, and the record of it all for the manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import data as datasets
from . import grade as grading
from .backends import TINY_MODEL, load_backend
from .config import RunConfig
from .models import EMBEDDED, check_name
from .profiles import PROFILES, Profile, for_style, get_profile
from .prompts import confidence_cue, few_shot_exemplars, get_template, prompt_spec
from .records import Question, Verdict
from .scales import Scale, get_scale
from .store import RECORD_FILES
from .tracing import GenerationSettings, check_prompts


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
    raise ValueError(f"--profile is required for {model!r} (one of: {', '.join(PROFILES)})")


@dataclass
class Experiment:
    """What a stage needs to make or probe the traces of one configuration."""

    backend: Any
    questions: list[Question]
    profile: Profile
    scale: Scale
    settings: GenerationSettings
    recorded: dict[str, Any]  # the generate stage's manifest settings
    judge: Any = None  # the grading judge (cotprobe.judge.AnswerJudge) when --grader judge

    def print_verdicts(self) -> None:
        """The grading judge's counts, if there is one."""
        if self.judge is not None:
            c = self.judge.counts()
            print(f"grading judge {self.judge.key}: {c['verdicts']} verdicts ({c['asked']} asked now), "
                  f"{c['unparsed']} unparsed (graded incorrect; see verdicts.jsonl)")


def load_model(config: RunConfig, model: str | None = None, kind: str | None = None,
               base_url: str | list[str] | None = None):
    """The backend of the configuration's model (or another model through the same options)."""
    urls = base_url if base_url is not None else (list(config.base_url) if config.base_url else None)
    return load_backend(model or config.model, kind=kind or config.backend, cache_root=config.cache_dir,
                        reuse_cache=config.reuse_cache, base_url=urls, **config.server_options(),
                        loading=config.loading)


def setup_grader(config: RunConfig, run_dir: str | Path):
    """Install the grader the configuration asks for (every question kind): (what to record of
    it, the judge or None)."""
    for kind, default in grading.DEFAULT_GRADERS.items():
        grading.register_grader(kind, default)
    if config.grader == "rules":
        if config.judge_model:
            raise ValueError("--judge-model is for --grader judge")
        return "rules", None
    if not config.judge_model:
        raise ValueError("--grader judge needs --judge-model MODEL")
    from .judge import AnswerJudge, load_grader_prompt

    backend = load_backend(config.judge_model, kind=config.judge_backend, cache_root=config.cache_dir,
                           base_url=config.judge_base_url)
    judge = AnswerJudge(backend, config.judge_model, load_grader_prompt(), Path(run_dir) / RECORD_FILES[Verdict])
    for kind_name in grading.DEFAULT_GRADERS:
        grading.register_grader(kind_name, judge)
    return judge.describe(config.judge_backend), judge


def setup(config: RunConfig, run_dir: str | Path, new_traces: bool = True) -> Experiment:
    """Load everything a configuration names. new_traces: traces are to be made, so every
    question's prompt is first checked against the model's context."""
    profile = for_style(default_profile(config.model, config.profile), config.style)
    scale = get_scale(config.scale)
    places: dict[str, str] = {}
    questions = datasets.load_dataset(config.dataset, n=config.limit, seed=config.seed,
                                      data_dir=config.data_dir, places=places)
    template = get_template(config.prompt_template)
    settings = GenerationSettings(style=config.style, budget=config.budget, batch_size=config.batch_size,
                                  cue_budget=config.cue_budget, template=config.prompt_template)
    spec = prompt_spec(settings.style, scale, template, profile.reasoning)
    backend = load_model(config)
    if new_traces:
        check_prompts(backend, questions, profile, scale, settings, places)
    recorded = {
        "model": config.model, "profile": asdict(profile), "scale": asdict(scale),
        "dataset": config.dataset, "limit": config.limit, "seed": config.seed,
        "data_hash": datasets.dataset_hash(questions), "style": settings.style,
        "scale_spec": config.scale, "budget": settings.budget, "cue_budget": settings.cue_budget,
        "decoding": "greedy", "force": asdict(settings.force), "prompt_template": template.name,
        "prompt_template_spec": config.prompt_template, "prompt_instruction": spec.instruction(),
        "prompt_restate": spec.restate_message(),
    }
    if config.loading.recorded():
        recorded["loading"] = config.loading.recorded()
    if profile.confidence_cue:
        recorded["confidence_cue"] = confidence_cue()
    recorded["grader"], judge = setup_grader(config, run_dir)
    if few_shot_exemplars(settings.style):
        recorded["few_shot"] = few_shot_exemplars(settings.style)
    return Experiment(backend, questions, profile, scale, settings, recorded, judge)
