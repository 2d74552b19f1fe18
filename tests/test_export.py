"""Exports, read back by openssl and cryptography."""

import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from ca.errors import BadInputError, PolicyError
from tests.conftest import make_csr


@pytest.fixture
def issued(pki):
    return pki.issue("issuing", make_csr(), "tls-server")


def test_pem_der_chain(pki, issued):
    assert x509.load_pem_x509_certificate(pki.export("issuing", issued.serial, "pem")) == (
        issued.certificate
    )
    assert pki.export("issuing", issued.serial, "der") == issued.der
    chain = x509.load_pem_x509_certificates(pki.export("issuing", issued.serial, "pem-chain"))
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=www.example.com",
        "CN=Test Issuing CA,O=Revoca Tests,C=DE",
        "CN=Test Root,O=Revoca Tests,C=DE",
    ]


def test_pkcs7_read_by_openssl(pki, issued, tmp_path):
    data = pki.export("issuing", issued.serial, "p7b")
    assert len(pkcs7.load_der_pkcs7_certificates(data)) == 3
    (tmp_path / "c.p7b").write_bytes(data)
    out = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", tmp_path / "c.p7b", "-print_certs", "-noout"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.count("subject=") == 3


def test_pkcs12_for_server_side_key(pki, tmp_path):
    record = pki.issue_with_new_key("issuing", "tls-client", "CN=bob", ["email:bob@example.com"])
    data = pki.export("issuing", record.serial, "p12", export_passphrase=b"export-pass")
    key, cert, extra = pkcs12.load_key_and_certificates(data, b"export-pass")
    assert cert == record.certificate and len(extra) == 2
    assert key.public_key() == cert.public_key()
    (tmp_path / "b.p12").write_bytes(data)
    out = subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            tmp_path / "b.p12",
            "-passin",
            "pass:export-pass",
            "-nokeys",
            "-info",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "AES-256-CBC" in out.stderr


def test_pkcs12_refusals(pki, issued):
    with pytest.raises(PolicyError, match="issued from a CSR: its private key never came here"):
        pki.export("issuing", issued.serial, "p12", export_passphrase=b"export-pass")
    record = pki.issue_with_new_key("issuing", "tls-client", "CN=bob", [])
    with pytest.raises(BadInputError, match="needs an export passphrase"):
        pki.export("issuing", record.serial, "p12")
    with pytest.raises(BadInputError, match="unknown export format 'jks'"):
        pki.export("issuing", record.serial, "jks")


def _openssl_reads(path, *args) -> str:
    out = subprocess.run(
        ["openssl", *args, "-in", path, "-noout", "-subject"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("by_serial", [False, True])
def test_a_root_exports_its_own_certificate(pki, tmp_path, by_serial):
    """A root issued itself but has no certificates row: with no serial, or
    under its own serial, its certificate comes out in every format but p12."""
    root = pki.get_ca("root")
    serial = root.serial if by_serial else None
    (tmp_path / "root.pem").write_bytes(pki.export("root", serial, "pem"))
    (tmp_path / "root.der").write_bytes(pki.export("root", serial, "der"))
    (tmp_path / "root.p7b").write_bytes(pki.export("root", serial, "p7b"))
    assert "CN = Test Root" in _openssl_reads(tmp_path / "root.pem", "x509")
    assert "CN = Test Root" in _openssl_reads(tmp_path / "root.der", "x509", "-inform", "DER")
    printed = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", tmp_path / "root.p7b", "-print_certs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed.count("subject=") == 1
    assert pki.export("root", serial, "der") == root.cert_der
    assert x509.load_pem_x509_certificates(pki.export("root", serial, "pem-chain")) == [
        root.certificate
    ]
    with pytest.raises(PolicyError, match="stays in its crypto token"):
        pki.export("root", serial, "p12", export_passphrase=b"export-pass")


def test_a_sub_ca_exports_its_own_certificate_with_its_chain(pki):
    chain = x509.load_pem_x509_certificates(pki.export("issuing", None, "pem-chain"))
    assert chain == [pki.get_ca("issuing").certificate, pki.get_ca("root").certificate]
    # Its serial belongs to its parent: under "issuing" it is not one it issued.
    from ca.errors import NotFoundError

    with pytest.raises(NotFoundError, match="has no certificate with serial"):
        pki.export("issuing", pki.get_ca("issuing").serial, "pem")
    assert pki.export("root", pki.get_ca("issuing").serial, "der") == pki.get_ca("issuing").cert_der
