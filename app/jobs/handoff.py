"""What the outbox relay holds in memory: one state, changed only by named transitions.

The writer hands over each committed batch (`take`). The relay publishes what
is held (`publishing`, then `published` or `publish_failed`), deletes the
rows of what went out (`deleting`, `deleted`), and sweeps the outbox for the
rows nobody holds (`sweep_scope`, `swept`). A row the relay cannot hold — it
is not holding, or the batch would overflow `max_held` — is let go: the
sweep's scope then covers every row up to its `seq`.

The rule that keeps the two ways from racing for a row, checked in `_check`
after every transition that could break it:

- a row is held or sweepable, never both: every held `seq` is above
  `let_go_up_to` (so letting rows go lets go of everything held too);
- after a failed publish the relay holds nothing, until a sweep has found
  every row it let go (`swept` with nothing let go meanwhile);
- one publish at a time, and a sweep never starts while a publish is in
  flight or a published row waits for its delete: such rows are still in the
  table, and the sweep would send them again.

It holds no I/O and no clock: the relay passes `now` in, so the rule is
unit-tested directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.domain.image_job import JobMessage
from app.store.outbox import SweepScope
from app.store.writes import Committed


class HandoffRuleBroken(RuntimeError):
    """A transition was called out of order, or left the state inconsistent: a bug."""


class Handoff:
    def __init__(self, *, started_at: datetime, grace: timedelta, max_held: int) -> None:
        self._started_at = started_at  # older rows were never handed to this process
        self._grace = grace  # a handed-over row older than this is nobody's any more
        self._max_held = max_held
        # Batches come from the writer and the reconciler; each batch is held whole
        # or let go whole, and only when all its seqs are above `_let_go_up_to`.
        self._held_seqs: list[int] = []
        self._held_jobs: list[JobMessage] = []
        self._in_flight: Committed | None = None
        self._published: list[int] = []  # seqs whose jobs went out, rows not deleted yet
        self._let_go_up_to = 0  # rows up to this seq are not held here: the sweep's
        self._holding = True

    @property
    def holding(self) -> bool:
        """False after a failed publish, until a sweep has found everything let go."""
        return self._holding

    @property
    def awaits_delete(self) -> bool:
        return bool(self._published)

    def take(self, committed: Committed) -> None:
        """A committed batch from the writer: hold it to publish from memory, or let it go."""
        seqs, jobs = committed
        if not seqs:
            return
        if (
            self._holding
            and len(self._held_jobs) + len(jobs) <= self._max_held
            and seqs[0] > self._let_go_up_to
        ):
            self._held_seqs.extend(seqs)
            self._held_jobs.extend(jobs)
        else:
            self._let_go(seqs)
        self._check()

    def publishing(self) -> Committed | None:
        """What is held, to publish now (it is in flight until `published`/`publish_failed`)."""
        if self._in_flight is not None:
            raise HandoffRuleBroken("a publish is already in flight")
        if not self._held_jobs:
            return None
        self._in_flight = Committed(self._held_seqs, self._held_jobs)
        self._held_seqs, self._held_jobs = [], []
        return self._in_flight

    def published(self) -> None:
        """The queue accepted the jobs in flight: only their rows are left to delete."""
        self._published.extend(self._landed().seqs)

    def publish_failed(self) -> None:
        """The rows of the jobs in flight stay: stop holding, and let the sweep have those
        and everything held since."""
        seqs = self._landed().seqs
        self._holding = False
        self._let_go(seqs)
        self._check()

    def deleting(self) -> list[int]:
        """The rows of published jobs, to delete now; they stay here until `deleted`."""
        return self._published[:]

    def deleted(self, seqs: list[int]) -> None:
        """Those rows are gone (`seqs` as `deleting` gave them)."""
        if self._published[: len(seqs)] != seqs:
            raise HandoffRuleBroken("deleted rows that were not the first published ones")
        del self._published[: len(seqs)]

    def sweep_scope(self, now: datetime) -> SweepScope:
        """The rows a sweep starting `now` may take: the let-go ones, and all that are older
        than the grace or this process (whoever held those has published them or died)."""
        if self._in_flight is not None or self._published:
            raise HandoffRuleBroken("a sweep would send rows published from memory again")
        return SweepScope(max(now - self._grace, self._started_at), self._let_go_up_to)

    def swept(self, scope: SweepScope) -> None:
        """The outbox had no more rows in `scope`. If nothing was let go since the scope was
        taken, every let-go row is gone: hold hand-offs again."""
        if scope.let_go_up_to == self._let_go_up_to:
            self._let_go_up_to = 0
            self._holding = True
        self._check()

    def _let_go(self, seqs: list[int]) -> None:
        """Leave these rows, and every row held now, to the sweep: "up to a seq" covers the
        held ones below it, so keeping them would let the sweep send them too."""
        self._let_go_up_to = max(self._let_go_up_to, *seqs, *self._held_seqs)
        self._held_seqs, self._held_jobs = [], []

    def _landed(self) -> Committed:
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            raise HandoffRuleBroken("no publish is in flight")
        return batch

    def _check(self) -> None:
        if len(self._held_seqs) != len(self._held_jobs):
            raise HandoffRuleBroken("held seqs and jobs differ in number")
        if self._held_seqs and not self._holding:
            raise HandoffRuleBroken("rows held while not holding")
        if self._held_seqs and self._held_seqs[0] <= self._let_go_up_to:
            raise HandoffRuleBroken("a held row is also let go to the sweep")
