"""CRLs through the publish protocol: the VA stores and serves a CRL only when
it is a DER CRL signed by an issuer it holds, whose stated values are its
own and whose number does not go back (RFC 5280 5.2.3), over the admin
listener and into a co-located LMDB alike (va/crlcheck.py)."""

import json
import logging
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ca import crl as ca_crl
from ca.reasons import RevocationReason
from ca.token import load_private_key
from publisher.outbox import Outbox
from publisher.service import Publisher
from publisher.settings import PublisherSettings
from publisher.targets import CRLRefusedError, HTTPTarget, LocalTarget
from revoca.va_import import issuer_records
from tests.conftest import PASSPHRASE, make_csr
from tests.test_publish import TOKEN, _wait, start_admin_server
from va import crlcheck
from va.downloads import CRLs
from va.errors import CRLRefusal, CRLRefused
from va.policy import IssuerPolicy
from va.store import VAStore


def _issuers(pki) -> list[tuple[int, dict]]:
    """The VA issuer records of the CAs with an OCSP signer (issuing; root
    comes as its parent)."""
    pki.issue_ocsp_signer("issuing")
    return [(ca.id, rec) for ca, rec, _ in issuer_records(pki, IssuerPolicy()) if rec is not None]


def _va(path, issuers) -> VAStore:
    store = VAStore(path)
    for issuer_id, record in issuers:
        store.put_issuer(issuer_id, record)
    return store


def _ca_key(pki, name="issuing"):
    ca = pki.get_ca(name)
    return load_private_key(pki.token.key_file(ca.key_id).read_bytes(), PASSPHRASE.encode())


def _crl(issuer_name, key, number, *, aki_of=None, next_update=True, number_extension=True):
    """A CRL made outside the CA, signed by ``key``; its
    authorityKeyIdentifier names the public key of ``aki_of`` (a certificate
    or a key; None: ``key``)."""
    now = datetime.now(UTC).replace(microsecond=0)
    builder = x509.CertificateRevocationListBuilder().issuer_name(issuer_name).last_update(now)
    builder = builder.next_update(now + timedelta(days=1))
    if number_extension:
        builder = builder.add_extension(x509.CRLNumber(number), False)
    named = (aki_of or key).public_key()
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(named), False
    )
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return der if next_update else _without_next_update(der, key)


def _without_next_update(der: bytes, key) -> bytes:
    """``der`` signed again by ``key`` with its nextUpdate left out
    (cryptography's builder insists on one; RFC 5280 5.1 has it OPTIONAL)."""
    signed = asn1_crl.CertificateList.load(der)
    tbs = signed["tbs_cert_list"].copy()
    tbs["next_update"] = None
    signature = key.sign(tbs.dump(force=True), ec.ECDSA(hashes.SHA256()))
    return asn1_crl.CertificateList(
        {
            "tbs_cert_list": tbs,
            "signature_algorithm": signed["signature_algorithm"],
            "signature": signature,
        }
    ).dump()


def _row(name, der) -> dict:
    """A CRL as the publisher reads it from the CA store (Outbox.latest_crls)."""
    crl = x509.load_der_x509_crl(der)
    return {
        "name": name,
        "number": crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number,
        "this_update": int(crl.last_update_utc.timestamp()),
        "next_update": int(crl.next_update_utc.timestamp()),
        "der": der,
    }


