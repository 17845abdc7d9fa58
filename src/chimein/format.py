"""From conversations to chat turns, rendered text and assistant-only training labels.

The fine-tuned format (no system prompt; the task is learned, not instructed):

    user:      "Ana: pizza or sushi tonight?"
    assistant: "(silence)"
    user:      "Ben: bot, how many syllables does a haiku have?"
    assistant: "(response) Seventeen, in three lines of 5, 7 and 5."

The same :class:`ChatFormat` renders training examples and runtime prompts, so the two cannot drift apart.

Assistant-only labels are computed from the rendered conversation itself, for any template: render the
turns before each assistant turn (with the generation prompt) and the turns up to and including it; the
assistant turn is the character range between the two renderings. The full text is tokenized once, with
offsets, and the tokens inside those ranges are trained. No token ids are copied by hand, so a marker that
tokenizes differently in context (the trl completion-only collator's classic failure) cannot bite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from chimein.data import Conversation, Message
from chimein.templates import BuiltinTemplate, get_builtin_template

SILENCE = "(silence)"
RESPONSE = "(response)"
IGNORE_INDEX = -100  # label value the loss ignores
ZERO_WIDTH_SPACE = "\u200b"

Turn = dict[str, str]  # {"role": "user" | "assistant", "content": "..."}


class TemplateError(ValueError):
    """The chat template cannot be used for chimein's format (says why and what to do)."""


def user_turn_text(name: str, content: str) -> str:
    return f"{name}: {content}"


def assistant_turn_text(reply: str | None) -> str:
    return SILENCE if reply is None else f"{RESPONSE} {reply}"


def to_chat_turns(messages: Sequence[Message], open_end: bool = False) -> list[Turn]:
    """Strict user/assistant alternation: each user message, then ``(silence)`` or ``(response) text``.

    With ``open_end`` the messages end with the user message the assistant must react to now, and no
    assistant turn is added after it (the runtime appends the generation prompt instead). Messages cut from a
    longer chat may open with the assistant's reply to an earlier message: it becomes the first turn.
    """
    turns: list[Turn] = []
    if messages and messages[0].role == "assistant":
        turns.append({"role": "assistant", "content": assistant_turn_text(messages[0].content)})
    for i, m in enumerate(messages):
        if m.role != "user":
            continue
        turns.append({"role": "user", "content": user_turn_text(m.name or "someone", m.content)})
        nxt = messages[i + 1] if i + 1 < len(messages) else None
        if nxt is None and open_end:
            break
        turns.append(
            {
                "role": "assistant",
                "content": assistant_turn_text(nxt.content if nxt and nxt.role == "assistant" else None),
            }
        )
    return turns


def conversation_turns(conv: Conversation) -> list[Turn]:
    return to_chat_turns(conv.messages)


