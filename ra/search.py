"""Certificate search and reports over the CA store.

Search filters combine (AND): subject or SAN substring (``text``, at least
3 characters: it goes through the trigram index), a hostname (the SANs that
name it exactly or through a wildcard one label up), serial, issuing CA,
end entity, profile, status, and issuance / expiry windows. Results come in
id order, a page at a time (``after`` = the last id of the previous page),
so a page never shifts when certificates are added.

Reports: counts by CA, profile and status; certificates expiring per week
for the next N weeks; end entities holding more than one valid certificate
of the same profile (the "only intended certificates" check).
"""

import csv
import io
import ipaddress
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, or_, select, text

from ca.errors import BadInputError, NotFoundError
from ca.records import CertificateRecord, certificate_from_row, parse_serial, serial_to_db
from store.tables.ca import cas, certificate_counts, certificate_names, certificates
from store.tables.ra import end_entities

MIN_SUBSTRING = 3
MAX_PAGE = 1000
WEEK = 7 * 86400
STATUSES = ("good", "revoked", "hold")


@dataclass(frozen=True)
class CertificateQuery:
    text: str | None = None
    hostname: str | None = None
    serial: str | None = None
    issuer: str | None = None
    entity: str | None = None
    profile: str | None = None
    status: str | None = None
    issued_after: int | None = None
    issued_before: int | None = None
    expires_after: int | None = None
    expires_before: int | None = None
    after: int | None = None
    limit: int = 100


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


def _hostname_names(hostname: str) -> list[str]:
    """The SAN values (as in certificate_names) that cover ``hostname``:
    itself, and the wildcard one label up."""
    host = hostname.strip().lower().rstrip(".")
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    if not host or len(host) > 253 or " " in host or "*" in host:
        raise BadInputError(f"invalid hostname {hostname!r}")
    names = [host]
    if "." in host:
        names.append("*." + host.split(".", 1)[1])
    return names


def search(conn: Connection, q: CertificateQuery) -> list[tuple[int, CertificateRecord]]:
    """(id, record) pairs, in id order."""
    if not isinstance(q.limit, int) or not 1 <= q.limit <= MAX_PAGE:
        raise BadInputError(f"limit must be 1 to {MAX_PAGE}")
    where = []
    if q.text is not None:
        if len(q.text) < MIN_SUBSTRING:
            raise BadInputError(f"a substring search needs at least {MIN_SUBSTRING} characters")
        where.append(_contains(conn, q.text))
    if q.hostname is not None:
        where.append(
            certificates.c.id.in_(
                select(certificate_names.c.certificate_id).where(
                    certificate_names.c.name.in_(_hostname_names(q.hostname))
                )
            )
        )
    if q.serial is not None:
        where.append(certificates.c.serial == serial_to_db(parse_serial(q.serial)))
    if q.issuer is not None:
        ca_id = conn.execute(select(cas.c.id).where(cas.c.name == q.issuer)).scalar()
        if ca_id is None:
            raise NotFoundError(f"no CA named {q.issuer!r}")
        where.append(certificates.c.ca_id == ca_id)
    if q.entity is not None:
        entity_id = conn.execute(
            select(end_entities.c.id).where(end_entities.c.name == q.entity)
        ).scalar()
        if entity_id is None:
            raise NotFoundError(f"no end entity named {q.entity!r}")
        where.append(certificates.c.end_entity_id == entity_id)
    if q.profile is not None:
        where.append(certificates.c.profile == q.profile)
    if q.status is not None:
        if q.status not in STATUSES:
            raise BadInputError(f"status must be one of {', '.join(STATUSES)}")
        where.append(certificates.c.status == q.status)
    for value, clause in (
        (q.issued_after, lambda v: certificates.c.issued_at >= v),
        (q.issued_before, lambda v: certificates.c.issued_at < v),
        (q.expires_after, lambda v: certificates.c.not_after >= v),
        (q.expires_before, lambda v: certificates.c.not_after < v),
        (q.after, lambda v: certificates.c.id > v),
    ):
        if value is not None:
            where.append(clause(value))
    query = select(certificates).order_by(certificates.c.id).limit(q.limit)
    if where:
        query = query.where(and_(*where))
    rows = conn.execute(query).all()
    names = dict(conn.execute(select(cas.c.id, cas.c.name)).all())
    return [(row.id, certificate_from_row(row, names[row.ca_id])) for row in rows]


# -- reports --------------------------------------------------------------------------


def counts(conn: Connection) -> list[dict]:
    """Certificates by CA, profile and status (kept by triggers: no scan)."""
    c = certificate_counts.c
    rows = conn.execute(
        select(cas.c.name, c.profile, c.status, c.n)
        .select_from(certificate_counts.join(cas, cas.c.id == c.ca_id))
        .where(c.n > 0)
        .order_by(cas.c.name, c.profile, c.status)
    ).all()
    return [{"ca": r.name, "profile": r.profile, "status": r.status, "count": r.n} for r in rows]


def expiring(conn: Connection, now: int, weeks: int) -> list[dict]:
    """Valid (good) certificates expiring in each of the next ``weeks`` weeks
    (week 0 starts now); every week is listed, empty ones with 0."""
    if not isinstance(weeks, int) or not 1 <= weeks <= 520:
        raise BadInputError("weeks must be 1 to 520")
    week = ((certificates.c.not_after - now) // WEEK).label("week")  # integer division
    rows = conn.execute(
        select(week, func.count().label("n"))
        .where(
            and_(
                certificates.c.status == "good",
                certificates.c.not_after >= now,
                certificates.c.not_after < now + weeks * WEEK,
            )
        )
        .group_by(text("week"))
    ).all()
    found = {int(r.week): r.n for r in rows}
    return [
        {"week": i, "from": now + i * WEEK, "to": now + (i + 1) * WEEK, "count": found.get(i, 0)}
        for i in range(weeks)
    ]


def duplicates(conn: Connection, now: int) -> list[dict]:
    """End entities with more than one valid certificate of one profile."""
    rows = conn.execute(
        select(
            end_entities.c.name,
            certificates.c.profile,
            func.count().label("n"),
        )
        .select_from(
            certificates.join(end_entities, end_entities.c.id == certificates.c.end_entity_id)
        )
        .where(and_(certificates.c.status == "good", certificates.c.not_after > now))
        .group_by(end_entities.c.name, certificates.c.profile)
        .having(func.count() > 1)
        .order_by(end_entities.c.name, certificates.c.profile)
    ).all()
    return [{"entity": r.name, "profile": r.profile, "valid_certificates": r.n} for r in rows]


def to_csv(rows: list[dict]) -> str:
    """One header line, then one line per row (RFC 4180)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
