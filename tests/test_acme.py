"""The ACME server (RFC 8555) through its HTTP interface: accounts and
external account binding, orders bound to the end entity's names, http-01
validation, finalize through the RA, download, revocation, key rollover,
renewal information, rate limits, approvals, and hostile requests that get
the matching problem and change nothing."""

import base64
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import func, select

from acmesrv.settings import AcmeSettings
from ra.approvals import ApprovalPolicy
from store.tables import acme as tables
from tests.acme_fixtures import (
    Client,
    b64,
    eab_jws,
    make_acme_csr,
    public_jwk,
    sign,
    start_acme,
    stop_acme,
)
from tests.conftest import need


@pytest.fixture
def acme(loop, pki):
    env, runners = start_acme(loop, pki)
    yield env
    stop_acme(loop, runners)


def rows(env) -> dict:
    """How many rows each ACME table holds (nonces aside)."""
    out = {}
    with env.service.store.read() as conn:
        for table in (
            tables.acme_accounts,
            tables.acme_eab_keys,
            tables.acme_orders,
            tables.acme_authorizations,
            tables.acme_challenges,
        ):
            out[table.name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
        out["bound_keys"] = conn.execute(
            select(func.count())
            .select_from(tables.acme_eab_keys)
            .where(tables.acme_eab_keys.c.status != "unused")
        ).scalar_one()
    return out


# -- the whole flow -------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "EdDSA"])
def test_an_ip_certificate_through_the_whole_flow(acme, alg, tmp_path):
    client = acme.client(alg=alg)
    order, pem, _key = client.issue(acme.responder, "127.0.0.1")
    certs = x509.load_pem_x509_certificates(pem)
    assert len(certs) == 2  # the leaf and the issuing CA; the root is the anchor
    leaf = certs[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert leaf.subject.rfc4514_string() == ""  # addresses alone: no CN, the SAN critical
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert order.body["profile"] == "tls-server"
    # A tool we did not write accepts the chain it came with.
    (tmp_path / "chain.pem").write_bytes(pem)
    root = acme.service.ca.chain("issuing")[-1]
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        [
            need("openssl"),
            "verify",
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "chain.pem"),
            str(tmp_path / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Issued through the RA: the end entity's certificate, in the audit log.
    entity_certs = acme.service.ra.entity_certificates("web")
    assert [c.serial for c in entity_certs] == [leaf.serial_number]


def test_the_directory_lists_resources_and_meta(acme):
    client = Client(acme.directory_url())
    d = client.directory
    for key in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo"):
        assert d[key].startswith(acme.base + "/acme/issuing/")
    assert d["meta"]["externalAccountRequired"] is True
    assert set(d["meta"]["profiles"]) == {"tls-server", "tls-client"}
    open_dir = Client(acme.directory_url("open")).directory
    assert open_dir["meta"]["externalAccountRequired"] is False
    missing = client.get(acme.base + "/acme/nowhere/directory")
    assert missing.status == 404 and missing.problem == "malformed"


def test_new_nonce_by_head_and_get(acme):
    client = Client(acme.directory_url())
    head = client.request("HEAD", client.directory["newNonce"])
    get = client.request("GET", client.directory["newNonce"])
    assert head.status == 200 and get.status == 204
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]
    assert head.headers["Cache-Control"] == "no-store"
    assert 'rel="index"' in head.headers["Link"]


# -- accounts and external account binding ----------------------------------------------


def test_the_same_key_finds_its_account_and_only_return_existing(acme):
    client = acme.client()
    again = client.register()  # no EAB needed: the account exists
    assert again.status == 200 and again.location == client.kid
    stranger = Client(acme.directory_url())
    reply = stranger.register(onlyReturnExisting=True)
    assert reply.status == 400 and reply.problem == "accountDoesNotExist"


def test_eab_is_required_checked_and_used_once(acme):
    before = rows(acme)
    client = Client(acme.directory_url())
    reply = client.register()
    assert reply.problem == "externalAccountRequired"
    kid, mac = acme.new_eab()
    wrong = base64.urlsafe_b64encode(b"x" * 32).decode().rstrip("=")
    assert client.register((kid, wrong)).problem == "unauthorized"
    assert client.register(("kid-nope", mac)).problem == "unauthorized"
    assert rows(acme)["acme_accounts"] == before["acme_accounts"]
    assert client.register((kid, mac)).status == 201
    other = Client(acme.directory_url())
    reply = other.register((kid, mac))
    assert reply.problem == "unauthorized" and "bound" in reply.body["detail"]


def test_eab_must_use_a_mac_and_be_for_this_key_and_url(acme):
    kid, mac = acme.new_eab()
    client = Client(acme.directory_url())
    url = client.directory["newAccount"]
    account_key = rsa.generate_private_key(65537, 2048)
    bad_alg = eab_jws(kid, mac, client.jwk(), url)
    header = json.loads(base64.urlsafe_b64decode(bad_alg["protected"] + "=="))
    header["alg"] = "RS256"
    bad_alg["protected"] = b64(json.dumps(header).encode())
    bad_alg["signature"] = b64(
        sign(account_key, "RS256", f"{bad_alg['protected']}.{bad_alg['payload']}".encode())
    )
    payload = {"termsOfServiceAgreed": True, "externalAccountBinding": bad_alg}
    assert client.post(url, payload, use_jwk=True).problem == "badSignatureAlgorithm"
    other_key = eab_jws(kid, mac, public_jwk(ec.generate_private_key(ec.SECP256R1())), url)
    payload["externalAccountBinding"] = other_key
    assert client.post(url, payload, use_jwk=True).problem == "unauthorized"
    wrong_url = eab_jws(kid, mac, client.jwk(), url + "x")
    payload["externalAccountBinding"] = wrong_url
    assert client.post(url, payload, use_jwk=True).problem == "malformed"
    assert rows(acme)["bound_keys"] == 0


def test_a_revoked_or_other_directorys_eab_key_binds_nothing(acme):
    kid, mac = acme.new_eab(directory="open")
    client = Client(acme.directory_url())
    assert "another directory" in client.register((kid, mac)).body["detail"]
    kid2, mac2 = acme.new_eab()
    acme.service.revoke_eab_key(kid2, actor="test")
    assert "revoked" in client.register((kid2, mac2)).body["detail"]
    assert [k["status"] for k in acme.service.list_eab_keys()].count("bound") == 0


def test_an_optional_eab_directory_binds_accounts_to_its_default_entity(acme):
    client = acme.client("open")
    with acme.service.store.read() as conn:
        entity = conn.execute(select(tables.acme_accounts.c.end_entity_id)).scalar_one()
    assert entity == acme.service.ra.get_entity("web").id
    _, pem, _ = client.issue(acme.responder, "127.0.0.1")
    assert x509.load_pem_x509_certificates(pem)


def test_contacts_are_checked(acme):
    client = Client(acme.directory_url("open"))
    assert client.register(contact=["tel:+1555"]).problem == "unsupportedContact"
    assert client.register(contact=["mailto:a@b.example,c@d.example"]).problem == "invalidContact"
    assert client.register(contact=["mailto:ops@example.com"]).status == 201


def test_account_update_and_deactivation(acme):
    client = acme.client()
    reply = client.post(client.kid, {"contact": ["mailto:new@example.com"]})
    assert reply.body["contact"] == ["mailto:new@example.com"]
    reply = client.post(client.kid, {"status": "deactivated"})
    assert reply.body["status"] == "deactivated"
    refused = client.order("127.0.0.1")
    assert refused.status == 403 and refused.problem == "unauthorized"


def test_key_rollover(acme):
    client = acme.client()
    old_key = client.key
    new_key = ec.generate_private_key(ec.SECP256R1())
    url = client.directory["keyChange"]
    inner_header = {"alg": "ES256", "jwk": public_jwk(new_key), "url": url}
    inner = json.loads(
        client.signed_body(
            inner_header, {"account": client.kid, "oldKey": client.jwk()}, key=new_key
        )
    )
    reply = client.post(url, inner)
    assert reply.status == 200, reply.body
    # The old key signs for the account no more; the new one does.
    assert client.order("127.0.0.1").problem == "malformed"
    client.key = new_key
    assert client.order("127.0.0.1").status == 201
    # A key another account holds cannot be rolled to.
    other = acme.client()
    inner_header = {"alg": "ES256", "jwk": public_jwk(new_key), "url": url}
    inner = json.loads(
        other.signed_body(inner_header, {"account": other.kid, "oldKey": other.jwk()}, key=new_key)
    )
    reply = other.post(url, inner)
    assert reply.status == 409 and reply.location == client.kid
    del old_key


# -- hostile requests ---------------------------------------------------------------------


def test_malformed_and_replayed_requests_change_nothing(acme):
    client = acme.client()
    url = client.directory["newOrder"]
    payload = {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]}
    before = rows(acme)

    def protected(**changes):
        header = client.protected(url)
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    cases = [
        (b"not json", "malformed"),
        (json.dumps({"signatures": []}).encode(), "malformed"),
        (
            client.signed_body(protected(alg="HS256"), payload, key=b"k" * 32),
            "badSignatureAlgorithm",
        ),
        (client.signed_body(protected(url=url + "/x"), payload), "unauthorized"),
        (client.signed_body(protected(nonce="bm9ub25jZQ"), payload), "badNonce"),
        (client.signed_body(protected(nonce=None), payload), "badNonce"),
        (client.signed_body(protected(jwk=client.jwk()), payload), "malformed"),
        (
            client.signed_body(protected(kid=acme.base + "/acme/issuing/acct/nobody"), payload),
            "accountDoesNotExist",
        ),
        (
            client.signed_body(protected(), payload, key=ec.generate_private_key(ec.SECP256R1())),
            "malformed",
        ),
    ]
    # alg "none": no signature at all.
    header = b64(json.dumps({**protected(), "alg": "none"}).encode())
    body = b64(json.dumps(payload).encode())
    cases.append(
        (
            json.dumps({"protected": header, "payload": body, "signature": ""}).encode(),
            "badSignatureAlgorithm",
        )
    )
    for raw, problem in cases:
        reply = client.send(url, raw)
        assert reply.problem == problem, (raw[:80], reply.body)
        assert reply.headers["Replay-Nonce"]
    # A replay: the same signed request twice.
    raw = client.signed_body(protected(), payload)
    assert client.send(url, raw).status == 201
    replay = client.send(url, raw)
    assert replay.problem == "badNonce"
    after = rows(acme)
    assert after["acme_orders"] == before["acme_orders"] + 1
    # Not JOSE, or too large: refused before any parsing.
    assert client.send(url, raw, content_type="application/json").status == 415
    huge = client.send(url, b"{" + b" " * (200 * 1024) + b"}")
    assert huge.status == 413
    assert rows(acme)["acme_orders"] == before["acme_orders"] + 1


def test_account_keys_must_be_strong_public_keys(acme):
    client = Client(acme.directory_url("open"))
    url = client.directory["newAccount"]
    weak = rsa.generate_private_key(65537, 1024)
    jwk = public_jwk(weak)
    raw = client.signed_body(
        {"alg": "RS256", "jwk": jwk, "url": url, "nonce": client.new_nonce()}, {}, key=weak
    )
    assert client.send(url, raw).problem == "badPublicKey"
    private = {**client.jwk(), "d": "AAAA"}
    raw = client.signed_body(
        {"alg": "ES256", "jwk": private, "url": url, "nonce": client.new_nonce()}, {}
    )
    assert client.send(url, raw).problem == "badPublicKey"
    mismatched = client.signed_body(
        {"alg": "ES384", "jwk": client.jwk(), "url": url, "nonce": client.new_nonce()}, {}
    )
    assert client.send(url, mismatched).problem == "badSignatureAlgorithm"


# -- orders -------------------------------------------------------------------------------


def test_names_outside_the_entitys_patterns_are_rejected_per_identifier(acme):
    client = acme.client()
    before = rows(acme)
    reply = client.order("www.example.com", "www.other.org", "10.0.0.1")
    assert reply.problem == "rejectedIdentifier"
    refused = {s["identifier"]["value"] for s in reply.body["subproblems"]}
    assert refused == {"www.other.org", "10.0.0.1"}
    assert rows(acme) == before
    bad = client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "email", "value": "a@b.c"}]}
    )
    assert bad.problem == "unsupportedIdentifier"
    assert client.order("bad..name.example.com").problem == "rejectedIdentifier"
    assert client.order("a.*.example.com").problem == "rejectedIdentifier"
    assert rows(acme) == before


