"""Full CRLs (RFC 5280 5.1), streamed from the store and encoded natively.

Revoked rows are read in serial order in chunks and fed straight into the
native entry writer (ca/_crlcore.pyx), so no Python object per entry
outlives its row; only the finished TBSCertList is signed.

Contents follow the CA/B Forum BR 7.2: reasonCode is left out for
unspecified; holds appear as certificateHold; a revoked certificate stays
listed until it has appeared on one CRL issued after it expired, then it is
dropped; nextUpdate is at most 10 days after thisUpdate.
"""

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from sqlalchemy import Connection, func, insert, select

from ca import crlcore, der
from ca.errors import CAError, PolicyError
from ca.keys import signature_algorithm_for
from ca.records import CARecord, to_epoch
from ca.store.schema import crls
from ca.x509build import Extension

CERTIFICATE_HOLD = 6
MAX_VALIDITY_DAYS = 10  # BR 4.9.7 for subscriber CRLs
DEFAULT_VALIDITY_DAYS = 7
CHUNK = 10_000


@dataclass(frozen=True)
class CRLRecord:
    ca: str
    number: int
    this_update: int
    next_update: int
    entries: int
    der: bytes


def _issuer_name_der(ca: CARecord) -> bytes:
    """The CA's subject exactly as encoded in its certificate (RFC 5280 5.1.2.3)."""
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(ca.cert_der)["tbs_certificate"]["subject"].dump()


_REVOKED_SQL = (
    "SELECT serial, revoked_at, "
    # BR 7.2.2: unspecified (0) is expressed by leaving reasonCode out; a hold
    # is listed as certificateHold.
    "CASE WHEN status = 'hold' THEN 6 WHEN revocation_reason = 0 THEN NULL "
    "ELSE revocation_reason END, invalidity_date "
    "FROM certificates WHERE ca_id = {ca} AND status IN ('revoked', 'hold') "
    "AND not_after >= {since} ORDER BY serial"
)


def revoked_rows(conn: Connection, ca_id: int, listed_since: int | None):
    """(serial_hex, revoked_at, reason or None, invalidity_date or None), in serial order.

    ``listed_since``: the previous full CRL's thisUpdate; certificates that
    expired before it have already appeared on a CRL after expiry.

    Rows come straight from the DB-API cursor (a server-side cursor on
    PostgreSQL) inside the caller's transaction: plain tuples, fetched in
    chunks, never a list of them.
    """
    raw = conn.connection.dbapi_connection
    since = listed_since if listed_since is not None else -(2**62)
    if conn.dialect.name == "postgresql":
        cursor = raw.cursor(name="revoca_crl_rows")
        cursor.itersize = CHUNK
        cursor.execute(
            _REVOKED_SQL.format(ca="%(ca)s", since="%(since)s"), {"ca": ca_id, "since": since}
        )
    else:
        cursor = raw.cursor()
        cursor.arraysize = CHUNK
        cursor.execute(_REVOKED_SQL.format(ca="?", since="?"), (ca_id, since))
    try:
        while True:
            chunk = cursor.fetchmany(CHUNK)
            if not chunk:
                return
            yield from chunk
    finally:
        cursor.close()


def encode_tbs(
    issuer_name: bytes,
    algorithm,
    number: int,
    this_update: int,
    next_update: int,
    entries: bytes,
    count: int,
    key_identifier: bytes,
    extra_extensions: list[Extension] = (),
) -> bytes:
    extensions = [
        Extension(x509.AuthorityKeyIdentifier(key_identifier, None, None), False),
        Extension(x509.CRLNumber(number), False),
        *extra_extensions,
    ]
    parts = [
        der.integer(1),  # v2 (RFC 5280 5.1.2.1: extensions present)
        algorithm.algorithm_identifier,
        issuer_name,
        crlcore.encode_time(this_update),
        crlcore.encode_time(next_update),
    ]
    if count:
        parts.append(der.tlv(0x30, entries))  # absent, not empty, when none (5.1.2.6)
    parts.append(der.explicit(0, der.sequence(*(e.encode() for e in extensions))))
    return der.sequence(*parts)


def issue_full_crl(
    service,
    ca_name: str,
    *,
    days: int = DEFAULT_VALIDITY_DAYS,
    now: datetime | None = None,
    actor: str = "system",
) -> CRLRecord:
    """Sign and store the next full CRL of ``ca_name``."""
    with service._audited(actor, "ca.crl", ca_name):
        if not 1 <= days <= MAX_VALIDITY_DAYS:
            raise PolicyError(f"CRL validity must be 1 to {MAX_VALIDITY_DAYS} days (BR 4.9.7)")
        ca = service.get_ca(ca_name)
        this_update = to_epoch(now or service.clock())
        next_update = this_update + days * 86400
        algorithm = signature_algorithm_for(ca.certificate.public_key())
        issuer_name = _issuer_name_der(ca)
        key_identifier = x509.SubjectKeyIdentifier.from_public_key(
            ca.certificate.public_key()
        ).digest
        with service.store.transaction() as conn:  # serialises CRL numbering
            number = (
                conn.execute(select(func.max(crls.c.number)).where(crls.c.ca_id == ca.id)).scalar()
                or 0
            ) + 1
            listed_since = conn.execute(
                select(func.max(crls.c.this_update)).where(
                    crls.c.ca_id == ca.id, crls.c.kind == "full"
                )
            ).scalar()
            writer = crlcore.CRLEntryWriter()
            writer.add_rows(revoked_rows(conn, ca.id, listed_since))
            tbs = encode_tbs(
                issuer_name,
                algorithm,
                number,
                this_update,
                next_update,
                writer.getvalue(),
                writer.count,
                key_identifier,
            )
            signature = service.token.sign(ca.key_id, tbs, algorithm)
            crl_der = der.sequence(tbs, algorithm.algorithm_identifier, der.bit_string(signature))
            _self_check(crl_der, ca)
            conn.execute(
                insert(crls).values(
                    ca_id=ca.id,
                    number=number,
                    kind="full",
                    this_update=this_update,
                    next_update=next_update,
                    entries=writer.count,
                    der=crl_der,
                )
            )
            service._audit_ok(conn, actor, "ca.crl", ca_name, number=number, entries=writer.count)
        return CRLRecord(ca.name, number, this_update, next_update, writer.count, crl_der)


def _self_check(crl_der: bytes, ca: CARecord) -> None:
    try:
        crl = x509.load_der_x509_crl(crl_der)
        valid = crl.is_signature_valid(ca.certificate.public_key())
    except (ValueError, InvalidSignature) as exc:
        raise CAError(f"internal error: the signed CRL failed its self-check: {exc}") from exc
    if not valid:
        raise CAError("internal error: the signed CRL's signature does not verify")
