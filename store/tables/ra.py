"""The RA's tables: end entities, the operators of its API, requests
waiting for approvers and their approvals, and the expiry notices sent.

Owner and only writer: ``ra``. The CA reads none of them; the
``end_entities`` rows are referenced from ``certificates.end_entity_id``.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from store.tables.base import Id, metadata

# Who should hold which certificates (migration 0004): a name, a contact, the CA and profile
# it may use, how its subject is built, which SANs it may have.
end_entities = Table(
    "end_entities",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("email", String(254), nullable=False),
    Column("ca_id", Id, ForeignKey("cas.id"), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("subject_template", Text, nullable=False),  # e.g. "CN={name},O=Example"
    Column("allowed_sans", Text, nullable=False),  # JSON list of "type:pattern"
    Column("attributes", Text, nullable=False),  # JSON object of strings
    Column("status", String(16), nullable=False),  # active | disabled
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "status"),
)


# Operators of the RA API: a role each; they sign in with an API token (only
# its SHA-256 is kept) or a TLS client certificate (its SHA-256 fingerprint).
ra_users = Table(
    "ra_users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("token_hash", String(64), unique=True),
    Column("cert_fingerprint", String(64), unique=True),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("created_at", BigInteger, nullable=False),
)

# Requests that wait for approvers (migration 0005): an enrollment, renewal
# or revocation, what it needs, who asked, and how it ended.
approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", Id, primary_key=True),
    Column("kind", String(16), nullable=False),  # enroll | renew | revoke
    Column("end_entity_id", Id, ForeignKey("end_entities.id"), nullable=True),
    Column("payload", Text, nullable=False),  # JSON: what to do (never a passphrase)
    Column("required", Integer, nullable=False),  # distinct approvals needed
    Column("requester", String(160), nullable=False),
    # pending | done | rejected | expired | failed
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger),
    Column("decided_by", String(160)),
    Column("note", Text),  # the rejection reason, or why it failed
    Column("result_ca", String(64)),
    Column("result_serial", String(40)),
    Index(None, "status", "id"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("request_id", Id, ForeignKey("approval_requests.id"), primary_key=True),
    Column("approver", String(160), primary_key=True),
    Column("at", BigInteger, nullable=False),
)

# Expiry notices sent (migration 0007): one per certificate and threshold,
# so a restart never sends one twice. status: sending | sent.
expiry_notices = Table(
    "expiry_notices",
    metadata,
    Column(
        "certificate_id",
        Id,
        ForeignKey("certificates.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("threshold_days", Integer, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list
    Column("at", BigInteger, nullable=False),
)

# One-time enrollment secrets (migration 0012): made by an RA operator for an
# end entity, redeemed once by a device over EST (HTTP Basic) or SCEP (the
# challenge password). Only the SHA-256 of the secret is kept; a secret is
# 130 random bits, so the digest is no shortcut to it.
enrollment_secrets = Table(
    "enrollment_secrets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("end_entity_id", Id, ForeignKey("end_entities.id"), nullable=False),
    Column("protocols", String(32), nullable=False),  # "est", "scep" or "est,scep"
    Column("digest", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # unused | used | revoked
    Column("created_by", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("used_by", String(255), nullable=True),  # protocol and transaction
    Index(None, "end_entity_id"),
)
