"""The CA's reads: CAs, chains and certificates, by name and serial, and
exports of them. Every other part looks CA data up through here."""

from cryptography import x509
from sqlalchemy import Connection, select

from ca import catalog
from ca.context import CAContext
from ca.errors import NotFoundError, PolicyError
from ca.export import export_ca_certificate, export_certificate
from ca.inventory import EXTERNAL
from ca.records import (
    CARecord,
    CertificateRecord,
    certificate_from_row,
    from_epoch,
    serial_hex,
    serial_to_db,
)
from store.tables.ca import cas, certificates


def own(ca: CARecord) -> CARecord:
    """Refuse to sign, revoke or publish for an external issuer."""
    if ca.origin == EXTERNAL:
        raise PolicyError(
            f"{ca.name!r} is the issuer of inventory certificates: its key is not "
            "here, so nothing is issued, revoked or published under it"
        )
    return ca


class Lookup:
    def __init__(self, context: CAContext):
        self.context = context

    # -- inside a transaction ------------------------------------------------------------

    def ca_row(self, conn: Connection, name: str):
        row = conn.execute(select(cas).where(cas.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no CA named {name!r}")
        return row

    def ca_record(self, conn: Connection, row) -> CARecord:
        parent = None
        if row.parent_id is not None:
            parent = conn.execute(select(cas.c.name).where(cas.c.id == row.parent_id)).scalar_one()
        return CARecord(
            id=row.id,
            name=row.name,
            subject=row.subject,
            parent=parent,
            key_id=row.key_id,
            key_type=row.key_type,
            serial=int(row.serial, 16),
            not_before=from_epoch(row.not_before),
            not_after=from_epoch(row.not_after),
            origin=row.origin,
            certificate=x509.load_der_x509_certificate(row.cert_der),
        )

    def ca_named(self, conn: Connection, name: str) -> CARecord:
        return self.ca_record(conn, self.ca_row(conn, name))

    def cert_row(self, conn: Connection, ca_row, serial: int):
        row = conn.execute(
            select(certificates).where(
                certificates.c.ca_id == ca_row.id, certificates.c.serial == serial_to_db(serial)
            )
        ).one_or_none()
        if row is None:
            raise NotFoundError(
                f"CA {ca_row.name!r} has no certificate with serial {serial_hex(serial)}"
            )
        return row

    # -- each in a read transaction of its own ---------------------------------------------

    def get_ca(self, name: str) -> CARecord:
        with self.context.store.read() as conn:
            return self.ca_named(conn, name)

    def get_own_ca(self, name: str) -> CARecord:
        """A CA whose key is held here: PolicyError for an issuer of
        inventory certificates (nothing is signed or published under it)."""
        return own(self.get_ca(name))

    def list_cas(self, *, external: bool = False) -> list[CARecord]:
        """The CAs held here (with ``external``, also the issuers of
        inventory certificates, which have no key here)."""
        with self.context.store.read() as conn:
            query = select(cas).order_by(cas.c.id)
            if not external:
                query = query.where(cas.c.origin != EXTERNAL)
            rows = conn.execute(query).all()
            return [self.ca_record(conn, row) for row in rows]

    def chain(self, name: str) -> list[x509.Certificate]:
        """The CA's certificate followed by its parents, up to the root held here."""
        out = []
        with self.context.store.read() as conn:
            row = self.ca_row(conn, name)
            while row is not None:
                out.append(x509.load_der_x509_certificate(row.cert_der))
                if row.parent_id is None:
                    break
                row = conn.execute(select(cas).where(cas.c.id == row.parent_id)).one()
        return out

    def _is_self_issued(self, ca_name: str, serial: int) -> bool:
        """``serial`` is the CA's own self-issued certificate, not one it issued."""
        with self.context.store.read() as conn:
            ca_row = self.ca_row(conn, ca_name)
            issued = conn.execute(
                select(certificates.c.id).where(
                    certificates.c.ca_id == ca_row.id, certificates.c.serial == serial_to_db(serial)
                )
            ).first()
            if issued is not None or int(ca_row.serial, 16) != serial:
                return False
            cert = x509.load_der_x509_certificate(ca_row.cert_der)
            return cert.issuer == cert.subject

    def get_certificate(self, ca_name: str, serial: int) -> CertificateRecord:
        with self.context.store.read() as conn:
            row = self.cert_row(conn, self.ca_row(conn, ca_name), serial)
            return certificate_from_row(row, ca_name)

    def private_key_pem(self, ca_name: str, serial: int) -> bytes | None:
        """The encrypted PKCS#8 key of a certificate whose key was generated here."""
        with self.context.store.read() as conn:
            return self.cert_row(conn, self.ca_row(conn, ca_name), serial).private_key

    def list_certificates(
        self,
        ca_name: str | None = None,
        status: str | None = None,
        limit: int = 1000,
        *,
        now: int | None = None,
    ) -> list[CertificateRecord]:
        """Certificates in issue order; ``status`` is a stored status
        (``catalog.STORED``: good, revoked, hold) or one of
        ``catalog.STATUSES`` as of ``now`` (active and expired need it)."""
        with self.context.store.read() as conn:
            names = dict(conn.execute(select(cas.c.id, cas.c.name)).all())
            query = select(certificates).order_by(certificates.c.id).limit(limit)
            if ca_name is not None:
                query = query.where(certificates.c.ca_id == self.ca_row(conn, ca_name).id)
            if status is not None:
                query = query.where(
                    certificates.c.status == status
                    if status in catalog.STORED
                    else catalog.status_clause(status, now)
                )
            return [certificate_from_row(r, names[r.ca_id]) for r in conn.execute(query)]

    def export(
        self,
        ca_name: str,
        serial: int | None,
        fmt: str,
        *,
        export_passphrase: bytes | None = None,
        actor: str = "system",
    ) -> bytes:
        """A certificate with its chain in one of ``ca.export.FORMATS``:
        certificate ``serial`` issued by ``ca_name``, or with ``serial`` None
        the CA's own certificate (also a root's, under its own serial: it
        issued itself, but has no row among the certificates it issued)."""
        context = self.context
        target = ca_name if serial is None else f"{ca_name}/{serial_hex(serial)}"
        with context.audit.failures(actor, "ca.export", target):
            if serial is None or self._is_self_issued(ca_name, serial):
                return export_ca_certificate(self.chain(ca_name), fmt)
            record = self.get_certificate(ca_name, serial)
            chain = self.chain(ca_name)
            if fmt != "p12":
                return export_certificate(record, chain, fmt)
            data = export_certificate(
                record,
                chain,
                fmt,
                private_key_pem=self.private_key_pem(ca_name, serial),
                key_passphrase=context.passphrase.get(),
                export_passphrase=export_passphrase,
            )
            # Handing out a private key is worth an audit record of its own.
            with context.store.transaction() as conn:
                context.audit.ok(conn, actor, "ca.export", target, format=fmt)
            return data
