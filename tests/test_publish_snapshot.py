"""Snapshots: `revoca va import` and `revoca publisher snapshot` deliver
every status as of one outbox position through the VA's apply code, so an
import racing revocations and the publisher never moves a status back, and a
complete one spares the VA the replay of what it holds."""

import random
import threading
import time

import pytest
from sqlalchemy import select, update

from ca.reasons import RevocationReason
from common.der import integer_content
from publisher.outbox import Outbox
from publisher.service import Publisher
from publisher.settings import PublisherSettings
from publisher.snapshot import send_snapshot
from publisher.targets import DeliveryError, HTTPTarget, LocalTarget
from revoca.va_import import import_from_ca
from store.tables.ca import certificates
from store.tables.outbox import outbox
from tests.conftest import make_csr
from tests.test_publish import TOKEN, _wait, start_admin_server
from va import publish
from va.policy import IssuerPolicy
from va.store import GOOD, HOLD, REVOKED, VAStore

SOURCE = "revoca-ca"  # the [publisher] source import_from_ca uses by default
STATUS_OF_EVENT = {"issued": GOOD, "released": GOOD, "revoked": REVOKED, "hold": HOLD}


@pytest.fixture
def pki(service):
    """A root and an issuing CA outside the Baseline Requirements: it may hold."""
    service.init_root("root", "CN=Test Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    service.create_sub(
        "issuing", "root", "CN=Test Issuing CA,O=Revoca Tests,C=DE", profile="client-sub-ca"
    )
    return service


def _issue_many(pki, count):
    pki.issue_ocsp_signer("issuing")
    return [
        pki.issue("issuing", make_csr(f"h{i}", [f"email:h{i}@example.com"]), "tls-client")
        for i in range(count)
    ]


def _history(pki) -> dict[tuple[int, int], dict[int, str]]:
    """Every serial's outbox events: {(ca id, serial): {seq: event type}}."""
    with pki.store.read() as conn:
        rows = conn.execute(select(outbox.c.id, outbox.c.ca_id, outbox.c.serial, outbox.c.event))
        out: dict[tuple[int, int], dict[int, str]] = {}
        for seq, ca_id, serial, event in rows:
            out.setdefault((ca_id, int(serial, 16)), {})[seq] = event
    return out


def _ca_rows(pki, ca_id):
    with pki.store.read() as conn:
        return conn.execute(
            select(
                certificates.c.serial,
                certificates.c.status,
                certificates.c.revoked_at,
                certificates.c.revocation_reason,
                certificates.c.status_seq,
            ).where(certificates.c.ca_id == ca_id)
        ).all()


