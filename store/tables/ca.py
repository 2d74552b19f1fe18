"""The CA's tables: the CAs (its own, imported ones, and the keyless
issuers of inventory certificates), every certificate, the CRLs it signed,
the certificate search indexes, and the blocklist of compromised keys.

Owner and only writer: ``ca`` (CAService and ca/crl.py; tests/test_layout.py
checks that nothing else writes ``cas``, ``certificates`` or
``compromised_keys``). The search
indexes are written by database triggers on ``certificates`` (migration 0006),
so every way a certificate comes in is covered. Readers: the RA through
``ca.catalog`` (search, reports, export, expiry notices), the publisher
(``crls``, to serve the newest CRLs), ``revoca`` through the CA service.
``certificates.end_entity_id`` names the RA's end entity a certificate was
issued (or assigned) to; the CA writes it when the RA asks.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from store.tables.base import Id, metadata

# Database objects the search migration (0006) makes outside this metadata:
# the SQLite FTS5 table (and its shadow tables) and PostgreSQL trigram indexes.
SEARCH_OBJECTS = ("certificates_fts", "ix_certificates_subject_trgm", "ix_certificates_sans_trgm")
# ... and the triggers that keep certificate_names and certificate_counts.


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
    # The "other certificates than intended" report (migration 0010): the
    # SHA-256 of the SubjectPublicKeyInfo, and of the subject with the sorted
    # SANs (ca/records.py names_sha256); NULL where unknown (rows loaded
    # without them), which no report groups.
    Column("spki_sha256", String(64)),
    Column("names_sha256", String(64)),
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
    # Valid certificates sharing a key or a name set, grouped from the index
    # alone; active and expired counts per CA and profile (migration 0010).
    Index(None, "status", "spki_sha256", "not_after"),
    Index(None, "status", "names_sha256", "not_after"),
    Index(None, "status", "not_after", "ca_id", "profile"),
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


# Keys known to be compromised (migration 0008): CA/B Forum BR 6.1.1.3 (4),
# no certificate is issued for a public key on it. One row per key, named by
# the SHA-256 of its DER SubjectPublicKeyInfo; the first reason it was added
# is the one kept. Written by the revocation that compromised it (in the
# revocation's transaction) or by an operator's import.
compromised_keys = Table(
    "compromised_keys",
    metadata,
    Column("spki_sha256", String(64), primary_key=True),  # lowercase hex
    Column("added_at", BigInteger, nullable=False),  # epoch seconds
    Column("source", String(16), nullable=False),  # revocation | import
    # source "revocation": the certificate revoked, by its issuer and serial.
    Column("ca_id", Id, ForeignKey("cas.id"), nullable=True),
    Column("serial", String(40), nullable=True),
    Column("reason", SmallInteger, nullable=True),  # its RFC 5280 CRLReason
    Column("note", Text, nullable=True),  # source "import": the operator's note
    Column("actor", String(255), nullable=False),
)