def test_a_wildcard_is_offered_dns_01_only_and_ip_no_dns_01(acme):
    client = acme.client()
    order = client.order("*.example.com", "127.0.0.1")
    assert order.status == 201
    kinds = {}
    for url in order.body["authorizations"]:
        authz = client.post(url).body
        kinds[authz["identifier"]["value"]] = (
            authz.get("wildcard", False),
            sorted(c["type"] for c in authz["challenges"]),
        )
    assert kinds == {
        "example.com": (True, ["dns-01"]),
        "127.0.0.1": (False, ["http-01", "tls-alpn-01"]),
    }


def test_profiles_are_chosen_from_those_offered(acme):
    client = acme.client()
    assert client.order("127.0.0.1", profile="root-ca").problem == "invalidProfile"
    assert client.order("127.0.0.1", profile="tls-client").body["profile"] == "tls-client"
    assert client.order("127.0.0.1", notAfter="2027-01-01T00:00:00Z").problem == "malformed"


def test_finalize_waits_for_validation_and_checks_the_csr(acme):
    client = acme.client()
    order = client.order("127.0.0.1")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_acme_csr(key, ["127.0.0.1"])
    early = client.post(order.body["finalize"], {"csr": b64(csr)})
    assert early.problem == "orderNotReady"
    authz = client.post(order.body["authorizations"][0]).body
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    acme.responder.tokens[chall["token"]] = client.key_authorization(chall["token"])
    client.post(chall["url"], {})
    assert client.poll(order.location, ("ready", "invalid")).body["status"] == "ready"
    wrong = make_acme_csr(key, ["127.0.0.1", "127.0.0.2"])
    reply = client.post(order.body["finalize"], {"csr": b64(wrong)})
    assert reply.problem == "badCSR" and "127.0.0.2" in reply.body["detail"]
    assert client.post(order.body["finalize"], {"csr": "!!"}).problem == "malformed"
    assert client.post(order.body["finalize"], {"csr": b64(b"junk")}).problem == "badCSR"
    weak = make_acme_csr(rsa.generate_private_key(65537, 1024), ["127.0.0.1"])
    assert client.post(order.body["finalize"], {"csr": b64(weak)}).problem in (
        "badPublicKey",
        "badCSR",
    )
    # Nothing of that changed the order: a good CSR still gets the certificate.
    assert client.post(order.location).body["status"] == "ready"
    assert client.post(order.body["finalize"], {"csr": b64(csr)}).body["status"] == "valid"
    again = client.post(order.body["finalize"], {"csr": b64(csr)})
    assert again.problem == "orderNotReady"
    assert len(acme.service.ra.entity_certificates("web")) == 1


