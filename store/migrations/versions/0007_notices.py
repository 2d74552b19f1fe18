"""Expiry notices: which certificate was announced at which threshold.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "expiry_notices",
        sa.Column("certificate_id", Id, nullable=False),
        sa.Column("threshold_days", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name="fk_expiry_notices_certificate_id_certificates",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("certificate_id", "threshold_days", name="pk_expiry_notices"),
    )


def downgrade() -> None:
    op.drop_table("expiry_notices")
