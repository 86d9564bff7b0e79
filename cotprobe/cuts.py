"""Cut planning and the cut sweep: where to cut each chain of thought (nearest step boundary,
exact token fraction, or after every step), and probing every trace at its cuts (answer and
confidence forced after each prefix, `cotprobe.forcing`), with hidden states and resampled
continuations at the same cuts when asked. Cuts of one trace share its encoding, so each costs
only its forcing suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm import tqdm

from .backends import capabilities_of
from .forcing import Prober, answer_and_confidence, close_at, closing_for, force_cuts
from .inflight import in_order
from .records import Probe, Question, Resample, Step, Trace
from .resample import ResampleSettings, resample_cuts
from .steps import ensure_steps
from .store import RunDir
from .tracing import remember_shared_prompt

CUT_MODES = ("step", "token", "every-step")


@dataclass(frozen=True)
class Cut:
    fraction_requested: float
    fraction_realised: float
    step_index: int  # whole steps kept
    token_index: int  # CoT tokens kept


MAX_CUTS = 1001  # requested cut levels at most (every step boundary: --cut every-step)


def parse_fractions(spec: str) -> list[float]:
    """'0:1:0.1' (start:stop:step, inclusive) or '0,0.25,0.5,1'; at most MAX_CUTS values."""
    bad = f"--fractions {spec!r}"
    try:
        if ":" in spec:
            start, stop, step = (float(x) for x in spec.split(":"))
            if not all(np.isfinite([start, stop, step])) or step <= 0:
                raise ValueError(f"{bad}: the step must be a positive number")
            count = (stop - start) / step
            if count + 1 > MAX_CUTS:
                raise ValueError(f"{bad}: {int(count) + 1:,} cuts; at most {MAX_CUTS} "
                                 "(for a cut after every step use --cut every-step)")
            values = np.round(np.arange(start, stop + step / 2, step), 6).tolist()
        else:
            values = [float(x) for x in spec.split(",")]
    except ValueError as exc:
        if str(exc).startswith(bad):
            raise
        raise ValueError(f"{bad}: use start:stop:step (e.g. 0:1:0.1) or a comma list") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"{bad}: fractions must lie in [0, 1]")
    values = sorted(set(values))
    if len(values) > MAX_CUTS:
        raise ValueError(f"{bad}: {len(values):,} cuts; at most {MAX_CUTS}")
    return values



def plan_cuts(steps: list[Step], n_tokens: int, fractions: list[float], mode: str = "step") -> list[Cut]:
    """Where to cut for each fraction: nearest step boundary, exact token fraction, or every step."""
    boundaries = sorted({0, n_tokens, *(s.token_end for s in steps)})
    def steps_kept(t: int) -> int:
        return sum(1 for s in steps if s.token_end <= t)
    def realised(t: int, requested: float) -> float:
        return t / n_tokens if n_tokens else requested
    if mode == "every-step":
        return [Cut(realised(t, 1.0), realised(t, 1.0), steps_kept(t), t) for t in boundaries]
    cuts = []
    for f in fractions:
        target = f * n_tokens
        if mode == "token":
            t = int(round(target))
        elif mode == "step":
            t = min(boundaries, key=lambda b: (abs(b - target), b))
        else:
            raise ValueError(f"unknown cut mode {mode!r}: use one of {', '.join(CUT_MODES)}")
        cuts.append(Cut(f, realised(t, f), steps_kept(t), t))
    return cuts


def probe_cuts(prober: Prober, trace: Trace, question: Question, cuts: list[Cut], max_rows: int = 16,
               hidden_layers: list[int] | None = None, states: dict[int, object] | None = None) -> list[Probe]:
    """Probe one trace at every cut: distinct cut points run as rows of one batch over the
    trace's shared encoding (at most max_rows at a time, to bound cache memory), each closed
    the same way (`cotprobe.forcing.force_cuts`). A backend that runs rows one at a time gets one cut
    per fork, so it never holds more than one cut's cache. hidden_layers: also fill `states` with
    token index -> the hidden states at the cut (for `cotprobe.latent`), from the same pass."""
    backend = prober.backend
    prompt_ids = backend.encode(trace.prompt)
    ids = prompt_ids + trace.cot_token_ids
    points = sorted({c.token_index for c in cuts}, reverse=True)
    if not capabilities_of(backend).shares_rows:
        max_rows = 1  # one cut's cache at a time
        hidden_layers = None  # one cut per fork: `store_hidden` takes them all in one pass instead
    at: dict[int, object] = {}
    forced = force_cuts(prober, ids, len(prompt_ids), [len(prompt_ids) + t for t in points], max_rows,
                        hidden_layers, at)
    if hidden_layers:
        states.update({c - len(prompt_ids): state for c, state in at.items()})
    made = dict(zip(points, forced))
    return [_probe(prober, trace, question, cut, made[cut.token_index]) for cut in cuts]


def probe_traces(prober: Prober, items: list[tuple[Trace, Question, list[Cut]]]) -> list[list[Probe]]:
    """Probe several traces at their cuts as one batch (`AcrossForkingBackend.fork_across`): each
    trace's prefix encoded once, the cut rows of all of them decoded together, each row closed
    and forced as `probe_cuts` does (`forcing.close_at`, `answer_and_confidence`). One list of
    probes per trace, as `probe_cuts` would give it."""
    backend, closing = prober.backend, closing_for(prober)
    sequences, plans, points, floors = [], [], [], []
    for trace, _, cuts in items:
        prompt_ids = backend.encode(trace.prompt)
        ids, floor = prompt_ids + trace.cot_token_ids, len(prompt_ids)
        at = sorted({c.token_index for c in cuts}, reverse=True)
        closed = [close_at(backend, ids[:floor + t], floor, closing) for t in at]
        sequences.append((ids, [keep for keep, _ in closed]))
        plans += [new for _, new in closed]
        points.append(at)
        floors.append(floor)
    rows = backend.fork_across(sequences)
    rows.extend(plans)
    forced = iter(answer_and_confidence(rows, prober))
    out = []
    for (trace, question, cuts), at in zip(items, points):
        made = {t: next(forced) for t in at}
        out.append([_probe(prober, trace, question, cut, made[cut.token_index]) for cut in cuts])
    return out


def _probe(prober: Prober, trace: Trace, question: Question, cut: Cut, forced) -> Probe:
    answer, confidence = forced
    result = prober.grade(question, answer)
    return Probe(question_id=trace.question_id, condition="cut", fraction_requested=cut.fraction_requested,
                 fraction_realised=cut.fraction_realised, step_index=cut.step_index, token_index=cut.token_index,
                 answer=answer, confidence=confidence, correct=result.correct, grader=result.grader)


@dataclass(frozen=True)
class Sweep:
    """What the cut sweep does at every trace: cut at `fractions` (`mode`: see `plan_cuts`), and,
    when given, store each cut's hidden states (`hidden_store`, a `cotprobe.hidden.HiddenStore`)
    and sample continuations at the cuts (`resample`). batch: traces probed together (None:
    automatic, `traces_together`): on a backend with requests in flight from several threads (a
    server), that many traces in flight at once; elsewhere one trace at a time."""

    fractions: list[float]
    mode: str = "step"
    hidden_store: Any = None
    resample: ResampleSettings | None = None
    batch: int | None = None


MAX_ROWS = 16  # cut rows of one trace in one batch at most (`probe_cuts`)


def traces_together(backend, sweep: Sweep, n_traces: int) -> int:
    """How many traces the sweep keeps in flight on a server: `sweep.batch`, else enough that
    the backend's requests in flight (`--concurrency`) stay full, twice over, since each trace
    also spends some of its time on one request alone (`CompletionsClient.map`). 1 elsewhere."""
    in_flight = capabilities_of(backend).in_flight
    if in_flight <= 1:
        return 1
    if sweep.batch is not None:
        return max(1, min(sweep.batch, n_traces))
    return max(1, min(n_traces, -(-2 * in_flight // _rows_per_trace(sweep))))


def _rows_per_trace(sweep: Sweep) -> int:
    return max(1, len(sweep.fractions)) if sweep.mode != "every-step" else MAX_ROWS


def traces_per_batch(backend, sweep: Sweep, traces: list[Trace]) -> int:
    """How many traces' cut rows one batch decodes (a backend with `fork_across`, the hf one):
    `sweep.batch`, else what the backend chooses for its device (`traces_per_batch`). 1 where
    the backend has no cross-trace rows, or with hidden states (taken trace by trace)."""
    if not capabilities_of(backend).forks_across or sweep.hidden_store is not None:
        return 1
    if sweep.batch is not None:
        return max(1, sweep.batch)
    tokens = max((t.prompt_tokens + len(t.cot_token_ids) for t in traces), default=0)
    return max(1, backend.traces_per_batch(_rows_per_trace(sweep), tokens))


def truncate(prober: Prober, traces: list[Trace], questions: dict[str, Question], run: RunDir,
             sweep: Sweep) -> list[Probe]:
    """Segment every trace (steps.jsonl) and probe it at every cut (probes.jsonl), resuming; with
    the sweep's hidden store, also every cut's hidden states, taken in the pass that encodes the
    cuts (`store_hidden`); with its resample settings, continuations at the cuts (resamples.jsonl).

    Traces are probed together where the backend can (`Sweep.batch`): on a server several traces
    in flight at once (`traces_together`), on the hf backend the cut rows of several traces as
    one batch (`traces_per_batch`, `probe_traces`; the batches are fixed runs of consecutive
    traces, and a batch's probes are written in one write). Either way records are written in
    the traces' order: a run killed at any moment has written a prefix of what an uninterrupted
    run writes, so the same command resumes it exactly."""
    backend, hidden_store, resample = prober.backend, sweep.hidden_store, sweep.resample
    run.repair_records(Probe, Resample)
    resampled = {(r.question_id, round(r.fraction_requested, 6)) for r in run.resamples()}
    steps_by_q = ensure_steps(run, traces, backend)  # whole step lists only (see store.steps_complete)
    remember_shared_prompt(backend, [t.prompt for t in traces])
    done: dict[str, list[Probe]] = {}
    for p in run.probes():
        if p.condition == "cut":
            done.setdefault(p.question_id, []).append(p)
    layers = hidden_store.layers if hidden_store is not None else None

    def cuts_of(trace: Trace) -> list[Cut]:
        return plan_cuts(steps_by_q.get(trace.question_id, []), len(trace.cot_token_ids), sweep.fractions,
                         sweep.mode)  # an empty thought has no steps

    def todo_of(trace: Trace) -> list[Cut]:
        have = {round(p.fraction_requested, 6) for p in done.get(trace.question_id, [])}
        return [c for c in cuts_of(trace) if round(c.fraction_requested, 6) not in have]

    def work(group: list[Trace]) -> Iterator[tuple[Trace, list[Probe] | list[Resample] | dict[int, object]]]:
        """The group's new records, a batch at a time, each with its trace: the probes (of the
        whole group at once where its traces run as one batch), the hidden states their pass
        took, then each trace's resamples. Nothing is written here."""
        hidden: dict[str, dict[int, object]] = {t.question_id: {} for t in group}
        items = [(t, questions[t.question_id], todo_of(t)) for t in group]
        items = [item for item in items if item[2]]
        joint = [item for item in items if len({c.token_index for c in item[2]}) <= MAX_ROWS]
        if len(joint) > 1:
            made = probe_traces(prober, joint)
            yield group[0], [p for probes in made for p in probes]
            items = [item for item in items if all(item is not j for j in joint)]
        for trace, question, todo in items:
            yield trace, probe_cuts(prober, trace, question, todo, hidden_layers=layers,
                                    states=hidden[trace.question_id])
        for trace in group:
            yield trace, hidden[trace.question_id]
            if resample is not None:
                wanted = [c for c in cuts_of(trace) if (trace.question_id, round(c.fraction_requested, 6))
                          not in resampled and (resample.fractions is None
                                                or any(abs(c.fraction_requested - f) < 1e-9 for f in resample.fractions))]
                if wanted:
                    yield trace, resample_cuts(prober, trace, questions[trace.question_id], wanted, resample)

    together, per_batch = traces_together(backend, sweep, len(traces)), traces_per_batch(backend, sweep, traces)
    groups = [traces[i:i + per_batch] for i in range(0, len(traces), per_batch)]
    step = work if together == 1 else (lambda g: list(work(g)))  # one at a time: written as they come
    with tqdm(total=len(traces), desc="truncate", unit="trace") as bar:
        for group, parts in in_order(step, groups, together):
            for trace, part in parts:
                if isinstance(part, dict):  # the hidden states of the probes' pass
                    if hidden_store is not None:
                        store_hidden(prober, trace, cuts_of(trace), hidden_store, part)
                    continue
                run.add_many(part)
                for record in part:
                    if isinstance(record, Probe):
                        done.setdefault(record.question_id, []).append(record)
            bar.update(len(group))
    return [p for t in traces for p in done.get(t.question_id, [])]


def store_hidden(prober: Prober, trace: Trace, cuts: list[Cut], store, computed: dict[int, object]) -> None:
    """Store the hidden states of every cut (and of the end of the thought) not stored yet:
    those computed by the sweep, the rest from one pass over the trace."""
    backend = prober.backend
    points = sorted({c.token_index for c in cuts} | {len(trace.cot_token_ids)})
    missing = [t for t in points if t not in computed and not store.has(trace.question_id, "cut", t)]
    if missing:
        prompt_ids = backend.encode(trace.prompt)
        states = backend.hidden_states(prompt_ids + trace.cot_token_ids[:max(missing)],
                                       [len(prompt_ids) + t - 1 for t in missing], store.layers)
        computed.update(zip(missing, states.numpy()))
    fresh = [t for t in points if not store.has(trace.question_id, "cut", t)]
    if fresh:
        store.append(trace.question_id, "cut", fresh, [computed[t] for t in fresh])
