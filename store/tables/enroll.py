"""The enrollment protocols' table: one row per EST or SCEP transaction.

Owner and only writer: ``enroll``. A device that was told to wait (EST's
202, SCEP's PENDING) asks again with the same request (EST, RFC 7030
4.2.3: the same CSR) or the same transactionID (SCEP, RFC 8894 3.3.3); the
row ties that request to the credential that authorized it, the RA's
approval request, and, once issued, the certificate (by CA and serial).
"""

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, UniqueConstraint

from store.tables.base import Id, metadata

enroll_transactions = Table(
    "enroll_transactions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("protocol", String(8), nullable=False),  # est | scep
    # SCEP: the transactionID as sent; EST: SHA-256 of the CSR's DER.
    Column("transaction_id", String(128), nullable=False),
    Column("end_entity_id", Id, ForeignKey("end_entities.id"), nullable=False),
    Column("credential", String(255), nullable=False),  # what authenticated it
    Column("secret_id", String(32), nullable=True),
    Column("spki_sha256", String(64), nullable=False),  # the requester's public key
    Column("approval_request_id", Id, nullable=True),
    Column("status", String(16), nullable=False),  # pending | issued | failed
    Column("ca", String(128), nullable=True),
    Column("serial", String(40), nullable=True),
    Column("note", String(255), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("protocol", "transaction_id"),
    Index(None, "status"),
)
