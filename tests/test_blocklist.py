"""The blocklist of compromised keys (CA/B Forum BR 6.1.1.3 (4)): fed by
every revocation that compromises a key, whatever the path, refused on
every issuance path, imported and checked from files."""

import base64
import dataclasses
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

import ca.hierarchy
import ca.issuance
import ca.token
from ca.blocklist import spki_sha256
from ca.blocklist_file import parse_blocklist_file
from ca.errors import BadInputError, KeyCompromisedError
from ca.reasons import RevocationReason
from ra.approvals import ApprovalPolicy
from ra.service import RAService
from store.tables.ca import cas, compromised_keys
from store.tables.ra import approval_requests
from tests.conftest import (
    FIXED_NOW,
    PASSPHRASE,
    counts,
    last_audit,
    make_csr,
    new_key,
    pem,
    run,
    self_signed,
)
from tests.ra_fixtures import OFFICER_ENTITY, start_ra

SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def listed(service) -> dict:
    return {e.spki_sha256: e for e in service.list_blocked_keys()}


def issue_for(service, key, profile="tls-server"):
    return service.issue("issuing", make_csr(key=key), profile)


def assert_refused(service, call):
    """``call`` is refused with key_compromised and writes no certificate."""
    before = counts(service)
    with pytest.raises(KeyCompromisedError) as caught:
        call()
    assert caught.value.code == "key_compromised"
    assert "is known to be compromised" in caught.value.message
    assert counts(service) == before
    assert last_audit(service).result == "refused"
    return caught.value


# -- what feeds it ----------------------------------------------------------------


def test_a_keycompromise_revocation_lists_the_key_and_csr_issuance_refuses_it(make_service):
    service = make_service(clock=lambda: FIXED_NOW)
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    key = new_key()
    record = issue_for(service, key)
    service.revoke("issuing", record.serial, RevocationReason.keyCompromise, actor="alice")
    digest = hashlib.sha256(key.public_key().public_bytes(*SPKI)).hexdigest()
    entry = listed(service)[digest]
    assert (entry.source, entry.ca, entry.serial, entry.reason) == (
        "revocation",
        "issuing",
        record.serial,
        RevocationReason.keyCompromise,
    )
    assert (entry.added_at, entry.actor, entry.note) == (FIXED_NOW, "alice", None)
    error = assert_refused(service, lambda: issue_for(service, key))
    assert digest in error.message and "revoked for keyCompromise" in error.message
    # Another profile, another CA of the same store: refused all the same.
    assert_refused(service, lambda: issue_for(service, key, "tls-client"))


@pytest.mark.parametrize(
    "reason",
    [
        RevocationReason.unspecified,
        RevocationReason.superseded,
        RevocationReason.affiliationChanged,
        RevocationReason.cessationOfOperation,
        RevocationReason.privilegeWithdrawn,
        RevocationReason.certificateHold,
    ],
)
def test_other_reasons_leave_the_key_usable(pki, reason):
    # A CA outside the Baseline Requirements: it may hold (ca/baseline.py).
    pki.create_sub("clients", "root", "CN=Clients", profile="client-sub-ca")
    key = new_key()
    record = pki.issue("clients", make_csr(key=key), "tls-client")
    pki.revoke("clients", record.serial, reason)
    assert listed(pki) == {}
    assert pki.issue("clients", make_csr(key=key), "tls-client").serial != record.serial


def test_a_hold_then_keycompromise_lists_the_key(pki):
    pki.create_sub("clients", "root", "CN=Clients", profile="client-sub-ca")
    key = new_key()
    record = pki.issue("clients", make_csr(key=key), "tls-client")
    pki.revoke("clients", record.serial, RevocationReason.certificateHold)
    assert listed(pki) == {}
    pki.revoke("clients", record.serial, RevocationReason.keyCompromise)
    assert set(listed(pki)) == {spki_sha256(key.public_key())}


