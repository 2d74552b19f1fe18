"""The CA's blocklist of compromised keys over the RA API: list, check,
import, each role-checked, refusals specific, and an imported key then
refused at enrollment."""

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import make_csr, new_key
from tests.ra_fixtures import OFFICER_ENTITY, start_ra


@pytest.fixture
def ra(loop, make_service):
    pki = make_service()
    pki.init_root("root", "CN=Blocklist Root,O=Revoca Tests,C=DE", key_type="ec-p256")
    pki.create_sub("issuing", "root", "CN=Blocklist Issuing CA,O=Revoca Tests,C=DE")
    env, runner = start_ra(loop, pki)
    yield env
    loop.run(runner.cleanup())


def _public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _digest(key) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def test_an_imported_key_is_listed_checked_and_refused_at_enrollment(ra):
    key, other = new_key(), new_key()
    text = f"# leaked\n{_public_pem(key)}{_digest(other)}\n"
    reply = ra.call(
        "POST", "/api/blocklist", {"keys": text, "note": "posted publicly"}, role="ra-officer"
    )
    assert reply.status == 201, reply.body
    assert reply.body == {"keys": 2, "added": 2, "already_listed": 0}
    again = ra.call("POST", "/api/blocklist", {"keys": text, "note": "again"}, role="ra-officer")
    assert again.status == 200 and again.body["already_listed"] == 2

    page = ra.call("GET", "/api/blocklist", role="auditor")
    assert page.status == 200
    assert {i["spki_sha256"] for i in page.body["items"]} == {_digest(key), _digest(other)}
    entry = page.body["items"][0]
    assert entry["source"] == "import" and entry["note"] == "posted publicly"
    assert entry["added_at"].endswith("Z") and entry["actor"] == "ra:ra-officer-user"
    assert page.body["next_after"] is None

    first = ra.call("GET", "/api/blocklist?limit=1", role="auditor").body
    rest = ra.call("GET", f"/api/blocklist?after={first['next_after']}", role="auditor").body
    assert [i["spki_sha256"] for i in first["items"] + rest["items"]] == sorted(
        [_digest(key), _digest(other)]
    )

    fresh = new_key()
    check = ra.call("POST", "/api/blocklist/check", {"keys": _public_pem(key) + _public_pem(fresh)})
    assert check.status == 200 and check.body["listed"] == 1
    assert [i["listed"] for i in check.body["items"]] == [True, False]
    assert check.body["items"][0]["entry"]["note"] == "posted publicly"

    assert ra.call("POST", "/api/entities", OFFICER_ENTITY, role="ra-officer").status == 201
    csr = make_csr("web-1.example.com", ("dns:web-1.example.com",), key=key)
    reply = ra.call("POST", "/api/entities/web-1/enroll", {"csr": csr.decode()}, role="ra-officer")
    assert reply.status == 422 and reply.body["error"]["code"] == "key_compromised"


def test_only_officers_and_administrators_add_keys(ra):
    body = {"keys": _digest(new_key()), "note": "advisory"}
    for role in ("auditor", "approver"):
        reply = ra.call("POST", "/api/blocklist", body, role=role)
        assert reply.status == 403, role
    assert ra.call("GET", "/api/blocklist").body["items"] == []
    assert ra.call("POST", "/api/blocklist", body).status == 201


@pytest.mark.parametrize(
    "body, message",
    [
        ({"note": "x"}, "missing field: keys"),
        ({"keys": "00" * 32}, "missing field: note"),
        ({"keys": "00" * 32, "note": "  "}, "missing field: note"),
        ({"keys": "not a key\n", "note": "x"}, "line 1"),
        ({"keys": 7, "note": "x"}, "keys must be a string"),
        ({"keys": "00" * 32, "note": "x", "extra": 1}, "unknown field(s): extra"),
    ],
)
def test_a_bad_import_is_refused_and_changes_nothing(ra, body, message):
    reply = ra.call("POST", "/api/blocklist", body)
    assert reply.status == 400, reply.body
    assert message in reply.body["error"]["message"]
    assert ra.call("GET", "/api/blocklist").body["items"] == []


def test_a_bad_page_cursor_is_refused(ra):
    for query in ("after=zz", "limit=0", "limit=1001"):
        assert ra.call("GET", f"/api/blocklist?{query}").status == 400, query
