"""ACME Renewal Information (RFC 9773): the certificate identifier, the
suggested renewal window (now for certificates that must be replaced),
and the checks of a new order's ``replaces``."""

from cryptography import x509
from sqlalchemy import and_, or_, select

from acmesrv import jws
from acmesrv.base import (
    ARI_RETRY_SECONDS,
    Account,
    Answer,
)
from acmesrv.problems import Problem
from ca import catalog
from ca.errors import KeyCompromisedError, NotFoundError
from ca.records import serial_hex
from common.clock import iso8601
from store.tables.acme import (
    acme_orders,
)


class Renewal:
    # -- renewal information (RFC 9773) ------------------------------------------------------

    def _by_cert_id(self, cert_id: str):
        key_id_text, dot, serial_text = cert_id.partition(".")
        if not dot:
            raise Problem(
                "malformed", "a renewal-info id is base64url(AKI keyIdentifier).base64url(serial)"
            )
        key_id = jws.b64decode(key_id_text, "the certificate id's key identifier")
        serial_bytes = jws.b64decode(serial_text, "the certificate id's serial")
        if (
            not serial_bytes
            or serial_bytes[0] & 0x80
            or (len(serial_bytes) > 1 and serial_bytes[0] == 0 and not serial_bytes[1] & 0x80)
        ):
            # X.690 8.3.2: the minimal two's complement encoding, positive.
            raise Problem("malformed", "the certificate id's serial is not a positive DER INTEGER")
        serial = int.from_bytes(serial_bytes, "big")
        for ca in self.ca.list_cas():
            try:
                ski = ca.certificate.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier
                ).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == key_id:
                try:
                    with self.store.read() as conn:
                        return catalog.certificate(conn, ca.name, serial), ca
                except NotFoundError:
                    break
        raise Problem("malformed", f"no certificate {cert_id!r} was issued here", status=404)

    def renewal_info(self, cert_id: str) -> Answer:
        """RFC 9773 4.2: a suggested window to renew in, two thirds into the
        validity period; in the past (renew now) when the certificate is
        revoked, its key is on the blocklist, or its CA's certificate ends
        before it or is revoked."""
        record, ca = self._by_cert_id(cert_id)
        nb, na = int(record.not_before.timestamp()), int(record.not_after.timestamp())
        life = na - nb
        start, end = nb + life * 2 // 3, nb + life * 5 // 6
        now = self.now()
        why = self._replace_now(record, ca)
        if why:
            start, end = now - 86400, now - 1
        body = {"suggestedWindow": {"start": iso8601(start), "end": iso8601(end)}}
        return Answer(body, 200, retry_after=ARI_RETRY_SECONDS)

    def _replace_now(self, record, ca) -> str | None:
        if record.status in ("revoked", "hold"):
            return "revoked"
        if ca.not_after < record.not_after:
            return "ca-expires"
        try:
            self.ca.check_key(record.certificate.public_key())
        except KeyCompromisedError:
            return "key-compromised"
        return None

    def _check_replaces(self, account: Account, replaces, identifiers) -> tuple[str, str]:
        """RFC 9773 5: the certificate replaced is this account's and shares
        a name with the new order. Returns its identifier as this server
        writes it (one spelling per certificate, so a re-encoded one cannot
        replace it twice) and the order that issued it."""
        if not isinstance(replaces, str):
            raise Problem("malformed", "'replaces' is a certificate identifier (RFC 9773)")
        record, _ = self._by_cert_id(replaces)
        key_id, _, serial = replaces.partition(".")
        replaces = ".".join(
            jws.b64encode(jws.b64decode(part, "the certificate id")) for part in (key_id, serial)
        )
        with self.store.read() as conn:
            found = conn.execute(
                select(acme_orders.c.id, acme_orders.c.account_id).where(
                    acme_orders.c.ca == record.ca, acme_orders.c.serial == serial_hex(record.serial)
                )
            ).one_or_none()
            owner = found.account_id if found is not None else None
            if owner != account.id:
                raise Problem(
                    "unauthorized",
                    "the certificate 'replaces' names was not ordered by this account",
                )
            if self._replaced_by(conn, replaces, self.now()):
                raise Problem("alreadyReplaced", "another order replaces that certificate already")
        names = {san.partition(":")[2] for san in record.sans}
        if not names & {i.value for i in identifiers}:
            raise Problem("malformed", "the replaced certificate shares no name with this order")
        return replaces, found.id

    def _replaced_by(self, conn, replaces: str, now: int):
        """An order that is not invalid (RFC 9773 5), nor expired unfinished,
        replacing the certificate."""
        return conn.execute(
            select(acme_orders.c.id).where(
                acme_orders.c.replaces == replaces,
                or_(
                    acme_orders.c.status.in_(("processing", "valid")),
                    and_(
                        acme_orders.c.status.in_(("pending", "ready")),
                        acme_orders.c.expires_at >= now,
                    ),
                ),
            )
        ).first()
