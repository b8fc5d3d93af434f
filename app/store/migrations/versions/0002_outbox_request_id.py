"""The request id travels with each outbox row, to become a Kafka header.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("image_job_outbox") as table:
        table.add_column(
            sa.Column(
                "request_id",
                sqlmodel.AutoString(length=64),
                nullable=False,
                server_default="",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("image_job_outbox") as table:
        table.drop_column("request_id")
