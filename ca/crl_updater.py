"""Issue CRLs on a schedule: full CRLs (ARLs for roots, every shard of
partitioned profiles) every ``full_interval``, delta CRLs every
``delta_interval``. Revocations never trigger a rebuild by themselves; the
publisher carries each new CRL to the VAs.
"""

import logging
from dataclasses import dataclass

from sqlalchemy import func, select

from ca.crl import (
    DEFAULT_ARL_VALIDITY_DAYS,
    DEFAULT_VALIDITY_DAYS,
    DELTA_VALIDITY_DAYS,
    issue_crl,
)
from ca.settings import CRLSettings
from store.tables.ca import crls

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

    @classmethod
    def from_settings(cls, crl: CRLSettings) -> "Schedule":
        return cls(
            full_interval=crl.full_interval_hours * 3600,
            delta_interval=crl.delta_interval_minutes * 60,
            deltas=crl.deltas,
            validity_days=crl.validity_days,
            delta_validity_days=crl.delta_validity_days,
            arl_validity_days=crl.arl_validity_days,
        )

    def days(self, job: dict) -> int:
        if job.get("arl"):
            return self.arl_validity_days
        return self.delta_validity_days if job.get("delta") else self.validity_days


def _last_issued(service, ca_id: int, name: str) -> int | None:
    with service.store.read() as conn:
        return conn.execute(
            select(func.max(crls.c.this_update)).where(crls.c.ca_id == ca_id, crls.c.name == name)
        ).scalar()


def due_work(service, schedule: Schedule, now: int) -> list[dict]:
    """What is due now: (CA, kind, partition) jobs, oldest state first."""
    jobs = []
    partitioned = [p for p in service.profiles.values() if p.crl_partitions and not p.ca]
    for ca in service.list_cas():
        if ca.parent is None and ca.origin == "created":
            base_kinds = [{"arl": True, "name": ca.name}]  # a root lists CA certificates
        else:
            base_kinds = [{"name": ca.name}]
        for job in base_kinds:
            last = _last_issued(service, ca.id, job["name"])
            if last is None or now - last >= schedule.full_interval:
                jobs.append({"ca": ca.name, **job})
        if ca.parent is not None or ca.origin != "created":
            for profile in partitioned:
                for shard in range(profile.crl_partitions):
                    name = profile.url(
                        profile.crl_url, base=service.base_url, ca=ca.name, shard=shard
                    ).rpartition("/crl/")[2][:-4]
                    last = _last_issued(service, ca.id, name)
                    if last is None or now - last >= schedule.full_interval:
                        jobs.append(
                            {"ca": ca.name, "name": name, "partition": (profile.name, shard)}
                        )
            if schedule.deltas:
                last_full = _last_issued(service, ca.id, ca.name)
                last_delta = _last_issued(service, ca.id, f"{ca.name}-delta")
                full_due = any(j["ca"] == ca.name and "partition" not in j for j in jobs)
                # A delta is due a delta interval after the newest full or delta CRL.
                newest = max(last_full or 0, last_delta or 0)
                if (
                    last_full is not None
                    and not full_due
                    and (now - newest >= schedule.delta_interval)
                ):
                    jobs.append({"ca": ca.name, "name": f"{ca.name}-delta", "delta": True})
    return jobs


def run_once(
    service,
    schedule: Schedule,
    *,
    delta_url_for=lambda ca: "",
    now: int | None = None,
    actor: str = "crl-updater",
) -> list[str]:
    """Issue everything that is due; return the names of the CRLs issued."""
    now = int(service.clock().timestamp()) if now is None else now
    issued = []
    for job in due_work(service, schedule, now):
        options = {k: job[k] for k in ("arl", "delta", "partition") if k in job}
        if not options:
            options["delta_url"] = delta_url_for(job["ca"]) if schedule.deltas else ""
        record = issue_crl(service, job["ca"], actor=actor, days=schedule.days(job), **options)
        log.info(
            "issued CRL",
            extra={"crl": job["name"], "number": record.number, "entries": record.entries},
        )
        issued.append(job["name"])
    return issued
