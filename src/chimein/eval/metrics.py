"""Pure metrics for the speak / stay-silent decision. No model code here.

Conventions: "positive" means *speak*. Every function takes parallel lists of gold and predicted booleans.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from chimein.mentions import DEFAULT_ASSISTANT_NAMES, mentions_assistant


@dataclass
class DecisionMetrics:
    n: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_interjection_rate(self) -> float:
        """Fraction of gold-silent turns where the assistant spoke."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def specificity(self) -> float:
        return self.tn / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def balanced_accuracy(self) -> float:
        """Mean of speak recall and silence recall: 0.5 for a model that never (or always) speaks."""
        has_pos, has_neg = self.tp + self.fn > 0, self.fp + self.tn > 0
        if has_pos and has_neg:
            return (self.recall + self.specificity) / 2
        return self.recall if has_pos else self.specificity

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = asdict(self)
        for k in ("precision", "recall", "f1", "false_interjection_rate", "balanced_accuracy", "accuracy"):
            out[k] = round(getattr(self, k), 4)
        return out


def decision_metrics(gold: list[bool], pred: list[bool]) -> DecisionMetrics:
    if len(gold) != len(pred):
        raise ValueError(f"gold and predictions differ in length: {len(gold)} != {len(pred)}")
    tp = sum(g and p for g, p in zip(gold, pred))
    fp = sum(p and not g for g, p in zip(gold, pred))
    fn = sum(g and not p for g, p in zip(gold, pred))
    return DecisionMetrics(n=len(gold), tp=tp, fp=fp, fn=fn, tn=len(gold) - tp - fp - fn)


def pr_curve(gold: list[bool], scores: list[float]) -> list[dict[str, float]]:
    """Precision, recall and F1 when speaking at ``p_speak >= threshold``, for every distinct threshold."""
    points = []
    for t in sorted(set(scores)):
        m = decision_metrics(gold, [s >= t for s in scores])
        points.append({"threshold": t, "precision": m.precision, "recall": m.recall, "f1": m.f1})
    return points


def best_threshold(gold: list[bool], scores: list[float]) -> tuple[float, float]:
    """The threshold maximising speak F1 (midpoint between neighbouring scores) and that F1."""
    if not scores:
        return 0.5, 0.0
    distinct = sorted(set(scores))
    best_t, best_f1 = 0.5, -1.0
    for i, t in enumerate(distinct):
        f1 = decision_metrics(gold, [s >= t for s in scores]).f1
        if f1 > best_f1:
            lower = distinct[i - 1] if i else 0.0
            best_t, best_f1 = (t + lower) / 2 if i else t, f1
    return best_t, best_f1


def turn_category(gold_speak: bool, text: str, names: tuple[str, ...] = DEFAULT_ASSISTANT_NAMES) -> str:
    """Per-turn evaluation category, from the gold label and the mention rule:

    ``addressed`` (gold speaks, the message names the assistant), ``volunteered`` (gold speaks, no mention:
    a stuck group, a correction, a follow-up), ``mentioned_silent`` (named but gold silent: mentioned not
    addressed, thanked, told to stay out, a namesake), ``chitchat`` (neither).
    """
    mentioned = mentions_assistant(text, names)
    if gold_speak:
        return "addressed" if mentioned else "volunteered"
    return "mentioned_silent" if mentioned else "chitchat"
