"""The local replier on a quiet server: its own threads only, against the decisions' core lent while they are idle
(``chimein.rooms.lend_idle_cores``), in one process, on the same held-out chats.

    python bench/lent_core.py        # writes bench/results/lent_core.json and .md

For the first ``--chats`` held-out conversations, the replier answers the last user message of the first eight
messages (one cache, as in a server: each chat is new to it): seconds to the first word and to the whole reply,
with ``--threads`` threads, then with one more lent at every step (what a quiet server lends). Reported: the p50
of each and their ratio, and how many answers are the same text.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from chimein.assistant import replier as replier_module
from chimein.data import load_conversations

ROOT = Path(__file__).resolve().parents[1]


def answer_times(replier, chats, spare) -> tuple[list[float], list[float], list[str]]:
    replier.spare_threads = spare
    firsts, wholes, texts = [], [], []
    for messages in chats:  # one cache, as in a server: the system prompt stays read, each chat is new to it
        start, first, text = time.perf_counter(), None, ""
        for piece in replier.stream(messages):
            first = first if first is not None else time.perf_counter() - start
            text += piece
        wholes.append(time.perf_counter() - start)
        firsts.append(first if first is not None else wholes[-1])
        texts.append(text)
    return firsts, wholes, texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chats", type=int, default=12)
    ap.add_argument("--threads", type=int, default=None, help="the replier's own threads (default: its default)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/lent_core.json")
    args = ap.parse_args()
    chats = []
    for conv in list(load_conversations(ROOT / "data" / "heldout-writers.jsonl"))[: args.chats]:
        messages = conv.messages[:8]
        while messages[-1].role != "user":
            messages = messages[:-1]
        chats.append(messages)
    replier = replier_module.load("replier", threads=args.threads)
    answer_times(replier, chats[:2], None)  # warm up: weights paged in, the system prompt read once
    own = answer_times(replier, chats, None)
    lent = answer_times(replier, chats, lambda: 1)
    p50 = lambda xs: round(statistics.median(xs), 2)  # noqa: E731
    report = {
        "chats": len(chats),
        "replier_threads": replier.threads,
        "own_threads": {"first_word_p50_s": p50(own[0]), "whole_reply_p50_s": p50(own[1])},
        "lent_core": {"first_word_p50_s": p50(lent[0]), "whole_reply_p50_s": p50(lent[1])},
        "lent_over_own": {
            "first_word": round(p50(lent[0]) / p50(own[0]), 2),
            "whole_reply": round(p50(lent[1]) / p50(own[1]), 2),
        },
        "same_text": sum(a == b for a, b in zip(own[2], lent[2])),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# The local replier on a quiet server: its own threads, and the decisions' core lent (bench/lent_core.py)",
        "",
        f"{report['chats']} held-out chats, a question in each, one process; the replier on "
        f"{report['replier_threads']} thread(s), then one more lent at every step. {report['same_text']} of "
        f"{report['chats']} answers are the same text.",
        "",
        "| | first word p50 (s) | whole reply p50 (s) |",
        "|---|---|---|",
        f"| own threads | {report['own_threads']['first_word_p50_s']} | {report['own_threads']['whole_reply_p50_s']} |",
        f"| the decisions' core lent | {report['lent_core']['first_word_p50_s']} | "
        f"{report['lent_core']['whole_reply_p50_s']} |",
        f"| ratio | {report['lent_over_own']['first_word']} | {report['lent_over_own']['whole_reply']} |",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
