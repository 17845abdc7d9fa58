"""The decision model's base weights on llama.cpp: the shipped Q4_1 GGUF against the Q8_0 copy chimein runs
(``backends.llamacpp.base_gguf_path``), in one process, on the same held-out turns.

    python bench/base_quant.py        # writes bench/results/base_quant.json and .md

For every user turn of the first ``--conversations`` held-out chats (teacher-forced, each chat in its own room
cache, as a room decides), both engines give p_speak; reported: seconds per decision (ratio against Q4_1), how
far the two p_speak are apart, and how many decisions differ at the shipped threshold. Then the raw reading
speed of each file: tokens per second for a 1,000-token prompt and for 30-token messages, one and two threads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from chimein.assistant.backends import llamacpp
from chimein.data import load_conversations
from chimein.models import resolve_model

ROOT = Path(__file__).resolve().parents[1]


def p_speak_per_turn(backend, conversations) -> tuple[np.ndarray, float]:
    out, start = [], time.perf_counter()
    for conv in conversations:
        state = backend.new_state()
        for i, _ in conv.decisions():
            out.append(backend.decide(conv.messages[: i + 1], state, threshold=1.01).p_speak)
    return np.array(out), time.perf_counter() - start


def reading_speed(path: Path, threads: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False)
    tokens = llm.tokenize((ROOT / "data" / "valid.jsonl").read_text()[:12000].encode())[:1500]
    start = time.perf_counter()
    llm.eval(tokens[:1000])
    prompt = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(1000, 1500, 30):
        llm.eval(tokens[i : i + 30])
    messages = time.perf_counter() - start
    return {"prompt_tok_s": round(1000 / prompt), "messages_tok_s": round(500 / messages)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/base_quant.json")
    args = ap.parse_args()
    resolved = resolve_model("default")
    shipped, copy = Path(resolved.source) / resolved.gguf_file, llamacpp.base_gguf_path(resolved)
    conversations = list(load_conversations(ROOT / "data" / "heldout-writers.jsonl"))[: args.conversations]

    fast = llamacpp.load("default")
    q8, q8_s = p_speak_per_turn(fast, conversations)
    threshold = fast.threshold
    del fast
    base_gguf_path = llamacpp.base_gguf_path
    llamacpp.base_gguf_path = lambda resolved: shipped  # the same load, on the shipped file
    try:
        q4, q4_s = p_speak_per_turn(llamacpp.load("default"), conversations)
    finally:
        llamacpp.base_gguf_path = base_gguf_path
    diff = np.abs(q8 - q4)
    report = {
        "turns": len(q8),
        "threshold": threshold,
        "seconds_per_decision": {"Q4_1": round(q4_s / len(q4), 4), "Q8_0": round(q8_s / len(q8), 4)},
        "q8_0_over_q4_1": round(q8_s / q4_s, 3),
        "p_speak_abs_diff": {"mean": round(float(diff.mean()), 4), "max": round(float(diff.max()), 4)},
        "decisions_that_differ": int(((q8 >= threshold) != (q4 >= threshold)).sum()),
        "reading": {
            f"{name} {threads} thread{'s' if threads > 1 else ''}": reading_speed(path, threads)
            for threads in (1, 2)
            for name, path in (("Q4_1", shipped), ("Q8_0", copy))
        },
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# The decision model's base: Q4_1 (shipped file) against its Q8_0 copy (bench/base_quant.py)",
        "",
        f"{report['turns']} held-out turns, teacher-forced, one thread: Q8_0 takes {report['q8_0_over_q4_1']} of "
        f"Q4_1's time per decision ({report['seconds_per_decision']['Q8_0']} s against "
        f"{report['seconds_per_decision']['Q4_1']} s); p_speak differs by {report['p_speak_abs_diff']['mean']} "
        f"on average (at most {report['p_speak_abs_diff']['max']}); {report['decisions_that_differ']} decisions "
        f"differ at the threshold {threshold}.",
        "",
        "| file, threads | 1,000-token prompt (tokens/s) | 30-token messages (tokens/s) |",
        "|---|---|---|",
        *(f"| {k} | {v['prompt_tok_s']} | {v['messages_tok_s']} |" for k, v in report["reading"].items()),
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
