"""The ACME server's tables (store/tables/acme.py): accounts bound to end
entities, external account binding keys, orders, authorizations,
challenges, and the registered domains issued to.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("directory", sa.String(64), nullable=False),
        sa.Column("thumbprint", sa.String(64), nullable=False),
        sa.Column("jwk", sa.Text(), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_entity_id", Id, nullable=False),
        sa.Column("eab_key_id", sa.String(64), nullable=True),
        sa.Column("tos_agreed_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["end_entity_id"],
            ["end_entities.id"],
            name="fk_acme_accounts_end_entity_id_end_entities",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_acme_accounts"),
        sa.UniqueConstraint("thumbprint", name="uq_acme_accounts_thumbprint"),
    )
    op.create_table(
        "acme_eab_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("directory", sa.String(64), nullable=True),
        sa.Column("end_entity_id", Id, nullable=False),
        sa.Column("sealed_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("bound_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["end_entity_id"],
            ["end_entities.id"],
            name="fk_acme_eab_keys_end_entity_id_end_entities",
        ),
        sa.PrimaryKeyConstraint("key_id", name="pk_acme_eab_keys"),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("directory", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("replaces", sa.String(255), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("ca", sa.String(64), nullable=True),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("approval_request_id", Id, nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["acme_accounts.id"], name="fk_acme_orders_account_id_acme_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_acme_orders"),
    )
    op.create_index(
        "ix_acme_orders_account_id_created_at", "acme_orders", ["account_id", "created_at"]
    )
    op.create_index("ix_acme_orders_replaces", "acme_orders", ["replaces"])
    op.create_table(
        "acme_authorizations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("identifier_type", sa.String(8), nullable=False),
        sa.Column("identifier_value", sa.String(255), nullable=False),
        sa.Column("wildcard", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["acme_orders.id"], name="fk_acme_authorizations_order_id_acme_orders"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["acme_accounts.id"],
            name="fk_acme_authorizations_account_id_acme_accounts",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_acme_authorizations"),
    )
    op.create_index("ix_acme_authorizations_order_id", "acme_authorizations", ["order_id"])
    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("authorization_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validated_at", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["acme_authorizations.id"],
            name="fk_acme_challenges_authorization_id_acme_authorizations",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_acme_challenges"),
    )
    op.create_index("ix_acme_challenges_authorization_id", "acme_challenges", ["authorization_id"])
    op.create_index("ix_acme_challenges_status", "acme_challenges", ["status"])
    op.create_table(
        "acme_issued_domains",
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["acme_orders.id"],
            name="fk_acme_issued_domains_order_id_acme_orders",
        ),
        sa.PrimaryKeyConstraint("order_id", "domain", name="pk_acme_issued_domains"),
    )
    op.create_index(
        "ix_acme_issued_domains_domain_issued_at", "acme_issued_domains", ["domain", "issued_at"]
    )


def downgrade() -> None:
    for index, table in (
        ("ix_acme_issued_domains_domain_issued_at", "acme_issued_domains"),
        ("ix_acme_challenges_status", "acme_challenges"),
        ("ix_acme_challenges_authorization_id", "acme_challenges"),
        ("ix_acme_authorizations_order_id", "acme_authorizations"),
        ("ix_acme_orders_replaces", "acme_orders"),
        ("ix_acme_orders_account_id_created_at", "acme_orders"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "acme_issued_domains",
        "acme_challenges",
        "acme_authorizations",
        "acme_orders",
        "acme_eab_keys",
        "acme_accounts",
    ):
        op.drop_table(table)