@pytest.mark.parametrize("scope", [None, ["issuing"]], ids=["all-cas", "one-ca"])
def test_imports_racing_a_revocation_storm_never_move_a_status_back(loop, tmp_path, pki, scope):
    """Two threads hold, release and revoke while a third imports again and
    again and the publisher delivers, all into one VA; a fourth samples every
    status the whole time. Each serial's sampled seq never decreases and its
    status is always the one of the change it names; in the end every status
    is the CA's. (Bounded: 60 certificates, 30 s for the storm.)"""
    records = _issue_many(pki, 60)
    ca = pki.get_ca("issuing")
    serials = [r.serial for r in records]
    store = VAStore(tmp_path / "va" / "lmdb")
    keys = tmp_path / "va" / "keys"
    import_from_ca(pki, store, keys, policy=IssuerPolicy(), ca_names=scope)
    service = Publisher(
        Outbox(pki.store.engine),
        [LocalTarget("va", store=store)],
        PublisherSettings(source=SOURCE, batch=7, poll_interval=0.01),
    )
    running = loop.spawn(service.run())
    storm_over, sampling_over = threading.Event(), threading.Event()
    deadline = time.monotonic() + 30
    errors: list[BaseException] = []
    operations: list[float] = []  # when each status change committed
    imports: list[tuple[float, float]] = []
    samples: list[list] = []

    def guarded(work):
        def run():
            try:
                work()
            except BaseException as exc:  # reported by the test, not lost in a thread
                errors.append(exc)

        return run

    def storm(part, seed):
        rng = random.Random(seed)
        for serial in part:
            if time.monotonic() > deadline:
                return
            if rng.random() < 0.6:  # hold, release, hold again, then revoke
                for step in ("hold", "release", "hold"):
                    if step == "hold":
                        pki.revoke("issuing", serial, RevocationReason.certificateHold)
                    else:
                        pki.release_hold("issuing", serial)
                    operations.append(time.monotonic())
            pki.revoke("issuing", serial, RevocationReason.keyCompromise)
            operations.append(time.monotonic())

    def importer():
        for _ in range(12):
            if storm_over.is_set() or time.monotonic() > deadline:
                return
            started = time.monotonic()
            import_from_ca(pki, store, keys, policy=IssuerPolicy(), ca_names=scope)
            imports.append((started, time.monotonic()))

    def sampler():
        keys_ = [integer_content(s) for s in serials]
        while not sampling_over.is_set() and time.monotonic() < deadline + 30:
            with store.read() as txn:
                samples.append([store.get_status(txn, ca.id, k) for k in keys_])
            time.sleep(0.002)

    threads = [
        threading.Thread(target=guarded(lambda: storm(serials[0::2], 1))),
        threading.Thread(target=guarded(lambda: storm(serials[1::2], 2))),
    ]
    side = [threading.Thread(target=guarded(importer)), threading.Thread(target=guarded(sampler))]
    try:
        for thread in threads + side:
            thread.start()
        for thread in threads:
            thread.join(60)
        storm_over.set()
        side[0].join(60)
        last = service.outbox.last_id()
        assert _wait(lambda: publish.counters(store, SOURCE)[0] >= last, 30)
        time.sleep(0.05)  # a last sample or two of the settled state
        sampling_over.set()
        side[1].join(30)
    finally:
        storm_over.set()
        sampling_over.set()
        service.stop()
        running.result(20)
    assert not errors, errors
    assert len(imports) >= 2 and len(samples) > 20
    # The race happened: status changes committed while imports ran.
    assert any(start <= at <= end for at in operations for start, end in imports)
    history = _history(pki)
    for index, serial in enumerate(serials):
        events = history[(ca.id, serial)]
        seen = [sample[index] for sample in samples]
        seqs = [record.seq for record in seen if record is not None]
        back = next((i for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1]), None)
        assert back is None, f"serial {serial:x} went back: {seqs[max(0, back - 3) : back + 3]}"
        for record in seen:
            if record is not None and record.seq:
                assert record.status == STATUS_OF_EVENT[events[record.seq]], (serial, record)
            elif record is not None:
                assert record.status == GOOD
    # In the end: exactly the CA's statuses, each with its change's seq.
    with store.read() as txn:
        for row in _ca_rows(pki, ca.id):
            record = store.get_status(txn, ca.id, integer_content(int(row.serial, 16)))
            expected = {"good": GOOD, "revoked": REVOKED, "hold": HOLD}[row.status]
            assert record.status == expected, row
            if row.status != "good":
                assert (record.revoked_at, record.reason) == (row.revoked_at, row.revocation_reason)
            if row.status_seq is not None:
                assert record.seq == row.status_seq, row
    assert publish.counters(store, SOURCE)[0] == service.outbox.last_id()


def test_a_complete_snapshot_spares_a_new_va_the_replay(tmp_path, pki):
    """A new VA imported from the CA starts at the snapshot's position: the
    publisher delivers only what came after, and an event older than a
    serial's change, were it delivered again, would change nothing."""
    records = _issue_many(pki, 5)
    pki.revoke("issuing", records[0].serial, RevocationReason.superseded)
    store = VAStore(tmp_path / "lmdb")
    counts = import_from_ca(pki, store, tmp_path / "va-keys", policy=IssuerPolicy())
    position = Outbox(pki.store.engine).last_id()
    assert (
        counts["issuing"] == len(_ca_rows(pki, pki.get_ca("issuing").id)) and counts["root"] == -1
    )
    assert publish.counters(store, SOURCE) == (position, 0)
    # One CA only: the high-water stays where it was.
    other = VAStore(tmp_path / "other")
    import_from_ca(pki, other, tmp_path / "va-keys", policy=IssuerPolicy(), ca_names=["issuing"])
    assert publish.counters(other, SOURCE) == (0, 0)


