"""A relying party that checks revocation through CRLs alone:
pyhanko-certvalidator, no OCSP, fetching over HTTP from 127.0.0.1 what each
certificate names (its CRL distribution point, and the delta CRL in its
FreshestCRL: pyhanko fetches no delta a certificate does not name). Good
certificates validate; revoked and held ones are reported revoked, whether
the full CRL lists them or only its delta; a hold released in the delta
(removeFromCRL) is good again."""

import asyncio

import pytest
from aiohttp import web
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from ca import crl
from ca.reasons import RevocationReason
from tests.conftest import free_port, make_csr

# CRLs for the leaf and the sub-CA (the root's ARL), OCSP never consulted.
CRL_ONLY = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_REQUIRED,
    )
)


@pytest.fixture
def published(make_service):
    """A root, the TLS CA "issuing" and the client CA "clients" on the
    shipped profiles and [crl] settings, with their full CRLs, the changes
    after them and their delta CRLs, at a base URL on 127.0.0.1."""
    port = free_port()
    service = make_service(base_url=f"http://127.0.0.1:{port}")
    subject = "O=Revoca Tests,C=DE"
    service.init_root("root", f"CN=Root,{subject}")
    service.create_sub("issuing", "root", f"CN=TLS CA,{subject}")
    service.create_sub("clients", "root", f"CN=Client CA,{subject}", profile="client-sub-ca")

    def server(name):
        csr = make_csr(f"{name}.example.com", [f"dns:{name}.example.com"])
        return service.issue("issuing", csr, "tls-server")

    def client(name):
        return service.issue("clients", make_csr(name, [f"email:{name}@example.com"]), "tls-client")

    certs = {
        "server-good": server("good"),
        "server-revoked": server("revoked"),
        "server-revoked-in-delta": server("late"),
        "client-good": client("good"),
        "client-held": client("held"),
        "client-held-in-delta": client("late"),
        "client-released-in-delta": client("released"),
    }
    serial = {name: record.serial for name, record in certs.items()}
    service.revoke("issuing", serial["server-revoked"], RevocationReason.keyCompromise)
    for name in ("client-held", "client-released-in-delta"):
        service.revoke("clients", serial[name], RevocationReason.certificateHold)
    delta_url = service.context.delta_url_for
    files = {
        "root.crl": crl.issue_crl(service, "root", arl=True).der,
        **{
            f"{ca}.crl": crl.issue_crl(service, ca, delta_url=delta_url(service.get_ca(ca))).der
            for ca in ("issuing", "clients")
        },
    }
    # After the full CRLs: only the deltas know.
    service.revoke("issuing", serial["server-revoked-in-delta"], RevocationReason.superseded)
    service.revoke("clients", serial["client-held-in-delta"], RevocationReason.certificateHold)
    service.release_hold("clients", serial["client-released-in-delta"])
    for ca in ("issuing", "clients"):
        files[f"{ca}-delta.crl"] = crl.issue_crl(service, ca, delta=True).der
    return port, service, certs, files


def asn1(cert) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def validate_all(port, service, certs, files) -> tuple[dict, list[str]]:
    """Validate each certificate in a fresh context; return each one's
    outcome (None: valid, else the RevokedError) and the paths fetched."""
    fetched = []

    async def serve(request):
        fetched.append(request.path)
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type="application/pkix-crl")

    async def run():
        app = web.Application()
        app.router.add_get("/crl/{name}", serve)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        outcomes = {}
        try:
            for name, record in certs.items():
                chain = service.chain(record.ca)
                backend = AIOHttpFetcherBackend(per_request_timeout=5)
                try:
                    context = ValidationContext(
                        trust_roots=[asn1(chain[-1])],
                        other_certs=[asn1(c) for c in chain[:-1]],
                        allow_fetching=True,
                        fetcher_backend=backend,
                        revinfo_policy=CRL_ONLY,
                    )
                    leaf = asn1_x509.Certificate.load(record.der)
                    validator = CertificateValidator(leaf, validation_context=context)
                    try:
                        await validator.async_validate_path()
                        outcomes[name] = None
                    except RevokedError as exc:
                        outcomes[name] = exc
                finally:
                    await backend.close()
        finally:
            await runner.cleanup()
        return outcomes

    return asyncio.run(asyncio.wait_for(run(), 120)), fetched


def test_crl_only_validation_with_full_and_delta_crls(published):
    port, service, certs, files = published
    outcomes, fetched = validate_all(port, service, certs, files)
    assert {name for name, outcome in outcomes.items() if outcome is None} == {
        "server-good",
        "client-good",
        "client-released-in-delta",
    }
    reasons = {
        name: outcome.reason.native for name, outcome in outcomes.items() if outcome is not None
    }
    assert reasons == {
        "server-revoked": "key_compromise",
        "server-revoked-in-delta": "superseded",
        "client-held": "certificate_hold",
        "client-held-in-delta": "certificate_hold",
    }
    # The deltas came through the certificates' FreshestCRL, the ARL for the
    # sub-CAs through their CRL DPs.
    assert {"/crl/issuing-delta.crl", "/crl/clients-delta.crl", "/crl/root.crl"} <= set(fetched)
