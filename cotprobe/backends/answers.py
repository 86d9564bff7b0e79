"""What the client reads from a completions answer, across servers' dialects (vLLM, SGLang, llama.cpp).

`compact` turns an answer into the few fields the OpenAI backend uses; that compact form is what
the request cache stores.
"""

from __future__ import annotations

from typing import Any

ECHO_TAIL = 64  # echoed prompt log-probabilities kept: the last positions (where options are scored)


class MalformedAnswer(ValueError):
    """An answer that is not a completions answer."""


def _token(tok: Any) -> int | str:
    """A token as servers name it: an id, or "token_id:123" (vLLM return_tokens_as_token_ids), or text."""
    if isinstance(tok, str) and tok.startswith("token_id:") and tok[9:].lstrip("-").isdigit():
        return int(tok[9:])
    return tok


def compact(resp: dict[str, Any], echo: bool = False) -> dict[str, Any]:
    """What the client reads from a completions answer (vLLM, SGLang, llama.cpp dialects).

    text, finish, stop (present when the server said which stop ended it: vLLM stop_reason,
    SGLang matched_stop), ids (generated token ids, where the server gave them), top (per
    generated position: [token, logprob] pairs, token an id where known), lp/off (the last
    ECHO_TAIL echoed prompt log-probabilities and text offsets)."""
    try:
        choice = resp["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise MalformedAnswer("the answer has no choices[0]") from None
    if not isinstance(choice, dict) or not isinstance(choice.get("text", ""), (str, type(None))):
        raise MalformedAnswer(f"choices[0] is not a completion: {str(choice)[:100]!r}")
    if not echo and not isinstance(choice.get("text"), str):  # an answer without text is not an empty trace
        raise MalformedAnswer(f"choices[0].text is {json_type(choice.get('text'))}, not the generated text")
    lp = choice.get("logprobs") or {}
    if not isinstance(lp, dict):
        raise MalformedAnswer(f"choices[0].logprobs is {json_type(lp)}, not an object")
    # an echoed answer's text and top log-probabilities run over the whole prompt: not kept
    out: dict[str, Any] = {"text": "" if echo else choice.get("text") or "", "finish": choice.get("finish_reason")}
    for key in ("stop_reason", "matched_stop"):
        if key in choice:
            out["stop"] = choice[key]
            break
    ids = _generated_ids(choice, lp, echo)
    if ids is not None:
        out["ids"] = ids
    if not echo:
        _add_top(out, lp)
    if lp.get("token_logprobs") is not None:
        out["lp"] = lp["token_logprobs"][-ECHO_TAIL:]
        if lp.get("text_offset") is not None:
            out["off"] = lp["text_offset"][-ECHO_TAIL:]
        out["n_lp"] = len(lp["token_logprobs"])
    return out


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names = {type(None): "null", bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _add_top(out: dict[str, Any], lp: dict[str, Any]) -> None:
    """out["top"]: per generated position, [token, logprob] pairs (token an id where known)."""
    try:
        if lp.get("top_logprobs"):  # legacy completions format
            out["top"] = [[[_token(t), float(v)] for t, v in (d or {}).items()] for d in lp["top_logprobs"]]
        elif lp.get("content"):  # llama-server: [{"id", "token", "logprob", "top_logprobs": [{id, token, logprob}]}]
            out["top"] = [[[t["id"] if isinstance(t.get("id"), int) else t["token"], float(t["logprob"])]
                           for t in item.get("top_logprobs") or []] for item in lp["content"]]
    except (AttributeError, TypeError, KeyError) as exc:  # a string, a list of strings, a missing field
        raise MalformedAnswer(f"choices[0].logprobs holds top log-probabilities in no known layout ({exc})") from None


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, int) for i in value)


def _generated_ids(choice: dict[str, Any], lp: dict[str, Any], echo: bool) -> list[int] | None:
    """The generated token ids where the server gave them: vLLM return_token_ids, llama.cpp
    return_tokens, or log-probability tokens named "token_id:N" (vLLM return_tokens_as_token_ids)."""
    for key in ("token_ids", "tokens"):
        if _is_ids(choice.get(key)):
            return choice[key]
    toks = [] if echo else [_token(t) for t in lp.get("tokens") or []]
    return toks if toks and _is_ids(toks) else None
