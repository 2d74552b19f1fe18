"""Issue CRLs on a schedule: full CRLs (ARLs for roots, every shard of
partitioned profiles) every ``full_interval``, delta CRLs every
``delta_interval``, and a new full CRL (with its delta) once a revocation,
hold or release it does not carry is ``revocation_delay`` old (BR 4.9.7: a
CRL within 24 hours of a revocation). A CA's first CRLs are due as soon as
it exists. A delta always follows the full CRL it is based on, so no VA
serves a delta against a base that is no longer current. The publisher
carries each new CRL to the VAs.

Status changes are found by following the outbox (:class:`Changes`): a
long-running updater reads only the events written since its last pass.
"""

import logging
from dataclasses import dataclass

from sqlalchemy import and_, func, select

from ca.crl import (
    DEFAULT_ARL_VALIDITY_DAYS,
    DEFAULT_VALIDITY_DAYS,
    DELTA_VALIDITY_DAYS,
    issue_crl,
)
from ca.errors import CAError
from ca.settings import CRLSettings
from store.tables.ca import certificates, crls
from store.tables.outbox import outbox

log = logging.getLogger("revoca.ca.crl")


@dataclass(frozen=True)
class Schedule:
    """When each kind of CRL is due (intervals in seconds) and how long each
    is valid (days)."""

    full_interval: int = 24 * 3600  # well inside the 7-day validity
    delta_interval: int = 3600
    deltas: bool = True
    validity_days: int = DEFAULT_VALIDITY_DAYS
    delta_validity_days: int = DELTA_VALIDITY_DAYS
    arl_validity_days: int = DEFAULT_ARL_VALIDITY_DAYS
    revocation_delay: int = 300  # seconds

    @classmethod
    def from_settings(cls, crl: CRLSettings) -> "Schedule":
        return cls(
            full_interval=crl.full_interval_hours * 3600,
            delta_interval=crl.delta_interval_minutes * 60,
            deltas=crl.deltas,
            validity_days=crl.validity_days,
            delta_validity_days=crl.delta_validity_days,
            arl_validity_days=crl.arl_validity_days,
            revocation_delay=crl.revocation_delay_minutes * 60,
        )

    def days(self, job: dict) -> int:
        if job.get("arl"):
            return self.arl_validity_days
        return self.delta_validity_days if job.get("delta") else self.validity_days


class Changes:
    """Status changes (revocations, holds, releases) since each CA's newest
    full CRL, read from the outbox. Each :meth:`scan` reads the events
    written since the previous one: kept between passes, the updater never
    reads an event twice."""

    def __init__(self):
        self.cursor: int | None = None
        # ca id -> [(outbox id, created at ms, profile, CRL shard)], oldest first
        self.pending: dict[int, list[tuple[int, int, str, int | None]]] = {}

    def scan(self, conn, covered: dict[int, int]) -> None:
        """Read the new events; ``covered``: per CA, the lowest outbox id its
        newest non-delta CRLs reflect (full, ARL and every partition)."""
        top = conn.execute(select(func.max(outbox.c.id))).scalar() or 0
        if self.cursor is None:
            self.cursor = min(covered.values(), default=top)
        if top <= self.cursor:
            return
        rows = conn.execute(
            select(
                outbox.c.id,
                outbox.c.ca_id,
                outbox.c.created_at_ms,
                certificates.c.profile,
                certificates.c.crl_shard,
            )
            .join(
                certificates,
                and_(
                    certificates.c.ca_id == outbox.c.ca_id,
                    certificates.c.serial == outbox.c.serial,
                ),
            )
            .where(
                outbox.c.id > self.cursor,
                outbox.c.id <= top,
                outbox.c.event.in_(STATUS_CHANGES),
            )
            .order_by(outbox.c.id)
        )
        for event_id, ca_id, at_ms, profile, shard in rows:
            self.pending.setdefault(ca_id, []).append((event_id, at_ms, profile, shard))
        self.cursor = top

    def oldest(self, ca_id: int, covered: int, match) -> int | None:
        """The time (epoch ms) of the oldest change after outbox id
        ``covered`` for which ``match(profile, shard)`` holds, or None."""
        events = self.pending.get(ca_id, ())
        return next((e[1] for e in events if e[0] > covered and match(e[2], e[3])), None)

    def prune(self, ca_id: int, covered: int) -> None:
        """Forget the changes every CRL of ``ca_id`` carries (up to ``covered``)."""
        events = [e for e in self.pending.get(ca_id, ()) if e[0] > covered]
        if events:
            self.pending[ca_id] = events
        else:
            self.pending.pop(ca_id, None)


# The outbox events that change what a CRL lists (store/events.py).
STATUS_CHANGES = ("revoked", "hold", "released")


def pass_seconds(schedule: Schedule) -> float:
    """How often a running updater looks for what is due: every minute, or
    more often when revocations may wait less (5 s at the least)."""
    return float(min(60, max(5, schedule.revocation_delay)))


def _newest(conn) -> dict:
    """(CA id, name) -> (thisUpdate, outbox id) of every newest non-delta CRL."""
    newest = (
        select(crls.c.ca_id, crls.c.name, func.max(crls.c.number).label("number"))
        .where(crls.c.kind != "delta")
        .group_by(crls.c.ca_id, crls.c.name)
        .subquery()
    )
    rows = conn.execute(
        select(crls.c.ca_id, crls.c.name, crls.c.this_update, crls.c.outbox_id).join(
            newest,
            and_(
                crls.c.ca_id == newest.c.ca_id,
                crls.c.name == newest.c.name,
                crls.c.number == newest.c.number,
            ),
        )
    )
    return {(r.ca_id, r.name): r for r in rows}


