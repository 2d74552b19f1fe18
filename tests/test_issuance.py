"""Issuance: every certificate verifies with openssl and passes pkilint."""

import dataclasses
import json

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from ca.errors import PolicyError
from ca.records import serial_to_db
from store.events import EventType, OutboxEvent, decode
from store.tables.outbox import outbox
from tests.conftest import (
    FIXED_NOW,
    PUBLIC_BASE_URL,
    make_csr,
    new_key,
    openssl_verify,
    pem,
    pkilint,
)


@pytest.fixture
def public_pki(make_service):
    service = make_service(base_url=PUBLIC_BASE_URL)
    service.init_root("root", "CN=Revoca Test Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    service.create_sub("issuing", "root", "CN=Revoca Test Issuing CA,O=Revoca Tests,C=DE")
    return service


@pytest.mark.parametrize("root_key", ["ec-p384", "ec-p256", "rsa-2048", "ed25519"])
def test_root_and_sub_for_each_key_type(service, tmp_path, root_key):
    sub_profile = "sub-ca"
    if root_key == "ed25519":
        # BR 6.1.5 has no Ed25519: only a private root, outside the BR, may use it.
        with pytest.raises(PolicyError, match="profile 'root-ca' does not allow key type ed25519"):
            service.init_root("r", "CN=Root,O=Revoca Tests", key_type=root_key)
        service.profiles["root-ca"] = dataclasses.replace(
            service.profiles["root-ca"],
            baseline_requirements=False,
            key_types=(*service.profiles["root-ca"].key_types, "ed25519"),
        )
        sub_profile = "client-sub-ca"
    root = service.init_root("r", "CN=Root,O=Revoca Tests", key_type=root_key)
    sub = service.create_sub(
        "s", "r", "CN=Sub,O=Revoca Tests", profile=sub_profile, key_type="ec-p256"
    )
    assert sub.parent == "r"
    result = openssl_verify(tmp_path, root.certificate, [], sub.certificate)
    assert result.returncode == 0, result.stderr
    (tmp_path / "root.pem").write_bytes(pem(root.certificate))
    (tmp_path / "sub.pem").write_bytes(pem(sub.certificate))
    assert pkilint("lint_pkix_cert", tmp_path / "root.pem") == []
    assert pkilint("lint_pkix_cert", tmp_path / "sub.pem") == []
    constraints = root.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    # BR 7.1.2.1.3: the root's AKI is its own SKI.
    extensions = root.certificate.extensions
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not aki.critical and aki.value.key_identifier == ski.value.digest
    assert aki.value.authority_cert_issuer is None
    sub_constraints = sub.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert sub_constraints.value.path_length == 0


@pytest.mark.parametrize("leaf_key", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"])
def test_tls_server_passes_openssl_and_cabf_lint(public_pki, tmp_path, leaf_key):
    record = public_pki.issue(
        "issuing",
        make_csr("www.example.com", ["dns:www.example.com", "dns:example.com"], new_key(leaf_key)),
        "tls-server",
    )
    cert = record.certificate
    chain = public_pki.chain("issuing")
    result = openssl_verify(tmp_path, chain[-1], chain[:-1], cert)
    assert result.returncode == 0, result.stderr
    purpose = openssl_verify(tmp_path, chain[-1], chain[:-1], cert, "-purpose", "sslserver")
    assert purpose.returncode == 0, purpose.stderr
    (tmp_path / "leaf.pem").write_bytes(pem(cert))
    assert pkilint("lint_pkix_cert", tmp_path / "leaf.pem") == []
    assert pkilint("lint_cabf_serverauth_cert", tmp_path / "leaf.pem", "-d") == []
    # Key usage follows the key: keyEncipherment only for RSA (BR 7.1.2.7.11).
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment == leaf_key.startswith("rsa")
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    )
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [
        f"{PUBLIC_BASE_URL}/ocsp",
        f"{PUBLIC_BASE_URL}/ca/issuing.crt",
    ]
    crldp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert crldp[0].full_name[0].value == f"{PUBLIC_BASE_URL}/crl/issuing.crl"
    # The CA publishes deltas ([crl] delta_url): the certificate names them.
    freshest = cert.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value == f"{PUBLIC_BASE_URL}/crl/issuing-delta.crl"
    assert record.sans == ("dns:www.example.com", "dns:example.com")


def test_tls_client_and_ocsp_signer(public_pki, tmp_path):
    client = public_pki.issue(
        "issuing", make_csr("alice", ["email:alice@example.com"]), "tls-client"
    )
    signer, key_id = public_pki.issue_ocsp_signer("issuing")
    assert public_pki.token.has_key(key_id)
    chain = public_pki.chain("issuing")
    for record in (client, signer):
        result = openssl_verify(tmp_path, chain[-1], chain[:-1], record.certificate)
        assert result.returncode == 0, result.stderr
        (tmp_path / "c.pem").write_bytes(pem(record.certificate))
        assert pkilint("lint_pkix_cert", tmp_path / "c.pem") == []
    freshest = client.certificate.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value == f"{PUBLIC_BASE_URL}/crl/issuing-delta.crl"
    with pytest.raises(x509.ExtensionNotFound):  # no CRL DP, so no delta either
        signer.certificate.extensions.get_extension_for_class(x509.FreshestCRL)
    cert = signer.certificate
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
    )
    assert cert.extensions.get_extension_for_oid(ExtensionOID.OCSP_NO_CHECK)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days < 31
    (tmp_path / "signer.pem").write_bytes(pem(cert))
    assert (
        pkilint("lint_cabf_serverauth_cert", tmp_path / "signer.pem", "-t", "OCSP-RESPONDER") == []
    )


