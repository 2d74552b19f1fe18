"""The audit log against someone who can write to the database but holds no
key: every rewrite below is what such a person can do (recompute hashes,
move the head, edit the certificates table), and `revoca audit verify`
must exit 9 naming it; an untouched log exits 0."""

import json
import shutil
import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, update

from ca.reasons import RevocationReason
from ca.records import serial_hex
from store import audit
from store.audit_checkpoint import CHECKPOINT_FILE
from store.audit_checkpoint import advance as advance_checkpoint
from store.audit_key import KEY_FILE, AuditKey
from store.errors import AuditKeyError
from store.tables.audit import audit_head, audit_log
from store.tables.ca import certificates
from tests.conftest import FIXED_NOW, PASSPHRASE, counts, make_csr, run


@pytest.fixture
def node(tmp_path, make_service):
    """A CA node where `revoca --data-dir tmp/data` finds it: a root, an
    issuing CA, certificates good, revoked, on hold, and released."""
    service = make_service(directory=tmp_path / "data")
    service.init_root("root", "CN=Audit Root")
    # Holds only outside the Baseline Requirements (ca/baseline.py).
    service.create_sub("issuing", "root", "CN=Audit Issuing", profile="client-sub-ca")
    issued = [
        service.issue("issuing", make_csr(f"a{i}", [f"email:a{i}@example.com"]), "tls-client")
        for i in range(4)
    ]
    service.revoke("issuing", issued[0].serial, RevocationReason.keyCompromise)
    service.revoke("issuing", issued[1].serial, RevocationReason.certificateHold)
    service.revoke("issuing", issued[2].serial, RevocationReason.certificateHold)
    service.release_hold("issuing", issued[2].serial)
    service.issued = issued
    service.dir = tmp_path
    return service


def verify_cli(node, *args):
    result = run(node.dir, "audit", "verify", *args)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def tampered_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(("TAMPERED", "MISMATCH"))]


def rehash_from(conn, first: int) -> None:
    """Recompute the hash chain from record ``first`` on and the head's hash,
    as anyone who can write to the database can (no key needed)."""
    prev_hash = conn.execute(
        select(audit_log.c.hash).where(audit_log.c.seq == first - 1)
    ).scalar() or ("0" * 64)
    for row in conn.execute(select(audit_log).where(audit_log.c.seq >= first).order_by("seq")):
        canonical = audit._canonical(
            row.seq, row.at_ms, row.actor, row.action, row.target, row.result, row.detail
        )
        digest = audit._hash(prev_hash, canonical)
        conn.execute(
            update(audit_log)
            .where(audit_log.c.seq == row.seq)
            .values(prev_hash=prev_hash, hash=digest)
        )
        prev_hash = digest
    conn.execute(update(audit_head).values(hash=prev_hash))


def released_at(service, seq: int) -> str:
    """The revocation time audit record ``seq`` gives, as the replay prints it."""
    with service.store.read() as conn:
        detail = json.loads(
            conn.execute(select(audit_log.c.detail).where(audit_log.c.seq == seq)).scalar_one()
        )
    return detail["revoked_at"].replace("+00:00", "Z")


def last_seq(service) -> int:
    with service.store.read() as conn:
        return audit.record_count(conn)


def test_an_untouched_log_exits_0(node):
    code, out, err = verify_cli(node)
    assert code == 0, out + err
    assert tampered_lines(out) == []
    assert f"audit log intact: {last_seq(node)} records; {last_seq(node)} keyed" in out
    assert "5 certificates replayed, 0 differ from the log" in out  # the sub-CA and 4 leaves
    report = json.loads(verify_cli(node, "--json")[1])
    assert report["intact"] and report["mismatches"] == [] and report["problems"] == []
    assert report["keyed"] == report["records"] == last_seq(node)
    assert report["checkpoints"] == [
        {"file": str(node.dir / "data" / "keys" / CHECKPOINT_FILE), "seq": last_seq(node)}
    ]


def test_an_edited_record_with_its_hashes_recomputed_exits_9(node):
    with node.store.transaction() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(actor="cli:mallory"))
        rehash_from(conn, 3)
    code, out, _ = verify_cli(node)
    assert code == 9
    assert tampered_lines(out) == [
        "TAMPERED record 3: its MAC does not verify: it, or a record before it, was edited "
        "and its hash recomputed, or it was written without the key"
    ]


