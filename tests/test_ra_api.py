"""The RA REST API: authentication, roles per operation, end entities,
enrollment (CSR and keys made here), renewal, revocation, errors."""

import base64
import copy
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ra.roles import OPERATIONS, ROLES
from ra.routes import ROUTES
from tests.conftest import PASSPHRASE, counts, make_csr, new_key, openssl_verify, pkilint
from tests.ra_fixtures import OFFICER_ENTITY, start_ra


@pytest.fixture
def ra(loop, make_service):
    # Public-looking URLs in AIA and CRL DP, as the CA/B Forum lint expects.
    pki = make_service(base_url="http://pki.example.com")
    pki.init_root("root", "CN=RA Test Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=RA Test Issuing CA,O=Revoca Tests,C=DE")
    env, runner = start_ra(loop, pki)
    yield env
    loop.run(runner.cleanup())


def _entity(ra, **changes):
    body = {**copy.deepcopy(OFFICER_ENTITY), **changes}
    reply = ra.call("POST", "/api/entities", body, role="ra-officer")
    assert reply.status == 201, reply.body
    return reply.body


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


# -- the document and authentication -------------------------------------------------


def test_openapi_document_is_valid_and_lists_every_route(ra):
    from openapi_spec_validator import validate

    reply = ra.call("GET", "/api/openapi.json", token="")
    assert reply.status == 200
    validate(reply.body)
    documented = {(m.upper(), p) for p, ops in reply.body["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in ROUTES}


def test_requests_without_valid_credentials_are_refused(ra):
    for token in ("", "rra_not-a-real-token", "garbage"):
        reply = ra.call("GET", "/api/entities", token=token)
        assert reply.status == 401
        assert reply.body["error"]["code"] == "unauthenticated"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    reply = ra.call("GET", "/api/entities", headers={"Authorization": "Basic YTpi"}, token="")
    assert reply.status == 401
    assert ra.call("GET", "/api/health", token="").status == 200


def test_a_disabled_operator_is_refused(ra):
    assert ra.call("GET", "/api/whoami", role="auditor").body["role"] == "auditor"
    reply = ra.call("PATCH", "/api/users/auditor-user", {"status": "disabled"})
    assert reply.status == 200 and reply.body["status"] == "disabled"
    reply = ra.call("GET", "/api/whoami", role="auditor")
    assert reply.status == 401 and "disabled" in reply.body["error"]["message"]


def _sample_path(route) -> str:
    return (
        route.path.replace("{name}", "nobody")
        .replace("{ca}", "issuing")
        .replace("{serial}", "01")
        .replace("{id}", "1")
    )


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_perform_exactly_its_operations(ra, role):
    """Every guarded route, every role: refused with 403 (and nothing
    changed) exactly when the role table says so."""
    before = counts(ra.service.ca)
    for route in ROUTES:
        if not route.permission:
            continue
        body = {} if route.method in ("POST", "PATCH") else None
        reply = ra.call(route.method, _sample_path(route), body, role=role)
        allowed = role in OPERATIONS[route.permission]
        if allowed:
            assert reply.status != 403, (role, route.operation_id, reply.body)
        else:
            assert reply.status == 403, (role, route.operation_id, reply.status)
            assert reply.body["error"]["code"] == "forbidden"
    assert counts(ra.service.ca) == before


# -- end entities ---------------------------------------------------------------------


def test_end_entity_lifecycle_and_pages(ra):
    created = _entity(ra)
    assert created["status"] == "active" and created["attributes"] == {"team": "web"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["created_at"])
    assert created["updated_at"] == created["created_at"]
    for i in range(5):
        _entity(ra, name=f"host-{i}")
    assert ra.call("GET", "/api/entities/web-1", role="auditor").body == created
    first = ra.call("GET", "/api/entities?limit=2&name=host", role="auditor").body
    assert [e["name"] for e in first["items"]] == ["host-0", "host-1"]
    after = first["next_after"]
    second = ra.call("GET", f"/api/entities?limit=10&name=host&after={after}", role="auditor").body
    assert [e["name"] for e in second["items"]] == ["host-2", "host-3", "host-4"]

    reply = ra.call("PATCH", "/api/entities/web-1", {"email": "web@example.com"}, role="ra-officer")
    assert reply.status == 200 and reply.body["email"] == "web@example.com"
    reply = ra.call("PATCH", "/api/entities/web-1", {"status": "disabled"}, role="ra-officer")
    assert reply.body["status"] == "disabled"
    disabled = ra.call("GET", "/api/entities?status=disabled", role="auditor").body["items"]
    assert [e["name"] for e in disabled] == ["web-1"]


@pytest.mark.parametrize(
    ("changes", "status", "code", "words"),
    [
        ({"email": "not-an-email"}, 400, "bad_input", "email"),
        ({"name": "../etc"}, 400, "bad_input", "end entity name"),
        ({"profile": "no-such"}, 404, "not_found", "no profile"),
        ({"profile": "sub-ca"}, 422, "policy_violation", "for CAs"),
        ({"ca": "nope"}, 404, "not_found", "no CA"),
        ({"subject_template": "CN={unknown}"}, 400, "bad_input", "{unknown}"),
        ({"subject_template": "not a dn"}, 400, "bad_input", "invalid subject"),
        ({"allowed_sans": ["dns:*.*.example.com"]}, 400, "bad_input", "SAN pattern"),
        ({"allowed_sans": ["ip:10.0.0.1/8"]}, 400, "bad_input", "SAN pattern"),
        ({"attributes": {"Bad-Key": "x"}}, 400, "bad_input", "attribute"),
        ({"extra": 1}, 400, "bad_input", "unknown field"),
    ],
)
def test_bad_end_entities_are_refused_clearly(ra, changes, status, code, words):
    body = {**copy.deepcopy(OFFICER_ENTITY), **changes}
    reply = ra.call("POST", "/api/entities", body, role="ra-officer")
    assert (reply.status, reply.body["error"]["code"]) == (status, code)
    assert words in reply.body["error"]["message"]
    assert ra.call("GET", "/api/entities", role="auditor").body["items"] == []


def test_end_entities_by_attributes_email_and_profile(ra):
    _entity(ra, name="a", attributes={"team": "web", "site": "ber"})
    _entity(ra, name="b", attributes={"team": "web", "site": "muc"})
    _entity(
        ra,
        name="c",
        email="Sec@Example.com",
        profile="tls-client",
        allowed_sans=[],
        subject_template="CN={name}",
        attributes={"team": "sec"},
    )

    def names(query):
        reply = ra.call("GET", "/api/entities?" + query, role="auditor")
        assert reply.status == 200, reply.body
        return [e["name"] for e in reply.body["items"]]

    assert names("attribute=team=web") == ["a", "b"]
    assert names("attribute=team=web&attribute=site=muc") == ["b"]
    assert names("attribute=team=we") == []  # whole values only
    assert names("email=sec@example.com") == ["c"]
    assert names("profile=tls-client") == ["c"]
    assert names("ca=issuing&profile=tls-server") == ["a", "b"]
    bad = ra.call("GET", "/api/entities?attribute=novalue", role="auditor")
    assert (bad.status, bad.body["error"]["code"]) == (400, "bad_input")


def test_duplicate_names_conflict(ra):
    _entity(ra)
    reply = ra.call("POST", "/api/entities", OFFICER_ENTITY, role="ra-officer")
    assert (reply.status, reply.body["error"]["code"]) == (409, "conflict")


# -- enrollment, renewal, revocation ----------------------------------------------------


def test_enroll_with_a_csr(ra, tmp_path):
    _entity(ra)
    csr = make_csr("ignored.example.org", ("dns:web-1.example.com", "dns:a.web.example.com"))
    before = counts(ra.service.ca)
    reply = ra.call("POST", "/api/entities/web-1/enroll", {"csr": csr.decode()}, role="ra-officer")
    assert reply.status == 201, reply.body
    cert = _cert(reply.body["pem"])
    # The subject comes from the end entity's template, not the CSR.
    assert cert.subject.rfc4514_string() == "CN=web-1.example.com"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) >= {"web-1.example.com", "a.web.example.com"}
    chain = [
        _cert(p)
        for p in re.findall(
            r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
            reply.body["chain_pem"],
            re.S,
        )
    ]
    result = openssl_verify(tmp_path, chain[-1], chain[:-1], cert, "-purpose", "sslserver")
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "leaf.pem").write_text(reply.body["pem"])
    assert pkilint("lint_cabf_serverauth_cert", tmp_path / "leaf.pem", "-d") == []
    after = counts(ra.service.ca)
    assert after["certificates"] == before["certificates"] + 1
    listed = ra.call("GET", "/api/entities/web-1/certificates", role="auditor").body["items"]
    assert [c["serial"] for c in listed] == [reply.body["certificate"]["serial"]]
    actions = [r["action"] for r in ra.call("GET", "/api/audit", role="auditor").body["items"]]
    assert "ra.enroll" in actions and "ca.issue" in actions


