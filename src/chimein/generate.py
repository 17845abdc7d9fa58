"""Synthetic group-chat conversations from any OpenAI-compatible chat endpoint (`chimein generate`).

The seed's method, for real users: ask an LLM for a group chat about a topic between named users, in which
an assistant chimes in only when it can add something useful; keep the replies that pass the same rules as
``chimein validate``; append them to a JSONL file as they complete.

    from chimein.generate import GenerateConfig, generate_file
    counts = generate_file(GenerateConfig(out="gen.jsonl", n=50, base_url="http://127.0.0.1:8080/v1", model="local"))

- Any endpoint that speaks the OpenAI chat API: OpenAI, Together, a local llama.cpp / Ollama / vLLM server.
  The API key is read from an environment variable (``OPENAI_API_KEY`` unless told otherwise); local
  servers accept any key.
- Each conversation ("item") has a deterministic plan from ``seed`` and its index: its topic (topics are
  visited in a shuffled order, all of them before any repeats), its user names, its turn count and the
  sampling seed sent to the endpoint. Written lines carry the index in their id (``gen-<seed>-<index>``),
  so a restarted run continues with new indices instead of asking for the same combinations again.
- A reply is accepted when a JSON list of messages can be found in it (:func:`extract_json`), the list
  passes :func:`chimein.data.parse_messages`, it has ``min_turns``..``max_turns`` user messages from at
  least two users, and it is no near-duplicate of anything already in the file
  (:class:`chimein.dedup.DuplicateIndex`). An invalid reply is asked again (``retries`` times, counted as
  retried), then the conversation is counted as rejected; invalid replies are never written.
- Output is appended and flushed line by line, so killing the run loses nothing already written. Restarting
  it resumes: a last line cut off by the kill is reported and removed, the rest is counted toward ``n``
  and used for deduplication.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chimein.data import Conversation, Message, conversation_to_line, parse_line, parse_messages
from chimein.dedup import DuplicateIndex

RESOURCES = Path(__file__).resolve().parent / "resources"
DEFAULT_PROMPT_FILE = RESOURCES / "generate_prompt.txt"
DEFAULT_EXAMPLE_FILE = RESOURCES / "generate_example.json"
DEFAULT_TOPICS_FILE = RESOURCES / "generate_topics.txt"
DEFAULT_NAMES_FILE = RESOURCES / "generate_names.txt"
PROMPT_FIELDS = ("topic", "names", "turns", "example")
CATEGORY = "generated"
# User names that mean the model wrote the assistant as one of the users.
ASSISTANT_NAMES = {"assistant", "ai", "ai assistant", "bot", "chatbot", "the assistant"}
# Keys under which models wrap the message list in an object.
WRAPPER_KEYS = ("messages", "conversation", "chat", "dialogue", "dialog", "turns")


class GenerateError(RuntimeError):
    """The run cannot start or go on (bad options, an unreadable output file, an endpoint that refuses).

    When raised during generation, ``counts`` holds what the run did (and wrote) before it stopped.
    """

    counts: "GenerateCounts | None" = None


class InvalidReply(ValueError):
    """A reply that cannot be used. ``kind`` is a short reason for the counts, ``detail`` says more."""

    def __init__(self, kind: str, detail: str = ""):
        self.kind, self.detail = kind, detail or kind
        super().__init__(self.detail)


@dataclass
class GenerateConfig:
    out: Path | str
    n: int = 100  # conversations to reach in the file (what is there already counts)
    base_url: str | None = None  # None: $OPENAI_BASE_URL or OpenAI's own
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    topics: list[str] | None = None  # None: the built-in list
    names: list[str] | None = None  # None: the built-in list
    min_turns: int = 10  # user messages per conversation
    max_turns: int = 12
    min_users: int = 2  # users named in the prompt
    max_users: int = 3
    prompt_template: str | None = None  # str.format fields {topic} {names} {turns} {example}; None: built-in
    example: str | None = None  # the worked example put in {example}; None: built-in
    retries: int = 2  # extra requests per conversation after an invalid reply
    concurrency: int = 1
    seed: int = 0
    temperature: float = 0.8
    max_tokens: int = 1500
    timeout: float = 120.0  # seconds per request
    max_items: int | None = None  # give up after trying this many new conversations; None: 2x missing + 10
    dedup_threshold: float = 0.5

    def __post_init__(self) -> None:
        self.out = Path(self.out)


@dataclass
class GenerateCounts:
    """What a run did. ``ok + rejected + duplicate == tried``; ``retried`` counts repeated requests."""

    out: Path
    target: int
    existing: int = 0  # valid conversations in the file before this run
    ok: int = 0  # written by this run
    retried: int = 0
    rejected: int = 0
    duplicate: int = 0
    tried: int = 0  # conversations finished by this run (written, rejected or duplicate)
    max_items: int = 0
    dropped_line: str | None = None  # the cut-off last line removed from the file, if any
    reasons: Counter = field(default_factory=Counter)  # why replies were invalid (every invalid reply)

    @property
    def total(self) -> int:
        return self.existing + self.ok

    @property
    def done(self) -> bool:
        return self.total >= self.target

    def summary(self) -> str:
        text = (
            f"{self.out}: {self.total}/{self.target} conversations ({self.existing} already there, {self.ok} new); "
            f"ok {self.ok}, retried {self.retried}, rejected {self.rejected}, duplicate {self.duplicate}"
        )
        if self.reasons:
            text += "; invalid replies: " + ", ".join(f"{k} {v}" for k, v in self.reasons.most_common())
        return text


@dataclass(frozen=True)
class Item:
    """The plan for one conversation: everything the prompt needs, fixed by the seed and the index."""

    index: int
    topic: str
    names: tuple[str, ...]
    turns: int
    seed: int

    def id(self, run_seed: int) -> str:
        return f"gen-{run_seed}-{self.index:05d}"


# ---------------------------------------------------------------------------------------------- inputs


def read_list(path: str | Path) -> list[str]:
    """Lines of a text file, stripped, without blanks, ``#`` comments and repeats."""
    out: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line not in out:
            out.append(line)
    return out