def test_a_second_revocation_of_the_same_key_keeps_the_first_entry(pki):
    key = new_key()
    first = issue_for(pki, key)
    second = issue_for(pki, key)
    pki.revoke("issuing", first.serial, RevocationReason.keyCompromise)
    pki.revoke("issuing", second.serial, RevocationReason.keyCompromise)  # no clash
    (entry,) = listed(pki).values()
    assert entry.serial == first.serial
    assert pki.get_certificate("issuing", second.serial).status == "revoked"


def allow_ca_compromise(service) -> None:
    """Root and sub-CA profiles outside the Baseline Requirements, whose CA
    certificates may be revoked for cACompromise (BR 7.2.2 lists no such
    reason: the shipped ones refuse it)."""
    root, sub = service.profiles["root-ca"], service.profiles["sub-ca"]
    service.profiles["root-ca"] = dataclasses.replace(root, baseline_requirements=False)
    service.profiles["sub-ca"] = dataclasses.replace(
        sub,
        baseline_requirements=False,
        revocation_reasons=(*sub.revocation_reasons, "cACompromise"),
    )


def test_cacompromise_lists_a_ca_key_but_not_an_end_entitys(pki, tmp_path):
    """X.509's reasonCode: cACompromise on a CA certificate is that CA's key; on an
    end entity's certificate it speaks of the issuer. The listed CA key can
    then be neither imported nor made a CA again."""
    allow_ca_compromise(pki)
    sub = pki.create_sub("second", "root", "CN=Second")
    pki.revoke("root", sub.serial, RevocationReason.cACompromise)
    assert set(listed(pki)) == {spki_sha256(sub.certificate.public_key())}
    key_pem = (tmp_path / "keys" / "ca-second.key.pem").read_bytes()
    cert_pem = pem(sub.certificate)
    with pki.store.read() as conn:
        cas_before = conn.execute(select(func.count()).select_from(cas)).scalar()
    assert_refused(pki, lambda: pki.import_ca("again", cert_pem, key_pem, PASSPHRASE.encode()))
    with pki.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(cas)).scalar() == cas_before
    assert not (tmp_path / "keys" / "ca-again.key.pem").exists()


def test_keys_revoked_before_the_migration_are_listed_by_it(make_service):
    """Migration 0008 lists the keys of the certificates already revoked
    for keyCompromise (and of CA certificates for cACompromise): the same
    entries the revocations write now, apart from who."""
    service = make_service(clock=lambda: FIXED_NOW)
    allow_ca_compromise(service)
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    sub = service.create_sub("second", "root", "CN=Second")
    shared = new_key()
    compromised = [issue_for(service, shared, "tls-client") for _ in range(2)]
    for record in compromised:
        service.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    other = service.issue("issuing", make_csr(), "tls-client")
    service.revoke("issuing", other.serial, RevocationReason.superseded)
    service.revoke("root", sub.serial, RevocationReason.cACompromise)
    columns = [c for c in compromised_keys.c if c.name != "actor"]
    with service.store.read() as conn:
        written = sorted(conn.execute(select(*columns)).all())
    assert len(written) == 2
    service.store.downgrade("0007")
    service.store.upgrade()
    with service.store.read() as conn:
        assert sorted(conn.execute(select(*columns)).all()) == written
        assert set(conn.execute(select(compromised_keys.c.actor)).scalars()) == {"migration 0008"}


# -- every issuance path refuses a listed key --------------------------------------------


@pytest.fixture
def blocked_key(pki):
    """A key revoked for keyCompromise; and the CA."""
    key = new_key()
    pki.revoke("issuing", issue_for(pki, key).serial, RevocationReason.keyCompromise)
    return key


def test_keys_made_here_are_checked_too(pki, blocked_key, monkeypatch, tmp_path):
    """Server-side keys, OCSP signers, roots and sub-CAs: a new key is never
    listed but for a broken generator; cheap to check, so checked. A refused
    key made for a token is removed again."""
    monkeypatch.setattr(ca.issuance, "generate_private_key", lambda spec: blocked_key)
    monkeypatch.setattr(ca.token, "generate_private_key", lambda spec: blocked_key)
    assert_refused(pki, lambda: pki.issue_with_new_key("issuing", "tls-client", "CN=gen", []))
    before = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert_refused(pki, lambda: pki.issue_ocsp_signer("issuing"))
    assert_refused(pki, lambda: pki.create_sub("third", "root", "CN=Third"))
    with pytest.raises(KeyCompromisedError):
        pki.init_root("root2", "CN=Root 2", key_type="ec-p256")
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == before
    assert [ca.name for ca in pki.list_cas()] == ["root", "issuing"]


