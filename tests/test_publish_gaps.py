"""Gaps in delivery: each batch says which seq it follows (``after``), and a
VA that has not applied everything up to it refuses the batch whole rather
than skip what lies between for ever; the publisher then sends again from
the VA's own high-water mark."""

import shutil

import pytest
from sqlalchemy import func, select

from ca import crl as ca_crl
from ca.reasons import RevocationReason
from common.der import integer_content
from publisher.outbox import Outbox
from publisher.service import Publisher
from publisher.settings import PublisherSettings
from publisher.targets import HTTPTarget, LocalTarget, SequenceGap
from revoca.va_import import issuer_records
from store.tables.ca import certificates
from store.tables.outbox import outbox
from tests.conftest import free_port, make_csr
from tests.test_publish import TOKEN, _status, _wait, call, revoked_event, start_admin_server
from va import publish
from va.policy import IssuerPolicy
from va.store import GOOD, HOLD, REVOKED, VAStore


def _everything(store):
    """Every status record and every publish counter of ``store``."""
    with store.env.begin() as txn:
        statuses = list(txn.cursor(db=store.status_db))
        pending = list(txn.cursor(db=store.pending_db))
    return statuses, pending, publish.sources(store)


def test_a_batch_after_a_gap_is_refused_and_changes_nothing(loop, tmp_path, caplog):
    store = VAStore(tmp_path / "lmdb")
    base, runner = start_admin_server(loop, store)
    url = f"{base}/publish/v2/events"
    try:
        first = [revoked_event(seq, 0x100 + seq) for seq in (1, 2, 3)]
        assert call(url, "POST", {"source": "s", "after": 0, "events": first})[0] == 200
        before = _everything(store)
        # The sender read from after 5: seqs 4 and 5 would be lost.
        skipping = [revoked_event(seq, 0x100 + seq) for seq in (6, 7)]
        status, answer = call(url, "POST", {"source": "s", "after": 5, "events": skipping})
        assert status == 409
        assert answer == {
            "error": "sequence_gap",
            "message": "source 's': the batch follows seq 5, but this VA has applied events "
            "up to seq 3 only: send again from after 3",
            "high_water": 3,
            "after": 5,
        }
        assert _everything(store) == before
        assert "refused a batch after a gap" in caplog.text
        # From the VA's mark, a hole in the seqs (5: an id the outbox never
        # used) is no loss; a batch from below the mark skips what it holds.
        filling = [revoked_event(seq, 0x100 + seq) for seq in (4, 6, 7)]
        status, answer = call(url, "POST", {"source": "s", "after": 3, "events": filling})
        assert status == 200 and (answer["applied"], answer["high_water"]) == (3, 7)
        again = [revoked_event(seq, 0x100 + seq) for seq in (2, 3, 4, 6, 7, 8)]
        status, answer = call(url, "POST", {"source": "s", "after": 1, "events": again})
        assert status == 200 and (answer["applied"], answer["skipped"]) == (1, 5)
        assert publish.counters(store, "s") == (8, 7)
        assert all(_status(store, 1, 0x100 + seq) == REVOKED for seq in (1, 2, 3, 4, 6, 7, 8))
    finally:
        loop.run(runner.cleanup())


def test_the_co_located_target_refuses_a_gap_too(loop, tmp_path):
    store = VAStore(tmp_path / "lmdb")
    target = LocalTarget("local", store=store)
    assert loop.run(target.deliver("s", 0, [revoked_event(1)])) == 1
    with pytest.raises(SequenceGap) as caught:
        loop.run(target.deliver("s", 4, [revoked_event(5, 0x99)]))
    assert caught.value.high_water == 1 and "follows seq 4" in str(caught.value)
    assert publish.counters(store, "s") == (1, 1) and _status(store, 1, 0x99) is None
    with pytest.raises(publish.ProtocolError, match="seq 3 is not above after"):
        publish.parse_batch({"source": "s", "after": 3, "events": [revoked_event(3)]})