def test_a_wrong_answer_invalidates_the_authorization_and_the_order(acme):
    client = acme.client()
    order = client.order("127.0.0.1")
    authz_url = order.body["authorizations"][0]
    chall = next(c for c in client.post(authz_url).body["challenges"] if c["type"] == "http-01")
    acme.responder.tokens[chall["token"]] = "not-the-key-authorization"
    client.post(chall["url"], {})
    authz = client.poll(authz_url, ("valid", "invalid")).body
    assert authz["status"] == "invalid"
    failed = next(c for c in authz["challenges"] if c["type"] == "http-01")
    assert failed["error"]["type"].endswith(":incorrectResponse")
    final = client.post(order.location).body
    assert final["status"] == "invalid"
    assert final["error"]["subproblems"][0]["identifier"] == {"type": "ip", "value": "127.0.0.1"}
    # The challenge is not tried again.
    again = client.post(chall["url"], {})
    assert again.body["status"] == "invalid"


def test_authorizations_can_be_deactivated(acme):
    client = acme.client()
    order = client.order("127.0.0.1")
    url = order.body["authorizations"][0]
    assert client.post(url, {"status": "valid"}).problem == "malformed"
    assert client.post(url, {"status": "deactivated"}).body["status"] == "deactivated"
    assert client.post(order.location).body["status"] == "invalid"


