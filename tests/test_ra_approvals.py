"""Approvals through the RA API: N distinct approvers, never the requester,
rejections with a reason, expiry, keys handed out after approval, approved
revocations, and exactly one issuance when the last approvals race."""

import base64
import copy
import hashlib
import threading
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ra.approvals import ApprovalPolicy
from tests.conftest import FIXED_NOW, counts, make_csr, new_key
from tests.ra_fixtures import OFFICER_ENTITY, start_ra

EXPIRY = 3600


@pytest.fixture
def clock():
    now = [FIXED_NOW]
    return now


@pytest.fixture
def ra(loop, make_service, clock):
    pki = make_service(base_url="http://pki.example.com", clock=lambda: clock[0])
    pki.init_root("root", "CN=Approvals Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=Approvals CA,O=Revoca Tests,C=DE")
    policy = ApprovalPolicy(issue=0, revoke=1, profiles={"tls-server": 2}, expiry_seconds=EXPIRY)
    env, runner = start_ra(
        loop, pki, policy, extra_users=[("approver-2", "approver"), ("officer-2", "ra-officer")]
    )
    reply = env.call("POST", "/api/entities", copy.deepcopy(OFFICER_ENTITY), role="ra-officer")
    assert reply.status == 201
    yield env
    loop.run(runner.cleanup())


def _enroll(ra, **body):
    body = body or {"csr": make_csr("x", ("dns:web-1.example.com",)).decode()}
    return ra.call("POST", "/api/entities/web-1/enroll", body, role="ra-officer")


def _approve(ra, request_id, who):
    return ra.call("POST", f"/api/requests/{request_id}/approve", {}, token=ra.tokens[who])


def test_issuance_waits_for_two_distinct_approvers(ra):
    before = counts(ra.service.ca)
    queued = _enroll(ra)
    assert queued.status == 202, queued.body
    request = queued.body["request"]
    assert (request["status"], request["required"]) == ("pending", 2)
    assert request["requester"] == "ra:ra-officer-user"
    assert counts(ra.service.ca) == before  # nothing issued yet

    own = _approve(ra, request["id"], "ra-officer")
    assert own.status == 403  # an RA officer may not approve at all
    first = _approve(ra, request["id"], "approver")
    assert first.status == 200 and first.body["status"] == "pending"
    assert first.body["approvers"] == ["ra:approver-user"]
    again = _approve(ra, request["id"], "approver")
    assert (again.status, again.body["error"]["code"]) == (409, "conflict")
    assert counts(ra.service.ca) == before

    last = _approve(ra, request["id"], "administrator")
    assert last.status == 200 and last.body["status"] == "done", last.body
    assert counts(ra.service.ca)["certificates"] == before["certificates"] + 1
    fetched = ra.call("GET", f"/api/requests/{request['id']}", role="ra-officer").body
    assert fetched["certificate"]["serial"] == fetched["result"]["serial"]
    assert "BEGIN CERTIFICATE" in fetched["pem"]
    issued = ra.call("GET", "/api/entities/web-1/certificates", role="auditor").body["items"]
    assert [c["serial"] for c in issued] == [fetched["result"]["serial"]]
    actions = [r["action"] for r in ra.call("GET", "/api/audit", role="auditor").body["items"]]
    tail = actions[actions.index("ra.request.create") :]
    assert tail.count("ra.request.approve") == 2 and "ra.enroll" in tail and "ca.issue" in tail


def test_the_requester_cannot_approve_their_own_request(ra):
    # An administrator asks; approval needs two others, never the requester.
    body = {"csr": make_csr("x", ("dns:web-1.example.com",)).decode()}
    queued = ra.call("POST", "/api/entities/web-1/enroll", body, role="administrator")
    request_id = queued.body["request"]["id"]
    own = _approve(ra, request_id, "administrator")
    assert (own.status, own.body["error"]["code"]) == (403, "forbidden")
    assert "own request" in own.body["error"]["message"]
    own = ra.call(
        "POST", f"/api/requests/{request_id}/reject", {"reason": "x"}, role="administrator"
    )
    assert own.status == 403


def test_rejection_needs_a_reason_and_ends_the_request(ra):
    before = counts(ra.service.ca)
    request_id = _enroll(ra).body["request"]["id"]
    path = f"/api/requests/{request_id}/reject"
    assert ra.call("POST", path, {}, role="approver").status == 400
    assert ra.call("POST", path, {"reason": "  "}, role="approver").status == 400
    rejected = ra.call("POST", path, {"reason": "not our host"}, role="approver")
    assert rejected.status == 200
    assert (rejected.body["status"], rejected.body["note"]) == ("rejected", "not our host")
    late = _approve(ra, request_id, "approver-2")
    assert (late.status, late.body["error"]["code"]) == (409, "conflict")
    assert counts(ra.service.ca) == before
    listed = ra.call("GET", "/api/requests?status=rejected", role="auditor").body["items"]
    assert [r["id"] for r in listed] == [request_id]