def default_topics() -> list[str]:
    return read_list(DEFAULT_TOPICS_FILE)


def default_names() -> list[str]:
    return read_list(DEFAULT_NAMES_FILE)


def default_prompt_template() -> str:
    return DEFAULT_PROMPT_FILE.read_text(encoding="utf-8")


def default_example() -> str:
    return DEFAULT_EXAMPLE_FILE.read_text(encoding="utf-8").strip()


def build_prompt(
    template: str, topic: str, names: list[str] | tuple[str, ...], turns: int, example: str | None = None
) -> str:
    """Fill a prompt template (Python ``str.format`` fields {topic}, {names}, {turns}, {example})."""
    example = default_example() if example is None else example
    try:
        return template.format(topic=topic, names=", ".join(names), turns=turns, example=example)
    except (KeyError, IndexError) as e:
        raise GenerateError(
            f"the prompt template uses an unknown field {{{e.args[0]}}}: the fields are "
            + ", ".join("{" + f + "}" for f in PROMPT_FIELDS)
            + "; write literal braces as {{ and }}"
        ) from None
    except ValueError as e:
        raise GenerateError(
            f"the prompt template is not a valid format string ({e}); write literal braces as {{{{ and }}}}"
        ) from None


def plan_item(
    index: int,
    seed: int,
    topics: list[str],
    names: list[str],
    min_turns: int,
    max_turns: int,
    min_users: int = 2,
    max_users: int = 3,
) -> Item:
    """The deterministic plan for conversation ``index`` of a run with ``seed``.

    Topics are visited in an order shuffled per pass over the list (every topic once before any repeats);
    names, turn count and the request seed come from a generator seeded with (seed, index).
    """
    cycle, pos = divmod(index, len(topics))
    order = list(range(len(topics)))
    random.Random(f"chimein-topics:{seed}:{cycle}").shuffle(order)
    rng = random.Random(f"chimein-item:{seed}:{index}")
    k = rng.randint(min_users, min(max_users, len(names)))
    return Item(
        index, topics[order[pos]], tuple(rng.sample(names, k)), rng.randint(min_turns, max_turns), rng.randrange(2**31)
    )


