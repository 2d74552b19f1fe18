"""The SQL store: migrations, atomic changes, full disks, the audit chain."""

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, select, text, update

from ca.errors import StoreError
from store import SchemaError, Store, audit
from store.tables import include_object, metadata
from store.tables.audit import audit_log
from tests.conftest import counts, make_csr


def test_migrations_build_exactly_the_declared_schema(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    assert store.current_revision() == store.head_revision() == "0012"
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        assert compare_metadata(context, metadata) == []


def test_downgrade_and_upgrade_again(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    store.downgrade("base")
    assert store.current_revision() is None
    store.upgrade()
    assert store.current_revision() == "0012"


def test_migration_0010_fills_keys_and_name_sets_from_the_der(make_service):
    """An existing store gains spki_sha256 and names_sha256 for every
    certificate: the same values issuance writes (ca/records.py)."""
    from store.tables.ca import certificates
    from tests.conftest import FIXED_NOW

    service = make_service(clock=lambda: FIXED_NOW)
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    for i in range(3):
        service.issue("issuing", make_csr(f"m{i}.example", [f"dns:m{i}.example"]), "tls-server")
    columns = (certificates.c.serial, certificates.c.spki_sha256, certificates.c.names_sha256)
    with service.store.read() as conn:
        written = sorted(conn.execute(select(*columns)).all())
    assert len(written) == 4 and all(spki and names for _, spki, names in written)
    assert len({spki for _, spki, _ in written}) == 4
    service.store.downgrade("0009")
    service.store.upgrade()
    with service.store.read() as conn:
        assert sorted(conn.execute(select(*columns)).all()) == written


def test_migration_0003_fills_each_certificates_last_status_change(make_service):
    """An existing store gains status_seq/status_changed_at from its outbox:
    the same values the service writes for new changes."""
    from ca.reasons import RevocationReason
    from store.tables.ca import certificates
    from tests.conftest import FIXED_NOW

    service = make_service(clock=lambda: FIXED_NOW)
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing", profile="client-sub-ca")  # may hold
    serials = [
        service.issue("issuing", make_csr(f"m{i}", [f"dns:m{i}.example"]), "tls-client").serial
        for i in range(4)
    ]
    service.revoke("issuing", serials[0], RevocationReason.keyCompromise)
    service.revoke("issuing", serials[1], RevocationReason.certificateHold)
    service.revoke("issuing", serials[2], RevocationReason.certificateHold)
    service.release_hold("issuing", serials[2])
    service.revoke("issuing", serials[1], RevocationReason.superseded)  # hold, then revoked
    columns = (certificates.c.serial, certificates.c.status_seq, certificates.c.status_changed_at)
    with service.store.read() as conn:
        written = sorted(conn.execute(select(*columns)).all())
    assert sum(seq is not None for _, seq, _ in written) == 3
    service.store.downgrade("0002")
    service.store.upgrade()
    with service.store.read() as conn:
        assert sorted(conn.execute(select(*columns)).all()) == written


def test_refuses_an_old_schema_without_auto_migrate(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    Store.open(url).downgrade("base")
    with pytest.raises(SchemaError, match="has no schema yet, this version needs") as caught:
        Store.open(url, auto_migrate=False)
    assert caught.value.code == "schema_outdated" and "revoca" not in caught.value.message


def test_store_file_is_private(tmp_path):
    Store.open(f"sqlite:///{tmp_path / 'sub' / 'p.db'}")
    assert (tmp_path / "sub" / "p.db").stat().st_mode & 0o777 == 0o600


def test_a_failure_inside_the_transaction_leaves_nothing(pki, monkeypatch):
    before = counts(pki)

    def broken_append(*args, **kwargs):
        raise sqlite3.OperationalError("simulated failure")

    with monkeypatch.context() as m:
        m.setattr(audit, "append", broken_append)
        with pytest.raises(Exception, match="simulated failure"):
            pki.issue("issuing", make_csr(), "tls-server")
    assert counts(pki) == before


def test_full_disk_is_a_clear_error_and_changes_nothing(pki):
    before = counts(pki)
    with pki.store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    with pki.store.engine.connect() as conn:
        # Cap the (pooled, reused) connection at the file's current size: the
        # next write that needs a new page finds the disk full.
        conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
    big_sans = [f"dns:host{i}.example.com" for i in range(100)]
    with pytest.raises(StoreError, match="the disk holding the database is full"):
        for _ in range(50):
            pki.issue("issuing", make_csr("host0.example.com", big_sans), "tls-server")
    pki.store.engine.dispose()  # new connections: no page cap
    after = counts(pki)
    assert after["certificates"] - before["certificates"] == after["outbox"] - before["outbox"]


def test_after_commit_runs_once_the_transaction_committed(tmp_path):
    from store.store import after_commit

    store = Store.open(f"sqlite:///{tmp_path / 'h.db'}")
    ran = []
    with store.transaction() as conn:
        after_commit(conn, lambda: ran.append("first"), name="checkpoint")
        after_commit(conn, lambda: ran.append("newer"), name="checkpoint")  # replaces it
        after_commit(conn, lambda: ran.append("other"))
        assert ran == []
    assert ran == ["newer", "other"]
    with pytest.raises(RuntimeError), store.transaction() as conn:
        after_commit(conn, lambda: ran.append("rolled back"))
        raise RuntimeError("rolled back")
    with store.read() as conn:  # not a Store.transaction: nothing registered
        assert not after_commit(conn, lambda: ran.append("read"))
    with store.transaction():
        pass
    assert ran == ["newer", "other"]


def _verify(service):
    with service.store.read() as conn:
        report = audit.verify(conn, service.audit.key)
    return report.records, report.problems


def test_audit_chain_detects_edit_remove_reorder(pki):
    for _ in range(3):
        pki.issue("issuing", make_csr(), "tls-server")
    count, problems = _verify(pki)
    assert count == 5 and problems == []

    with pki.store.transaction() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory"))
    count, problems = _verify(pki)
    assert [p.seq for p in problems] == [3]
    assert "edited" in problems[0].message
    with pki.store.transaction() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(actor="system"))
    assert _verify(pki)[1] == []

    with pki.store.transaction() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
    problems = _verify(pki)[1]
    assert problems and problems[0].seq == 3 and "removed" in problems[0].message


def _overwrite(conn, seq, src) -> None:
    """Put record ``src``'s content (hashes included) at sequence number ``seq``."""
    content = {k: v for k, v in src._mapping.items() if k != "seq"}
    conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(**content))


def test_audit_chain_detects_swap_and_truncation(pki):
    for _ in range(3):
        pki.issue("issuing", make_csr(), "tls-server")
    with pki.store.transaction() as conn:
        rows = {r.seq: r for r in conn.execute(select(audit_log))}
        # Swap the contents of records 3 and 4, keeping their sequence numbers.
        for seq, other in ((3, 4), (4, 3)):
            src = rows[other]
            _overwrite(conn, seq, src)
    assert _verify(pki)[1]
    with pki.store.transaction() as conn:
        for seq, src in rows.items():
            _overwrite(conn, seq, src)
    assert _verify(pki)[1] == []
    with pki.store.transaction() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 5))
    problems = _verify(pki)[1]
    assert any("cut off the end" in p.message for p in problems)


def test_sqlite_foreign_keys_are_enforced(pki):
    with pytest.raises(Exception, match="FOREIGN KEY"), pki.store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbox (ca_id, serial, event, payload, created_at_ms) "
                "VALUES (999, '01', 'issued', '{}', 0)"
            )
        )
