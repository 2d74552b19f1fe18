"""The publish protocol and the publisher: every change reaches every VA,
in order, exactly once in effect."""

import json
import time
import urllib.error
import urllib.request

import pytest

from ca.reasons import RevocationReason
from common.der import integer_content
from publisher.outbox import Outbox
from publisher.service import Publisher
from publisher.settings import PublisherSettings
from publisher.targets import HTTPTarget, LocalTarget
from tests.conftest import PASSPHRASE, free_port, make_csr
from va import publish
from va.admin import TokenError, load_token, make_app, start_admin, write_token
from va.store import GOOD, REVOKED, VAStore

TOKEN = "t" * 43


def start_admin_server(loop, store, port=None):
    port = port or free_port()
    app = make_app(store, TOKEN.encode())
    runner = loop.run(start_admin(app, "127.0.0.1", port))
    return f"http://127.0.0.1:{port}", runner


def call(url, method="GET", body=None, token=TOKEN):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def revoked_event(seq, serial=0x1234, issuer=1):
    return {
        "seq": seq,
        "type": "revoked",
        "issuer": issuer,
        "serial": f"{serial:x}",
        "revoked_at": 1_700_000_000,
        "reason": 1,
        "not_after": 1_900_000_000,
    }


def test_admin_requires_the_token(loop, tmp_path):
    store = VAStore(tmp_path / "lmdb")
    base, runner = start_admin_server(loop, store)
    events = f"{base}/publish/v2/events"
    batch = {"source": "s", "after": 0, "events": [revoked_event(1)]}
    assert call(events, "POST", batch, token=None)[0] == 401
    assert call(events, "POST", batch, token="x" * 43)[0] == 403
    assert call(events, "POST", batch, token=TOKEN[:-1])[0] == 403
    assert publish.counters(store, "s") == (0, 0)
    status, body = call(events, "POST", batch)
    assert status == 200 and body["applied"] == 1
    loop.run(runner.cleanup())


def test_the_admin_listener_logs_no_token(loop, tmp_path, caplog):
    """Every logger at DEBUG while callers present right, wrong and malformed
    credentials: neither token appears in any record."""
    import logging

    caplog.set_level(logging.DEBUG)
    store = VAStore(tmp_path / "lmdb")
    base, runner = start_admin_server(loop, store)
    events = f"{base}/publish/v2/events"
    wrong = "w" * 20 + "-wrong-token-" + "w" * 10
    batch = {"source": "s", "after": 0, "events": [revoked_event(1)]}
    assert call(events, "POST", batch, token=wrong)[0] == 403
    assert call(events, "POST", batch)[0] == 200
    assert call(events, "POST", {"source": "s", "after": 0, "events": "junk"})[0] == 400
    loop.run(runner.cleanup())
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert caplog.records  # the listener did log (access lines, applied batches)
    assert TOKEN not in logged and wrong not in logged


def test_token_file_rules(tmp_path):
    path = tmp_path / "token"
    write_token(path, TOKEN)
    assert path.stat().st_mode & 0o777 == 0o600 and load_token(path) == TOKEN.encode()
    path.chmod(0o644)
    with pytest.raises(TokenError, match="must be mode 0600"):
        load_token(path)
    write_token(path, "short")
    path.chmod(0o600)
    with pytest.raises(TokenError, match="shorter than 32"):
        load_token(path)
    with pytest.raises(TokenError, match="cannot read"):
        load_token(tmp_path / "missing")


def _body(events, after=0) -> dict:
    return {"source": "s", "after": after, "events": events}


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([], "the body must be a JSON object"),
        ({"events": [revoked_event(1)]}, "source must be"),
        (_body([]), "events must be a list of 1 to"),
        ({"source": "s", "events": [revoked_event(1)]}, "batch: after must be an integer >= 0"),
        (_body([revoked_event(1)], after=True), "batch: after must be an integer"),
        (_body([revoked_event(1)], after=-1), "batch: after must be an integer"),
        (_body([revoked_event(5)], after=5), "event 0: seq 5 is not above after (5)"),
        (_body([revoked_event(2), revoked_event(2)]), "does not increase"),
        (_body([{**revoked_event(1), "type": "exploded"}]), "type must be"),
        (_body([{**revoked_event(1), "serial": "xyz"}]), "hexadecimal"),
        (_body([{**revoked_event(1), "reason": 7}]), "not a CRLReason"),
        (_body([{**revoked_event(1), "revoked_at": "soon"}]), "revoked_at"),
        (_body([revoked_event(1), "oops"]), "event 1: must be an object"),
        (_body([revoked_event(1, issuer=2**32)]), "issuer must be below 2**32"),
        (_body([{**revoked_event(1), "not_after": 2**63}]), "64-bit range"),
    ],
)
def test_bad_batches_change_nothing(loop, tmp_path, batch, message):
    store = VAStore(tmp_path / "lmdb")
    base, runner = start_admin_server(loop, store)
    status, body = call(f"{base}/publish/v2/events", "POST", batch)
    assert status == 400 and message in body["message"]
    assert publish.sources(store) == {} and store.count_status() == 0
    loop.run(runner.cleanup())