def test_another_accounts_resources_are_not_found(acme):
    alice, bob = acme.client(), acme.client()
    order = alice.order("127.0.0.1")
    assert bob.post(order.location).status == 404
    assert bob.post(order.body["authorizations"][0]).status == 404
    assert bob.post(alice.kid).problem == "unauthorized"


def test_the_order_rate_limit_answers_rate_limited_with_retry_after(loop, pki):
    env, runners = start_acme(loop, pki, settings=AcmeSettings(orders_per_account_per_hour=2))
    try:
        client = env.client()
        assert client.order("127.0.0.1").status == 201
        assert client.order("127.0.0.2").status == 201
        reply = client.order("127.0.0.1")
        assert reply.status == 429 and reply.problem == "rateLimited"
        assert 0 < int(reply.headers["Retry-After"]) <= 3600
        assert acme_orders_of(env) == 2
    finally:
        stop_acme(loop, runners)


def acme_orders_of(env) -> int:
    return rows(env)["acme_orders"]


# -- revocation -------------------------------------------------------------------------


def test_revocation_by_the_account_and_by_the_certificates_key(acme):
    client = acme.client()
    _, pem, key = client.issue(acme.responder, "127.0.0.1")
    leaf = x509.load_pem_x509_certificates(pem)[0]
    der = leaf.public_bytes(serialization.Encoding.DER)
    url = client.directory["revokeCert"]
    assert client.post(url, {"certificate": b64(der), "reason": 6}).problem == "badRevocationReason"
    stranger = acme.client()
    assert stranger.post(url, {"certificate": b64(der)}).problem == "unauthorized"
    assert client.post(url, {"certificate": b64(der), "reason": 4}).status == 200
    record = acme.service.ra.certificate("issuing", leaf.serial_number)
    assert record.status == "revoked" and record.reason.name == "superseded"
    assert client.post(url, {"certificate": b64(der)}).problem == "alreadyRevoked"
    # The second one is revoked with its own key, no account involved.
    _, pem2, key2 = client.issue(acme.responder, "127.0.0.1")
    leaf2 = x509.load_pem_x509_certificates(pem2)[0]
    holder = Client(acme.directory_url())
    holder.key, holder.alg = key2, "ES256"
    reply = holder.post(
        url,
        {"certificate": b64(leaf2.public_bytes(serialization.Encoding.DER)), "reason": 1},
        use_jwk=True,
    )
    assert reply.status == 200, reply.body
    assert (
        acme.service.ra.certificate("issuing", leaf2.serial_number).reason.name == "keyCompromise"
    )
    del key


# -- renewal information (RFC 9773) ------------------------------------------------------------


def cert_id(leaf: x509.Certificate) -> str:
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 8) // 8, "big")
    return f"{b64(aki)}.{b64(serial)}"


def test_renewal_info_and_replaces(acme):
    client = acme.client()
    _, pem, _ = client.issue(acme.responder, "127.0.0.1")
    leaf = x509.load_pem_x509_certificates(pem)[0]
    info = client.get(f"{client.directory['renewalInfo']}/{cert_id(leaf)}")
    assert info.status == 200 and int(info.headers["Retry-After"]) > 0
    window = info.body["suggestedWindow"]
    start = window["start"]
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    expected = leaf.not_valid_before_utc + life * 2 / 3
    assert start.startswith(expected.strftime("%Y-%m-%dT%H"))
    assert window["start"] < window["end"]
    # A renewal names what it replaces; a second may not.
    first = client.order("127.0.0.1", replaces=cert_id(leaf))
    assert first.status == 201 and first.body["replaces"] == cert_id(leaf)
    second = client.order("127.0.0.1", replaces=cert_id(leaf))
    assert second.status == 409 and second.problem == "alreadyReplaced"
    stranger = acme.client()
    assert stranger.order("127.0.0.1", replaces=cert_id(leaf)).problem == "unauthorized"
    unknown = client.get(f"{client.directory['renewalInfo']}/AAAA.AQ")
    assert unknown.status == 404
    # Revoked: renew now (a window in the past).
    client.post(
        client.directory["revokeCert"],
        {"certificate": b64(leaf.public_bytes(serialization.Encoding.DER))},
    )
    now_info = client.get(f"{client.directory['renewalInfo']}/{cert_id(leaf)}").body
    assert now_info["suggestedWindow"]["end"] < first.body["expires"]


# -- approvals --------------------------------------------------------------------------


