"""The ACME server's tables (RFC 8555): accounts, the external account
binding keys that tie them to RA end entities, orders, authorizations,
challenges, and what the rate limits count (nonces live in the server's
memory, acmesrv/nonces.py).

Owner and only writer: ``acmesrv``. Every account belongs to an RA end
entity (``end_entities``); an order's certificate is the CA's row in
``certificates`` (by CA and serial), issued through the RA.

The ids that appear in URLs (accounts, orders, authorizations, challenges)
are random base64url strings, so one account cannot walk another's
resources by counting; every resource is also checked against the account
that signs the request.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
)

from store.tables.base import Id, metadata

# An ACME account (RFC 8555 7.1.2): its public key (JWK, and the RFC 7638
# thumbprint, unique), contact URLs, status, and the end entity it acts for.
acme_accounts = Table(
    "acme_accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("directory", String(64), nullable=False),
    Column("thumbprint", String(64), nullable=False, unique=True),
    Column("jwk", Text, nullable=False),  # JSON, the public key only
    Column("contact", Text, nullable=False),  # JSON list of URLs
    Column("status", String(16), nullable=False),  # valid | deactivated | revoked
    Column("end_entity_id", Id, ForeignKey("end_entities.id"), nullable=False),
    Column("eab_key_id", String(64), nullable=True),
    Column("tos_agreed_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# External account binding keys (RFC 8555 7.3.4): made by an RA operator for
# an end entity, used once; the MAC key sealed under the keys' passphrase.
acme_eab_keys = Table(
    "acme_eab_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("directory", String(64), nullable=True),  # NULL: any directory
    Column("end_entity_id", Id, ForeignKey("end_entities.id"), nullable=False),
    Column("sealed_key", Text, nullable=False),
    Column("status", String(16), nullable=False),  # unused | bound | revoked
    Column("account_id", String(32), nullable=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("bound_at", BigInteger, nullable=True),
)

# Orders (7.1.3): what an account asked for, under which profile, how far it
# got, and the certificate it led to (CA name and serial as the CA keeps them).
acme_orders = Table(
    "acme_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("acme_accounts.id"), nullable=False),
    Column("directory", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending|ready|processing|valid|invalid
    Column("identifiers", Text, nullable=False),  # JSON list of {"type", "value"}
    Column("profile", String(64), nullable=False),
    Column("replaces", String(255), nullable=True),  # RFC 9773 certificate identifier
    Column("expires_at", BigInteger, nullable=False),
    Column("error", Text, nullable=True),  # JSON problem document
    Column("ca", String(64), nullable=True),
    Column("serial", String(40), nullable=True),
    Column("approval_request_id", Id, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "account_id", "created_at"),
    Index(None, "replaces"),
)

# Authorizations (7.1.4), one per identifier of an order.
acme_authorizations = Table(
    "acme_authorizations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("order_id", String(32), ForeignKey("acme_orders.id"), nullable=False),
    Column("account_id", String(32), ForeignKey("acme_accounts.id"), nullable=False),
    Column("identifier_type", String(8), nullable=False),  # dns | ip
    Column("identifier_value", String(255), nullable=False),
    Column("wildcard", BigInteger, nullable=False),  # 0 | 1
    Column("status", String(16), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "order_id"),
)

# Challenges (7.1.5, 8): one per type offered for an authorization.
acme_challenges = Table(
    "acme_challenges",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("authorization_id", String(32), ForeignKey("acme_authorizations.id"), nullable=False),
    Column("type", String(16), nullable=False),  # http-01 | dns-01 | tls-alpn-01
    Column("token", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending|processing|valid|invalid
    Column("validated_at", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Index(None, "authorization_id"),
    Index(None, "status"),
)

# What the per-domain rate limit counts: each registered domain of each
# certificate issued, and when.
acme_issued_domains = Table(
    "acme_issued_domains",
    metadata,
    Column("order_id", String(32), ForeignKey("acme_orders.id"), primary_key=True),
    Column("domain", String(255), primary_key=True),
    Column("issued_at", BigInteger, nullable=False),
    Index(None, "domain", "issued_at"),
)