def test_redelivery_is_applied_once(tmp_path):
    store = VAStore(tmp_path / "lmdb")
    first = [revoked_event(1, 0x10), revoked_event(2, 0x11), revoked_event(5, 0x12)]
    batch = publish.parse_batch({"source": "s", "after": 0, "events": first})
    assert publish.apply_batch(store, batch)["applied"] == 3
    again = [*first[1:], revoked_event(6, 19)]  # read again from after seq 1
    batch = publish.parse_batch({"source": "s", "after": 1, "events": again})
    result = publish.apply_batch(store, batch)
    assert (result["applied"], result["skipped"], result["high_water"]) == (1, 2, 6)
    assert publish.counters(store, "s") == (6, 4)
    assert publish.counters(store, "other") == (0, 0)


def _wait(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _status(store, issuer, serial):
    with store.read() as txn:
        record = store.get_status(txn, issuer, integer_content(serial))
    return record.status if record else None


def test_revocation_reaches_every_va_fast(loop, tmp_path, pki):
    ca = pki.get_ca("issuing")
    vas = [VAStore(tmp_path / f"va{i}") for i in range(3)]
    servers = [start_admin_server(loop, store) for store in vas[1:]]
    targets = [LocalTarget("local", store=vas[0])]
    targets += [
        HTTPTarget(f"va{i + 1}", base, TOKEN.encode()) for i, (base, _) in enumerate(servers)
    ]
    service = Publisher(Outbox(pki.store.engine), targets, PublisherSettings(source="ca"))
    running = loop.spawn(service.run())
    try:
        record = pki.issue("issuing", make_csr(), "tls-server")
        assert _wait(lambda r=record: all(_status(v, ca.id, r.serial) == GOOD for v in vas))
        latencies = []
        for _ in range(10):
            record = pki.issue("issuing", make_csr(), "tls-server")
            assert _wait(lambda r=record: all(_status(v, ca.id, r.serial) == GOOD for v in vas))
            started = time.monotonic()
            pki.revoke("issuing", record.serial, RevocationReason.keyCompromise)
            assert _wait(lambda r=record: all(_status(v, ca.id, r.serial) == REVOKED for v in vas))
            latencies.append(time.monotonic() - started)
        latencies.sort()
        assert latencies[len(latencies) // 2] < 1.0  # the 50 ms poll, not seconds
        last = service.outbox.last_id()
        assert all(publish.counters(v, "ca")[0] == last for v in vas)
    finally:
        service.stop()
        running.result(10)
        for _, runner in servers:
            loop.run(runner.cleanup())


def test_a_dead_va_does_not_delay_the_others(loop, tmp_path, pki):
    ca = pki.get_ca("issuing")
    alive, late = VAStore(tmp_path / "alive"), VAStore(tmp_path / "late")
    port = free_port()  # nothing listens here yet
    service = Publisher(
        Outbox(pki.store.engine),
        [
            LocalTarget("alive", store=alive),
            HTTPTarget("late", f"http://127.0.0.1:{port}", TOKEN.encode()),
        ],
        PublisherSettings(source="ca", max_backoff=0.5),
    )
    running = loop.spawn(service.run())
    try:
        records = [pki.issue("issuing", make_csr(), "tls-server") for _ in range(5)]
        for record in records:
            pki.revoke("issuing", record.serial, RevocationReason.superseded)
        assert _wait(lambda: all(_status(alive, ca.id, r.serial) == REVOKED for r in records), 5)
        assert service.state["late"].failures > 0 and publish.counters(late, "ca") == (0, 0)
        _, runner = start_admin_server(loop, late, port)  # the VA comes back
        assert _wait(lambda: publish.counters(late, "ca")[0] == service.outbox.last_id(), 20)
        assert all(_status(late, ca.id, r.serial) == REVOKED for r in records)
        loop.run(runner.cleanup())
    finally:
        service.stop()
        running.result(10)


def _reachable(url: str) -> bool:
    try:
        call(url.replace("/events", "/status"), "GET")
        return True
    except OSError:
        return False


def test_mutual_tls_admin_listener(loop, tmp_path, pki):
    """Over TLS the admin listener wants a client certificate from the CA, and the token."""
    import ssl

    from cryptography.hazmat.primitives import serialization

    from publisher.targets import DeliveryError, client_tls_context
    from va.admin import mutual_tls_context

    def write(record, name):
        (tmp_path / f"{name}.pem").write_bytes(
            record.certificate.public_bytes(serialization.Encoding.PEM)
        )
        key = pki.private_key_pem("issuing", record.serial)
        (tmp_path / f"{name}.key").write_bytes(key)

    server = pki.issue_with_new_key("issuing", "tls-server", "CN=127.0.0.1", ["ip:127.0.0.1"])
    client = pki.issue_with_new_key("issuing", "tls-client", "CN=publisher", [])
    write(server, "server")
    write(client, "client")
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.chain("issuing"))
    (tmp_path / "chain.pem").write_bytes(chain)
    passphrase = PASSPHRASE.encode()
    store = VAStore(tmp_path / "lmdb")
    port = free_port()
    app = make_app(store, TOKEN.encode())
    context = mutual_tls_context(
        tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "chain.pem", passphrase
    )
    runner = loop.run(start_admin(app, "127.0.0.1", port, ssl_context=context))
    url = f"https://127.0.0.1:{port}"
    try:
        good = HTTPTarget(
            "va",
            url,
            TOKEN.encode(),
            ssl_context=client_tls_context(
                tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "chain.pem", passphrase
            ),
        )
        assert loop.run(good.deliver("s", 0, [revoked_event(1)])) == 1
        loop.run(good.close())
        no_cert = HTTPTarget(
            "va",
            url,
            TOKEN.encode(),
            ssl_context=ssl.create_default_context(cafile=tmp_path / "chain.pem"),
        )
        with pytest.raises(DeliveryError):
            loop.run(no_cert.deliver("s", 1, [revoked_event(2)]))
        loop.run(no_cert.close())
        assert publish.counters(store, "s") == (1, 1)
    finally:
        loop.run(runner.cleanup())


def test_issuer_configuration_over_the_protocol(loop, tmp_path, pki):
    import base64

    from cryptography.hazmat.primitives import serialization

    store = VAStore(tmp_path / "lmdb")
    base, runner = start_admin_server(loop, store)
    der = pki.get_ca("issuing").certificate.public_bytes(serialization.Encoding.DER)
    record = {
        "name": "issuing",
        "certificate": base64.b64encode(der).decode(),
        "responder_certificate": None,
        "responder_key": "ca-issuing.key.pem",
        "nonce_policy": "ignore",
    }
    status, body = call(f"{base}/publish/v2/issuers/7", "PUT", record)
    assert status == 200 and store.issuers()[7]["nonce_policy"] == "ignore"
    for bad, message in (
        ({**record, "certificate": "AAAA"}, "base64 DER certificate"),
        ({**record, "responder_key": "../../etc/x"}, "responder_key"),
        ({**record, "unissued": "good"}, "unissued must be"),
        ({**record, "response_validity_hours": 2}, "response_validity_hours must be an integer"),
        ({**record, "response_validity_hours": True}, "response_validity_hours must be an integer"),
        ({**record, "validity_seconds": 60}, "whole number of hours"),
    ):
        status, body = call(f"{base}/publish/v2/issuers/8", "PUT", bad)
        assert status == 400 and message in body["message"]
    assert 8 not in store.issuers()
    assert call(f"{base}/publish/v2/issuers/9", "PUT", record, token=None)[0] == 401
    loop.run(runner.cleanup())


def test_publisher_pushes_issuers_to_http_targets(loop, tmp_path, pki):
    from revoca.va_import import issuer_records

    pki.issue_ocsp_signer("issuing")
    from va.policy import IssuerPolicy

    records = issuer_records(pki, IssuerPolicy())
    issuers = [(ca.id, rec) for ca, rec, _ in records if rec is not None]
    assert [rec["name"] for _, rec in issuers] == ["issuing"]
    store = VAStore(tmp_path / "lmdb")
    base, runner = start_admin_server(loop, store)
    service = Publisher(
        Outbox(pki.store.engine),
        [HTTPTarget("va", base, TOKEN.encode())],
        PublisherSettings(source="ca"),
        issuers=issuers,
    )
    running = loop.spawn(service.run())
    try:
        assert _wait(lambda: store.issuers().get(issuers[0][0], {}).get("name") == "issuing")
        assert store.issuers()[issuers[0][0]]["parents"][0]["name"] == "root"
    finally:
        service.stop()
        running.result(10)
        loop.run(runner.cleanup())


def test_crls_reach_every_va(loop, tmp_path, pki):
    """Each VA takes the CRLs of the issuers it holds (tests/test_publish_crls.py):
    the remote one gets them from the publisher, the local one from an import."""
    from ca import crl
    from revoca.va_import import issuer_records
    from va.policy import IssuerPolicy

    pki.issue_ocsp_signer("issuing")
    issuers = [
        (ca.id, rec) for ca, rec, _ in issuer_records(pki, IssuerPolicy()) if rec is not None
    ]
    local, remote = VAStore(tmp_path / "local"), VAStore(tmp_path / "remote")
    for issuer_id, record in issuers:
        local.put_issuer(issuer_id, record)
    base, runner = start_admin_server(loop, remote)
    service = Publisher(
        Outbox(pki.store.engine),
        [LocalTarget("local", store=local), HTTPTarget("remote", base, TOKEN.encode())],
        PublisherSettings(source="ca"),
        issuers=issuers,
    )
    running = loop.spawn(service.run())
    try:
        record = pki.issue("issuing", make_csr(), "tls-server")
        pki.revoke("issuing", record.serial, RevocationReason.keyCompromise)
        full = crl.issue_crl(pki, "issuing")
        delta = crl.issue_crl(pki, "issuing", delta=True)
        for store in (local, remote):
            assert _wait(
                lambda s=store: (
                    s.get_crl("issuing") is not None and s.get_crl("issuing-delta") is not None
                )
            )
            assert store.get_crl("issuing").der == full.der
            assert store.get_crl("issuing-delta").number == delta.number
        newer = crl.issue_crl(pki, "issuing")
        assert _wait(lambda: remote.get_crl("issuing").number == newer.number)
    finally:
        service.stop()
        running.result(10)
        loop.run(runner.cleanup())


def test_the_publisher_reads_time_and_randomness_it_is_given(loop, tmp_path, pki):
    """The clock times successes and latencies; the random source draws the
    retry jitter (0.5 to 1.5 times the backoff, which doubles from 0.5 s)."""
    from common.clock import fixed
    from publisher.targets import DeliveryError

    class Draws:
        def __init__(self):
            self.asked = []

        def uniform(self, low, high):
            self.asked.append((low, high))
            return high

    class Flaky:
        """Fails twice, then takes everything."""

        name = "flaky"

        def __init__(self):
            self.calls = 0

        async def high_water(self, source):
            self.calls += 1
            if self.calls <= 2:
                raise DeliveryError("not yet")
            return 0

        async def deliver(self, source, after, events):
            return events[-1]["seq"]

        async def put_crl(self, crl):
            pass

        async def close(self):
            pass

    draws, target = Draws(), Flaky()
    service = Publisher(
        Outbox(pki.store.engine),
        [target],
        PublisherSettings(source="ca", max_backoff=0.6),
        clock=fixed(1_234_567_890.0),
        rng=draws,
    )
    waits = []
    sleep = service._sleep

    async def recorded(seconds):
        waits.append(seconds)
        await sleep(0.01)

    service._sleep = recorded
    running = loop.spawn(service.run())
    try:
        assert _wait(lambda: service.state["flaky"].delivered > 0, 10)
    finally:
        loop.loop.call_soon_threadsafe(service.stop)
        running.result(10)
    state = service.state["flaky"]
    assert draws.asked == [(0.5, 1.5), (0.5, 1.5)]
    retries = [w for w in waits if w != service.settings.crl_interval][:2]
    assert retries == pytest.approx([0.5 * 1.5, 0.6 * 1.5])  # the second capped by max_backoff
    assert state.last_success == 1_234_567_890.0
    created = service.outbox.created_at_ms(service.outbox.last_id())
    assert state.latencies_ms[-1] == 1_234_567_890_000.0 - created
