"""The 40-room load of issue 25 on the real room engine, with SIMULATED model costs (sleeps, no model).

    python bench/room_queue.py                          # 40 rooms, 120 s of talk, the replier on; writes
                                                        # bench/results/room_queue.json and room_queue.md
    python bench/room_queue.py --label before --speed 4 # the same load 4x faster (every time divided by 4)
    python bench/room_queue.py --no-replier --label "no replier"

What is real: the room engine (``chimein.rooms.Room``: settle time, bursts, urgent-first ``ModelThread``,
promote, skipping stale chit-chat, the replier's rewrite), the room policy, ``TwoStage``, and the load of
bench/many_rooms.py --parts load (its schedule: 40 rooms, about 7 messages/s of real chat lines from
data/valid.jsonl, 12 direct questions each followed 0.5 s later by chatter in the same room).

What is simulated: the model. A decision *sleeps* for what it would cost the shipped default on llama.cpp
with one thread: a fixed part, plus the prompt tokens it must read at ``--prefill-tok-s``. A room whose
cache is held (the engine keeps the least recently used rooms' caches within ``--room-cache-mb``, about
``--kb-per-token`` KB per token, like ``LlamaCppEngine``) reads only its new messages; a room whose cache was
evicted reads its whole window again. A decision to speak also writes the local reply (``--local-reply-s``).
The replier (``--replier-s``, one reply at a time, like ``LocalReplier``) sleeps while it writes. Messages
that ask the assistant (``mentions.asks_the_assistant``) are answered; others are volunteered on with
probability ``--volunteer``. Sleeping costs no CPU, so this runs anywhere; it finds where the time goes in
the engine, not what the model costs (bench/many_rooms.py measures that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimein.assistant.core import Assistant, Decision, TwoStage
from chimein.assistant.policy import RoomGate, RoomPolicy
from chimein.data import Message
from chimein.mentions import asks_the_assistant
from chimein.rooms import Incoming, ModelThread, Outcome, Room

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_rooms import load_schedule  # bench/many_rooms.py: the same load

ROOT = Path(__file__).resolve().parents[1]
WINDOW_TOKENS = 1900  # the shipped default's context window for the chat (2048 minus the reply's room)


def tokens(messages: list[Message]) -> int:
    """Prompt tokens of a chat in the fine-tuned format, roughly: the shipped default read 20, 40 and 80 of these
    chat lines as 635, 1267 and 2425 tokens (about 2 characters a token, and 10 for a turn's markers and name)."""
    return min(WINDOW_TOKENS, sum(len(m.content) // 2 + 10 for m in messages))


@dataclass
class Costs:
    speed: float = 1.0  # every duration divided by this
    # Calibrated on the shipped default, one llama.cpp thread (many_rooms.json "latency": held p50 0.18 s, an
    # evicted room's 40 messages (about 1270 tokens) 5.2 s; a question decided with its reply 0.82-1.07 s,
    # without it 0.29-0.37 s, on this machine beside other work).
    fixed_s: tuple[float, float] = (0.15, 0.3)  # a decision with the room's cache held
    prefill_tok_s: float = 250.0  # prompt tokens read per second
    kb_per_token: float = 23.0  # the room's KV cache (SmolLM2-135M)
    room_cache_mb: float = 256.0  # chimein serve --room-cache-mb
    local_reply_s: float = 0.65  # the decider writes its own reply when it speaks
    replier_s: tuple[float, float] = (3.0, 4.0)  # the local replier (Qwen2.5-Coder-1.5B), one reply
    volunteer: float = 0.08
    seed: int = 25

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)


@dataclass(eq=False)
class SimRoom:
    cached: int = 0  # tokens its cache holds (0: evicted or new)


@dataclass
class SimBackend:
    """The decision's costs (see the module docstring); one call at a time, like the real backend."""

    costs: Costs
    supports_probability: bool = True
    threshold: float = 0.5
    answer_direct_questions: bool = True
    decide_only: bool = False
    saved: OrderedDict = field(default_factory=OrderedDict)  # room -> cache bytes, least recently used first
    active: SimRoom | None = None
    stats: dict = field(default_factory=lambda: {"calls": 0, "held": 0, "evicted": 0, "busy_s": 0.0})

    def __post_init__(self) -> None:
        self.rng = random.Random(self.costs.seed)

    def new_state(self) -> SimRoom:
        return SimRoom()

    def _activate(self, room: SimRoom) -> bool:
        """True when the room's cache was held (active or saved), like LlamaCppEngine's budget."""
        held = room is self.active or room in self.saved
        if room is not self.active:
            if self.active is not None and self.active.cached:
                self.saved[self.active] = self.active.cached * self.costs.kb_per_token * 1024
                while sum(self.saved.values()) > self.costs.room_cache_mb * 2**20 and len(self.saved) > 1:
                    oldest, _ = self.saved.popitem(last=False)
                    oldest.cached = 0
            self.saved.pop(room, None)
            self.active = room
        return held

    def decide(self, messages: list[Message], state: SimRoom, threshold: float | None = None) -> Decision:
        start = time.monotonic()
        held = self._activate(state)
        total = tokens(messages)
        read = total - state.cached if held and state.cached <= total else total
        state.cached = total
        cost = self.rng.uniform(*self.costs.fixed_s) + read / self.costs.prefill_tok_s
        text = messages[-1].content
        speak = asks_the_assistant(text) or self.rng.random() < self.costs.volunteer
        if speak:
            cost += self.costs.local_reply_s
        self.costs.sleep(cost)
        self.stats["calls"] += 1
        self.stats["held" if held else "evicted"] += 1
        self.stats["busy_s"] += (time.monotonic() - start) * self.costs.speed
        return Decision(speak, f"local reply to {text}" if speak else "", 0.9 if speak else 0.1)


class SimReplier:
    """Writes for ``replier_s`` seconds, one reply at a time (a lock, like LocalReplier)."""

    concurrent_replies = 1

    def __init__(self, costs: Costs):
        self.costs, self.lock, self.rng = costs, threading.Lock(), random.Random(costs.seed + 1)
        self.written = 0

    def reply(self, messages: list[Message]) -> str:
        with self.lock:
            self.costs.sleep(self.rng.uniform(*self.costs.replier_s))
            self.written += 1
        return f"reply to {messages[-1].content}"


async def run_load(
    costs: Costs,
    rooms: int,
    seconds: float,
    questions: int,
    replier: bool,
    max_backlog: float,
    replier_wait_s: float | None = None,
) -> dict:
    speed = costs.speed
    backend = SimBackend(costs)
    sim_replier = SimReplier(costs) if replier else None
    two_stage = TwoStage(backend, sim_replier) if sim_replier else None
    model = ModelThread()
    loop = asyncio.get_running_loop()
    start = loop.time()

    def now() -> float:  # load seconds since the start
        return (loop.time() - start) * speed

    decided: dict[int, Decision] = {}
    replies: list[tuple[float, int, int]] = []  # (when, room, reply_to)

    def recorder(room: int):
        async def record(outcomes: list[Outcome]) -> None:
            for o in outcomes:
                decided[o.message.id] = o.decision
                if o.decision.speak:
                    replies.append((now(), room, o.message.id))

        return record

    engines = [
        Room(
            f"room:{r}",
            Assistant(backend),
            RoomGate(RoomPolicy(settle_s=1.5 / speed)),
            model,
            on_outcomes=recorder(r),
            two_stage=two_stage,
            behind_s=5.0 / speed,
            **({} if replier_wait_s is None else {"replier_wait_s": replier_wait_s / speed}),  # main's Room has none
        )
        for r in range(rooms)
    ]
    sent: list[tuple[int, float, int, str]] = []  # (id, when, room, kind)
    schedule = load_schedule(rooms, seconds, 7.0, questions)
    for n, (at, room, speaker, text, kind) in enumerate(schedule):
        await asyncio.sleep(max(0.0, (at - now()) / speed))
        sent.append((n, now(), room, kind))
        engines[room].hear(Incoming(n, ("Ana", "Ben")[speaker] + str(room), text))
    talk_ended = now()
    while len(decided) < len(sent) and now() - talk_ended < max_backlog:
        await asyncio.sleep(0.1 / speed)
    backlog = now() - talk_ended
    for engine in engines:
        await engine.close()
    model.shutdown(wait=False, cancel_futures=True)

    waits, on_question, on_other, first_other, unanswered = [], 0, 0, 0, 0
    for n, when, room, kind in sent:
        if kind != "question":
            continue
        later = sorted((t, to) for t, r, to in replies if r == room and t >= when)
        mine = [t for t, to in later if to == n]
        if mine:
            on_question += 1
            waits.append(mine[0] - when)
            first_other += later[0][1] != n  # another message's reply came before it
        elif later:  # bench/many_rooms.py's "answered on another message"
            on_other += 1
        else:
            unanswered += 1
    waits.sort()
    skipped = sum(1 for d in decided.values() if d.reason.startswith("skipped") or d.note.startswith("skipped"))
    return {
        "messages": len(sent),
        "questions": questions,
        "answered_on_the_question": on_question,
        "answered_on_other_message": on_other,
        "another_reply_first": first_other,
        "unanswered": unanswered,
        "question_to_answer_p50_s": round(statistics.median(waits), 1) if waits else None,
        "question_to_answer_p95_s": round(waits[min(len(waits) - 1, int(0.95 * len(waits)))], 1) if waits else None,
        "question_to_answer_max_s": round(waits[-1], 1) if waits else None,
        "backlog_after_talk_s": round(backlog, 1),
        "undecided_at_the_end": len(sent) - len(decided),
        "skipped_decisions": skipped,
        "model_calls": backend.stats["calls"],
        "calls_with_cache_held": backend.stats["held"],
        "calls_with_cache_evicted": backend.stats["evicted"],
        "model_busy_s": round(backend.stats["busy_s"], 1),
        "replies_written": sim_replier.written if sim_replier else 0,
        "local_replies_replier_behind": sum(1 for d in decided.values() if "used the local reply" in d.note),
        "replier": replier,
        "replier_wait_s": replier_wait_s,
        "rooms": rooms,
        "talk_seconds": seconds,
        "speed": speed,
        "costs": {k: v for k, v in vars(costs).items() if k not in ("speed", "seed")},  # what the simulation assumed
    }


ROWS = [
    ("direct questions", "questions"),
    ("answered on the question", "answered_on_the_question"),
    ("answered on another message", "answered_on_other_message"),
    ("answered, but another message's reply came first", "another_reply_first"),
    ("unanswered", "unanswered"),
    ("question -> answer p50 (s)", "question_to_answer_p50_s"),
    ("question -> answer p95 (s)", "question_to_answer_p95_s"),
    ("question -> answer max (s)", "question_to_answer_max_s"),
    ("backlog after the talk ends (s)", "backlog_after_talk_s"),
    ("messages undecided at the end", "undecided_at_the_end"),
    ("decisions skipped (with a reason)", "skipped_decisions"),
    ("model calls", "model_calls"),
    ("calls with the room's cache held / evicted", ("calls_with_cache_held", "calls_with_cache_evicted")),
    ("model busy (s)", "model_busy_s"),
    ("replies the replier wrote", "replies_written"),
    ("local replies sent (the replier behind)", "local_replies_replier_behind"),
    ("messages sent", "messages"),
]


def table(results: dict[str, dict]) -> str:
    labels = list(results)
    lines = ["| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for title, key in ROWS:
        cells = [
            " / ".join(str(results[label].get(k, "-")) for k in key)
            if isinstance(key, tuple)
            else str(results[label].get(key, "-"))
            for label in labels
        ]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label", default="after")
    ap.add_argument("--rooms", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--questions", type=int, default=12)
    ap.add_argument("--speed", type=float, default=1.0, help="run the load this many times faster")
    ap.add_argument("--no-replier", action="store_true")
    ap.add_argument(
        "--replier-wait", type=float, default=None, help="Room(replier_wait_s=): a question's reply waits at most this"
    )
    ap.add_argument("--room-cache-mb", type=float, default=256.0)
    ap.add_argument("--prefill-tok-s", type=float, default=Costs.prefill_tok_s)
    ap.add_argument("--local-reply-s", type=float, default=Costs.local_reply_s)
    ap.add_argument("--max-backlog", type=float, default=240.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "room_queue.json"))
    args = ap.parse_args()
    logging.getLogger("chimein").setLevel(logging.ERROR)  # one warning per skipped or local reply: counted instead
    costs = Costs(
        speed=args.speed,
        room_cache_mb=args.room_cache_mb,
        prefill_tok_s=args.prefill_tok_s,
        local_reply_s=args.local_reply_s,
    )
    run: dict[str, Any] = asyncio.run(
        run_load(
            costs, args.rooms, args.seconds, args.questions, not args.no_replier, args.max_backlog, args.replier_wait
        )
    )
    print(json.dumps(run, indent=1), flush=True)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results[args.label] = run
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        "# The 40-room load on the room engine, model costs SIMULATED (bench/room_queue.py)\n\n"
        "Every model call sleeps for what it would cost (see the script's docstring); the real load's numbers\n"
        "are in many_rooms.md.\n\n" + table(results)
    )


if __name__ == "__main__":
    main()
