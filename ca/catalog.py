"""The CA's read-only query surface: what other parts (the RA's search,
reports, export and expiry notices) may ask of the CA's tables.

Every function takes the caller's connection, so a question can be asked in
a snapshot of the caller's choosing (``store.read()``) or inside the
transaction of a change the caller is making. Nothing here writes: the CA
service is the only writer of the CA's tables (store/tables/ca.py).

Certificates come back as ``CertificateRecord``s, or, for the listings that
stream many rows (``listing``, ``expiring``), as read-only rows with the
columns each function names. ``end_entity_id`` is the RA's end entity a
certificate belongs to (None when it belongs to none); the RA resolves it
against its own tables.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, or_, select, text

from ca.errors import BadInputError, NotFoundError
from ca.records import CertificateRecord, certificate_from_row, serial_hex, serial_to_db
from store.tables.ca import cas, certificate_counts, certificate_names, certificates

MIN_SUBSTRING = 3  # the trigram indexes cannot answer shorter substrings
STATUSES = ("good", "revoked", "hold")


def ca_id(conn: Connection, name: str) -> int:
    """The id of the CA named ``name`` (NotFoundError if there is none)."""
    found = conn.execute(select(cas.c.id).where(cas.c.name == name)).scalar()
    if found is None:
        raise NotFoundError(f"no CA named {name!r}")
    return found


def ca_names(conn: Connection) -> dict[int, str]:
    """Every CA's name by id, issuers of inventory certificates included."""
    return dict(conn.execute(select(cas.c.id, cas.c.name)).all())


def ca_name(conn: Connection, ca_id: int) -> str:
    """The name of the CA with id ``ca_id`` (NotFoundError if there is none)."""
    found = conn.execute(select(cas.c.name).where(cas.c.id == ca_id)).scalar()
    if found is None:
        raise NotFoundError(f"no CA with id {ca_id}")
    return found


def certificate(conn: Connection, ca_name: str, serial: int) -> CertificateRecord:
    """The certificate ``serial`` of CA ``ca_name`` (NotFoundError if unknown)."""
    row = conn.execute(
        select(certificates)
        .join(cas, cas.c.id == certificates.c.ca_id)
        .where(cas.c.name == ca_name, certificates.c.serial == serial_to_db(serial))
    ).one_or_none()
    if row is None:
        ca_id(conn, ca_name)  # no such CA: say so
        raise NotFoundError(f"CA {ca_name!r} has no certificate with serial {serial_hex(serial)}")
    return certificate_from_row(row, ca_name)


def by_fingerprint(conn: Connection, fingerprint: str) -> CertificateRecord | None:
    """The certificate whose DER has this SHA-256 (hex), or None."""
    row = conn.execute(
        select(certificates, cas.c.name.label("ca_name"))
        .join(cas, cas.c.id == certificates.c.ca_id)
        .where(certificates.c.fingerprint == fingerprint.lower())
    ).one_or_none()
    return None if row is None else certificate_from_row(row, row.ca_name)


@dataclass(frozen=True)
class CertificateFilter:
    """Conditions that all hold (AND). ``text``: a substring of the subject
    or of a SAN (case-blind, at least MIN_SUBSTRING characters); ``names``:
    SAN values one of which the certificate holds exactly (DNS names
    lowercased, as ``certificate_names`` keeps them); times in epoch seconds,
    ``*_after`` inclusive, ``*_before`` exclusive; ``after_id``: only ids
    above it (keyset paging); ``limit``: at most this many (None: all)."""

    text: str | None = None
    names: tuple[str, ...] | None = None
    serial: int | None = None
    ca: str | None = None
    end_entity_id: int | None = None
    profile: str | None = None
    status: str | None = None
    issued_after: int | None = None
    issued_before: int | None = None
    expires_after: int | None = None
    expires_before: int | None = None
    after_id: int | None = None
    limit: int | None = None


def _contains(conn: Connection, needle: str):
    """Rows whose subject or SAN list contains ``needle`` (case-blind)."""
    if conn.dialect.name == "sqlite":
        phrase = '"' + needle.replace('"', '""') + '"'
        match = text("certificates_fts MATCH :phrase").bindparams(phrase=phrase)
        return certificates.c.id.in_(
            select(text("rowid")).select_from(text("certificates_fts")).where(match)
        )
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(certificates.c.subject.ilike(pattern), certificates.c.sans.ilike(pattern))


