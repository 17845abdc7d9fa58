"""Many rooms at once: peak memory of `chimein decide` and `chimein serve`, and what an evicted room costs.

    python bench/many_rooms.py            # all three parts, writes bench/results/many_rooms.json
    python bench/many_rooms.py --quick    # fewer rooms and messages

1. decide: `chimein decide` (the shipped default on llama.cpp) fed 40 conversations of 60 messages,
   interleaved, each request carrying its conversation's whole growing history (what a bot framework
   serving 40 chats sends). Peak RSS of that process.
2. serve: `chimein serve` with 50 web rooms, every room busy (each client sends 12 messages as fast as
   they are stored; no settle time, so every message gets its own decision). Peak RSS of the server, every message decided, and its RSS once
   every client has left.
3. hostile: `chimein serve` (the default, no settle time): how long a room waits for the answer to a direct
   question, alone and while one client sends 10,000-message histories back to back and a 1 MB request
   (refused); ratio against the room alone, measured in the same server.
4. latency, in one process: p50 decision latency of the next message in a room whose cache is still held
   (saved when another room took the model) vs a room whose cache was evicted by the memory budget (its
   history is read again), vs the room that holds the model; ratios against the held room.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
    proc = subprocess.Popen(["chimein", "decide"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
    return {"conversations": conversations, "messages": length, "requests": answered, "peak_rss_mb": round(peak),
            "seconds": round(time.monotonic() - started)}


async def _room_client(ws_url: str, made: dict, messages: list[dict], index: int) -> int:
    import websockets

    sent = 0
    async with websockets.connect(ws_url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "join", "room": made["room"], "token": made["token"], "name": f"user{index}",
                                  "key": f"benchkey{index:08d}benchkey"}))
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

    from chimein.server.store import Store

    store = Store.open(tmp / "rooms.db")  # made here: one address may create only 20 rooms at once over HTTP
    made = [{"room": r.id, "token": r.token} for r in (store.create_room() for _ in range(rooms))]
    store.close()
    # No settle time: every message gets a decision of its own (with one, a room's burst is decided once).
    with ServerProcess(tmp / "rooms.db", tmp / "serve.log", "llamacpp:default", None, "--settle", "0") as server:
        pid = server.proc.pid
        started = time.monotonic()
        baseline = rss_mb(pid)

        async def run_all() -> list[int]:
            return await asyncio.gather(*[_room_client(server.ws_url, made[i], user_messages(per_room, i * per_room), i)
                                          for i in range(rooms)])

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
    return {"rooms": rooms, "messages": sent, "decided": decided, "idle_rss_mb": round(baseline),
            "peak_rss_mb": round(peak), "rss_after_rooms_left_mb": round(after), "seconds": round(time.monotonic() - started)}


def bench_hostile(tmp: Path, questions: int = 4) -> dict:
    import threading

    import httpx
    import websockets
    from tests.server import ServerProcess

    history = {"messages": [{"role": "user", "name": f"u{i % 7}", "content": m["content"]}
                            for i, m in enumerate(user_messages(10_000))]}
    with ServerProcess(tmp / "rooms.db", tmp / "serve.log", "llamacpp:default", None, "--settle", "0") as server:
        made = httpx.post(server.url + "/api/rooms").json()

        async def ask_room(n: int) -> list[float]:
            waits = []
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "join", "room": made["room"], "token": made["token"], "name": "Ana",
                                          "key": "k" * 20}))
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
                codes.append(http.post(server.url + "/v1/chat/completions",
                                       json={"messages": [{"role": "user", "content": "x" * 1_100_000}]}).status_code)
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
    return {"room_answer_p50_s_alone": round(p50_alone, 2), "room_answer_p50_s_under_attack": round(p50_attack, 2),
            "room_answer_max_s_under_attack": round(max(under_attack), 2), "ratio": round(p50_attack / p50_alone, 1),
            "history_request_p50_s": round(statistics.median(api_times), 2) if api_times else None,
            "status_codes": sorted(set(codes)), "history_messages": 10_000}


def bench_latency(rooms: int, history: int, budget_mb: float) -> dict:
    from chimein.assistant import get_backend
    from chimein.data import Message

    backend = get_backend("llamacpp:default", state_budget_mb=budget_mb)
    chats = [[Message("user", m["content"], m["name"]) for m in user_messages(history + 10, offset=i * (history + 10))]
             for i in range(rooms)]
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
    return {"rooms": rooms, "history_messages": history, "state_budget_mb": budget_mb, "evictions": backend.engine.evictions,
            "p50_ms": p50, "samples": {k: len(v) for k, v in times.items()},
            "evicted_over_held": round(p50["evicted"] / p50["held"], 1) if "evicted" in p50 and "held" in p50 else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="latency,decide,serve,hostile")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "many_rooms.json"))
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
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