def test_enroll_refuses_sans_outside_the_allowed_patterns(ra):
    _entity(ra)
    before = counts(ra.service.ca)
    for sans in (("dns:evil.example.com",), ("dns:a.b.web.example.com",), ("ip:198.51.100.1",)):
        csr = make_csr("x", sans)
        reply = ra.call(
            "POST", "/api/entities/web-1/enroll", {"csr": csr.decode()}, role="ra-officer"
        )
        assert (reply.status, reply.body["error"]["code"]) == (422, "policy_violation")
        assert "may not have the SAN" in reply.body["error"]["message"]
    assert counts(ra.service.ca) == before


def test_enroll_refuses_bad_requests(ra):
    _entity(ra)
    before = counts(ra.service.ca)
    cases = [
        ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"}, 400),
        ({}, 400),
        ({"key_type": "ec-p256"}, 400),  # no passphrase for the PKCS#12
        ({"key_type": "ec-p256", "passphrase": "short"}, 400),
        ({"key_type": "dsa-1024", "passphrase": "long enough"}, 400),
        ({"csr": make_csr().decode(), "key_type": "ec-p256", "passphrase": "x" * 9}, 400),
        ({"csr": make_csr().decode(), "days": -3}, 400),
        ({"csr": make_csr().decode(), "days": 9999}, 422),
    ]
    for body, status in cases:
        reply = ra.call("POST", "/api/entities/web-1/enroll", body, role="ra-officer")
        assert reply.status == status, (body, reply.body)
        assert set(reply.body["error"]) == {"code", "message"}
    reply = ra.call("POST", "/api/entities/web-1/enroll", raw=b"{not json", role="ra-officer")
    assert (reply.status, reply.body["error"]["code"]) == (400, "bad_input")
    ra.call("PATCH", "/api/entities/web-1", {"status": "disabled"}, role="ra-officer")
    reply = ra.call(
        "POST", "/api/entities/web-1/enroll", {"csr": make_csr("x", ()).decode()}, role="ra-officer"
    )
    assert reply.status == 422 and "disabled" in reply.body["error"]["message"]
    assert counts(ra.service.ca) == before


