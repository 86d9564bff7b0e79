"""`fork`: rows for several prefixes of one sequence, batched where the backend can.

`SequentialRows` is the generic form: any backend with `session(ids)` gets it, one session per
row. Backends that share work across rows (the Hugging Face one, the OpenAI one) provide their
own `fork` with the same interface (`protocols.Rows`).
"""

from __future__ import annotations

from .base import Completion, NoHiddenStates
from .protocols import Backend, Rows, capabilities_of


class SequentialRows:
    """Several prefixes of one sequence probed one after another, each in its own session."""

    def __init__(self, backend: Backend, ids: list[int], lengths: list[int]):
        self.sessions = [backend.session(ids[:n]) for n in lengths]

    @property
    def ids(self) -> list[list[int]]:
        return [s.ids for s in self.sessions]

    def extend(self, rows: list[list[int]]) -> None:
        for session, ids in zip(self.sessions, rows, strict=True):
            session.extend(ids)

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> list[Completion]:
        return [s.greedy(max_new_tokens, stop, nonblank) for s in self.sessions]

    def score(self, options: list[list[int]]) -> list[list[float]]:
        return [s.score(options) for s in self.sessions]

    def sample(self, max_new_tokens: int, stop: list[str], temperature: float, seed: int) -> list[Completion]:
        return [s.sample(max_new_tokens, stop, temperature, seed + k) for k, s in enumerate(self.sessions)]

    def rewind(self, counts: list[int]) -> None:
        for session, n in zip(self.sessions, counts, strict=True):
            session.rewind(n)


def fork(backend: Backend, ids: list[int], lengths: list[int], hidden_layers: list[int] | None = None,
         hidden_positions: list[int] | None = None) -> Rows:
    """Rows holding ids[:n] for each n in lengths, batched where the backend can. With
    hidden_layers (HF backend only), `rows.hidden` holds the hidden states of each prefix's last
    token, or of `hidden_positions` of ids (see `HFBackend.fork`)."""
    can = capabilities_of(backend)
    if hidden_layers and not can.hidden_states:
        raise NoHiddenStates(
            f"the {type(backend).__name__} backend has no hidden states (a server returns tokens only); "
            "latent confidence needs the model run here: --backend hf")
    if can.forks:
        return backend.fork(ids, lengths, hidden_layers, hidden_positions) if hidden_layers else backend.fork(ids, lengths)
    return SequentialRows(backend, ids, lengths)
