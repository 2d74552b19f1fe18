"""One-time enrollment secrets: what a device proves it may enroll as an
end entity with, over EST (the HTTP Basic password, RFC 7030 3.2.3) or
SCEP (the CSR's challengePassword, RFC 8894 2.3).

An RA officer makes one for an end entity and hands it to the device (or
its installer) out of band; it is shown once. Only its SHA-256 is kept (a
secret is 160 random bits in RFC 4648 base32, which PKCS#9's
PrintableString carries as it is), it expires, and it is redeemed once: a
conditional update moves it from unused to used in the transaction that
records what redeemed it, so two devices racing with one secret get one
enrollment. A redemption whose request then fails the RA's or the CA's
checks is given back (``restore``), so a bad CSR costs the device nothing.
"""

import base64
import hashlib
import secrets as random
from collections.abc import Callable

from sqlalchemy import Connection, insert, select, update

from ca.errors import BadInputError, NotFoundError, PolicyError
from common.clock import iso8601
from store import Store
from store.tables.ra import end_entities, enrollment_secrets

PROTOCOLS = ("est", "scep")
MAX_DAYS = 90
DEFAULT_DAYS = 7


class SecretRefused(Exception):
    """The secret does not authorize this enrollment; the message says why
    in words a device's operator can act on (never whether another entity
    has such a secret)."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.strip().encode()).hexdigest()


class EnrollmentSecrets:
    def __init__(self, store: Store, now: Callable[[], int], audit):
        self.store = store
        self.now = now
        self.audit = audit

    def create(
        self,
        entity_id: int,
        entity_name: str,
        *,
        protocols: tuple[str, ...] = PROTOCOLS,
        days: int = DEFAULT_DAYS,
        actor: str,
    ) -> tuple[str, str, int]:
        """A new secret for an end entity: (id, secret, expires_at)."""
        protocols = tuple(sorted(set(protocols)))
        if not protocols or any(p not in PROTOCOLS for p in protocols):
            raise BadInputError(f"protocols must be among {', '.join(PROTOCOLS)}")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
            raise BadInputError(f"days must be a whole number from 1 to {MAX_DAYS}")
        secret_id = "es-" + random.token_hex(8)
        secret = base64.b32encode(random.token_bytes(20)).decode()
        now = self.now()
        expires_at = now + days * 86400
        with self.store.transaction() as conn:
            conn.execute(
                insert(enrollment_secrets).values(
                    id=secret_id,
                    end_entity_id=entity_id,
                    protocols=",".join(protocols),
                    digest=digest(secret),
                    status="unused",
                    created_by=actor,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            self.audit.ok(
                conn,
                actor,
                "ra.secret.create",
                secret_id,
                entity=entity_name,
                protocols=list(protocols),
                expires_at=iso8601(expires_at),
            )
        return secret_id, secret, expires_at

    def list(self, entity_id: int | None = None) -> list[dict]:
        query = select(enrollment_secrets, end_entities.c.name.label("entity")).join(
            end_entities, end_entities.c.id == enrollment_secrets.c.end_entity_id
        )
        if entity_id is not None:
            query = query.where(enrollment_secrets.c.end_entity_id == entity_id)
        with self.store.read() as conn:
            rows = conn.execute(
                query.order_by(enrollment_secrets.c.created_at, enrollment_secrets.c.id)
            ).all()
        now = self.now()
        return [
            {
                "id": r.id,
                "entity": r.entity,
                "protocols": r.protocols.split(","),
                "status": "expired" if r.status == "unused" and r.expires_at <= now else r.status,
                "created_by": r.created_by,
                "created_at": iso8601(r.created_at),
                "expires_at": iso8601(r.expires_at),
                "used_at": iso8601(r.used_at) if r.used_at else None,
                "used_by": r.used_by,
            }
            for r in rows
        ]

    def revoke(self, secret_id: str, *, actor: str) -> None:
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(enrollment_secrets)
                .where(
                    enrollment_secrets.c.id == secret_id, enrollment_secrets.c.status == "unused"
                )
                .values(status="revoked")
            ).rowcount
            if not changed:
                status = conn.execute(
                    select(enrollment_secrets.c.status).where(enrollment_secrets.c.id == secret_id)
                ).scalar_one_or_none()
                if status is None:
                    raise NotFoundError(f"no enrollment secret {secret_id!r}")
                raise PolicyError(f"enrollment secret {secret_id!r} is {status}; it stays so")
            self.audit.ok(conn, actor, "ra.secret.revoke", secret_id)

    def redeem(
        self,
        secret: str,
        *,
        protocol: str,
        used_by: str,
        entity_id: int | None = None,
        on_redeemed: Callable[[Connection, str, int], None] | None = None,
    ) -> tuple[str, int]:
        """Use ``secret`` once for ``protocol``: (secret id, end entity id).
        ``entity_id`` (the entity the device names, EST's Basic user) must
        be its entity. ``on_redeemed(conn, secret_id, entity_id)`` runs in
        the redeeming transaction (the protocol's record of what used it)."""
        with self.store.transaction() as conn:
            row = conn.execute(
                select(enrollment_secrets).where(enrollment_secrets.c.digest == digest(secret))
            ).one_or_none()
            problem = _refusal(row, protocol, entity_id, self.now())
            if problem:
                raise SecretRefused(problem)
            t = enrollment_secrets.c
            won = conn.execute(
                update(enrollment_secrets)
                .where(t.id == row.id, t.status == "unused")
                .values(status="used", used_at=self.now(), used_by=used_by[:255])
            ).rowcount
            if not won:
                raise SecretRefused("the enrollment secret has already been used")
            if on_redeemed is not None:
                on_redeemed(conn, row.id, row.end_entity_id)
        return row.id, row.end_entity_id

    def holder(self, secret: str) -> int | None:
        """The end entity an unused, unexpired secret is for; None otherwise.
        Redeems nothing (EST csrattrs: what the device's entity's CSR needs)."""
        with self.store.read() as conn:
            row = conn.execute(
                select(enrollment_secrets).where(enrollment_secrets.c.digest == digest(secret))
            ).one_or_none()
        if row is None or row.status != "unused" or row.expires_at <= self.now():
            return None
        return row.end_entity_id

    def matches(self, secret_id: str, secret: str) -> bool:
        """Whether ``secret`` is the one with ``secret_id`` (used or not):
        a device repeating a request that is waiting for approvers."""
        with self.store.read() as conn:
            stored = conn.execute(
                select(enrollment_secrets.c.digest).where(enrollment_secrets.c.id == secret_id)
            ).scalar_one_or_none()
        return stored is not None and random.compare_digest(stored, digest(secret))

    def restore(
        self, secret_id: str, used_by: str, on_restored: Callable[[Connection], None] | None = None
    ) -> None:
        """Give a redeemed secret back: the request it redeemed was refused
        and nothing was issued or queued for it."""
        with self.store.transaction() as conn:
            conn.execute(
                update(enrollment_secrets)
                .where(
                    enrollment_secrets.c.id == secret_id,
                    enrollment_secrets.c.status == "used",
                    enrollment_secrets.c.used_by == used_by[:255],
                )
                .values(status="unused", used_at=None, used_by=None)
            )
            if on_restored is not None:
                on_restored(conn)


def _refusal(row, protocol: str, entity_id: int | None, now: int) -> str | None:
    if row is None:
        return "no such enrollment secret"
    if entity_id is not None and row.end_entity_id != entity_id:
        return "no such enrollment secret"
    if protocol not in row.protocols.split(","):
        return f"the enrollment secret is not for {protocol.upper()}"
    if row.status == "used":
        return "the enrollment secret has already been used"
    if row.status == "revoked":
        return "the enrollment secret was revoked"
    if row.expires_at <= now:
        return f"the enrollment secret expired at {iso8601(row.expires_at)}"
    return None