def test_enroll_with_a_key_made_here_returns_a_pkcs12(ra):
    _entity(
        ra,
        name="client-1",
        profile="tls-client",
        allowed_sans=["email:*@example.com"],
        subject_template="CN={name},O=Example,OU={team}",
    )
    body = {"key_type": "ec-p256", "passphrase": "export secret 1", "sans": ["email:a@example.com"]}
    reply = ra.call("POST", "/api/entities/client-1/enroll", body, role="ra-officer")
    assert reply.status == 201, reply.body
    key, cert, extra = pkcs12.load_key_and_certificates(
        base64.b64decode(reply.body["pkcs12"]), b"export secret 1"
    )
    assert cert.public_bytes(serialization.Encoding.PEM).decode() == reply.body["pem"]
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*public) == cert.public_key().public_bytes(*public)
    values = {a.oid._name: a.value for a in cert.subject}
    assert values == {
        "commonName": "client-1",
        "organizationName": "Example",
        "organizationalUnitName": "web",
    }
    assert len(extra) == 2  # issuing CA and root
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(base64.b64decode(reply.body["pkcs12"]), b"wrong")


def test_renew_for_the_same_key_for_a_new_csr_and_not_when_revoked(ra):
    _entity(ra)
    key = new_key()
    first = ra.call(
        "POST",
        "/api/entities/web-1/enroll",
        {"csr": make_csr("x", ("dns:web-1.example.com",), key=key).decode()},
        role="ra-officer",
    ).body
    serial = first["certificate"]["serial"]
    same = ra.call("POST", f"/api/certificates/issuing/{serial}/renew", {}, role="ra-officer")
    assert same.status == 201, same.body
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    renewed = _cert(same.body["pem"])
    assert renewed.public_key().public_bytes(*public) == key.public_key().public_bytes(*public)
    assert same.body["certificate"]["serial"] != serial
    assert same.body["certificate"]["sans"] == first["certificate"]["sans"]

    new = new_key()
    csr = make_csr("x", ("dns:web-1.example.com", "dns:b.web.example.com"), key=new).decode()
    rekey = ra.call(
        "POST", f"/api/certificates/issuing/{serial}/renew", {"csr": csr}, role="ra-officer"
    )
    assert rekey.status == 201
    assert _cert(rekey.body["pem"]).public_key().public_bytes(
        *public
    ) == new.public_key().public_bytes(*public)
    serials = [
        c["serial"]
        for c in ra.call("GET", "/api/entities/web-1/certificates", role="auditor").body["items"]
    ]
    assert len(serials) == 3

    reply = ra.call(
        "POST",
        f"/api/certificates/issuing/{serial}/revoke",
        {"reason": "superseded"},
        role="ra-officer",
    )
    assert reply.status == 200 and reply.body["status"] == "revoked"
    assert reply.body["reason"] == "superseded"
    again = ra.call("POST", f"/api/certificates/issuing/{serial}/renew", {}, role="ra-officer")
    assert (again.status, again.body["error"]["code"]) == (422, "policy_violation")
    twice = ra.call(
        "POST",
        f"/api/certificates/issuing/{serial}/revoke",
        {"reason": "superseded"},
        role="ra-officer",
    )
    assert (twice.status, twice.body["error"]["code"]) == (409, "conflict")
    bad = ra.call(
        "POST",
        f"/api/certificates/issuing/{serial}/revoke",
        {"reason": "because"},
        role="ra-officer",
    )
    assert (bad.status, bad.body["error"]["code"]) == (400, "bad_input")


