"""Backends run a model: batched free generation, and sessions for forcing and scoring.

A backend offers `encode`, `decode`, `chat_prompt`, `generate` (batched greedy decoding of
token-id prompts) and `session(ids)`: a growing token sequence that can be extended, greedily
continued, and asked the log-probability of candidate continuations. `fork(backend, ids, lengths)`
gives rows for several prefixes of one sequence with the same operations applied to every row:
that is what forcing and truncation probing use. The Hugging Face backend encodes the shared
prefix once and decodes all rows as one batch; other backends run one session per row.

The interfaces are declared in `backends.protocols`; the modules:

- `base`: the shared errors, `Completion`, `TokenizerOps`, `cut_at_stop` (a leaf module)
- `rows`: `fork` and `SequentialRows`; `loader`: `load_backend`
- `hf` (with `hf_rows`, `hf_attention`: rows over one shared prefix), `tiny`, `scripted`
- `openai` (the completions dialect, stop handling), over `client` (transport: `http`, and the
  request cache: `cache`), with `capabilities` (what a server offers) and `scoring` (labels)
- `local_server`, `recording_server`: servers for tests and benchmarks
"""

from .base import (
    TINY_MODEL,
    Completion,
    NoHiddenStates,
    PromptTooLong,
    ScoringUnavailable,
    ServerError,
    TokenizerOps,
    check_fits,
    cut_at_stop,
)
from .loader import load_backend
from .protocols import (
    AcrossForkingBackend,
    Backend,
    Capabilities,
    ConcurrentBackend,
    ForkingBackend,
    HiddenStatesBackend,
    PrefixRemembering,
    Rows,
    SamplingBackend,
    SamplingRows,
    SamplingSession,
    Session,
    capabilities_of,
    conformance,
)
from .rows import SequentialRows, fork

__all__ = [
    "TINY_MODEL",
    "AcrossForkingBackend",
    "Backend",
    "Capabilities",
    "Completion",
    "ConcurrentBackend",
    "ForkingBackend",
    "HiddenStatesBackend",
    "PrefixRemembering",
    "NoHiddenStates",
    "PromptTooLong",
    "Rows",
    "SamplingBackend",
    "SamplingRows",
    "SamplingSession",
    "ScoringUnavailable",
    "SequentialRows",
    "ServerError",
    "Session",
    "TokenizerOps",
    "check_fits",
    "capabilities_of",
    "conformance",
    "cut_at_stop",
    "fork",
    "load_backend",
]
