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
from ra import notify
from ra.inventory import import_certificates
from ra.search import CertificateQuery
from ra.service import RAService
from tests.conftest import FIXED_NOW, counts, make_csr, new_key

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
