"""Full CRLs: checked by openssl, pkilint and cryptography; native and
pure-Python encoders give the same bytes."""

import random
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import _crlcore_py, crl
from ca.errors import PolicyError
from ca.reasons import RevocationReason
from common import native
from tests.conftest import (
    FIXED_NOW,
    PUBLIC_BASE_URL,
    make_csr,
    native_module,
    needs_native,
    pem,
    pkilint,
)

# CRLs are issued through ca.crlcore, the encoder tests take `impl`.
pytestmark = [pytest.mark.twin, pytest.mark.codec("ca._crlcore", "ca._crlcore_py")]


@pytest.fixture
def revoked_pki(make_service):
    service = make_service(base_url=PUBLIC_BASE_URL)
    service.init_root("root", "CN=CRL Test Root,O=Revoca Tests,C=DE")
    service.create_sub("issuing", "root", "CN=CRL Test Issuing CA,O=Revoca Tests,C=DE")
    records = {}
    for name, reason in (
        ("kc", RevocationReason.keyCompromise),
        ("unspecified", RevocationReason.unspecified),
        ("superseded", RevocationReason.superseded),
        ("good", None),
    ):
        records[name] = service.issue(
            "issuing", make_csr(f"{name}.example.com", [f"dns:{name}.example.com"]), "tls-server"
        )
        if reason is not None:
            service.revoke("issuing", records[name].serial, reason)
    held = service.issue("issuing", make_csr("held", ["email:held@example.com"]), "tls-client")
    service.revoke("issuing", held.serial, RevocationReason.certificateHold)
    records["held"] = held
    service.records = records
    return service


def test_full_crl_contents(revoked_pki, tmp_path):
    record = crl.issue_full_crl(revoked_pki, "issuing")
    parsed = x509.load_der_x509_crl(record.der)
    ca = revoked_pki.get_ca("issuing")
    assert parsed.is_signature_valid(ca.certificate.public_key())
    assert parsed.issuer == ca.certificate.subject
    assert parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    entries = {e.serial_number: e for e in parsed}
    records = revoked_pki.records
    assert set(entries) == {records[n].serial for n in ("kc", "unspecified", "superseded", "held")}
    reason = lambda e: e.extensions.get_extension_for_class(x509.CRLReason).value.reason  # noqa: E731
    assert reason(entries[records["kc"].serial]) == x509.ReasonFlags.key_compromise
    assert reason(entries[records["held"].serial]) == x509.ReasonFlags.certificate_hold
    with pytest.raises(x509.ExtensionNotFound):  # BR 7.2.2: no reasonCode for unspecified
        reason(entries[records["unspecified"].serial])
    serials = [e.serial_number for e in parsed]
    assert serials == sorted(serials)  # streamed in serial order
    assert (record.next_update - record.this_update) == 7 * 86400
    # Numbers strictly increase (RFC 5280 5.2.3).
    assert crl.issue_full_crl(revoked_pki, "issuing").number == 2


def test_openssl_and_pkilint_accept_the_crl(revoked_pki, tmp_path):
    record = crl.issue_full_crl(revoked_pki, "issuing")
    (tmp_path / "c.crl").write_bytes(record.der)
    chain = revoked_pki.chain("issuing")
    (tmp_path / "ca.pem").write_bytes(pem(chain[0]))
    (tmp_path / "chain.pem").write_bytes(pem(chain[0]) + pem(chain[1]))
    check = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            tmp_path / "c.crl",
            "-CAfile",
            tmp_path / "ca.pem",
            "-noout",
        ],
        capture_output=True,
        text=True,
    )
    assert "verify OK" in check.stdout + check.stderr, check.stderr
    (tmp_path / "c.pem").write_bytes(
        x509.load_der_x509_crl(record.der).public_bytes(serialization.Encoding.PEM)
    )
    for name, expected in (("kc", 2), ("good", 0)):
        (tmp_path / "leaf.pem").write_bytes(pem(revoked_pki.records[name].certificate))
        result = subprocess.run(
            [
                "openssl",
                "verify",
                "-crl_check",
                "-CAfile",
                tmp_path / "chain.pem",
                "-CRLfile",
                tmp_path / "c.pem",
                tmp_path / "leaf.pem",
            ],
            capture_output=True,
            text=True,
        )
        if expected:
            assert result.returncode != 0 and "certificate revoked" in result.stdout + result.stderr
        else:
            assert result.returncode == 0, result.stdout + result.stderr
    # This CRL lists a held client certificate: fine for PKIX, while the BR
    # forbid certificateHold on TLS CRLs (7.2.2).
    lint = ("-t", "CRL", "--document-format", "DER")
    assert pkilint("lint_crl", tmp_path / "c.crl", *lint, "-p", "PKIX") == []
    revoked_pki.release_hold("issuing", revoked_pki.records["held"].serial)
    (tmp_path / "br.crl").write_bytes(crl.issue_full_crl(revoked_pki, "issuing").der)
    assert pkilint("lint_crl", tmp_path / "br.crl", *lint, "-p", "BR") == []


