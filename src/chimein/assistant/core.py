"""The assistant in one room: it hears every user message and decides to stay silent or to reply.

    from chimein.assistant import load_assistant
    bot = load_assistant()  # the shipped default assistant (on llama.cpp)
    bot.hear("Ana", "pizza or sushi tonight?")              # Decision(speak=False, ...)
    bot.hear("Ben", "bot, how many syllables in a haiku?")  # Decision(speak=True, text="Seventeen, ...")

The history it keeps is the fine-tuned format's: ``(silence)`` after unanswered user turns and its own
replies after answered ones. A *decider* backend makes the speak/silent decision (and by default writes the
reply too); an optional *replier* writes replies instead when the decider chose to speak.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from chimein.data import Message
from chimein.format import RESPONSE, SILENCE
from chimein.mentions import addressed_person, asks_the_assistant
from chimein.stuck import LOOKBACK, looks_stuck

log = logging.getLogger("chimein.assistant")

MAX_REPLY_CHARS = 600


@dataclass
class Decision:
    speak: bool
    text: str = ""  # the reply, without the (response) marker; empty when silent
    p_speak: float | None = None  # probability of speaking, when the backend can give it
    raw: str = ""  # what the backend produced, before parsing
    latency_s: float = 0.0
    tokens_processed: int = 0  # prompt tokens the backend had to read for this decision
    note: str = ""  # e.g. "replier failed: fell back to the local reply"
    reason: str = ""  # why it spoke or stayed silent, set by a room's policy (assistant/policy.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "speak": self.speak,
            "text": self.text,
            "p_speak": None if self.p_speak is None else round(self.p_speak, 4),
        }


# What may name a speaker before a colon: a known name (one to three words), or one capitalised word with no
# digit (a name the model made up). "Two options: ...", "At 10:30 ...", "https://..." and "Step 1: ..." are not.
_SPEAKER_WORDS = r"[ \t]*([^\W\d][\w'.-]*(?: [^\W\d][\w'.-]*){0,2})[ \t]*:"
_PREFIX = re.compile("^" + _SPEAKER_WORDS + r"[ \t]*")
_LATER_TURN = re.compile(r"\n" + _SPEAKER_WORDS + r"[ \t]")
# Marker words a reply may open with (any case and spacing): the fine-tuned markers and what models write instead.
_MARKER = re.compile(
    r"^[\"'`*\s]*(?:[(\[]\s*(silence|response)\s*[)\]]\s*:?|(silence|response)\s*(?::|[.!]*\s*$))", re.IGNORECASE
)
# Label words that open ordinary replies ("Note: ..."): not speaker names.
# A marker or chat-template token *inside* a reply ("the phrase is: (silence) 10 min."): the model fell back into the
# format; the reply ends there.
_INNER_MARKER = re.compile(
    r"[(\[]\s*(?:silence|response)\s*[)\]]|<\|im_(?:start|end)\|>|<\|(?:user|assistant|system|endoftext)\|>|"
    r"\[/?INST\]|</s>|<(?:start|end)_of_turn>",
    re.IGNORECASE,
)
_LABELS = {
    "note",
    "answer",
    "tip",
    "hint",
    "warning",
    "fyi",
    "ps",
    "edit",
    "update",
    "correction",
    "fact",
    "summary",
    "short answer",
    "example",
    "source",
    "sources",
    "result",
    "output",
    "error",
    "step",
    "yes",
    "no",
    "ok",
    "also",
}
ASSISTANT_NAMES = {"assistant", "bot", "ai", "chimein"}


def speakers(messages: list[Message]) -> set[str]:
    """The names of the people in a chat (what ``parse_reply`` may strip from the start of a reply)."""
    return {m.name for m in messages if m.name}


def _names_a_speaker(prefix: str, speakers: set[str]) -> bool:
    """Whether ``prefix`` (the words before a colon) is a speaker: the assistant, someone in the chat, or
    one capitalised word that is not a label (a name the model invented)."""
    key = prefix.strip().lower()
    if key in ASSISTANT_NAMES or key in speakers:
        return True
    return " " not in key and prefix[:1].isupper() and key not in _LABELS and prefix.isalpha()


def parse_reply(raw: str, end_markers: tuple[str, ...] = (), speakers: Iterable[str] = ()) -> tuple[bool, str]:
    """Turn a model's raw assistant turn into (speak, text). The rules, in order:

    1. cut at the first end-of-turn marker;
    2. a leading ``(silence)`` (or a bare ``silence`` / ``Silence:``, any case or spacing) -> silent;
    3. a leading ``(response)`` marker, quotes around it, and a leading speaker prefix (``Ana: ...``,
       ``assistant: ...``: a replier that echoes the ``Name: text`` format it was shown) are stripped, never
       the reply behind them. A speaker is the assistant, one of ``speakers`` (the chat's names), or one
       capitalised word that is not a label ("Note:"); "Two options: ..." or "At 10:30" are replies;
    4. the text is cut at a *later* line that starts another speaker's turn (the same test), and at a marker or
       chat-template token anywhere inside it (``... the phrase is: (silence) 10 min.``);
    5. what is left with no letter or digit (only punctuation, or another marker) -> silent;
    6. anything else speaks (a model that ignored the format chose to talk), cut to ``MAX_REPLY_CHARS``
       at a sentence end when possible.
    A non-empty ``raw`` that ends as silence is logged with the reason.
    """
    known = {name.strip().lower() for name in speakers if name}
    text = raw
    for marker in end_markers:
        if marker and marker in text:
            text = text.split(marker, 1)[0]
    text = text.strip()
    opening = _MARKER.match(text)
    if opening and (opening.group(1) or opening.group(2)).lower() == "silence":
        return False, ""
    if opening:
        text = text[opening.end() :].strip()
    prefix = _PREFIX.match(text)
    if prefix and _names_a_speaker(prefix.group(1), known):
        text = text[prefix.end() :]
    for later in _LATER_TURN.finditer(text):
        if _names_a_speaker(later.group(1), known):
            text = text[: later.start()]
            break
    text = text.strip()
    again = _MARKER.match(text)
    if again:
        text = text[again.end() :].strip()
    inner = _INNER_MARKER.search(text)
    if inner:
        text = text[: inner.start()].rstrip(" \t:\"'`")
    text = text.strip().strip("\"'`").strip()
    if not re.search(r"\w", text):
        if raw.strip():
            log.info("reply read as silence: nothing but markers or punctuation in %r", raw[:80])
        return False, ""
    return True, cut_reply(text)


def cut_reply(text: str, max_chars: int = MAX_REPLY_CHARS) -> str:
    """At most ``max_chars``, cut at a sentence end when one falls in the last two thirds."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[: end + 1] if end > max_chars // 3 else cut.rstrip() + "..."


# p_speak needed on a message that looks stuck (stuck.looks_stuck): the model still has a say, but the
# threshold drops from the room's eagerness to this (chosen on the held-out writer split, see README).
STUCK_THRESHOLD = 0.05


def should_speak(
    p_speak: float,
    threshold: float,
    messages: list[Message],
    answer_direct_questions: bool = True,
    stuck_threshold: float | None = STUCK_THRESHOLD,
) -> bool:
    """The decision of a backend with a speaking probability, after the last message of ``messages``:

    1. a message that addresses the assistant with a question is answered (``answer_direct_questions``):
       the policy always answers it, and a small model's p_speak can land just under the threshold;
    2. a message addressed to someone else (``kira: ...``, ``Ben, ...?``, ``@maria ...``) is theirs to
       answer: never an interjection, however high p_speak is (in real channels this was most of the
       unasked speaking);
    3. a message showing the group is stuck on a question ("no idea", "not sure", ``stuck.looks_stuck``)
       needs only ``stuck_threshold`` (None: no special case): WHEN-TO-SPEAK rule 2, which a small model
       misses in chats unlike its training data;
    4. otherwise speak when ``p_speak`` reaches the eagerness threshold.
    A threshold above 1 never speaks (a backend's ``decide_only`` is the way to skip the reply); one of 0 or
    below speaks but for rule 2 (a room's policy answers a question to the assistant whatever the model says).
    """
    ruled = decided_by_rules(threshold, messages, answer_direct_questions)
    if ruled is not None:
        return ruled
    if stuck_threshold is not None and looks_stuck([m.content for m in messages if m.role == "user"][-LOOKBACK - 1 :]):
        return p_speak >= min(threshold, stuck_threshold)
    return p_speak >= threshold


def decided_by_rules(threshold: float, messages: list[Message], answer_direct_questions: bool = True) -> bool | None:
    """What :func:`should_speak` decides whatever ``p_speak`` is (rules 1 and 2, and the thresholds above 1 and
    at 0), or None when p_speak decides."""
    if threshold > 1.0:
        return False
    text = messages[-1].content
    if answer_direct_questions and asks_the_assistant(text):
        return True
    others = [m.name for m in messages[:-1] if m.role == "user" and m.name and m.name != messages[-1].name]
    if addressed_person(text, others):
        return False
    return True if threshold <= 0.0 else None


def decision_without_the_model(backend: Any, messages: list[Message], threshold: float) -> Decision | None:
    """The decision when the model need not run: the backend only decides (``decide_only``), is allowed to skip
    the model then (``rules_skip_model``: a server, not an evaluation, which needs every p_speak), and the rules
    alone decide (:func:`decided_by_rules`). None: run the model. Its ``p_speak`` is None."""
    if not (backend.decide_only and getattr(backend, "rules_skip_model", False)):
        return None
    speak = decided_by_rules(threshold, messages, backend.answer_direct_questions)
    if speak is None:
        return None
    why = "a question to the assistant" if speak else "addressed to someone else"
    return Decision(speak, "", None, RESPONSE if speak else SILENCE, note=f"{why}: decided without the model")


class Backend(Protocol):
    """What the assistant needs from a model. ``state`` is per room and owned by the caller.

    ``threshold``: the default eagerness (speak when ``p_speak >= threshold``), None for a backend without a
    speaking probability. ``answer_direct_questions``: a question to the assistant is answered whatever
    ``p_speak`` says. ``decide_only``: return the decision without generating the reply text (a backend
    whose decision is its generated turn still generates it).
    """

    supports_probability: bool
    threshold: float | None
    answer_direct_questions: bool
    decide_only: bool

    def new_state(self) -> Any: ...

    def decide(self, messages: list[Message], state: Any, threshold: float | None = None) -> Decision:
        """Decide after the last message (a user message) of ``messages``; generate a reply when speaking."""
        ...


class Replier(Protocol):
    """A replier that writes one reply at a time says so with ``concurrent_replies = 1``: rooms then wait for it
    in one line, questions first (``chimein.rooms.replier_line``); without it, replies are written at once."""

    def reply(self, messages: list[Message], on_text: Callable[[str], None] | None = None) -> str:
        """The reply to the last message, or "" when the replier has nothing true to add (the assistant then
        stays silent). Raises when it fails (a timeout, an HTTP error). ``on_text``: called with the reply so far
        while it is written, where the replier can stream (a draft a room may show; the return value is what
        is sent)."""
        ...


class TwoStage:
    """Decide small, reply strong: ``decider`` chooses when to speak, ``replier`` writes what to say.

    The replier runs only on turns where the decider speaks, and may still hold the reply back (an empty
    reply: it has nothing it is sure of). If the replier fails (timeout, HTTP error), the rule is:
    ``on_failure="local"`` keeps the decider's own reply (stays silent if it has none), ``"silent"`` says
    nothing; either way the failure is logged and noted on the decision.
    """

    def __init__(self, decider: Backend, replier: Replier, on_failure: str = "local"):
        if on_failure not in ("local", "silent"):
            raise ValueError("on_failure must be 'local' or 'silent'")
        self.decider, self.replier, self.on_failure = decider, replier, on_failure
        self.supports_probability = decider.supports_probability
        # A replier written before drafts existed takes only the messages.
        self.streams = "on_text" in inspect.signature(replier.reply).parameters

    @property
    def threshold(self) -> float | None:
        return self.decider.threshold

    @property
    def answer_direct_questions(self) -> bool:
        return self.decider.answer_direct_questions

    @property
    def decide_only(self) -> bool:
        return self.decider.decide_only

    @decide_only.setter
    def decide_only(self, value: bool) -> None:
        self.decider.decide_only = value

    def new_state(self) -> Any:
        return self.decider.new_state()

    def decide(self, messages: list[Message], state: Any, threshold: float | None = None) -> Decision:
        decision = self.decider.decide(messages, state, threshold)
        if not decision.speak or self.decide_only:
            return decision
        return self.rewrite(decision, messages)

    def fallback(self, decision: Decision, why: str) -> Decision:
        """The decision when the replier failed to write the reply: the local reply, or silence (``on_failure``,
        or no local reply); ``why`` goes in the note, and the log."""
        if self.on_failure == "silent" or not decision.text:
            decision.speak, decision.text = False, ""
            decision.note = f"{why}; stayed silent"
        else:
            decision.note = f"{why}; used the local reply"
        log.warning(decision.note)
        return decision

    def rewrite(
        self, decision: Decision, messages: list[Message], on_text: Callable[[str], None] | None = None
    ) -> Decision:
        """The replier's reply in place of the decider's (``messages`` end with the message it answers).
        A server calls this outside its model thread: a slow replier must not hold the other rooms.
        ``on_text`` sees the reply as it is written (see :class:`Replier`)."""
        try:
            text = (
                self.replier.reply(messages, on_text)
                if on_text is not None and self.streams
                else self.replier.reply(messages)
            ).strip()
        except Exception as e:  # a remote replier must never block or break the room
            return self.fallback(decision, f"replier failed ({e})")
        if not text:
            decision.speak, decision.text = False, ""
            decision.note = "the replier had nothing it is sure of; stayed silent"
        else:
            decision.text = text
        return decision


@dataclass
class Assistant:
    """One room's assistant: history, decider, optional separate replier, eagerness threshold."""

    decider: Backend
    replier: Replier | None = None
    threshold: float | None = None  # eagerness: speak when p_speak >= threshold (None: the backend's default)
    on_replier_failure: str = "local"  # see TwoStage
    history: list[Message] = field(default_factory=list)
    state: Any = None

    def __post_init__(self) -> None:
        self.backend: Backend = (
            TwoStage(self.decider, self.replier, self.on_replier_failure) if self.replier else self.decider
        )
        if self.state is None:
            self.state = self.backend.new_state()

    def hear(
        self,
        name: str,
        text: str,
        threshold: float | None = None,
        review: Callable[[Decision], Decision] | None = None,
    ) -> Decision:
        """Add a user message to the room and decide; a spoken reply joins the history.

        ``threshold`` overrides the room's eagerness for this message; ``review`` sees the decision before the
        reply joins the history and may hold it back (a room's policy: cooldown, reply length)."""
        self.history.append(Message("user", text, name))
        start = time.perf_counter()
        decision = self.backend.decide(
            list(self.history), self.state, self.threshold if threshold is None else threshold
        )
        decision.latency_s = time.perf_counter() - start
        if review is not None:
            decision = review(decision)
        if decision.speak:
            self.history.append(Message("assistant", decision.text))
        return decision

    def listen(self, name: str, text: str) -> None:
        """Add a user message to the room without deciding on it (a burst, a stale or a quiet-time message):
        it is context for the next decision."""
        self.history.append(Message("user", text, name))

    def reset(self) -> None:
        self.history.clear()
        self.state = self.backend.new_state()

    def seed(self, messages: list[Message]) -> None:
        """Start from an existing conversation (e.g. a room's recent history) without deciding on it."""
        self.history = list(messages)
        self.state = self.backend.new_state()
