"""The CRL updater: what is due when (a new CA's first CRLs, the full and
delta intervals, a revocation within the delay, partitions, ARLs), and the
outbox follower that finds status changes (ca/crl_updater.py)."""

from datetime import timedelta

import pytest
from cryptography import x509

from ca import crl
from ca.reasons import RevocationReason
from tests.conftest import FIXED_NOW, PUBLIC_BASE_URL, make_csr

pytestmark = pytest.mark.twin  # CRLs are signed through ca.crlcore's façade


def test_crl_updater_schedule(make_service):
    import dataclasses

    from ca.crl_updater import Changes, Schedule, run_once

    now = [FIXED_NOW]
    service = make_service(clock=lambda: now[0], base_url=PUBLIC_BASE_URL)
    service.profiles["tls-sharded"] = dataclasses.replace(
        service.profiles["tls-server"],
        name="tls-sharded",
        crl_partitions=2,
        crl_url="{base}/crl/{ca}-{profile}-p{shard}.crl",
    )
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    schedule = Schedule(full_interval=86400, delta_interval=3600, revocation_delay=300)
    url = lambda ca: f"{PUBLIC_BASE_URL}/crl/{ca}-delta.crl"  # noqa: E731
    changes = Changes()  # kept between passes, as a running updater keeps it

    def run(seconds: float = 0):
        now[0] += timedelta(seconds=seconds)
        return run_once(service, schedule, delta_url_for=url, changes=changes)

    # A new CA's CRLs are due at once, a delta right after its full CRL.
    first = run()
    assert first == [
        "root",
        "issuing",
        "issuing-tls-sharded-p0",
        "issuing-tls-sharded-p1",
        "issuing-delta",
    ]
    assert run() == []  # nothing due
    record = service.issue("issuing", make_csr(), "tls-server")
    service.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    assert run(60) == []  # changes within revocation_delay share one CRL
    assert run(240) == ["issuing", "issuing-delta"]  # 5 minutes: a full CRL and its delta
    assert serial_in(service, "issuing", record.serial)
    assert run(60) == []  # the change is on them
    sharded = service.issue("issuing", make_csr(), "tls-sharded")
    service.revoke("issuing", sharded.serial, RevocationReason.superseded)
    shard = shard_of(service, sharded.serial)
    assert run(300) == ["issuing", f"issuing-tls-sharded-p{shard}", "issuing-delta"]
    assert run(3600) == ["issuing-delta"]  # a delta interval after the newest
    assert sorted(run(23 * 3600)) == [
        "issuing",
        "issuing-delta",
        "issuing-tls-sharded-p0",
        "issuing-tls-sharded-p1",
        "root",
    ]
    # A revoked CA certificate is on a new ARL after the delay.
    sub = service.create_sub("other", "root", "CN=Other")
    assert run() == ["other", "other-tls-sharded-p0", "other-tls-sharded-p1", "other-delta"]
    crl.issue_crl(service, "root", delta=True)  # an operator's delta of the root's ARL
    service.revoke("root", sub.serial, RevocationReason.cessationOfOperation)
    # The delta follows the new ARL: never one against a base that is no longer current.
    assert run(300) == ["root", "root-delta"]
    arl = x509.load_der_x509_crl(crl_der(service, "root"))
    delta = x509.load_der_x509_crl(crl_der(service, "root-delta"))
    base = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
    assert base == arl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert arl.get_revoked_certificate_by_serial_number(sub.serial) is not None
    assert len(delta) == 0  # nothing changed since its base
    # A full CRL signed outside the updater, and no delta yet: the delta is due at once.
    service.create_sub("third", "root", "CN=Third")
    crl.issue_crl(service, "third")
    assert "third-delta" in run()
    # A fresh changes reader (a restarted updater) finds pending changes too.
    leaf = service.issue("issuing", make_csr(), "tls-server")
    service.revoke("issuing", leaf.serial, RevocationReason.superseded)
    now[0] += timedelta(seconds=300)
    assert run_once(service, schedule, delta_url_for=url) == ["issuing", "issuing-delta"]
    arl = x509.load_der_x509_crl(crl_der(service, "root"))
    assert arl.extensions.get_extension_for_class(
        x509.IssuingDistributionPoint
    ).value.only_contains_ca_certs


def serial_in(service, name: str, serial: int) -> bool:
    crl = x509.load_der_x509_crl(crl_der(service, name))
    return crl.get_revoked_certificate_by_serial_number(serial) is not None


def shard_of(service, serial: int) -> int:
    from sqlalchemy import select

    from ca.records import serial_to_db
    from store.tables.ca import certificates

    with service.store.read() as conn:
        return conn.execute(
            select(certificates.c.crl_shard).where(certificates.c.serial == serial_to_db(serial))
        ).scalar_one()


def crl_der(service, name: str) -> bytes:
    from sqlalchemy import select

    from store.tables.ca import crls

    with service.store.read() as conn:
        return conn.execute(
            select(crls.c.der).where(crls.c.name == name).order_by(crls.c.number.desc()).limit(1)
        ).scalar_one()