# ---------------------------------------------------------------------------------------------- replies

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_FENCE = re.compile(r"```[ \t]*[\w-]*[ \t]*\n?(.*?)(?:```|$)", re.S)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")


def _as_messages(obj: Any) -> list | None:
    """The message list in a decoded JSON value, or None when it holds none."""
    if isinstance(obj, dict):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for key in WRAPPER_KEYS:
            if key in lowered:
                found = _as_messages(lowered[key])
                if found is not None:
                    return found
        return None
    if isinstance(obj, list) and obj:
        if len(obj) == 1 and isinstance(obj[0], dict) and "role" not in obj[0]:
            return _as_messages(obj[0])  # [{"messages": [...]}]
        if isinstance(obj[0], dict) and ("role" in obj[0] or "content" in obj[0]):
            return obj
    return None


def _scan(text: str) -> list | None:
    """Find the first JSON value in ``text`` (prose around it allowed) that holds a message list."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch not in "[{":
            continue
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            continue
        found = _as_messages(obj)
        if found is not None:
            return found
        if isinstance(obj, dict) and "role" in obj:
            # Messages written one object after another (JSON lines, or a list without its brackets).
            run = [obj]
            while True:
                m = re.compile(r"[\s,]*").match(text, end)
                try:
                    nxt, end = decoder.raw_decode(text, m.end())
                except json.JSONDecodeError:
                    break
                if not (isinstance(nxt, dict) and "role" in nxt):
                    break
                run.append(nxt)
            if len(run) > 1:
                return run
    return None


def extract_json(text: str | None) -> list:
    """The list of messages in a model's reply.

    Accepts a bare JSON list, one inside ```json fences, one with prose before or after it, an object with a
    "messages" / "conversation" key, messages written one object per line, trailing commas, and reasoning
    in <think> tags. Raises :class:`InvalidReply` when there is none.
    """
    if text is None or not text.strip():
        raise InvalidReply("empty reply")
    text = _THINK.sub("", text).strip()
    candidates = [m.group(1) for m in _FENCE.finditer(text) if m.group(1).strip()] + [text]
    for candidate in candidates:
        try:
            found = _as_messages(json.loads(candidate))
        except json.JSONDecodeError:
            found = None
        if found is None:
            found = _scan(candidate)
        if found is None and _TRAILING_COMMA.search(candidate):
            found = _scan(_TRAILING_COMMA.sub(r"\1", candidate))
        if found is not None:
            return found
    if "[" in text or "{" in text:
        raise InvalidReply("no message list", "no JSON list of messages found in the reply (invalid or other JSON)")
    raise InvalidReply("no JSON", "the reply holds no JSON")


def _normalise(raw: list) -> list:
    """Forgive cosmetic slips that change nothing: role spelled "User" or " assistant"."""
    out = []
    for m in raw:
        if isinstance(m, dict) and isinstance(m.get("role"), str):
            m = {**m, "role": m["role"].strip().lower()}
        out.append(m)
    return out


def check_messages(raw: Any, min_turns: int, max_turns: int) -> list[Message]:
    """Validate a decoded message list as ``chimein validate`` does, plus turn-count and user checks."""
    messages, problems = parse_messages(_normalise(raw) if isinstance(raw, list) else raw)
    if problems:
        where, what = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InvalidReply("invalid messages", f"{where}: {what}{more}")
    as_user = sorted({m.name for m in messages if m.role == "user" and m.name.strip().lower() in ASSISTANT_NAMES})
    if as_user:
        raise InvalidReply("assistant written as a user", f"the assistant is written as a user named {as_user[0]!r}")
    turns = sum(m.role == "user" for m in messages)
    if not min_turns <= turns <= max_turns:
        expected = str(min_turns) if min_turns == max_turns else f"{min_turns}-{max_turns}"
        raise InvalidReply("wrong turn count", f"{turns} user messages, expected {expected}")
    users = {m.name.strip() for m in messages if m.role == "user"}
    if len(users) < 2:
        raise InvalidReply("fewer than 2 users", f"only {len(users)} user ({', '.join(sorted(users))})")
    return messages


def parse_reply(text: str | None, min_turns: int, max_turns: int, finish_reason: str | None = None) -> list[Message]:
    """Extract and validate the conversation in a reply; raise :class:`InvalidReply` saying why not."""
    try:
        raw = extract_json(text)
    except InvalidReply as e:
        if finish_reason == "length":
            raise InvalidReply("cut off at max_tokens", "the reply was cut off at max_tokens: " + e.detail) from None
        raise
    return check_messages(raw, min_turns, max_turns)


# ---------------------------------------------------------------------------------------------- the file


def prepare_output(path: str | Path) -> tuple[list[Conversation], str | None]:
    """Read the conversations already in ``path`` before appending to it.

    A last line without its newline that is not valid JSON was cut off by a kill: it is removed from the
    file and returned (so the caller can report it). A complete last line missing only its newline gets
    one. Any other problem line stops the run: nothing complete is ever dropped.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return [], None
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    dropped = None
    if tail.strip():
        try:
            json.loads(tail.decode("utf-8"))
            lines.append(tail)  # complete, only its newline is missing
        except (UnicodeDecodeError, json.JSONDecodeError):
            dropped = tail.decode("utf-8", errors="replace")
    conversations, problems = [], []
    for n, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"{path}:{n}: file: not UTF-8 ({e.reason})")
            continue
        if not text.strip():
            continue
        conv, found = parse_line(text, str(path), n)
        problems += [str(p) for p in found]
        if conv is not None:
            conversations.append(conv)
    if problems:
        shown = "\n".join(problems[:10]) + (f"\n... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise GenerateError(
            f"{path} has {len(problems)} problem(s); generate only appends to a valid file "
            f"(check it with `chimein validate`, fix or move it):\n{shown}"
        )
    fixed = b"".join(line + b"\n" for line in lines)
    if fixed != data:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(fixed)
        os.replace(tmp, path)
    return conversations, dropped


def next_index(conversations: list[Conversation], seed: int) -> int:
    """The first item index not used yet by a run with ``seed`` (from the ids of written lines)."""
    pattern = re.compile(rf"gen-{seed}-(\d+)$")
    used = [int(m.group(1)) for c in conversations if (m := pattern.match(str(c.meta.get("id", ""))))]
    return max(used) + 1 if used else 0


# ---------------------------------------------------------------------------------------------- requests


def make_client(config: GenerateConfig) -> Any:
    from openai import OpenAI

    return OpenAI(
        base_url=config.base_url or os.environ.get("OPENAI_BASE_URL") or None,
        api_key=os.environ.get(config.api_key_env) or "not-needed",
        timeout=config.timeout,
        max_retries=2,
    )


@dataclass
class Outcome:
    item: Item
    conversation: Conversation | None  # None: rejected
    retries: int
    reasons: list[str]  # the kind of every invalid reply


def _fatal(e: Exception, config: GenerateConfig) -> GenerateError:
    where = config.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    hint = ""
    if getattr(e, "status_code", None) in (401, 403):
        hint = f" (is the API key in ${config.api_key_env}? choose the variable with --api-key-env)"
    elif getattr(e, "status_code", None) == 404:
        hint = " (check --base-url, usually ending in /v1, and --model)"
    return GenerateError(f"the endpoint {where} (model {config.model!r}) failed: {type(e).__name__}: {e}{hint}")


def run_item(client: Any, config: GenerateConfig, item: Item, template: str, example: str) -> Outcome:
    """Ask for one conversation, up to ``1 + retries`` times; never raises for a bad reply."""
    import openai

    prompt = build_prompt(template, item.topic, item.names, item.turns, example)
    reasons: list[str] = []
    for attempt in range(config.retries + 1):
        try:
            response = client.chat.completions.create(
                model=config.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=config.temperature,
                max_tokens=config.max_tokens,
                seed=(item.seed + attempt) % 2**31,
            )
            choice = response.choices[0]
            messages = parse_reply(choice.message.content, config.min_turns, config.max_turns, choice.finish_reason)
        except InvalidReply as e:
            reasons.append(e.kind)
            continue
        except (openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError):
            reasons.append("endpoint error")  # transient (the client already retried with backoff)
            time.sleep(min(2**attempt, 10))
            continue
        except (openai.APIConnectionError, openai.APIStatusError) as e:
            raise _fatal(e, config) from e  # unreachable, bad key, unknown model, prompt too long: stop
        meta = {"id": item.id(config.seed), "topic": item.topic, "category": CATEGORY, "generator": config.model}
        return Outcome(item, Conversation(messages, meta), attempt, reasons)
    return Outcome(item, None, config.retries, reasons)


def _check_config(config: GenerateConfig, topics: list[str], names: list[str]) -> None:
    if config.n < 1:
        raise GenerateError("--n must be at least 1")
    if not 1 <= config.min_turns <= config.max_turns:
        raise GenerateError("turn counts need 1 <= --min-turns <= --max-turns")
    if config.min_turns < 2:
        raise GenerateError("--min-turns must be at least 2: a conversation needs two users")
    if not 2 <= config.min_users <= config.max_users:
        raise GenerateError("user counts need 2 <= min_users <= max_users")
    if not topics:
        raise GenerateError("the topic list is empty")
    if len(names) < config.min_users:
        raise GenerateError(f"the name list needs at least {config.min_users} names, it has {len(names)}")
    if config.retries < 0 or config.concurrency < 1:
        raise GenerateError("--retries must be >= 0 and --concurrency >= 1")


def generate_file(
    config: GenerateConfig,
    on_progress: Callable[[GenerateCounts], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> GenerateCounts:
    """Append generated conversations to ``config.out`` until it holds ``config.n``; return the counts.

    Resumes what is in the file. Stops early (``counts.done`` False) after ``max_items`` tries. Raises
    :class:`GenerateError` when the options are wrong, the file has problems or the endpoint refuses.
    """
    topics = config.topics if config.topics is not None else default_topics()
    names = config.names if config.names is not None else default_names()
    template = config.prompt_template if config.prompt_template is not None else default_prompt_template()
    example = config.example if config.example is not None else default_example()
    _check_config(config, topics, names)
    build_prompt(template, topics[0], names[:2], config.min_turns, example)  # a bad template fails here

    existing, dropped = prepare_output(config.out)
    counts = GenerateCounts(out=config.out, target=config.n, existing=len(existing), dropped_line=dropped)
    if dropped is not None and log:
        shown = dropped if len(dropped) <= 80 else dropped[:77] + "..."
        log(
            f"{config.out}: the last line was cut off ({len(dropped)} characters, a killed run?) and has been "
            f"removed: {shown}"
        )
    missing = config.n - len(existing)
    counts.max_items = config.max_items if config.max_items is not None else 2 * max(missing, 0) + 10
    if on_progress:
        on_progress(counts)
    if missing <= 0:
        return counts

    index = DuplicateIndex(existing, threshold=config.dedup_threshold)
    k = next_index(existing, config.seed)
    client = make_client(config)
    inflight: dict[Future, Item] = {}
    pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="chimein-generate")
    try:
        with open(config.out, "a", encoding="utf-8") as f:
            while True:
                while (
                    len(inflight) < config.concurrency
                    and counts.ok + len(inflight) < missing
                    and counts.tried + len(inflight) < counts.max_items
                ):
                    item = plan_item(
                        k,
                        config.seed,
                        topics,
                        names,
                        config.min_turns,
                        config.max_turns,
                        config.min_users,
                        config.max_users,
                    )
                    k += 1
                    inflight[pool.submit(run_item, client, config, item, template, example)] = item
                if not inflight:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    del inflight[future]
                    try:
                        outcome = future.result()
                    except GenerateError as e:
                        e.counts = counts
                        raise
                    counts.tried += 1
                    counts.retried += outcome.retries
                    counts.reasons.update(outcome.reasons)
                    conv = outcome.conversation
                    if conv is None:
                        counts.rejected += 1
                    elif index.is_duplicate(conv):
                        counts.duplicate += 1
                    else:
                        f.write(conversation_to_line(conv) + "\n")
                        f.flush()
                        index.add(conv)
                        counts.ok += 1
                    if on_progress:
                        on_progress(counts)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return counts