def test_certificate_and_chain_downloads(ra, tmp_path):
    _entity(ra)
    body = ra.call(
        "POST",
        "/api/entities/web-1/enroll",
        {"csr": make_csr("x", ("dns:web-1.example.com",)).decode()},
        role="ra-officer",
    ).body
    serial = body["certificate"]["serial"]
    one = ra.call("GET", f"/api/certificates/issuing/{serial}", role="auditor")
    assert one.status == 200 and one.body["pem"] == body["pem"]
    chain = ra.call("GET", f"/api/certificates/issuing/{serial}/chain", role="auditor")
    assert chain.headers["Content-Type"].startswith("application/pem-certificate-chain")
    certs = x509.load_pem_x509_certificates(chain.raw)
    assert len(certs) == 3 and certs[0] == _cert(body["pem"])
    missing = ra.call("GET", "/api/certificates/issuing/abcdef", role="auditor")
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")
    bad = ra.call("GET", "/api/certificates/issuing/zz", role="auditor")
    assert (bad.status, bad.body["error"]["code"]) == (400, "bad_input")


def test_http_level_errors_are_json(ra):
    reply = ra.call("GET", "/api/nothing-here")
    assert (reply.status, reply.body["error"]["code"]) == (404, "not_found")
    reply = ra.call("DELETE", "/api/entities")
    assert (reply.status, reply.body["error"]["code"]) == (405, "method_not_allowed")
    reply = ra.call(
        "POST", "/api/entities", raw=b"{" + b" " * (300 * 1024) + b"}", role="ra-officer"
    )
    assert (reply.status, reply.body["error"]["code"]) == (413, "too_large")
    assert b"Traceback" not in reply.raw


def test_operators_and_their_tokens(ra):
    reply = ra.call("POST", "/api/users", {"name": "carol", "role": "approver"})
    assert reply.status == 201 and reply.body["token"].startswith("rra_")
    token = reply.body["token"]
    assert ra.call("GET", "/api/whoami", token=token).body["name"] == "carol"
    dup = ra.call("POST", "/api/users", {"name": "carol", "role": "auditor"})
    assert dup.status == 409
    bad = ra.call("POST", "/api/users", {"name": "dave", "role": "superuser"})
    assert (bad.status, bad.body["error"]["code"]) == (400, "bad_input")
    listed = ra.call("GET", "/api/users").body["items"]
    assert "token" not in str(listed).replace("has_token", "")
    # Only the token's hash is stored.
    from sqlalchemy import select

    from store.tables.ra import ra_users

    with ra.service.store.read() as conn:
        stored = conn.execute(select(ra_users.c.token_hash).where(ra_users.c.name == "carol"))
        assert stored.scalar_one() != token and token not in str(stored)


