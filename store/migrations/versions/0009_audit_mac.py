"""The audit log's MACs: each record's HMAC-SHA256 under a key kept outside
the database, and the chain head's (store/audit.py). Records already in the
log keep no MAC: they stay covered by the hash chain, and by the MAC of the
first keyed record after them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("audit_log", "audit_head"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("mac", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in ("audit_log", "audit_head"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("mac")
