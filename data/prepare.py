"""Build the shipped splits from the labelled sources, by whole writer set-up and whole real source.

    python data/prepare.py            # rewrites train.jsonl, heldout-writers.jsonl, heldout-real.jsonl
    python data/prepare.py --check    # exits 1 if the committed splits differ from what the sources give

Sources (committed; every line says where it came from):
    seed/train.jsonl       the first 433 synthetic chats (writer "seed": one writing process, 2026-11-25)
    writers/w*.jsonl       synthetic chats by six writer set-ups, each its own brief (DATASHEET.md)
    real/*.jsonl           windows of real human multi-party chat, all silent, licence and cut on each line

Outputs:
    train.jsonl            everything trained on: seed + the training writers + the training real sources
    heldout-writers.jsonl  a sample of the held-out writer set-up(s): never trained on, chooses recipe and threshold
    heldout-real.jsonl     a sample of the held-out real source(s): never trained on, measures false interjections
    valid.jsonl and adversarial.jsonl are not touched (the old same-writer validation and the attack set).

Near-duplicates (Jaccard of word 4-shingles >= 0.5, chimein.dedup) are dropped across all sources, the
later one of each pair, and listed. Real training windows are cropped to at most REAL_TRAIN_TURNS user
messages (a random stretch, fixed seed): they are all silence, and shorter windows buy more sources per
minute of CPU training; REAL_TRAIN_WINDOWS of them are drawn (fixed seed) for the same reason.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from chimein.data import Conversation, load_conversations, write_conversations
from chimein.dedup import find_duplicates

HERE = Path(__file__).resolve().parent
HELDOUT_WRITERS = ("lead", "w6")
HELDOUT_CORPORA = (
    "irc-stripe",
    "gitter_livechat",
)  # a real IRC help channel and three Gitter rooms, kept for evaluation
HELDOUT_WRITER_SAMPLE = 60  # conversations per held-out writer: a full eval of one model in minutes on 2 cores
HELDOUT_REAL_SAMPLE = 60  # windows per held-out corpus
REAL_TRAIN_TURNS = 6
REAL_TRAIN_WINDOWS = 1500  # a sample of the training sources' windows: the 60-minute CPU budget
SEED = 7


def sources() -> list[Conversation]:
    convs = load_conversations(HERE / "seed" / "train.jsonl")
    for c in convs:
        c.meta.setdefault("writer", "seed")
    for path in sorted((HERE / "writers").glob("*.jsonl")) + sorted((HERE / "real").glob("*.jsonl")):
        convs += load_conversations(path)
    return convs


def crop(conv: Conversation, turns: int, rng: random.Random) -> Conversation:
    """A stretch of at most ``turns`` user messages (windows of real chat carry no assistant messages)."""
    if conv.user_turns <= turns:
        return conv
    start = rng.randrange(0, len(conv.messages) - turns + 1)
    return Conversation(
        conv.messages[start : start + turns],
        {**conv.meta, "cut": f"{conv.meta.get('cut', '')}; training crop {start}-{start + turns}"},
    )


def build() -> dict[str, list[Conversation]]:
    convs = sources()
    dropped = {p.second for p in find_duplicates(convs)}
    for i in sorted(dropped):
        print(f"near-duplicate dropped: {convs[i].meta.get('id')}", file=sys.stderr)
    convs = [c for i, c in enumerate(convs) if i not in dropped]
    rng = random.Random(SEED + 1)
    held: dict[str, list[Conversation]] = {"heldout-writers.jsonl": [], "heldout-real.jsonl": []}
    # One sample per held-out writer and corpus, each from its own seed: adding one never moves another.
    for writer in HELDOUT_WRITERS:
        theirs = [c for c in convs if c.meta.get("writer") == writer]
        held["heldout-writers.jsonl"] += random.Random(f"{SEED}-{writer}").sample(
            theirs, min(HELDOUT_WRITER_SAMPLE, len(theirs))
        )
    for corpus in HELDOUT_CORPORA:
        theirs = [c for c in convs if c.meta.get("corpus") == corpus]
        held["heldout-real.jsonl"] += random.Random(f"{SEED}-{corpus}").sample(
            theirs, min(HELDOUT_REAL_SAMPLE, len(theirs))
        )
    train = [
        c for c in convs if c.meta.get("writer") not in HELDOUT_WRITERS and c.meta.get("corpus") not in HELDOUT_CORPORA
    ]
    real = [c for c in train if c.meta.get("corpus")]
    kept = {id(c) for c in rng.sample(real, min(REAL_TRAIN_WINDOWS, len(real)))}
    train = [
        crop(c, REAL_TRAIN_TURNS, rng) if c.meta.get("corpus") else c
        for c in train
        if not c.meta.get("corpus") or id(c) in kept
    ]
    rng.shuffle(train)
    return {
        "train.jsonl": train,
        **{name: sorted(cs, key=lambda c: str(c.meta.get("id"))) for name, cs in held.items()},
    }


def datasheet_tables(convs: list[Conversation]) -> str:
    """Per writer set-up / real source: conversations, user turns, speaking rate, categories (markdown)."""
    groups: dict[str, list[Conversation]] = {}
    for c in convs:
        key = f"real: {c.meta['corpus']}" if c.meta.get("corpus") else f"writer {c.meta.get('writer', '?')}"
        groups.setdefault(key, []).append(c)
    rows = [
        "| source | split | conversations | user turns | speaking rate | speakers (mean) | categories |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, cs in sorted(groups.items()):
        turns = sum(c.user_turns for c in cs)
        speaks = sum(c.assistant_turns for c in cs)
        held = cs[0].meta.get("writer") in HELDOUT_WRITERS or cs[0].meta.get("corpus") in HELDOUT_CORPORA
        cats: dict[str, int] = {}
        for c in cs:
            cats[str(c.meta.get("category", "-"))] = cats.get(str(c.meta.get("category", "-")), 0) + 1
        cat_text = ", ".join(f"{k} {v}" for k, v in sorted(cats.items(), key=lambda kv: -kv[1]))
        rows.append(
            f"| {key} | {'held out' if held else 'train'} | {len(cs)} | {turns:,} | {speaks / max(turns, 1):.1%} "
            f"| {sum(len(c.users) for c in cs) / len(cs):.1f} | {cat_text} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed splits instead of writing")
    parser.add_argument("--stats", action="store_true", help="print the datasheet's per-source table and exit")
    args = parser.parse_args()
    if args.stats:
        print(datasheet_tables(sources()))
        return
    stale = []
    for name, convs in build().items():
        path = HERE / name
        if args.check:
            tmp = path.with_suffix(".check")
            write_conversations(tmp, convs)
            if not path.exists() or tmp.read_bytes() != path.read_bytes():
                stale.append(name)
            tmp.unlink()
        else:
            write_conversations(path, convs)
            print(f"{name}: {len(convs)} conversations, {sum(c.user_turns for c in convs)} user turns")
    if stale:
        sys.exit(f"error: {', '.join(stale)} differ from what data/prepare.py builds; run python data/prepare.py")


if __name__ == "__main__":
    main()
