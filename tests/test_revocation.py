"""Revocation, hold and release (RFC 5280 5.3.1), each with its outbox event."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from ca.errors import BadInputError, ConflictError, PolicyError
from ca.reasons import RevocationReason
from store.events import decode
from store.tables.outbox import outbox
from tests.conftest import FIXED_NOW, counts, make_csr


@pytest.fixture
def clocked(make_service):
    now = [FIXED_NOW]
    service = make_service(clock=lambda: now[0])
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    # Holds only outside the Baseline Requirements (ca/baseline.py).
    service.create_sub("clients", "root", "CN=Clients", profile="client-sub-ca")
    service.now = now
    return service


def events(service):
    with service.store.transaction() as conn:
        rows = conn.execute(select(outbox).order_by(outbox.c.id)).all()
    return [(r.event, decode(r)) for r in rows]


def test_revoke_records_time_reason_and_invalidity_date(clocked):
    record = clocked.issue("issuing", make_csr(), "tls-server")
    clocked.now[0] += timedelta(hours=1)
    compromised = FIXED_NOW + timedelta(minutes=30)
    revoked = clocked.revoke(
        "issuing", record.serial, RevocationReason.keyCompromise, invalidity_date=compromised
    )
    assert revoked.status == "revoked"
    assert revoked.revoked_at == FIXED_NOW + timedelta(hours=1)
    assert revoked.reason == RevocationReason.keyCompromise
    assert revoked.invalidity_date == compromised
    event, payload = events(clocked)[-1]
    assert event == "revoked"
    assert payload.reason == 1 and payload.revoked_at == int(revoked.revoked_at.timestamp())


def test_already_revoked(clocked):
    record = clocked.issue("issuing", make_csr(), "tls-server")
    clocked.revoke("issuing", record.serial, RevocationReason.superseded)
    before = counts(clocked)
    with pytest.raises(ConflictError, match=r"already revoked since .* \(superseded\)"):
        clocked.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    assert counts(clocked) == before


def test_hold_and_release(clocked):
    record = clocked.issue("clients", make_csr("alice", ["email:alice@example.com"]), "tls-client")
    held = clocked.revoke("clients", record.serial, RevocationReason.certificateHold)
    assert held.status == "hold"
    with pytest.raises(ConflictError, match="already on hold"):
        clocked.revoke("clients", record.serial, RevocationReason.certificateHold)
    released = clocked.release_hold("clients", record.serial)
    assert released.status == "good" and released.reason is None and released.revoked_at is None
    with pytest.raises(ConflictError, match="is good, not on hold"):
        clocked.release_hold("clients", record.serial)
    # A held certificate can still be revoked for good.
    clocked.revoke("clients", record.serial, RevocationReason.certificateHold)
    final = clocked.revoke("clients", record.serial, RevocationReason.keyCompromise)
    assert final.status == "revoked"
    assert [e for e, _ in events(clocked)][-5:] == ["issued", "hold", "released", "hold", "revoked"]


def test_profile_decides_reasons(clocked):
    record = clocked.issue("issuing", make_csr(), "tls-server")
    before = counts(clocked)
    with pytest.raises(
        PolicyError, match="profile 'tls-server' does not allow revocation reason certificateHold"
    ):
        clocked.revoke("issuing", record.serial, RevocationReason.certificateHold)
    with pytest.raises(PolicyError, match="does not allow revocation reason cACompromise"):
        clocked.revoke("issuing", record.serial, RevocationReason.cACompromise)
    assert counts(clocked) == before


def test_bad_revocation_inputs(clocked):
    record = clocked.issue("issuing", make_csr(), "tls-server")
    before = counts(clocked)
    with pytest.raises(BadInputError, match="is released from hold, not revoked"):
        clocked.revoke("issuing", record.serial, RevocationReason.removeFromCRL)
    with pytest.raises(BadInputError, match="revocation time lies in the future"):
        clocked.revoke(
            "issuing",
            record.serial,
            RevocationReason.superseded,
            revoked_at=FIXED_NOW + timedelta(hours=1),
        )
    with pytest.raises(BadInputError, match="invalidity date must not be after"):
        clocked.revoke(
            "issuing",
            record.serial,
            RevocationReason.keyCompromise,
            invalidity_date=FIXED_NOW + timedelta(minutes=1),
        )
    from ca.errors import NotFoundError

    with pytest.raises(NotFoundError, match="has no certificate with serial 0badc0ffee"):
        clocked.revoke("issuing", 0xBADC0FFEE, RevocationReason.superseded)
    assert counts(clocked) == before


def test_a_revocation_time_before_not_before_is_refused(clocked):
    record = clocked.issue("issuing", make_csr(), "tls-server")
    before = counts(clocked)
    early = record.not_before - timedelta(seconds=1)
    with pytest.raises(
        BadInputError, match=r"revocation time .* lies before the certificate's notBefore"
    ):
        clocked.revoke("issuing", record.serial, RevocationReason.superseded, revoked_at=early)
    assert counts(clocked) == before
    assert clocked.get_certificate("issuing", record.serial).status == "good"
    # At notBefore itself it is a revocation like any other.
    revoked = clocked.revoke(
        "issuing", record.serial, RevocationReason.superseded, revoked_at=record.not_before
    )
    assert revoked.revoked_at == record.not_before


def test_reason_names():
    assert RevocationReason.parse("key-compromise") == RevocationReason.keyCompromise
    assert RevocationReason.parse("KEYCOMPROMISE") == RevocationReason.keyCompromise
    assert RevocationReason.parse("6") == RevocationReason.certificateHold
    with pytest.raises(BadInputError, match="unknown revocation reason '7'"):
        RevocationReason.parse("7")


def test_revoking_a_sub_ca_is_an_event_of_its_parent(clocked):
    sub = clocked.get_ca("issuing")
    record = clocked.revoke("root", sub.serial, RevocationReason.cessationOfOperation)
    assert record.profile == "sub-ca" and record.status == "revoked"
    event, payload = events(clocked)[-1]
    assert (event, payload.ca_id, payload.serial) == (
        "revoked",
        clocked.get_ca("root").id,
        sub.serial,
    )
