"""Figalizations, the sharded counter and the image job outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

COUNTER_SLOTS = 16


def upgrade() -> None:
    op.create_table(
        "figalization",
        sa.Column("id", sqlmodel.AutoString(length=26), primary_key=True),
        sa.Column("phrase", sa.Text(), nullable=False),
        sa.Column("scheme", sqlmodel.AutoString(length=32), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("image_status", sqlmodel.AutoString(length=16), nullable=False),
        sa.Column("image_key", sqlmodel.AutoString(length=255), nullable=True),
        sa.Column("image_queued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_figalization_result_id", "figalization", ["result", "id"])
    op.create_index(
        "ix_figalization_image_status_queued", "figalization", ["image_status", "image_queued_at"]
    )
    counter = op.create_table(
        "figalization_counter",
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(counter, [{"slot": slot, "value": 0} for slot in range(COUNTER_SLOTS)])
    op.create_table(
        "image_job_outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("figalization_id", sqlmodel.AutoString(length=26), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("image_job_outbox")
    op.drop_table("figalization_counter")
    op.drop_index("ix_figalization_image_status_queued", table_name="figalization")
    op.drop_index("ix_figalization_result_id", table_name="figalization")
    op.drop_table("figalization")