def test_passphrase_is_the_ca_passphrase_not_echoed(ra):
    """The key passphrase and the PKCS#12 passphrase never appear in answers."""
    _entity(
        ra, name="client-2", profile="tls-client", allowed_sans=[], subject_template="CN={name}"
    )
    body = {"key_type": "ec-p256", "passphrase": "p12 secret value"}
    reply = ra.call("POST", "/api/entities/client-2/enroll", body, role="ra-officer")
    assert reply.status == 201
    assert b"p12 secret value" not in reply.raw and PASSPHRASE.encode() not in reply.raw


def test_client_certificate_sign_in_over_tls(loop, make_service, tmp_path):
    """Over TLS with a client CA: a registered client certificate signs in
    without a token; an unregistered one (valid, same CA) is refused; a
    token still works without any certificate."""
    import http.client
    import json
    import ssl

    from ra.api import RAApi
    from ra.listen import start, tls_context
    from ra.service import RAService

    pki = make_service()
    pki.init_root("root", "CN=TLS Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=TLS Issuing,O=Revoca Tests,C=DE")
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.chain("issuing"))
    (tmp_path / "ca.pem").write_bytes(chain)

    def issued(profile, subject, sans, name):
        record = pki.issue_with_new_key("issuing", profile, subject, sans)
        (tmp_path / f"{name}.crt").write_bytes(
            record.certificate.public_bytes(serialization.Encoding.PEM)
        )
        (tmp_path / f"{name}.key").write_bytes(pki.private_key_pem("issuing", record.serial))
        return record

    issued("tls-server", "CN=127.0.0.1", ["ip:127.0.0.1"], "server")
    alice = issued("tls-client", "CN=alice", [], "alice")
    issued("tls-client", "CN=mallory", [], "mallory")
    service = RAService(pki)
    service.users.create("alice", "auditor", with_token=False, certificate=alice.der)
    _, token = service.users.create("bob", "administrator")
    context = tls_context(
        str(tmp_path / "server.crt"),
        str(tmp_path / "server.key"),
        str(tmp_path / "ca.pem"),
        PASSPHRASE.encode(),
    )
    runner, port = loop.run(start(RAApi(service), "127.0.0.1", 0, context))
    try:

        def whoami(cert=None, headers=None):
            client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            if cert:
                client.load_cert_chain(
                    tmp_path / f"{cert}.crt", tmp_path / f"{cert}.key", password=PASSPHRASE
                )
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=client, timeout=10)
            conn.request("GET", "/api/whoami", headers=headers or {})
            response = conn.getresponse()
            body = json.loads(response.read())
            conn.close()
            return response.status, body

        assert whoami("alice") == (200, {**service.users.get("alice").summary()})
        status, body = whoami("mallory")
        assert (status, body["error"]["code"]) == (401, "unauthenticated")
        status, body = whoami(None, {"Authorization": f"Bearer {token}"})
        assert (status, body["name"]) == (200, "bob")
        status, body = whoami(None)
        assert status == 401
    finally:
        loop.run(runner.cleanup())


