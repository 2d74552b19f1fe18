"""Importing certificates from other PKIs: files, folders and zips; issuers
verified; all or nothing; duplicates skipped; the imports show up in search,
reports and expiry notices, and nothing is ever signed, revoked or published
under an external issuer."""

import zipfile
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ca.errors import BadInputError, PolicyError
from ca.records import serial_hex
from ra import notify
from ra.inventory import import_certificates
from ra.search import CertificateQuery
from ra.service import RAService
from tests.conftest import FIXED_NOW, counts, last_audit, make_csr, new_key
from tests.ra_fixtures import start_ra

NOW = int(FIXED_NOW.timestamp())


def _cert(subject, key, issuer_name, issuer_key, *, ca=False, days=30, sans=()):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(FIXED_NOW - timedelta(days=1))
        .not_valid_after(FIXED_NOW + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def other_pki():
    """Another organisation's CA and three of its certificates."""
    ca_key = new_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Other Corp CA")])
    ca = _cert("Other Corp CA", ca_key, name, ca_key, ca=True, days=3650)
    leaves = [
        _cert("mail.other.example", new_key(), name, ca_key, days=5, sans=["mail.other.example"]),
        _cert("vpn.other.example", new_key(), name, ca_key, days=200, sans=["vpn.other.example"]),
        _cert("*.apps.other.example", new_key(), name, ca_key, sans=["*.apps.other.example"]),
    ]
    return ca, leaves


@pytest.fixture
def service(make_service):
    pki = make_service(clock=lambda: FIXED_NOW)
    pki.init_root("root", "CN=Inventory Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=Inventory CA,O=Revoca Tests,C=DE")
    return RAService(pki)


def _pem(*certs) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def test_files_folders_and_zips(service, other_pki, tmp_path):
    ca, (mail, vpn, apps) = other_pki
    (tmp_path / "bundle.pem").write_bytes(_pem(mail, ca))
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "vpn.der").write_bytes(vpn.public_bytes(Encoding.DER))
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as archive:
        archive.writestr("certs/apps.crt", _pem(apps))
        archive.writestr("README.txt", "not a certificate")
    result = import_certificates(
        service.ca, [tmp_path / "bundle.pem", tmp_path / "dir", tmp_path / "more.zip"]
    )
    assert result.imported == 3 and result.duplicates == 0
    assert len(result.issuers_added) == 1 and result.issuers_added[0].startswith("ext-Other")
    again = import_certificates(service.ca, [tmp_path / "bundle.pem"])
    assert (again.imported, again.duplicates, again.issuers_added) == (0, 1, [])

    found = service.search(CertificateQuery(hostname="x.apps.other.example"))
    assert [r.subject for _, r in found] == ["CN=*.apps.other.example"]
    assert [r.profile for _, r in service.search(CertificateQuery(text="other.example"))] == [
        "external"
    ] * 3
    counted = {(r["ca"], r["profile"]): r["count"] for r in service.report("counts")}
    assert counted[(result.issuers_added[0], "external")] == 3


def test_external_certificates_get_expiry_notices(service, other_pki, tmp_path):
    ca, (mail, _vpn, _apps) = other_pki
    service.create_entity(
        "mail-team",
        email="mail@other.example",
        ca="issuing",
        profile="tls-server",
        subject_template="CN={name}",
    )
    (tmp_path / "mail.pem").write_bytes(_pem(mail, ca))
    import_certificates(service.ca, [tmp_path / "mail.pem"], entity="mail-team")
    due, _ = notify.due_notices(service.store, notify.NotifySettings(), NOW)
    assert [(n.subject, n.recipients, n.threshold_days) for n in due] == [
        ("CN=mail.other.example", ["mail@other.example"], 7)
    ]


def test_all_or_nothing(service, other_pki, tmp_path):
    ca, (mail, vpn, _apps) = other_pki
    before = counts(service.ca)
    (tmp_path / "good.pem").write_bytes(_pem(mail, ca))
    (tmp_path / "cut.pem").write_bytes(_pem(vpn)[:-40])
    with pytest.raises(BadInputError, match="truncated"):
        import_certificates(service.ca, [tmp_path / "good.pem", tmp_path / "cut.pem"])
    (tmp_path / "orphan.pem").write_bytes(_pem(vpn))  # its CA is not included
    with pytest.raises(BadInputError, match="include its certificate"):
        import_certificates(service.ca, [tmp_path / "orphan.pem"])
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BadInputError):
        import_certificates(service.ca, [tmp_path / "bad.zip"])
    with pytest.raises(BadInputError, match="no such file"):
        import_certificates(service.ca, [tmp_path / "missing.pem"])
    assert counts(service.ca) == before
    assert service.ca.list_cas(external=True) == service.ca.list_cas()