def test_dropping_the_last_record_and_moving_the_head_back_exits_9(node):
    end = last_seq(node)
    with node.store.transaction() as conn:
        previous = conn.execute(select(audit_log).where(audit_log.c.seq == end - 1)).one()
        conn.execute(delete(audit_log).where(audit_log.c.seq == end))
        # The head as it was when end - 1 was the last record, but for its MAC.
        conn.execute(update(audit_head).values(seq=end - 1, hash=previous.hash, mac=previous.mac))
    code, out, _ = verify_cli(node)
    assert code == 9
    released = node.issued[2]
    assert tampered_lines(out) == [
        f"TAMPERED record {end - 1}: the chain head's MAC does not verify: records were cut "
        "off the end and the head moved back, or the head was edited",
        f"TAMPERED record {end}: missing: the log ends at record {end - 1}, but the checkpoint "
        f"{node.dir / 'data' / 'keys' / CHECKPOINT_FILE} records record {end} (records removed "
        "from the end)",
        # The dropped record was a release from hold: the replay misses it too.
        f"MISMATCH issuing/{serial_hex(released.serial)} is good in the certificates table, hold "
        f"(certificateHold, since {released_at(node, end - 1)}) by the audit log "
        f"(record {end - 1})",
    ]
    # Without this node's checkpoint the head's MAC still gives it away.
    (node.dir / "data" / "keys" / CHECKPOINT_FILE).unlink()
    code, out, _ = verify_cli(node)
    assert code == 9 and len(tampered_lines(out)) == 2
    assert "the chain head's MAC does not verify" in out


def test_a_log_cut_back_to_a_head_that_really_existed_is_caught_by_the_checkpoint(node):
    """A head saved earlier (or a restored backup) carries a valid MAC: only
    the checkpoint outside the database knows the log went further."""
    with node.store.read() as conn:
        saved = conn.execute(select(audit_head)).one()
    node.issue("issuing", make_csr("later", ["email:later@example.com"]), "tls-client")
    with node.store.transaction() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq > saved.seq))
        conn.execute(update(audit_head).values(seq=saved.seq, hash=saved.hash, mac=saved.mac))
        conn.execute(delete(certificates).where(certificates.c.subject == "CN=later"))
    code, out, _ = verify_cli(node)
    assert code == 9
    assert tampered_lines(out) == [
        f"TAMPERED record {saved.seq + 1}: missing: the log ends at record {saved.seq}, but "
        f"the checkpoint {node.dir / 'data' / 'keys' / CHECKPOINT_FILE} records record "
        f"{saved.seq + 1} (records removed from the end)"
    ]


def test_flipping_a_revoked_certificate_to_good_exits_9(node):
    revoked = node.issued[0]
    with node.store.transaction() as conn:
        conn.execute(
            update(certificates)
            .where(certificates.c.serial == f"{revoked.serial:040x}")
            .values(status="good", revoked_at=None, revocation_reason=None)
        )
    code, out, _ = verify_cli(node)
    assert code == 9
    [line] = tampered_lines(out)
    assert line.startswith(f"MISMATCH issuing/{serial_hex(revoked.serial)} ")
    assert "is good in the certificates table, revoked (keyCompromise, since " in line
    report = json.loads(verify_cli(node, "--json")[1])
    assert not report["intact"] and report["problems"] == []
    [mismatch] = report["mismatches"]
    assert mismatch["table"] == {
        "status": "good",
        "reason": None,
        "revoked_at": None,
        "invalidity_date": None,
    }
    assert mismatch["audit"]["status"] == "revoked"
    assert mismatch["audit"]["reason"] == "keyCompromise"


