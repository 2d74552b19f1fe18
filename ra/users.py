"""Operators of the RA API: create, list, disable, and sign-in by API token
or TLS client certificate.

A token is shown once, when it is made; the store keeps only its SHA-256
(a token is 256 random bits, so a plain hash is enough to make the stored
value useless to whoever reads the table). Client certificates are matched
by the SHA-256 fingerprint of their DER, after the TLS layer has verified
them against the configured client CA.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, insert, select, update

from ca.errors import BadInputError, ConflictError, NotFoundError
from ra.roles import AuthenticationError, check_role
from store import Store
from store.tables.ra import ra_users

TOKEN_PREFIX = "rra_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    status: str
    has_token: bool
    cert_fingerprint: str | None
    created_at: int

    @property
    def actor(self) -> str:
        """How the audit log names this operator."""
        return f"ra:{self.name}"

    def summary(self) -> dict:
        return {
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "has_token": self.has_token,
            "cert_fingerprint_sha256": self.cert_fingerprint,
            "created_at": self.created_at,
        }


def _user(row) -> User:
    return User(
        row.id,
        row.name,
        row.role,
        row.status,
        row.token_hash is not None,
        row.cert_fingerprint,
        row.created_at,
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def certificate_fingerprint(pem_or_der: bytes) -> str:
    """SHA-256 of a certificate's DER (PEM or DER in)."""
    try:
        if pem_or_der.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(pem_or_der)
        else:
            cert = x509.load_der_x509_certificate(pem_or_der)
    except ValueError as exc:
        raise BadInputError(f"not a certificate: {exc}") from None
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


class Users:
    def __init__(self, store: Store, now_ms, record):
        """``record(conn, actor, action, target, result, **detail)`` writes
        an audit record (``store.audit.AuditLog.record``)."""
        self.store = store
        self.now_ms = now_ms
        self.record = record

    def _audit(self, conn: Connection, actor: str, action: str, target: str, **detail) -> None:
        self.record(conn, actor, action, target, "ok", **detail)

    def create(
        self,
        name: str,
        role: str,
        *,
        with_token: bool = True,
        certificate: bytes | None = None,
        actor: str = "system",
    ) -> tuple[User, str | None]:
        """Add an operator; returns it and its token (shown this once)."""
        if not _NAME.match(name):
            raise BadInputError(
                f"invalid operator name {name!r}: 1-128 letters, digits, '.', '_', '@', '-'"
            )
        check_role(role)
        if not with_token and certificate is None:
            raise BadInputError("an operator needs a token, a client certificate, or both")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32) if with_token else None
        fingerprint = certificate_fingerprint(certificate) if certificate is not None else None
        with self.store.transaction() as conn:
            if conn.execute(select(ra_users.c.id).where(ra_users.c.name == name)).first():
                raise ConflictError(f"an operator named {name!r} exists")
            if (
                fingerprint
                and conn.execute(
                    select(ra_users.c.name).where(ra_users.c.cert_fingerprint == fingerprint)
                ).first()
            ):
                raise ConflictError("that client certificate already belongs to an operator")
            conn.execute(
                insert(ra_users).values(
                    name=name,
                    role=role,
                    token_hash=token_hash(token) if token else None,
                    cert_fingerprint=fingerprint,
                    status="active",
                    created_at=self.now_ms() // 1000,
                )
            )
            self._audit(conn, actor, "ra.user.create", name, role=role, certificate=fingerprint)
            row = conn.execute(select(ra_users).where(ra_users.c.name == name)).one()
        return _user(row), token

    def get(self, name: str) -> User:
        with self.store.read() as conn:
            row = conn.execute(select(ra_users).where(ra_users.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no operator named {name!r}")
        return _user(row)

    def list(self) -> list[User]:
        with self.store.read() as conn:
            return [_user(r) for r in conn.execute(select(ra_users).order_by(ra_users.c.name))]

    def set_status(self, name: str, status: str, *, actor: str = "system") -> User:
        if status not in ("active", "disabled"):
            raise BadInputError("status must be active or disabled")
        with self.store.transaction() as conn:
            found = conn.execute(
                update(ra_users).where(ra_users.c.name == name).values(status=status)
            ).rowcount
            if not found:
                raise NotFoundError(f"no operator named {name!r}")
            action = "ra.user.enable" if status == "active" else "ra.user.disable"
            self._audit(conn, actor, action, name)
            row = conn.execute(select(ra_users).where(ra_users.c.name == name)).one()
        return _user(row)

    def by_token(self, token: str) -> User:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            raise AuthenticationError("invalid API token")
        digest = token_hash(token)
        with self.store.read() as conn:
            row = conn.execute(
                select(ra_users).where(ra_users.c.token_hash == digest)
            ).one_or_none()
        # The lookup is by hash; compare again in constant time for form's sake.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise AuthenticationError("invalid API token")
        return self._active(row)

    def by_certificate(self, der: bytes) -> User:
        fingerprint = hashlib.sha256(der).hexdigest()
        with self.store.read() as conn:
            row = conn.execute(
                select(ra_users).where(ra_users.c.cert_fingerprint == fingerprint)
            ).one_or_none()
        if row is None:
            raise AuthenticationError("the client certificate belongs to no operator")
        return self._active(row)

    @staticmethod
    def _active(row) -> User:
        if row.status != "active":
            raise AuthenticationError(f"operator {row.name!r} is disabled")
        return _user(row)