@pytest.mark.parametrize(
    "path", ["/api/requests/%C2%B2", "/api/requests/" + "9" * 40, "/api/requests?after=" + "9" * 40]
)
def test_bad_request_ids_are_refused_clearly(ra, path):
    reply = ra.call("GET", path, role="auditor")
    assert (reply.status, reply.body["error"]["code"]) == (400, "bad_input")


def test_requests_expire(ra, clock):
    request_id = _enroll(ra).body["request"]["id"]
    assert _approve(ra, request_id, "approver").status == 200
    clock[0] = FIXED_NOW + timedelta(seconds=EXPIRY + 1)
    late = _approve(ra, request_id, "approver-2")
    assert (late.status, late.body["error"]["code"]) == (409, "conflict")
    assert "expired" in late.body["error"]["message"]
    assert ra.call("GET", f"/api/requests/{request_id}", role="auditor").body["status"] == "expired"


def test_a_key_made_after_approval_is_fetched_by_its_requester(ra):
    """The passphrase given with the enrollment protects the PKCS#12; the
    fetch must give it again (a wrong one: 403, nothing released)."""
    body = {"key_type": "ec-p256", "sans": ["dns:web-1.example.com"]}
    unprotected = _enroll(ra, **body)
    assert unprotected.status == 400 and "passphrase" in unprotected.body["error"]["message"]
    queued = _enroll(ra, **body, passphrase="the enrollment secret")
    assert queued.status == 202, queued.body
    assert b"the enrollment secret" not in queued.raw
    request_id = queued.body["request"]["id"]
    path = f"/api/requests/{request_id}/pkcs12"
    early = ra.call("POST", path, {"passphrase": "the enrollment secret"}, role="ra-officer")
    assert (early.status, early.body["error"]["code"]) == (409, "conflict")
    _approve(ra, request_id, "approver")
    assert _approve(ra, request_id, "approver-2").body["status"] == "done"
    shown = ra.call("GET", f"/api/requests/{request_id}", role="auditor")
    assert (
        b"the enrollment secret" not in shown.raw and "passphrase_check" not in shown.body["what"]
    )
    other = ra.call(
        "POST", path, {"passphrase": "the enrollment secret"}, token=ra.tokens["officer-2"]
    )
    assert (other.status, other.body["error"]["code"]) == (403, "forbidden")
    short = ra.call("POST", path, {"passphrase": "short"}, role="ra-officer")
    assert short.status == 400
    wrong = ra.call("POST", path, {"passphrase": "long enough"}, role="ra-officer")
    assert (wrong.status, wrong.body["error"]["code"]) == (403, "forbidden")
    assert "pkcs12" not in wrong.body and "not the one given" in wrong.body["error"]["message"]
    mine = ra.call("POST", path, {"passphrase": "the enrollment secret"}, role="ra-officer")
    assert mine.status == 200
    key, cert, _ = pkcs12.load_key_and_certificates(
        base64.b64decode(mine.body["pkcs12"]), b"the enrollment secret"
    )
    assert key is not None and cert.subject.rfc4514_string() == "CN=web-1.example.com"


def test_approvers_see_what_they_approve(ra):
    csr = make_csr("x", ("dns:web-1.example.com", "dns:a.web.example.com", "ip:192.0.2.7"))
    queued = _enroll(ra, csr=csr.decode(), days=30)
    assert queued.status == 202, queued.body
    shown = ra.call("GET", f"/api/requests/{queued.body['request']['id']}", role="approver").body
    der = x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER)
    assert shown["details"] == {
        "ca": "issuing",
        "profile": "tls-server",
        "subject": "CN=web-1.example.com",
        "sans": ["dns:web-1.example.com", "dns:a.web.example.com", "ip:192.0.2.7"],
        "key_type": "ec-p256",
        "key_bits": 256,
        "key": "the CSR's",
        "validity_days": 30,
        "not_after": "2026-12-26T11:59:59Z",
        "csr_sha256": hashlib.sha256(der).hexdigest(),
    }
    assert shown["created_at"] == "2026-11-26T12:00:00Z"
    assert shown["expires_at"] == "2026-11-26T13:00:00Z" and shown["decided_at"] is None
    made = _enroll(
        ra, key_type="rsa-3072", passphrase="long enough", sans=["dns:web-1.example.com"]
    )
    details = made.body["request"]["details"]
    assert (details["key_type"], details["key_bits"], details["key"]) == (
        "rsa-3072",
        3072,
        "made here",
    )
    assert details["validity_days"] == 90 and details["csr_sha256"] is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"csr_key": "rsa-1024"}, "rsa-1024"),
        ({"csr_key": "ed25519"}, "does not allow key type ed25519"),
        ({"days": 1000}, "exceeds the 398 days"),
        ({"key_type": "ed25519", "passphrase": "long enough"}, "does not allow key type ed25519"),
        ({"sans": ["dns:web-1.example.com", "email:a@example.com"]}, "SAN"),
    ],
)
def test_requests_that_break_the_profile_are_refused_before_they_wait(ra, body, words):
    before = counts(ra.service.ca)
    body = dict(body)
    if "key_type" not in body:
        key = new_key(body.pop("csr_key", "ec-p256"))
        body["csr"] = make_csr("x", ("dns:web-1.example.com",), key=key).decode()
    reply = _enroll(ra, **body)
    assert (reply.status, reply.body["error"]["code"]) == (422, "policy_violation"), reply.body
    assert words in reply.body["error"]["message"]
    assert ra.call("GET", "/api/requests", role="auditor").body["items"] == []
    assert counts(ra.service.ca) == before


