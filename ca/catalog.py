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

import json
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, or_, select, text

from ca.errors import BadInputError, NotFoundError
from ca.records import (  # noqa: F401 (status_at: part of the catalog's surface)
    CertificateRecord,
    certificate_from_row,
    serial_hex,
    serial_to_db,
    status_at,
)
from store.tables.ca import cas, certificate_counts, certificate_names, certificates, crls

MIN_SUBSTRING = 3  # the trigram indexes cannot answer shorter substrings
# A certificate's status at a given time: a good one is active until its
# notAfter (inclusive, RFC 5280 4.1.2.5) and expired after it; a revoked or
# held one stays revoked or held after it expires.
STATUSES = ("active", "expired", "revoked", "hold")
STORED = ("good", "revoked", "hold")  # certificates.status


def status_clause(status: str, now: int | None):
    """The SQL condition for a status at ``now`` (each an index range on
    (status, not_after))."""
    if status not in STATUSES:
        raise BadInputError(f"status must be one of {', '.join(STATUSES)}")
    c = certificates.c
    if status in ("revoked", "hold"):
        return c.status == status
    if now is None:
        raise BadInputError(f"status {status!r} needs the time it is judged at")
    if status == "active":
        return and_(c.status == "good", c.not_after >= now)
    return and_(c.status == "good", c.not_after < now)


def valid_clause(now: int):
    """Valid at ``now``: neither revoked, nor held, nor expired."""
    return status_clause("active", now)


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
    lowercased, as ``certificate_names`` keeps them); ``status``: one of
    STATUSES as at ``now``; times in epoch seconds,
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
    now: int | None = None


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
        where.append(status_clause(f.status, f.now))
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


_COUNTS_INDEX = "ix_certificates_status_not_after_ca_id_profile"  # migration 0010


def counts(conn: Connection, now: int) -> list[tuple[str, str, str, int]]:
    """(CA name, profile, status at ``now``, count) of every non-empty group,
    sorted. Revoked and held come from the counts triggers keep; good ones
    are split into active and expired by counting the active ones in the
    (status, not_after, ca_id, profile) index: no certificate is read, and
    the expired ones, which only accumulate, are not even counted."""
    c = certificate_counts.c
    stored = conn.execute(select(c.ca_id, c.profile, c.status, c.n).where(c.n > 0)).all()
    query = (
        select(certificates.c.ca_id, certificates.c.profile, func.count().label("n"))
        .where(valid_clause(now))
        .group_by(certificates.c.ca_id, certificates.c.profile)
    )
    if conn.dialect.name == "sqlite":
        # SQLite would rather walk (ca_id, profile, status), which groups
        # without sorting but reads every row for its not_after.
        query = text(
            f"SELECT ca_id, profile, count(*) AS n FROM certificates INDEXED BY {_COUNTS_INDEX} "
            "WHERE status = 'good' AND not_after >= :now GROUP BY ca_id, profile"
        ).bindparams(now=now)
    active = {(r.ca_id, r.profile): r.n for r in conn.execute(query)}
    names = ca_names(conn)
    out = []
    for ca_id_, profile, status, n in stored:
        if status == "good":
            live = active.get((ca_id_, profile), 0)
            out += [
                (names[ca_id_], profile, "active", live),
                (names[ca_id_], profile, "expired", n - live),
            ]
        else:
            out.append((names[ca_id_], profile, status, n))
    return sorted(row for row in out if row[3] > 0)


@dataclass(frozen=True)
class Duplicate:
    """Valid certificates that share a key (``kind`` "key", ``shared``: the
    SHA-256 of the SubjectPublicKeyInfo) or a subject and name set (``kind``
    "names", ``shared``: the subject and the sorted SANs)."""

    kind: str
    shared: str
    certificates: list  # rows as ``expiring`` lists them, with not_before and profile


