"""Tables of the CA store (SQLAlchemy Core). Changes go through an alembic
migration in ca/store/migrations/versions; tests check the two agree.

Times are integers: seconds since the epoch (UTC) for certificate fields,
milliseconds for event and audit timestamps. Serials are 40-digit zero-padded
lowercase hex, so text order is numeric order (CRLs stream in serial order).
"""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Database objects the search migration (0006) makes outside this metadata:
# the SQLite FTS5 table (and its shadow tables) and PostgreSQL trigram indexes.
SEARCH_OBJECTS = ("certificates_fts", "ix_certificates_subject_trgm", "ix_certificates_sans_trgm")
# ... and the triggers that keep certificate_names and certificate_counts.


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """For alembic comparisons: leave the search objects alone."""
    return not (reflected and name and name.startswith(SEARCH_OBJECTS))


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
Id = BigInteger().with_variant(Integer(), "sqlite")

cas = Table(
    "cas",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("parent_id", Id, ForeignKey("cas.id"), nullable=True),
    Column("key_id", String(128), nullable=False),
    Column("key_type", String(16), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("not_before", BigInteger, nullable=False),
    Column("not_after", BigInteger, nullable=False),
    Column("key_identifier", String(128), nullable=False),
    Column("cert_der", LargeBinary, nullable=False),
    Column("origin", String(16), nullable=False),  # created | imported
    Column("created_at", BigInteger, nullable=False),
)

certificates = Table(
    "certificates",
    metadata,
    Column("id", Id, primary_key=True),
    Column("ca_id", Id, ForeignKey("cas.id"), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("subject", Text, nullable=False),
    Column("sans", Text, nullable=False),  # JSON list of "type:value"
    Column("not_before", BigInteger, nullable=False),
    Column("not_after", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # good | revoked | hold
    Column("revoked_at", BigInteger),
    Column("revocation_reason", SmallInteger),  # RFC 5280 CRLReason value
    Column("invalidity_date", BigInteger),
    Column("profile", String(64), nullable=False),
    Column("key_type", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False, unique=True),  # SHA-256 of the DER
    Column("der", LargeBinary, nullable=False),
    # Encrypted PKCS#8 PEM, only when the key was generated here (PKCS#12 export).
    Column("private_key", LargeBinary),
    Column("issued_at", BigInteger, nullable=False),
    # Partitioned CRLs: which shard's CRL lists this certificate (migration 0002).
    Column("crl_shard", Integer),
    # The last status change (revoked, hold, released): its outbox id and its
    # time in epoch seconds; delta CRLs list the certificates changed after
    # their base's outbox position (migration 0003).
    Column("status_seq", BigInteger),
    Column("status_changed_at", BigInteger),
    # The RA's end entity the certificate was issued to (migration 0004).
    Column("end_entity_id", Id, ForeignKey("end_entities.id"), nullable=True),
    UniqueConstraint("ca_id", "serial"),
    Index(None, "end_entity_id"),
    # Search and reports (migration 0006): a serial without its CA, issuance
    # time, counts by CA/profile/status from the index alone, and each end
    # entity's valid certificates per profile. Subject and SAN substrings go
    # through a trigram index: FTS5 on SQLite, pg_trgm GIN on PostgreSQL
    # (made by the migration; see SEARCH_OBJECTS).
    Index(None, "serial"),
    Index(None, "issued_at"),
    Index(None, "ca_id", "profile", "status"),
    Index(None, "end_entity_id", "profile", "status", "not_after"),
    Index(None, "status", "not_after"),
    Index(None, "not_after"),
    Index(None, "ca_id", "status"),
    # CRL generation reads only revoked and held rows, in serial order: a
    # partial covering index makes that an index-only scan (migration 0002).
    Index(
        "ix_certificates_revoked",
        "ca_id",
        "serial",
        "revoked_at",
        "revocation_reason",
        "invalidity_date",
        "not_after",
        "status",
        sqlite_where=text("status IN ('revoked', 'hold')"),
        postgresql_where=text("status IN ('revoked', 'hold')"),
    ),
    # Delta CRLs: the certificates changed after a given outbox id, with
    # everything an entry needs (an index-only read; migration 0003).
    Index(
        "ix_certificates_status_seq",
        "ca_id",
        "status_seq",
        "serial",
        "status",
        "revoked_at",
        "revocation_reason",
        "invalidity_date",
        "status_changed_at",
        sqlite_where=text("status_seq IS NOT NULL"),
        postgresql_where=text("status_seq IS NOT NULL"),
    ),
)

# Every issuance and status change writes one row here in the same
# transaction as the change; the publisher follows ``id`` as its cursor.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True),
    Column("ca_id", Id, ForeignKey("cas.id"), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("event", String(16), nullable=False),  # issued | revoked | hold | released
    Column("payload", Text, nullable=False),  # JSON
    Column("created_at_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,  # never reuse an id, even after rows are pruned
)

# Append-only, hash-chained: hash = SHA-256(prev_hash || canonical record).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("result", String(16), nullable=False),  # ok | refused | error
    Column("detail", Text, nullable=False),  # JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row: the chain's head. Appenders update it first, which serialises
# them on PostgreSQL (row lock) as well as on SQLite (database lock).
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Every CRL the CA signed (RFC 5280 5.2.3: numbers strictly increase per CA,
# shared by full and delta CRLs).
crls = Table(
    "crls",
    metadata,
    Column("id", Id, primary_key=True),
    Column("ca_id", Id, ForeignKey("cas.id"), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # full | delta | arl | partition
    Column("name", String(200), nullable=False),  # served as /crl/<name>.crl
    Column("base_number", BigInteger),  # delta CRLs: the full CRL they extend
    Column("outbox_id", BigInteger),  # full CRLs: the last outbox event they reflect
    Column("this_update", BigInteger, nullable=False),
    Column("next_update", BigInteger, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("der", LargeBinary, nullable=False),
    UniqueConstraint("ca_id", "number"),
)


# -- the RA (migration 0004) --------------------------------------------------

# Who should hold which certificates: a name, a contact, the CA and profile
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

# Search (migration 0006), kept by triggers on ``certificates`` so every way
# in (issuance, imports, bulk loads) is covered: each DNS and IP SAN as its
# own lowercased row, for host name lookups through a B-tree; and the number
# of certificates per CA, profile and status, for the counts report.
certificate_names = Table(
    "certificate_names",
    metadata,
    Column("certificate_id", Id, ForeignKey("certificates.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Index(None, "name"),
    Index(None, "certificate_id"),
)

certificate_counts = Table(
    "certificate_counts",
    metadata,
    Column("ca_id", Id, ForeignKey("cas.id"), primary_key=True),
    Column("profile", String(64), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("n", BigInteger, nullable=False),
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
