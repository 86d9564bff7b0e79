"""Question sets: bundled ones, the paper's benchmarks, generated arithmetic and user files.

Whom it serves: every stage that needs questions calls ``load_dataset(spec, n, seed)``:

- bundled sets shipped in ``cotprobe/_data/``: ``trivia``, ``mc``, ``mc-math``, ``mc-nonmath``;
- ``arithmetic`` (optionally ``arithmetic:1`` ... ``arithmetic:5`` or ``:easy/medium/hard``),
  generated on the fly by ``arithmetic()``;
- the paper's benchmarks ``triviaqa``, ``triviaqa-unfiltered``, ``mmlu-pro`` (``-math``,
  ``-nonmath``) and ``supergpqa`` (``-math``, ``-nonmath``; ``:middle`` by default), read from
  local files in their native formats (see ``docs/datasets.md`` for what to download);
- a path to a user ``.jsonl``/``.json``/``.csv``/``.parquet`` file, with ``columns`` mapping
  Question fields to the file's column names.

Every problem is a ``DatasetError`` whose one-line message names the file and line or row.

Modules: ``registry`` (the named sets, load_dataset, sampling, hashing), ``questions`` (the
checks every question passes, DatasetError), ``readers`` (raw rows of a file), ``cells``
(a cell as a field's value), ``user_files`` (rows to Questions by a column mapping),
``bundled``, ``benchmarks`` (finding the paper's files) with ``parsers`` (their layouts), and
``generator`` (arithmetic).
"""

from .benchmarks import BENCHMARKS, default_data_dir
from .generator import arithmetic
from .parsers import parse_mmlu_pro, parse_supergpqa, parse_triviaqa
from .questions import KINDS, DatasetError, validate_questions
from .registry import (
    DATASETS,
    REGISTRY,
    DatasetSpec,
    dataset_hash,
    load_dataset,
    sample_questions,
)
from .user_files import read_user_file

__all__ = [
    "BENCHMARKS",
    "DATASETS",
    "KINDS",
    "REGISTRY",
    "DatasetError",
    "DatasetSpec",
    "arithmetic",
    "dataset_hash",
    "default_data_dir",
    "load_dataset",
    "parse_mmlu_pro",
    "parse_supergpqa",
    "parse_triviaqa",
    "read_user_file",
    "sample_questions",
    "validate_questions",
]