def duplicates(conn: Connection, now: int) -> list[Duplicate]:
    """Every group of more than one certificate valid at ``now`` (any CA, the
    inventory included) sharing a public key or a subject and name set; keys
    first, then name sets, each group's certificates in id order. The groups
    come from the (status, spki_sha256 | names_sha256, not_after) indexes."""
    found = []
    for kind, column in (
        ("key", certificates.c.spki_sha256),
        ("names", certificates.c.names_sha256),
    ):
        shared = (
            conn.execute(
                select(column)
                .where(and_(valid_clause(now), column.is_not(None)))
                .group_by(column)
                .having(func.count() > 1)
                .order_by(column)
            )
            .scalars()
            .all()
        )
        for start in range(0, len(shared), 500):
            chunk = shared[start : start + 500]
            rows = conn.execute(
                select(*_EXPIRING, certificates.c.profile, column.label("shared"))
                .select_from(certificates.join(cas, cas.c.id == certificates.c.ca_id))
                .where(and_(valid_clause(now), column.in_(chunk)))
                .order_by(certificates.c.id)
            ).all()
            groups: dict[str, list] = {}
            for row in rows:
                groups.setdefault(row.shared, []).append(row)
            for digest in chunk:
                members = groups.get(digest, [])
                if len(members) < 2:
                    continue
                label = digest if kind == "key" else _name_set(members[0])
                found.append(Duplicate(kind, label, members))
    return found


def _name_set(row) -> str:
    names = sorted(
        {s.lower() if s.startswith(("dns:", "ip:")) else s for s in json.loads(row.sans)}
    )
    return " ".join([row.subject, *names]) if names else row.subject


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
    status: str | None = None,
    expires_after: int | None = None,
    expires_before: int | None = None,
    now: int | None = None,
):
    """The next ``limit`` certificates after id ``after_id``, in id order
    (keyset batches: read each in its own short transaction). ``status``:
    one of STATUSES at ``now``; ``*_after`` inclusive, ``*_before``
    exclusive. Rows hold id, ca (name), serial (40 hex digits), status (as
    stored), subject, sans (JSON), not_before, not_after, revoked_at,
    profile, fingerprint, der, end_entity_id."""
    where = [certificates.c.id > after_id]
    if ca_id is not None:
        where.append(certificates.c.ca_id == ca_id)
    if issued_after is not None:
        where.append(certificates.c.issued_at >= issued_after)
    if issued_before is not None:
        where.append(certificates.c.issued_at < issued_before)
    if status is not None:
        where.append(status_clause(status, now))
    if expires_after is not None:
        where.append(certificates.c.not_after >= expires_after)
    if expires_before is not None:
        where.append(certificates.c.not_after < expires_before)
    return conn.execute(
        select(*_LISTED)
        .select_from(certificates.join(cas, cas.c.id == certificates.c.ca_id))
        .where(and_(*where))
        .order_by(certificates.c.id)
        .limit(limit)
    ).all()


_EXPIRING = (
    certificates.c.id,
    cas.c.name.label("ca"),
    certificates.c.serial,
    certificates.c.subject,
    certificates.c.sans,
    certificates.c.not_after,
    certificates.c.end_entity_id,
)


def expiring(conn: Connection, after: int, until: int):
    """Valid (good) certificates whose notAfter lies in (after, until], the
    soonest first. Rows hold id, ca (name), serial (40 hex digits), subject,
    sans (JSON), not_after, end_entity_id."""
    return conn.execute(
        select(*_EXPIRING)
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


def latest_crl(conn: Connection, ca_name: str) -> bytes | None:
    """The DER of CA ``ca_name``'s newest full CRL (or ARL), None before its first."""
    return conn.execute(
        select(crls.c.der)
        .where(crls.c.ca_id == ca_id(conn, ca_name), crls.c.kind.in_(("full", "arl")))
        .order_by(crls.c.number.desc())
        .limit(1)
    ).scalar_one_or_none()