def test_importing_a_ca_with_a_listed_key_is_refused(pki, blocked_key):
    cert = self_signed(blocked_key, "Imported Root")
    key_pem = blocked_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert_refused(pki, lambda: pki.import_ca("imported", pem(cert), key_pem))
    assert not pki.token.has_key("ca-imported")


def test_ra_enrollment_renewal_and_approvals_refuse_a_listed_key(pki, blocked_key):
    ra = RAService(pki)
    ra.create_entity(**{k: v for k, v in OFFICER_ENTITY.items()})
    csr = make_csr("x", ("dns:web-1.example.com",), key=blocked_key)
    assert_refused(pki, lambda: ra.enroll("web-1", csr=csr))
    # A renewal for the same key, of a certificate issued before another with
    # that key was revoked for keyCompromise.
    other = new_key()
    earlier = ra.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",), key=other))
    pki.revoke(
        "issuing", issue_for(pki, other, "tls-client").serial, RevocationReason.keyCompromise
    )
    assert_refused(pki, lambda: ra.renew("issuing", earlier.certificate.serial))
    # With approvals, the request is refused before any approver sees it.
    queued = RAService(pki, ApprovalPolicy(issue=2))
    with pytest.raises(KeyCompromisedError):
        queued.enroll("web-1", csr=csr)
    with pki.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(approval_requests)).scalar() == 0


def test_an_approved_request_is_refused_when_its_key_was_listed_meanwhile(pki):
    ra = RAService(pki, ApprovalPolicy(issue=1))
    ra.create_entity(**OFFICER_ENTITY)
    ra.users.create("bob", "approver")
    key = new_key()
    request = ra.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",), key=key))
    pki.revoke("issuing", issue_for(pki, key).serial, RevocationReason.keyCompromise)
    before = counts(pki)
    finished = ra.approve(request.id, actor="bob")
    assert finished.status == "failed" and "is known to be compromised" in finished.note
    assert counts(pki) == before


def test_ra_revocations_feed_the_blocklist(pki):
    """The RA's revocation, directly and through approvals, is the CA's."""
    ra = RAService(pki)
    ra.create_entity(**OFFICER_ENTITY)
    key = new_key()
    record = ra.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",), key=key))
    ra.revoke("issuing", record.certificate.serial, "keyCompromise")
    assert spki_sha256(key.public_key()) in listed(pki)
    approved = RAService(pki, ApprovalPolicy(revoke=1))
    ra.users.create("carol", "approver")
    other = new_key()
    second = ra.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",), key=other))
    request = approved.revoke("issuing", second.certificate.serial, "keyCompromise", actor="dave")
    assert spki_sha256(other.public_key()) not in listed(pki)
    assert approved.approve(request.id, actor="carol").status == "done"
    assert spki_sha256(other.public_key()) in listed(pki)


def test_the_api_answers_422_key_compromised(loop, make_service):
    pki = make_service()
    pki.init_root("root", "CN=Root")
    pki.create_sub("issuing", "root", "CN=Issuing")
    env, runner = start_ra(loop, pki)
    try:
        assert env.call("POST", "/api/entities", OFFICER_ENTITY, role="ra-officer").status == 201
        key = new_key()
        csr = make_csr("x", ("dns:web-1.example.com",), key=key).decode()
        enrolled = env.call("POST", "/api/entities/web-1/enroll", {"csr": csr}, role="ra-officer")
        serial = enrolled.body["certificate"]["serial"]
        revoked = env.call(
            "POST",
            f"/api/certificates/issuing/{serial}/revoke",
            {"reason": "keyCompromise"},
            role="ra-officer",
        )
        assert revoked.status == 200, revoked.body
        before = counts(pki)
        again = env.call("POST", "/api/entities/web-1/enroll", {"csr": csr}, role="ra-officer")
        assert (again.status, again.body["error"]["code"]) == (422, "key_compromised")
        assert counts(pki) == before
    finally:
        loop.run(runner.cleanup())


