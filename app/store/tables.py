"""The database schema as SQLModel tables.

Rows are storage shapes only: the web and API layers speak in
`app.domain.figalization.Figalization`, and the mapping lives in `history.py`.
Migrations in `migrations/` must match these definitions (a test compares them),
and the PostgreSQL batch statement is built from them (`postgres_batch.py`).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

COUNTER_SLOTS = 16  # spreads concurrent increments over rows; total = sum of 16 rows

# BIGINT on PostgreSQL, but INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class FigalizationRow(SQLModel, table=True):
    __tablename__ = "figalization"
    __table_args__ = (
        sa.Index("ix_figalization_result_id", "result", "id"),
        sa.Index("ix_figalization_image_status_queued", "image_status", "image_queued_at"),
    )

    id: str = Field(primary_key=True, max_length=26)
    phrase: str = Field(sa_type=sa.Text, nullable=False)
    scheme: str = Field(max_length=32, nullable=False)
    result: str = Field(sa_type=sa.Text, nullable=False)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    image_status: str = Field(default="pending", max_length=16, nullable=False)
    image_key: str | None = Field(default=None, max_length=255)
    # When a job for this picture was last queued: the reconciler re-queues
    # pictures still pending long after this, so a lost job never loses a picture.
    image_queued_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class CounterSlotRow(SQLModel, table=True):
    """One of COUNTER_SLOTS partial counts of successful figalizations (O(1) total)."""

    __tablename__ = "figalization_counter"

    slot: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    value: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)


class OutboxRow(SQLModel, table=True):
    """An image job written with its figalization, waiting to be published."""

    __tablename__ = "image_job_outbox"
    # The reconciler asks, per stale picture, whether its job still waits here: without an
    # index each asking rescans the table, which the relay's deletes keep full of dead rows.
    __table_args__ = (sa.Index("ix_image_job_outbox_figalization_id", "figalization_id"),)

    seq: int | None = Field(default=None, primary_key=True, sa_type=_BigId)
    figalization_id: str = Field(max_length=26, nullable=False)
    payload: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    request_id: str = Field(
        default="", max_length=64, nullable=False, sa_column_kwargs={"server_default": ""}
    )
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


figalization_table: sa.Table = FigalizationRow.__table__  # type: ignore[attr-defined]
counter_table: sa.Table = CounterSlotRow.__table__  # type: ignore[attr-defined]
outbox_table: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