def test_a_revocation_reason_the_profile_forbids_is_refused_before_it_waits(ra):
    ra.service.policy = ApprovalPolicy(issue=0, revoke=1, profiles={}, expiry_seconds=EXPIRY)
    serial = _enroll(ra).body["certificate"]["serial"]
    path = f"/api/certificates/issuing/{serial}/revoke"
    for reason in ("cACompromise", "certificateHold"):
        refused = ra.call("POST", path, {"reason": reason}, role="ra-officer")
        assert (refused.status, refused.body["error"]["code"]) == (422, "policy_violation")
    assert ra.call("GET", "/api/requests", role="auditor").body["items"] == []
    queued = ra.call("POST", path, {"reason": "superseded"}, role="ra-officer")
    assert queued.status == 202
    details = queued.body["request"]["details"]
    assert (details["subject"], details["profile"], details["status"]) == (
        "CN=web-1.example.com",
        "tls-server",
        "good",
    )


def test_revocation_waits_for_one_approval(ra):
    ra.service.policy = ApprovalPolicy(issue=0, revoke=1, profiles={}, expiry_seconds=EXPIRY)
    issued = _enroll(ra)
    assert issued.status == 201
    serial = issued.body["certificate"]["serial"]
    queued = ra.call(
        "POST",
        f"/api/certificates/issuing/{serial}/revoke",
        {"reason": "keyCompromise"},
        role="ra-officer",
    )
    assert queued.status == 202
    status = ra.call("GET", f"/api/certificates/issuing/{serial}", role="auditor").body["status"]
    assert status == "active"
    done = _approve(ra, queued.body["request"]["id"], "approver")
    assert done.body["status"] == "done"
    after = ra.call("GET", f"/api/certificates/issuing/{serial}", role="auditor").body
    assert (after["status"], after["reason"]) == ("revoked", "keyCompromise")
    bad = ra.call(
        "POST",
        f"/api/certificates/issuing/{serial}/revoke",
        {"reason": "superseded"},
        role="ra-officer",
    )
    assert bad.status == 409  # already revoked: refused before any request is made


def test_a_request_that_can_no_longer_be_carried_out_fails_clearly(ra):
    request_id = _enroll(ra).body["request"]["id"]
    ra.call("PATCH", "/api/entities/web-1", {"status": "disabled"}, role="ra-officer")
    _approve(ra, request_id, "approver")
    result = _approve(ra, request_id, "approver-2")
    assert result.status == 200
    assert result.body["status"] == "failed" and "disabled" in result.body["note"]


