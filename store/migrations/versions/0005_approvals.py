"""RA approvals: requests waiting for N distinct approvers, and each approval.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", Id, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("end_entity_id", Id, nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(160), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("decided_by", sa.String(160), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("result_ca", sa.String(64), nullable=True),
        sa.Column("result_serial", sa.String(40), nullable=True),
        sa.ForeignKeyConstraint(
            ["end_entity_id"],
            ["end_entities.id"],
            name="fk_approval_requests_end_entity_id_end_entities",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_approval_requests"),
    )
    op.create_index("ix_approval_requests_status_id", "approval_requests", ["status", "id"])
    op.create_table(
        "approvals",
        sa.Column("request_id", Id, nullable=False),
        sa.Column("approver", sa.String(160), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["approval_requests.id"],
            name="fk_approvals_request_id_approval_requests",
        ),
        sa.PrimaryKeyConstraint("request_id", "approver", name="pk_approvals"),
    )


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_index("ix_approval_requests_status_id", "approval_requests")
    op.drop_table("approval_requests")