def test_empty_crl_and_validity_limits(service):
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    record = crl.issue_full_crl(service, "issuing")
    parsed = x509.load_der_x509_crl(record.der)
    assert len(parsed) == 0 and record.entries == 0
    with pytest.raises(PolicyError, match="1 to 10 days"):
        crl.issue_full_crl(service, "issuing", days=11)


def test_expired_entries_leave_after_one_crl(make_service):
    now = [FIXED_NOW]
    service = make_service(clock=lambda: now[0])
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    short = service.issue("issuing", make_csr(), "tls-server", days=1)
    service.revoke("issuing", short.serial, RevocationReason.superseded)
    assert crl.issue_full_crl(service, "issuing").entries == 1
    now[0] = FIXED_NOW + timedelta(days=3)  # expired since the last CRL
    assert crl.issue_full_crl(service, "issuing").entries == 1  # listed once after expiry
    now[0] = FIXED_NOW + timedelta(days=4)
    assert crl.issue_full_crl(service, "issuing").entries == 0  # then dropped


def _rows(seed: int, count: int):
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        serial = rng.getrandbits(rng.choice([8, 64, 127, 159])) or 1
        rows.append(
            (
                f"{serial:040x}",
                rng.randint(0, 4_000_000_000),
                rng.choice([None, 1, 3, 4, 5, 6, 9, 10]),
                rng.choice([None, rng.randint(0, 4_000_000_000)]),
            )
        )
    return sorted(rows)


def test_encode_time_is_utctime_through_2049_then_generalized(impl):
    """RFC 5280 5.1.2.4: the C day-number arithmetic (common/_dertime.pxd)
    and the twin's gmtime both against datetime's calendar."""
    fixed = {
        0: b"\x17\x0d700101000000Z",
        951782400: b"\x17\x0d000229000000Z",  # a leap day of a century leap year
        2524607999: b"\x17\x0d491231235959Z",  # last UTCTime second
        2524608000: b"\x18\x0f20500101000000Z",
        4107542400: b"\x18\x0f21000301000000Z",  # 2100 is no leap year
        253402300799: b"\x18\x0f99991231235959Z",
    }
    for epoch, expected in fixed.items():
        assert impl.encode_time(epoch) == expected
    rng = random.Random(3)
    for epoch in [rng.randrange(253402300800) for _ in range(3000)]:
        when = datetime.fromtimestamp(epoch, UTC)
        if when.year < 2050:
            expected = b"\x17\x0d" + when.strftime("%y%m%d%H%M%SZ").encode()
        else:
            expected = b"\x18\x0f" + when.strftime("%Y%m%d%H%M%SZ").encode()
        assert impl.encode_time(epoch) == expected, epoch
    for epoch in (-1, 253402300800, -(2**62)):
        with pytest.raises(ValueError, match=r"^time outside 1970-01-01\.\.9999-12-31$"):
            impl.encode_time(epoch)


@needs_native
def test_native_and_python_entries_are_identical():
    _native = native_module("ca._crlcore")
    for seed in range(5):
        native, python = _native.CRLEntryWriter(), _crlcore_py.CRLEntryWriter()
        rows = _rows(seed, 3000)
        assert native.add_rows(rows) == python.add_rows(rows) == 3000
        assert native.getvalue() == python.getvalue()


def test_writer_rejects_bad_input(impl):
    writer = impl.CRLEntryWriter()
    for args, message in (
        (("00", 0, -1, -1), "must be positive"),
        (("zz", 0, -1, -1), "invalid literal"),
        (("01", -5, -1, -1), "time outside"),
        (("01", 0, 7, -1), "invalid CRLReason 7"),
        (("01", 0, 11, -1), "invalid CRLReason 11"),
        (("01", 0, -1, 253402300800), "time outside"),
    ):
        with pytest.raises(ValueError, match=message):
            writer.add(*args)
    assert writer.count == 0 and writer.getvalue() == b""


