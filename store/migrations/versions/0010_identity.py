"""Reports that follow the clock and find certificates other than intended:
each certificate's public key (the SHA-256 of its SubjectPublicKeyInfo) and
its name set (the SHA-256 of its subject and sorted SANs), each indexed
after the status so the valid ones group without reading the table; and
(status, not_after, ca_id, profile), from which the counts split good
certificates into active and expired with an index-only read. The columns
of certificates already stored are computed from their DER.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op
from cryptography import x509
from cryptography.hazmat.primitives import serialization

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_certificates_status_spki_sha256_not_after": ["status", "spki_sha256", "not_after"],
    "ix_certificates_status_names_sha256_not_after": ["status", "names_sha256", "not_after"],
    "ix_certificates_status_not_after_ca_id_profile": ["status", "not_after", "ca_id", "profile"],
}
BATCH = 2000


def _spki_sha256(der: bytes) -> str | None:
    try:
        key = x509.load_der_x509_certificate(der).public_key()
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:  # not a certificate (a test row), or a key type cryptography lacks
        return None
    return hashlib.sha256(spki).hexdigest()


def _names_sha256(subject: str, sans_json: str) -> str:
    # As ca/records.py names_sha256 defined it at this revision.
    names = sorted(
        {s.lower() if s.startswith(("dns:", "ip:")) else s for s in json.loads(sans_json)}
    )
    return hashlib.sha256("\n".join([subject, *names]).encode()).hexdigest()


def upgrade() -> None:
    # A plain ADD COLUMN: a batch (copy and move) would lose the search triggers.
    op.add_column("certificates", sa.Column("spki_sha256", sa.String(64), nullable=True))
    op.add_column("certificates", sa.Column("names_sha256", sa.String(64), nullable=True))
    bind = op.get_bind()
    table = sa.table(
        "certificates",
        sa.column("id"),
        sa.column("subject"),
        sa.column("sans"),
        sa.column("der"),
        sa.column("spki_sha256"),
        sa.column("names_sha256"),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.subject, table.c.sans, table.c.der)
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            bind.execute(
                sa.update(table)
                .where(table.c.id == row.id)
                .values(
                    spki_sha256=_spki_sha256(row.der),
                    names_sha256=_names_sha256(row.subject, row.sans),
                )
            )
        last = rows[-1].id
    for name, columns in INDEXES.items():
        op.create_index(name, "certificates", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "certificates")
    op.drop_column("certificates", "names_sha256")
    op.drop_column("certificates", "spki_sha256")
