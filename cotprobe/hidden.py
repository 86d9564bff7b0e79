"""Hidden states at the cuts of a chain of thought, stored in the run directory.

Two files, appended together and resumable like every record file:

- ``hidden_states.f16``: raw little-endian float16, one row per stored position, each row
  ``len(layers) x hidden_size`` values (layer-major). Read it with
  ``np.memmap(path, np.float16, "r").reshape(-1, len(layers), hidden_size)`` or `load`.
- ``hidden_states.jsonl``: one `HiddenState` record per row (question, condition, CoT tokens
  before the position, row number).

Pooled states (`cotprobe.latent --pool mean,max`) live beside them in files of the same layout,
``hidden_states_<pool>.f16`` / ``.jsonl`` (stage ``hidden_states_<pool>``): per cut the mean or
the elementwise max of the hidden states of the CoT tokens kept (`pool_cuts`; a cut that keeps no
token takes the state of the prompt's last token, as "last" does). Each pooling costs what "last"
costs: ``len(layers) x hidden_size`` float16 values per cut.

The layers (0 = the embeddings, L = the last layer's output) and the hidden size are recorded
in manifest.json under the stage ``hidden_states``; resuming with other layers is refused. A row
is the hidden state of the last token before the cut: the position after which the forcing suffix
(think end tag, ``**Answer**:``) would come. A row's values are written and flushed before its
record, so after a kill the array is cut back to the records that survived.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .backends import capabilities_of
from .records import HiddenState, Trace
from .store import RunDir, RunDirError, read_manifest, read_records, stage_settings

ARRAY = "hidden_states.f16"
INDEX = "hidden_states.jsonl"
STAGE = "hidden_states"
DTYPE = np.dtype("<f2")
POOLS = ("last", "mean", "max")  # the state of the last token before the cut; mean or max over the kept CoT


def files(pool: str = "last") -> tuple[str, str, str]:
    """(array file, index file, manifest stage) of one pooling's states."""
    if pool not in POOLS:
        raise ValueError(f"pooling {pool!r}: use one of {', '.join(POOLS)}")
    return (ARRAY, INDEX, STAGE) if pool == "last" else (f"hidden_states_{pool}.f16", f"hidden_states_{pool}.jsonl",
                                                         f"hidden_states_{pool}")


def parse_pools(spec: str) -> list[str]:
    """'last,mean,max' -> the poolings in order, each once; an unknown one is refused."""
    pools = list(dict.fromkeys(x.strip() for x in spec.split(",") if x.strip())) or ["last"]
    for pool in pools:
        files(pool)
    return pools


def pool_cuts(states: np.ndarray, cuts: list[int], pool: str) -> np.ndarray:
    """Pooled states at cuts, from `states` (1 + T, layers, hidden): row 0 the prompt's last token,
    row k the k-th CoT token. A cut keeping t tokens: "last" row t; "mean"/"max" over rows 1..t
    (t = 0: row 0). Returns (len(cuts), layers, hidden)."""
    states = np.asarray(states, dtype=np.float32)
    if pool == "last":
        return states[cuts]
    body = states[1:]
    if pool == "mean":
        running = np.cumsum(body, axis=0) / np.arange(1, len(body) + 1)[:, None, None]
    elif pool == "max":
        running = np.maximum.accumulate(body, axis=0)
    else:
        raise ValueError(f"pooling {pool!r}: use one of {', '.join(POOLS)}")
    return np.stack([states[0] if t == 0 else running[t - 1] for t in cuts])


def default_layers(n_layers: int, count: int = 8) -> list[int]:
    """`count` layers evenly spread over 1..n_layers, always including the last."""
    return sorted({max(1, int(round(n_layers * (i + 1) / count))) for i in range(count)})


def parse_layers(spec: str | None, n_layers: int) -> list[int]:
    """'all', a comma list of layer numbers (negative counts from the end: -1 = last), or None
    for `default_layers`."""
    if spec is None or spec == "default":
        return default_layers(n_layers)
    if spec == "all":
        return list(range(n_layers + 1))
    try:
        values = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--layers {spec!r}: use 'all', 'default' or a comma list such as 6,12,-1") from None
    layers = sorted({v + n_layers + 1 if v < 0 else v for v in values})
    if not layers or any(not 0 <= v <= n_layers for v in layers):
        raise ValueError(f"--layers {spec!r}: layers must lie in 0..{n_layers} (or -1..-{n_layers + 1})")
    return layers


def model_layers(backend) -> tuple[int, int]:
    """(number of layers, hidden size) of a Hugging Face backend's model."""
    if not capabilities_of(backend).hidden_states:
        raise ValueError(f"the {type(backend).__name__} backend has no hidden states (a server returns "
                         "tokens only); latent confidence needs the model run here: --backend hf")
    return backend.hidden_shape


