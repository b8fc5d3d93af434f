"""The outbox is indexed by figalization: the reconciler's "does its job still wait?"

Without it the question rescanned the outbox for every stale picture, and once
pictures went unmade for a minute under load (no worker running), one round of
the reconciler took seconds and its statement timeout tripped the outage rule
for every request.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_image_job_outbox_figalization_id", "image_job_outbox", ["figalization_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_image_job_outbox_figalization_id", table_name="image_job_outbox")
