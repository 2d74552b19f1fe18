"""Revocation, hold and release (RFC 5280 5.3.1)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from ca import baseline
from ca.blocklist import block_revoked
from ca.context import CAContext
from ca.errors import (
    BadInputError,
    ConflictError,
    PolicyError,
)
from ca.events import append_event
from ca.lookup import Lookup, own
from ca.reasons import RevocationReason
from ca.records import (
    CertificateRecord,
    certificate_from_row,
    from_epoch,
    serial_hex,
    to_epoch,
)
from store.tables.ca import certificates

# A revocation time a little ahead of our clock is tolerated (clock skew between nodes).
MAX_FUTURE_SKEW = timedelta(minutes=5)


def check_after_not_before(revoked_at: datetime, not_before: int) -> None:
    """RFC 5280 5.1.2.6: revocationDate is when the revocation occurred, which
    cannot precede the certificate's validity (notBefore, 4.1.2.5)."""
    if to_epoch(revoked_at) < not_before:
        raise BadInputError(
            f"the revocation time {revoked_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z lies before "
            f"the certificate's notBefore ({from_epoch(not_before):%Y-%m-%d %H:%M:%S}Z)"
        )


class Revocation:
    """Revocations, holds and releases."""

    def __init__(self, context: CAContext, lookup: Lookup):
        self.context = context
        self.lookup = lookup

    def _checked(self, conn, ca_name: str, serial: int, reason: RevocationReason, revoked_at):
        """The CA and the certificate's row, once every check of a
        revocation with ``reason`` at ``revoked_at`` has passed."""
        if reason == RevocationReason.removeFromCRL:
            raise BadInputError(
                "removeFromCRL is not a revocation reason here: a certificate on hold "
                "is released from hold, not revoked"
            )
        ca = own(self.lookup.ca_named(conn, ca_name))
        row = self.lookup.cert_row(conn, self.lookup.ca_row(conn, ca_name), serial)
        check_after_not_before(revoked_at, row.not_before)
        profile = self.context.profiles.get(row.profile)
        if profile is not None and reason not in profile.allowed_reasons():
            raise PolicyError(
                f"profile {row.profile!r} does not allow revocation reason "
                f"{reason.name}; allowed: {', '.join(profile.revocation_reasons) or 'none'}"
            )
        baseline.check_revocation(self.context.profiles, conn, ca, profile, reason, row.der)
        if row.status == "revoked":
            raise ConflictError(
                f"certificate {serial_hex(serial)} is already revoked since "
                f"{from_epoch(row.revoked_at):%Y-%m-%d %H:%M:%S}Z "
                f"({RevocationReason(row.revocation_reason).name})"
            )
        if reason == RevocationReason.certificateHold and row.status == "hold":
            raise ConflictError(f"certificate {serial_hex(serial)} is already on hold")
        return ca, row

    def check_revocation(self, ca_name: str, serial: int, reason: RevocationReason) -> None:
        """Every check ``revoke`` makes for a revocation now, without
        revoking: the error it would raise, or nothing."""
        with self.context.store.read() as conn:
            self._checked(
                conn, ca_name, serial, reason, self.context.clock().replace(microsecond=0)
            )

    def revoke(
        self,
        ca_name: str,
        serial: int,
        reason: RevocationReason,
        *,
        revoked_at: datetime | None = None,
        invalidity_date: datetime | None = None,
        actor: str = "system",
    ) -> CertificateRecord:
        """Revoke, or put on hold with ``certificateHold`` (RFC 5280 5.3.1)."""
        target = f"{ca_name}/{serial_hex(serial)}"
        with self.context.audit.failures(actor, "ca.revoke", target):
            now = self.context.clock()
            revoked_at = (revoked_at or now).replace(microsecond=0)
            if revoked_at > now + MAX_FUTURE_SKEW:
                raise BadInputError("the revocation time lies in the future")
            if invalidity_date is not None and invalidity_date > revoked_at:
                raise BadInputError("the invalidity date must not be after the revocation time")
            if reason == RevocationReason.removeFromCRL:
                raise BadInputError(
                    "removeFromCRL is not a revocation reason here: a certificate on hold "
                    "is released from hold, not revoked"
                )
            with self.context.store.transaction() as conn:
                ca, row = self._checked(conn, ca_name, serial, reason, revoked_at)
                hold = reason == RevocationReason.certificateHold
                status = "hold" if hold else "revoked"
                values = {
                    "status": status,
                    "revoked_at": to_epoch(revoked_at),
                    "revocation_reason": int(reason),
                    "invalidity_date": to_epoch(invalidity_date) if invalidity_date else None,
                }
                seq = append_event(
                    conn,
                    ca.id,
                    serial,
                    "hold" if hold else "revoked",
                    self.context.now_ms(),
                    revoked_at=values["revoked_at"],
                    reason=int(reason),
                    not_after=row.not_after,
                )
                conn.execute(
                    update(certificates)
                    .where(certificates.c.id == row.id)
                    .values(**values, status_seq=seq, status_changed_at=to_epoch(now))
                )
                block_revoked(conn, row, reason, now, actor)  # BR 6.1.1.3 (4)
                self.context.audit.ok(
                    conn,
                    actor,
                    "ca.revoke",
                    target,
                    reason=reason.name,
                    revoked_at=revoked_at.isoformat(),
                    previous_status=row.status,
                    # What `audit verify` replays against the certificates table.
                    status=status,
                    invalidity_date=invalidity_date.isoformat() if invalidity_date else None,
                )
                return certificate_from_row(
                    self.lookup.cert_row(conn, self.lookup.ca_row(conn, ca_name), serial), ca_name
                )

    def release_hold(
        self, ca_name: str, serial: int, *, actor: str = "system"
    ) -> CertificateRecord:
        target = f"{ca_name}/{serial_hex(serial)}"
        with (
            self.context.audit.failures(actor, "ca.release_hold", target),
            self.context.store.transaction() as conn,
        ):
            ca = own(self.lookup.ca_named(conn, ca_name))
            row = self.lookup.cert_row(conn, self.lookup.ca_row(conn, ca_name), serial)
            if row.status != "hold":
                raise ConflictError(
                    f"certificate {serial_hex(serial)} is {row.status}, not on hold"
                )
            seq = append_event(
                conn, ca.id, serial, "released", self.context.now_ms(), not_after=row.not_after
            )
            conn.execute(
                update(certificates)
                .where(certificates.c.id == row.id)
                .values(
                    status="good",
                    revoked_at=None,
                    revocation_reason=None,
                    invalidity_date=None,
                    status_seq=seq,
                    # removeFromCRL entries in delta CRLs carry this time.
                    status_changed_at=to_epoch(self.context.clock()),
                )
            )
            self.context.audit.ok(conn, actor, "ca.release_hold", target)
            return certificate_from_row(
                self.lookup.cert_row(conn, self.lookup.ca_row(conn, ca_name), serial), ca_name
            )
