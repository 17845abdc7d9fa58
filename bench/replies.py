"""What the assistant says and how fast: the local replier against the 135M alone, on the turns where the gold
reply speaks (teacher-forced: the gold history before each), graded by chimein's facts check.

    python bench/replies.py data/valid.jsonl --out bench/results/replies-valid.json
    python bench/replies.py data/heldout-writers.jsonl --out bench/results/replies-heldout.json

For every gold-speak turn it records the replier's answer (streamed: seconds to the first word and to the whole
reply), its fact-token confidence, whether it hedged, and its grade; then the shares of correct / wrong replies
as *sent* after the second look (``replier.vet``) at several confidence thresholds, for addressed turns and for
volunteered ones. The 135M's own replies (greedy, as the shipped default writes them) are graded the same way.
Resumable: finished turns are kept in ``--out``'s ``.turns.jsonl`` and skipped on the next run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from chimein.assistant import get_backend, replier as replier_mod
from chimein.data import load_conversations
from chimein.eval.replies import GRADES, facts_check, marker_leak
from chimein.mentions import mentions_assistant

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak import peak_rss_mb, rss_mb  # noqa: E402

THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def sent_shares(rows: list[dict], volunteer: bool, threshold: float) -> dict:
    """Grades of the replies as sent after vet() at ``threshold`` (an addressed turn below it gets UNSURE)."""
    grades = []
    for r in rows:
        answer = replier_mod.Answer(r["answer"], tokens=[(t, p) for t, p in r["tokens"]])
        verdict = replier_mod.vet(answer, volunteer, unsure_below=threshold, volunteer_above=threshold)
        if verdict.speak:
            grades.append(facts_check(verdict.text, r["gold"]).grade)
    n = len(grades)
    return {
        "threshold": threshold,
        "sent": n,
        "of": len(rows),
        **{g: round(grades.count(g) / n, 3) if n else 0.0 for g in GRADES},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--replier", default="replier")
    ap.add_argument("--limit", type=int, default=None, help="only the first N gold-speak turns")
    ap.add_argument("--small", action="store_true", help="also grade the 135M's own replies")
    ap.add_argument(
        "--fresh", action="store_true", help="start over instead of resuming (a timing run times every turn)"
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="the replier's llama.cpp threads (default: all cores but one)"
    )
    args = ap.parse_args()

    turns_file = args.out.with_suffix(".turns.jsonl")
    done = {}
    if args.fresh:
        turns_file.unlink(missing_ok=True)
    if turns_file.exists():
        for line in turns_file.read_text().splitlines():
            row = json.loads(line)
            done[row["key"]] = row
    turns = []
    for n, conv in enumerate(load_conversations(args.data)):
        for i, gold in conv.decisions():
            if gold is not None:
                turns.append(
                    (
                        f"{conv.meta.get('id', n)}:{i}",
                        conv.messages[: i + 1],
                        gold.content,
                        conv.meta.get("category", ""),
                    )
                )
    turns = turns[: args.limit or None]
    small = get_backend("llamacpp:default") if args.small else None
    memory = {"before_replier_mb": round(rss_mb(), 1)}
    replier = replier_mod.load(args.replier, threads=args.threads)
    memory["after_loading_replier_mb"] = round(rss_mb(), 1)
    rows = []
    with turns_file.open("a") as out:
        for k, (key, history, gold, category) in enumerate(turns):
            if key in done and (not args.small or "small" in done[key]):
                rows.append(done[key])
                continue
            volunteer = not mentions_assistant(history[-1].content)
            answer = replier_mod.Answer("")
            start, first = time.perf_counter(), None
            for _ in replier.stream(history, volunteer, answer):
                first = first if first is not None else time.perf_counter() - start
            total = time.perf_counter() - start
            row = {
                "key": key,
                "category": category,
                "volunteer": volunteer,
                "question": history[-1].content,
                "gold": gold,
                "answer": answer.text,
                "confidence": round(answer.confidence, 4),
                "hedged": answer.hedged,
                "tokens": [(t, round(p, 4)) for t, p in answer.tokens],
                "grade": facts_check(answer.text, gold).grade,
                "first_word_s": round(first or total, 3),
                "total_s": round(total, 3),
                "prompt_tokens": answer.prompt_tokens,
                "leak": marker_leak(answer.text, {m.name for m in history if m.name}),
            }
            if small is not None:
                small.decide_only = False
                start = time.perf_counter()
                d = small.decide(history, small.new_state(), threshold=0.0)
                row["small_s"] = round(time.perf_counter() - start, 3)
                row["small"] = d.text
                row["small_grade"] = facts_check(d.text, gold).grade if d.text else "incomplete"
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            rows.append(row)
            print(
                f"[{k + 1}/{len(turns)}] {row['grade']:<10} {row['confidence']:.2f} {row['total_s']:.1f}s  {answer.text[:70]!r}",
                file=sys.stderr,
            )
    memory["peak_mb"] = round(peak_rss_mb(), 1)
    report = {
        "data": str(args.data),
        "replier": args.replier,
        "turns": len(rows),
        "memory": memory,
        "replier_threads": replier.threads,
    }
    for part, volunteer in (("addressed", False), ("volunteer", True)):
        rs = [r for r in rows if r["volunteer"] is volunteer]
        report[part] = {
            "turns": len(rs),
            "raw": {g: round(sum(r["grade"] == g for r in rs) / len(rs), 3) if rs else 0.0 for g in GRADES},
            "sent": [sent_shares(rs, volunteer, t) for t in THRESHOLDS],
        }
        if args.small:
            report[part]["small"] = {
                g: round(sum(r.get("small_grade") == g for r in rs) / len(rs), 3) if rs else 0.0 for g in GRADES
            }
    report["leaks"] = sum(r["leak"] is not None for r in rows)
    timed = [r for r in rows if r["key"] not in done]  # this run's own timings, not a resumed run's
    if timed:
        report["timed_turns"] = len(timed)
        for k in ("first_word_s", "total_s") + (("small_s",) if args.small else ()):
            values = [r[k] for r in timed if k in r]
            report[k] = {
                "p50": round(statistics.median(values), 3),
                "p95": round(sorted(values)[int(0.95 * (len(values) - 1))], 3),
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
