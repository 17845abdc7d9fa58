import json

from chimein.data import (
    Conversation,
    Message,
    compute_stats,
    load_conversations,
    read_conversations,
    write_conversations,
    DataError,
)
from tests.helpers import REPO, write_jsonl

GOOD = [
    {"role": "user", "name": "Ana", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "name": "Ben", "content": "yo"},
]


def test_reads_arrays_and_objects_with_metadata(tmp_path):
    f = write_jsonl(
        tmp_path / "a.jsonl", [GOOD, {"id": "x", "topic": "tea", "category": "chitchat", "messages": GOOD}]
    )
    convs = load_conversations(f)
    assert [c.user_turns for c in convs] == [2, 2]
    assert convs[1].meta["topic"] == "tea"
    assert convs[0].decisions() == [(0, Message("assistant", "hello")), (2, None)]


def test_every_problem_is_reported_with_file_line_and_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps(GOOD),
                "{not json",
                json.dumps([{"role": "assistant", "content": "first"}]),
                json.dumps([{"role": "user", "content": "no name"}]),
                json.dumps(
                    [
                        {"role": "user", "name": "A", "content": "x"},
                        {"role": "assistant", "content": "a"},
                        {"role": "assistant", "content": "b"},
                    ]
                ),
                json.dumps([{"role": "user", "name": "A", "content": "   "}]),
                json.dumps([{"role": "bot", "content": "x"}]),
                json.dumps({"topic": "no messages"}),
                json.dumps("a string"),
            ]
        )
        + "\n"
    )
    convs, problems = read_conversations(f)
    assert len(convs) == 1
    text = "\n".join(str(p) for p in problems)
    assert f"{f}:2: json: invalid JSON" in text
    assert f"{f}:3: conversation[0].role: a conversation must start with a user message" in text
    assert f"{f}:4: conversation[0].name: a user message needs a non-empty name" in text
    assert f"{f}:5: conversation[2].role: two assistant messages in a row" in text
    assert f"{f}:6: conversation[0].content: must be a non-empty string" in text
    assert f"{f}:7: conversation[0].role: must be 'user' or 'assistant'" in text
    assert f"{f}:8: messages: an object line needs a 'messages' list" in text
    assert f"{f}:9: conversation: must be a list of messages" in text


def test_load_raises_with_all_problems(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text("[]\n{}\n")
    try:
        load_conversations(f)
    except DataError as e:
        assert len(e.problems) == 2
    else:
        raise AssertionError("DataError expected")


def test_write_round_trip_keeps_metadata(tmp_path):
    convs = [
        Conversation([Message("user", "hi", "Ana")], {"id": "1", "topic": "t"}),
        Conversation([Message("user", "yo", "Ben")]),
    ]
    write_conversations(tmp_path / "o.jsonl", convs)
    back = load_conversations(tmp_path / "o.jsonl")
    assert back[0].meta["id"] == "1" and back[0].messages == convs[0].messages
    assert json.loads((tmp_path / "o.jsonl").read_text().splitlines()[1])[0]["name"] == "Ben"


def test_stats(sample_conversations):
    s = compute_stats(sample_conversations)
    assert (s.conversations, s.user_turns, s.assistant_turns) == (2, 7, 2)
    assert abs(s.speaking_rate - 2 / 7) < 1e-9
    assert s.categories == {"addressed": 1, "stuck": 1}


def test_shipped_dataset_is_valid_and_split_apart():
    import subprocess
    import sys
    from chimein.dedup import fingerprint

    data = REPO / "data"
    names = ("train.jsonl", "valid.jsonl", "adversarial.jsonl", "heldout-writers.jsonl", "heldout-real.jsonl")
    train, valid, adv, held_writers, held_real = (load_conversations(data / f) for f in names)
    assert len(train) >= 2000 and len(valid) >= 60 and len(held_writers) >= 60 and len(held_real) >= 100
    # whole writers and whole real sources are held out: none of their conversations is trained on
    assert not {c.meta["writer"] for c in held_writers} & {c.meta.get("writer") for c in train}
    assert not {c.meta["corpus"] for c in held_real} & {c.meta.get("corpus") for c in train}
    # the old same-writer validation keeps its held-out topics
    assert not {c.meta["topic"] for c in valid} & {
        c.meta.get("topic") for c in train if c.meta.get("writer") == "seed"
    }
    # real chat: licensed, cut on record, all silence, and never from the sources reserved for evaluation
    real = [c for c in train + held_real if c.meta.get("corpus")]
    assert len([c for c in train if c.meta.get("corpus")]) >= 1500
    assert all(c.meta.get("licence") and c.meta.get("cut") and c.assistant_turns == 0 for c in real)
    assert not any(w in str(c.meta).lower() for c in real for w in ("ubuntu", "friends"))
    fps = [fingerprint(c) for c in train + valid + adv + held_writers + held_real]
    assert len(fps) == len(set(fps))
    # the committed splits are exactly what data/prepare.py builds from the sources
    subprocess.run([sys.executable, str(data / "prepare.py"), "--check"], check=True)


def test_only_a_window_of_a_longer_chat_may_start_with_the_assistant():
    from chimein.data import parse_messages

    window = [{"role": "assistant", "content": "It is in Lima."}, {"role": "user", "name": "Ana", "content": "thanks"}]
    messages, problems = parse_messages(window, may_start_with_assistant=True)
    assert problems == [] and [m.role for m in messages] == ["assistant", "user"]
    assert parse_messages(window)[1] == [("messages[0].role", "a conversation must start with a user message")]


CONVERTERS = {
    "irc_and_meetings.py": {"irc-linux", "irc-mediawiki", "irc-rust", "irc-stripe", "ami", "icsi"},
    "gitter.py": {"gitter_livechat"},
}


def test_each_real_source_file_has_one_converter_that_takes_the_mirrors_as_an_argument(tmp_path):
    import subprocess
    import sys

    folder = REPO / "data" / "real" / "convert"
    assert set(CONVERTERS) == {p.name for p in folder.glob("*.py")}
    written = [corpus for corpora in CONVERTERS.values() for corpus in corpora]
    assert sorted(written) == sorted(p.stem for p in (REPO / "data" / "real").glob("*.jsonl"))  # each file, once
    for script, corpora in CONVERTERS.items():
        source = (folder / script).read_text()
        assert "/work/" not in source and all(f'"{c}' in source for c in corpora)
        run = subprocess.run(
            [sys.executable, str(folder / script), str(tmp_path / "no-mirrors"), "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode != 0 and "no-mirrors" in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert not list(tmp_path.glob("*.jsonl"))
