"""The paper's benchmarks: where their files live, finding them (or the hub), and loading one
with its math/difficulty filters. The row parsers are in `parsers`."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cotprobe.records import Question

from .parsers import parse_mmlu_pro, parse_supergpqa, parse_triviaqa
from .questions import DatasetError, validate_questions
from .readers import Row, read_rows


@dataclass(frozen=True)
class Benchmark:
    """Where a paper benchmark's files live and how to read them.

    patterns: file globs inside the folder, tried in order; the first that matches wins
    (several matches are allowed only for shards named '-0000k-of-0000n').
    hub_file: the file to download from the Hugging Face dataset `hf_id` (for messages).
    """

    folder: str
    hf_id: str
    hf_config: str | None
    hf_split: str
    hub_file: str
    patterns: tuple[str, ...]
    parser: Callable[[list[Row]], list[Question]]

    @property
    def url(self) -> str:
        return f"https://huggingface.co/datasets/{self.hf_id}/resolve/main/{self.hub_file}"


_GENERIC = ("*.jsonl", "*.json", "*.parquet")

BENCHMARKS: dict[str, Benchmark] = {
    "triviaqa": Benchmark(
        "triviaqa", "mandarjoshi/trivia_qa", "rc.nocontext", "validation",
        "rc.nocontext/validation-00000-of-00001.parquet",
        ("rc.nocontext/validation-*.parquet", "validation-*.parquet", "qa/wikipedia-dev.json",
         "wikipedia-dev.json", *_GENERIC),
        parse_triviaqa,
    ),
    "triviaqa-unfiltered": Benchmark(
        "triviaqa-unfiltered", "mandarjoshi/trivia_qa", "unfiltered.nocontext", "validation",
        "unfiltered.nocontext/validation-00000-of-00001.parquet",
        ("unfiltered.nocontext/validation-*.parquet", "validation-*.parquet",
         "triviaqa-unfiltered/unfiltered-web-dev.json", "unfiltered-web-dev.json", *_GENERIC),
        lambda rows: parse_triviaqa(rows, "triviaqa-unfiltered"),
    ),
    "mmlu-pro": Benchmark(
        "mmlu-pro", "TIGER-Lab/MMLU-Pro", None, "test", "data/test-00000-of-00001.parquet",
        ("data/test-*.parquet", "test-*.parquet", "test*.jsonl", *_GENERIC),
        parse_mmlu_pro,
    ),
    "supergpqa": Benchmark(
        "supergpqa", "m-a-p/SuperGPQA", None, "train", "SuperGPQA-all.jsonl",
        ("SuperGPQA-all.jsonl", *_GENERIC),
        parse_supergpqa,
    ),
}
BENCHMARKS["mmlu-pro-math"] = BENCHMARKS["mmlu-pro-nonmath"] = BENCHMARKS["mmlu-pro"]
BENCHMARKS["supergpqa-math"] = BENCHMARKS["supergpqa-nonmath"] = BENCHMARKS["supergpqa"]

SUPERGPQA_DIFFICULTIES = ("easy", "middle", "hard", "all")


def default_data_dir(name: str) -> Path:
    """~/.cache/cotprobe/datasets/<folder>/ for a benchmark name."""
    return Path.home() / ".cache" / "cotprobe" / "datasets" / BENCHMARKS[name].folder


def load_benchmark(
    name: str, option: str = "", data_dir: str | Path | None = None, hub: bool = True,
    places: dict[str, str] | None = None,
) -> list[Question]:
    """A paper benchmark from local files (or the hub), with its math/difficulty filters."""
    bench = BENCHMARKS[name]
    if name.startswith("supergpqa") and option not in ("", *SUPERGPQA_DIFFICULTIES):
        raise DatasetError(
            f"{name}: unknown difficulty {option!r} (use {', '.join(SUPERGPQA_DIFFICULTIES)})"
        )
    if not name.startswith("supergpqa") and option:
        raise DatasetError(f"{name}: takes no ':{option}' option")
    rows = _benchmark_rows(name, bench, data_dir, hub)
    questions = bench.parser(rows)
    if places is not None:
        places.update({q.id: where for q, (where, _) in zip(questions, rows)})
    if name.startswith("supergpqa") and (option or "middle") != "all":
        questions = [q for q in questions if q.meta.get("difficulty") == (option or "middle")]
    if name.endswith(("-math", "-nonmath")):
        want = name.endswith("-math")
        questions = [q for q in questions if bool(q.meta.get("math")) == want]
    validate_questions(questions, [f"{name} item {i}" for i in range(1, len(questions) + 1)])
    return questions


def _benchmark_rows(
    name: str, bench: Benchmark, data_dir: str | Path | None, hub: bool
) -> list[Row]:
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir(name)
    if folder.is_file():
        return read_rows(folder)
    if (folder / bench.folder).is_dir():
        folder = folder / bench.folder
    files = _find_files(folder, bench.patterns) if folder.is_dir() else []
    if files:
        return [row for path in files for row in read_rows(path)]
    hub_note = _try_hub(bench) if hub else None
    if isinstance(hub_note, list):
        return hub_note
    raise DatasetError(
        f"{name}: no data file in {folder}; download {bench.url} and put it in that folder "
        f"(or pass --data-dir <folder or file>, data_dir= in Python); formats and alternatives: "
        f"docs/datasets.md"
        + (f" [hub: {hub_note}]" if hub_note else "")
    )


_SHARD = re.compile(r"-\d{5}-of-\d{5}")


def _find_files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The files of the first pattern that matches in `folder` (shards together)."""
    for pattern in patterns:
        matches = sorted(p for p in folder.glob(pattern) if p.is_file())
        if len(matches) > 1 and not all(_SHARD.search(p.name) for p in matches):
            names = ", ".join(p.name for p in matches)
            raise DatasetError(
                f"{folder}: several candidate files ({names}); pass --data-dir <one file> (data_dir= in Python)"
            )
        if matches:
            return matches
    return []


def _try_hub(bench: Benchmark) -> list[Row] | str | None:
    """Rows from the `datasets` package if installed and the hub answers, else why not."""
    if importlib.util.find_spec("datasets") is None:
        return None
    try:
        import datasets

        table = datasets.load_dataset(bench.hf_id, bench.hf_config, split=bench.hf_split)
    except Exception as exc:  # noqa: BLE001 - the hub is optional: any failure falls back to local files
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    return [(f"{bench.hf_id} row {i}", dict(row)) for i, row in enumerate(table, 1)]