@dataclass
class HiddenStore:
    """The hidden-state files of one run directory, opened for appending."""

    run: RunDir
    layers: list[int]
    hidden_size: int
    pool: str = "last"

    def __post_init__(self) -> None:
        self.array, self.index, stage = files(self.pool)
        self.run.start_stage(stage, {"layers": self.layers, "hidden_size": self.hidden_size,
                                     "dtype": "float16", "array": self.array, "index": self.index})
        self.row_bytes = len(self.layers) * self.hidden_size * DTYPE.itemsize
        self.run.repair(self.index)
        self.records, self.n_rows = _index(self.run.path, self.row_bytes, self.pool)
        array = self.run.path / self.array
        size = array.stat().st_size if array.exists() else 0
        if size > self.n_rows * self.row_bytes:  # rows whose records a kill lost
            with array.open("rb+") as fh:
                fh.truncate(self.n_rows * self.row_bytes)
        self.keys = {(r.question_id, r.condition, r.token_index) for r in self.records}

    def has(self, question_id: str, condition: str, token_index: int) -> bool:
        return (question_id, condition, token_index) in self.keys

    def append(self, question_id: str, condition: str, token_indices: list[int], states) -> None:
        """Store states (positions, layers, hidden) for the given cuts; ones already stored are skipped."""
        states = np.asarray(states, dtype=np.float32)
        if states.shape[1:] != (len(self.layers), self.hidden_size):
            raise ValueError(f"hidden states of shape {states.shape[1:]}, expected "
                             f"({len(self.layers)}, {self.hidden_size})")
        new = [(t, s) for t, s in zip(token_indices, states, strict=True)
               if not self.has(question_id, condition, t)]
        new = list({t: s for t, s in new}.items())
        if not new:
            return
        with (self.run.path / self.array).open("ab") as fh:
            fh.write(np.stack([s for _, s in new]).astype(DTYPE).tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        for t, _ in new:
            record = HiddenState(question_id, condition, t, self.n_rows)
            self.run.append(self.index, record)
            self.records.append(record)
            self.n_rows += 1
            self.keys.add((question_id, condition, t))


def extract_pooled(backend, traces: dict[str, Trace], missing: list[tuple], store: HiddenStore) -> None:
    """One pass per trace over its prompt and CoT up to its longest missing cut; the states of the
    prompt's last token and of every CoT token, pooled per cut (`hidden.pool_cuts`), stored as it goes."""
    by_trace: dict[str, list[int]] = {}
    for qid, _, t in missing:
        by_trace.setdefault(qid, []).append(t)
    for qid, points in tqdm(by_trace.items(), desc=f"hidden states ({store.pool})", unit="seq"):
        trace, end = traces[qid], max(points)
        prompt_ids = backend.encode(trace.prompt)
        states = backend.hidden_states(prompt_ids + trace.cot_token_ids[:end],
                                       list(range(len(prompt_ids) - 1, len(prompt_ids) + end)), store.layers)
        store.append(qid, "cut", points, pool_cuts(states.float().numpy(), points, store.pool))


def store_pooled(backend, traces: list[Trace], store: HiddenStore, pools: list[str]) -> None:
    """truncate --hidden-states --pool: every cut position the last-token store holds, pooled the
    other ways, from one further pass per trace (the sweep's own pass keeps the cut positions only)."""
    by_id = {t.question_id: t for t in traces}
    for pool in pools:
        if pool != "last":
            pooled = HiddenStore(store.run, store.layers, store.hidden_size, pool)
            missing = [(r.question_id, r.condition, r.token_index) for r in store.records
                       if r.condition == "cut" and r.question_id in by_id and not pooled.has(r.question_id, "cut",
                                                                                            r.token_index)]
            extract_pooled(backend, by_id, missing, pooled)


def _index(run_dir: Path, row_bytes: int, pool: str = "last") -> tuple[list[HiddenState], int]:
    """The records of hidden_states.jsonl by the rule every record file is read by (a torn last
    line skipped, a repeated position read once), and the rows of hidden_states.f16 they use;
    a record pointing past the array's end is a RunDirError naming both files."""
    array_name, index_name, _ = files(pool)
    index, array = run_dir / index_name, run_dir / array_name
    records, seen = [], set()
    for r in read_records(index, HiddenState, quiet=True):
        if (r.question_id, r.condition, r.token_index) not in seen:
            seen.add((r.question_id, r.condition, r.token_index))
            records.append(r)
    n_rows = max((r.row for r in records), default=-1) + 1
    size = array.stat().st_size if array.exists() else 0
    bad = next((r for r in records if not isinstance(r.row, int) or r.row < 0), None)
    if bad is not None or size < n_rows * row_bytes:
        what = (f"row {bad.row!r} of {bad.question_id!r}" if bad is not None
                else f"row {n_rows - 1} but {array.name} holds {size // row_bytes if row_bytes else 0} rows")
        raise RunDirError(f"{index}: a record points at {what}; the two files do not belong together "
                          f"(delete {array.name} and {index.name} to extract again)")
    return records, n_rows


def load(run_dir: str | Path, pool: str = "last") -> tuple[list[HiddenState], np.ndarray, list[int]]:
    """(records, array of shape (rows, layers, hidden) as a read-only float16 memmap, layers) of
    one pooling's states."""

    run_dir = Path(run_dir)
    array_name, index_name, stage = files(pool)
    if not (run_dir / index_name).exists():
        return [], np.zeros((0, 0, 0), dtype=DTYPE), []
    settings = stage_settings(read_manifest(run_dir), stage)
    layers, hidden = settings.get("layers"), settings.get("hidden_size")
    if not (isinstance(layers, list) and layers and all(isinstance(v, int) for v in layers)
            and isinstance(hidden, int) and hidden > 0):
        raise RunDirError(f"{run_dir / 'manifest.json'}: stage '{stage}' should record 'layers' (a list of "
                          f"layer numbers) and 'hidden_size'; delete {array_name} and {index_name} to extract again")
    records, n_rows = _index(run_dir, len(layers) * hidden * DTYPE.itemsize, pool)
    if not records:
        return [], np.zeros((0, len(layers), hidden), dtype=DTYPE), layers
    array = np.memmap(run_dir / array_name, DTYPE, "r", shape=(n_rows, len(layers), hidden))
    return records, array, layers