def test_where_the_profile_wants_approvers_the_order_waits_for_them(loop, pki):
    env, runners = start_acme(loop, pki, policy=ApprovalPolicy(issue=1))
    try:
        ra = env.service.ra
        ra.users.create("anna", "approver")
        client = env.client()
        order = client.order("127.0.0.1")
        authz = client.post(order.body["authorizations"][0]).body
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        env.responder.tokens[chall["token"]] = client.key_authorization(chall["token"])
        client.post(chall["url"], {})
        client.poll(order.location, ("ready", "invalid"))
        csr = make_acme_csr(ec.generate_private_key(ec.SECP256R1()), ["127.0.0.1"])
        waiting = client.post(order.body["finalize"], {"csr": b64(csr)})
        assert waiting.body["status"] == "processing" and waiting.headers["Retry-After"]
        assert client.post(order.location).body["status"] == "processing"
        (request,) = ra.approvals.list(status="pending", after=None, limit=10)
        ra.approve(request.id, actor="ra:anna")
        done = client.post(order.location).body
        assert done["status"] == "valid"
        assert client.post(done["certificate"]).status == 200
    finally:
        stop_acme(loop, runners)


# -- metrics ------------------------------------------------------------------------------


def test_metrics_count_orders_validations_and_issuance(acme):
    client = acme.client()
    client.issue(acme.responder, "127.0.0.1")
    text = client.get(acme.base + "/metrics").raw.decode()
    assert 'revoca_acme_orders_created_total{directory="issuing"} 1' in text
    assert 'revoca_acme_validations_total{type="http-01",result="valid"} 1' in text
    assert "revoca_acme_issuance_seconds_count 1" in text


def test_settings_defaults_and_directories():
    settings = AcmeSettings.from_table(
        {
            "directories": {"web": {"ca": "issuing", "profiles": ["tls-server"]}},
            "resolver": "127.0.0.1:5353",
        }
    )
    assert settings.resolver == ("127.0.0.1", 5353)
    assert settings.directories[0].external_account_required is True
    from common.settings import SettingsError

    with pytest.raises(SettingsError, match="default_entity"):
        AcmeSettings.from_table(
            {"directories": {"x": {"ca": "a", "external_account_required": False}}}
        )
    with pytest.raises(SettingsError, match="resolver"):
        AcmeSettings.from_table({"resolver": "dns.example:53"})


# -- both stores, and races -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_flow_and_its_races_on_each_store(loop, make_service, request, backend):
    """Two finalize requests for one order issue one certificate; two
    accounts racing for one EAB key make one account."""
    from concurrent.futures import ThreadPoolExecutor

    if backend == "sqlite":
        service = make_service()
    else:
        service = make_service(url=request.getfixturevalue("postgres_url"))
    service.init_root("root", "CN=Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    service.create_sub("issuing", "root", "CN=Issuing,O=Revoca Tests,C=DE")
    env, runners = start_acme(loop, service)
    try:
        client = env.client()
        order = client.order("127.0.0.1")
        authz = client.post(order.body["authorizations"][0]).body
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        env.responder.tokens[chall["token"]] = client.key_authorization(chall["token"])
        client.post(chall["url"], {})
        assert client.poll(order.location, ("ready", "invalid")).body["status"] == "ready"
        csr = b64(make_acme_csr(ec.generate_private_key(ec.SECP256R1()), ["127.0.0.1"]))
        twins = [Client(env.directory_url()) for _ in range(2)]
        for twin in twins:
            twin.key, twin.kid = client.key, client.kid
            twin.new_nonce()
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda c: c.post(order.body["finalize"], {"csr": csr}), twins))
        outcomes = sorted(r.problem or r.body["status"] for r in replies)
        assert outcomes == ["orderNotReady", "valid"], [r.body for r in replies]
        assert len(env.service.ra.entity_certificates("web")) == 1
        # Two renewals of it at once: one replaces it.
        (record,) = env.service.ra.entity_certificates("web")
        renewing = cert_id(record.certificate)
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda c: c.order("127.0.0.1", replaces=renewing), twins))
        assert sorted(r.status for r in replies) == [201, 409], [r.body for r in replies]

        kid, mac = env.new_eab()
        racers = [Client(env.directory_url()) for _ in range(4)]
        for racer in racers:
            racer.new_nonce()
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda c: c.register((kid, mac)), racers))
        assert sorted(r.status for r in replies) == [201, 403, 403, 403], [r.body for r in replies]
    finally:
        stop_acme(loop, runners)


# -- nonces -------------------------------------------------------------------------------


