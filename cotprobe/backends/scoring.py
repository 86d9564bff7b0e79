"""Label scoring over a completions server: each label's log-probability after each row.

"topk" (the default) asks only for next-token top-k log-probabilities, in requests that extend
a prompt the server has just seen (its prefix cache serves them). Every label is scored along
its whole token path, as the model itself would score it: one greedy request after
"**Confidence**:" with top-k log-probabilities gives the written confidence and the first token
of every label at once (and the next tokens along the path the model took); every other label
prefix ("Almost", "Almost no", "Highly", ...) gets one one-token request that extends the row.
When every token of a label is among the top k the server returns, the label's log-probability
equals the model's own. When one is not, the label is left unscored (NaN), never replaced by a
bound: the caller marks that row's distribution inexact.

"prompt" (echoed prompt log-probabilities over whole labels) is there on request only: vLLM
serves no prompt-log-prob request from its prefix cache.
"""

from __future__ import annotations

import math
from typing import Any

from .base import ScoringUnavailable
from .client import CompletionsClient
from .dialect import Dialect

SCORE_MODES = ("topk", "prompt", "none")
Tops = dict[tuple[int, tuple[int, ...]], dict]  # (row, label tokens so far) -> {token: logprob}


def score_topk(client: CompletionsClient, dialect: Dialect, rows: list[list[int]], options: list[list[int]],
               label_tokens: int) -> tuple[list[list[float]], int]:
    """(totals[row][option], misses): every option's whole token path through next-token top-k.
    The first token from the greedy confidence request (`label_tokens` long, so the written
    confidence needs no request of its own), deeper tokens from its greedy path where it went
    there, else from one-token requests that extend the row. An option with a token outside the
    top k, or after a row whose answer held no log-probabilities, is NaN; misses counts them. A
    row where some label's first token is already outside the top k cannot be exact: it gets no
    further requests (its other labels' deeper tokens would change nothing recorded)."""
    depth = max(len(o) for o in options)  # the greedy path's top-k is of use this deep
    first = client.complete_many([dialect.topk_body(ids, label_tokens, 1) for ids in rows], keep_top=depth)
    tops: Tops = {}
    for r, got in enumerate(first):
        per = got.get("top") or []
        path = got.get("ids") or []
        for d, alts in enumerate(per[: len(path) + 1] if path else per[:1]):
            if alts:
                tops.setdefault((r, tuple(path[:d])), dict(map(tuple, alts)))
    answered = {r for r, _ in tops}
    if not answered:
        raise ScoringUnavailable(f"{client.where}: the server returned no top log-probabilities")
    reachable = {r for r in answered if all(_has(tops[(r, ())], o[0], dialect.decode) for o in options)}
    wanted = sorted({(r, tuple(o[:d])) for r in reachable for o in options for d in range(1, len(o))} - tops.keys())
    answers = client.complete_many([dialect.topk_body(rows[r] + list(p), 1) for r, p in wanted])
    for key, got in zip(wanted, answers):
        per = got.get("top") or []
        if per and per[0]:
            tops[key] = dict(map(tuple, per[0]))
    totals = [[_path_logprob(tops, r, o, dialect.decode) if r in reachable else math.nan for o in options]
              for r in range(len(rows))]
    return totals, sum(math.isnan(v) for row in totals for v in row)


def _has(alts: dict, tok: int, decode) -> bool:
    """Whether a token is among a position's top log-probabilities (keyed by id, or by text)."""
    return tok in alts or (not any(isinstance(t, int) for t in alts) and decode([tok]) in alts)


def _path_logprob(tops: Tops, row: int, option: list[int], decode) -> float:
    """The log-probability of an option's whole path after a row; NaN where a token of it is not
    among the top log-probabilities the server returned (or the server returned none there)."""
    total = 0.0
    for d, tok in enumerate(option):
        alts = tops.get((row, tuple(option[:d])))
        if alts is None or not _has(alts, tok, decode):
            return math.nan
        total += float(alts[tok] if tok in alts else alts[decode([tok])])  # by id, or by text
    return total


def score_prompt(client: CompletionsClient, dialect: Dialect, rows: list[list[int]],
                 options: list[list[int]]) -> list[list[float]]:
    """Echo each row + option with prompt log-probabilities; sum the option's tokens. Every
    request recomputes its whole prompt on vLLM (no prefix cache for prompt log-probs)."""
    pairs = [(ids, o) for ids in rows for o in options]
    answers = client.complete_many([dialect.echo_body(ids + o) for ids, o in pairs])
    flat = []
    for (ids, option), got in zip(pairs, answers):
        chosen = _option_logprobs(got, ids, option, dialect)
        if not chosen or any(v is None for v in chosen):
            raise ScoringUnavailable(f"{client.where}: no prompt log-probabilities for the option tokens")
        flat.append(float(sum(chosen)))
    return [flat[r * len(options):(r + 1) * len(options)] for r in range(len(rows))]


def _option_logprobs(got: dict[str, Any], ids: list[int], option: list[int], dialect: Dialect) -> list:
    """The echoed log-probabilities of the option's tokens (the answer keeps the last few only)."""
    values, shift = got.get("lp") or [], got.get("n_lp", 0) - len(got.get("lp") or [])
    if dialect.prompt_mode == "tokens":
        n = len(ids) + len(option) - shift
        return values[n - len(option): n] if n - len(option) >= 0 else []
    # the server tokenized the text itself: the option's tokens start after the context
    start = len(dialect.decode(ids))
    end = start + len(dialect.decode(option))
    return [v for v, off in zip(values, got.get("off") or []) if start <= off < end]
