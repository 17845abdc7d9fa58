"""Exact and near-duplicate conversations, by word shingles (used by `chimein generate` and data/prepare.py).

Two conversations are near-duplicates when the Jaccard similarity of their word 4-shingles is at least
``threshold`` (0.5 by default): the same exchange with a few words or names changed.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from chimein.data import Conversation

SHINGLE = 4


def _words(conv: Conversation) -> list[str]:
    # Speaker names are left out: the same chat with other names is still the same chat.
    return re.findall(r"[a-z0-9']+", " ".join(m.content for m in conv.messages).lower())


def shingles(conv: Conversation) -> frozenset[str]:
    words = _words(conv)
    if len(words) < SHINGLE:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1))


def fingerprint(conv: Conversation) -> str:
    """Exact-duplicate key: the normalised words of every message."""
    return hashlib.sha1(" ".join(_words(conv)).encode()).hexdigest()


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True)
class DuplicatePair:
    first: int
    second: int
    similarity: float


def find_duplicates(conversations: list[Conversation], threshold: float = 0.5) -> list[DuplicatePair]:
    """All pairs (i < j) at or above ``threshold`` similarity; exact duplicates have similarity 1.0.

    Candidates come from an inverted index of shingles (only pairs sharing a shingle are scored), so
    thousands of conversations take seconds, not the minutes of scoring every pair.
    """
    sets = [shingles(c) for c in conversations]
    index: dict[str, list[int]] = {}
    pairs = []
    for j, s in enumerate(sets):
        shared: Counter[int] = Counter()
        for sh in s:
            shared.update(index.get(sh, ()))
            index.setdefault(sh, []).append(j)
        for i, n in shared.items():
            similarity = n / (len(sets[i]) + len(s) - n)
            if similarity >= threshold:
                pairs.append(DuplicatePair(i, j, similarity))
    return sorted(pairs, key=lambda p: (p.first, p.second))


class DuplicateIndex:
    """Incremental check for new conversations against everything seen so far."""

    def __init__(self, conversations: list[Conversation] = (), threshold: float = 0.5):
        self.threshold = threshold
        self.fingerprints: set[str] = set()
        self.sets: list[frozenset[str]] = []
        for c in conversations:
            self.add(c)

    def is_duplicate(self, conv: Conversation) -> bool:
        if fingerprint(conv) in self.fingerprints:
            return True
        s = shingles(conv)
        return any(jaccard(s, t) >= self.threshold for t in self.sets)

    def add(self, conv: Conversation) -> None:
        self.fingerprints.add(fingerprint(conv))
        self.sets.append(shingles(conv))