def test_serials_are_random_positive_and_long(pki):
    serials = {pki.issue("issuing", make_csr(), "tls-server").serial for _ in range(20)}
    assert len(serials) == 20
    assert all(64 < s.bit_length() <= 127 for s in serials)


def test_validity_is_counted_inclusively(make_service):
    service = make_service(clock=lambda: FIXED_NOW)
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Sub")
    cert = service.issue("issuing", make_csr(), "tls-server", days=398).certificate
    assert cert.not_valid_before_utc == FIXED_NOW
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.total_seconds() == 398 * 86400 - 1


def test_issuance_writes_certificate_outbox_and_audit_together(pki):
    record = pki.issue("issuing", make_csr(), "tls-server")
    with pki.store.transaction() as conn:
        events = conn.execute(outbox.select().order_by(outbox.c.id)).all()
    last = events[-1]
    assert last.event == "issued" and last.serial == serial_to_db(record.serial)
    assert decode(last) == OutboxEvent(
        last.id,
        EventType.ISSUED,
        pki.get_ca("issuing").id,
        record.serial,
        int(record.not_after.timestamp()),
    )
    from tests.conftest import last_audit

    entry = last_audit(pki)
    assert entry.action == "ca.issue" and entry.result == "ok"
    assert json.loads(entry.detail)["profile"] == "tls-server"


def test_server_side_key_is_stored_encrypted(pki):
    record = pki.issue_with_new_key(
        "issuing", "tls-client", "CN=bob", ["email:bob@example.com"], key_type="ec-p256"
    )
    assert record.has_private_key
    stored = pki.private_key_pem("issuing", record.serial)
    assert stored.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_ip_san_and_critical_san_for_empty_subject(pki):
    record = pki.issue(
        "issuing", make_csr(None, ["ip:192.0.2.10", "dns:a.example.com"]), "tls-server"
    )
    san = record.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical  # RFC 5280 4.2.1.6: empty subject
    assert record.sans == ("ip:192.0.2.10", "dns:a.example.com")


def test_freshest_crl_follows_the_cas_crl_settings(make_service, tmp_path):
    """FreshestCRL comes from [crl] delta_url, for every CA that publishes
    deltas: not for a root's certificates (it signs ARLs), not with deltas
    off, not for a partitioned profile (no delta has a partition's scope)."""
    service = make_service(base_url=PUBLIC_BASE_URL, delta_url="{base}/d/{ca}.crl")
    service.init_root("root", "CN=Root,O=Revoca Tests,C=DE")
    sub = service.create_sub("issuing", "root", "CN=Issuing,O=Revoca Tests,C=DE")
    service.profiles["tls-sharded"] = dataclasses.replace(
        service.profiles["tls-server"],
        name="tls-sharded",
        crl_partitions=2,
        crl_url="{base}/crl/{ca}-{profile}-p{shard}.crl",
    )

    def freshest(cert):
        try:
            value = cert.extensions.get_extension_for_class(x509.FreshestCRL).value
        except x509.ExtensionNotFound:
            return None
        return [name.value for point in value for name in point.full_name]

    assert freshest(sub.certificate) is None
    for profile in ("tls-server", "tls-client"):
        csr = make_csr("a.example.com", ["dns:a.example.com"])
        leaf = service.issue("issuing", csr, profile).certificate
        assert freshest(leaf) == [f"{PUBLIC_BASE_URL}/d/issuing.crl"]
    assert freshest(service.issue("issuing", make_csr(), "tls-sharded").certificate) is None

    # The same store and keys with deltas off ([crl] delta_url = "").
    quiet = make_service(directory=tmp_path, delta_url="")
    assert freshest(quiet.issue("issuing", make_csr(), "tls-server").certificate) is None


def test_certificates_are_listed_by_their_status_at_a_time(pki):
    record = pki.issue("issuing", make_csr(), "tls-server")
    before = int(record.not_after.timestamp())
    after = before + 1

    def serials(status, now):
        return [c.serial for c in pki.list_certificates("issuing", status, now=now)]

    assert serials("active", before) == [record.serial] and serials("expired", before) == []
    assert serials("expired", after) == [record.serial] and serials("active", after) == []
    assert serials("good", after) == [record.serial]  # the stored status
    assert record.summary(after)["status"] == "expired"
    assert record.summary()["status"] == "good"
    assert record.summary()["not_after"].endswith("Z")