def test_every_kind_of_status_edit_is_a_mismatch(node):
    good, _, held_then_released, _ = node.issued
    held = node.issued[1]
    with node.store.transaction() as conn:
        # A hold made a revocation, a release undone, a row deleted, one made up.
        conn.execute(
            update(certificates)
            .where(certificates.c.serial == f"{held.serial:040x}")
            .values(status="revoked")
        )
        conn.execute(
            update(certificates)
            .where(certificates.c.serial == f"{held_then_released.serial:040x}")
            .values(status="hold", revoked_at=1, revocation_reason=6)
        )
        row = conn.execute(
            select(certificates).where(certificates.c.serial == f"{good.serial:040x}")
        ).one()
        conn.execute(delete(certificates).where(certificates.c.id == row.id))
        made_up = {k: v for k, v in row._mapping.items() if k != "id"}
        made_up.update(serial=f"{0xBADC0DE:040x}", fingerprint="f" * 64)
        conn.execute(insert(certificates).values(**made_up))
    code, out, _ = verify_cli(node)
    assert code == 9
    lines = tampered_lines(out)
    assert len(lines) == 4, out
    text = "\n".join(lines)
    assert "is revoked (certificateHold, since" in text  # the table's word against the log's
    assert "hold (certificateHold, since 1970-01-01T00:00:01Z) in the certificates table" in text
    assert "is not in the certificates table (deleted?)" in text
    assert "issuing/0badc0de is in the certificates table, but no audit record issued it" in text


def test_records_from_before_the_key_are_checked_by_the_hash_chain(tmp_path, make_service):
    """A store upgraded to migration 0008: its records carry no MAC, verify
    reports them as unkeyed, and the first keyed record fixes them too."""
    service = make_service(directory=tmp_path / "data")
    service.init_root("root", "CN=Old Root")
    service.create_sub("issuing", "root", "CN=Old Issuing")
    with service.store.transaction() as conn:  # as an older version wrote them
        conn.execute(update(audit_log).values(mac=None))
        conn.execute(update(audit_head).values(mac=None))
    (tmp_path / "data" / "keys" / KEY_FILE).unlink()
    (tmp_path / "data" / "keys" / CHECKPOINT_FILE).unlink()
    service = make_service(directory=tmp_path / "data")  # a node that never had a key
    service.issue("issuing", make_csr(), "tls-server")  # makes the key
    assert (tmp_path / "data" / "keys" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    code, out, _ = verify_cli(type("N", (), {"dir": tmp_path}))
    assert code == 0, out
    assert "audit log intact: 3 records; 1-2 unkeyed (hash chain only, before the key); " in out
    assert "1 keyed (HMAC-SHA256, key " in out
    # An unkeyed record rewritten, hashes recomputed: the keyed one after it objects.
    with service.store.transaction() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 1).values(actor="cli:mallory"))
        rehash_from(conn, 1)
    code, out, _ = verify_cli(type("N", (), {"dir": tmp_path}))
    assert code == 9 and "TAMPERED record 3: its MAC does not verify" in out


def test_macs_removed_and_records_rewritten_are_caught(node):
    """Without the key, the only way to rewrite keyed records is to drop the
    MACs; a record after a keyed one, and the checkpoint, tell."""
    end = last_seq(node)
    with node.store.transaction() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq >= 5).values(mac=None))
        conn.execute(update(audit_head).values(mac=None))
    code, out, _ = verify_cli(node)
    assert code == 9
    lines = tampered_lines(out)
    assert lines[0] == "TAMPERED record 5: has no MAC but follows keyed records (MAC removed?)"
    assert f"TAMPERED record {end}: differs from the checkpoint" in lines[-1]
    # All of them, as if the log had never been keyed: the checkpoint still knows.
    with node.store.transaction() as conn:
        conn.execute(update(audit_log).values(mac=None))
    code, out, _ = verify_cli(node)
    assert code == 9
    assert tampered_lines(out) == [
        f"TAMPERED record {end}: differs from the checkpoint "
        f"{node.dir / 'data' / 'keys' / CHECKPOINT_FILE} (replaced, or its MAC removed)"
    ]


def test_an_edited_checkpoint_fails_its_mac(node):
    path = node.dir / "data" / "keys" / CHECKPOINT_FILE
    checkpoint = json.loads(path.read_text())
    path.write_text(json.dumps({**checkpoint, "seq": checkpoint["seq"] - 3}))
    code, out, _ = verify_cli(node)
    assert code == 9
    assert tampered_lines(out) == [
        f"TAMPERED the audit checkpoint {path} fails its MAC (edited, or made with another key)"
    ]


