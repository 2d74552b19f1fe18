"""The same store behaviour on SQLite and on a real PostgreSQL server."""

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from ca.audit_replay import Replay
from ca.errors import PolicyError
from ca.reasons import RevocationReason
from store import audit
from store.events import decode
from store.tables import include_object, metadata
from store.tables.ca import certificates
from store.tables.outbox import outbox
from tests.conftest import counts, make_csr


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_service(request, make_service):
    if request.param == "sqlite":
        service = make_service()
    else:
        service = make_service(url=request.getfixturevalue("postgres_url"))
    service.init_root("root", "CN=Root,O=Revoca Tests")
    service.create_sub("issuing", "root", "CN=Issuing,O=Revoca Tests")
    # Holds only outside the Baseline Requirements (ca/baseline.py).
    service.create_sub("clients", "root", "CN=Clients,O=Revoca Tests", profile="client-sub-ca")
    return service


def test_schema_matches_after_migration(backend_service):
    store = backend_service.store
    assert store.current_revision() == store.head_revision()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        assert compare_metadata(context, metadata) == []


def test_lifecycle(backend_service):
    service = backend_service
    record = service.issue("clients", make_csr("a", ["email:a@example.com"]), "tls-client")
    assert record.serial.bit_length() > 64  # > 64-bit serials survive the round trip
    service.revoke("clients", record.serial, RevocationReason.certificateHold)
    service.release_hold("clients", record.serial)
    service.revoke("clients", record.serial, RevocationReason.keyCompromise)
    assert service.get_certificate("clients", record.serial).status == "revoked"
    before = counts(service)
    with pytest.raises(PolicyError):
        service.issue("issuing", make_csr(), "tls-server", days=1000)
    assert counts(service) == before
    replay = Replay()
    with service.store.transaction() as conn:
        assert audit.verify(conn, service.audit.key, observe=replay.observe).problems == []
        assert replay.compare(conn) == (3, [])  # the two sub-CAs and the one certificate
        events = [r.event for r in conn.execute(select(outbox).order_by(outbox.c.id))]
    assert events[-4:] == ["issued", "hold", "released", "revoked"]


def test_concurrent_issuance_keeps_the_chain_and_the_outbox(backend_service):
    """Writers in parallel: every certificate has its event, serials are unique,
    and the audit chain has no fork (appenders serialise on its head)."""
    service = backend_service
    errors = []
    csrs = [make_csr(f"h{i}.example.com", [f"dns:h{i}.example.com"]) for i in range(24)]

    def worker(chunk):
        try:
            for csr in chunk:
                service.issue("issuing", csr, "tls-server")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(csrs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with service.store.transaction() as conn:
        report = audit.verify(conn, service.audit.key)
        count, problems = report.records, report.problems
        issued = (
            conn.execute(
                select(certificates.c.serial).where(certificates.c.profile == "tls-server")
            )
            .scalars()
            .all()
        )
        issued_events = [
            decode(r).serial for r in conn.execute(select(outbox).where(outbox.c.event == "issued"))
        ]
    assert problems == [] and count == 3 + 24  # root, two sub-CAs, 24 issuances
    assert len(issued) == len(set(issued)) == 24
    assert len(issued_events) == 24 + 2  # and the sub-CAs' own certificates


def test_full_and_delta_crls(backend_service):
    """SQLite (the writer's own reader) and PostgreSQL (a server-side cursor)
    list the same entries: revoked, held, and released from hold."""
    from cryptography import x509

    from ca.crl import issue_crl, issue_full_crl

    service = backend_service
    serials = [
        service.issue(
            "clients", make_csr(f"c{i}", [f"email:c{i}@example.com"]), "tls-client"
        ).serial
        for i in range(4)
    ]
    service.revoke("clients", serials[0], RevocationReason.keyCompromise)
    service.revoke("clients", serials[1], RevocationReason.certificateHold)
    full = x509.load_der_x509_crl(issue_full_crl(service, "clients").der)
    assert {e.serial_number for e in full} == set(serials[:2])
    service.release_hold("clients", serials[1])
    service.revoke("clients", serials[2], RevocationReason.unspecified)
    delta = x509.load_der_x509_crl(issue_crl(service, "clients", delta=True).der)
    reasons = {}
    for entry in delta:
        try:
            reasons[entry.serial_number] = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            reasons[entry.serial_number] = None
    assert reasons == {serials[1]: x509.ReasonFlags.remove_from_crl, serials[2]: None}
    full = x509.load_der_x509_crl(issue_full_crl(service, "clients").der)
    assert sorted(e.serial_number for e in full) == sorted([serials[0], serials[2]])
