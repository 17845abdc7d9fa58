"""The second look on volunteering: the decider flags candidate moments at a lower threshold, the replier decides
whether it has something true to add. Measured on turns that do not name the assistant (teacher-forced).

    python bench/volunteer.py data/heldout-writers.jsonl --out bench/results/volunteer-heldout.json

1. The shipped decider's p_speak on every user turn (decisions only) and the rules' decision at its threshold.
2. On every turn that does not name the assistant with p_speak >= the lowest candidate threshold (or that the
   rules speak on), the replier answers in volunteer mode; its answer, confidence and hedging are kept.
3. Volunteer precision / recall / F1 and the false-interjection rate for the decider alone and for
   decider + second look over a grid of (candidate threshold, confidence needed), with the facts-check grades
   of what would be sent. Resumable: answers are kept in ``--out``'s ``.turns.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chimein.assistant import get_backend, replier as replier_mod
from chimein.assistant.core import should_speak
from chimein.assistant.prompts import REPLIER_CONTEXT
from chimein.data import load_conversations
from chimein.eval.metrics import decision_metrics
from chimein.eval.replies import GRADES, facts_check
from chimein.mentions import mentions_assistant

CANDIDATES = (0.2, 0.3, 0.5, 0.7)
CONFIDENCE = (0.5, 0.6, 0.7, 0.8, 0.9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--replier", default="replier")
    args = ap.parse_args()

    decider = get_backend("llamacpp:default")
    decider.decide_only = True
    threshold = decider.threshold
    decided_file = args.out.with_suffix(".decisions.jsonl")  # p_speak per turn, kept for a resumed run
    decided = {}
    if decided_file.exists():
        decided = {row["key"]: row for row in map(json.loads, decided_file.read_text().splitlines())}
    turns = []
    with decided_file.open("a") as keep:
        for conv in load_conversations(args.data):
            state = decider.new_state()
            for i, gold in conv.decisions():
                history = conv.messages[: i + 1]
                if mentions_assistant(history[-1].content):
                    continue
                key = f"{conv.meta.get('id')}:{i}"
                if key not in decided:
                    d = decider.decide(history, state, threshold)
                    decided[key] = {"key": key, "p": d.p_speak, "speak": d.speak}
                    keep.write(json.dumps(decided[key]) + "\n")
                    keep.flush()
                turns.append(
                    {
                        "key": key,
                        "history": history,
                        "gold_speak": gold is not None,
                        "gold": gold.content if gold else "",
                        "p": decided[key]["p"],
                        "speak": decided[key]["speak"],
                    }
                )
    print(f"{len(turns)} volunteer turns decided", file=sys.stderr)

    cache_file = args.out.with_suffix(".turns.jsonl")
    cache = {}
    if cache_file.exists():
        cache = {row["key"]: row for row in map(json.loads, cache_file.read_text().splitlines())}
    replier = replier_mod.load(args.replier)
    low = min(CANDIDATES)
    with cache_file.open("a") as out:
        todo = [t for t in turns if (t["p"] >= low or t["speak"]) and t["key"] not in cache]
        for k, t in enumerate(todo):
            a = replier.answer(t["history"], volunteer=True)
            row = {"key": t["key"], "answer": a.text, "tokens": [(x, round(p, 4)) for x, p in a.tokens]}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            cache[t["key"]] = row
            print(
                f"[{k + 1}/{len(todo)}] {t['gold_speak']!s:<5} p={t['p']:.2f} {a.confidence:.2f} {a.text[:60]!r}",
                file=sys.stderr,
            )

    gold = [t["gold_speak"] for t in turns]
    alone = decision_metrics(gold, [t["speak"] for t in turns])
    report = {
        "data": str(args.data),
        "volunteer_turns": len(turns),
        "decider_threshold": threshold,
        "decider_alone": alone.as_dict(),
        "second_look": [],
    }
    for cand in CANDIDATES:
        for conf in CONFIDENCE:
            pred, grades = [], []
            for t in turns:
                flagged = should_speak(t["p"], min(threshold, cand), t["history"])
                sent = False
                if flagged and t["key"] in cache:
                    row = cache[t["key"]]
                    context = " ".join(m.content for m in t["history"][-REPLIER_CONTEXT:] if m.role == "user")
                    verdict = replier_mod.vet(
                        replier_mod.Answer(row["answer"], tokens=[tuple(x) for x in row["tokens"]]),
                        volunteer=True,
                        volunteer_above=conf,
                        context=context,
                    )
                    sent = verdict.speak
                    if sent and t["gold_speak"]:
                        grades.append(facts_check(verdict.text, t["gold"]).grade)
                pred.append(sent)
            m = decision_metrics(gold, pred)
            report["second_look"].append(
                {
                    "candidate_threshold": cand,
                    "confidence": conf,
                    **m.as_dict(),
                    **{f"sent_{g}": grades.count(g) for g in GRADES},
                }
            )
    best = max(report["second_look"], key=lambda r: r["f1"] - 5 * max(0.0, r["false_interjection_rate"] - 0.01))
    report["best"] = best
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"decider_alone": report["decider_alone"], "best": best}, indent=2))


if __name__ == "__main__":
    main()
