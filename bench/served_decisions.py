"""Decision latency on a serving engine (llama.cpp's server, p_speak from logprobs) vs in-process llama.cpp.

    python bench/served_decisions.py           # writes bench/results/served_decisions.json
    python bench/served_decisions.py --quick   # fewer samples
    python bench/served_decisions.py --threads 1   # one thread each (less sensitive to other load on the machine)

One process, one run: the shipped default adapter in-process (``llamacpp:default``) and the same GGUFs behind
``python -m llama_cpp.server`` on a loopback port (``served:default``), with the same threads each (all cores
unless ``--threads``),
one after the other on the same messages. Ratios served / in-process come from this run.

1. one room: the decision latency of the messages just before a history of 10, 50 and 100 (the room
   brought up to date untimed), as in ``decision_latency.py``;
2. rooms taking turns: ROOMS rooms with HISTORY messages each, one message per room per round: what one
   decision server sees from many rooms (in-process keeps each room's cache; llama-cpp-python's server keeps one
   sequence, so each room's turn re-reads its prompt);
3. a direct question answered: the decision plus the reply (up to 80 tokens), one fresh room per question.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from decision_latency import long_conversation, measure  # bench/decision_latency.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.helpers: a real llama.cpp server

from chimein.data import Message  # noqa: E402

# Shorter than decision_latency.py's 200: llama.cpp's server converts the whole context's logits to logprobs on
# every request, seconds per decision at a few thousand tokens on this machine.
LENGTHS = (10, 50, 100)
ROOMS, HISTORY = 4, 20
QUESTIONS = [
    "bot, how many syllables does a haiku have?",
    "assistant, what's the capital of australia?",
    "@assistant how far is the moon?",
    "bot, what is the boiling point of water in fahrenheit?",
]


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50": statistics.median(times),
        "p95": times[min(len(times) - 1, int(0.95 * len(times)))],
        "n": len(times),
    }


def rooms_taking_turns(backend, messages: list[Message], rounds: int) -> dict[str, float]:
    chats = [messages[i * (HISTORY + rounds) : (i + 1) * (HISTORY + rounds)] for i in range(ROOMS)]
    states = [backend.new_state() for _ in range(ROOMS)]
    for chat, state in zip(chats, states):  # every room reads its history once, untimed
        backend.decide(chat[:HISTORY], state)
    times = []
    for r in range(1, rounds + 1):
        for chat, state in zip(chats, states):
            start = time.perf_counter()
            backend.decide(chat[: HISTORY + r], state)
            times.append(time.perf_counter() - start)
    return {**percentiles(times), "decisions_per_s": len(times) / sum(times)}


def answered(backend, messages: list[Message]) -> dict[str, float]:
    backend.decide_only = False
    times = []
    for i, question in enumerate(QUESTIONS):
        chat = messages[i * 6 : i * 6 + 5] + [Message("user", question, "Ana")]
        start = time.perf_counter()
        d = backend.decide(chat, backend.new_state())
        times.append(time.perf_counter() - start)
        assert d.speak and d.text, (question, d)
    backend.decide_only = True
    return percentiles(times)


def run(backend, messages: list[Message], samples: int, rounds: int) -> dict:
    backend.decide_only = True  # the decision alone, as in decision_latency.py
    row = {
        "one_room_s": {
            str(n): v for n, v in measure(backend, messages, samples, incremental=True, lengths=LENGTHS).items()
        }
    }
    print(f"{backend.name}: one room done", file=sys.stderr, flush=True)
    row["rooms_taking_turns_s"] = rooms_taking_turns(backend, messages, rounds)
    print(f"{backend.name}: rooms taking turns done", file=sys.stderr, flush=True)
    row["direct_question_answered_s"] = answered(backend, messages)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "served_decisions.json"))
    args = ap.parse_args()
    from chimein.assistant import get_backend
    from tests.helpers import decision_server

    samples, rounds = (2, 2) if args.quick else (5, 4)
    messages = long_conversation(max(LENGTHS) + ROOMS * (HISTORY + rounds))
    threads = str(args.threads)
    load_at_start = os.getloadavg()[0]  # other work on the machine shows in every number; the ratios share it
    rows = {"in_process": run(get_backend("llamacpp:default", threads=args.threads), messages, samples, rounds)}
    with (
        tempfile.TemporaryDirectory() as tmp,
        decision_server(Path(tmp), args.threads) as url,
    ):
        rows["served"] = run(get_backend("served:default", base_url=url, timeout=600), messages, samples, rounds)
    inp, srv = rows["in_process"], rows["served"]
    ratios = {
        f"one_room_p50@{n}": round(srv["one_room_s"][str(n)]["p50"] / inp["one_room_s"][str(n)]["p50"], 2)
        for n in LENGTHS
    }
    ratios["rooms_taking_turns_p50"] = round(
        srv["rooms_taking_turns_s"]["p50"] / inp["rooms_taking_turns_s"]["p50"], 2
    )
    ratios["direct_question_answered_p50"] = round(
        srv["direct_question_answered_s"]["p50"] / inp["direct_question_answered_s"]["p50"], 2
    )
    result = {
        "model": "default",
        "threads": int(threads),
        "rooms": ROOMS,
        "history": HISTORY,
        "rows": rows,
        "served_over_in_process": ratios,
        "load_average_1min": [load_at_start, os.getloadavg()[0]],
    }
    for name, row in rows.items():
        one = " ".join(f"p50@{n} {row['one_room_s'][str(n)]['p50'] * 1000:.0f} ms" for n in LENGTHS)
        turns, ans = row["rooms_taking_turns_s"], row["direct_question_answered_s"]
        print(
            f"{name:<10} {one} | {ROOMS} rooms taking turns p50 {turns['p50'] * 1000:.0f} ms p95 {turns['p95'] * 1000:.0f} ms"
            f" ({turns['decisions_per_s']:.1f}/s) | answered p50 {ans['p50'] * 1000:.0f} ms"
        )
    print("served / in-process:", ratios)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
