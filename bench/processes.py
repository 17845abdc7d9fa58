"""One vs two `chimein serve` processes on one PostgreSQL database, sharing one decision server.

    python bench/processes.py           # writes bench/results/processes.json and processes.md
    python bench/processes.py --quick   # fewer rooms and messages

The decisions run on llama.cpp's server (``python -m llama_cpp.server`` with the shipped adapter, ``--model
served:default``): the serve processes only store, claim, announce and ask. The same load runs twice, in one
process on a fresh database: ROOMS web rooms, two people each (no settle time, so every message is its own
decision); with 1 process all clients connect to it, with 2 processes each room's two people connect to different
processes. Two loads: "steady", about one message per second in all (below what the decision server can do:
the wait is one decision's cost), and "saturating", about six per second (above it: the decisions per second are
the server's capacity, the wait is the queue). From the database: user messages decided per second (from the
first message to the last decision) and p50/p95 from a message's storing to its decision.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.*: a real PostgreSQL, llama.cpp server and `chimein serve`

ROOMS = 8
LOADS = {"steady": (4, 16.0), "saturating": (6, 2.5)}  # messages per person, seconds between a person's messages


async def load(servers: list[Any], rooms: int, messages: int, period_s: float) -> dict[str, Any]:
    import httpx

    from tests.server import Client

    async with httpx.AsyncClient(base_url=servers[0].url, timeout=30) as http:
        made = [(await http.post("/api/rooms")).json() for _ in range(rooms)]
    clients = [
        Client(servers[(i + j) % len(servers)].ws_url, r["room"], r["token"], f"P{j}", f"r{i}p{j}")
        for i, r in enumerate(made)
        for j in range(2)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    start = time.time()

    last_sent = start

    async def person(c: Any, offset: float) -> None:
        nonlocal last_sent
        await asyncio.sleep(offset)
        for i in range(messages):
            if i:
                await asyncio.sleep(period_s)
            await c.say(1)
            last_sent = max(last_sent, time.time())

    # Spread over the period, so the servers see a steady stream rather than waves.
    step = period_s / len(clients)
    await asyncio.gather(*(person(c, k * step) for k, c in enumerate(clients)))
    sent_for = last_sent - start
    await asyncio.gather(*(c.close() for c in clients))
    return {"rooms": [r["room"] for r in made], "start": start, "sent_for_s": sent_for}


def decisions(url: str, rooms: list[str], timeout_s: float) -> list[tuple[float, float | None]]:
    """(stored, decided) times of every user message of ``rooms``, once all are decided (or the wait ran out)."""
    import psycopg

    deadline = time.time() + timeout_s
    with psycopg.connect(url) as conn:
        while True:
            rows = conn.execute(
                "SELECT m.time, d.time FROM messages m LEFT JOIN decisions d ON d.message_id = m.id "
                "WHERE m.role = 'user' AND m.room = ANY(%s)",
                (rooms,),
            ).fetchall()
            if all(r[1] is not None for r in rows) or time.time() > deadline:
                return [(r[0], r[1]) for r in rows]  # None: not decided when the wait ran out
            time.sleep(0.5)


def run(
    processes: int, load_name: str, base_url: str, pg: Any, log_dir: Path, rooms: int, messages: int, period_s: float
) -> dict:
    from tests.server import ServerProcess

    url = pg.create_database()
    extra = ("--base-url", base_url, "--settle", "0", "--threads", "1")
    servers = [
        ServerProcess(url, log_dir / f"serve-{load_name}-{processes}-{k}.log", "served:default", None, *extra).start()  # type: ignore[arg-type]
        for k in range(processes)
    ]
    try:
        sent = asyncio.run(load(servers, rooms, messages, period_s))
        times = decisions(url, sent["rooms"], timeout_s=600)
    finally:
        for s in servers:
            s.stop()
    decided = [(m, d) for m, d in times if d is not None]
    waits = sorted(d - m for m, d in decided)
    last = max(d for _, d in decided)
    return {
        "load": load_name,
        "processes": processes,
        "messages": len(times),
        "decided": len(decided),
        "decided_per_s": round(len(decided) / (last - sent["start"]), 3),
        "offered_per_s": round(len(times) / sent["sent_for_s"], 3),
        "wait_p50_s": round(statistics.median(waits), 2),
        "wait_p95_s": round(waits[min(len(waits) - 1, int(0.95 * len(waits)))], 2),
        "drained_after_s": round(last - sent["start"] - sent["sent_for_s"], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="the decision server's threads")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "processes.json"))
    args = ap.parse_args()
    from tests.helpers import decision_server
    from tests.postgres import PostgresServer

    rooms = 4 if args.quick else ROOMS
    loads = {name: (2, period) if args.quick else (n, period) for name, (n, period) in LOADS.items()}
    load_at_start = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory() as tmp,
        PostgresServer.start() as pg,
        decision_server(Path(tmp), args.threads) as base_url,
    ):
        rows = [
            run(k, name, base_url, pg, Path(tmp), rooms, n, period)
            for name, (n, period) in loads.items()
            for k in (1, 2)
        ]
    by = {(r["load"], r["processes"]): r for r in rows}
    result = {
        "rooms": rooms,
        "loads": {name: {"messages_per_person": n, "period_s": period} for name, (n, period) in loads.items()},
        "decision_server_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_at_start": round(load_at_start, 2),
        "rows": rows,
        "ratios_two_over_one": {
            name: {
                key: round(by[name, 2][f] / by[name, 1][f], 2)
                for key, f in (
                    ("decided_per_s", "decided_per_s"),
                    ("wait_p50", "wait_p50_s"),
                    ("wait_p95", "wait_p95_s"),
                )
            }
            for name in loads
        },
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    table = [
        "| load | serve processes | messages | decided | offered msg/s | decided msg/s | wait p50 (s) | wait p95 (s) "
        "| drained after the load (s) |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['load']} | {r['processes']} | {r['messages']} | {r['decided']} | {r['offered_per_s']} | {r['decided_per_s']} | "
            f"{r['wait_p50_s']} | {r['wait_p95_s']} | {r['drained_after_s']} |"
            for r in rows
        ),
    ]
    Path(args.out).with_suffix(".md").write_text(
        "# One vs two serve processes sharing one decision server (bench/processes.py)\n\n"
        + "\n".join(table)
        + f"\n\n{rooms} rooms, 2 people each; loads (messages per person, seconds apart): {loads}; decisions on "
        f"llama.cpp's server ({args.threads} thread, the shipped adapter); PostgreSQL on loopback; "
        f"{os.cpu_count()} cores; load average {load_at_start:.2f} at the start.\n"
    )
    print("\n".join(table))


if __name__ == "__main__":
    main()
