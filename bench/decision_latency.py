"""Per-message decision latency and memory as a conversation grows: naive loop vs cached vs llama.cpp.

    python bench/decision_latency.py                 # the default adapter, writes bench/results/decision_latency.json
    python bench/decision_latency.py --quick         # fewer samples

One process, one run, same conversation for every backend:
- naive:     the seed's loop: re-encode the whole history and generate the assistant turn (transformers)
- cached:    chimein's fast path: per-room KV cache, one forward pass over the new message, p_speak
- llama.cpp: the same fast path on the quantized GGUF base + LoRA adapter GGUF

Latency is measured on the messages just before each history length (10, 50, 200); ratios are taken
against the naive loop measured in the same run. Memory is the peak RSS of a fresh process per fast backend
(this script re-run with ``--memory-of NAME``) replaying the same 200 messages: in the latency process
every backend after the first would inherit what the earlier ones left behind (torch, the heap).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path

from chimein.assistant import get_backend
from chimein.data import Message, load_conversations
from peak import in_fresh_process, peak_rss_mb  # bench/peak.py

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = (10, 50, 200)


def long_conversation(n: int) -> list[Message]:
    """User messages only (the assistant stays silent throughout), taken from the validation chats."""
    out: list[Message] = []
    for conv in load_conversations(ROOT / "data" / "valid.jsonl"):
        out += [m for m in conv.messages if m.role == "user"]
        if len(out) >= n:
            return out[:n]
    raise SystemExit("not enough validation messages")


def replay_for_memory(spec: str, messages: list[Message]) -> None:
    """Child process: load one backend, replay every message into one room, print the peak RSS."""
    backend = get_backend(spec)
    backend.decide_only = True
    state = backend.new_state()
    for end in range(1, len(messages) + 1):
        backend.decide(messages[:end], state)
    print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1)}))


def measure(
    backend, messages: list[Message], samples: int, incremental: bool, lengths: tuple[int, ...] = LENGTHS
) -> dict[int, dict[str, float]]:
    results = {}
    state = backend.new_state()
    fed = 0
    for length in lengths:
        times = []
        for end in range(length - samples + 1, length + 1):
            if incremental:
                while fed < end - 1:  # bring the room up to date, untimed
                    backend.decide(messages[: fed + 1], state)
                    fed += 1
            start = time.perf_counter()
            backend.decide(messages[:end], state if incremental else backend.new_state())
            times.append(time.perf_counter() - start)
            fed = end
        times.sort()
        results[length] = {"p50": statistics.median(times), "p95": times[min(len(times) - 1, int(0.95 * len(times)))]}
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "decision_latency.json"))
    ap.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: the fresh-process memory replay
    args = ap.parse_args()
    messages = long_conversation(max(LENGTHS))
    if args.memory_of:
        return replay_for_memory(args.memory_of, messages)
    samples = 2 if args.quick else 5
    rows = {}
    for name, spec, incremental, n in [
        ("cached", dict(spec=args.model), True, samples),
        ("llama.cpp", dict(spec=f"llamacpp:{args.model}"), True, samples),
        ("naive", dict(spec=args.model, mode="generate"), False, 2 if args.quick else 3),
    ]:
        backend = get_backend(**spec)
        backend.decide_only = True  # the decision alone (the naive loop's decision is its generated turn)
        rows[name] = {"latency_s": measure(backend, messages, n, incremental)}
        del backend
        gc.collect()
    for name, spec in [("cached", args.model), ("llama.cpp", f"llamacpp:{args.model}")]:
        rows[name]["fresh_process_peak_rss_mb"] = in_fresh_process(__file__, "--memory-of", spec)["peak_rss_mb"]
    naive50 = rows["naive"]["latency_s"][50]["p50"]
    for name, row in rows.items():
        lat = row["latency_s"]
        row["speedup_vs_naive_at_50"] = round(naive50 / lat[50]["p50"], 1)
        row["p50_200_over_p50_10"] = round(lat[200]["p50"] / lat[10]["p50"], 2)
    print(
        f"{'backend':<10} "
        + " ".join(f"{'p50@' + str(n):>9} {'p95@' + str(n):>9}" for n in LENGTHS)
        + f" {'x naive@50':>10} {'200/10':>7} {'peak MB':>8}"
    )
    for name, row in rows.items():
        lat = row["latency_s"]
        cells = " ".join(f"{lat[n]['p50'] * 1000:>7.0f}ms {lat[n]['p95'] * 1000:>7.0f}ms" for n in LENGTHS)
        print(
            f"{name:<10} {cells} {row['speedup_vs_naive_at_50']:>10} {row['p50_200_over_p50_10']:>7} {row.get('fresh_process_peak_rss_mb', '-'):>8}"
        )
    print("peak MB: peak RSS of a fresh process replaying the 200 messages with that backend alone")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "lengths": LENGTHS, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
