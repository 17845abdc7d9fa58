"""The hand-graded replies (data/replies-graded.jsonl): what the replier and the 135M say, how well chimein's
facts check agrees with a person, and what the second look (replier.vet) sends at each confidence threshold.

    python bench/graded_replies.py        # writes bench/results/replies-graded.json and prints a table

The replies were written by bench/replies.py on the gold-speak turns of data/valid.jsonl (first 40) and
data/heldout-writers.jsonl (all 68), by the local replier and by the shipped 135M, and graded one by one
against the reference reply with the rubric in src/chimein/resources/judge_rubric.md. The replier's token
probabilities come from bench/results/replies-*.turns.jsonl.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from chimein.assistant import replier as replier_mod
from chimein.assistant.prompts import UNSURE
from chimein.eval.replies import GRADES, facts_check

ROOT = Path(__file__).resolve().parents[1]
COARSE = {"harmful": "wrong", "unsure": "incomplete"}  # the facts check's three outcomes
THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)


def shares(grades: list[str]) -> dict:
    n = len(grades)
    return {
        "n": n,
        **{g: round(grades.count(g) / n, 3) if n else 0.0 for g in GRADES},
        "wrong_or_harmful": round((grades.count("wrong") + grades.count("harmful")) / n, 3) if n else 0.0,
    }


def main() -> None:
    rows = [json.loads(line) for line in (ROOT / "data/replies-graded.jsonl").read_text().splitlines()]
    report: dict = {"graded": len(rows), "by_writer": {}, "vetting": {}, "as_sent": {}}
    for split in ("valid", "heldout"):
        for writer in sorted({r["written_by"] for r in rows}):
            rs = [r for r in rows if r["split"] == split and r["written_by"] == writer]
            if rs:
                report["by_writer"][f"{split} {writer}"] = shares([r["grade"] for r in rs])
    pairs = [
        (COARSE.get(r["grade"], r["grade"]), COARSE.get(g := facts_check(r["reply"], r["reference"]).grade, g))
        for r in rows
    ]
    report["facts_check_agreement"] = round(sum(a == b for a, b in pairs) / len(pairs), 3)
    report["facts_check_confusion"] = {f"person {a} / check {b}": n for (a, b), n in sorted(Counter(pairs).items())}
    for split in ("valid", "heldout"):
        turns = {
            json.loads(x)["key"]: json.loads(x)
            for x in (ROOT / f"bench/results/replies-{split}.turns.jsonl").read_text().splitlines()
        }
        graded = [
            (turns[r["id"]], r)
            for r in rows
            if r["split"] == split and r["written_by"] != "llamacpp:default" and r["id"] in turns
        ]
        for part, volunteer in (("addressed", False), ("volunteered", True)):
            curve = []
            for t in THRESHOLDS:
                sent = []
                for turn, r in graded:
                    if turn["volunteer"] is not volunteer:
                        continue
                    context = " ".join(line.split(": ", 1)[-1] for line in r["chat"])
                    verdict = replier_mod.vet(
                        replier_mod.Answer(turn["answer"], tokens=[tuple(x) for x in turn["tokens"]]),
                        volunteer,
                        unsure_below=t,
                        volunteer_above=t,
                        context=context,
                    )
                    if verdict.speak:
                        sent.append("unsure" if verdict.text == UNSURE else r["grade"])
                total = sum(turn["volunteer"] is volunteer for turn, _ in graded)
                curve.append({"threshold": t, "sent_of": total, **shares(sent)})
            report["vetting"][f"{split} {part}"] = curve
        # As shipped: both parts at the replier's own thresholds.
        sent, held = [], 0
        for turn, r in graded:
            context = " ".join(line.split(": ", 1)[-1] for line in r["chat"])
            verdict = replier_mod.vet(
                replier_mod.Answer(turn["answer"], tokens=[tuple(x) for x in turn["tokens"]]),
                turn["volunteer"],
                context=context,
            )
            if verdict.speak:
                sent.append("unsure" if verdict.text == UNSURE else r["grade"])
            else:
                held += 1
        report["as_sent"][split] = {"held_back": held, **shares(sent)}
    out = ROOT / "bench/results/replies-graded.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("| replies | n | correct | incomplete | unsure | wrong | harmful |")
    print("|---|---|---|---|---|---|---|")
    for name, s in report["by_writer"].items():
        print(
            f"| {name} | {s['n']} | "
            + " | ".join(f"{s[g]:.2f}" for g in ("correct", "incomplete", "unsure", "wrong", "harmful"))
            + " |"
        )
    for split, v in report["as_sent"].items():
        print(
            f"| {split} replier as sent ({v['held_back']} held back) | {v['n']} | "
            + " | ".join(f"{v[g]:.2f}" for g in ("correct", "incomplete", "unsure", "wrong", "harmful"))
            + " |"
        )
    print(f"\nfacts check agrees with the person on {report['facts_check_agreement']:.1%} of {len(rows)} replies")
    for name, curve in report["vetting"].items():
        print(f"\n{name}: threshold -> sent n, correct, wrong+harmful, unsure")
        for c in curve:
            print(
                f"  {c['threshold']:.1f}: {c['n']}/{c['sent_of']}  {c['correct']:.2f}  {c['wrong_or_harmful']:.2f}  {c['unsure']:.2f}"
            )


if __name__ == "__main__":
    main()