def find(conn: Connection, f: CertificateFilter) -> list[tuple[int, CertificateRecord]]:
    """(id, record) pairs in id order: ids only grow, so a page never shifts
    when certificates are added."""
    where = []
    if f.text is not None:
        if len(f.text) < MIN_SUBSTRING:
            raise BadInputError(f"a substring search needs at least {MIN_SUBSTRING} characters")
        where.append(_contains(conn, f.text))
    if f.names is not None:
        where.append(
            certificates.c.id.in_(
                select(certificate_names.c.certificate_id).where(
                    certificate_names.c.name.in_(f.names)
                )
            )
        )
    if f.serial is not None:
        where.append(certificates.c.serial == serial_to_db(f.serial))
    if f.ca is not None:
        where.append(certificates.c.ca_id == ca_id(conn, f.ca))
    if f.end_entity_id is not None:
        where.append(certificates.c.end_entity_id == f.end_entity_id)
    if f.profile is not None:
        where.append(certificates.c.profile == f.profile)
    if f.status is not None:
        if f.status not in STATUSES:
            raise BadInputError(f"status must be one of {', '.join(STATUSES)}")
        where.append(certificates.c.status == f.status)
    for value, clause in (
        (f.issued_after, lambda v: certificates.c.issued_at >= v),
        (f.issued_before, lambda v: certificates.c.issued_at < v),
        (f.expires_after, lambda v: certificates.c.not_after >= v),
        (f.expires_before, lambda v: certificates.c.not_after < v),
        (f.after_id, lambda v: certificates.c.id > v),
    ):
        if value is not None:
            where.append(clause(value))
    query = select(certificates).order_by(certificates.c.id)
    if f.limit is not None:
        query = query.limit(f.limit)
    if where:
        query = query.where(and_(*where))
    rows = conn.execute(query).all()
    names = ca_names(conn) if rows else {}
    return [(row.id, certificate_from_row(row, names[row.ca_id])) for row in rows]


# -- aggregates ------------------------------------------------------------------------


def counts(conn: Connection) -> list[tuple[str, str, str, int]]:
    """(CA name, profile, status, count) of every non-empty group, sorted;
    kept by triggers, so no certificate is read."""
    c = certificate_counts.c
    rows = conn.execute(
        select(cas.c.name, c.profile, c.status, c.n)
        .select_from(certificate_counts.join(cas, cas.c.id == c.ca_id))
        .where(c.n > 0)
        .order_by(cas.c.name, c.profile, c.status)
    ).all()
    return [tuple(r) for r in rows]


def expiring_per_period(conn: Connection, start: int, period: int, periods: int) -> dict[int, int]:
    """How many valid (good) certificates expire in each period: {i: count}
    for notAfter in [start + i*period, start + (i+1)*period), i < periods;
    periods without any are left out."""
    index = ((certificates.c.not_after - start) // period).label("period")  # integer division
    rows = conn.execute(
        select(index, func.count().label("n"))
        .where(
            and_(
                certificates.c.status == "good",
                certificates.c.not_after >= start,
                certificates.c.not_after < start + periods * period,
            )
        )
        .group_by(text("period"))
    ).all()
    return {int(r.period): r.n for r in rows}


def valid_per_end_entity(conn: Connection, now: int, *, more_than: int = 0):
    """Rows (end_entity_id, profile, n): how many valid certificates (good,
    not expired at ``now``) each end entity holds per profile, where n
    exceeds ``more_than``."""
    return conn.execute(
        select(certificates.c.end_entity_id, certificates.c.profile, func.count().label("n"))
        .where(
            and_(
                certificates.c.end_entity_id.is_not(None),
                certificates.c.status == "good",
                certificates.c.not_after > now,
            )
        )
        .group_by(certificates.c.end_entity_id, certificates.c.profile)
        .having(func.count() > more_than)
    ).all()


# -- listings that stream ------------------------------------------------------------

_LISTED = (
    certificates.c.id,
    cas.c.name.label("ca"),
    certificates.c.serial,  # 40-digit hex, as stored
    certificates.c.status,
    certificates.c.subject,
    certificates.c.sans,  # JSON list of "type:value"
    certificates.c.not_before,
    certificates.c.not_after,
    certificates.c.revoked_at,
    certificates.c.profile,
    certificates.c.fingerprint,
    certificates.c.der,
    certificates.c.end_entity_id,
)


def listing(
    conn: Connection,
    *,
    after_id: int,
    limit: int,
    ca_id: int | None = None,
    issued_after: int | None = None,
    issued_before: int | None = None,
):
    """The next ``limit`` certificates after id ``after_id``, in id order
    (keyset batches: read each in its own short transaction). Rows hold
    id, ca (name), serial (40 hex digits), status, subject, sans (JSON),
    not_before, not_after, revoked_at, profile, fingerprint, der,
    end_entity_id."""
    where = [certificates.c.id > after_id]
    if ca_id is not None:
        where.append(certificates.c.ca_id == ca_id)
    if issued_after is not None:
        where.append(certificates.c.issued_at >= issued_after)
    if issued_before is not None:
        where.append(certificates.c.issued_at < issued_before)
    return conn.execute(
        select(*_LISTED)
        .select_from(certificates.join(cas, cas.c.id == certificates.c.ca_id))
        .where(and_(*where))
        .order_by(certificates.c.id)
        .limit(limit)
    ).all()


def expiring(conn: Connection, after: int, until: int):
    """Valid (good) certificates whose notAfter lies in (after, until], the
    soonest first. Rows hold id, ca (name), serial (40 hex digits), subject,
    sans (JSON), not_after, end_entity_id."""
    return conn.execute(
        select(
            certificates.c.id,
            cas.c.name.label("ca"),
            certificates.c.serial,
            certificates.c.subject,
            certificates.c.sans,
            certificates.c.not_after,
            certificates.c.end_entity_id,
        )
        .select_from(certificates.join(cas, cas.c.id == certificates.c.ca_id))
        .where(
            and_(
                certificates.c.status == "good",
                certificates.c.not_after > after,
                certificates.c.not_after <= until,
            )
        )
        .order_by(certificates.c.not_after, certificates.c.id)
    ).all()