def test_the_checkpoint_only_moves_forward(node):
    path = node.dir / "data" / "keys" / CHECKPOINT_FILE
    before = path.read_bytes()
    key = node.audit.key.load()
    advance_checkpoint(path, key, 2, "00" * 32)  # an older record, committed late
    assert path.read_bytes() == before
    # A refused change (rolled back) leaves it, and the log, where they were.
    with pytest.raises(Exception, match="already revoked"):
        node.revoke("issuing", node.issued[0].serial, RevocationReason.superseded)
    assert json.loads(path.read_text())["seq"] == last_seq(node)  # the refusal's own record


def test_a_missing_key_where_the_log_is_keyed_is_a_clear_error(node):
    (node.dir / "data" / "keys" / KEY_FILE).unlink()
    code, _, err = verify_cli(node)
    assert code == 6
    assert f"but there is no audit key at {node.dir / 'data' / 'keys' / KEY_FILE}" in err
    (node.dir / "req.pem").write_bytes(make_csr())
    before = counts(node)
    issue = run(
        node.dir, "ca", "issue", "--ca", "issuing", "--profile", "tls-client", "--csr", "req.pem"
    )
    assert issue.returncode == 6
    assert b"the audit log is keyed (up to record" in issue.stderr
    assert b"every node writing to this store needs a copy of the same key file" in issue.stderr
    assert b"Traceback" not in issue.stderr
    assert counts(node) == before
    assert not (node.dir / "data" / "keys" / KEY_FILE).exists()  # no new key over a keyed log


def test_the_key_file_is_sealed_and_private(node):
    path = node.dir / "data" / "keys" / KEY_FILE
    key = node.audit.key.load()
    assert path.stat().st_mode & 0o777 == 0o600
    assert key not in path.read_bytes() and key.hex().encode() not in path.read_bytes()
    wrong = AuditKey(path, lambda: b"not the passphrase")
    with pytest.raises(AuditKeyError, match="does not open with this passphrase"):
        wrong.load()
    path.chmod(0o640)
    with pytest.raises(AuditKeyError, match="must be mode 0600"):
        AuditKey(path, lambda: PASSPHRASE.encode()).load()


def test_nodes_sharing_a_store_share_the_key(node, tmp_path, make_service):
    """A second node on the same store: without the key it writes nothing;
    with a key of its own it is refused; with a copy of the first node's
    file its records verify with the first node's key."""
    url = f"sqlite:///{tmp_path / 'data' / 'revoca.db'}"
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "data" / "keys", other / "keys")  # the CA keys, not the audit key
    (other / "keys" / KEY_FILE).unlink()
    (other / "keys" / CHECKPOINT_FILE).unlink()
    second = make_service(directory=other, url=url)
    csr = make_csr("second", ["email:second@example.com"])
    with pytest.raises(AuditKeyError, match="no audit key at"):
        second.issue("issuing", csr, "tls-client")
    assert not (other / "keys" / KEY_FILE).exists()
    AuditKey(other / "keys" / KEY_FILE, lambda: PASSPHRASE.encode()).create()
    second = make_service(directory=other, url=url)
    with pytest.raises(AuditKeyError, match="does not verify the audit log's head"):
        second.issue("issuing", csr, "tls-client")
    shutil.copy2(tmp_path / "data" / "keys" / KEY_FILE, other / "keys" / KEY_FILE)
    second = make_service(directory=other, url=url)
    second.issue("issuing", csr, "tls-client")
    node.issue("issuing", make_csr("first", ["email:first@example.com"]), "tls-client")
    code, out, _ = verify_cli(node, "--checkpoint", str(other / "keys" / CHECKPOINT_FILE))
    assert code == 0, out
    assert out.count("checkpoint at record") == 2


