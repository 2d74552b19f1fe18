"""Operators of the RA API: create, list, enable and disable, change roles,
rotate tokens, delete, and sign-in by API token or TLS client certificate.

A token is shown once, when it is made; the store keeps only its SHA-256
(a token is 256 random bits, so a plain hash is enough to make the stored
value useless to whoever reads the table). Client certificates are matched
by the SHA-256 fingerprint of their DER, after the TLS layer has verified
them against the configured client CA, and each sign-in checks the
certificate again: its validity period, and, for one of our own CAs' certificates,
its status in the CA's records (a revoked or held certificate signs no one in).

There is always an active administrator once there is any operator: the
last one cannot be disabled, demoted or deleted, so nobody can lock every
administrator out (a store with no operator at all is bootstrapped from the
command line, ``bootstrap``).
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, delete, func, insert, select, update

from ca.errors import BadInputError, ConflictError, NotFoundError
from common.clock import iso8601
from ra.roles import ADMINISTRATOR, AuthenticationError, check_role
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
            "created_at": iso8601(self.created_at),
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


def new_token() -> str:
    """A fresh API token: 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInputError(
            f"invalid operator name {name!r}: 1-128 letters, digits, '.', '_', '@', '-'"
        )
    return name


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
    def __init__(
        self,
        store: Store,
        now_ms,
        record,
        certificate_problem: Callable[[bytes], str | None] | None = None,
    ):
        """``record(conn, actor, action, target, result, **detail)`` writes
        an audit record (``store.audit.AuditLog.record``);
        ``certificate_problem(der)`` says why a client certificate may not
        sign in now (revoked, on hold, expired, not valid yet), or None."""
        self.store = store
        self.now_ms = now_ms
        self.record = record
        self.certificate_problem = certificate_problem

    def _audit(self, conn: Connection, actor: str, action: str, target: str, **detail) -> None:
        self.record(conn, actor, action, target, "ok", **detail)

    def check_new(
        self, name: str, role: str, *, with_token: bool, certificate: bytes | None
    ) -> str | None:
        """Refuse an operator that could not be created now; returns the
        client certificate's fingerprint (None without one)."""
        check_name(name)
        check_role(role)
        if not with_token and certificate is None:
            raise BadInputError("an operator needs a token, a client certificate, or both")
        fingerprint = certificate_fingerprint(certificate) if certificate is not None else None
        with self.store.read() as conn:
            self._check_free(conn, name, fingerprint)
        return fingerprint

    @staticmethod
    def _check_free(conn: Connection, name: str, fingerprint: str | None) -> None:
        if conn.execute(select(ra_users.c.id).where(ra_users.c.name == name)).first():
            raise ConflictError(f"an operator named {name!r} exists")
        if (
            fingerprint
            and conn.execute(
                select(ra_users.c.name).where(ra_users.c.cert_fingerprint == fingerprint)
            ).first()
        ):
            raise ConflictError("that client certificate already belongs to an operator")

    def create(
        self,
        name: str,
        role: str,
        *,
        with_token: bool = True,
        certificate: bytes | None = None,
        actor: str = "system",
        token_digest: str | None = None,
        fingerprint: str | None = None,
    ) -> tuple[User, str | None]:
        """Add an operator; returns it and its token (shown this once).
        ``token_digest`` and ``fingerprint``: carrying out an approved
        request, whose token was shown to its requester when it was made."""
        if token_digest is None and fingerprint is None:
            fingerprint = self.check_new(name, role, with_token=with_token, certificate=certificate)
            token = new_token() if with_token else None
            token_digest = token_hash(token) if token else None
        else:
            check_name(name)
            check_role(role)
            token = None
        with self.store.transaction() as conn:
            self._check_free(conn, name, fingerprint)
            self._insert(conn, name, role, token_digest, fingerprint)
            self._audit(conn, actor, "ra.user.create", name, role=role, certificate=fingerprint)
            row = conn.execute(select(ra_users).where(ra_users.c.name == name)).one()
        return _user(row), token

    def _insert(self, conn, name, role, token_digest, fingerprint) -> None:
        conn.execute(
            insert(ra_users).values(
                name=name,
                role=role,
                token_hash=token_digest,
                cert_fingerprint=fingerprint,
                status="active",
                created_at=self.now_ms() // 1000,
            )
        )

    def bootstrap(self, operators: list[tuple[str, str]], *, actor: str) -> list[tuple[User, str]]:
        """The first operators of a store that has none (at least one of
        them an administrator), each with a token; refused once any
        operator exists."""
        if not operators:
            raise BadInputError("name at least one operator")
        for name, role in operators:
            check_name(name)
            check_role(role)
        if ADMINISTRATOR not in {role for _, role in operators}:
            raise BadInputError("the first operators must include an administrator")
        if len({name for name, _ in operators}) != len(operators):
            raise BadInputError("each operator name once")
        out = []
        with self.store.transaction() as conn:
            if conn.execute(select(func.count()).select_from(ra_users)).scalar_one():
                raise ConflictError(
                    "the RA has operators already: further ones are added by an "
                    "administrator (with approvals where they are configured)"
                )
            for name, role in operators:
                token = new_token()
                self._insert(conn, name, role, token_hash(token), None)
                self._audit(conn, actor, "ra.user.create", name, role=role, bootstrap=True)
                row = conn.execute(select(ra_users).where(ra_users.c.name == name)).one()
                out.append((_user(row), token))
        return out

    def any(self) -> bool:
        """Whether the RA has any operator."""
        with self.store.read() as conn:
            return bool(conn.execute(select(func.count()).select_from(ra_users)).scalar_one())

    def get(self, name: str) -> User:
        with self.store.read() as conn:
            row = conn.execute(select(ra_users).where(ra_users.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no operator named {name!r}")
        return _user(row)

    def list(self) -> list[User]:
        with self.store.read() as conn:
            return [_user(r) for r in conn.execute(select(ra_users).order_by(ra_users.c.name))]

    @staticmethod
    def _row(conn: Connection, name: str):
        row = conn.execute(select(ra_users).where(ra_users.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no operator named {name!r}")
        return row

    @staticmethod
    def _keep_an_administrator(conn: Connection, row, what: str) -> None:
        """Refuse to take away the last active administrator."""
        if row.role != ADMINISTRATOR or row.status != "active":
            return
        others = conn.execute(
            select(ra_users.c.id)
            .where(
                ra_users.c.role == ADMINISTRATOR,
                ra_users.c.status == "active",
                ra_users.c.id != row.id,
            )
            .with_for_update()
        ).first()
        if others is None:
            raise ConflictError(
                f"{row.name!r} is the last active administrator and cannot be {what}: "
                "make another administrator first"
            )

    def set_status(self, name: str, status: str, *, actor: str = "system") -> User:
        if status not in ("active", "disabled"):
            raise BadInputError("status must be active or disabled")
        with self.store.transaction() as conn:
            row = self._row(conn, name)
            if status == "disabled":
                self._keep_an_administrator(conn, row, "disabled")
            conn.execute(update(ra_users).where(ra_users.c.id == row.id).values(status=status))
            action = "ra.user.enable" if status == "active" else "ra.user.disable"
            self._audit(conn, actor, action, name)
            row = self._row(conn, name)
        return _user(row)

    def check_role_change(self, name: str, role: str) -> None:
        """Refuse a role change ``set_role`` would refuse now."""
        check_role(role)
        with self.store.read() as conn:
            row = self._row(conn, name)
            if row.role == role:
                raise ConflictError(f"operator {name!r} is {role} already")
            if role != ADMINISTRATOR:
                self._keep_an_administrator(conn, row, "demoted")

    def set_role(self, name: str, role: str, *, actor: str = "system") -> User:
        check_role(role)
        with self.store.transaction() as conn:
            row = self._row(conn, name)
            if role != ADMINISTRATOR:
                self._keep_an_administrator(conn, row, "demoted")
            conn.execute(update(ra_users).where(ra_users.c.id == row.id).values(role=role))
            self._audit(conn, actor, "ra.user.role", name, role=role, previous=row.role)
            row = self._row(conn, name)
        return _user(row)

    def rotate_token(
        self, name: str, *, actor: str = "system", token_digest: str | None = None
    ) -> tuple[User, str | None]:
        """A new API token for ``name`` (the old one stops working at once);
        returns it, shown this once (None when ``token_digest`` is given:
        an approved request's token, shown to its requester before)."""
        token = None
        if token_digest is None:
            token = new_token()
            token_digest = token_hash(token)
        with self.store.transaction() as conn:
            row = self._row(conn, name)
            conn.execute(
                update(ra_users).where(ra_users.c.id == row.id).values(token_hash=token_digest)
            )
            self._audit(conn, actor, "ra.user.token", name)
            row = self._row(conn, name)
        return _user(row), token

    def delete(self, name: str, *, actor: str = "system") -> None:
        with self.store.transaction() as conn:
            row = self._row(conn, name)
            self._keep_an_administrator(conn, row, "deleted")
            conn.execute(delete(ra_users).where(ra_users.c.id == row.id))
            self._audit(conn, actor, "ra.user.delete", name, role=row.role)

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
        user = self._active(row)
        problem = self.certificate_problem(der) if self.certificate_problem else None
        if problem is not None:
            message = f"operator {row.name!r} may not sign in: {problem}"
            with self.store.transaction() as conn:
                self.record(
                    conn,
                    user.actor,
                    "ra.signin",
                    row.name,
                    "refused",
                    error="unauthenticated",
                    message=message,
                    certificate=fingerprint,
                )
            raise AuthenticationError(message)
        return user

    @staticmethod
    def _active(row) -> User:
        if row.status != "active":
            raise AuthenticationError(f"operator {row.name!r} is disabled")
        return _user(row)
