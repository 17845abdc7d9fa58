"""Room controls: what a room lets its assistant do, whatever the model would like to do.

    policy = RoomPolicy(mode="auto", eagerness=0.5, cooldown=(3, 10.0), min_gap=4)
    gate = RoomGate(policy)
    decision = hear(assistant, gate, Heard("Ana", "bot, what's 7*8?", at=time.time()))
    decision.reason    # "addressed", "p_speak 0.83 >= 0.55", "cooldown: ...", "quiet", ...

One implementation for every room kind (web rooms, Matrix, any connector): a connector turns its events
into :class:`Heard` (who, what, when, from a bot?, a reply to the assistant?), asks the gate, and shows
``decision.reason``. In-room commands (``!chimein quiet 30m``) are parsed by :func:`parse_command` and
applied with :func:`apply_command`; who may run them is the connector's call (Matrix: power levels).

The rules, in the order :meth:`RoomGate.before` applies them:
1. the assistant's own messages are never decided on (the connector does not pass them at all);
2. a message older than ``stale_after_s`` is heard, never answered (a slow call must not answer old news);
3. ``quiet`` (until a time, or until switched back): heard, never answered;
4. ``mention-only``: only messages that address the assistant (or reply to it) are decided on;
5. another bot's message never triggers an unprompted interjection, and an exchange with bots stops
   after ``bot_turns`` assistant replies in a row to bots (two bots answering each other forever);
6. a direct question to the assistant (addressed, or a reply to its message, with a "?") is answered.
:meth:`RoomGate.after` then holds back *unprompted* replies over the ``cooldown`` (N per M minutes) or
within ``min_gap`` user messages of the last one, and cuts replies to ``max_reply_chars``.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from chimein.assistant.core import Assistant, Decision, cut_reply
from chimein.mentions import DEFAULT_ASSISTANT_NAMES, addresses_assistant

Mode = Literal["auto", "mention-only", "quiet"]
MODES: tuple[str, ...] = ("auto", "mention-only", "quiet")
COMMAND_PREFIX = "!chimein"


class PolicyError(ValueError):
    """A setting out of range or a command that cannot be read; the message says what is allowed."""


@dataclass
class RoomPolicy:
    mode: Mode = "auto"
    quiet_until: float | None = None  # epoch seconds; in quiet mode, None = until switched back
    eagerness: float | None = None  # the speaking threshold; None = the model's own
    cooldown: tuple[int, float] | None = None  # at most N assistant messages per M minutes, unless addressed
    min_gap: int = 0  # at least K user messages between two unprompted interjections
    max_reply_chars: int = 600
    settle_s: float = 1.5  # messages closer together than this are decided once, on the latest
    stale_after_s: float = 600.0
    bot_turns: int = 3  # replies in a row to other bots before the assistant stops answering them
    changed_by: str | None = None
    changed_at: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.mode not in MODES:
            raise PolicyError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.eagerness is not None and not 0.0 <= self.eagerness <= 1.0:
            raise PolicyError(f"eagerness is a number from 0 to 1, got {self.eagerness}")
        if self.cooldown is not None:
            n, minutes = self.cooldown
            if int(n) < 1 or not minutes > 0:
                raise PolicyError(f"cooldown is N messages per M minutes with N >= 1 and M > 0, got {n}/{minutes}")
            self.cooldown = (int(n), float(minutes))
        for name in ("min_gap", "max_reply_chars", "bot_turns"):
            if getattr(self, name) < 0:
                raise PolicyError(f"{name} cannot be negative")
        if self.max_reply_chars < 20:
            raise PolicyError("max_reply_chars must be at least 20")
        if self.settle_s < 0 or self.stale_after_s <= 0:
            raise PolicyError("settle_s must be >= 0 and stale_after_s > 0")

    def is_quiet(self, now: float) -> bool:
        return self.mode == "quiet" and (self.quiet_until is None or now < self.quiet_until)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["cooldown"] = list(self.cooldown) if self.cooldown else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RoomPolicy":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("cooldown") is not None:
            known["cooldown"] = tuple(known["cooldown"])
        return cls(**known)

    def describe(self, now: float | None = None) -> str:
        """One line for ``!chimein status`` and the web room's settings bar."""
        now = time.time() if now is None else now
        mode = self.mode
        if self.mode == "quiet" and self.quiet_until is not None:
            mode = (
                f"quiet for {max(0, round((self.quiet_until - now) / 60))} more min"
                if now < self.quiet_until
                else "auto (quiet ended)"
            )
        parts = [
            f"mode {mode}",
            f"eagerness {'default' if self.eagerness is None else f'{self.eagerness:.2f}'}",
            f"cooldown {'off' if not self.cooldown else f'{self.cooldown[0]}/{self.cooldown[1]:g}m'}",
            f"min gap {self.min_gap}",
            f"max reply {self.max_reply_chars} chars",
        ]
        if self.changed_by:
            parts.append(f"last changed by {self.changed_by}")
        return ", ".join(parts)


