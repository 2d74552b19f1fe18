"""The blocklist of compromised keys (CA/B Forum BR 6.1.1.3 (4)), filled
with the keys of the certificates already revoked for keyCompromise (and of
CA certificates revoked for cACompromise), as the revocations that follow
add theirs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import hashlib

import sqlalchemy as sa
from alembic import op
from cryptography import x509
from cryptography.hazmat.primitives import serialization

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

KEY_COMPROMISE, CA_COMPROMISE = 1, 2  # RFC 5280 5.3.1 CRLReason


def upgrade() -> None:
    table = op.create_table(
        "compromised_keys",
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("ca_id", Id, nullable=True),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("reason", sa.SmallInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_compromised_keys_ca_id_cas"),
        sa.PrimaryKeyConstraint("spki_sha256", name="pk_compromised_keys"),
    )
    # Existing revocations, oldest first: each key keeps its first one, with
    # the time it was revoked (the time the CA writes for new ones).
    rows = op.get_bind().execute(
        sa.text(
            "SELECT ca_id, serial, der, revocation_reason, status_changed_at, revoked_at "
            "FROM certificates WHERE status = 'revoked' AND revocation_reason IN (:kc, :cc) "
            "ORDER BY COALESCE(status_changed_at, revoked_at), id"
        ),
        {"kc": KEY_COMPROMISE, "cc": CA_COMPROMISE},
    )
    seen, entries = set(), []
    for row in rows:
        cert = x509.load_der_x509_certificate(row.der)
        if row.revocation_reason == CA_COMPROMISE and not _is_ca(cert):
            continue  # an end entity's cACompromise speaks of its issuer, not of its key
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashlib.sha256(spki).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        entries.append(
            {
                "spki_sha256": digest,
                "added_at": row.status_changed_at or row.revoked_at,
                "source": "revocation",
                "ca_id": row.ca_id,
                "serial": row.serial,
                "reason": row.revocation_reason,
                "note": None,
                "actor": "migration 0008",
            }
        )
    if entries:
        op.bulk_insert(table, entries)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def downgrade() -> None:
    op.drop_table("compromised_keys")
