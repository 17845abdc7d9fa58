"""The line in front of a replier that writes one reply at a time: questions first, giving up, cancellation."""

from __future__ import annotations

import asyncio
import time

from chimein.rooms.replier_line import ReplierLine


async def _turn(line: ReplierLine, name: str, order: list[str], urgent: bool, **wait: object) -> bool:
    if not await line.acquire(urgent, **wait):
        order.append(f"{name} gave up")
        return False
    order.append(name)
    await asyncio.sleep(0.01)
    line.release()
    return True


def test_questions_go_first_then_arrival_order_and_a_waiter_may_give_up() -> None:
    async def scenario() -> list[str]:
        line, order = ReplierLine(1), []
        assert await line.acquire(False)  # free: taken at once
        tasks = [
            asyncio.create_task(_turn(line, "volunteer 1", order, False)),
            asyncio.create_task(_turn(line, "volunteer 2", order, False)),
            asyncio.create_task(_turn(line, "late", order, False, timeout=0.05)),
            asyncio.create_task(_turn(line, "question", order, True)),
        ]
        await asyncio.sleep(0.1)  # "late" gives up while the line is held
        line.release()
        await asyncio.gather(*tasks)
        assert line.writing == 0 and line.waiting() == 0
        return order

    assert asyncio.run(scenario()) == ["late gave up", "question", "volunteer 1", "volunteer 2"]


def test_an_event_ends_the_wait_and_a_cancelled_waiter_passes_its_turn_on() -> None:
    async def scenario() -> list[str]:
        line, order, question = ReplierLine(1), [], asyncio.Event()
        assert await line.acquire(True)
        skipped = asyncio.create_task(_turn(line, "volunteer", order, False, unless=question))
        cancelled = asyncio.create_task(line.acquire(True))
        after = asyncio.create_task(_turn(line, "next", order, False))
        await asyncio.sleep(0.01)
        question.set()  # the volunteered reply gives way
        await asyncio.sleep(0.01)
        line.release()  # handed to the cancelled waiter, which must pass it on
        cancelled.cancel()
        await asyncio.gather(skipped, after, return_exceptions=True)
        return order

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == ["volunteer gave up", "next"]


def test_a_replier_without_a_limit_never_waits() -> None:
    async def scenario() -> int:
        line = ReplierLine(None)
        assert all([await line.acquire(False) for _ in range(5)])
        return line.writing

    assert asyncio.run(scenario()) == 5


def test_a_caller_is_told_at_once_when_the_wait_ahead_is_longer_than_it_would_wait() -> None:
    """The line times its turns; a caller that would wait longer than its timeout behind the callers ahead of it
    is refused at once, without joining the line. One with a longer timeout joins and gets its turn."""

    async def scenario() -> None:
        line = ReplierLine(1)
        assert line.expected_wait(True) == 0.0  # free
        assert await line.acquire(True)
        await asyncio.sleep(0.2)
        line.release()  # the line has seen one turn of about 0.2 s
        assert line.write_s is not None and 0.15 < line.write_s < 1.0
        assert await line.acquire(True)  # held again
        ahead = [asyncio.create_task(line.acquire(True)) for _ in range(3)]
        await asyncio.sleep(0)
        assert line.expected_wait(True) > 3 * 0.15
        start = time.monotonic()
        assert not await line.acquire(True, timeout=0.3)
        assert time.monotonic() - start < 0.1 and line.waiting() == 3  # refused without waiting or joining
        patient = asyncio.create_task(line.acquire(False, timeout=30))
        for _ in range(4):  # the holder and the three ahead each take their turn and end it
            line.release()
            await asyncio.sleep(0)
        assert await patient and all(t.result() for t in ahead)
        line.release()
        assert line.writing == 0

    asyncio.run(asyncio.wait_for(scenario(), 10))