def test_nothing_is_signed_revoked_or_published_under_an_external_issuer(
    service, other_pki, tmp_path
):
    ca, (mail, _vpn, _apps) = other_pki
    (tmp_path / "mail.pem").write_bytes(_pem(mail, ca))
    issuer = import_certificates(service.ca, [tmp_path / "mail.pem"]).issuers_added[0]
    from ca.reasons import RevocationReason

    with pytest.raises(PolicyError, match="inventory"):
        service.ca.revoke(issuer, mail.serial_number, RevocationReason.superseded)
    with pytest.raises(PolicyError, match="inventory"):
        service.ca.issue(issuer, make_csr(), "tls-server")
    with pytest.raises(PolicyError, match="inventory"):
        service.ca.create_sub("sub2", issuer, "CN=Sub 2")
    from ca.crl import issue_full_crl

    with pytest.raises(PolicyError, match="inventory"):
        issue_full_crl(service.ca, issuer)
    assert issuer not in [c.name for c in service.ca.list_cas()]  # VA import, CRL updater
    assert issuer in [c.name for c in service.ca.list_cas(external=True)]


def test_a_leaf_of_a_ca_held_here_is_refused(service, tmp_path):
    record = service.ca.issue("issuing", make_csr(), "tls-server")
    (tmp_path / "own.pem").write_bytes(record.certificate.public_bytes(Encoding.PEM))
    with pytest.raises(PolicyError, match="held here"):
        import_certificates(service.ca, [tmp_path / "own.pem"])


def _refusal(service, tmp_path, name: str, data: bytes) -> str:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(BadInputError) as refused:
        import_certificates(service.ca, [tmp_path / name])
    message = refused.value.message
    assert "\n" not in message and "ParseError" not in message and "{" not in message
    assert message.startswith(str(tmp_path / name))
    return message


def test_a_signature_that_does_not_verify_is_called_so(service, other_pki, tmp_path):
    """A leaf naming a known (or included) issuer whose key did not sign it
    is 'signature invalid', not 'issuer unknown'."""
    ca, (mail, _vpn, _apps) = other_pki
    impostor = _cert("forged.other.example", new_key(), ca.subject, new_key())
    included = _refusal(service, tmp_path, "forged.pem", _pem(impostor, ca))
    assert "signature invalid" in included and "issuer unknown" not in included
    assert "CN=Other Corp CA" in included
    (tmp_path / "mail.pem").write_bytes(_pem(mail, ca))
    import_certificates(service.ca, [tmp_path / "mail.pem"])  # now a known issuer
    known = _refusal(service, tmp_path, "forged-alone.pem", _pem(impostor))
    assert "signature invalid" in known
    stranger_key = new_key()
    stranger = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Stranger CA")])
    orphan = _cert("x.stranger.example", new_key(), stranger, stranger_key)
    unknown = _refusal(service, tmp_path, "orphan.pem", _pem(orphan))
    assert "issuer unknown" in unknown and "include its certificate" in unknown


def test_files_that_are_not_certificates_get_one_clear_line(service, tmp_path):
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    key_pem = new_key().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    assert _refusal(service, tmp_path, "key.pem", key_pem).endswith(
        "key.pem: holds PRIVATE KEY, not a certificate"
    )
    assert _refusal(service, tmp_path, "notes.crt", b"hello, world\n").endswith(
        "notes.crt: not a certificate (neither PEM nor DER)"
    )
    assert _refusal(service, tmp_path, "junk.der", b"\x30\x03\x02\x01\x05").endswith(
        "junk.der: not a certificate (DER that is not an X.509 certificate)"
    )
    assert _refusal(service, tmp_path, "empty.cer", b"").endswith("empty.cer: the file is empty")
    damaged = b"-----BEGIN CERTIFICATE-----\nTUlJQm9vb29vbw==\n-----END CERTIFICATE-----\n"
    assert _refusal(service, tmp_path, "bad.pem", damaged).endswith(
        "bad.pem: certificate 1 of 1 is damaged: its base64 does not decode to an X.509 certificate"
    )


@pytest.fixture
def api(loop, make_service):
    pki = make_service(clock=lambda: FIXED_NOW)
    pki.init_root("root", "CN=Inventory Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=Inventory CA,O=Revoca Tests,C=DE")
    pki.create_sub("clients", "root", "CN=Clients CA,O=Revoca Tests,C=DE", profile="client-sub-ca")
    env, runner = start_ra(loop, pki)
    yield env
    loop.run(runner.cleanup())