@dataclass
class Encoded:
    """One tokenized training example."""

    input_ids: list[int]
    labels: list[int]
    spans: list[tuple[int, int]]  # character ranges of the assistant turns in ``text``
    text: str

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass
class ChatFormat:
    """A tokenizer plus the chat template used with it (the model's own, or a built-in one)."""

    tokenizer: Any
    template: str  # Jinja source
    template_name: str  # "model" for the tokenizer's own template, else a built-in name
    end_of_turn: str = ""
    markers: tuple[str, ...] = ()
    _checked: bool = field(default=False, repr=False)

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, template: str | None = None) -> "ChatFormat":
        """Use ``template`` (a built-in name) if given, else the tokenizer's own template, else refuse."""
        if template and template != "model":
            builtin: BuiltinTemplate = get_builtin_template(template)
            fmt = cls(tokenizer, builtin.source, builtin.name, markers=builtin.markers)
        elif getattr(tokenizer, "chat_template", None):
            fmt = cls(tokenizer, tokenizer.chat_template, "model")
        else:
            raise TemplateError(
                "this tokenizer has no chat template; choose a built-in one with --template "
                "(chatml, zephyr, llama-2, openchat, gemma)"
            )
        special = tuple(t for t in getattr(tokenizer, "all_special_tokens", []) if len(t) > 1)
        added = tuple(getattr(tokenizer, "get_added_vocab", dict)().keys())
        fmt.markers = tuple(sorted({*fmt.markers, *special, *added}, key=len, reverse=True))
        fmt.end_of_turn = (
            fmt._derive_end_of_turn()
        )  # e.g. "{{ eos_token }}" is "</s>" for one tokenizer, "<|im_end|>" for another
        fmt.check()
        return fmt

    # -- rendering ---------------------------------------------------------------------------------

    def sanitize(self, text: str) -> str:
        """Make structural strings typed by a user inert: a zero-width space breaks each marker.

        ``<|im_start|>`` typed in a message must stay ordinary characters, never a special token or a
        role header, so the rendered prompt cannot be broken by what users write.
        """
        for marker in self.markers:
            if marker and marker in text:
                text = text.replace(marker, marker[0] + ZERO_WIDTH_SPACE + marker[1:])
        return text

    def render(self, turns: Sequence[Turn], add_generation_prompt: bool = False) -> str:
        safe = [{"role": t["role"], "content": self.sanitize(t["content"])} for t in turns]
        return self.tokenizer.apply_chat_template(
            safe, chat_template=self.template, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def prompt_ids(self, turns: Sequence[Turn]) -> list[int]:
        """Token ids of a conversation so far (ending with a user turn) plus the assistant-turn prefix."""
        return self.tokenize(self.render(turns, add_generation_prompt=True))

    def tokenize(self, text: str) -> list[int]:
        # Templates write BOS themselves where the model expects it.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- assistant-only labels ---------------------------------------------------------------------

    def assistant_spans(self, turns: Sequence[Turn]) -> tuple[str, list[tuple[int, int]]]:
        """The full rendering and the character range of each assistant turn in it."""
        full = self.render(turns)
        spans = []
        for i, t in enumerate(turns):
            if t["role"] != "assistant":
                continue
            before = self.render(turns[:i], add_generation_prompt=True)
            upto = self.render(turns[: i + 1])
            if not full.startswith(before) or not full.startswith(upto) or not upto.startswith(before):
                raise TemplateError(
                    f"the chat template ({self.template_name}) is not prefix preserving at turn {i}: rendering the "
                    "first turns does not give a prefix of the whole conversation; use a built-in template (--template)"
                )
            # Trailing newlines after the end-of-turn marker are layout, not something the model must say.
            spans.append((len(before), max(len(before), len(upto.rstrip("\n")))))
        return full, spans

    def encode(self, turns: Sequence[Turn]) -> Encoded:
        """Tokenize once and label only the tokens of assistant turns (content and end-of-turn)."""
        full, spans = self.assistant_spans(turns)
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        labels = [IGNORE_INDEX] * len(ids)
        for k, (start, end) in enumerate(enc["offset_mapping"]):
            # A token belongs to a turn if it ends inside it: a token that merged across the turn's start
            # must still be learned, since generating it is how the turn begins.
            if end > start and any(end > s and start < e for s, e in spans):
                labels[k] = ids[k]
        return Encoded(ids, labels, spans, full)

    def encode_conversation(self, conv: Conversation) -> Encoded:
        return self.encode(conversation_turns(conv))

    # -- checks ------------------------------------------------------------------------------------

    def _derive_end_of_turn(self) -> str:
        probe = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "PROBE"}]
        try:
            text = self.render(probe)
        except Exception as e:  # a template that cannot render our turns at all
            raise TemplateError(f"the model's chat template cannot render user/assistant turns: {e}") from e
        tail = text[text.rfind("PROBE") + len("PROBE") :].strip()
        return tail.split("\n")[0].strip()

    def check(self) -> None:
        """Render a two-turn probe and refuse templates that lose, reorder or garble content."""
        if self._checked:
            return
        user, reply = "Alice: probe question about tea?", "(response) probe answer about tea."
        turns = [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        try:
            text = self.render(turns)
        except Exception as e:
            raise TemplateError(f"the chat template ({self.template_name}) failed to render a probe: {e}") from e
        iu, ia = text.find(user), text.find(reply)
        if iu < 0 or ia < 0:
            raise TemplateError(
                f"the chat template ({self.template_name}) does not keep message contents intact "
                f"(rendered: {text!r}); choose a built-in template with --template"
            )
        if not iu < ia:
            raise TemplateError(f"the chat template ({self.template_name}) reorders messages: {text!r}")
        if "system" in text.lower()[:iu] and self.template_name == "model":
            # Some templates inject a default system prompt; chimein's format has none.
            raise TemplateError(
                f"the model's chat template adds a system prompt ({text[:iu]!r}); chimein's format has none: "
                "use a built-in template with --template"
            )
        ids = self.tokenize(text)
        back = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if back != text and back.strip() != text.strip():
            raise TemplateError(
                f"the rendered text does not round-trip through the tokenizer:\n  rendered: {text!r}\n  decoded:  {back!r}"
            )
        self.assistant_spans(
            turns + [{"role": "user", "content": "Bob: ok"}, {"role": "assistant", "content": SILENCE}]
        )
        self._checked = True


@dataclass
class MarkerTokens:
    """A template marker and its tokens, in context (inside a rendered conversation) and standalone."""

    text: str
    ids_in_context: list[int]
    pieces_in_context: list[str]
    ids_standalone: list[int]
    pieces_standalone: list[str]

    @property
    def differs(self) -> bool:
        return self.ids_in_context != self.ids_standalone


def _tokens_in_range(fmt: ChatFormat, text: str, start: int, end: int) -> list[int]:
    enc = fmt.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [i for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]) if e > start and s < end and e > s]


def template_markers(fmt: ChatFormat) -> dict[str, MarkerTokens]:
    """The instruction (user-turn) and response (assistant-turn) markers, as they occur in context.

    Measured on the *second* exchange of a rendered conversation, where a marker follows a previous turn
    (that is where the in-context tokenization differs from the standalone one, if it does).
    """
    turns = [
        {"role": "user", "content": "Ana: first"},
        {"role": "assistant", "content": SILENCE},
        {"role": "user", "content": "Ben: second"},
        {"role": "assistant", "content": SILENCE},
    ]
    full = fmt.render(turns)
    before_user = len(fmt.render(turns[:2]))
    user_start = full.index("Ben: second")
    user_end = user_start + len("Ben: second")
    assistant_start = full.index(SILENCE, user_end)
    gen = fmt.render(turns[:3], add_generation_prompt=True)
    response_start = len(fmt.render(turns[:3])) if gen != fmt.render(turns[:3]) else user_end
    ranges = {"instruction": (before_user, user_start), "response": (response_start, assistant_start)}
    out = {}
    for key, (s, e) in ranges.items():
        marker = full[s:e]
        # Leading/trailing white space is layout shared with the neighbours; the marker is what stands between.
        stripped = marker.strip()
        s = s + marker.index(stripped) if stripped else s
        e = s + len(stripped) if stripped else e
        in_ctx = _tokens_in_range(fmt, full, s, e)
        alone = fmt.tokenize(full[s:e])
        conv = fmt.tokenizer.convert_ids_to_tokens
        out[key] = MarkerTokens(full[s:e], in_ctx, conv(in_ctx), alone, conv(alone))
    return out
