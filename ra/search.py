"""Certificate search and reports, built on the CA's read-only catalog
(ca/catalog.py).

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

from sqlalchemy import Connection, select

from ca import catalog
from ca.errors import BadInputError, NotFoundError
from ca.records import CertificateRecord, parse_serial
from store.tables.ra import end_entities

MIN_SUBSTRING = catalog.MIN_SUBSTRING
MAX_PAGE = 1000
WEEK = 7 * 86400
STATUSES = catalog.STATUSES


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


def _hostname_names(hostname: str) -> tuple[str, ...]:
    """The SAN values (as in certificate_names) that cover ``hostname``:
    itself, and the wildcard one label up."""
    host = hostname.strip().lower().rstrip(".")
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    if not host or len(host) > 253 or " " in host or "*" in host:
        raise BadInputError(f"invalid hostname {hostname!r}")
    names = [host]
    if "." in host:
        names.append("*." + host.split(".", 1)[1])
    return tuple(names)


def entity_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(end_entities.c.id).where(end_entities.c.name == name)).scalar()
    if found is None:
        raise NotFoundError(f"no end entity named {name!r}")
    return found


def entity_names(conn: Connection, ids) -> dict[int, str]:
    """The names of the end entities with these ids (in chunks: the list may be long)."""
    wanted = sorted({i for i in ids if i is not None})
    names: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        names.update(
            conn.execute(
                select(end_entities.c.id, end_entities.c.name).where(end_entities.c.id.in_(chunk))
            ).all()
        )
    return names


def search(conn: Connection, q: CertificateQuery) -> list[tuple[int, CertificateRecord]]:
    """(id, record) pairs, in id order."""
    if not isinstance(q.limit, int) or not 1 <= q.limit <= MAX_PAGE:
        raise BadInputError(f"limit must be 1 to {MAX_PAGE}")
    return catalog.find(
        conn,
        catalog.CertificateFilter(
            text=q.text,
            names=_hostname_names(q.hostname) if q.hostname is not None else None,
            serial=parse_serial(q.serial) if q.serial is not None else None,
            ca=q.issuer,
            end_entity_id=entity_id(conn, q.entity) if q.entity is not None else None,
            profile=q.profile,
            status=q.status,
            issued_after=q.issued_after,
            issued_before=q.issued_before,
            expires_after=q.expires_after,
            expires_before=q.expires_before,
            after_id=q.after,
            limit=q.limit,
        ),
    )


# -- reports --------------------------------------------------------------------------


def counts(conn: Connection) -> list[dict]:
    """Certificates by CA, profile and status (kept by triggers: no scan)."""
    return [
        {"ca": ca, "profile": profile, "status": status, "count": n}
        for ca, profile, status, n in catalog.counts(conn)
    ]


def expiring(conn: Connection, now: int, weeks: int) -> list[dict]:
    """Valid (good) certificates expiring in each of the next ``weeks`` weeks
    (week 0 starts now); every week is listed, empty ones with 0."""
    if not isinstance(weeks, int) or not 1 <= weeks <= 520:
        raise BadInputError("weeks must be 1 to 520")
    found = catalog.expiring_per_period(conn, now, WEEK, weeks)
    return [
        {"week": i, "from": now + i * WEEK, "to": now + (i + 1) * WEEK, "count": found.get(i, 0)}
        for i in range(weeks)
    ]


def duplicates(conn: Connection, now: int) -> list[dict]:
    """End entities with more than one valid certificate of one profile."""
    rows = catalog.valid_per_end_entity(conn, now, more_than=1)
    names = entity_names(conn, (r.end_entity_id for r in rows))
    found = sorted((names[r.end_entity_id], r.profile, r.n) for r in rows)
    return [
        {"entity": name, "profile": profile, "valid_certificates": n} for name, profile, n in found
    ]


def to_csv(rows: list[dict]) -> str:
    """One header line, then one line per row (RFC 4180)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