def test_nonces_are_good_once_unforgeable_expire_and_stay_bounded():
    import os

    from acmesrv.nonces import NonceService
    from acmesrv.problems import Problem

    now = [1_000_000]
    nonces = NonceService(os.urandom, lambda: now[0], capacity=3, lifetime=60)
    first = nonces.make()
    nonces.redeem(first)
    with pytest.raises(Problem, match="used already"):
        nonces.redeem(first)
    forged = first[:-2] + ("AA" if first[-2:] != "AA" else "BB")
    with pytest.raises(Problem, match="not one this server made"):
        nonces.redeem(forged)
    other = NonceService(os.urandom, lambda: now[0])
    with pytest.raises(Problem, match="not one this server made"):
        other.redeem(nonces.make())
    old = nonces.make()
    now[0] += 61
    with pytest.raises(Problem, match="expired"):
        nonces.redeem(old)
    # Past capacity the oldest redeemed is forgotten and everything up to it
    # refused: an unused nonce from before that floor too.
    kept = nonces.make()
    made = [nonces.make() for _ in range(4)]
    for value in made:
        nonces.redeem(value)
    with pytest.raises(Problem):
        nonces.redeem(kept)
    for value in made:
        with pytest.raises(Problem):
            nonces.redeem(value)
    assert len(nonces._used) <= 3
    for bad in (None, "", "x" * 43, "!" * 43):
        with pytest.raises(Problem):
            nonces.redeem(bad)


# -- settings ----------------------------------------------------------------------------