def _issue(pki, count):
    """Certificates of a profile that allows holds."""
    return [
        pki.issue("issuing", make_csr(f"g{i}", [f"email:g{i}@example.com"]), "tls-client")
        for i in range(count)
    ]


def _ca_statuses(pki, ca_id) -> dict[int, int]:
    kinds = {"good": GOOD, "revoked": REVOKED, "hold": HOLD}
    with pki.store.read() as conn:
        rows = conn.execute(
            select(certificates.c.serial, certificates.c.status).where(
                certificates.c.ca_id == ca_id
            )
        )
        return {int(serial, 16): kinds[status] for serial, status in rows}


def test_a_va_restored_from_an_older_copy_gets_the_missed_events_again(loop, tmp_path, pki):
    """The VA goes back to a copy of its LMDB taken some batches ago, while
    the publisher, idle, still believes it holds everything. The next batch
    follows events the VA no longer has: refused, and the publisher counts
    the gap once, asks the VA where it stands and sends the rest again, and
    the CRL the copy lacks. In the end every status is the CA's, each event
    applied once."""
    ca = pki.get_ca("issuing")
    pki.issue_ocsp_signer("issuing")
    issuers = [(c.id, r) for c, r, _ in issuer_records(pki, IssuerPolicy()) if r is not None]
    path, port = tmp_path / "va", free_port()
    store = VAStore(path)
    _, runner = start_admin_server(loop, store, port)
    service = Publisher(
        Outbox(pki.store.engine),
        [HTTPTarget("va", f"http://127.0.0.1:{port}", TOKEN.encode())],
        PublisherSettings(source="ca", batch=4, poll_interval=0.02, crl_interval=0.05),
        issuers=issuers,
    )
    state = service.state["va"]
    records = _issue(pki, 6)
    running = loop.spawn(service.run())
    try:
        assert _wait(lambda: state.high_water == service.outbox.last_id(), 20)
        copy = tmp_path / "copy"
        copy.mkdir()
        store.env.copy(str(copy))  # a consistent copy, as a backup takes it
        copied = publish.counters(store, "ca")
        # Batches the copy will not have: revocations, new certificates.
        for record in records[:3]:
            pki.revoke("issuing", record.serial, RevocationReason.keyCompromise)
        pki.revoke("issuing", records[3].serial, RevocationReason.superseded)
        records += _issue(pki, 3)
        crl = ca_crl.issue_crl(pki, "issuing")
        assert _wait(lambda: state.high_water == service.outbox.last_id(), 20)
        assert _wait(lambda: store.get_crl("issuing") is not None, 20)
        # The VA is restored from the copy while the publisher idles.
        loop.run(runner.cleanup())
        store.close()
        shutil.rmtree(path)
        shutil.copytree(copy, path)
        store = VAStore(path)
        assert publish.counters(store, "ca") == copied and store.get_crl("issuing") is None
        _, runner = start_admin_server(loop, store, port)
        assert state.sequence_gaps == 0
        pki.revoke("issuing", records[4].serial, RevocationReason.superseded)
        last = service.outbox.last_id()
        assert _wait(lambda s=store: publish.counters(s, "ca")[0] == last, 20)
        assert state.sequence_gaps == 1 and state.high_water == last
        with pki.store.read() as conn:
            events = conn.execute(select(func.count()).select_from(outbox)).scalar()
        assert publish.counters(store, "ca") == (last, events)  # each event applied once
        expected = _ca_statuses(pki, ca.id)
        with store.read() as txn:
            held = {
                serial: store.get_status(txn, ca.id, integer_content(serial)).status
                for serial in expected
            }
        assert held == expected
        assert expected[records[0].serial] == REVOKED and expected[records[3].serial] == REVOKED
        assert _wait(lambda s=store: s.get_crl("issuing") is not None, 10)
        assert store.get_crl("issuing").der == crl.der
        assert service.status()["va"]["sequence_gaps"] == 1
        assert 'revoca_publisher_sequence_gaps_total{va="va"} 1' in service.metrics()
    finally:
        service.stop()
        running.result(10)
        loop.run(runner.cleanup())
        store.close()