def _last_issued(service, ca_id: int, name: str) -> int | None:
    with service.store.read() as conn:
        return conn.execute(
            select(func.max(crls.c.this_update)).where(crls.c.ca_id == ca_id, crls.c.name == name)
        ).scalar()


def due_work(
    service,
    schedule: Schedule,
    now: int,
    changes: Changes | None = None,
    only: str | None = None,
) -> list[dict]:
    """What is due now: (CA, kind, partition) jobs, oldest state first; a
    delta job follows each full CRL of a CA that has deltas. ``only``: that
    CA's jobs alone."""
    changes = changes if changes is not None else Changes()
    cas = [ca for ca in service.list_cas() if only is None or ca.name == only]
    with service.store.read() as conn:
        latest = _newest(conn)
        lowest: dict[int, int] = {}
        for (ca_id, _name), row in latest.items():
            lowest[ca_id] = min(lowest.get(ca_id, row.outbox_id or 0), row.outbox_id or 0)
        changes.scan(conn, lowest)
    bases = {ca.id: latest.get((ca.id, ca.name)) for ca in cas}

    def stale(ca_id: int, last, match) -> bool:
        """Never signed, past the full interval, or missing a change that is
        revocation_delay old."""
        if last is None or now - last.this_update >= schedule.full_interval:
            return True
        covering[ca_id].append(last.outbox_id or 0)
        oldest = changes.oldest(ca_id, last.outbox_id or 0, match)
        return oldest is not None and now * 1000 - oldest >= schedule.revocation_delay * 1000

    def anything(_profile, _shard) -> bool:
        return True

    jobs = []
    covering: dict[int, list[int]] = {ca.id: [] for ca in cas}  # outbox ids the CRLs reflect
    partitioned = [p for p in service.profiles.values() if p.crl_partitions and not p.ca]
    ca_profiles = {n for n, p in service.profiles.items() if p.ca}
    for ca in cas:
        root = ca.parent is None and ca.origin == "created"
        base_job = {"ca": ca.name, "arl": True, "name": ca.name} if root else None
        base_job = base_job or {"ca": ca.name, "name": ca.name}
        # A root's ARL lists the CA certificates it signed (RFC 5280 5.2.5).
        match = (lambda profile, _shard: profile in ca_profiles) if root else anything
        full_due = stale(ca.id, bases[ca.id], match)
        if full_due:
            jobs.append(base_job)
        if not root:
            for profile in partitioned:
                for shard in range(profile.crl_partitions):
                    name = profile.url(
                        profile.crl_url, base=service.base_url, ca=ca.name, shard=shard
                    ).rpartition("/crl/")[2][:-4]

                    def in_shard(p, s, profile=profile.name, shard=shard):
                        return p == profile and s == shard

                    if stale(ca.id, latest.get((ca.id, name)), in_shard):
                        jobs.append(
                            {"ca": ca.name, "name": name, "partition": (profile.name, shard)}
                        )
        last_delta = _last_issued(service, ca.id, f"{ca.name}-delta")
        # Deltas: scheduled for issuing CAs, and kept current wherever one was signed.
        if (schedule.deltas and not root) or last_delta is not None:
            delta_job = {"ca": ca.name, "name": f"{ca.name}-delta", "delta": True}
            if full_due:
                jobs.append(delta_job)  # against the new base, signed right after it
            elif bases[ca.id] is not None and not root:
                # A delta is due a delta interval after the newest full or delta
                # CRL, and at once where the full CRL has none yet (its
                # certificates' FreshestCRL names it).
                newest = max(bases[ca.id].this_update, last_delta or 0)
                if last_delta is None or now - newest >= schedule.delta_interval:
                    jobs.append(delta_job)
        if covering[ca.id] and not full_due:
            changes.prune(ca.id, min(covering[ca.id]))
    return jobs


def run_once(
    service,
    schedule: Schedule,
    *,
    delta_url_for=lambda ca: "",
    now: int | None = None,
    actor: str = "crl-updater",
    changes: Changes | None = None,
    only: str | None = None,
    failures: list[tuple[str, str]] | None = None,
) -> list[str]:
    """Issue everything that is due; return the names of the CRLs issued.
    ``changes``: the outbox reader kept between passes (a new one reads from
    the CRLs' own positions); ``only``: one CA's CRLs (its first, at creation).
    A CRL that cannot be signed is logged (and added to ``failures`` as (CRL
    name, reason)); that CA's other CRLs wait for the next pass, and every
    other CA's are signed."""
    now = int(service.clock().timestamp()) if now is None else now
    issued = []
    failed_cas: set[str] = set()
    for job in due_work(service, schedule, now, changes, only):
        if job["ca"] in failed_cas:
            continue  # its delta would be based on the CRL that failed
        options = {k: job[k] for k in ("arl", "delta", "partition") if k in job}
        if not options:
            options["delta_url"] = delta_url_for(job["ca"]) if schedule.deltas else ""
        try:
            record = issue_crl(service, job["ca"], actor=actor, days=schedule.days(job), **options)
        except CAError as exc:
            failed_cas.add(job["ca"])
            log.error("CRL not signed", extra={"crl": job["name"], "error": exc.message})
            if failures is not None:
                failures.append((job["name"], exc.message))
            continue
        log.info(
            "issued CRL",
            extra={"crl": job["name"], "number": record.number, "entries": record.entries},
        )
        issued.append(job["name"])
    return issued
