"""Label scoring over a completions server: each label's log-probability after each row.

"topk" (the default) asks only for next-token top-k log-probabilities, in requests that extend
a prompt the server has just seen (its prefix cache serves them): one greedy request after
"**Confidence**:" with top-k log-probabilities gives the written confidence and the first label
token of every label at once; labels that share a first token ("Almost ...", "Highly ...") need
one more request per shared token unless the greedy path already went there. Each label is
scored by its distinguishing prefix, the shortest start no other label shares.

"prompt" (echoed prompt log-probabilities over whole labels) is there on request only: vLLM
serves no prompt-log-prob request from its prefix cache.
"""

from __future__ import annotations

from typing import Any

from .base import ScoringUnavailable
from .client import CompletionsClient
from .dialect import Dialect

SCORE_MODES = ("topk", "prompt", "none")
Tops = dict[tuple[int, tuple[int, ...]], dict]  # (row, label tokens so far) -> {token: logprob}


def distinguishing_prefixes(options: list[list[int]]) -> list[list[int]]:
    """Each option's shortest prefix that is not a prefix of another option (whole option if none)."""
    out = []
    for i, o in enumerate(options):
        others = [p for j, p in enumerate(options) if j != i]
        n = next((n for n in range(1, len(o) + 1) if not any(p[:n] == o[:n] for p in others)), len(o))
        out.append(o[:n])
    return out


def score_topk(client: CompletionsClient, dialect: Dialect, rows: list[list[int]], options: list[list[int]],
               label_tokens: int) -> tuple[list[list[float]], int]:
    """(totals[row][option], misses): distinguishing prefixes through next-token top-k. The first
    token from the greedy confidence request (`label_tokens` long, so the written confidence
    needs no request of its own), deeper tokens from its greedy path where it went there, else
    from one-token requests that extend the row. A token outside the top k gets the k-th
    log-probability (an upper bound); misses counts them."""
    prefixes = distinguishing_prefixes(options)
    depth = max(len(p) for p in prefixes)  # the greedy path's top-k is of use this deep
    first = client.complete_many([dialect.topk_body(ids, label_tokens, 1) for ids in rows], keep_top=depth)
    tops: Tops = {}
    for r, got in enumerate(first):
        per = _top(client, got, every=True)
        path = got.get("ids") or []
        for d, alts in enumerate(per[: len(path) + 1] if path else per[:1]):
            tops.setdefault((r, tuple(path[:d])), dict(map(tuple, alts)))
    wanted = sorted({(r, tuple(p[:d])) for r in range(len(rows)) for p in prefixes for d in range(1, len(p))}
                    - tops.keys())
    answers = client.complete_many([dialect.topk_body(rows[r] + list(p), 1) for r, p in wanted])
    for key, got in zip(wanted, answers):
        tops[key] = dict(map(tuple, _top(client, got)[0]))
    scored = [[_prefix_logprob(tops, r, p, dialect.decode) for p in prefixes] for r in range(len(rows))]
    totals = [[total for total, _ in row] for row in scored]
    return totals, sum(missed for row in scored for _, missed in row)


def _top(client: CompletionsClient, got: dict[str, Any], every: bool = False) -> list:
    """The answer's per-position top log-probabilities; the first position must have some."""
    per = got.get("top") or []
    if not per or not per[0]:
        raise ScoringUnavailable(f"{client.where}: the server returned no top log-probabilities")
    return per if every else per[:1]


def _prefix_logprob(tops: Tops, row: int, prefix: list[int], decode) -> tuple[float, bool]:
    """The log-probability of a label prefix after a row, and whether a token was outside the top k."""
    total = 0.0
    for d, tok in enumerate(prefix):
        alts = tops[(row, tuple(prefix[:d]))]
        if tok not in alts and not any(isinstance(t, int) for t in alts):
            tok = decode([tok])  # servers that name tokens by their text only
        if tok not in alts:
            return total + min(float(v) for v in alts.values()), True
        total += float(alts[tok])
    return total, False


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
