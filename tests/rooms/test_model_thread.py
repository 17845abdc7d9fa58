"""The model thread every room and API client shares: callers take turns, addressed calls first, a bound."""

from __future__ import annotations

import threading

import pytest

from chimein.rooms import ModelBusy, ModelThread, lend_idle_cores


def test_callers_take_turns_on_the_model_thread() -> None:
    thread, order, gate = ModelThread(), [], threading.Event()
    try:
        thread.submit_as("api:flood", gate.wait, 10)  # holds the thread while the queue fills
        flood = [thread.submit_as("api:flood", order.append, f"flood{i}") for i in range(10)]
        room = thread.submit_as("room:r", order.append, "room")
        gate.set()
        room.result(5)
        [f.result(5) for f in flood]
        assert order.index("room") == 0  # right after the flood call that was running, not after ten more
    finally:
        thread.shutdown()


def test_a_failing_call_reaches_its_caller_and_the_thread_goes_on() -> None:
    thread = ModelThread()
    try:
        with pytest.raises(ZeroDivisionError):
            thread.submit_as("a", lambda: 1 / 0).result(5)
        assert thread.submit_as("b", lambda: 42).result(5) == 42
    finally:
        thread.shutdown()
    with pytest.raises(RuntimeError):
        thread.submit(print)


def test_urgent_calls_go_first_and_urgent_callers_take_turns() -> None:
    thread, order, gate = ModelThread(), [], threading.Event()
    try:
        thread.submit_as("room:busy", gate.wait, 10)
        chatter = [thread.submit_as(f"room:{i}", order.append, f"chatter{i}") for i in range(5)]
        asked = [thread.submit_as("room:q", order.append, f"q{i}", urgent=True) for i in range(2)]
        other = thread.submit_as("room:r", order.append, "r", urgent=True)
        gate.set()
        [f.result(5) for f in [*chatter, *asked, other]]
        assert order == ["q0", "r", "q1", *(f"chatter{i}" for i in range(5))]
    finally:
        thread.shutdown()


def test_the_queue_is_bounded() -> None:
    thread, gate = ModelThread(max_pending=3), threading.Event()
    try:
        running = thread.submit_as("a", gate.wait, 10)
        while not running.running():  # the running call no longer counts
            pass
        waiting = [thread.submit_as(f"room:{i}", int, i) for i in range(3)]
        assert thread.pending() == {"room:0": 1, "room:1": 1, "room:2": 1}
        with pytest.raises(ModelBusy, match="3 calls waiting"):
            thread.submit_as("room:3", int, 3, urgent=True)
        gate.set()
        assert [f.result(5) for f in waiting] == [0, 1, 2]
        assert thread.submit_as("room:3", int, 3).result(5) == 3  # room again once the queue drains
    finally:
        thread.shutdown()


def test_a_caller_waiting_behind_others_can_be_promoted() -> None:
    thread, order, gate = ModelThread(), [], threading.Event()
    try:
        thread.submit_as("room:busy", gate.wait, 10)
        chatter = [thread.submit_as(f"room:{i}", order.append, f"chatter{i}") for i in range(4)]
        assert thread.promote("room:3") and not thread.promote("room:none")
        gate.set()
        [f.result(5) for f in chatter]
        assert order == ["chatter3", "chatter0", "chatter1", "chatter2"]
    finally:
        thread.shutdown()


def test_a_replier_is_lent_the_decisions_core_only_while_the_model_thread_is_idle() -> None:
    import time

    class Replier:
        spare_threads = None

    thread, replier, gate = ModelThread(), Replier(), threading.Event()
    lend_idle_cores(replier, thread)
    try:
        assert thread.idle and replier.spare_threads() == 1
        running = thread.submit_as("room:r", gate.wait, 10)
        queued = thread.submit_as("room:s", lambda: None)
        deadline = time.monotonic() + 5
        while not running.running():
            assert time.monotonic() < deadline
        assert not thread.idle and replier.spare_threads() == 0  # a decision runs: the core is its own
        gate.set()
        running.result(5), queued.result(5)
        while not thread.idle:
            assert time.monotonic() < deadline
        assert replier.spare_threads() == 1
    finally:
        gate.set()
        thread.shutdown()


def test_a_busy_model_thread_keeps_its_core_even_between_calls() -> None:
    """The core is lent only while the model thread was busy less than ``below`` of the last seconds: between
    two calls of a busy server it is idle for a moment, and a replier on its core would slow the next decision."""
    import time

    class Replier:
        spare_threads = None

    thread, replier = ModelThread(), Replier()
    lend_idle_cores(replier, thread, below=0.02)
    try:
        assert replier.spare_threads() == 1  # nothing ran yet
        thread.submit_as("room:r", time.sleep, 0.3).result(5)
        deadline = time.monotonic() + 5
        while not thread.idle:
            assert time.monotonic() < deadline
        assert 0.02 < thread.busy_share() < 0.2 and replier.spare_threads() == 0
    finally:
        thread.shutdown()