@dataclass
class Heard:
    """One incoming message as a connector saw it."""

    name: str
    text: str
    at: float  # when it was sent (epoch seconds)
    from_bot: bool = False  # another bot (Matrix: configured ids/names; web: a participant flagged as a bot)
    reply_to_assistant: bool = False  # a reply to, or in a thread under, one of the assistant's messages


@dataclass
class Verdict:
    decide: bool  # False: only hear the message (it joins the history)
    threshold: float | None = None  # the threshold to decide with (0 forces a reply to a direct question)
    addressed: bool = False
    reason: str = ""  # why it will not decide ("quiet", "mode", "stale", ...), or why it must answer


@dataclass
class RoomGate:
    """The runtime state one room needs to apply its policy (kept in memory; the policy itself is stored)."""

    policy: RoomPolicy = field(default_factory=RoomPolicy)
    names: tuple[str, ...] = DEFAULT_ASSISTANT_NAMES
    spoken_at: deque = field(default_factory=lambda: deque(maxlen=1000))  # times of the assistant's messages
    user_messages_since_interjection: int = 10**9
    bot_replies_in_a_row: int = 0

    def before(self, heard: Heard, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        p = self.policy
        self.user_messages_since_interjection += 1
        addressed = heard.reply_to_assistant or addresses_assistant(heard.text, self.names)
        if not heard.from_bot:
            self.bot_replies_in_a_row = 0
        if now - heard.at > p.stale_after_s:
            return Verdict(False, addressed=addressed, reason=f"stale: sent {now - heard.at:.0f} s ago")
        if p.is_quiet(now):
            return Verdict(False, addressed=addressed, reason="quiet")
        if p.mode == "mention-only" and not addressed:
            return Verdict(False, reason="mode mention-only: not addressed")
        if heard.from_bot:
            if not addressed:
                return Verdict(False, reason="another bot, not addressed")
            if self.bot_replies_in_a_row >= p.bot_turns:
                return Verdict(False, addressed=True, reason=f"loop guard: {p.bot_turns} replies in a row to bots")
        if addressed and "?" in heard.text:
            why = "reply to assistant" if heard.reply_to_assistant else "addressed"
            return Verdict(True, threshold=0.0, addressed=True, reason=why)
        return Verdict(True, threshold=p.eagerness, addressed=addressed)

    def after(self, heard: Heard, verdict: Verdict, decision: Decision, now: float | None = None) -> Decision:
        """Hold back what the policy does not allow, cut the reply, record it; ``decision.reason`` says why."""
        now = time.time() if now is None else now
        p = self.policy
        if not decision.speak:
            decision.reason = decision.reason or verdict.reason or _threshold_reason(decision, verdict, spoke=False)
            return decision
        if not verdict.addressed:
            held = self._held_back(now)
            if held:
                return replace(decision, speak=False, text="", reason=f"{held} (p_speak {_p(decision)})")
        decision.text = cut_reply(decision.text, p.max_reply_chars)
        decision.reason = verdict.reason or (
            "addressed" if verdict.addressed else _threshold_reason(decision, verdict, spoke=True)
        )
        self.spoken_at.append(now)
        if not verdict.addressed:
            self.user_messages_since_interjection = 0
        self.bot_replies_in_a_row = self.bot_replies_in_a_row + 1 if heard.from_bot else 0
        return decision

    def _held_back(self, now: float) -> str:
        p = self.policy
        if p.cooldown:
            n, minutes = p.cooldown
            recent = sum(1 for t in self.spoken_at if now - t < minutes * 60)
            if recent >= n:
                return f"cooldown: {recent} messages in the last {minutes:g} min"
        if p.min_gap and self.user_messages_since_interjection < p.min_gap:
            return f"min gap: {self.user_messages_since_interjection} user messages since the last interjection"
        return ""


def _p(decision: Decision) -> str:
    return "-" if decision.p_speak is None else f"{decision.p_speak:.2f}"


def _threshold_reason(decision: Decision, verdict: Verdict, spoke: bool) -> str:
    if decision.p_speak is None:
        return "the model chose to speak" if spoke else "the model chose silence"
    if verdict.threshold is None:
        return f"p_speak {decision.p_speak:.2f}"
    p, t = decision.p_speak, verdict.threshold
    if spoke and p < t:  # the runtime's own rules (core.should_speak) lowered the bar
        return f"p_speak {p:.2f} < {t:.2f}, spoke on a direct question or a stuck group"
    return f"p_speak {p:.2f} {'>=' if spoke else '<'} {t:.2f}"


def hear(assistant: Assistant, gate: RoomGate, heard: Heard, now: float | None = None) -> Decision:
    """One message through a room's policy: only heard (it joins the history), or decided with the
    policy's threshold and then reviewed (cooldown, min gap, reply length). The one way connectors use it."""
    return hear_burst(assistant, gate, [heard], now)[-1]


BURST_REASON = "burst: decided with another of its messages"


def hear_burst(assistant: Assistant, gate: RoomGate, burst: list[Heard], now: float | None = None) -> list[Decision]:
    """Messages that arrived within the settle time, decided once; one decision per message.

    Every message passes the gate in order (so min gap, the bot loop guard and quiet see each one) and joins
    the history. The burst is decided on the message that must be answered (one that addresses the assistant
    or replies to it), else on the latest; a reply answers that message, and the messages after it join the
    history after the reply (as the room shows them: each reply addresses the message it answers). A burst
    with several messages that address the assistant decides on each: "bot, what is the capital of Peru?"
    followed at once by "brb" is answered on the question, never on "brb" nor dropped.
    """
    now = time.time() if now is None else now
    verdicts = [gate.before(heard, now) for heard in burst]
    ruling = [i for i, v in enumerate(verdicts) if v.decide and v.addressed] or [len(burst) - 1]
    decisions: list[Decision] = []
    for i, heard in enumerate(burst):
        if i in ruling:
            decisions.append(_decide(assistant, gate, heard, verdicts[i], now))
        else:
            assistant.listen(heard.name, heard.text)
            decisions.append(Decision(False, reason=BURST_REASON))
    return decisions


def _decide(assistant: Assistant, gate: RoomGate, heard: Heard, verdict: Verdict, now: float) -> Decision:
    """One message through the gate's verdict: only heard, or decided and then reviewed by the gate."""
    if not verdict.decide:
        assistant.listen(heard.name, heard.text)
        return gate.after(heard, verdict, Decision(False), now)
    # The reason names the threshold in force: the room's eagerness, else the assistant's, else the model's.
    in_force = next(
        (
            t
            for t in (verdict.threshold, assistant.threshold, getattr(assistant.backend, "threshold", None))
            if t is not None
        ),
        None,
    )
    shown = replace(verdict, threshold=in_force)
    return assistant.hear(
        heard.name, heard.text, threshold=verdict.threshold, review=lambda d: gate.after(heard, shown, d, now)
    )


def hear_only(
    assistant: Assistant, gate: RoomGate, burst: list[Heard], reason: str, now: float | None = None
) -> list[Decision]:
    """A burst heard without a decision (the room fell behind): each message passes the gate (its counters
    stay right) and joins the history; every decision is silence with ``reason``."""
    now = time.time() if now is None else now
    for heard in burst:
        gate.before(heard, now)
        assistant.listen(heard.name, heard.text)
    return [Decision(False, reason=reason) for _ in burst]


# -- in-room commands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str  # status, mode, quiet, resume, eagerness, cooldown, min-gap, help
    arg: str = ""

    @property
    def changes_settings(self) -> bool:
        return self.name not in ("status", "help")


HELP = (
    "commands: !chimein status | mode auto|mention-only|quiet | quiet 30m | resume | eagerness 0.3 | "
    "cooldown 3/10m (or off) | min-gap 4 | help"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h)?$", re.IGNORECASE)


def is_command(text: str) -> bool:
    """A ``!chimein ...`` line: answered by the connector, never shown to the model."""
    words = text.strip().split(maxsplit=1)
    return bool(words) and words[0].lower() == COMMAND_PREFIX


def parse_command(text: str) -> Command | None:
    """``!chimein ...`` as a :class:`Command`; None when the message is not a command at all."""
    words = text.strip().split()
    if not words or words[0].lower() != COMMAND_PREFIX:
        return None
    if len(words) == 1:
        return Command("status")
    name = words[1].lower().replace("_", "-")
    arg = " ".join(words[2:])
    if name not in ("status", "help", "mode", "quiet", "resume", "eagerness", "cooldown", "min-gap"):
        raise PolicyError(f"unknown command {words[1]!r}; {HELP}")
    return Command(name, arg)


def parse_duration(text: str) -> float:
    """``30m``, ``2h``, ``90s``, ``45`` (minutes) -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise PolicyError(f"a duration looks like 30m, 2h or 90s, got {text!r}")
    unit = (m.group(2) or "m").lower()
    return float(m.group(1)) * {"s": 1, "m": 60, "min": 60, "h": 3600}[unit]


def apply_command(policy: RoomPolicy, command: Command, who: str, now: float | None = None) -> tuple[RoomPolicy, str]:
    """The new policy and the line the bot answers with. ``status``/``help`` leave the policy as it is."""
    now = time.time() if now is None else now
    if command.name == "status":
        return policy, f"chimein: {policy.describe(now)}"
    if command.name == "help":
        return policy, HELP
    new = replace(policy, changed_by=who, changed_at=now)
    arg = command.arg.strip()
    if command.name == "mode":
        if arg not in MODES:
            raise PolicyError(f"mode is one of {', '.join(MODES)}")
        new.mode, new.quiet_until = arg, None  # type: ignore[assignment]
    elif command.name == "quiet":
        new.mode, new.quiet_until = "quiet", (now + parse_duration(arg)) if arg else None
    elif command.name == "resume":
        new.mode, new.quiet_until = "auto", None
    elif command.name == "eagerness":
        try:
            new.eagerness = None if arg in ("default", "") else float(arg)
        except ValueError:
            raise PolicyError(f"eagerness is a number from 0 to 1 (or 'default'), got {arg!r}") from None
    elif command.name == "cooldown":
        new.cooldown = None if arg in ("off", "none", "0") else parse_cooldown(arg)
    elif command.name == "min-gap":
        if not arg.isdigit():
            raise PolicyError(f"min-gap is a whole number of user messages, got {arg!r}")
        new.min_gap = int(arg)
    new.validate()
    return new, f"chimein: {new.describe(now)}"


def parse_cooldown(text: str) -> tuple[int, float]:
    """``3/10m`` -> at most 3 assistant messages per 10 minutes."""
    n, sep, window = text.partition("/")
    if not sep or not n.strip().isdigit():
        raise PolicyError(f"cooldown looks like 3/10m (3 messages per 10 minutes), got {text!r}")
    return int(n), parse_duration(window) / 60