def test_the_same_store_on_postgresql(make_service, postgres_url):
    """ON CONFLICT DO NOTHING on PostgreSQL: a key listed twice keeps its first entry."""
    service = make_service(url=postgres_url)
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    key = new_key()
    first, second = issue_for(service, key), issue_for(service, key)
    service.revoke("issuing", first.serial, RevocationReason.keyCompromise)
    service.revoke("issuing", second.serial, RevocationReason.keyCompromise)
    assert [e.serial for e in service.list_blocked_keys()] == [first.serial]
    assert_refused(service, lambda: issue_for(service, key))
    assert service.import_blocked_keys([spki_sha256(key.public_key())], "dup", actor="t") == (0, 1)


# -- the file format -----------------------------------------------------------------------


def test_every_format_names_the_same_key(tmp_path):
    key = new_key("rsa-2048")
    digest = spki_sha256(key.public_key())
    public = key.public_key()
    text = b"\n".join(
        [
            b"# leaked keys, 2026-12",
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
            pem(self_signed(key, "leaked")),
            make_csr(key=key),
            digest.upper().encode() + b"   # from a vendor advisory",
            b":".join(digest[i : i + 2].encode() for i in range(0, 64, 2)),
            b"",
        ]
    )
    entries = parse_blocklist_file(text)
    assert [e.kind for e in entries] == [
        "public key",
        "public key",
        "certificate",
        "certificate request",
        "hash",
        "hash",
    ]
    assert {e.spki_sha256 for e in entries} == {digest}
    assert entries[0].line == 2


def test_an_ec_key_hashes_as_openssl_writes_its_spki():
    """The name is the SHA-256 of the DER SPKI, EC point uncompressed."""
    key = new_key("ec-p256")
    compressed = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    # The same key with a compressed point in its SPKI (RFC 5480 2.2 allows it).
    spki = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200") + compressed
    block = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(spki)
    block += b"-----END PUBLIC KEY-----\n"
    (entry,) = parse_blocklist_file(block)
    assert entry.spki_sha256 == hashlib.sha256(key.public_key().public_bytes(*SPKI)).hexdigest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"a" * 64 + b"\n" + b"a" * 63 + b"\n", "line 2: neither a SHA-256 hash"),
        (b"\n\nzz" + b"a" * 62 + b"\n", "line 3: neither a SHA-256 hash"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "line 1: a PRIVATE KEY block is not a public key, certificate or certificate "
            "request (give its public key",
        ),
        (
            b"# x\n-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            "line 2: a X509 CRL block is not",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
            "line 1: the CERTIFICATE block has no -----END CERTIFICATE----- line",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "line 1: the certificate cannot be read",
        ),
        (b"-----END PUBLIC KEY-----\n", "line 1: an END line without its BEGIN line"),
        ("# clé\n".encode(), "line 1: not ASCII text"),
        (b"# only comments\n\n", "the file holds no key"),
        (b"", "the file holds no key"),
    ],
)
def test_bad_files_are_refused_with_the_line(text, message):
    with pytest.raises(BadInputError) as caught:
        parse_blocklist_file(text)
    assert caught.value.message.startswith(message), caught.value.message


def test_an_import_needs_a_note_and_lists_each_key_once(pki):
    digests = [spki_sha256(new_key().public_key()) for _ in range(3)]
    with pytest.raises(BadInputError, match="needs a note"):
        pki.import_blocked_keys(digests, "  ", actor="t")
    assert listed(pki) == {}
    assert pki.import_blocked_keys([*digests, digests[0]], "advisory 7", actor="t") == (3, 1)
    assert pki.import_blocked_keys(digests[:1], "again", actor="t") == (0, 1)
    assert {e.note for e in listed(pki).values()} == {"advisory 7"}
    assert last_audit(pki).action == "ca.blocklist.import"


# -- the command line -----------------------------------------------------------------------