def test_check_key_makes_the_key_for_a_new_node_and_refuses_a_wrong_one(tmp_path, make_service):
    service = make_service(directory=tmp_path / "data")
    fingerprint = service.audit.check_key()  # what `revoca serve` does first
    assert (tmp_path / "data" / "keys" / KEY_FILE).exists()
    service.init_root("root", "CN=Root")
    assert service.audit.check_key() == fingerprint
    (tmp_path / "data" / "keys" / KEY_FILE).unlink()
    AuditKey(tmp_path / "data" / "keys" / KEY_FILE, lambda: PASSPHRASE.encode()).create()
    with pytest.raises(AuditKeyError, match="does not verify the audit log's head"):
        make_service(directory=tmp_path / "data").audit.check_key()


def _large_log(service, *, certificates_n: int, revoked_n: int, records: int) -> None:
    """``records`` audit records in one transaction: the issuance of
    ``certificates_n`` certificates (rows made here, as a bulk load would),
    ``revoked_n`` revocations, and RA record updates to make up the rest."""
    ca = service.get_ca("issuing")
    key = service.audit.key
    revoked_at = FIXED_NOW - timedelta(days=1)
    with service.store.transaction() as conn:
        rows = [
            {
                "ca_id": ca.id,
                "serial": f"{0x4000_0000 + i:040x}",
                "subject": f"CN=bulk{i}",
                "sans": "[]",
                "not_before": 1_700_000_000,
                "not_after": 1_900_000_000,
                "status": "revoked" if i < revoked_n else "good",
                "revoked_at": int(revoked_at.timestamp()) if i < revoked_n else None,
                "revocation_reason": 4 if i < revoked_n else None,
                "profile": "tls-client",
                "key_type": "ec-p256",
                "fingerprint": f"{i:064x}",
                "der": b"\x30\x00",
                "issued_at": 1_700_000_000,
            }
            for i in range(certificates_n)
        ]
        conn.execute(insert(certificates), rows)

        def add(action, target, **detail):
            audit.append(
                conn,
                key,
                at_ms=1,
                actor="bulk",
                action=action,
                target=target,
                result="ok",
                detail=detail,
            )

        for i in range(certificates_n):
            add("ca.issue", f"issuing/{0x4000_0000 + i:x}", profile="tls-client")
        for i in range(revoked_n):
            add(
                "ca.revoke",
                f"issuing/{0x4000_0000 + i:x}",
                reason="superseded",
                revoked_at=revoked_at.isoformat(),
                status="revoked",
                invalidity_date=None,
                previous_status="good",
            )
        while audit.record_count(conn) < records:
            add("ra.entity.update", "web", changes=["email"])


def test_a_large_log_verifies_fast_and_3009_flips_are_each_reported(node):
    _large_log(node, certificates_n=3_500, revoked_n=3_009, records=10_000)
    assert last_seq(node) == 10_000
    started = time.monotonic()
    with node.store.read() as conn:
        report = audit.verify(conn, node.audit.key)
    in_process = time.monotonic() - started
    assert report.records == report.keyed == 10_000 and report.problems == []
    started = time.monotonic()
    code, out, err = verify_cli(node)
    whole_command = time.monotonic() - started
    assert code == 0, out + err
    assert "3505 certificates replayed, 0 differ from the log" in out
    # Measured on 2 shared vCPUs: about 0.25 s in process, 1.5 s for the command.
    assert in_process < 5 and whole_command < 20, (in_process, whole_command)

    with node.store.transaction() as conn:
        conn.execute(
            update(certificates)
            .where(certificates.c.profile == "tls-client", certificates.c.status == "revoked")
            .where(certificates.c.subject.like("CN=bulk%"))
            .values(status="good", revoked_at=None, revocation_reason=None)
        )
    code, out, _ = verify_cli(node)
    assert code == 9
    lines = tampered_lines(out)
    assert len(lines) == 3_009
    assert all("is good in the certificates table, revoked (superseded, " in x for x in lines)
    assert "3505 certificates replayed, 3009 differ from the log" in out


def test_a_long_verify_shows_progress_on_stderr(node, monkeypatch):
    from click.testing import CliRunner

    from revoca import cli

    monkeypatch.setattr(cli, "PROGRESS_FROM", 5)
    result = CliRunner().invoke(
        cli.cli, ["--data-dir", str(node.dir / "data"), "audit", "verify"], obj={}
    )
    assert result.exit_code == 0, result.output
    assert "verifying" in result.stderr and "verifying" not in result.stdout