def test_a_revoked_held_or_expired_client_certificate_signs_no_one_in(loop, make_service, tmp_path):
    """Each TLS sign-in checks the operator's client certificate against the
    CA's records and its validity period: revoked, on hold, expired or not
    valid yet is 401 with the reason, and the refusal is audited."""
    import http.client
    import json
    import ssl
    from datetime import UTC, datetime, timedelta

    from ca.reasons import RevocationReason
    from ra.api import RAApi
    from ra.listen import start, tls_context
    from ra.service import RAService

    now = [datetime.now(UTC)]
    pki = make_service(clock=lambda: now[0])
    pki.init_root("root", "CN=TLS Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=TLS Issuing,O=Revoca Tests,C=DE")
    # Holds only outside the Baseline Requirements (ca/baseline.py).
    pki.create_sub("clients", "root", "CN=TLS Clients,O=Revoca Tests,C=DE", profile="client-sub-ca")
    chain = b"".join(
        c.public_bytes(serialization.Encoding.PEM)
        for c in (*pki.chain("issuing"), pki.chain("clients")[0])
    )
    (tmp_path / "ca.pem").write_bytes(chain)

    def issued(ca, profile, subject, sans, name):
        record = pki.issue_with_new_key(ca, profile, subject, sans, days=30)
        (tmp_path / f"{name}.crt").write_bytes(
            record.certificate.public_bytes(serialization.Encoding.PEM)
        )
        (tmp_path / f"{name}.key").write_bytes(pki.private_key_pem(ca, record.serial))
        return record

    issued("issuing", "tls-server", "CN=127.0.0.1", ["ip:127.0.0.1"], "server")
    alice = issued("clients", "tls-client", "CN=alice", [], "alice")
    carol = issued("clients", "tls-client", "CN=carol", [], "carol")
    service = RAService(pki)
    service.users.create("alice", "auditor", with_token=False, certificate=alice.der)
    service.users.create("carol", "auditor", with_token=False, certificate=carol.der)
    context = tls_context(
        str(tmp_path / "server.crt"),
        str(tmp_path / "server.key"),
        str(tmp_path / "ca.pem"),
        PASSPHRASE.encode(),
    )
    runner, port = loop.run(start(RAApi(service), "127.0.0.1", 0, context))
    try:

        def call(cert, path="/api/whoami"):
            client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            client.load_cert_chain(
                tmp_path / f"{cert}.crt", tmp_path / f"{cert}.key", password=PASSPHRASE
            )
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=client, timeout=10)
            conn.request("GET", path)
            response = conn.getresponse()
            body = json.loads(response.read())
            conn.close()
            return response.status, body

        assert call("alice")[0] == 200 and call("carol")[0] == 200
        pki.revoke("clients", alice.serial, RevocationReason.keyCompromise)
        for path in ("/api/whoami", "/api/audit"):
            status, body = call("alice", path)
            assert (status, body["error"]["code"]) == (401, "unauthenticated")
            assert "revoked" in body["error"]["message"]
            assert "keyCompromise" in body["error"]["message"]

        pki.revoke("clients", carol.serial, RevocationReason.certificateHold)
        status, body = call("carol")
        assert status == 401 and "on hold" in body["error"]["message"]
        pki.release_hold("clients", carol.serial)
        assert call("carol")[0] == 200

        now[0] = datetime.now(UTC) + timedelta(days=31)
        status, body = call("carol")
        assert status == 401 and "expired" in body["error"]["message"]
        now[0] = datetime.now(UTC) - timedelta(days=1)
        status, body = call("carol")
        assert status == 401 and "not valid before" in body["error"]["message"]
        now[0] = datetime.now(UTC)
        assert call("carol")[0] == 200

        from sqlalchemy import select

        from store.tables.audit import audit_log

        with service.store.read() as conn:
            refusals = conn.execute(
                select(audit_log.c.actor, audit_log.c.result, audit_log.c.detail).where(
                    audit_log.c.action == "ra.signin"
                )
            ).all()
        assert [(r.actor, r.result) for r in refusals] == [
            ("ra:alice", "refused"),
            ("ra:alice", "refused"),
            ("ra:carol", "refused"),
            ("ra:carol", "refused"),
            ("ra:carol", "refused"),
        ]
        assert "revoked" in json.loads(refusals[0].detail)["message"]
    finally:
        loop.run(runner.cleanup())


