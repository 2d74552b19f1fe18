"""Every certificate and CRL the shipped profiles make, linted by pkilint:
the CA/B Forum linters for what is under the Baseline Requirements (the
root, the TLS issuing CA, TLS server certificates, OCSP responders, their
CRLs, delta CRLs and the root's ARL), RFC 5280 for what is not (client
certificates, the client CA's CRLs with their holds), the non-TLS CA profile
for the client CA's certificate (BR 7.1.2.3). No ERROR or FATAL finding;
no WARNING or NOTICE but those accepted below for that document, each with
its reason, so a new one fails.

The CRLs hold a revocation for every reason the profiles allow under each
CA, before the full CRL and again after it (the delta's entries)."""

import pytest
from cryptography import x509

from ca import crl
from ca.errors import BaselineRequirementsError
from ca.keys import PassphraseSource
from ca.reasons import RevocationReason
from ca.service import CAService
from ca.token import SoftwareToken
from revoca.config import load_config
from store import Store
from store.audit_key import AuditKey
from tests.conftest import (
    PASSPHRASE,
    PUBLIC_BASE_URL,
    make_csr,
    new_key,
    pem,
    pkilint_findings,
)

FRESHEST_CRL = "Unknown extension present: 2.5.29.46"
ACCEPTED = {
    "tls-server": {
        ("WARNING", "cabf.serverauth.dv.common_name_attribute_present", ""): (
            "BR 7.1.2.7.2 does not recommend a CN but allows one, and it must repeat a SAN "
            "(cn_in_san, BR 7.1.4.3); a request without a CN gets none"
        ),
        ("WARNING", "cabf.serverauth.subscriber.unknown_extension_present", FRESHEST_CRL): (
            "FreshestCRL: BR 7.1.2.7.6 does not recommend other extensions, but relying "
            "parties that fetch (pyhanko) find the delta CRL only through the certificate"
        ),
    },
    "tls-server-rsa": {
        ("WARNING", "cabf.serverauth.dv.common_name_attribute_present", ""): "as tls-server",
        ("WARNING", "cabf.serverauth.subscriber.unknown_extension_present", FRESHEST_CRL): (
            "as tls-server"
        ),
        (
            "WARNING",
            "cabf.serverauth.subscriber_rsa_digitalsignature_and_keyencipherment_present",
            "",
        ): (
            "BR 7.1.2.7.11 permits both bits on an RSA key (not recommended): keyEncipherment "
            "serves TLS 1.2 clients with RSA key transport, digitalSignature everyone else"
        ),
    },
}

CERTIFICATES = {
    "root": ("lint_cabf_serverauth_cert", "-t", "ROOT-CA"),
    "sub-ca": ("lint_cabf_serverauth_cert", "-t", "INTERNAL-UNCONSTRAINED-TLS-CA"),
    "client-sub-ca": ("lint_cabf_serverauth_cert", "-t", "NON-TLS-CA"),
    "tls-server": ("lint_cabf_serverauth_cert", "-t", "DV-FINAL-CERTIFICATE"),
    "tls-server-rsa": ("lint_cabf_serverauth_cert", "-t", "DV-FINAL-CERTIFICATE"),
    "tls-client": ("lint_pkix_cert",),
    "tls-client-clients": ("lint_pkix_cert",),
    "ocsp-signer": ("lint_cabf_serverauth_cert", "-t", "OCSP-RESPONDER"),
    "ocsp-signer-clients": ("lint_cabf_serverauth_cert", "-t", "OCSP-RESPONDER"),
}
CRL = ("lint_crl", "--document-format", "DER")
CRLS = {
    "issuing.crl": (*CRL, "-t", "CRL", "-p", "BR"),
    "issuing-delta.crl": (*CRL, "-t", "CRL", "-p", "BR"),
    "root.crl": (*CRL, "-t", "ARL", "-p", "BR"),
    # Outside the BR (its holds): RFC 5280.
    "clients.crl": (*CRL, "-t", "CRL", "-p", "PKIX"),
    "clients-delta.crl": (*CRL, "-t", "CRL", "-p", "PKIX"),
}


