"""Each certificate remembers its last status change (the outbox id and the
time), so a delta CRL reads the changed certificates through one index
instead of grouping outbox events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEX_COLUMNS = [
    "ca_id",
    "status_seq",
    "serial",
    "status",
    "revoked_at",
    "revocation_reason",
    "invalidity_date",
    "status_changed_at",
]


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("status_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("status_changed_at", sa.BigInteger(), nullable=True))
    # Existing stores: the last revoked/hold/released event of each certificate.
    op.execute(
        "UPDATE certificates SET status_seq = last.id, status_changed_at = last.at "
        "FROM (SELECT o.ca_id, o.serial, o.id, o.created_at_ms / 1000 AS at FROM outbox o "
        "JOIN (SELECT ca_id, serial, MAX(id) AS id FROM outbox "
        "WHERE event IN ('revoked', 'hold', 'released') GROUP BY ca_id, serial) m "
        "ON m.id = o.id) AS last "
        "WHERE certificates.ca_id = last.ca_id AND certificates.serial = last.serial"
    )
    op.create_index(
        "ix_certificates_status_seq",
        "certificates",
        INDEX_COLUMNS,
        sqlite_where=sa.text("status_seq IS NOT NULL"),
        postgresql_where=sa.text("status_seq IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_certificates_status_seq", "certificates")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("status_changed_at")
        batch.drop_column("status_seq")
