"""Certificate search and reports, built on the CA's read-only catalog
(ca/catalog.py).

Search filters combine (AND): subject or SAN substring (``text``, at least
3 characters: it goes through the trigram index), a hostname (the SANs that
name it exactly or through a wildcard one label up), serial, issuing CA,
end entity, profile, status, and issuance / expiry windows. Results come in
id order, a page at a time (``after`` = the last id of the previous page),
so a page never shifts when certificates are added.

Status follows the clock the caller passes in (``now``): active, expired,
revoked, hold (ca/catalog.py ``status_at``; a revoked certificate stays
revoked after it expires). Every time printed is ``common.clock.iso8601``.

Reports: counts by CA, profile and status; the certificates expiring in the
next N days, each with its owner and days left; and the "other
certificates than intended" check: every group of valid certificates that
share a public key, or a subject and name set, across CAs and the inventory.
"""

import csv
import io
import ipaddress
import json
from dataclasses import dataclass

from sqlalchemy import Connection, select

from ca import catalog
from ca.errors import BadInputError, NotFoundError
from ca.records import CertificateRecord, parse_serial, serial_hex
from common.clock import iso8601
from store.tables.ra import end_entities

MIN_SUBSTRING = catalog.MIN_SUBSTRING
MAX_PAGE = 1000
DAY = 86400
MAX_DAYS = 3650
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
    return {i: name for i, (name, _email) in entity_contacts(conn, ids).items()}


def entity_contacts(conn: Connection, ids) -> dict[int, tuple[str, str]]:
    """(name, contact email) of the end entities with these ids."""
    wanted = sorted({i for i in ids if i is not None})
    found: dict[int, tuple[str, str]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for row in conn.execute(
            select(end_entities.c.id, end_entities.c.name, end_entities.c.email).where(
                end_entities.c.id.in_(chunk)
            )
        ):
            found[row.id] = (row.name, row.email)
    return found


def certificate_summary(record: CertificateRecord, now: int) -> dict:
    """A found certificate as search prints it: its status at ``now``, every
    time in ISO 8601 (UTC, ``Z``)."""
    return record.summary(now)


def search(conn: Connection, q: CertificateQuery, now: int) -> list[tuple[int, CertificateRecord]]:
    """(id, record) pairs, in id order; ``status`` is judged at ``now``."""
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
            now=now,
        ),
    )


# -- reports --------------------------------------------------------------------------


def counts(conn: Connection, now: int) -> list[dict]:
    """Certificates by CA, profile and status at ``now`` (no certificate read)."""
    return [
        {"ca": ca, "profile": profile, "status": status, "count": n}
        for ca, profile, status, n in catalog.counts(conn, now)
    ]


def expiring(conn: Connection, now: int, days: int) -> list[dict]:
    """The valid certificates whose notAfter falls in the next ``days`` days
    (from ``now``, inclusive), the soonest first: who to call about what."""
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise BadInputError(f"days must be 1 to {MAX_DAYS}")
    rows = catalog.expiring(conn, now - 1, now + days * DAY)
    contacts = entity_contacts(conn, (r.end_entity_id for r in rows))
    out = []
    for r in rows:
        entity, owner = contacts.get(r.end_entity_id, (None, None))
        out.append(
            {
                "subject": r.subject,
                "sans": json.loads(r.sans),
                "issuer": r.ca,
                "serial": serial_hex(int(r.serial, 16)),
                "not_after": iso8601(r.not_after),
                "days_left": (r.not_after - now) // DAY,
                "entity": entity,
                "owner": owner,
            }
        )
    return out


def duplicates(conn: Connection, now: int) -> list[dict]:
    """Valid certificates other than intended: each group of more than one
    valid certificate sharing a public key (kind "key", shared: the SHA-256
    of its SubjectPublicKeyInfo) or a subject and name set (kind "names",
    shared: the subject and its sorted SANs)."""
    groups = catalog.duplicates(conn, now)
    names = entity_names(conn, (r.end_entity_id for g in groups for r in g.certificates))
    return [
        {
            "kind": group.kind,
            "shared": group.shared,
            "certificates": [
                {
                    "ca": r.ca,
                    "serial": serial_hex(int(r.serial, 16)),
                    "subject": r.subject,
                    "sans": json.loads(r.sans),
                    "not_after": iso8601(r.not_after),
                    "profile": r.profile,
                    "entity": names.get(r.end_entity_id),
                }
                for r in group.certificates
            ],
        }
        for group in groups
    ]


REPORT_FIELDS = {
    "counts": ("ca", "profile", "status", "count"),
    "expiring": (
        "subject",
        "sans",
        "issuer",
        "serial",
        "not_after",
        "days_left",
        "entity",
        "owner",
    ),
    "duplicates": (
        "group",
        "kind",
        "shared",
        "ca",
        "serial",
        "subject",
        "sans",
        "not_after",
        "profile",
        "entity",
    ),
}


def report_csv(name: str, rows: list[dict]) -> str:
    """A report as CSV (a header line even when empty): a SAN list as one
    space-separated field; the duplicates one line per certificate, with its
    group's number, kind and shared value."""
    if name == "duplicates":
        rows = [
            {"group": i + 1, "kind": g["kind"], "shared": g["shared"], **c}
            for i, g in enumerate(rows)
            for c in g["certificates"]
        ]
    flat = [
        {k: " ".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in r.items()}
        for r in rows
    ]
    return to_csv(flat, REPORT_FIELDS[name])


def to_csv(rows: list[dict], fields=None) -> str:
    """One header line, then one line per row (RFC 4180); without ``fields``
    the first row's keys, and nothing at all when there are no rows."""
    out = io.StringIO()
    fields = list(fields) if fields is not None else list(rows[0]) if rows else None
    if fields:
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
