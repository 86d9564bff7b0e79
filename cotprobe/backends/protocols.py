"""The interfaces backends offer, declared as Protocols (structural: no base class to inherit).

Every backend is a `Backend`: tokenizer operations, the chat template, batched greedy generation
of token-id prompts, and `session(ids)`, one growing token sequence (`Session`) that can be
extended, continued greedily and asked the log-probability of candidate continuations. Rows
(`Rows`) are several prefixes of one sequence with the same operations applied to every row:
what `backends.fork` hands forcing, truncation and resampling. Backends that share work across
rows provide their own `fork` (`ForkingBackend`); the others get `SequentialRows`, one session
per row. Sampling (`SamplingBackend`: its sessions and rows sample), hidden states
(`HiddenStatesBackend`) and a remembered prompt start (`PrefixRemembering`) are capabilities
some backends have.

The Protocols are runtime-checkable, so `isinstance(x, Backend)` checks that the members exist;
`conformance` also checks that each method takes the parameters the Protocol names. What a
backend can do is read in one place, `capabilities_of(backend)`; nothing else tests a backend for
an attribute.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .base import Completion


@runtime_checkable
class Tokenizing(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def chat_prompt(self, messages: list[dict[str, str]], **template_kwargs: Any) -> str: ...

    def decode_many(self, pieces: list[list[int]]) -> list[str]:
        """`decode` of each piece (one batched call where the tokenizer has one)."""

    special_ids: frozenset[int]  # the tokenizer's added (special) tokens: never merged into text
    vocab_size: int  # token ids lie in [0, vocab_size)


@runtime_checkable
class Session(Protocol):
    """One token sequence; greedy continuation appends what it generates."""

    ids: list[int]

    def extend(self, ids: list[int]) -> None: ...

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> Completion: ...

    def score(self, options: list[list[int]]) -> list[float]:
        """Total log-probability of each option as a continuation of the sequence."""


@runtime_checkable
class SamplingSession(Session, Protocol):
    def sample(self, max_new_tokens: int, stop: list[str], temperature: float, seed: int) -> Completion: ...

    def rewind(self, n: int) -> None:
        """Take back the last n tokens."""


@runtime_checkable
class Rows(Protocol):
    """Several sequences (prefixes of one trace) advanced together: one result per row."""

    ids: list[list[int]]

    def extend(self, rows: list[list[int]]) -> None: ...

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> list[Completion]: ...

    def score(self, options: list[list[int]]) -> list[list[float]]:
        """totals[row][option]: each option's log-probability after each row."""


@runtime_checkable
class SamplingRows(Rows, Protocol):
    def sample(self, max_new_tokens: int, stop: list[str], temperature: float, seed: int) -> list[Completion]: ...

    def rewind(self, counts: list[int]) -> None:
        """Take back the last counts[k] tokens of row k."""


@runtime_checkable
class Backend(Tokenizing, Protocol):
    name: str
    context_length: int

    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[Completion]:
        """Greedy completions of a batch of token-id prompts, in order, each cut at its first stop."""

    def session(self, ids: list[int]) -> Session: ...

    def describe(self) -> dict[str, Any]:
        """What a run's manifest records of the backend (kind, model, and how it scores)."""


@runtime_checkable
class SamplingBackend(Backend, Protocol):
    """A backend whose sessions are `SamplingSession`s and whose rows are `SamplingRows`."""

    samples: bool  # True where sampling is offered


@runtime_checkable
class ForkingBackend(Backend, Protocol):
    # True: `fork` runs its rows as one batch (a shared prefix, or requests in flight together);
    # False: one row at a time, so the cut sweep forks one cut at a time to bound its memory
    shares_rows: bool

    def fork(self, ids: list[int], lengths: list[int]) -> Rows:
        """Rows holding ids[:n] for each n in lengths, sharing work across them."""


@runtime_checkable
class AcrossForkingBackend(ForkingBackend, Protocol):
    """A backend that also runs the rows of several sequences as one batch (the cut rows of
    several traces: `cuts.truncate` with --sweep-batch)."""

    def fork_across(self, sequences: list[tuple[list[int], list[int]]]) -> Rows:
        """Rows holding ids[:n] for each n in lengths, for each (ids, lengths) in turn."""

    def traces_per_batch(self, rows_per_trace: int, tokens: int) -> int:
        """How many sequences of about `tokens` tokens, with that many rows each, one batch
        should hold on this device (the automatic --sweep-batch)."""


@runtime_checkable
class HiddenStatesBackend(ForkingBackend, Protocol):
    hidden_shape: tuple[int, int]  # (number of layers, hidden size)

    def hidden_states(self, ids: list[int], positions: list[int], layers: list[int]) -> Any:
        """(positions, layers, hidden) hidden states of ids at those positions and layers."""


@runtime_checkable
class ConcurrentBackend(Protocol):
    # requests the backend keeps in flight at once, safely from several threads (a server's
    # client); the cut sweep then keeps several traces in flight (`cuts.truncate`)
    in_flight: int


@runtime_checkable
class PrefixRemembering(Protocol):
    def remember_prefix(self, ids: list[int]) -> None:
        """Keep the encoding of `ids`, which the coming prompts start with (the HF backend; a
        server caches prompt prefixes itself)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers beyond `Backend`, read once by `capabilities`."""

    forks: bool  # its own `fork` (`ForkingBackend`); else one session per row
    shares_rows: bool  # `fork` runs rows as one batch
    samples: bool  # sessions and rows sample (`SamplingBackend`)
    hidden_states: bool  # `HiddenStatesBackend`
    remembers_prefix: bool  # `PrefixRemembering`
    forks_across: bool = False  # `AcrossForkingBackend`, with rows shared (`shares_rows`)
    in_flight: int = 1  # requests in flight at once from several threads (`ConcurrentBackend`); 1: none


def capabilities_of(backend: Backend) -> Capabilities:
    """The one place where a backend's optional capabilities are tested (by Protocol)."""
    forks = isinstance(backend, ForkingBackend)
    return Capabilities(
        forks=forks, shares_rows=forks and bool(backend.shares_rows),
        samples=isinstance(backend, SamplingBackend) and bool(backend.samples),
        hidden_states=isinstance(backend, HiddenStatesBackend),
        remembers_prefix=isinstance(backend, PrefixRemembering),
        forks_across=forks and bool(backend.shares_rows) and isinstance(backend, AcrossForkingBackend),
        in_flight=max(1, int(backend.in_flight)) if isinstance(backend, ConcurrentBackend) else 1)


def conformance(obj: Any, protocol: type) -> list[str]:
    """What `obj` lacks to satisfy `protocol`: missing members, and methods that do not take a
    parameter the Protocol's method names (an empty list when it conforms)."""
    problems = []
    for name in sorted(_members(protocol)):
        if not hasattr(obj, name):
            problems.append(f"{type(obj).__name__} has no {name}")
            continue
        wanted = getattr(protocol, name, None)
        if not callable(wanted):
            continue
        given = inspect.signature(getattr(obj, name)).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in given.values())
        for param in list(inspect.signature(wanted).parameters.values())[1:]:
            missing = not takes_any if param.kind is param.VAR_KEYWORD else param.name not in given and not takes_any
            if missing:
                problems.append(f"{type(obj).__name__}.{name} takes no {param.name!r}")
    return problems


def _members(protocol: type) -> set[str]:
    names: set[str] = set()
    for base in protocol.__mro__:
        if base is object or base is Protocol or base.__module__ == "typing":
            continue
        names |= {n for n in vars(base) if not n.startswith("_")} | set(getattr(base, "__annotations__", {}))
    return names
