"""Importing a CA made elsewhere (openssl), and issuing from it."""

import subprocess

import pytest

from ca.errors import BadInputError, ConflictError, KeyAccessError, PolicyError
from tests.conftest import make_csr, openssl_verify, pem


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def openssl_ca(tmp_path):
    """A root CA and an encrypted key made by the openssl command line."""
    d = tmp_path / "ossl"
    d.mkdir()
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "plain.key", cwd=d)
    openssl(
        "pkcs8",
        "-topk8",
        "-in",
        "plain.key",
        "-out",
        "enc.key",
        "-passout",
        "pass:openssl-secret",
        cwd=d,
    )
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "plain.key",
        "-subj",
        "/C=DE/O=Elsewhere/CN=Ossl Root",
        "-days",
        "3650",
        "-sha256",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "plain.key",
        "-subj",
        "/CN=Not A CA",
        "-days",
        "30",
        "-out",
        "leaf.pem",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        cwd=d,
    )
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "other.key", cwd=d)
    return d


def test_import_openssl_root_and_issue(service, openssl_ca, tmp_path):
    record = service.import_ca(
        "ossl",
        (openssl_ca / "ca.pem").read_bytes(),
        (openssl_ca / "enc.key").read_bytes(),
        b"openssl-secret",
    )
    assert record.origin == "imported" and record.parent is None
    key_file = tmp_path / "keys" / "ca-ossl.key.pem"
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    leaf = service.issue("ossl", make_csr(), "tls-server").certificate
    result = openssl_verify(tmp_path, record.certificate, [], leaf)
    assert result.returncode == 0, result.stderr
    # A sub-CA created here under the imported root chains back to it.
    sub = service.create_sub("sub", "ossl", "CN=Sub of Ossl")
    assert service.chain("sub")[1] == record.certificate
    leaf2 = service.issue("sub", make_csr(), "tls-server").certificate
    result = openssl_verify(tmp_path, record.certificate, [sub.certificate], leaf2)
    assert result.returncode == 0, result.stderr


def test_import_finds_parent_held_here(pki, tmp_path):
    # Re-import the issuing CA under another name: it must be linked to 'root'.
    issuing = pki.get_ca("issuing")
    key_pem = (tmp_path / "keys" / "ca-issuing.key.pem").read_bytes()
    record = pki.import_ca(
        "issuing-copy", pem(issuing.certificate), key_pem, b"correct horse battery staple"
    )
    assert record.parent == "root"


def test_import_refusals(service, openssl_ca):
    ca_pem = (openssl_ca / "ca.pem").read_bytes()
    enc = (openssl_ca / "enc.key").read_bytes()
    with pytest.raises(KeyAccessError, match="wrong passphrase for the CA private key"):
        service.import_ca("x", ca_pem, enc, b"wrong-secret")
    with pytest.raises(KeyAccessError, match="encrypted and no passphrase was given"):
        service.import_ca("x", ca_pem, enc, None)
    with pytest.raises(BadInputError, match="does not belong to the CA certificate"):
        service.import_ca("x", ca_pem, (openssl_ca / "other.key").read_bytes())
    with pytest.raises(PolicyError, match="not a CA certificate"):
        service.import_ca(
            "x", (openssl_ca / "leaf.pem").read_bytes(), (openssl_ca / "plain.key").read_bytes()
        )
    with pytest.raises(BadInputError, match=r"not a valid X\.509 certificate"):
        service.import_ca("x", ca_pem[:200], (openssl_ca / "plain.key").read_bytes())
    assert service.list_cas() == []
    assert not service.token.has_key("ca-x")
    service.import_ca("x", ca_pem, (openssl_ca / "plain.key").read_bytes())
    with pytest.raises(ConflictError, match="a CA named 'x' already exists"):
        service.import_ca("x", ca_pem, (openssl_ca / "plain.key").read_bytes())