def put(base, name, der, headers=None):
    request = urllib.request.Request(
        f"{base}/publish/v2/crls/{name}",
        data=der,
        method="PUT",
        headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _served(store, name) -> bytes | None:
    """The bytes the VA's /crl/<name>.crl answers with."""
    found = CRLs(store.reader()).get(name)
    return None if found is None else found[0]


def _openssl_accepts(tmp_path, der, issuer_pem) -> bool:
    (tmp_path / "served.crl").write_bytes(der)
    (tmp_path / "issuer.pem").write_bytes(issuer_pem)
    done = subprocess.run(
        [
            *("openssl", "crl", "-inform", "DER", "-in", tmp_path / "served.crl"),
            *("-verify", "-CAfile", tmp_path / "issuer.pem", "-noout"),
        ],
        capture_output=True,
        text=True,
    )
    return done.returncode == 0 and "verify OK" in done.stdout + done.stderr


def test_the_crls_the_ca_makes_reach_every_va_byte_for_byte(loop, tmp_path, pki):
    """Full and delta CRLs of the issuing CA and the root's CRL: the VA
    behind the admin listener and the co-located one serve exactly the CA's
    bytes, which openssl verifies against the issuer."""
    issuers = _issuers(pki)
    local, remote = _va(tmp_path / "local", issuers), VAStore(tmp_path / "remote")
    base, runner = start_admin_server(loop, remote)
    service = Publisher(
        Outbox(pki.store.engine),
        [LocalTarget("local", store=local), HTTPTarget("remote", base, TOKEN.encode())],
        PublisherSettings(source="ca", crl_interval=0.05),
        issuers=issuers,
    )
    record = pki.issue("issuing", make_csr(), "tls-server")
    pki.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    made = {
        "issuing": ca_crl.issue_crl(pki, "issuing"),
        "issuing-delta": ca_crl.issue_crl(pki, "issuing", delta=True),
        "root": ca_crl.issue_crl(pki, "root", arl=True),
    }
    running = loop.spawn(service.run())
    try:
        for store in (local, remote):
            assert _wait(lambda s=store: all(_served(s, n) for n in made), 15)
            for name, crl in made.items():
                assert _served(store, name) == crl.der, name
                assert store.get_crl(name).number == crl.number
        pem = {
            n: pki.get_ca(n).certificate.public_bytes(serialization.Encoding.PEM)
            for n in ("issuing", "root")
        }
        for name in made:
            assert _openssl_accepts(tmp_path, _served(remote, name), pem[name.split("-")[0]])
        assert all(not s.refused_crls and s.crl_refusals == 0 for s in service.state.values())
    finally:
        service.stop()
        running.result(10)
        loop.run(runner.cleanup())


@pytest.fixture
def held(loop, tmp_path, pki):
    """A VA holding the issuing CA's full CRL, behind its admin listener."""
    store = _va(tmp_path / "va", _issuers(pki))
    base, runner = start_admin_server(loop, store)
    crl = ca_crl.issue_crl(pki, "issuing")
    status, answer = put(base, "issuing", crl.der)
    assert status == 200 and answer == {
        "stored": "issuing",
        "number": crl.number,
        "unchanged": False,
    }
    yield store, base, crl
    loop.run(runner.cleanup())


def _refusals(pki, crl):
    """(name, body, headers, status, code, message) the VA refuses."""
    issuing = pki.get_ca("issuing")
    key, other = _ca_key(pki), ec.generate_private_key(ec.SECP256R1())
    unknown = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Nobody's CA")])
    later = crl.number + 5
    return {
        "garbage-starting-with-0x30": (
            "issuing",
            b"\x30" + bytes(range(1, 18)),
            {},
            400,
            "crl_malformed",
            "the body is not a DER CRL",
        ),
        "trailing-bytes": ("issuing", crl.der + b"\x00", {}, 400, "crl_malformed", "not a DER"),
        "another-key-under-the-issuers-name": (
            "issuing",
            _crl(issuing.certificate.subject, other, later, aki_of=issuing.certificate),
            {},
            422,
            "crl_bad_signature",
            "does not verify with the key of CN=Test Issuing CA",
        ),
        "another-key-naming-itself": (
            "issuing",
            _crl(issuing.certificate.subject, other, later),
            {},
            422,
            "crl_unknown_issuer",
            "holds no certificate of CN=Test Issuing CA,O=Revoca Tests,C=DE with key identifier",
        ),
        "an-issuer-the-va-does-not-hold": (
            "issuing",
            _crl(unknown, other, later),
            {},
            422,
            "crl_unknown_issuer",
            "holds no CA certificate with subject CN=Nobody's CA",
        ),
        "a-lower-number": (
            "issuing",
            _crl(issuing.certificate.subject, key, crl.number - 1),
            {},
            409,
            "crl_number_lower",
            f"CRL number {crl.number - 1} is below number {crl.number}",
        ),
        "the-same-number-other-bytes": (
            "issuing",
            _crl(issuing.certificate.subject, key, crl.number),
            {},
            409,
            "crl_number_reused",
            f"CRL number {crl.number} is held under 'issuing' with other contents",
        ),
        "a-number-header-that-is-not-the-crls": (
            "issuing",
            _crl(issuing.certificate.subject, key, later),
            {"X-CRL-Number": str(later + 1)},
            400,
            "crl_header_mismatch",
            f"X-CRL-Number says {later + 1}, the CRL's own is {later}",
        ),
        "a-this-update-header-that-is-not-the-crls": (
            "issuing",
            _crl(issuing.certificate.subject, key, later),
            {"X-CRL-This-Update": "1"},
            400,
            "crl_header_mismatch",
            "X-CRL-This-Update says 1",
        ),
        "a-header-that-is-no-number": (
            "issuing",
            crl.der,
            {"X-CRL-Next-Update": "soon"},
            400,
            "crl_bad_header",
            "X-CRL-Next-Update must be a decimal integer",
        ),
        "no-crl-number": (
            "issuing",
            _crl(issuing.certificate.subject, key, 0, number_extension=False),
            {},
            400,
            "crl_incomplete",
            "the CRL has no cRLNumber",
        ),
        "no-next-update": (
            "issuing",
            _crl(issuing.certificate.subject, key, later, next_update=False),
            {},
            400,
            "crl_incomplete",
            "the CRL has no nextUpdate",
        ),
        "a-number-beyond-64-bits": (
            "issuing",
            _crl(issuing.certificate.subject, key, 2**64),
            {},
            400,
            "crl_number_too_large",
            "does not fit in 64 bits",
        ),
        "a-name-that-is-no-crl-name": ("a..b", crl.der, {}, 400, "crl_bad_name", "invalid CRL"),
    }


REFUSALS = [
    "garbage-starting-with-0x30",
    "trailing-bytes",
    "another-key-under-the-issuers-name",
    "another-key-naming-itself",
    "an-issuer-the-va-does-not-hold",
    "a-lower-number",
    "the-same-number-other-bytes",
    "a-number-header-that-is-not-the-crls",
    "a-this-update-header-that-is-not-the-crls",
    "a-header-that-is-no-number",
    "no-crl-number",
    "no-next-update",
    "a-number-beyond-64-bits",
    "a-name-that-is-no-crl-name",
]


@pytest.mark.parametrize("case", REFUSALS)
def test_a_crl_the_va_refuses_changes_nothing(held, pki, caplog, case):
    store, base, crl = held
    name, body, headers, status, code, message = _refusals(pki, crl)[case]
    caplog.set_level(logging.WARNING, logger="revoca.va.crl")
    got, answer = put(base, name, body, headers)
    assert (got, answer["error"]) == (status, code), answer
    assert message in answer["message"], answer["message"]
    assert _served(store, "issuing") == crl.der and store.get_crl("issuing").number == crl.number
    assert _served(store, name) in (None, crl.der)
    (record,) = [r for r in caplog.records if r.getMessage() == "refused a CRL"]
    assert record.code == code and record.crl == name
    # The refusal's code, status and whether it may pass later are one table's.
    refusal = CRLRefusal.of_code(code)
    assert refusal.status == status and refusal.transient is (code == "crl_unknown_issuer")


def test_a_resend_of_the_crl_held_is_taken_and_changes_nothing(held, pki):
    store, base, crl = held
    txn_before = store.reader().generation()
    for headers in ({}, {"X-CRL-Number": str(crl.number)}):
        status, answer = put(base, "issuing", crl.der, headers)
        assert status == 200 and answer == {
            "stored": "issuing",
            "number": crl.number,
            "unchanged": True,
        }
    assert store.reader().generation() == txn_before  # nothing was written
    newer = ca_crl.issue_crl(pki, "issuing")
    status, answer = put(base, "issuing", newer.der, {"X-CRL-Number": str(newer.number)})
    assert status == 200 and answer["unchanged"] is False
    assert _served(store, "issuing") == newer.der


def test_each_name_is_numbered_on_its_own(held, pki):
    """Full, delta and ARL numbers come from one counter per CA; each name
    holds its own newest (the delta's number may be above the full's)."""
    store, base, full = held
    delta = ca_crl.issue_crl(pki, "issuing", delta=True)
    assert put(base, "issuing-delta", delta.der)[0] == 200
    assert put(base, "issuing", full.der)[0] == 200  # below the delta's number: another name
    newer = ca_crl.issue_crl(pki, "issuing", delta=True)
    assert put(base, "issuing-delta", newer.der)[0] == 200
    status, answer = put(base, "issuing-delta", delta.der)
    assert status == 409 and answer["error"] == "crl_number_lower"
    assert _served(store, "issuing-delta") == newer.der and _served(store, "issuing") == full.der


def test_the_co_located_path_applies_the_same_check(loop, tmp_path, pki):
    """A co-located publisher writes the VA's LMDB through va/crlcheck.py too,
    stating the CA store's row."""
    store = _va(tmp_path / "va", _issuers(pki))
    target = LocalTarget("local", store=store)
    crl = ca_crl.issue_crl(pki, "issuing")
    row = {
        "name": "issuing",
        "number": crl.number,
        "this_update": crl.this_update,
        "next_update": crl.next_update,
        "der": crl.der,
    }
    assert _row("issuing", crl.der) == row
    loop.run(target.put_crl(row))
    assert _served(store, "issuing") == crl.der
    subject, key = pki.get_ca("issuing").certificate.subject, _ca_key(pki)
    other = ec.generate_private_key(ec.SECP256R1())
    for bad, refusal in (
        (_row("issuing", crl.der) | {"der": b"\x30" + b"\x00" * 17}, CRLRefusal.MALFORMED),
        (row | {"number": crl.number + 1}, CRLRefusal.HEADER_MISMATCH),
        (_row("issuing", _crl(subject, key, crl.number - 1)), CRLRefusal.NUMBER_LOWER),
        (_row("issuing", _crl(subject, key, crl.number)), CRLRefusal.NUMBER_REUSED),
        (
            _row("issuing", _crl(subject, other, crl.number + 1, aki_of=key)),
            CRLRefusal.BAD_SIGNATURE,
        ),
    ):
        with pytest.raises(CRLRefusedError) as caught:
            loop.run(target.put_crl(bad))
        assert caught.value.refusal is refusal
        assert _served(store, "issuing") == crl.der
    with pytest.raises(CRLRefused) as refused:
        crlcheck.publish_crl(VAStore(tmp_path / "empty"), "issuing", crl.der)
    assert refused.value.refusal is CRLRefusal.UNKNOWN_ISSUER


def test_the_publisher_reports_a_refusal_and_does_not_send_it_again(loop, tmp_path, pki):
    """A VA that holds a higher number under the name (the CA store was
    restored from an older backup, say) refuses the CA's CRL: the publisher
    counts it once, names it in its status and metrics, and sends it again
    only when a newer CRL comes."""
    store = _va(tmp_path / "va", _issuers(pki))
    issuing = pki.get_ca("issuing")
    ahead = _crl(issuing.certificate.subject, _ca_key(pki), 1000)
    crlcheck.publish_crl(store, "issuing", ahead)
    target = LocalTarget("local", store=store)
    sent = []
    put_crl = target.put_crl

    async def counted(crl):
        sent.append(crl["number"])
        return await put_crl(crl)

    target.put_crl = counted
    service = Publisher(
        Outbox(pki.store.engine), [target], PublisherSettings(source="ca", crl_interval=0.02)
    )
    first = ca_crl.issue_crl(pki, "issuing")
    running = loop.spawn(service.run())
    try:
        state = service.state["local"]
        assert _wait(lambda: state.crl_refusals == 1, 10)
        time.sleep(0.3)  # some fifteen CRL intervals
        assert sent == [first.number] and state.crl_refusals == 1
        assert state.refused_crls == {
            "issuing": {
                "number": first.number,
                "error": "crl_number_lower",
                "message": state.refused_crls["issuing"]["message"],
            }
        }
        assert (
            "below number 1000" in service.status()["local"]["refused_crls"]["issuing"]["message"]
        )
        assert 'revoca_publisher_crl_refusals_total{va="local"} 1' in service.metrics()
        second = ca_crl.issue_crl(pki, "issuing")
        assert _wait(lambda: sent == [first.number, second.number] and state.crl_refusals == 2)
        assert _served(store, "issuing") == ahead
    finally:
        service.stop()
        running.result(10)


def test_a_crl_of_an_issuer_not_yet_held_is_retried_until_it_is(loop, tmp_path, pki):
    """Unknown issuer is the one refusal that may pass later: the CRL is
    retried, with backoff, and taken once the VA holds the issuer."""
    store = VAStore(tmp_path / "va")
    target = LocalTarget("local", store=store)
    service = Publisher(
        Outbox(pki.store.engine),
        [target],
        PublisherSettings(source="ca", crl_interval=0.02, max_backoff=0.1),
    )
    crl = ca_crl.issue_crl(pki, "issuing")
    running = loop.spawn(service.run())
    try:
        assert _wait(lambda: "holds no CA certificate" in service.state["local"].last_error, 10)
        assert _served(store, "issuing") is None
        for issuer_id, record in _issuers(pki):
            store.put_issuer(issuer_id, record)
        assert _wait(lambda: _served(store, "issuing") == crl.der, 10)
        assert service.state["local"].crl_refusals == 0
    finally:
        service.stop()
        running.result(10)