def _rows_table(path, rows) -> str:
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("DROP TABLE IF EXISTS r")
    db.execute("CREATE TABLE r (serial, revoked_at, reason, invalidity)")  # no type affinity
    db.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    return str(path)


_ALL_ROWS_SQL = (
    "SELECT serial, revoked_at, reason, invalidity FROM r WHERE rowid > ? ORDER BY rowid"
)
_ROWS_SQL = (
    "SELECT serial, revoked_at, reason, invalidity FROM r WHERE revoked_at >= ? ORDER BY serial"
)


def test_sqlite_reader_matches_the_cursor_path(tmp_path):
    rows = _rows(7, 5000)
    path = _rows_table(tmp_path / "rows.db", rows)
    expected = _crlcore_py.CRLEntryWriter()
    expected.add_rows(r for r in rows if r[1] >= 10**9)
    assert 0 < expected.count < 5000
    native_run = [native_module("ca._crlcore")] if native.extensions_allowed() else []
    for impl in [*native_run, _crlcore_py]:
        writer = impl.CRLEntryWriter()
        assert writer.add_from_sqlite(path, _ROWS_SQL, (10**9,)) == expected.count
        assert writer.count == expected.count
        assert writer.getvalue() == expected.getvalue()


def test_sqlite_reader_rejects_bad_rows_and_queries(impl, tmp_path):
    for row, message in (
        ((1, 0, None, None), "without a hex serial"),
        (("zz", 0, None, None), "invalid literal"),
        (("01", "1700000000", None, None), "column 1 is not an integer"),
        (("01", None, None, None), "column 1 is not an integer"),
        (("01", 0, "1", None), "column 2 is neither NULL nor an integer"),
        (("01", 0, None, 1.5), "column 3 is neither NULL nor an integer"),
        (("01", 0, 7, None), "invalid CRLReason 7"),
        (("01", 0, 300, None), "invalid CRLReason 300"),
        (("01", 0, -9, None), "invalid CRLReason -9"),
    ):
        path = _rows_table(tmp_path / "bad.db", [("0a", 5, None, None), row])
        writer = impl.CRLEntryWriter()
        with pytest.raises(ValueError, match=message):
            writer.add_from_sqlite(path, _ALL_ROWS_SQL, (0,))
    path = _rows_table(tmp_path / "good.db", [("0a", 5, None, None)])
    with pytest.raises(OSError, match="cannot open"):
        impl.CRLEntryWriter().add_from_sqlite(str(tmp_path / "missing.db"), _ROWS_SQL, (0,))
    with pytest.raises(OSError, match="cannot prepare"):
        impl.CRLEntryWriter().add_from_sqlite(path, "SELECT nothing FROM nowhere", ())
    with pytest.raises(ValueError, match="4 columns"):
        impl.CRLEntryWriter().add_from_sqlite(path, "SELECT serial, revoked_at FROM r", ())


def test_store_reader_and_cursor_give_the_same_entries(revoked_pki):
    """The CRL path on a SQLite file (the writer steps its own read-only
    connection) lists exactly what the generic cursor path lists."""
    service = revoked_pki
    ca_id = service.get_ca("issuing").id
    with service.store.transaction() as conn:
        assert crl.sqlite_file(conn) is not None
        direct, cursor = crl.crlcore.CRLEntryWriter(), crl.crlcore.CRLEntryWriter()
        assert crl.add_revoked(direct, conn, ca_id, None) == 4
        assert cursor.add_rows(crl.revoked_rows(conn, ca_id, None)) == 4
        assert direct.getvalue() == cursor.getvalue()