def test_import_over_the_rest_api(api, other_pki):
    import base64
    import io

    ca, (mail, vpn, apps) = other_pki
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("certs/apps.crt", _pem(apps))
    body = {
        "pem": _pem(mail, ca).decode(),
        "files": [
            {
                "name": "vpn.der",
                "content": base64.b64encode(vpn.public_bytes(Encoding.DER)).decode(),
            },
            {"name": "more.zip", "content": base64.b64encode(packed.getvalue()).decode()},
        ],
    }
    assert api.call("POST", "/api/inventory", body, role="auditor").status == 403
    reply = api.call("POST", "/api/inventory", body, role="ra-officer")
    assert reply.status == 200, reply.body
    assert (reply.body["imported"], reply.body["already_present"]) == (3, 0)
    assert reply.body["issuers_added"][0].startswith("ext-Other")
    audited = last_audit(api.service)
    assert (audited.actor, audited.action, audited.result) == (
        "ra:ra-officer-user",
        "ra.inventory.import",
        "ok",
    )
    assert audited.target == "pem,vpn.der,more.zip"
    found = api.call("GET", "/api/certificates?text=other.example", role="auditor").body["items"]
    assert len(found) == 3
    again = api.call("POST", "/api/inventory", {"pem": _pem(mail, ca).decode()}, role="ra-officer")
    assert (again.body["imported"], again.body["already_present"]) == (0, 1)  # leaves count


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "nothing to import"),
        ({"pem": "hello"}, "pem: not a certificate (neither PEM nor DER)"),
        ({"files": [{"name": "a.der", "content": "%%%"}]}, "files[0] (a.der): content is not"),
        ({"files": [{"name": "a.der"}]}, "files[0] must be an object with name and content"),
        ({"files": "x"}, "files must be a list"),
        ({"files": [{"name": "a\nb", "content": ""}]}, "name must be printable"),
        ({"pem": "x", "colour": "red"}, "unknown field(s): colour"),
    ],
)
def test_rest_import_refusals_are_clear_and_audited(api, body, words):
    reply = api.call("POST", "/api/inventory", body, role="ra-officer")
    assert (reply.status, reply.body["error"]["code"]) == (400, "bad_input")
    assert words in reply.body["error"]["message"]
    if "pem" in body and len(body) == 1:
        audited = last_audit(api.service)
        assert (audited.action, audited.result) == ("ra.inventory.import", "refused")


def test_release_hold_over_the_rest_api(api):
    body = {
        "name": "alice",
        "email": "alice@example.com",
        "ca": "clients",
        "profile": "tls-client",
        "subject_template": "CN=Alice",
        "allowed_sans": ["email:alice@example.com"],
    }
    assert api.call("POST", "/api/entities", body, role="ra-officer").status == 201
    csr = make_csr("x", ("email:alice@example.com",)).decode()
    issued = api.call("POST", "/api/entities/alice/enroll", {"csr": csr}, role="ra-officer")
    serial = issued.body["certificate"]["serial"]
    path = f"/api/certificates/clients/{serial}"
    held = api.call("POST", f"{path}/revoke", {"reason": "certificateHold"}, role="ra-officer")
    assert held.status == 200 and held.body["status"] == "hold"
    assert api.call("POST", f"{path}/release-hold", role="auditor").status == 403
    released = api.call("POST", f"{path}/release-hold", role="ra-officer")
    assert released.status == 200, released.body
    assert (released.body["status"], released.body["reason"]) == ("active", None)
    audited = last_audit(api.service)
    assert (audited.actor, audited.action, audited.target, audited.result) == (
        "ra:ra-officer-user",
        "ca.release_hold",
        f"clients/{serial}",
        "ok",
    )
    again = api.call("POST", f"{path}/release-hold", role="ra-officer")
    assert (again.status, again.body["error"]["code"]) == (409, "conflict")
    assert "not on hold" in again.body["error"]["message"]
    missing = api.call("POST", "/api/certificates/clients/abcd/release-hold", role="ra-officer")
    assert missing.status == 404


def test_duplicates_span_the_inventory_and_the_cas_held_here(service, other_pki, tmp_path):
    """One key (and one name set) in a certificate issued here and in one
    imported from another PKI: both groups name both."""
    ca, _leaves = other_pki
    ca_key = new_key()
    other_ca = _cert("Twin Corp CA", ca_key, ca.subject, ca_key, ca=True, days=3650)
    key = new_key()
    ours = service.ca.issue(
        "issuing", make_csr("www.example.com", ("dns:www.example.com",), key=key), "tls-server"
    )
    theirs = _cert("www.example.com", key, other_ca.subject, ca_key, sans=["WWW.example.com"])
    (tmp_path / "twin.pem").write_bytes(_pem(theirs, other_ca))
    external = import_certificates(service.ca, [tmp_path / "twin.pem"]).issuers_added[0]
    groups = service.report("duplicates")
    members = [(g["kind"], [(c["ca"], c["serial"]) for c in g["certificates"]]) for g in groups]
    pair = [("issuing", serial_hex(ours.serial)), (external, serial_hex(theirs.serial_number))]
    assert members == [("key", pair), ("names", pair)]  # DNS names compare case-blind
    assert groups[1]["shared"] == "CN=www.example.com dns:www.example.com"