def test_every_acme_setting_reaches_what_uses_it(tmp_path, make_service, loop):
    import dataclasses
    import ssl

    from revoca.cli_acme import _base_url, acme_tls_context, build_acme_server
    from revoca.config import load_config
    from tests.acme_fixtures import ENTITY
    from tests.conftest import write_tls_files
    from tests.test_settings_ca_ra import _config, _every_key_changed

    ca = make_service(directory=tmp_path)
    ca.init_root("root", "CN=Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    ca.create_sub("issuing", "root", "CN=Issuing,O=Revoca Tests,C=DE")
    from ra.service import RAService

    RAService(ca).create_entity(**ENTITY)
    tls = write_tls_files(ca, tmp_path / "tls")
    table = {
        "host": "127.0.0.2",
        "port": 18999,
        "base_url": "https://acme.example.org",
        "tls_cert": str(tls / "server.pem"),
        "tls_key": str(tls / "server.key"),
        "terms_of_service": "https://example.org/tos",
        "website": "https://example.org/",
        "caa_identities": ["pki.example.org"],
        "caa": "on",
        "resolver": "127.0.0.1:5353",
        "http_port": 5002,
        "tls_port": 5001,
        "validation_timeout": 3.5,
        "validations": 3,
        "validations_per_account": 4,
        "order_lifetime_hours": 2,
        "orders_per_account_per_hour": 7,
        "certificates_per_domain_per_week": 5,
        "registered_domain_labels": 3,
        "eab_key_days": 5,
        "request_timeout": 4.0,
        "idle_timeout": 30.0,
        "max_connections": 99,
        "threads": 3,
        "directories": {"web": {"ca": "issuing", "profiles": ["tls-client", "tls-server"]}},
    }
    _every_key_changed(AcmeSettings, table)
    config = load_config(_config(tmp_path, acme=table))
    seen = {}
    base = _base_url(config.acme, config.acme.port)
    seen["base_url"] = base == "https://acme.example.org"
    seen["host"] = (
        _base_url(dataclasses.replace(config.acme, base_url=""), 1) == "https://127.0.0.2:1"
    )
    seen["port"] = config.acme.port == 18999  # what `acme serve` binds (cli_acme.serve)
    context = acme_tls_context(config.acme, config.passphrase)
    seen["tls_cert"] = seen["tls_key"] = isinstance(context, ssl.SSLContext)
    service, server = build_acme_server(config, base)
    d = service.directory_object("web")
    seen["directories"] = set(service.directories) == {"web"} and d["meta"]["profiles"].keys() == {
        "tls-client",
        "tls-server",
    }
    seen["terms_of_service"] = d["meta"]["termsOfService"] == "https://example.org/tos"
    seen["website"] = d["meta"]["website"] == "https://example.org/"
    seen["caa_identities"] = d["meta"]["caaIdentities"] == ["pki.example.org"]
    seen["caa"] = service._caa_applies("tls-client")  # on: also outside the BR
    v = server.validation
    seen["resolver"] = v.resolver == ("127.0.0.1", 5353)
    seen["http_port"] = v.http_port == 5002
    seen["tls_port"] = v.tls_port == 5001
    seen["validation_timeout"] = v.timeout == 3.5
    seen["validations"] = server._slots._value == 3
    seen["validations_per_account"] = service.settings.validations_per_account == 4
    seen["threads"] = server.executor._max_workers == 3
    limits = server.guard.limits
    seen["request_timeout"] = limits.request_timeout == 4.0
    seen["idle_timeout"] = limits.idle_timeout == 30.0
    seen["max_connections"] = limits.max_connections == 99
    kid, _ = service.create_eab_key("web", directory="web", actor="test")
    (key,) = [k for k in service.list_eab_keys() if k["key_id"] == kid]
    from datetime import datetime

    created = datetime.fromisoformat(key["created_at"])
    expires = datetime.fromisoformat(key["expires_at"])
    seen["eab_key_days"] = (expires - created).days == 5
    from acmesrv.identifiers import Identifier

    seen["registered_domain_labels"] = (
        Identifier("dns", "www.shop.example.co.uk").registered_domain(
            config.acme.registered_domain_labels
        )
        == "example.co.uk"
    )
    # An account of the directory, made through the service as a request would.
    from acmesrv import jws as acme_jws
    from tests.acme_fixtures import public_jwk

    client_key = ec.generate_private_key(ec.SECP256R1())
    url = service.url("web", "new-account")
    kid, mac = service.create_eab_key("web", directory="web", actor="test")
    header = {
        "alg": "ES256",
        "jwk": public_jwk(client_key),
        "url": url,
        "nonce": service.new_nonce(),
    }
    payload = {
        "termsOfServiceAgreed": True,
        "externalAccountBinding": eab_jws(kid, mac, public_jwk(client_key), url),
    }
    body = Client.signed_body(None, header, payload, key=client_key)
    request = acme_jws.parse(body)
    _, key = service.authenticate("web", request, url, jwk="required")
    account_url = service.new_account("web", request, key, url).location
    account = service._load_account(account_url.rsplit("/", 1)[1])
    order = service.new_order(account, {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    expires = datetime.fromisoformat(order.body["expires"])
    lifetime = expires - datetime.fromtimestamp(service.now(), expires.tzinfo)
    seen["order_lifetime_hours"] = 7190 <= lifetime.total_seconds() <= 7200
    orders = [order.location.rsplit("/", 1)[1]]
    for _ in range(6):
        more = service.new_order(account, {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
        orders.append(more.location.rsplit("/", 1)[1])
    with pytest.raises(Exception) as refused:
        service.new_order(account, {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    seen["orders_per_account_per_hour"] = "at most 7 new orders" in str(refused.value)
    # Five certificates for names under shop.example.com this week (rows as
    # issuance writes them; three labels make the registered domain here).
    with service.store.transaction() as conn:
        for oid in orders[:5]:
            conn.execute(
                tables.acme_issued_domains.insert().values(
                    order_id=oid, domain="shop.example.com", issued_at=service.now()
                )
            )
    service._check_domain_rate([Identifier("dns", "www.other.example.com")], service.now())
    with pytest.raises(Exception) as refused:
        service._check_domain_rate([Identifier("dns", "www.shop.example.com")], service.now())
    seen["certificates_per_domain_per_week"] = "at most 5 certificates" in str(refused.value)
    assert set(seen) == set(table), set(table) ^ set(seen)
    assert all(seen.values()), {k: v for k, v in seen.items() if not v}


def test_a_challenge_left_processing_is_validated_when_a_server_starts(loop, pki):
    """A server that stopped mid-validation: the next one to start validates
    the challenge, so the order does not hang in processing."""
    import time

    from acmesrv.server import AcmeServer, start
    from common import listen

    env, runners = start_acme(loop, pki)
    try:
        client = env.client()
        order = client.order("127.0.0.1")
        authz_url = order.body["authorizations"][0]
        chall = next(c for c in client.post(authz_url).body["challenges"] if c["type"] == "http-01")
        env.responder.tokens[chall["token"]] = client.key_authorization(chall["token"])
        chall_id = chall["url"].rsplit("/", 1)[1]
        with env.service.store.transaction() as conn:
            conn.execute(
                tables.acme_challenges.update()
                .where(tables.acme_challenges.c.id == chall_id)
                .values(status="processing")
            )
        second = AcmeServer(env.service, validation_settings=env.server.validation)
        runners.append(loop.run(start(second, listen.bind_listener("127.0.0.1", 0, 8))))
        deadline = time.monotonic() + 20
        while client.post(authz_url).body["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.post(authz_url).body["status"] == "valid"
        assert client.post(order.location).body["status"] == "ready"
    finally:
        stop_acme(loop, runners)


# -- what a review of RFC 8555 and the clients asked for --------------------------------------


def test_a_revocation_waiting_for_approvers_is_not_called_done(loop, pki):
    env, runners = start_acme(loop, pki, policy=ApprovalPolicy(revoke=1))
    try:
        client = env.client()
        _, pem, _ = client.issue(env.responder, "127.0.0.1")
        leaf = x509.load_pem_x509_certificates(pem)[0]
        der = b64(leaf.public_bytes(serialization.Encoding.DER))
        url = client.directory["revokeCert"]
        first = client.post(url, {"certificate": der, "reason": 1})
        assert first.status == 403 and "waits for" in first.body["detail"]
        again = client.post(url, {"certificate": der, "reason": 1})
        assert again.status == 403 and "waits for" in again.body["detail"]
        pending = env.service.ra.approvals.list(status="pending", after=None, limit=10)
        assert len(pending) == 1  # asking twice queues one request
        assert env.service.ra.certificate("issuing", leaf.serial_number).status == "good"
    finally:
        stop_acme(loop, runners)


def test_replaces_after_an_expired_order_and_in_one_spelling(acme):
    client = acme.client()
    _, pem, _ = client.issue(acme.responder, "127.0.0.1")
    leaf = x509.load_pem_x509_certificates(pem)[0]
    first = client.order("127.0.0.1", replaces=cert_id(leaf))
    with acme.service.store.transaction() as conn:  # as if a day had passed
        conn.execute(
            tables.acme_orders.update()
            .where(tables.acme_orders.c.id == first.location.rsplit("/", 1)[1])
            .values(expires_at=acme.service.now() - 1)
        )
    assert client.order("127.0.0.1", replaces=cert_id(leaf)).status == 201
    aki, _, serial = cert_id(leaf).partition(".")
    raw = base64.urlsafe_b64decode(serial + "==")
    padded = aki + "." + b64(bytes(1) + raw)  # a leading zero DER does not allow
    if not raw[0] & 0x80:
        assert client.order("127.0.0.1", replaces=padded).problem == "malformed"


def test_a_finalize_left_mid_issuance_is_released(acme):
    client = acme.client()
    order = client.order("127.0.0.1")
    oid = order.location.rsplit("/", 1)[1]
    with acme.service.store.transaction() as conn:
        conn.execute(
            tables.acme_orders.update()
            .where(tables.acme_orders.c.id == oid)
            .values(status="processing", updated_at=acme.service.now() - 600)
        )
    assert client.post(order.location).body["status"] == "ready"


def test_an_account_validates_a_bounded_number_of_challenges_at_once(loop, pki):
    env, runners = start_acme(loop, pki, settings=AcmeSettings(validations_per_account=1))
    try:
        client = env.client()
        first, second = client.order("127.0.0.1"), client.order("127.0.0.2")
        challenges = []
        for order in (first, second):
            authz = client.post(order.body["authorizations"][0]).body
            challenges.append(next(c for c in authz["challenges"] if c["type"] == "http-01"))
        with env.service.store.transaction() as conn:  # the first still being validated
            conn.execute(
                tables.acme_challenges.update()
                .where(tables.acme_challenges.c.id == challenges[0]["url"].rsplit("/", 1)[1])
                .values(status="processing")
            )
        reply = client.post(challenges[1]["url"], {})
        assert reply.status == 429 and reply.problem == "rateLimited"
        assert reply.headers["Retry-After"]
    finally:
        stop_acme(loop, runners)


def test_caa_is_looked_up_again_before_issuing_on_an_old_validation(loop, pki):
    """BR 3.2.2.8: CAA at most 8 hours before issuance; a resolver that does
    not answer refuses issuance, and changes nothing."""
    from tests.conftest import free_port

    settings = AcmeSettings(caa="on", resolver=("127.0.0.1", free_port()), validation_timeout=1)
    env, runners = start_acme(loop, pki, settings=settings)
    try:
        client = env.client()
        order = client.order("www.example.com")
        oid = order.location.rsplit("/", 1)[1]
        long_ago = env.service.now() - 9 * 3600
        with env.service.store.transaction() as conn:  # validated 9 hours ago
            conn.execute(
                tables.acme_authorizations.update()
                .where(tables.acme_authorizations.c.order_id == oid)
                .values(status="valid")
            )
            conn.execute(
                tables.acme_challenges.update()
                .where(tables.acme_challenges.c.type == "http-01")
                .values(status="valid", validated_at=long_ago)
            )
            conn.execute(
                tables.acme_orders.update()
                .where(tables.acme_orders.c.id == oid)
                .values(status="ready")
            )
        csr = make_acme_csr(ec.generate_private_key(ec.SECP256R1()), ["www.example.com"])
        reply = client.post(order.body["finalize"], {"csr": b64(csr)})
        assert reply.problem in ("dns", "caa"), reply.body
        assert client.post(order.location).body["status"] == "ready"
        assert env.service.ra.entity_certificates("web") == []
    finally:
        stop_acme(loop, runners)


def test_what_clients_expect_of_answers(acme):
    client = acme.client()
    # An account update that repeats its status changes nothing.
    assert client.post(client.kid, {"status": "valid"}).status == 200
    # Unknown resources and methods are problem documents with a nonce.
    missing = client.get(acme.base + "/acme/issuing/order/nope")
    assert missing.status == 405 and missing.problem == "malformed"
    assert missing.headers["Replay-Nonce"]
    nowhere = client.get(acme.base + "/nowhere")
    assert nowhere.status == 404 and nowhere.problem == "malformed"
    huge = client.send(client.directory["newOrder"], b"{" + b" " * (200 * 1024) + b"}")
    assert huge.status == 413 and huge.headers["Replay-Nonce"]
    # An address with a zone is no identifier.
    assert client.order("fe80::1%eth0").problem == "malformed"
    # The certificate's key may not be the account's.
    order, _, _ = client.issue(acme.responder, "127.0.0.1")
    again = client.order("127.0.0.1")
    authz = client.post(again.body["authorizations"][0]).body
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    acme.responder.tokens[chall["token"]] = client.key_authorization(chall["token"])
    answered = client.post(chall["url"], {})
    assert answered.status == 200
    client.poll(again.location, ("ready",))
    same_key = client.post(
        again.body["finalize"], {"csr": b64(make_acme_csr(client.key, ["127.0.0.1"]))}
    )
    assert same_key.problem == "badCSR" and "account's key" in same_key.body["detail"]
    # Answering a challenge of a decided authorization returns it as it is.
    other = next(c for c in authz["challenges"] if c["type"] == "tls-alpn-01")
    assert client.post(other["url"], {}).status == 200
    # Finalize and order answers name the order (Go's x/crypto/acme polls it).
    final = client.post(
        again.body["finalize"],
        {"csr": b64(make_acme_csr(ec.generate_private_key(ec.SECP256R1()), ["127.0.0.1"]))},
    )
    assert final.location == again.location
    # The orders list leaves out invalid ones.
    dead = client.order("127.0.0.2")
    client.post(dead.body["authorizations"][0], {"status": "deactivated"})
    listed = client.post(client.kid + "/orders").body["orders"]
    assert dead.location not in listed and again.location in listed
    del order
