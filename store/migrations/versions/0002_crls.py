"""CRLs signed by each CA, with their numbers and served names; each
certificate's CRL shard; an index for reading revoked rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "crls",
        sa.Column("id", Id, nullable=False),
        sa.Column("ca_id", Id, nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("base_number", sa.BigInteger(), nullable=True),
        sa.Column("outbox_id", sa.BigInteger(), nullable=True),
        sa.Column("this_update", sa.BigInteger(), nullable=False),
        sa.Column("next_update", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_crls_ca_id_cas"),
        sa.PrimaryKeyConstraint("id", name="pk_crls"),
        sa.UniqueConstraint("ca_id", "number", name="uq_crls_ca_id_number"),
    )

    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("crl_shard", sa.Integer(), nullable=True))
    op.create_index(
        "ix_certificates_revoked",
        "certificates",
        [
            "ca_id",
            "serial",
            "revoked_at",
            "revocation_reason",
            "invalidity_date",
            "not_after",
            "status",
        ],
        sqlite_where=sa.text("status IN ('revoked', 'hold')"),
        postgresql_where=sa.text("status IN ('revoked', 'hold')"),
    )


def downgrade() -> None:
    op.drop_index("ix_certificates_revoked", "certificates")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("crl_shard")
    op.drop_table("crls")