def _reasons(profile) -> list[RevocationReason]:
    return sorted(profile.allowed_reasons())


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A PKI on the shipped profiles and [crl] settings: root (P-384), TLS
    issuing CA (RSA), client CA (P-256); every kind of certificate; every
    allowed revocation reason before and after the full CRLs."""
    with pytest.MonkeyPatch.context() as env:  # module scope: the autouse fixture is not yet
        env.setenv("REVOCA_KEY_PASSPHRASE", PASSPHRASE)
        yield from _build(tmp_path_factory.mktemp("br"))


def _build(directory):
    config = load_config(None, data_dir=directory)
    store = Store.open(f"sqlite:///{directory / 'revoca.db'}")
    service = CAService(
        store,
        SoftwareToken(directory / "keys", PassphraseSource()),
        config.profiles,
        base_url=PUBLIC_BASE_URL,
        passphrase=PassphraseSource(),
        audit_key=AuditKey.in_directory(directory / "keys", PassphraseSource().get),
        delta_url=config.crl.delta_url,
    )
    profiles = service.profiles
    subject = "O=Revoca Tests,C=DE"
    root = service.init_root("root", f"CN=Revoca BR Root,{subject}", key_type="ec-p384")
    issuing = service.create_sub(
        "issuing", "root", f"CN=Revoca BR TLS CA,{subject}", key_type="rsa-2048"
    )
    clients = service.create_sub(
        "clients", "root", f"CN=Revoca BR Client CA,{subject}", profile="client-sub-ca"
    )
    certs = {"root": root.certificate, "sub-ca": issuing.certificate}
    certs["client-sub-ca"] = clients.certificate
    host = iter(range(1000))

    def tls_server(key="ec-p256"):
        name = f"h{next(host)}.example.com"
        return service.issue("issuing", make_csr(name, [f"dns:{name}"], new_key(key)), "tls-server")

    def tls_client(ca):
        name = f"c{next(host)}"
        return service.issue(ca, make_csr(name, [f"email:{name}@example.com"]), "tls-client")

    certs["tls-server"] = tls_server().certificate
    certs["tls-server-rsa"] = tls_server("rsa-2048").certificate
    certs["tls-client"] = tls_client("issuing").certificate
    certs["tls-client-clients"] = tls_client("clients").certificate
    certs["ocsp-signer"] = service.issue_ocsp_signer("issuing")[0].certificate
    certs["ocsp-signer-clients"] = service.issue_ocsp_signer("clients")[0].certificate

    def revoke_all():
        for reason in _reasons(profiles["tls-server"]):
            service.revoke("issuing", tls_server().serial, reason)
        for reason in _reasons(profiles["tls-client"]):
            record = tls_client("issuing")
            if reason == RevocationReason.certificateHold:  # BR 4.9.13
                with pytest.raises(BaselineRequirementsError):
                    service.revoke("issuing", record.serial, reason)
            else:
                service.revoke("issuing", record.serial, reason)
            service.revoke("clients", tls_client("clients").serial, reason)
        for ca in ("issuing", "clients"):
            for reason in _reasons(profiles["ocsp-signer"]):
                service.revoke(ca, service.issue_ocsp_signer(ca)[0].serial, reason)

    revoke_all()
    full = {
        ca: crl.issue_crl(service, ca, delta_url=config.delta_crl_url(ca))
        for ca in (
            "issuing",
            "clients",
        )
    }
    revoke_all()
    delta = {ca: crl.issue_crl(service, ca, delta=True) for ca in ("issuing", "clients")}
    for sub_profile in ("sub-ca", "client-sub-ca"):
        for reason in _reasons(profiles[sub_profile]):
            retired = service.create_sub(
                f"retired-{sub_profile}-{int(reason)}",
                "root",
                f"CN=Retired {sub_profile} {reason.name},{subject}",
                profile=sub_profile,
            )
            service.revoke("root", retired.serial, reason)
    arl = crl.issue_crl(service, "root", arl=True)
    files = {f"{name}.pem": pem(cert) for name, cert in certs.items()}
    files.update(
        {
            "issuing.crl": full["issuing"].der,
            "issuing-delta.crl": delta["issuing"].der,
            "clients.crl": full["clients"].der,
            "clients-delta.crl": delta["clients"].der,
            "root.crl": arl.der,
        }
    )
    for name, data in files.items():
        (directory / name).write_bytes(data)
    yield directory
    store.close()


@pytest.mark.parametrize("name", sorted(CERTIFICATES))
def test_every_shipped_certificate_lints_clean(shipped, name):
    tool, *options = CERTIFICATES[name]
    findings = pkilint_findings(tool, shipped / f"{name}.pem", *options)
    assert findings - set(ACCEPTED.get(name, {})) == set()


@pytest.mark.parametrize("name", sorted(CRLS))
def test_every_shipped_crl_lints_clean(shipped, name):
    tool, *options = CRLS[name]
    findings = pkilint_findings(tool, shipped / name, *options)
    assert findings - set(ACCEPTED.get(name, {})) == set()


def test_the_crls_hold_every_allowed_reason(shipped):
    """What was linted holds what it should: each CA's full CRL and delta
    list every reason its certificates' profiles allow (the BR CA's no
    hold), the ARL every reason of the sub-CA profiles, always as a reasonCode."""
    profiles = load_config(None).profiles

    def reasons(name):
        parsed = x509.load_der_x509_crl((shipped / name).read_bytes())
        out = set()
        for entry in parsed:
            try:
                flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
                out.add(RevocationReason[flag.value])  # the RFC 5280 name
            except x509.ExtensionNotFound:
                out.add(RevocationReason.unspecified)
        return out

    leaf = profiles["tls-server"].allowed_reasons() | profiles["tls-client"].allowed_reasons()
    br_leaf = leaf - {RevocationReason.certificateHold}
    for name in ("issuing.crl", "issuing-delta.crl"):
        assert reasons(name) == br_leaf
    for name in ("clients.crl", "clients-delta.crl"):
        assert reasons(name) == profiles["tls-client"].allowed_reasons()
    arl_reasons = reasons("root.crl")
    assert arl_reasons == profiles["sub-ca"].allowed_reasons()
    assert RevocationReason.unspecified not in arl_reasons  # BR 7.2.2: a CA's entry has a reason
