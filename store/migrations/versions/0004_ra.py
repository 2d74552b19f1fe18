"""The RA: end entities, the certificates issued to each, and the operators
of the RA API with their roles.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "end_entities",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("ca_id", Id, nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("subject_template", sa.Text(), nullable=False),
        sa.Column("allowed_sans", sa.Text(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_end_entities_ca_id_cas"),
        sa.PrimaryKeyConstraint("id", name="pk_end_entities"),
        sa.UniqueConstraint("name", name="uq_end_entities_name"),
    )
    op.create_index("ix_end_entities_status", "end_entities", ["status"])
    op.create_table(
        "ra_users",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("cert_fingerprint", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ra_users"),
        sa.UniqueConstraint("name", name="uq_ra_users_name"),
        sa.UniqueConstraint("token_hash", name="uq_ra_users_token_hash"),
        sa.UniqueConstraint("cert_fingerprint", name="uq_ra_users_cert_fingerprint"),
    )
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("end_entity_id", Id, nullable=True))
        batch.create_foreign_key(
            "fk_certificates_end_entity_id_end_entities", "end_entities", ["end_entity_id"], ["id"]
        )
    op.create_index("ix_certificates_end_entity_id", "certificates", ["end_entity_id"])


def downgrade() -> None:
    op.drop_index("ix_certificates_end_entity_id", "certificates")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_constraint("fk_certificates_end_entity_id_end_entities", type_="foreignkey")
        batch.drop_column("end_entity_id")
    op.drop_table("ra_users")
    op.drop_index("ix_end_entities_status", "end_entities")
    op.drop_table("end_entities")