def test_cli_revoke_then_issue_and_enroll_are_refused(cli_pki):
    tmp = cli_pki
    key = new_key()
    (tmp / "req.pem").write_bytes(make_csr("web.example.com", ("dns:web.example.com",), key=key))
    issued = run(
        tmp, "ca", "issue", "--ca", "issuing", "--profile", "tls-server", "--csr", "req.pem"
    )
    serial = issued.stderr.decode().split("issued serial ")[1].split()[0]
    revoked = run(
        tmp, "ca", "revoke", "--ca", "issuing", "--serial", serial, "--reason", "keyCompromise"
    )
    assert revoked.returncode == 0, revoked.stderr
    again = run(
        tmp, "ca", "issue", "--ca", "issuing", "--profile", "tls-server", "--csr", "req.pem"
    )
    assert again.returncode == 4, again.stderr
    assert b"is known to be compromised" in again.stderr
    created = run(
        tmp,
        *("ra", "entity", "create", "--name", "web", "--email", "ops@example.com"),
        *("--ca", "issuing", "--profile", "tls-server"),
        *("--subject-template", "CN={name}.example.com", "--allow-san", "dns:web.example.com"),
    )
    assert created.returncode == 0, created.stderr
    enrolled = run(tmp, "ra", "enroll", "--entity", "web", "--csr", "req.pem")
    assert enrolled.returncode == 4 and b"is known to be compromised" in enrolled.stderr
    # The RA's revocation from the command line feeds it too.
    other = new_key()
    (tmp / "other.pem").write_bytes(make_csr("x", ("dns:web.example.com",), key=other))
    done = run(tmp, "ra", "enroll", "--entity", "web", "--csr", "other.pem", "--out", "o.pem")
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificate((tmp / "o.pem").read_bytes())
    ra_revoked = run(
        tmp,
        *("ra", "revoke", "--ca", "issuing", "--serial", f"{cert.serial_number:x}"),
        *("--reason", "keyCompromise"),
    )
    assert ra_revoked.returncode == 0, ra_revoked.stderr
    listing = json.loads(run(tmp, "ca", "blocklist", "list", "--json").stdout)
    assert {e["spki_sha256"] for e in listing} == {
        spki_sha256(key.public_key()),
        spki_sha256(other.public_key()),
    }
    assert {e["reason"] for e in listing} == {"keyCompromise"}


def test_cli_import_list_and_check(cli_pki):
    tmp = cli_pki
    leaked, clean = new_key(), new_key()
    (tmp / "leaked.txt").write_bytes(
        b"# from the advisory\n"
        + leaked.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        + b"\n"
        + b"ab" * 32
        + b"\n"
    )
    (tmp / "bad.txt").write_bytes(b"cd" * 32 + b"\nnot a hash\n")
    bad = run(tmp, "ca", "blocklist", "import", "bad.txt", "--note", "x")
    assert bad.returncode == 5 and b"line 2: neither a SHA-256 hash" in bad.stderr
    assert json.loads(run(tmp, "ca", "blocklist", "list", "--json").stdout) == []
    imported = run(tmp, "ca", "blocklist", "import", "leaked.txt", "--note", "advisory", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"keys": 2, "added": 2, "already_listed": 0}
    header, *table = run(tmp, "ca", "blocklist", "list").stdout.decode().splitlines()
    assert header.split() == ["SPKI", "SHA-256", "ADDED", "AT", "ACTOR", "WHY"]
    assert len(table) == 2 and all(line.endswith("  imported: advisory") for line in table)
    (tmp / "req.pem").write_bytes(make_csr(key=leaked))
    (tmp / "clean.pem").write_bytes(make_csr(key=clean))
    found = run(tmp, "ca", "blocklist", "check", "req.pem", "--json")
    assert found.returncode == 4
    assert json.loads(found.stdout)[0]["listed"] is True
    fine = run(tmp, "ca", "blocklist", "check", "clean.pem")
    assert fine.returncode == 0 and b"not listed" in fine.stdout
    refused = run(
        tmp, "ca", "issue", "--ca", "issuing", "--profile", "tls-server", "--csr", "req.pem"
    )
    assert refused.returncode == 4 and b"imported: advisory" in refused.stderr
    assert run(tmp, "audit", "verify").returncode == 0
