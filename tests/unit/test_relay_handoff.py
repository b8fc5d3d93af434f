"""The relay's memory (`Handoff`): each transition, and the rule that a row is held or
sweepable, never both. No database: the relay's loop around it is tested in
tests/integration/test_outbox_relay.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.image_job import JobMessage
from app.jobs.handoff import Handoff, HandoffRuleBroken
from app.store.writes import Committed

STARTED = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
GRACE = timedelta(seconds=30)


def handoff(max_held: int = 100) -> Handoff:
    return Handoff(started_at=STARTED, grace=GRACE, max_held=max_held)


def batch(*seqs: int) -> Committed:
    return Committed(list(seqs), [JobMessage(f"id-{seq}", b"{}", f"request-{seq}") for seq in seqs])


def keys(committed: Committed | None) -> list[str]:
    assert committed is not None
    return [job.key for job in committed.jobs]


def test_taken_batches_are_published_together_in_commit_order() -> None:
    state = handoff()
    state.take(batch(1, 2))
    state.take(batch(3))
    in_flight = state.publishing()
    assert in_flight is not None
    assert (in_flight.seqs, keys(in_flight)) == ([1, 2, 3], ["id-1", "id-2", "id-3"])


def test_nothing_held_means_nothing_to_publish() -> None:
    assert handoff().publishing() is None


def test_one_publish_at_a_time() -> None:
    state = handoff()
    state.take(batch(1))
    state.publishing()
    with pytest.raises(HandoffRuleBroken):
        state.publishing()


def test_batches_taken_while_publishing_wait_for_the_next_publish() -> None:
    state = handoff()
    state.take(batch(1))
    state.publishing()
    state.take(batch(2))
    state.published()
    assert keys(state.publishing()) == ["id-2"]


def test_published_rows_are_deleted_once() -> None:
    state = handoff()
    state.take(batch(1, 2))
    state.publishing()
    state.published()
    assert state.awaits_delete
    seqs = state.deleting()
    assert seqs == [1, 2]
    state.deleted(seqs)
    assert not state.awaits_delete
    assert state.deleting() == []


def test_rows_whose_delete_failed_are_deleted_with_the_next_ones() -> None:
    state = handoff()
    state.take(batch(1))
    state.publishing()
    state.published()
    state.deleting()  # ...and the delete fails: `deleted` is never called
    state.take(batch(2))
    state.publishing()
    state.published()
    assert state.deleting() == [1, 2]


def test_a_young_row_is_swept_only_when_let_go() -> None:
    state = handoff()
    now = STARTED + timedelta(minutes=5)
    scope = state.sweep_scope(now)
    assert (scope.written_before, scope.let_go_up_to) == (now - GRACE, 0)


def test_rows_of_the_last_run_are_swept_however_young() -> None:
    scope = handoff().sweep_scope(STARTED + timedelta(seconds=1))
    assert scope.written_before == STARTED


def test_a_failed_publish_lets_its_rows_and_all_held_since_go_to_the_sweep() -> None:
    state = handoff()
    state.take(batch(1, 2))
    state.publishing()
    state.take(batch(3))  # arrived while the broker was failing
    state.publish_failed()
    assert not state.holding
    assert state.publishing() is None
    assert state.sweep_scope(STARTED).let_go_up_to == 3


def test_while_not_holding_every_batch_is_let_go() -> None:
    state = handoff()
    state.take(batch(1))
    state.publishing()
    state.publish_failed()
    state.take(batch(2, 3))
    assert state.publishing() is None
    assert state.sweep_scope(STARTED).let_go_up_to == 3


def test_holding_resumes_after_a_sweep_that_saw_everything_let_go() -> None:
    state = handoff()
    state.take(batch(1))
    state.publishing()
    state.publish_failed()
    scope = state.sweep_scope(STARTED)
    state.swept(scope)
    assert state.holding
    assert state.sweep_scope(STARTED).let_go_up_to == 0
    state.take(batch(2))
    assert keys(state.publishing()) == ["id-2"]


def test_a_sweep_that_missed_rows_let_go_meanwhile_keeps_the_relay_off_memory() -> None:
    state = handoff()
    state.take(batch(1))
    state.publishing()
    state.publish_failed()
    scope = state.sweep_scope(STARTED)
    state.take(batch(2))  # committed during the sweep, after its rows were read
    state.swept(scope)
    assert not state.holding
    assert state.sweep_scope(STARTED).let_go_up_to == 2


def test_a_batch_beyond_the_memory_bound_is_let_go_with_everything_held() -> None:
    state = handoff(max_held=2)
    state.take(batch(1, 2))
    state.take(batch(3))  # would be 3 held: the sweep takes 1..3
    assert state.publishing() is None  # 1 and 2 are not held as well: never both
    assert state.sweep_scope(STARTED).let_go_up_to == 3
    assert state.holding  # memory is full, not broken: the next batch is held again
    state.take(batch(4))
    assert keys(state.publishing()) == ["id-4"]


def test_a_sweep_never_starts_while_a_publish_is_in_flight() -> None:
    state = handoff()
    state.take(batch(1))
    state.publishing()
    with pytest.raises(HandoffRuleBroken):
        state.sweep_scope(STARTED)


def test_a_sweep_never_starts_while_published_rows_wait_for_their_delete() -> None:
    state = handoff()
    state.take(batch(1))
    state.publishing()
    state.published()
    with pytest.raises(HandoffRuleBroken):
        state.sweep_scope(STARTED)
    state.deleted(state.deleting())
    state.sweep_scope(STARTED)


def test_publish_outcomes_need_a_publish_in_flight() -> None:
    state = handoff()
    with pytest.raises(HandoffRuleBroken):
        state.published()
    with pytest.raises(HandoffRuleBroken):
        state.publish_failed()


def test_an_empty_batch_changes_nothing() -> None:
    state = handoff()
    state.take(Committed([], []))
    assert state.publishing() is None
    assert state.sweep_scope(STARTED).let_go_up_to == 0
