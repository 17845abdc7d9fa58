"""What the assistant says, graded: each spoken reply on a turn where the gold reply speaks too.

Two graders, the same four grades plus one for an honest non-answer:

- ``correct``: it gives the gold reply's fact (its number, date or name);
- ``incomplete``: nothing false, but not the fact either;
- ``wrong``: it states a fact the gold reply contradicts (another number with the same unit, another year,
  "no" where the gold says "yes");
- ``harmful``: wrong in a way that can hurt someone (judge only: food safety, medicine, money, security);
- ``unsure``: the reply says it does not know (not a fact, so never wrong; counted apart).

:func:`facts_check` needs nothing but the two texts. :class:`Judge` asks a model on any OpenAI-compatible
endpoint, with the rubric in ``resources/judge_rubric.md``. Checked on every reply whoever grades it: marker
or template text anywhere in it (:func:`marker_leak`), its length, and whether it is in the language of the
message it answers (:func:`same_language`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable

GRADES = ("correct", "incomplete", "wrong", "harmful", "unsure")

_HEDGE = re.compile(
    r"\b(i'?m not (?:sure|certain)|i don'?t know|not sure|i can'?t (?:say|tell)|no idea)\b", re.IGNORECASE
)
_NUMBER_WORDS = {
    "zero": 0,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
}
_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12}
# A number: digits with thousands separators or a decimal part, an optional scale word, an optional unit.
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:[,.\u202f ]\d{3})+(?![\d])|\d+(?:[.,]\d+)?)\s*"
    r"(thousand|million|billion|trillion|bn|k(?![a-z]))?\s*"
    r"(°\s?[cf]|%|[a-zµ°]{1,12})?",
    re.IGNORECASE,
)
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_YES = re.compile(r"^\W*(yes|yep|yeah|sure|correct|right|ja|sí|si|oui|sim)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(no|nope|not quite|not necessarily|not really|nein|non|não|nao|actually,? no)\b", re.IGNORECASE)
# Structure that must never reach a chat: chimein's markers and chat-template tokens.
_MARKERS = re.compile(
    r"\((?:silence|response)\)|<\|im_(?:start|end)\|>|<\|(?:user|assistant|system|end_of_turn|eot_id)\|>|"
    r"\[/?INST\]|</?s>|<(?:start|end)_of_turn>|<<SYS>>",
    re.IGNORECASE,
)
_UNITS = {
    "°c": "c",
    "°f": "f",
    "degrees": "deg",
    "miles": "mi",
    "mile": "mi",
    "kilometers": "km",
    "kilometres": "km",
    "km": "km",
    "grams": "g",
    "gram": "g",
    "g": "g",
    "mg": "mg",
    "kg": "kg",
    "percent": "%",
    "%": "%",
    "minutes": "min",
    "minute": "min",
    "min": "min",
    "hours": "h",
    "hour": "h",
    "h": "h",
    "days": "d",
    "day": "d",
    "years": "y",
    "year": "y",
    "meters": "m",
    "metres": "m",
    "meter": "m",
    "metre": "m",
    "m": "m",
    "feet": "ft",
    "ft": "ft",
    "seconds": "s",
    "second": "s",
    "s": "s",
    "keys": "keys",
    "points": "pt",
    "light-years": "ly",
    "v": "v",
    "volts": "v",
}


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str  # normalized ("" without one)


def quantities(text: str) -> list[Quantity]:
    """The numbers a text states, with their units: "2,962 m", "120°F", "4 g", "2.5 million", "seventeen"."""
    out = []
    for m in _NUMBER.finditer(text):
        digits, scale, unit = m.group(1), (m.group(2) or "").lower(), (m.group(3) or "").lower().replace(" ", "")
        if re.fullmatch(r"\d{1,3}(?:[,.\u202f ]\d{3})+", digits):
            value = float(re.sub(r"[,.\u202f ]", "", digits))  # "2,962" and German "2.962" are thousands
        else:
            value = float(digits.replace(",", "."))
        if scale:
            value *= _SCALES[scale]
        out.append(Quantity(value, _UNITS.get(unit, "")))
    for m in _WORD_NUMBER.finditer(text):
        out.append(Quantity(float(_NUMBER_WORDS[m.group(1).lower()]), ""))
    return out


def _same(a: Quantity, b: Quantity) -> bool:
    return abs(a.value - b.value) <= 0.01 * max(abs(a.value), abs(b.value), 1e-9)


def _polarity(text: str) -> str | None:
    return "yes" if _YES.match(text) else "no" if _NO.match(text) else None


def _names(text: str) -> set[str]:
    """Capitalised words that are not a sentence's first word: names, places, titles."""
    words = re.findall(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-zA-Z'-]{2,})", text.strip())
    return {w.lower() for w in words}


@dataclass
class Grade:
    grade: str
    reason: str


def facts_check(reply: str, gold: str) -> Grade:
    """Grade ``reply`` against ``gold`` without a model (see the module's docstring)."""
    if _HEDGE.search(reply) and not re.search(r"\d", reply):
        return Grade("unsure", "says it does not know")
    gold_yes_no, reply_yes_no = _polarity(gold), _polarity(reply)
    if gold_yes_no and reply_yes_no and gold_yes_no != reply_yes_no:
        return Grade("wrong", f"says {reply_yes_no} where the gold says {gold_yes_no}")
    want, got = quantities(gold), quantities(reply)
    if want:
        matched = [g for g in want if any(_same(g, r) for r in got)]
        # A number the gold contradicts: the same unit as the gold's numbers, none of their values.
        clash = [
            r
            for r in got
            if r.unit
            and any(g.unit == r.unit for g in want)
            and not any(g.unit == r.unit and _same(r, g) for g in want)
        ]
        if clash:
            return Grade("wrong", f"states {clash[0].value:g} {clash[0].unit} where the gold says otherwise")
        if matched:
            return Grade("correct", f"states {len(matched)} of the gold's {len(want)} number(s)")
        if got:
            return Grade("wrong", "states other numbers than the gold")
        return Grade("incomplete", "the gold's number is missing")
    names = _names(gold)
    if names and names & _names(reply):
        return Grade("correct", "names what the gold names: " + ", ".join(sorted(names & _names(reply))[:3]))
    if gold_yes_no and gold_yes_no == reply_yes_no:
        return Grade("correct", f"says {reply_yes_no} like the gold")
    return Grade("incomplete", "nothing of the gold's fact found")


def marker_leak(reply: str, speakers: Iterable[str] = ()) -> str | None:
    """The first marker, template token or other person's ``Name:`` turn anywhere in a reply, or None."""
    found = _MARKERS.search(reply)
    if found:
        return found.group(0)
    for name in speakers:
        if name and re.search(rf"(?:^|\n)\s*{re.escape(name)}\s*:", reply):
            return f"{name}:"
    return None


def same_language(reply: str, question: str) -> bool | None:
    """Whether the reply is in the question's language (None when either is too short to tell)."""
    import py3langid

    if len(reply.split()) < 3 or len(question.split()) < 3:
        return None
    return py3langid.classify(reply)[0] == py3langid.classify(question)[0]


def rubric() -> str:
    return resources.files("chimein").joinpath("resources/judge_rubric.md").read_text(encoding="utf-8")


class Judge:
    """Grades with a model behind any OpenAI-compatible endpoint (``--judge-base-url``, ``--judge-model``)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0):
        import os

        from openai import OpenAI

        self.client = OpenAI(
            base_url=base_url, api_key=os.environ.get(api_key_env) or "not-needed", timeout=timeout, max_retries=1
        )
        self.model, self.rubric = model, rubric()

    def grade(self, context: str, reply: str, gold: str) -> Grade:
        prompt = (
            f"{self.rubric}\n\n## The chat\n{context}\n\n## The reference reply\n{gold}\n\n## The reply to grade\n{reply}\n\n"
            'Answer with one JSON object: {"grade": "correct|incomplete|wrong|harmful|unsure", "reason": "..."}'
        )
        response = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0.0, max_tokens=200
        )
        return parse_judgement(response.choices[0].message.content or "")


def parse_judgement(text: str) -> Grade:
    """The judge's JSON object (the first one in its answer); a ValueError naming what is wrong otherwise."""
    found = re.search(r"\{.*?\}", text, re.DOTALL)
    if not found:
        raise ValueError(f"the judge's answer has no JSON object: {text[:120]!r}")
    try:
        data: Any = json.loads(found.group(0))
    except json.JSONDecodeError as e:
        raise ValueError(f"the judge's JSON does not parse ({e.msg}): {found.group(0)[:120]!r}") from None
    grade = str(data.get("grade", "")).strip().lower()
    if grade not in GRADES:
        raise ValueError(f"the judge's grade {grade!r} is not one of {', '.join(GRADES)}")
    return Grade(grade, str(data.get("reason", "")))


def reply_metrics(grades: list[str], leaks: int, words: list[int], languages: list[bool | None]) -> dict[str, Any]:
    """The numbers for a set of graded replies: each grade's share, leaks, length, language."""
    n = len(grades)
    out: dict[str, Any] = {"graded": n}
    for g in GRADES:
        out[g] = round(sum(x == g for x in grades) / n, 4) if n else 0.0
    out["wrong_or_harmful"] = round(out["wrong"] + out["harmful"], 4)
    out["marker_leaks"] = leaks
    out["mean_words"] = round(sum(words) / len(words), 1) if words else 0.0
    told = [x for x in languages if x is not None]
    out["same_language"] = round(sum(told) / len(told), 4) if told else None
    return out
