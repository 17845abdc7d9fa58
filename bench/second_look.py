"""Which second look tells a right answer from a wrong one: the replier's fact-token confidence (shipped), a
verification pass, or the agreement of two more samples, on the hand-graded replies.

    python bench/second_look.py          # writes bench/results/second-look.json and .md

For each reply of the local replier in data/replies-graded.jsonl (its greedy answer on a gold-speak turn of
data/valid.jsonl or data/heldout-writers.jsonl, graded by hand against the reference) it computes:
- ``confidence``: the lowest fact-token probability (``replier.Answer.confidence``, what ``replier.vet`` uses);
- ``verify``: the replier asked, with the question restated (``prompts.the_question``) and its own answer,
  whether the answer is correct: P(yes) / (P(yes) + P(no)) from its first token;
- ``agree``: the share of two answers sampled at temperature 0.7 that the facts check
  (``eval.replies.facts_check``, the greedy answer as the reference) finds consistent with the greedy answer.

Then, per signal: how well it separates correct replies from wrong or harmful ones (AUROC), and the grades of
the replies to questions *as sent* when a reply below the signal's threshold is replaced by "I'm not sure".
Resumable: each reply's signals are kept in ``--out``'s ``.rows.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from chimein.assistant import replier as replier_mod
from chimein.assistant.prompts import the_question
from chimein.data import load_conversations
from chimein.eval.replies import facts_check

ROOT = Path(__file__).resolve().parents[1]
DATA = {"valid": ROOT / "data/valid.jsonl", "heldout": ROOT / "data/heldout-writers.jsonl"}
SIGNALS = ("confidence", "verify", "agree", "verify_and_confidence")
THRESHOLDS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
VERIFY_SYSTEM = "You check answers in a quiz. Reply with one word: yes or no."


def histories() -> dict[str, list]:
    out = {}
    for split, path in DATA.items():
        for n, conv in enumerate(load_conversations(path)):
            for i, gold in conv.decisions():
                if gold is not None:
                    out[f"{split}/{conv.meta.get('id', n)}:{i}"] = conv.messages[: i + 1]
    return out


def verify(replier: replier_mod.LocalReplier, question: str, answer: str, yes: list[int], no: list[int]) -> float:
    """P(yes) / (P(yes) + P(no)) of the replier's first token (``yes``, ``no``: the token ids of each word),
    asked whether ``answer`` answers ``question`` correctly."""
    engine = replier.engine
    prompt = replier.render(
        [
            {"role": "system", "content": VERIFY_SYSTEM},
            {"role": "user", "content": f"Question: {question}\nAnswer: {answer}\n\nIs this answer correct?"},
        ]
    )
    with replier.lock:
        logits, _ = engine.advance(replier.state, engine.tokenize(prompt))
    probs = replier_mod.softmax(logits)
    p_yes, p_no = float(probs[yes].sum()), float(probs[no].sum())
    return p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.5


def token_ids(engine, words: tuple[str, ...]) -> list[int]:
    """The ids of the words that are one token each."""
    pieces = [engine.llm.tokenize(w.encode(), add_bos=False, special=False) for w in words]
    return sorted({t[0] for t in pieces if len(t) == 1})


def agreement(replier: replier_mod.LocalReplier, history: list, volunteer: bool, greedy: str, seed: int) -> float:
    rng = np.random.default_rng(seed)
    agree = 0
    for _ in range(2):
        sample = replier.answer(history, volunteer, sample=rng)
        agree += facts_check(sample.text, greedy).grade == "correct"
    return agree / 2


def auroc(scores: list[float], good: list[bool]) -> float:
    pos = [s for s, g in zip(scores, good) if g]
    neg = [s for s, g in zip(scores, good) if not g]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 3)


def as_sent(rows: list[dict], signal: str, threshold: float) -> dict:
    grades = [r["grade"] if r[signal] >= threshold else "unsure" for r in rows]
    n = len(grades)
    return {
        "threshold": threshold,
        "correct": round(grades.count("correct") / n, 3),
        "wrong_or_harmful": round((grades.count("wrong") + grades.count("harmful")) / n, 3),
        "unsure": round(grades.count("unsure") / n, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/second-look.json")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    graded = [
        json.loads(line)
        for line in (ROOT / "data/replies-graded.jsonl").read_text().splitlines()
        if not json.loads(line)["written_by"].startswith("llamacpp")
    ]
    turns = {}
    for split in DATA:
        for line in (ROOT / f"bench/results/replies-{split}.turns.jsonl").read_text().splitlines():
            t = json.loads(line)
            turns[f"{split}/{t['key']}"] = t
    rows_file = args.out.with_suffix(".rows.jsonl")
    done = {}
    if rows_file.exists():
        for line in rows_file.read_text().splitlines():
            done[json.loads(line)["key"]] = json.loads(line)
    hist = histories()
    replier = yes = no = None
    rows = []
    with rows_file.open("a") as out:
        for k, g in enumerate(graded):
            key = f"{g['split']}/{g['id']}"
            if key in done:
                rows.append(done[key])
                continue
            turn, history = turns[key], hist[key]
            if replier is None:
                replier = replier_mod.load("replier", threads=args.threads)
                yes = token_ids(replier.engine, ("yes", "Yes", " yes", " Yes", "YES"))
                no = token_ids(replier.engine, ("no", "No", " no", " No", "NO"))
            start = time.perf_counter()
            row = {
                "key": key,
                "split": g["split"],
                "volunteer": turn["volunteer"],
                "grade": g["grade"],
                "confidence": turn["confidence"],
                "verify": round(verify(replier, the_question(history), turn["answer"], yes, no), 4),
                "agree": agreement(replier, history, turn["volunteer"], turn["answer"], seed=k),
            }
            row["verify_and_confidence"] = min(row["verify"], row["confidence"])
            out.write(json.dumps(row) + "\n")
            out.flush()
            rows.append(row)
            print(
                f"[{k + 1}/{len(graded)}] {row['grade']:<10} conf {row['confidence']:.2f} verify {row['verify']:.2f}"
                f" agree {row['agree']:.1f} ({time.perf_counter() - start:.1f}s)",
                file=sys.stderr,
            )
    report: dict = {"replies": len(rows), "auroc": {}, "addressed_as_sent": {}}
    for part in ("all", "addressed", "volunteered"):
        rs = [r for r in rows if part == "all" or r["volunteer"] is (part == "volunteered")]
        judged = [r for r in rs if r["grade"] in ("correct", "wrong", "harmful")]
        report["auroc"][part] = {
            "correct": sum(r["grade"] == "correct" for r in judged),
            "wrong_or_harmful": sum(r["grade"] != "correct" for r in judged),
            **{s: auroc([r[s] for r in judged], [r["grade"] == "correct" for r in judged]) for s in SIGNALS},
        }
    addressed = [r for r in rows if not r["volunteer"]]
    report["addressed_as_sent"] = {s: [as_sent(addressed, s, t) for t in THRESHOLDS] for s in SIGNALS}
    report["addressed_raw_correct"] = round(sum(r["grade"] == "correct" for r in addressed) / len(addressed), 3)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table(report))
    print(table(report))


def table(report: dict) -> str:
    names = {
        "confidence": "lowest fact-token probability (shipped)",
        "verify": "verification pass: P(yes)",
        "agree": "agreement of two samples",
        "verify_and_confidence": "the lower of the first two",
    }
    lines = [
        f"# Which second look tells right from wrong (bench/second_look.py, {report['replies']} hand-graded replies)",
        "",
        "AUROC, correct against wrong or harmful replies (0.5: no better than chance):",
        "",
        "| signal | all | to questions | volunteered |",
        "|---|---|---|---|",
    ]
    auroc = report["auroc"]
    lines += [
        f"| {names[s]} | " + " | ".join(str(auroc[p][s]) for p in ("all", "addressed", "volunteered")) + " |"
        for s in SIGNALS
    ]
    lines += [
        "| replies (correct / wrong or harmful) | "
        + " | ".join(
            f"{auroc[p]['correct']} / {auroc[p]['wrong_or_harmful']}" for p in ("all", "addressed", "volunteered")
        )
        + " |",
        "",
        'Replies to questions as sent (below the threshold: "I\'m not sure"), correct / wrong or harmful / unsure; '
        f"sent as written, {report['addressed_raw_correct']} are correct, the most any second look can send:",
        "",
        "| signal | " + " | ".join(str(t) for t in THRESHOLDS) + " |",
        "|---" * (len(THRESHOLDS) + 1) + "|",
    ]
    for s in SIGNALS:
        cells = [f"{x['correct']} / {x['wrong_or_harmful']} / {x['unsure']}" for x in report["addressed_as_sent"][s]]
        lines.append(f"| {names[s]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
