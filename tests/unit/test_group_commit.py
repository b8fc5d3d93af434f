"""Group commit: concurrent writes share one batch; failures and cancellations stay contained."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from app.store.group_commit import RESUME_AT_ONCE, GroupCommit, Unconfirmed


class SlowWriter:
    """Records each batch; the first write waits until released, so others queue up."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, batch: list[int]) -> None:
        if not self.batches:
            await self.release.wait()
        self.batches.append(batch)
        if self.fail_with is not None:
            raise self.fail_with


async def test_writes_that_arrive_during_a_commit_share_the_next_batch() -> None:
    writer = SlowWriter()
    commit = GroupCommit(writer)
    first = asyncio.create_task(commit.submit(0))
    await asyncio.sleep(0)
    others = [asyncio.create_task(commit.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    writer.release.set()
    await asyncio.gather(first, *others)
    assert writer.batches == [[0], [1, 2, 3, 4, 5]]
    await commit.close()


async def test_every_waiter_of_a_failed_batch_learns_why() -> None:
    writer = SlowWriter()
    writer.release.set()
    writer.fail_with = ConnectionError("database away")
    commit = GroupCommit(writer)
    results = await asyncio.gather(*(commit.submit(n) for n in range(3)), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError] * 3
    await commit.close()


async def test_a_cancelled_waiter_does_not_cancel_the_others_write() -> None:
    writer = SlowWriter()
    commit = GroupCommit(writer)
    impatient = asyncio.create_task(commit.submit(0))
    patient = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)
    impatient.cancel()
    writer.release.set()
    await patient
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert writer.batches == [[0, 1]]  # accepted before the cancel: still written
    await commit.close()


async def test_close_writes_what_is_queued() -> None:
    writer = SlowWriter()
    commit = GroupCommit(writer)
    waiting = [asyncio.create_task(commit.submit(n)) for n in range(3)]
    await asyncio.sleep(0)
    writer.release.set()
    await commit.close()
    assert sum(len(batch) for batch in writer.batches) == 3
    await asyncio.gather(*waiting)


async def test_a_big_batch_resumes_its_waiters_a_few_per_loop_turn() -> None:
    writer = SlowWriter()
    writer.release.set()
    commit = GroupCommit(writer)
    turn = 0
    resumed_in_turn: list[int] = []

    async def ticker() -> None:
        nonlocal turn
        while True:
            await asyncio.sleep(0)
            turn += 1

    async def waiter(n: int) -> None:
        await commit.submit(n)
        resumed_in_turn.append(turn)

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(waiter(n) for n in range(3 * RESUME_AT_ONCE)))
    ticking.cancel()
    per_turn = Counter(resumed_in_turn)
    assert len(per_turn) >= 3  # the loop turned (and polled its sockets) in between
    assert max(per_turn.values()) <= RESUME_AT_ONCE
    await commit.close()


async def test_a_waiter_past_its_time_is_told_whether_its_item_may_be_written() -> None:
    writer = SlowWriter()  # the first batch stalls, as on a link that drops packets
    commit = GroupCommit(writer)
    on_the_wire = asyncio.create_task(commit.submit(0, within=0.05))
    await asyncio.sleep(0)
    queued = asyncio.create_task(commit.submit(1, within=0.05))
    patient = asyncio.create_task(commit.submit(2))
    results = await asyncio.gather(on_the_wire, queued, return_exceptions=True)
    assert [type(result) for result in results] == [Unconfirmed, Unconfirmed]
    assert [result.maybe_written for result in results if isinstance(result, Unconfirmed)] == [
        True,
        False,
    ]
    writer.release.set()
    await patient
    assert writer.batches == [[0], [2]]  # the withdrawn item was never written
    await commit.close()


async def test_deadlines_are_kept_for_every_later_batch_and_not_before_them() -> None:
    batches: list[list[int]] = []
    stall = asyncio.Event()  # set: writes are quick; clear: a write never ends
    stall.set()

    async def write(batch: list[int]) -> None:
        batches.append(batch)
        await stall.wait()

    commit = GroupCommit(write)
    for n in range(3):  # quick writes: nobody gives up, the timer re-arms for each
        await commit.submit(n, within=0.05)
    await asyncio.sleep(0.1)  # past the first deadlines: nothing fires late at anyone
    stall.clear()
    started = asyncio.get_running_loop().time()
    with pytest.raises(Unconfirmed):
        await commit.submit(3, within=0.05)
    assert asyncio.get_running_loop().time() - started < 1.0
    stall.set()
    await commit.close()
    assert batches == [[0], [1], [2], [3]]


async def test_gathering_turns_join_what_busy_tasks_submit_and_cost_an_idle_loop_nothing() -> None:
    batches: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        batches.append(batch)

    async def submit_after(turns: int, item: int, commit: GroupCommit[int]) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)  # a task busy for a few turns (a card being drawn, say)
        await commit.submit(item)

    for gather, expected in ((0, [[0], [1], [2]]), (3, [[0, 1, 2]])):
        batches.clear()
        commit = GroupCommit(write, gather_turns=gather)
        await asyncio.gather(*(submit_after(turns, turns, commit) for turns in range(3)))
        assert batches == expected, f"gather_turns={gather}"
        await commit.close()

    batches.clear()
    commit = GroupCommit(write, gather_turns=3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(commit.submit(7), timeout=1.0)  # alone: written after 3 free turns
    assert batches == [[7]]
    assert loop.time() - started < 0.05
    await commit.close()