def test_cli_crl(tmp_path):
    import os
    import sys

    from tests.conftest import PASSPHRASE

    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE}
    base = [sys.executable, "-m", "revoca", "--data-dir", str(tmp_path / "d")]
    for args in (
        ["ca", "init-root", "--name", "root", "--subject", "CN=Root"],
        ["ca", "create-sub", "--name", "issuing", "--parent", "root", "--subject", "CN=Issuing"],
    ):
        assert subprocess.run([*base, *args], env=env, capture_output=True).returncode == 0
    result = subprocess.run(
        [*base, "ca", "crl", "--ca", "issuing", "--out", "x.crl"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "CRL number 1 of issuing: 0 entries" in result.stderr
    assert len(x509.load_der_x509_crl((tmp_path / "x.crl").read_bytes())) == 0
    bad = subprocess.run(
        [*base, "ca", "crl", "--ca", "issuing", "--days", "30"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 4 and "1 to 10 days" in bad.stderr
    updater = subprocess.run(
        [*base, "ca", "crl-updater", "--once"], env=env, capture_output=True, text=True
    )
    assert updater.returncode == 0, updater.stderr
    assert "issued root.crl" in updater.stderr  # the root's ARL was never issued
    bad_partition = subprocess.run(
        [*base, "ca", "crl", "--ca", "issuing", "--partition", "x"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad_partition.returncode == 5 and "PROFILE:SHARD" in bad_partition.stderr


def test_delta_crl(make_service, tmp_path):
    now = [FIXED_NOW]
    service = make_service(clock=lambda: now[0], base_url=PUBLIC_BASE_URL)
    service.init_root("root", "CN=Delta Root,O=Revoca Tests,C=DE")
    service.create_sub("issuing", "root", "CN=Delta Issuing CA,O=Revoca Tests,C=DE")
    early = service.issue(
        "issuing", make_csr("early.example.com", ["dns:early.example.com"]), "tls-server"
    )
    service.revoke("issuing", early.serial, RevocationReason.keyCompromise)
    held = service.issue("issuing", make_csr("held", ["email:held@example.com"]), "tls-client")
    service.revoke("issuing", held.serial, RevocationReason.certificateHold)
    late = service.issue(
        "issuing", make_csr("late.example.com", ["dns:late.example.com"]), "tls-server"
    )
    with pytest.raises(PolicyError, match="no full CRL yet"):
        crl.issue_crl(service, "issuing", delta=True)
    delta_url = f"{PUBLIC_BASE_URL}/crl/issuing-delta.crl"
    base = crl.issue_crl(service, "issuing", delta_url=delta_url)
    now[0] += timedelta(hours=2)
    service.revoke("issuing", late.serial, RevocationReason.superseded)
    service.release_hold("issuing", held.serial)
    delta = crl.issue_crl(service, "issuing", delta=True)
    assert delta.number == base.number + 1  # one sequence for full and delta (5.2.3)
    parsed = x509.load_der_x509_crl(delta.der)
    indicator = parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical and indicator.value.crl_number == base.number
    entries = {
        e.serial_number: e.extensions.get_extension_for_class(x509.CRLReason).value.reason
        for e in parsed
    }
    assert entries == {
        late.serial: x509.ReasonFlags.superseded,
        held.serial: x509.ReasonFlags.remove_from_crl,
    }
    base_parsed = x509.load_der_x509_crl(base.der)
    freshest = base_parsed.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value == delta_url

    # OpenSSL uses the delta (the base names it in FreshestCRL): "late" is
    # revoked only according to the delta.
    chain = service.chain("issuing")
    (tmp_path / "chain.pem").write_bytes(pem(chain[0]) + pem(chain[1]))
    crls_pem = b"".join(
        x509.load_der_x509_crl(d).public_bytes(serialization.Encoding.PEM)
        for d in (base.der, delta.der)
    )
    (tmp_path / "crls.pem").write_bytes(crls_pem)
    (tmp_path / "late.pem").write_bytes(pem(late.certificate))
    (tmp_path / "base.pem").write_bytes(base_parsed.public_bytes(serialization.Encoding.PEM))
    for crl_file, deltas, revoked in (("base.pem", [], False), ("crls.pem", ["-use_deltas"], True)):
        result = subprocess.run(
            [
                "openssl",
                "verify",
                "-crl_check",
                *deltas,
                "-attime",
                str(int((FIXED_NOW + timedelta(hours=3)).timestamp())),
                "-CAfile",
                tmp_path / "chain.pem",
                "-CRLfile",
                tmp_path / crl_file,
                tmp_path / "late.pem",
            ],
            capture_output=True,
            text=True,
        )
        output = result.stdout + result.stderr
        assert ("certificate revoked" in output) == revoked, output
    (tmp_path / "delta.crl").write_bytes(delta.der)
    (tmp_path / "base.crl").write_bytes(base.der)
    lint = ("-t", "CRL", "--document-format", "DER")
    for name in ("base.crl", "delta.crl"):
        assert pkilint("lint_crl", tmp_path / name, *lint, "-p", "PKIX") == []
    # A TLS-only delta (no hold, no removeFromCRL) also passes the BR profile.
    crl.issue_crl(service, "issuing", delta_url=delta_url)
    now[0] += timedelta(hours=1)
    another = service.issue(
        "issuing", make_csr("more.example.com", ["dns:more.example.com"]), "tls-server"
    )
    service.revoke("issuing", another.serial, RevocationReason.cessationOfOperation)
    (tmp_path / "tls-delta.crl").write_bytes(crl.issue_crl(service, "issuing", delta=True).der)
    assert pkilint("lint_crl", tmp_path / "tls-delta.crl", *lint, "-p", "BR") == []


def test_arl_and_crl_check_all(make_service, tmp_path):
    service = make_service(base_url=PUBLIC_BASE_URL)
    service.init_root("root", "CN=ARL Root,O=Revoca Tests,C=DE")
    service.create_sub("issuing", "root", "CN=ARL Issuing CA,O=Revoca Tests,C=DE")
    service.create_sub("retired", "root", "CN=Retired Issuing CA,O=Revoca Tests,C=DE")
    service.revoke("root", service.get_ca("retired").serial, RevocationReason.cessationOfOperation)
    leaf = service.issue("issuing", make_csr(), "tls-server")
    with pytest.raises(PolicyError, match="ARL validity must be 1 to 366 days"):
        crl.issue_crl(service, "root", arl=True, days=400)
    arl = crl.issue_crl(service, "root", arl=True)
    assert arl.next_update - arl.this_update == 365 * 86400
    parsed = x509.load_der_x509_crl(arl.der)
    idp = parsed.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical and idp.value.only_contains_ca_certs
    assert [e.serial_number for e in parsed] == [service.get_ca("retired").serial]
    full = crl.issue_crl(service, "issuing")

    root, issuing = service.get_ca("root").certificate, service.get_ca("issuing").certificate
    retired = service.get_ca("retired").certificate
    (tmp_path / "root.pem").write_bytes(pem(root))
    (tmp_path / "issuing.pem").write_bytes(pem(issuing))
    (tmp_path / "retired.pem").write_bytes(pem(retired))
    (tmp_path / "leaf.pem").write_bytes(pem(leaf.certificate))
    (tmp_path / "crls.pem").write_bytes(
        b"".join(
            x509.load_der_x509_crl(d).public_bytes(serialization.Encoding.PEM)
            for d in (arl.der, full.der)
        )
    )

    def verify(chain_file: str, target: str):
        return subprocess.run(
            [
                "openssl",
                "verify",
                "-crl_check_all",
                "-CAfile",
                tmp_path / "root.pem",
                "-untrusted",
                tmp_path / chain_file,
                "-CRLfile",
                tmp_path / "crls.pem",
                tmp_path / target,
            ],
            capture_output=True,
            text=True,
        )

    ok = verify("issuing.pem", "leaf.pem")
    assert ok.returncode == 0, ok.stdout + ok.stderr  # root ARL + issuing CRL both checked
    bad = verify("retired.pem", "retired.pem")
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    (tmp_path / "arl.crl").write_bytes(arl.der)
    assert (
        pkilint(
            "lint_crl", tmp_path / "arl.crl", "-t", "ARL", "-p", "BR", "--document-format", "DER"
        )
        == []
    )


def test_partitioned_crls_cover_every_revoked_certificate_once(make_service, tmp_path):
    import dataclasses

    service = make_service(base_url=PUBLIC_BASE_URL)
    base_profile = service.profiles["tls-server"]
    service.profiles["tls-sharded"] = dataclasses.replace(
        base_profile,
        name="tls-sharded",
        crl_partitions=4,
        crl_url="{base}/crl/{ca}-{profile}-p{shard}.crl",
    )
    service.init_root("root", "CN=Shard Root,O=Revoca Tests,C=DE")
    service.create_sub("issuing", "root", "CN=Shard Issuing CA,O=Revoca Tests,C=DE")
    records = [
        service.issue(
            "issuing", make_csr(f"h{i}.example.com", [f"dns:h{i}.example.com"]), "tls-sharded"
        )
        for i in range(40)
    ]
    revoked = {r.serial for r in records[::3]} | {r.serial for r in records[1::7]}
    for serial in revoked:
        service.revoke("issuing", serial, RevocationReason.keyCompromise)
    with pytest.raises(PolicyError, match="has no CRL partition 4"):
        crl.issue_crl(service, "issuing", partition=("tls-sharded", 4))

    shards, seen = {}, []
    for shard in range(4):
        record = crl.issue_crl(service, "issuing", partition=("tls-sharded", shard))
        parsed = x509.load_der_x509_crl(record.der)
        idp = parsed.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical and idp.value.only_contains_user_certs
        shards[shard] = (record, parsed, idp.value.full_name[0].value)
        seen += [e.serial_number for e in parsed]
    assert sorted(seen) == sorted(revoked)  # the union is the revoked set, no duplicates
    assert len(seen) == len(set(seen))
    for record in records:
        dp = record.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        url = dp.value[0].full_name[0].value
        shard = record.serial % 4
        assert url == shards[shard][2]  # byte-identical to the shard CRL's IDP (BR 7.2.2)
        assert url.encode() in shards[shard][0].der and url.encode() in record.der
        listed = any(e.serial_number == record.serial for e in shards[shard][1])
        assert listed == (record.serial in revoked)

    victim = next(r for r in records if r.serial in revoked)
    chain = service.chain("issuing")
    (tmp_path / "chain.pem").write_bytes(pem(chain[0]) + pem(chain[1]))
    (tmp_path / "leaf.pem").write_bytes(pem(victim.certificate))
    for shard, (record, parsed, _) in shards.items():
        (tmp_path / f"p{shard}.pem").write_bytes(parsed.public_bytes(serialization.Encoding.PEM))
        (tmp_path / f"p{shard}.crl").write_bytes(record.der)
        assert (
            pkilint(
                "lint_crl",
                tmp_path / f"p{shard}.crl",
                "-t",
                "CRL",
                "-p",
                "BR",
                "--document-format",
                "DER",
            )
            == []
        )
    own = victim.serial % 4
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-crl_check",
            "-CAfile",
            tmp_path / "chain.pem",
            "-CRLfile",
            tmp_path / f"p{own}.pem",
            tmp_path / "leaf.pem",
        ],
        capture_output=True,
        text=True,
    )
    assert "certificate revoked" in result.stdout + result.stderr
    other = (own + 1) % 4  # another shard's CRL does not cover it: no answer, not "good"
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-crl_check",
            "-CAfile",
            tmp_path / "chain.pem",
            "-CRLfile",
            tmp_path / f"p{other}.pem",
            tmp_path / "leaf.pem",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "certificate revoked" not in result.stdout + result.stderr


def test_crl_updater_schedule(make_service):
    import dataclasses

    from ca.crl_updater import Schedule, run_once

    now = [FIXED_NOW]
    service = make_service(clock=lambda: now[0], base_url=PUBLIC_BASE_URL)
    service.profiles["tls-sharded"] = dataclasses.replace(
        service.profiles["tls-server"],
        name="tls-sharded",
        crl_partitions=2,
        crl_url="{base}/crl/{ca}-{profile}-p{shard}.crl",
    )
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    schedule = Schedule(full_interval=86400, delta_interval=3600)
    url = lambda ca: f"{PUBLIC_BASE_URL}/crl/{ca}-delta.crl"  # noqa: E731
    first = run_once(service, schedule, delta_url_for=url)
    assert sorted(first) == ["issuing", "issuing-tls-sharded-p0", "issuing-tls-sharded-p1", "root"]
    assert run_once(service, schedule, delta_url_for=url) == []  # nothing due
    record = service.issue("issuing", make_csr(), "tls-server")
    service.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    assert run_once(service, schedule, delta_url_for=url) == []  # no rebuild per revocation
    now[0] += timedelta(hours=1)
    assert run_once(service, schedule, delta_url_for=url) == ["issuing-delta"]
    now[0] += timedelta(hours=23)
    assert sorted(run_once(service, schedule, delta_url_for=url)) == [
        "issuing",
        "issuing-tls-sharded-p0",
        "issuing-tls-sharded-p1",
        "root",
    ]
    arl = x509.load_der_x509_crl(crl_der(service, "root"))
    assert arl.extensions.get_extension_for_class(
        x509.IssuingDistributionPoint
    ).value.only_contains_ca_certs


def crl_der(service, name: str) -> bytes:
    from sqlalchemy import select

    from store.tables.ca import crls

    with service.store.read() as conn:
        return conn.execute(
            select(crls.c.der).where(crls.c.name == name).order_by(crls.c.number.desc()).limit(1)
        ).scalar_one()