def test_rows_without_a_recorded_change_are_taken_at_the_snapshot(tmp_path, pki):
    """A revoked row whose status_seq is unknown (written before migration
    0003, its events gone) is current as of the snapshot: it replaces what a
    VA holds from before, not what it holds from after."""
    records = _issue_many(pki, 2)
    ca = pki.get_ca("issuing")
    for record in records:
        pki.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    with pki.store.transaction() as conn:
        conn.execute(update(certificates).values(status_seq=None))
    store = VAStore(tmp_path / "lmdb")
    position = Outbox(pki.store.engine).last_id()
    later = {
        "seq": position + 5,
        "type": "issued",
        "issuer": ca.id,
        "serial": f"{records[1].serial:x}",
        "not_after": 1,
    }
    batch = publish.parse_batch({"source": "other", "after": 0, "events": [later]})
    publish.apply_batch(store, batch)  # a change the snapshot cannot know
    import_from_ca(pki, store, tmp_path / "va-keys", policy=IssuerPolicy(), ca_names=["issuing"])
    with store.read() as txn:
        first = store.get_status(txn, ca.id, integer_content(records[0].serial))
        second = store.get_status(txn, ca.id, integer_content(records[1].serial))
    assert (first.status, first.seq) == (REVOKED, position)
    assert (second.status, second.seq) == (GOOD, position + 5)


def test_a_snapshot_reaches_a_remote_va_in_chunks(loop, tmp_path, pki):
    """`revoca publisher snapshot`: the same snapshot over the admin
    listener, bounded chunks in order; a failure leaves nothing older."""
    records = _issue_many(pki, 9)
    pki.revoke("issuing", records[3].serial, RevocationReason.keyCompromise)
    store = VAStore(tmp_path / "lmdb")
    base, runner = start_admin_server(loop, store)
    target = HTTPTarget("remote", base, TOKEN.encode())
    outbox_reader = Outbox(pki.store.engine)
    try:
        result = loop.run(send_snapshot(outbox_reader, target, "ca", chunk=4, rng=random.Random(7)))
        total = sum(result["statuses"].values())
        assert result["complete"] and result["chunks"] == -(-total // 4) >= 3
        assert result["applied"] == total and result["high_water"] == outbox_reader.last_id()
        assert result["snapshot"] == f"{random.Random(7).getrandbits(128):032x}"
        with store.read() as txn:
            record = store.get_status(
                txn, pki.get_ca("issuing").id, integer_content(records[3].serial)
            )
        assert record.status == REVOKED and record.seq == outbox_reader.last_id()
        again = loop.run(send_snapshot(outbox_reader, target, "ca", chunk=4))
        assert again["applied"] == 0 and again["kept"] == total  # nothing newer
        wrong = HTTPTarget("remote", base, b"x" * 43)
        # No route of this protocol version there (as at a VA of another release).
        old = HTTPTarget("old", base + "/nothing", TOKEN.encode())
        try:
            with pytest.raises(DeliveryError, match="HTTP 403"):
                loop.run(send_snapshot(outbox_reader, wrong, "ca", chunk=4))
            with pytest.raises(DeliveryError, match="does not speak version 2 of the publish"):
                loop.run(send_snapshot(outbox_reader, old, "ca", chunk=4))
        finally:
            loop.run(wrong.close())
            loop.run(old.close())
    finally:
        loop.run(target.close())
        loop.run(runner.cleanup())


def test_va_import_and_publisher_snapshot_on_the_command_line(cli_pki):
    """`revoca va import` keeps its output; `revoca publisher snapshot` sends
    the same snapshot to the configured VAs (here the local one) and reports
    each; an unknown VA is a configuration error."""
    import json

    from tests.conftest import run

    tmp = cli_pki
    result = run(tmp, "ca", "ocsp-signer", "--ca", "issuing")
    assert result.returncode == 0, result.stderr
    result = run(tmp, "va", "import")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines == [
        "root: skipped, no OCSP signer (`revoca ca ocsp-signer --ca root`)",
        "issuing: 1 certificate status",
    ]
    result = run(tmp, "publisher", "snapshot", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    local = answer["vas"]["local"]
    assert answer["source"] == SOURCE and local["complete"] is True
    assert local["statuses"] == 2 and local["applied"] == 0  # the import put them there
    assert local["high_water"] == local["position"] > 0
    result = run(tmp, "publisher", "snapshot", "--va", "nope")
    assert result.returncode == 2
    assert b"publisher.targets has no VA named 'nope' (it has 'local')" in result.stderr
