"""Where the decision lives in the token stream, found from the tokenizer; no torch here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chimein.format import RESPONSE, SILENCE, ChatFormat


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class MarkerSplit:
    """Where ``(silence)`` and ``(response)`` part ways after the assistant-turn prefix, in tokens."""

    shared: list[int]  # tokens both markers start with (often "(")
    silence: int  # first token of the silence continuation after `shared`
    response: int  # first token of the response continuation after `shared`
    response_rest: list[int]  # the remaining tokens of "(response)" (forced before generating the reply)
    # First tokens that would open another marker right after "(response)" ("(response) (silence)"): a
    # reply may not start with them (a weakly trained adapter sometimes writes exactly that).
    reply_bans: list[int] = field(default_factory=list)


def find_marker_split(fmt: ChatFormat, tokenize: Callable[[str], list[int]] | None = None) -> MarkerSplit:
    """Find the divergent tokens from the tokenizer, in context, not from hand-copied ids."""
    tokenize = tokenize or fmt.tokenize
    turns = [{"role": "user", "content": "Ana: hello there"}]
    prompt = fmt.render(turns, add_generation_prompt=True)
    base = tokenize(prompt)
    sil = tokenize(prompt + SILENCE)
    res = tokenize(prompt + RESPONSE + " ok")
    if sil[: len(base)] != base or res[: len(base)] != base:
        raise ValueError(f"the assistant-turn prefix merges with the markers when tokenized: {prompt[-30:]!r}")
    sil, res = sil[len(base) :], res[len(base) :]
    k = common_prefix_len(sil, res)
    if k >= len(sil) or k >= len(res):
        raise ValueError("(silence) and (response) tokenize to the same tokens")
    marker_only = tokenize(prompt + RESPONSE)[len(base) :]
    opened = base + marker_only
    bans = {
        ids[len(opened)]
        for sep in ("", " ", "\n")
        for marker in (SILENCE, RESPONSE)
        if (ids := tokenize(prompt + RESPONSE + sep + marker))[: len(opened)] == opened and len(ids) > len(opened)
    }
    return MarkerSplit(
        shared=sil[:k], silence=sil[k], response=res[k], response_rest=marker_only[k + 1 :], reply_bans=sorted(bans)
    )


def adapter_threshold(adapter_dir: Any) -> float:
    """The eagerness default saved with an adapter (F1-optimal on its validation split), else 0.5."""
    meta = Path(adapter_dir) / "chimein.json"
    if meta.exists():
        return float(json.loads(meta.read_text()).get("threshold", 0.5))
    return 0.5
