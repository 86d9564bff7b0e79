"""The registry of named question sets, and `load_dataset`, the one way stages get questions:
by name (with an optional ':option') or by the path of a user file; then a seeded sample."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cotprobe.records import Question, to_dict

from .benchmarks import load_benchmark
from .bundled import load_bundled
from .generator import arithmetic
from .questions import DatasetError
from .user_files import read_user_file

DEFAULT_ARITHMETIC_N = 100
USER_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class LoadRequest:
    """What `load_dataset` was asked, as a dataset's loader sees it."""

    n: int | None
    seed: int
    data_dir: str | Path | None
    hub: bool
    places: dict[str, str]  # filled with question id -> where it was read


@dataclass(frozen=True)
class DatasetSpec:
    """One named question set.

    load(name, option, request): every question of the set (a sample is taken afterwards), or
    for a `generated` set exactly the request's n (it is not sampled).
    """

    description: str
    load: Callable[[str, str, LoadRequest], list[Question]]
    generated: bool = False


def _bundled(name: str, option: str, request: LoadRequest) -> list[Question]:
    return load_bundled(name, option, places=request.places)


def _benchmark(name: str, option: str, request: LoadRequest) -> list[Question]:
    return load_benchmark(name, option, data_dir=request.data_dir, hub=request.hub, places=request.places)


def _arithmetic(name: str, option: str, request: LoadRequest) -> list[Question]:
    n = DEFAULT_ARITHMETIC_N if request.n is None else request.n
    return arithmetic(n, option or "medium", request.seed)


REGISTRY: dict[str, DatasetSpec] = {
    "trivia": DatasetSpec("bundled open-domain trivia (cotprobe/_data/trivia.jsonl), easy to obscure, "
                          "alias-graded; 'trivia:easy|medium|hard' for one level", _bundled),
    "mc": DatasetSpec("bundled multiple choice, 4-10 options, many subjects (cotprobe/_data/mc.jsonl)", _bundled),
    "mc-math": DatasetSpec("the math-heavy half of 'mc' (meta.math true)", _bundled),
    "mc-nonmath": DatasetSpec("the knowledge half of 'mc' (meta.math false)", _bundled),
    "arithmetic": DatasetSpec("generated integer arithmetic and word problems; "
                              "'arithmetic:1'..'arithmetic:5' or ':easy/:medium/:hard' (default medium = 3)",
                              _arithmetic, generated=True),
    "triviaqa": DatasetSpec("TriviaQA rc.nocontext validation (local files; see docs/datasets.md)", _benchmark),
    "triviaqa-unfiltered": DatasetSpec("TriviaQA unfiltered(.nocontext) validation (local files)", _benchmark),
    "mmlu-pro": DatasetSpec("MMLU-Pro test set, all categories (local files)", _benchmark),
    "mmlu-pro-math": DatasetSpec("MMLU-Pro math, physics, chemistry, engineering", _benchmark),
    "mmlu-pro-nonmath": DatasetSpec("MMLU-Pro other categories", _benchmark),
    "supergpqa": DatasetSpec("SuperGPQA, middle difficulty by default ('supergpqa:easy|middle|hard|all')",
                             _benchmark),
    "supergpqa-math": DatasetSpec("SuperGPQA questions that need calculation (is_calculation)", _benchmark),
    "supergpqa-nonmath": DatasetSpec("SuperGPQA questions that need no calculation", _benchmark),
}

DATASETS: dict[str, str] = {name: spec.description for name, spec in REGISTRY.items()}


def load_dataset(
    spec: str | Path,
    n: int | None = None,
    seed: int = 0,
    *,
    data_dir: str | Path | None = None,
    columns: dict[str, str] | None = None,
    hub: bool = True,
    places: dict[str, str] | None = None,
) -> list[Question]:
    """Load a question set by name or path, validate it and take a seeded sample of `n`.

    spec: a name from DATASETS with an optional ':option' (the arithmetic level, 1-5 or
        easy/medium/hard, e.g. 'arithmetic:hard'; the SuperGPQA difficulty, easy/middle/hard/all,
        e.g. 'supergpqa-math:all') or a path to a .jsonl/.json/.csv/.parquet file.
    n: number of questions; None keeps all. A sample is random under `seed` but keeps file
        order, and the sample of n is contained in the sample of any larger n (same seed).
        For 'arithmetic' it is the number generated (default 100).
    data_dir: where a benchmark's files are (the folder or one file); default
        ~/.cache/cotprobe/datasets/<name>/.
    columns: for user files, Question field -> file column (identity by default).
    hub: for benchmarks without local files, try the `datasets` package (if installed).
    places: if given, filled with question id -> where it was read ('FILE line k'), for
        messages about one question.
    """
    request = LoadRequest(n, seed, data_dir, hub, places={})
    if _looks_like_path(spec):
        every = read_user_file(spec, columns, places=request.places)
        questions = sample_questions(every, n, seed, where=str(spec))
    else:
        questions = _load_named(str(spec), request)
    if places is not None:
        found = request.places
        places.update({q.id: found.get(q.id, f"{spec} item {i}") for i, q in enumerate(questions, 1)})
    return questions


def _load_named(spec: str, request: LoadRequest) -> list[Question]:
    name, _, option = spec.partition(":")
    if name not in REGISTRY:
        raise DatasetError(
            f"unknown dataset {name!r}: known datasets are {', '.join(REGISTRY)} (or give a path to a "
            f".jsonl/.csv file)"
        )
    dataset = REGISTRY[name]
    questions = dataset.load(name, option, request)
    if dataset.generated:
        return questions
    return sample_questions(questions, request.n, request.seed, where=name)


def _looks_like_path(spec: str | Path) -> bool:
    text = str(spec)
    if isinstance(spec, Path) or text.lower().endswith(USER_SUFFIXES):
        return True
    return "/" in text or "\\" in text or Path(text).is_file()


def sample_questions(
    questions: list[Question], n: int | None, seed: int = 0, where: str = "dataset"
) -> list[Question]:
    """A seeded random sample of `n` questions in their original order (all if n is None)."""
    if n is None:
        return list(questions)
    if n < 0 or n > len(questions):
        raise DatasetError(f"{where}: asked for n={n} questions but it has {len(questions)}")
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    return [questions[i] for i in sorted(order[:n])]


def dataset_hash(questions: Iterable[Question]) -> str:
    """SHA-256 (hex) of the canonical JSON of the questions, in order: for run manifests."""
    payload = json.dumps(
        [to_dict(q) for q in questions], sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
