"""Device enrollment: the RA's one-time enrollment secrets
(store/tables/ra.py) and the EST and SCEP transactions
(store/tables/enroll.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "enrollment_secrets",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("end_entity_id", Id, nullable=False),
        sa.Column("protocols", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("used_by", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["end_entity_id"],
            ["end_entities.id"],
            name="fk_enrollment_secrets_end_entity_id_end_entities",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_enrollment_secrets"),
        sa.UniqueConstraint("digest", name="uq_enrollment_secrets_digest"),
    )
    op.create_index("ix_enrollment_secrets_end_entity_id", "enrollment_secrets", ["end_entity_id"])
    op.create_table(
        "enroll_transactions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("end_entity_id", Id, nullable=False),
        sa.Column("credential", sa.String(255), nullable=False),
        sa.Column("secret_id", sa.String(32), nullable=True),
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("approval_request_id", Id, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ca", sa.String(128), nullable=True),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("note", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["end_entity_id"],
            ["end_entities.id"],
            name="fk_enroll_transactions_end_entity_id_end_entities",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_enroll_transactions"),
        sa.UniqueConstraint(
            "protocol",
            "transaction_id",
            name="uq_enroll_transactions_protocol_transaction_id",
        ),
    )
    op.create_index("ix_enroll_transactions_status", "enroll_transactions", ["status"])


def downgrade() -> None:
    op.drop_index("ix_enroll_transactions_status", table_name="enroll_transactions")
    op.drop_table("enroll_transactions")
    op.drop_index("ix_enrollment_secrets_end_entity_id", table_name="enrollment_secrets")
    op.drop_table("enrollment_secrets")