def test_racing_last_approvals_issue_exactly_once(ra):
    before = counts(ra.service.ca)
    request_id = _enroll(ra).body["request"]["id"]
    assert _approve(ra, request_id, "approver").status == 200
    replies = []
    threads = [
        threading.Thread(target=lambda who=who: replies.append(_approve(ra, request_id, who)))
        for who in ("approver-2", "administrator")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(replies) == 2
    assert counts(ra.service.ca)["certificates"] == before["certificates"] + 1
    final = ra.call("GET", f"/api/requests/{request_id}", role="auditor").body
    assert final["status"] == "done"
    assert sorted(r.status for r in replies) in ([200, 200], [200, 409])


def test_a_result_serial_is_written_as_certificates_write_it():
    """Even digits, as openssl prints serials and certificate summaries do."""
    from ra.approvals import ApprovalRequest

    request = ApprovalRequest(
        id=1,
        kind="enroll",
        entity="e",
        payload={},
        required=1,
        approvers=(),
        requester="r",
        status="done",
        created_at=0,
        expires_at=1,
        decided_at=1,
        decided_by="a",
        note=None,
        result_ca="issuing",
        result_serial=0xABC,
    )
    assert request.summary()["result"] == {"ca": "issuing", "serial": "0abc"}


def test_operator_changes_wait_for_the_same_approvals(ra):
    """With a rule wanting two approvers, an administrator cannot make the
    accounts that meet it: new operators, enabling, role changes and
    another's token wait for two approvers other than the requester."""
    created = ra.call("POST", "/api/users", {"name": "sock-1", "role": "approver"})
    assert created.status == 202, created.body
    request = created.body["request"]
    assert (request["kind"], request["required"], request["status"]) == (
        "user.create",
        2,
        "pending",
    )
    assert request["what"] == {
        "name": "sock-1",
        "role": "approver",
        "certificate_sha256": None,
        "token": True,
    }
    token = created.body["token"]
    assert token.startswith("rra_") and token[4:] not in created.raw.decode().replace(token, "")
    assert ra.call("GET", "/api/whoami", token=token).status == 401  # not yet
    own = ra.call("POST", f"/api/requests/{request['id']}/approve", {}, role="administrator")
    assert own.status == 403
    assert _approve(ra, request["id"], "approver").body["status"] == "pending"
    done = _approve(ra, request["id"], "approver-2")
    assert done.body["status"] == "done", done.body
    assert ra.call("GET", "/api/whoami", token=token).body["name"] == "sock-1"

    promote = ra.call("PATCH", "/api/users/auditor-user", {"role": "approver"})
    assert promote.status == 202 and promote.body["request"]["kind"] == "user.role"
    assert ra.call("GET", "/api/whoami", role="auditor").body["role"] == "auditor"
    mine = ra.call(
        "POST", f"/api/requests/{promote.body['request']['id']}/approve", {}, role="auditor"
    )
    assert mine.status == 403  # the auditor may not approve at all
    disabled = ra.call("PATCH", "/api/users/approver-2", {"status": "disabled"})
    assert disabled.status == 200 and disabled.body["status"] == "disabled"  # less power: at once
    enable = ra.call("PATCH", "/api/users/approver-2", {"status": "enabled"})
    assert enable.status == 400
    enable = ra.call("PATCH", "/api/users/approver-2", {"status": "active"})
    assert enable.status == 202 and enable.body["request"]["kind"] == "user.enable"
    assert ra.call("GET", "/api/whoami", token=ra.tokens["approver-2"]).status == 401

    rotate = ra.call("POST", "/api/users/approver-user/token", {})
    assert rotate.status == 202 and rotate.body["request"]["kind"] == "user.token"
    stolen = rotate.body["token"]
    assert ra.call("GET", "/api/whoami", token=stolen).status == 401
    assert ra.call("GET", "/api/whoami", role="approver").status == 200
    # The operator a change is about cannot approve it.
    self_approval = _approve(ra, rotate.body["request"]["id"], "approver")
    assert self_approval.status == 403 and "own account" in self_approval.body["error"]["message"]
    own_token = ra.call("POST", "/api/whoami/token", {}, role="approver")
    assert own_token.status == 200 and own_token.body["token"].startswith("rra_")

    # Refused at once where the change could not be carried out.
    taken = ra.call("POST", "/api/users", {"name": "sock-1", "role": "auditor"})
    assert (taken.status, taken.body["error"]["code"]) == (409, "conflict")
    same = ra.call("PATCH", "/api/users/sock-1", {"role": "approver"})
    assert (same.status, same.body["error"]["code"]) == (409, "conflict")

    approvals = [
        (r["actor"], r["target"], r["detail"]["approvals"], r["detail"]["kind"])
        for r in ra.call("GET", "/api/audit?limit=1000", role="auditor").body["items"]
        if r["action"] == "ra.request.approve"
    ]
    assert approvals == [
        ("ra:approver-user", f"request/{request['id']}", 1, "user.create"),
        ("ra:approver-2", f"request/{request['id']}", 2, "user.create"),
    ]
    approved = [
        r["detail"]["what"]
        for r in ra.call("GET", "/api/audit?limit=1000", role="auditor").body["items"]
        if r["action"] == "ra.request.approve"
    ]
    assert approved[0]["name"] == "sock-1" and "token_sha256" not in approved[0]
    created_by = [
        (r["actor"], r["result"])
        for r in ra.call("GET", "/api/audit?limit=1000", role="auditor").body["items"]
        if r["action"] == "ra.user.create" and r["target"] == "sock-1"
    ]
    # Carried out as its requester once approved; the second attempt refused.
    assert created_by[0] == ("ra:administrator-user", "ok")
    assert created_by[1][0] == "ra:administrator-user" and created_by[1][1] != "ok"
    assert len(created_by) == 2
