"""`chimein decide`: one JSON line in, one decision out, sessions reused across a growing conversation."""

import io
import json

from chimein.interfaces.decider import JsonLinesDecider


def test_json_lines_decider_answers_each_line_and_reports_bad_ones(tiny_backend):
    conv = [{"role": "user", "name": "Ana", "content": "hello all"}]
    longer = conv + [{"role": "user", "name": "Ben", "content": "hi ana"}]
    inp = io.StringIO(
        "\n".join(
            [
                json.dumps({"messages": conv}),
                "{broken",
                json.dumps({"messages": [{"role": "user", "content": "x"}]}),
                json.dumps({"messages": longer}),
            ]
        )
        + "\n"
    )
    out = io.StringIO()
    decider = JsonLinesDecider(tiny_backend, threshold=1.1)
    decider.run(inp, out)
    lines = [json.loads(l) for l in out.getvalue().splitlines()]
    assert len(lines) == 4
    assert lines[0]["speak"] is False and 0 <= lines[0]["p_speak"] <= 1
    assert "line 2: json" in lines[1]["error"]
    assert "line 3: messages[0].name" in lines[2]["error"]
    assert len(decider.sessions) == 1  # the growing conversation reused the first request's session


def test_a_history_cut_from_a_longer_chat_may_start_with_the_assistant():
    from tests.helpers import ScriptedBackend

    backend = ScriptedBackend()
    window = [
        {"role": "assistant", "content": "It is in Lima."},
        {"role": "user", "name": "Ana", "content": "thanks! and the bot, what's the capital of Chile?"},
    ]
    malformed = [
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "name": "Ana", "content": "hi"},
    ]
    lines = [
        json.dumps({"messages": window}),
        json.dumps({"messages": malformed}),
        json.dumps({"messages": [{"role": "assistant", "content": "only me"}]}),
    ]
    out = io.StringIO()
    JsonLinesDecider(backend).run(io.StringIO("\n".join(lines) + "\n"), out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0]["speak"] is True and "error" not in answers[0]
    assert backend.calls[0][0] == [
        "It is in Lima.",
        window[1]["content"],
    ]  # the assistant's message was read, not dropped
    assert "messages[1].role: two assistant messages in a row" in answers[1]["error"]
    assert "the last message must be a user message" in answers[2]["error"]