def test_operator_roles_tokens_and_deletion(ra):
    created = ra.call("POST", "/api/users", {"name": "dora", "role": "auditor"})
    assert created.status == 201 and created.body["created_at"].endswith("Z")
    old = created.body["token"]
    promoted = ra.call("PATCH", "/api/users/dora", {"role": "approver"})
    assert (promoted.status, promoted.body["role"]) == (200, "approver")
    assert ra.call("GET", "/api/whoami", token=old).body["role"] == "approver"
    both = ra.call("PATCH", "/api/users/dora", {"role": "auditor", "status": "disabled"})
    assert both.status == 400
    bad = ra.call("PATCH", "/api/users/dora", {"role": "root"})
    assert (bad.status, bad.body["error"]["code"]) == (400, "bad_input")

    rotated = ra.call("POST", "/api/users/dora/token", {})
    assert rotated.status == 200 and rotated.body["token"] not in (None, old)
    assert ra.call("GET", "/api/whoami", token=old).status == 401
    new = rotated.body["token"]
    assert ra.call("GET", "/api/whoami", token=new).body["name"] == "dora"
    own = ra.call("POST", "/api/whoami/token", {}, token=new)
    assert own.status == 200 and own.body["name"] == "dora"
    assert ra.call("GET", "/api/whoami", token=new).status == 401
    assert ra.call("GET", "/api/whoami", token=own.body["token"]).status == 200

    gone = ra.call("DELETE", "/api/users/dora")
    assert gone.status == 200 and gone.body == {"name": "dora", "deleted": True}
    assert ra.call("GET", "/api/whoami", token=own.body["token"]).status == 401
    assert ra.call("DELETE", "/api/users/dora").status == 404
    assert ra.call("DELETE", "/api/users/dora", role="ra-officer").status == 403
    actions = [
        (r["actor"], r["action"], r["target"])
        for r in ra.call("GET", "/api/audit", role="auditor").body["items"]
        if r["action"].startswith("ra.user") and r["result"] == "ok"
    ]
    admin = "ra:administrator-user"
    assert actions[-5:] == [
        (admin, "ra.user.create", "dora"),
        (admin, "ra.user.role", "dora"),
        (admin, "ra.user.token", "dora"),
        ("ra:dora", "ra.user.token", "dora"),
        (admin, "ra.user.delete", "dora"),
    ]


def test_the_last_active_administrator_stays(ra):
    me = "/api/users/administrator-user"
    for method, body, words in (
        ("PATCH", {"status": "disabled"}, "cannot be disabled"),
        ("PATCH", {"role": "auditor"}, "cannot be demoted"),
        ("DELETE", None, "cannot be deleted"),
    ):
        refused = ra.call(method, me, body)
        assert (refused.status, refused.body["error"]["code"]) == (409, "conflict")
        assert "last active administrator" in refused.body["error"]["message"]
        assert words in refused.body["error"]["message"]
    assert ra.call("GET", "/api/whoami").body == {
        **ra.call("GET", "/api/whoami").body,
        "role": "administrator",
        "status": "active",
    }
    second = ra.call("POST", "/api/users", {"name": "eve", "role": "administrator"}).body
    assert ra.call("PATCH", "/api/users/eve", {"status": "disabled"}).status == 200
    # A disabled administrator does not count: the first is still the last.
    assert ra.call("DELETE", me).status == 409
    assert ra.call("PATCH", "/api/users/eve", {"status": "active"}).status == 200
    assert ra.call("PATCH", me, {"role": "auditor"}).status == 200
    assert ra.call("DELETE", "/api/users/eve", token=second["token"]).status == 409


# -- enrollment secrets (EST, SCEP) -----------------------------------------------------


def test_enrollment_secrets_are_made_listed_and_revoked_by_officers(ra):
    entity = _entity(ra)
    path = f"/api/entities/{entity['name']}/secrets"
    assert ra.call("POST", path, {"days": 2}, role="auditor").status == 403
    reply = ra.call("POST", path, {"protocols": ["scep"], "days": 2}, role="ra-officer")
    assert reply.status == 201, reply.body
    made = reply.body
    assert made["protocols"] == ["scep"] and len(made["secret"]) == 32
    listed = ra.call("GET", path, role="auditor").body["items"]
    assert [(s["id"], s["status"]) for s in listed] == [(made["id"], "unused")]
    assert made["secret"] not in repr(listed)
    for bad in ({"days": 0}, {"days": 91}, {"protocols": ["acme"]}, {"what": 1}):
        assert ra.call("POST", path, bad, role="ra-officer").status == 400, bad
    assert ra.call("DELETE", f"/api/secrets/{made['id']}", role="ra-officer").status == 204
    assert ra.call("DELETE", f"/api/secrets/{made['id']}", role="ra-officer").status == 422
    assert ra.call("DELETE", "/api/secrets/es-none", role="ra-officer").status == 404
    assert ra.call("GET", path, role="auditor").body["items"][0]["status"] == "revoked"
