"""Many rooms at once: peak memory of `chimein decide` and `chimein serve`, and what an evicted room costs.

    python bench/many_rooms.py            # all three parts, writes bench/results/many_rooms.json
    python bench/many_rooms.py --quick    # fewer rooms and messages
    python bench/many_rooms.py --parts load --label after                            # this checkout, --threads 1
    python bench/many_rooms.py --parts load --label before --load-src ../main/src    # another checkout's server

1. decide: `chimein decide` (the shipped default on llama.cpp) fed 40 conversations of 60 messages,
   interleaved, each request carrying its conversation's whole growing history (what a bot framework
   serving 40 chats sends). Peak RSS of that process.
2. serve: `chimein serve` with 50 web rooms, every room busy (each client sends 12 messages as fast as
   they are stored; no settle time, so every message gets its own decision). Peak RSS of the server, every message decided, and its RSS once
   every client has left.
3. hostile: `chimein serve` (the default, no settle time): how long a room waits for the answer to a direct
   question, alone and while one client sends 10,000-message histories back to back and a 1 MB request
   (refused); ratio against the room alone, measured in the same server.
5. load: the 40-room load of issue 25 on `chimein serve` with the shipped defaults (settle time 1.5 s):
   about 7 messages/s in all for ``--load-seconds``, real chat lines, and now and then a direct question
   ("assistant, what is the capital of Peru?") followed 0.5 s later by chatter ("brb") in the same room.
   Per question: the time from sending it to the first reply in its room, and whether that reply answers
   the question (its reply_to) or the chatter; then how long after the talk ends the server still decides
   (backlog: until every message has its decision), skipped decisions, and the server's peak RSS.
   ``--load-src DIR`` runs the server from another checkout's src/ (``--label before`` for today's main),
   ``--load-threads N`` passes ``--threads N``. Writes bench/results/many_rooms.json and many_rooms.md.
4. latency, in one process: p50 decision latency of the next message in a room whose cache is still held
   (saved when another room took the model) vs a room whose cache was evicted by the memory budget (its
   history is read again), vs the room that holds the model; ratios against the held room.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from peak import peak_rss_mb, rss_mb  # bench/peak.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.server: a real `chimein serve` process


def user_messages(n: int, offset: int = 0) -> list[dict]:
    """Real user lines from the validation chats, as wire messages."""
    out: list[dict] = []
    for line in (ROOT / "data" / "valid.jsonl").read_text().splitlines():
        for m in json.loads(line)["messages"]:
            if m["role"] == "user":
                out.append({"role": "user", "name": m["name"], "content": m["content"]})
    return [out[(offset + i) % len(out)] for i in range(n)]


def bench_decide(conversations: int, length: int, every: int) -> dict:
    convs = [user_messages(length, offset=i * length) for i in range(conversations)]
    proc = subprocess.Popen(
        ["chimein", "decide"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    peak, answered, started = 0.0, 0, time.monotonic()
    assert proc.stdin and proc.stdout
    for step in range(every, length + 1, every):
        for conv in convs:
            proc.stdin.write(json.dumps({"messages": conv[:step]}) + "\n")
            proc.stdin.flush()
            reply = json.loads(proc.stdout.readline())
            assert "speak" in reply, reply
            answered += 1
            peak = max(peak, peak_rss_mb(proc.pid))
        print(f"  decide: {answered} requests, peak {peak:.0f} MB", flush=True)
    proc.stdin.close()
    proc.wait(60)
    return {
        "conversations": conversations,
        "messages": length,
        "requests": answered,
        "peak_rss_mb": round(peak),
        "seconds": round(time.monotonic() - started),
    }


async def _room_client(ws_url: str, made: dict, messages: list[dict], index: int) -> int:
    import websockets

    sent = 0
    async with websockets.connect(ws_url, max_size=2**22) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "join",
                    "room": made["room"],
                    "token": made["token"],
                    "name": f"user{index}",
                    "key": f"benchkey{index:08d}benchkey",
                }
            )
        )
        while json.loads(await ws.recv())["type"] != "joined":
            pass
        for m in messages:
            await asyncio.sleep(1.1)  # a person's pace, and within the per-connection rate limit (1/s)
            await ws.send(json.dumps({"type": "say", "text": f"{m['name']}: {m['content']}"[:2000]}))
            while True:  # our message is stored; its decision is counted from the database at the end
                frame = json.loads(await asyncio.wait_for(ws.recv(), 600))
                if frame["type"] == "message" and frame["message"]["role"] == "user":
                    break
            sent += 1
        return sent


def bench_serve(rooms: int, per_room: int, tmp: Path) -> dict:
    from tests.server import ServerProcess

    from chimein.server.store import open_store

    store = open_store(tmp / "rooms.db")  # made here: one address may create only 20 rooms at once over HTTP
    made = [{"room": r.id, "token": r.token} for r in (store.create_room() for _ in range(rooms))]
    store.close()
    # No settle time: every message gets a decision of its own (with one, a room's burst is decided once).
    with ServerProcess(tmp / "rooms.db", tmp / "serve.log", "llamacpp:default", None, "--settle", "0") as server:
        pid = server.proc.pid
        started = time.monotonic()
        baseline = rss_mb(pid)

        async def run_all() -> list[int]:
            return await asyncio.gather(
                *[_room_client(server.ws_url, made[i], user_messages(per_room, i * per_room), i) for i in range(rooms)]
            )

        sent = sum(asyncio.run(run_all()))
        import sqlite3

        deadline, decided = time.monotonic() + 1800, 0
        while time.monotonic() < deadline:
            with sqlite3.connect(tmp / "rooms.db") as db:
                decided = db.execute("SELECT count(*) FROM decisions").fetchone()[0]
            if decided >= sent:
                break
            time.sleep(1)
        peak = peak_rss_mb(pid)
        time.sleep(3)
        after = rss_mb(pid)
    return {
        "rooms": rooms,
        "messages": sent,
        "decided": decided,
        "idle_rss_mb": round(baseline),
        "peak_rss_mb": round(peak),
        "rss_after_rooms_left_mb": round(after),
        "seconds": round(time.monotonic() - started),
    }


def bench_hostile(tmp: Path, questions: int = 4) -> dict:
    import threading

    import httpx
    import websockets
    from tests.server import ServerProcess

    history = {
        "messages": [
            {"role": "user", "name": f"u{i % 7}", "content": m["content"]} for i, m in enumerate(user_messages(10_000))
        ]
    }
    with ServerProcess(tmp / "rooms.db", tmp / "serve.log", "llamacpp:default", None, "--settle", "0") as server:
        made = httpx.post(server.url + "/api/rooms").json()

        async def ask_room(n: int) -> list[float]:
            waits = []
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(
                    json.dumps(
                        {"type": "join", "room": made["room"], "token": made["token"], "name": "Ana", "key": "k" * 20}
                    )
                )
                while json.loads(await ws.recv())["type"] != "joined":
                    pass
                for i in range(n):
                    start = time.monotonic()
                    await ws.send(json.dumps({"type": "say", "text": f"bot, what is {i + 2} times {i + 3}?"}))
                    while True:
                        frame = json.loads(await ws.recv())
                        if frame["type"] == "message" and frame["message"]["role"] == "assistant":
                            break
                    waits.append(time.monotonic() - start)
            return waits

        alone = asyncio.run(ask_room(questions))
        stop, api_times, codes = threading.Event(), [], []

        def attacker() -> None:
            with httpx.Client(timeout=600) as http:
                codes.append(
                    http.post(
                        server.url + "/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": "x" * 1_100_000}]},
                    ).status_code
                )
                while not stop.is_set():
                    start = time.monotonic()
                    codes.append(http.post(server.url + "/v1/chat/completions", json=history).status_code)
                    api_times.append(time.monotonic() - start)

        threads = [threading.Thread(target=attacker) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(2)
        under_attack = asyncio.run(ask_room(questions))
        stop.set()
        for t in threads:
            t.join(600)
    p50_alone, p50_attack = statistics.median(alone), statistics.median(under_attack)
    return {
        "room_answer_p50_s_alone": round(p50_alone, 2),
        "room_answer_p50_s_under_attack": round(p50_attack, 2),
        "room_answer_max_s_under_attack": round(max(under_attack), 2),
        "ratio": round(p50_attack / p50_alone, 1),
        "history_request_p50_s": round(statistics.median(api_times), 2) if api_times else None,
        "status_codes": sorted(set(codes)),
        "history_messages": 10_000,
    }


QUESTIONS = [
    "assistant, what is the capital of Peru?",
    "bot, how many minutes are in a day?",
    "assistant, what is the boiling point of water in fahrenheit?",
    "bot, who wrote the odyssey?",
    "assistant, how many legs does a spider have?",
    "bot, what is the tallest mountain in africa?",
]
FOLLOW_UPS = ["brb", "lol", "yeah totally", "ok see you at 7"]


def load_schedule(rooms: int, seconds: float, rate: float, questions: int, seed: int = 25) -> list[tuple]:
    """(time, room, speaker, text, kind) sorted by time: chatter at ``rate`` messages/s over random rooms, and
    ``questions`` direct questions spread over the talk, each followed 0.5 s later by chatter from the other speaker."""
    rng = random.Random(seed)
    chatter = user_messages(int(seconds * rate) + 1)
    events = [
        (i / rate, rng.randrange(rooms), rng.randrange(2), chatter[i]["content"][:2000], "chat")
        for i in range(int(seconds * rate))
    ]
    for k in range(questions):
        at, room = (k + 0.5) * seconds / questions, rng.randrange(rooms)
        events += [
            (at, room, 0, QUESTIONS[k % len(QUESTIONS)], "question"),
            (at + 0.5, room, 1, FOLLOW_UPS[k % len(FOLLOW_UPS)], "follow-up"),
        ]
    return sorted(events, key=lambda e: e[0])


def undecided(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT count(*) FROM messages m LEFT JOIN decisions d ON d.message_id = m.id "
            "WHERE m.role = 'user' AND d.message_id IS NULL"
        ).fetchone()[0]


async def _run_load(ws_url: str, made: list[dict], schedule: list[tuple], db: Path, max_backlog_s: float) -> dict:
    import websockets

    from chimein.mentions import mentions_assistant
    from chimein.rooms import BUSY_REPLY

    sent: dict[str, tuple[float, int, str]] = {}  # client_id -> (when, room, kind)
    addressed: set[str] = set()  # client_ids of every line that names the assistant (the questions and chat lines)
    ids: dict[str, int] = {}  # client_id -> message id
    replies: dict[int, tuple[float, int, int | None]] = {}  # reply id -> (when, room, reply_to)
    busy: set[int] = set()  # ids of the replies that say the assistant is too busy to answer (BUSY_REPLY)
    conns = {}
    for room in range(len(made)):
        for speaker in range(2):
            ws = await websockets.connect(ws_url, max_size=2**22)
            await ws.send(
                json.dumps(
                    {
                        "type": "join",
                        "room": made[room]["room"],
                        "token": made[room]["token"],
                        "name": ("Ana", "Ben")[speaker] + str(room),
                        "key": f"loadkey{room:04d}{speaker}xxxxxxxx",
                    }
                )
            )
            while json.loads(await ws.recv())["type"] != "joined":
                pass
            conns[room, speaker] = ws

    async def read(room: int, ws: Any) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] != "message":
                continue
            m = frame["message"]
            if m["role"] == "user" and m.get("client_id") in sent:
                ids[m["client_id"]] = m["id"]
            elif m["role"] == "assistant" and m["id"] not in replies:
                replies[m["id"]] = (time.monotonic(), room, m.get("reply_to"))
                if m["content"] == BUSY_REPLY:
                    busy.add(m["id"])

    readers = [asyncio.create_task(read(room, ws)) for (room, _), ws in conns.items()]
    start = time.monotonic()
    for n, (at, room, speaker, text, kind) in enumerate(schedule):
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        cid = f"load{n}"
        sent[cid] = (time.monotonic(), room, kind)
        if mentions_assistant(text):
            addressed.add(cid)
        await conns[room, speaker].send(json.dumps({"type": "say", "text": text, "client_id": cid}))
    talk_ended = time.monotonic()
    while (left := await asyncio.to_thread(undecided, db)) and time.monotonic() - talk_ended < max_backlog_s:
        await asyncio.sleep(0.5)
    backlog_s = time.monotonic() - talk_ended
    await asyncio.sleep(1)  # the last replies reach the clients
    for task in readers:
        task.cancel()
    for ws in conns.values():
        await ws.close()
    waits, on_question, on_other, unanswered = [], 0, 0, 0
    for cid, (when, room, kind) in sent.items():
        if kind != "question":
            continue
        later = sorted((t, to) for t, r, to in replies.values() if r == room and t >= when)
        mine = [t for t, to in later if to == ids.get(cid)]
        if mine:
            on_question += 1
            waits.append(mine[0] - when)
        elif later:
            on_other += 1
            waits.append(later[0][0] - when)
        else:
            unanswered += 1
    follow_up_ids = {ids[c] for c, (_, _, k) in sent.items() if k == "follow-up" and c in ids}
    with sqlite3.connect(db) as conn:
        skipped = conn.execute("SELECT count(*) FROM decisions WHERE note LIKE 'skipped%'").fetchone()[0]
    waits.sort()
    # Every line that names the assistant, the chat's own included: the time to a reply addressed to it.
    answered_at, written_at = {}, {}
    for reply_id, (t, _, to) in replies.items():
        answered_at[to] = min(t, answered_at.get(to, t))
        if reply_id not in busy:
            written_at[to] = min(t, written_at.get(to, t))
    asked = sorted(answered_at[ids[c]] - sent[c][0] for c in addressed if ids.get(c) in answered_at)
    written = sorted(written_at[ids[c]] - sent[c][0] for c in addressed if ids.get(c) in written_at)
    return {
        "messages": len(sent),
        "questions": on_question + on_other + unanswered,
        "answered_on_the_question": on_question,
        "answered_on_other_message": on_other,
        "unanswered": unanswered,
        "replies_on_follow_ups": sum(1 for _, _, to in replies.values() if to in follow_up_ids),
        "question_to_answer_p50_s": round(statistics.median(waits), 1) if waits else None,
        "question_to_answer_p95_s": round(waits[min(len(waits) - 1, int(0.95 * len(waits)))], 1) if waits else None,
        "addressed_lines": len(addressed),
        "addressed_answered": len(asked),
        "addressed_to_reply_p50_s": round(statistics.median(asked), 1) if asked else None,
        "addressed_to_reply_p95_s": round(asked[int(0.95 * (len(asked) - 1))], 1) if asked else None,
        "busy_replies": len(busy),
        "addressed_written": len(written),
        "addressed_to_written_reply_p50_s": round(statistics.median(written), 1) if written else None,
        "addressed_to_written_reply_p95_s": round(written[int(0.95 * (len(written) - 1))], 1) if written else None,
        "question_waits_s": [round(w, 1) for w in waits],
        "backlog_after_talk_s": round(backlog_s, 1),
        "undecided_at_the_end": left,
        "skipped_decisions": skipped,
        "talk_seconds": round(talk_ended - start, 1),
    }


def bench_load(
    tmp: Path,
    rooms: int,
    seconds: float,
    rate: float,
    questions: int,
    src: str | None,
    threads: int | None,
    max_backlog_s: float,
    model: str = "llamacpp:default",
    serve_args: tuple[str, ...] = (),
    log_copy: Path | None = None,
) -> dict:
    from tests.server import ServerProcess

    from chimein.server.store import open_store

    store = open_store(tmp / "rooms.db")
    made = [{"room": r.id, "token": r.token} for r in (store.create_room() for _ in range(rooms))]
    store.close()
    extra = (("--threads", str(threads)) if threads else ()) + tuple(serve_args)
    env = dict(os.environ)
    if src:
        os.environ["PYTHONPATH"] = str(Path(src).resolve())
    try:
        with ServerProcess(tmp / "rooms.db", tmp / "serve.log", model, None, *extra) as server:
            result = asyncio.run(
                _run_load(
                    server.ws_url,
                    made,
                    load_schedule(rooms, seconds, rate, questions),
                    tmp / "rooms.db",
                    max_backlog_s,
                )
            )
            result.update(
                rooms=rooms,
                rate_per_s=rate,
                peak_rss_mb=round(peak_rss_mb(server.proc.pid)),
                threads=threads or "the server's default",
                src=src or "this checkout",
                model=model,
                serve_args=" ".join(serve_args),
            )
    finally:
        if log_copy is not None and (tmp / "serve.log").exists():
            log_copy.write_bytes((tmp / "serve.log").read_bytes())
        os.environ.clear()
        os.environ.update(env)
    return result


def load_table(load: dict) -> str:
    """The load results side by side, as markdown."""
    rows = [
        ("direct questions", "questions"),
        ("answered on the question (reply_to)", "answered_on_the_question"),
        ("answered on another message", "answered_on_other_message"),
        ("unanswered", "unanswered"),
        ("question -> answer p50 (s)", "question_to_answer_p50_s"),
        ("question -> answer p95 (s)", "question_to_answer_p95_s"),
        ("lines naming the assistant, answered", "addressed_answered"),
        ("line naming the assistant -> its reply p50 (s)", "addressed_to_reply_p50_s"),
        ("line naming the assistant -> its reply p95 (s)", "addressed_to_reply_p95_s"),
        ("replies saying the assistant is too busy", "busy_replies"),
        ("lines naming the assistant answered in words (not busy)", "addressed_written"),
        ("line naming the assistant -> its answer in words p50 (s)", "addressed_to_written_reply_p50_s"),
        ("line naming the assistant -> its answer in words p95 (s)", "addressed_to_written_reply_p95_s"),
        ("backlog after the talk ends (s)", "backlog_after_talk_s"),
        ("messages undecided at the end", "undecided_at_the_end"),
        ("chit-chat decisions skipped (behind)", "skipped_decisions"),
        ("server peak RSS (MB)", "peak_rss_mb"),
        ("llama.cpp threads", "threads"),
        ("messages sent", "messages"),
    ]
    labels = list(load)
    lines = ["| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [
        f"| {title} | " + " | ".join(str(load[label].get(key, "-")) for label in labels) + " |" for title, key in rows
    ]
    return "\n".join(lines) + "\n"


def bench_latency(rooms: int, history: int, budget_mb: float) -> dict:
    from chimein.assistant import get_backend
    from chimein.data import Message

    backend = get_backend("llamacpp:default", state_budget_mb=budget_mb)
    chats = [
        [Message("user", m["content"], m["name"]) for m in user_messages(history + 10, offset=i * (history + 10))]
        for i in range(rooms)
    ]
    states = [backend.new_state() for _ in range(rooms)]
    for i in range(rooms):  # every room reads its history once; the oldest ones fall out of the budget
        backend.decide(chats[i][:history], states[i], threshold=1.01)
    times: dict[str, list[float]] = {"active": [], "held": [], "evicted": []}
    fed = [history] * rooms

    def next_message(i: int) -> None:
        kind = {"saved": "held"}.get(backend.engine.residency(states[i].kv), backend.engine.residency(states[i].kv))
        fed[i] += 1
        start = time.perf_counter()
        backend.decide(chats[i][: fed[i]], states[i], threshold=1.01)
        times[kind].append(time.perf_counter() - start)

    # Three busy rooms take turns (their caches stay within the budget); now and then a quiet room whose
    # cache was evicted long ago gets a message; and a busy room gets two messages in a row.
    hot = list(range(rooms - 3, rooms))
    for step in range(5):
        for i in hot:
            next_message(i)
        next_message(hot[-1])
        next_message(step % (rooms - 3))
    p50 = {k: round(statistics.median(v) * 1000, 1) for k, v in times.items() if v}
    return {
        "rooms": rooms,
        "history_messages": history,
        "state_budget_mb": budget_mb,
        "evictions": backend.engine.evictions,
        "p50_ms": p50,
        "samples": {k: len(v) for k, v in times.items()},
        "evicted_over_held": round(p50["evicted"] / p50["held"], 1) if "evicted" in p50 and "held" in p50 else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="latency,decide,serve,hostile")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "many_rooms.json"))
    ap.add_argument("--label", default="after", help="load: the name of this run in the results")
    ap.add_argument("--load-src", default=None, help="load: run the server from this src/ directory")
    ap.add_argument("--load-threads", type=int, default=None, help="load: pass --threads N to the server")
    ap.add_argument("--load-seconds", type=float, default=120.0)
    ap.add_argument("--load-questions", type=int, default=12)
    ap.add_argument(
        "--load-model", default="llamacpp:default", help="load: the server's --model (mention: a smoke test)"
    )
    ap.add_argument("--load-arg", action="append", default=[], help="load: one more argument for `chimein serve`")
    ap.add_argument("--load-log", type=Path, default=None, help="load: keep the server's log (decisions) here")
    ap.add_argument("--max-backlog", type=float, default=300.0, help="load: stop waiting for the backlog after this")
    args = ap.parse_args()
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    parts = args.parts.split(",")
    if "latency" in parts:
        results["latency"] = bench_latency(8 if args.quick else 12, 40, 128.0)
        print("latency:", results["latency"], flush=True)
    if "decide" in parts:
        results["decide"] = bench_decide(10 if args.quick else 40, 60, 20)
        print("decide:", results["decide"], flush=True)
    if "serve" in parts:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            results["serve"] = bench_serve(10 if args.quick else 50, 4 if args.quick else 12, Path(tmp))
        print("serve:", results["serve"], flush=True)
    if "hostile" in parts:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            results["hostile"] = bench_hostile(Path(tmp))
        print("hostile:", results["hostile"], flush=True)
    if "load" in parts:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            run = bench_load(
                Path(tmp),
                10 if args.quick else 40,
                30 if args.quick else args.load_seconds,
                7.0,
                3 if args.quick else args.load_questions,
                args.load_src,
                args.load_threads,
                args.max_backlog,
                args.load_model,
                tuple(args.load_arg),
                args.load_log,
            )
        results.setdefault("load", {})[args.label] = run
        print(f"load ({args.label}):", run, flush=True)
        (out_path.with_suffix(".md")).write_text(
            "# The 40-room load (issue 25), bench/many_rooms.py --parts load\n\n" + load_table(results["load"])
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
