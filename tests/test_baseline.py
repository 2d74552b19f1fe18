"""The Baseline Requirements across certificates (ca/baseline.py): a CA under
them holds nothing and revokes only for BR 7.2.2 reasons; a profile under
them is issued only by a CA under them. Each refusal changes nothing."""

import dataclasses

import pytest
from sqlalchemy import select

from ca.errors import BaselineRequirementsError, PolicyError
from ca.reasons import RevocationReason
from store.tables.ca import certificates
from tests.conftest import counts, last_audit, make_csr


@pytest.fixture
def br_pki(make_service):
    service = make_service()
    service.init_root("root", "CN=Root,O=Revoca Tests,C=DE")
    service.create_sub("issuing", "root", "CN=Issuing,O=Revoca Tests,C=DE")
    service.create_sub("clients", "root", "CN=Clients,O=Revoca Tests,C=DE", profile="client-sub-ca")
    return service


def status_of(service, serial: int) -> str:
    with service.store.read() as conn:
        return conn.execute(
            select(certificates.c.status).where(certificates.c.serial == f"{serial:040x}")
        ).scalar_one()


def test_a_ca_under_the_br_puts_nothing_on_hold(br_pki):
    # tls-client allows holds, but not under a CA made under sub-ca (BR 4.9.13).
    record = br_pki.issue("issuing", make_csr("alice", ["email:alice@example.com"]), "tls-client")
    before = counts(br_pki)
    with pytest.raises(BaselineRequirementsError) as refused:
        br_pki.revoke("issuing", record.serial, RevocationReason.certificateHold)
    assert refused.value.message == (
        "CA 'issuing' (made under profile 'sub-ca') is under the Baseline Requirements, "
        "which allow no hold (BR 4.9.13: no suspension); revoke the certificate instead"
    )
    assert refused.value.code == "policy_violation"
    assert counts(br_pki) == before and status_of(br_pki, record.serial) == "good"
    entry = last_audit(br_pki)
    assert entry.action == "ca.revoke" and entry.result != "ok"
    # Revoking it is fine, with every reason BR 7.2.2 lists for subscribers.
    revoked = br_pki.revoke("issuing", record.serial, RevocationReason.privilegeWithdrawn)
    assert revoked.status == "revoked"
    # The same profile may hold under a CA outside the BR.
    other = br_pki.issue("clients", make_csr("bob", ["email:bob@example.com"]), "tls-client")
    assert br_pki.revoke("clients", other.serial, RevocationReason.certificateHold).status == "hold"


def test_an_imported_ca_is_taken_to_be_under_the_br(br_pki, tmp_path):
    issuing = br_pki.get_ca("issuing")
    key = (tmp_path / "keys" / "ca-issuing.key.pem").read_bytes()
    from tests.conftest import PASSPHRASE, pem

    br_pki.import_ca("copy", pem(issuing.certificate), key, PASSPHRASE.encode())
    record = br_pki.issue("copy", make_csr("carol", ["email:carol@example.com"]), "tls-client")
    with pytest.raises(BaselineRequirementsError, match=r"^CA 'copy' \(imported\) is under"):
        br_pki.revoke("copy", record.serial, RevocationReason.certificateHold)
    # ... and so it issues profiles under the BR.
    assert br_pki.issue("copy", make_csr(), "tls-server").profile == "tls-server"


def test_a_profile_under_the_br_needs_a_ca_under_the_br(br_pki):
    before = counts(br_pki)
    with pytest.raises(BaselineRequirementsError) as refused:
        br_pki.issue("clients", make_csr(), "tls-server")
    assert refused.value.message == (
        "profile 'tls-server' is under the Baseline Requirements and CA 'clients' (made "
        "under profile 'client-sub-ca') is not: its CRLs may list holds (BR 4.9.13, 7.2.2)"
    )
    assert counts(br_pki) == before


def test_a_ca_whose_profile_is_gone_is_taken_to_be_under_the_br(br_pki):
    record = br_pki.issue("clients", make_csr("dave", ["email:dave@example.com"]), "tls-client")
    del br_pki.profiles["client-sub-ca"]
    with pytest.raises(
        BaselineRequirementsError,
        match=r"^CA 'clients' \(made under profile 'client-sub-ca', which is no longer "
        r"configured\) is under the Baseline Requirements",
    ):
        br_pki.revoke("clients", record.serial, RevocationReason.certificateHold)


@pytest.mark.parametrize("reason", ["unspecified", "cACompromise"])
def test_ca_certificates_under_the_br_take_only_br_reasons(br_pki, reason):
    # A CA profile that allows more than BR 7.2.2 does, signed by a root under the BR.
    lax = br_pki.profiles["client-sub-ca"]
    br_pki.profiles["lax-sub-ca"] = dataclasses.replace(
        lax, name="lax-sub-ca", revocation_reasons=("unspecified", "cACompromise", "superseded")
    )
    sub = br_pki.create_sub("lax", "root", "CN=Lax,O=Revoca Tests,C=DE", profile="lax-sub-ca")
    before = counts(br_pki)
    with pytest.raises(BaselineRequirementsError) as refused:
        br_pki.revoke("root", sub.serial, RevocationReason.parse(reason))
    assert refused.value.message == (
        "CA 'root' (made under profile 'root-ca') is under the Baseline Requirements, and "
        f"BR 7.2.2 does not allow revocation reason {reason} for a CA certificate; allowed: "
        "keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn"
    )
    assert counts(br_pki) == before
    assert br_pki.revoke("root", sub.serial, RevocationReason.superseded).status == "revoked"


def test_sub_ca_profiles(br_pki):
    assert br_pki.get_certificate("root", br_pki.get_ca("clients").serial).profile == (
        "client-sub-ca"
    )
    for profile, message in (
        ("tls-server", "profile 'tls-server' is not one for subordinate CAs"),
        ("root-ca", "profile 'root-ca' is not one for subordinate CAs"),
    ):
        with pytest.raises(PolicyError, match=message):
            br_pki.create_sub("x", "root", "CN=X,O=Revoca Tests,C=DE", profile=profile)
        assert not br_pki.token.has_key("ca-x")
