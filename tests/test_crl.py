"""Full CRLs: checked by openssl, pkilint and cryptography; native and
pure-Python encoders give the same bytes."""

import random
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import _crlcore_py, _crlsqlite_py, crl, crlcore, crlrows
from ca.errors import PolicyError
from ca.reasons import RevocationReason
from common import der, native
from tests.conftest import (
    FIXED_NOW,
    PUBLIC_BASE_URL,
    make_csr,
    native_module,
    pem,
    pkilint,
)

# CRLs are issued through ca.crlcore, the encoder tests take `impl`; the
# SQLite reader's tests name their own codec.
pytestmark = [pytest.mark.twin, pytest.mark.codec("ca._crlcore", "ca._crlcore_py")]
READER = pytest.mark.codec("ca._crlsqlite", "ca._crlsqlite_py")


@pytest.fixture
def revoked_pki(make_service):
    service = make_service(base_url=PUBLIC_BASE_URL)
    service.init_root("root", "CN=CRL Test Root,O=Revoca Tests,C=DE")
    service.create_sub("issuing", "root", "CN=CRL Test Issuing CA,O=Revoca Tests,C=DE")
    # Holds only under a CA outside the Baseline Requirements (BR 4.9.13).
    service.create_sub(
        "clients", "root", "CN=CRL Test Client CA,O=Revoca Tests,C=DE", profile="client-sub-ca"
    )
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
    held = service.issue("clients", make_csr("held", ["email:held@example.com"]), "tls-client")
    service.revoke("clients", held.serial, RevocationReason.certificateHold)
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
    assert set(entries) == {records[n].serial for n in ("kc", "unspecified", "superseded")}
    reason = lambda e: e.extensions.get_extension_for_class(x509.CRLReason).value.reason  # noqa: E731
    assert reason(entries[records["kc"].serial]) == x509.ReasonFlags.key_compromise
    held = x509.load_der_x509_crl(crl.issue_full_crl(revoked_pki, "clients").der)
    assert [reason(e) for e in held] == [x509.ReasonFlags.certificate_hold]
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
    lint = ("-t", "CRL", "--document-format", "DER")
    assert pkilint("lint_crl", tmp_path / "c.crl", *lint, "-p", "PKIX") == []
    assert pkilint("lint_crl", tmp_path / "c.crl", *lint, "-p", "BR") == []
    # The client CA's CRL lists a hold: fine for PKIX; that CA is outside
    # the BR, which forbid certificateHold (7.2.2).
    (tmp_path / "clients.crl").write_bytes(crl.issue_full_crl(revoked_pki, "clients").der)
    assert pkilint("lint_crl", tmp_path / "clients.crl", *lint, "-p", "PKIX") == []
    assert pkilint("lint_crl", tmp_path / "clients.crl", *lint, "-p", "BR") == [
        '    cabf.crl_prohibited_reason_code (ERROR): Prohibited reason code "certificateHold"'
    ]


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


# -- the entry encoder (a codec) and the SQLite row reader, native and twin --


def _encoders():
    """The twin, and the native encoder unless the native modules are off
    (then it is not imported behind the switch's back)."""
    if not native.extensions_allowed():
        return [_crlcore_py]
    return [_crlcore_py, native_module("ca._crlcore")]


LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z


def _outcome(call, *args):
    """What a call gives: ("ok", value), or the exception's type and message."""
    try:
        return ("ok", call(*args))
    except Exception as exc:
        return (type(exc), str(exc))


def _rows(seed: int, count: int):
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        serial = rng.getrandbits(rng.choice([8, 64, 127, 159, 160])) or 1
        rows.append(
            (
                f"{serial:040x}",
                rng.randint(0, 4_000_000_000),
                rng.choice([None, 0, 1, 3, 4, 5, 6, 8, 9, 10]),
                rng.choice([None, rng.randint(0, 4_000_000_000)]),
            )
        )
    # The edges: the longest serial, padding, capitals; UTCTime's last second
    # and GeneralizedTime's first; both ends of the range.
    rows += [
        ("f" * 40, 2524607999, 1, 0),
        ("0" * 60 + "1", 2524608000, None, LAST_SECOND),
        ("DEADBEEF", 0, 10, None),
        ("80", LAST_SECOND, None, 2524607999),
    ]
    return sorted(rows)


def _packed(impl, rows) -> bytes:
    return b"".join(
        impl.pack_row(
            serial.encode(),
            revoked_at,
            -1 if reason is None else reason,
            -1 if invalidity is None else invalidity,
        )
        for serial, revoked_at, reason, invalidity in rows
    )


def test_encode_time_is_utctime_through_2049_then_generalized(impl):
    """RFC 5280 5.1.2.4: the C day-number arithmetic (common/_dertime.pxd)
    and the twin's gmtime both against datetime's calendar."""
    fixed = {
        0: b"\x17\x0d700101000000Z",
        951782400: b"\x17\x0d000229000000Z",  # a leap day of a century leap year
        2524607999: b"\x17\x0d491231235959Z",  # last UTCTime second
        2524608000: b"\x18\x0f20500101000000Z",
        4107542400: b"\x18\x0f21000301000000Z",  # 2100 is no leap year
        LAST_SECOND: b"\x18\x0f99991231235959Z",
    }
    for epoch, expected in fixed.items():
        assert impl.encode_time(epoch) == expected
    rng = random.Random(3)
    for epoch in [rng.randrange(LAST_SECOND + 1) for _ in range(3000)]:
        when = datetime.fromtimestamp(epoch, UTC)
        if when.year < 2050:
            expected = b"\x17\x0d" + when.strftime("%y%m%d%H%M%SZ").encode()
        else:
            expected = b"\x18\x0f" + when.strftime("%Y%m%d%H%M%SZ").encode()
        assert impl.encode_time(epoch) == expected, epoch
    for epoch in (-1, LAST_SECOND + 1, -(2**62), 2**64):
        with pytest.raises(ValueError, match=r"^time outside 1970-01-01\.\.9999-12-31$"):
            impl.encode_time(epoch)
    with pytest.raises(TypeError, match=r"^time must be an int, not float$"):
        impl.encode_time(1.5)


def test_serial_content_is_the_der_integer_content(impl):
    rng = random.Random(11)
    for value in [1, 0x7F, 0x80, 0xFF, 0x100, 2**159, 2**160 - 1]:
        value_hex = f"{value:x}"
        for text in (value_hex, value_hex.upper(), "000" + value_hex):
            assert impl.serial_content(text) == der.integer_content(value)
    for _ in range(500):
        value = rng.getrandbits(rng.randint(1, 160)) or 1
        assert impl.serial_content(f"{value:040x}") == der.integer_content(value)


def test_encoders_give_identical_entries_from_tuples_and_packed_rows(impl):
    """Each encoder gives the twin's bytes for the same rows, as tuples and as
    packed rows, whichever implementation packed them."""
    for seed in range(4):
        rows = _rows(seed, 3000)
        twin = _crlcore_py.CRLEntryWriter()
        twin.add_rows(rows)
        expected = twin.getvalue()
        writer = impl.CRLEntryWriter()
        assert writer.add_rows(rows) == writer.count == len(rows)
        assert writer.getvalue() == expected
        for packer in {_crlcore_py, impl}:
            writer = impl.CRLEntryWriter()
            assert writer.add_packed(_packed(packer, rows)) == writer.count == len(rows)
            assert writer.getvalue() == expected


# Bad input for CRLEntryWriter.add, and the refusal both encoders give. The
# types are checked first, then the values: reason, invalidity date, serial,
# revocation time.
BAD_ENTRIES = [
    (("00", 0, -1, -1), ValueError, "serial '00' must be positive"),
    (("", 0, -1, -1), ValueError, "serial '' must be positive"),
    (("zz", 0, -1, -1), ValueError, "invalid literal for int() with base 16: 'zz'"),
    (("0x1f", 0, -1, -1), ValueError, "invalid literal for int() with base 16: '0x1f'"),
    ((" 1", 0, -1, -1), ValueError, "invalid literal for int() with base 16: ' 1'"),
    (("1_0", 0, -1, -1), ValueError, "invalid literal for int() with base 16: '1_0'"),
    (("\u0663", 0, -1, -1), ValueError, "invalid literal for int() with base 16: '\u0663'"),
    (("1" * 41, 0, -1, -1), ValueError, f"serial {'1' * 41!r} is longer than 20 octets"),
    (("01", -5, -1, -1), ValueError, "time outside 1970-01-01..9999-12-31"),
    (("01", LAST_SECOND + 1, -1, -1), ValueError, "time outside 1970-01-01..9999-12-31"),
    (("01", 2**64, -1, -1), ValueError, "time outside 1970-01-01..9999-12-31"),
    (("01", 0, 7, -1), ValueError, "invalid CRLReason 7"),
    (("01", 0, 11, -1), ValueError, "invalid CRLReason 11"),
    (("01", 0, -2, -1), ValueError, "invalid CRLReason -2"),
    (("01", 0, 2**63, -1), ValueError, f"invalid CRLReason {2**63}"),
    (("01", 0, -1, LAST_SECOND + 1), ValueError, "time outside 1970-01-01..9999-12-31"),
    (("01", 0, -1, -(2**80)), ValueError, "time outside 1970-01-01..9999-12-31"),
    ((1, 0, -1, -1), TypeError, "serial must be a str, not int"),
    ((b"01", 0, -1, -1), TypeError, "serial must be a str, not bytes"),
    (("01", 1.5, -1, -1), TypeError, "revocation time must be an int, not float"),
    (("01", 0, "1", -1), TypeError, "reason must be an int, not str"),
    (("01", 0, None, -1), TypeError, "reason must be an int, not NoneType"),
    (("01", 0, -1, None), TypeError, "invalidity date must be an int, not NoneType"),
    # The order: reason before the invalidity date before the serial before the time.
    (("zz", -5, 7, -5), ValueError, "invalid CRLReason 7"),
    (("zz", -5, -1, -5), ValueError, "time outside 1970-01-01..9999-12-31"),
    (("zz", -5, -1, -1), ValueError, "invalid literal for int() with base 16: 'zz'"),
    (("zz", 1.5, 7, -5), TypeError, "revocation time must be an int, not float"),
]


def test_writer_refuses_bad_entries_and_changes_nothing(impl):
    writer = impl.CRLEntryWriter()
    writer.add("0a", 5, 1, 6)
    before = writer.getvalue()
    for args, kind, message in BAD_ENTRIES:
        assert _outcome(writer.add, *args) == (kind, message), args
        assert writer.count == 1 and writer.getvalue() == before
        # The same row among good ones: none of them is added.
        row = tuple(None if v == -1 and i >= 2 else v for i, v in enumerate(args))
        if row[2:] != args[2:] and kind is TypeError:
            continue  # None is "none" in a row: that refusal is add's alone
        outcome = _outcome(writer.add_rows, [("0b", 5, None, None), row, ("0c", 5, None, None)])
        assert outcome == (kind, message), row
        assert writer.count == 1 and writer.getvalue() == before


def test_encoders_refuse_rows_packed_rows_and_serials_alike(impl):
    """Each refusal, with its type and message, the same in both."""
    rows_cases = [
        [("01", 0)],
        [("01", 0, None, None, None)],
        [5],
        [("01", 0, None, None), ["02", 0, None, None]],  # a list is a row too
    ]
    packed_cases = [
        b"\x00" * 27,
        _crlcore_py.pack_row(b"0102", 0, -1, -1)[:-1],
        _crlcore_py.pack_row(b"01", 0, -1, -1) + b"\x01",
        _crlcore_py.pack_row(b"zz", 0, -1, -1),
        _crlcore_py.pack_row(b"caf\xc3\xa9", 0, -1, -1),
        _crlcore_py.pack_row(b"01", 0, 7, -1),
        _crlcore_py.pack_row(b"01", 0, -(2**63), -1),
        _crlcore_py.pack_row(b"01", 0, -1, 2**63 - 1),
        _crlcore_py.pack_row(b"01", -1, -1, -1),
        _crlcore_py.pack_row(b"", 0, -1, -1),
        bytearray(_crlcore_py.pack_row(b"01", 0, -1, -1)),
        "01",
    ]
    pack_cases = [
        (b"01", 2**63, -1, -1),
        (b"01", 0, -(2**63) - 1, -1),
        (b"01", 0, -1, 2**64),
        ("01", 0, -1, -1),
        (b"01", 0.5, -1, -1),
        (b"01", 0, -1, None),
    ]
    seen = []
    for rows in rows_cases:
        seen.append(_outcome(impl.CRLEntryWriter().add_rows, rows))
    for packed in packed_cases:
        writer = impl.CRLEntryWriter()
        seen.append(_outcome(writer.add_packed, packed))
        assert writer.count == 0 or seen[-1][0] == "ok"
    for args in pack_cases:
        seen.append(_outcome(impl.pack_row, *args))
    seen.append(_outcome(impl.serial_content, "0" * 100))
    seen.append(_outcome(impl.serial_content, "0" * 100 + "f" * 40))
    got = seen
    assert got[0] == (ValueError, "a CRL row has 4 fields, not 2")
    assert got[1] == (ValueError, "a CRL row has 4 fields, not 5")
    assert got[2] == (TypeError, "'int' object is not iterable")
    assert got[3] == ("ok", 2)
    assert got[4] == (ValueError, "packed rows: a row header is cut short at octet 0")
    assert got[5] == (ValueError, "packed rows: a serial is cut short at octet 28")
    assert got[6] == (ValueError, "packed rows: a row header is cut short at octet 30")
    assert got[7] == (ValueError, "invalid literal for int() with base 16: 'zz'")
    assert got[8] == (ValueError, "invalid literal for int() with base 16: 'caf\ufffd\ufffd'")
    assert got[9] == (ValueError, "invalid CRLReason 7")
    assert got[10] == (ValueError, f"invalid CRLReason {-(2**63)}")
    assert got[11] == (ValueError, "time outside 1970-01-01..9999-12-31")
    assert got[12] == (ValueError, "time outside 1970-01-01..9999-12-31")
    assert got[13] == (ValueError, "serial '' must be positive")
    assert got[14] == (TypeError, "packed rows must be bytes, not bytearray")
    assert got[15] == (TypeError, "packed rows must be bytes, not str")
    assert got[16] == (OverflowError, "revocation time does not fit in 64 bits")
    assert got[17] == (OverflowError, "reason does not fit in 64 bits")
    assert got[18] == (OverflowError, "invalidity date does not fit in 64 bits")
    assert got[19] == (TypeError, "serial must be bytes, not str")
    assert got[20] == (TypeError, "revocation time must be an int, not float")
    assert got[21] == (TypeError, "invalidity date must be an int, not NoneType")
    assert got[22] == (ValueError, f"serial {'0' * 100!r} must be positive")
    assert got[23] == ("ok", b"\x00" + b"\xff" * 20)


def test_facades_bind_every_name_of_one_implementation(tmp_path):
    """ca.crlcore and ca.crlrows bind each public name from the native module
    when it is allowed and built, else from the twin; the stubs declare them."""
    import ast
    import os
    import sys
    from pathlib import Path

    for facade, twin, name in (
        (crlcore, _crlcore_py, "ca._crlcore"),
        (crlrows, _crlsqlite_py, "ca._crlsqlite"),
    ):
        chosen = native.load(name) or twin
        expected = "python" if chosen is twin else "native"
        assert expected == facade.IMPLEMENTATION
        for api in facade.API:
            assert getattr(facade, api) is getattr(chosen, api), api
            assert hasattr(twin, api), api
        stub = Path(twin.__file__).with_name(name.split(".")[1] + ".pyi")
        declared = {
            node.name if hasattr(node, "name") else node.target.id
            for node in ast.parse(stub.read_text()).body
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AnnAssign)
        }
        assert declared == set(facade.API), stub
    forced = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ca import crlcore, crlrows\n"
            "print(crlcore.IMPLEMENTATION, crlrows.IMPLEMENTATION)",
        ],
        env={**os.environ, "REVOCA_NO_EXTENSIONS": "1"},
        capture_output=True,
        text=True,
    )
    assert forced.stdout.split() == ["python", "python"], forced.stderr


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


@READER
def test_sqlite_readers_hand_every_encoder_the_same_rows(impl, tmp_path):
    """The reader's chunks are the twin's, cut at the same rows, and every
    encoder turns them into the twin's entries."""
    rows = _rows(7, 5000)
    path = _rows_table(tmp_path / "rows.db", rows)
    selected = [r for r in rows if r[1] >= 10**9]
    expected = _crlcore_py.CRLEntryWriter()
    expected.add_rows(selected)
    assert 0 < expected.count < len(rows)
    for limit in (1, 700, _crlsqlite_py.CHUNK_OCTETS):
        twin, seen = [], []
        _crlsqlite_py.read_sqlite(path, _ROWS_SQL, (10**9,), twin.append, limit)
        assert impl.read_sqlite(path, _ROWS_SQL, (10**9,), seen.append, limit) == len(selected)
        assert seen == twin  # the same chunks, cut at the same rows
        assert b"".join(seen) == _packed(_crlcore_py, selected)
        # At most the limit each, but one row alone when it is longer.
        assert all(len(c) <= limit for c in seen) or limit == 1
        if limit == 1:
            assert len(seen) == len(selected)
        for encoder in _encoders():
            writer = encoder.CRLEntryWriter()
            assert impl.read_sqlite(path, _ROWS_SQL, (10**9,), writer.add_packed, limit)
            assert writer.count == expected.count
            assert writer.getvalue() == expected.getvalue()
    # No rows: the sink is never called.
    assert impl.read_sqlite(path, _ROWS_SQL, (2**62,), pytest.fail) == 0


# A bad row after a good one, and the refusal; from the reader (the column
# types) or from the encoder (the values).
BAD_ROWS = [
    ((1, 0, None, None), "a revoked certificate without a hex serial"),
    ((b"01", 0, None, None), "a revoked certificate without a hex serial"),
    (("zz", 0, None, None), "invalid literal for int() with base 16: 'zz'"),
    (("caf\u00e9", 0, None, None), "invalid literal for int() with base 16: 'caf\ufffd\ufffd'"),
    (("01", "1700000000", None, None), "serial 01: column 1 is not an integer revocation time"),
    (("01", None, None, None), "serial 01: column 1 is not an integer revocation time"),
    (("01", 0, "1", None), "serial 01: column 2 is neither NULL nor an integer"),
    (("01", 0, None, 1.5), "serial 01: column 3 is neither NULL nor an integer"),
    (("01", 0, 7, None), "invalid CRLReason 7"),
    (("01", 0, 300, None), "invalid CRLReason 300"),
    (("01", 0, -9, None), "invalid CRLReason -9"),
    (("01", 0, 2**63 - 1, None), f"invalid CRLReason {2**63 - 1}"),
    (("01", -1, None, None), "time outside 1970-01-01..9999-12-31"),
    (("01", 0, None, LAST_SECOND + 1), "time outside 1970-01-01..9999-12-31"),
]


@READER
def test_sqlite_reader_refuses_bad_rows_after_handing_on_the_good(impl, tmp_path):
    for row, message in BAD_ROWS:
        path = _rows_table(tmp_path / "bad.db", [("0a", 5, None, None), ("0b", 6, 1, None), row])
        for encoder in _encoders():
            writer = encoder.CRLEntryWriter()
            with pytest.raises(ValueError) as refused:
                impl.read_sqlite(path, _ALL_ROWS_SQL, (0,), writer.add_packed)
            assert str(refused.value) == message
            # The reader's refusals come after the rows before them were
            # handed on; the encoder refuses the chunk holding the bad row.
            assert writer.count == (2 if "column" in message or "hex serial" in message else 0)


@READER
def test_sqlite_readers_refuse_bad_queries_alike(impl, tmp_path):
    path = _rows_table(tmp_path / "good.db", [("0a", 5, None, None), ("0b", 6, 1, None)])
    two = "SELECT serial, revoked_at FROM r"
    four = "SELECT serial, revoked_at, reason, invalidity FROM r"
    cases = [
        (str(tmp_path / "missing.db"), _ROWS_SQL, (0,)),
        (path, "SELECT x FROM nowhere", ()),
        (path, two, ()),
        (path, two + " WHERE 0", ()),
        (path, "", ()),
        (path, "  -- nothing", ()),
        (path, "", (1,)),
        (path, four + "; SELECT 1", ()),
        (path, four + ";;", ()),
        (path, four + "; -- a comment\n /* and another */ ", ()),
        (path, four + " WHERE revoked_at > ?", ()),
        (path, four + " WHERE revoked_at > ?", (1, 2)),
        (path, four + " WHERE revoked_at > ?", ("1",)),
        (path, four + " WHERE revoked_at > ?", (2**63,)),
        (path, four + " WHERE revoked_at > ?", [1]),
        (path, four + "\0", ()),
        (path, "DELETE FROM r", ()),
        (path + "\0x", four, ()),
        (tmp_path, four, ()),
        (path, b"SELECT 1", ()),
    ]
    got = [_outcome(impl.read_sqlite, *case, lambda chunk: None) for case in cases]
    got.append(_outcome(impl.read_sqlite, path, four, (), None))
    got.append(_outcome(impl.read_sqlite, path, four, (), lambda c: None, 0))
    got.append(_outcome(impl.read_sqlite, path, four, (), lambda c: None, 1.5))
    assert got[0] == (
        OSError,
        f"cannot open {tmp_path / 'missing.db'}: unable to open database file",
    )
    assert got[1] == (OSError, "the CRL query failed: no such table: nowhere")
    assert got[2] == got[3] == got[4] == got[5]
    assert got[2] == (ValueError, "the CRL query must return 4 columns")
    assert got[6] == (ValueError, "the CRL query's parameters do not match")
    one = (OSError, "the CRL query failed: You can only execute one statement at a time.")
    assert got[7] == got[8] == one
    assert got[9] == ("ok", 2)
    assert got[10] == got[11] == (ValueError, "the CRL query's parameters do not match")
    assert got[12] == (TypeError, "the CRL query's parameters must be ints, not str")
    assert got[13] == (OverflowError, "a CRL query parameter does not fit in 64 bits")
    assert got[14] == (TypeError, "params must be a tuple, not list")
    assert got[15] == (OSError, "the CRL query failed: the query contains a null character")
    assert got[16] == (OSError, "the CRL query failed: attempt to write a readonly database")
    assert got[17] == (ValueError, "embedded null character in path")
    assert got[18] == (TypeError, "path must be a str, not PosixPath")
    assert got[19] == (TypeError, "sql must be a str, not bytes")
    assert got[20] == (TypeError, "sink must be callable")
    assert got[21] == (ValueError, "chunk_octets must be 1 to 2**30")
    assert got[22] == (TypeError, "chunk_octets must be an int, not float")


def _listed_rows(conn, ca_id: int):
    """The CA's listed rows restated in Python from the certificates table:
    BR 7.2.2's reasons (none for unspecified, certificateHold for a hold)."""
    from sqlalchemy import select

    from store.tables.ca import certificates as c

    rows = conn.execute(
        select(c.c.serial, c.c.revoked_at, c.c.status, c.c.revocation_reason, c.c.invalidity_date)
        .where(c.c.ca_id == ca_id, c.c.status.in_(("revoked", "hold")))
        .order_by(c.c.serial)
    )
    return [
        (serial, at, 6 if status == "hold" else (reason or None), invalidity)
        for serial, at, status, reason, invalidity in rows
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_rows_on_both_backends(backend, make_service, request):
    """The CA's entries from the store: on a SQLite file through the SQLite
    reader, on PostgreSQL through the caller's cursor; on SQLite both paths
    give the same bytes."""
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    service = make_service(url=url)
    service.init_root("root", "CN=Root")
    # A CA outside the Baseline Requirements: it may hold (ca/baseline.py).
    service.create_sub("issuing", "root", "CN=Issuing", profile="client-sub-ca")
    for index, reason in enumerate(
        (
            RevocationReason.keyCompromise,
            RevocationReason.unspecified,
            RevocationReason.certificateHold,
            None,
            RevocationReason.superseded,
        )
    ):
        csr = make_csr(f"h{index}", [f"email:h{index}@example.com"])
        record = service.issue("issuing", csr, "tls-client")
        if reason is not None:
            service.revoke("issuing", record.serial, reason)
    ca_id = service.get_ca("issuing").id
    with service.store.transaction() as conn:
        assert (crlrows.sqlite_file(conn) is not None) == (backend == "sqlite")
        rows = _listed_rows(conn, ca_id)
        assert sorted(r[2] or 0 for r in rows) == [0, 1, 4, 6]  # unspecified: none
        expected = crlcore.CRLEntryWriter()
        expected.add_rows(rows)
        from_store, cursor = crlcore.CRLEntryWriter(), crlcore.CRLEntryWriter()
        assert crlrows.add_revoked(from_store, conn, ca_id, None) == 4
        assert cursor.add_rows(crlrows.revoked_rows(conn, ca_id, None)) == 4
        assert from_store.getvalue() == cursor.getvalue() == expected.getvalue()


def test_cli_crl(tmp_path):
    import os
    import sys

    from tests.conftest import PASSPHRASE

    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE}
    base = [sys.executable, "-m", "revoca", "--data-dir", str(tmp_path / "d")]
    # A new CA signs its first CRLs when it is created: an ARL, or a full CRL and its delta.
    for args, first in (
        (["ca", "init-root", "--name", "root", "--subject", "CN=Root"], ["root"]),
        (
            ["ca", "create-sub", "--name", "issuing", "--parent", "root", "--subject", "CN=I"],
            ["issuing", "issuing-delta"],
        ),
    ):
        made = subprocess.run([*base, *args], env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        assert [f"issued {name}.crl" for name in first] == made.stderr.split("\n")[:-1]
    result = subprocess.run(
        [*base, "ca", "crl", "--ca", "issuing", "--out", "x.crl"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "CRL number 3 of issuing: 0 entries" in result.stderr
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
    assert updater.stderr == ""  # nothing due: every CA has its CRLs
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
    # Holds, releases and their removeFromCRL: a CA outside the BR (4.9.13).
    service.create_sub(
        "issuing", "root", "CN=Delta Issuing CA,O=Revoca Tests,C=DE", profile="client-sub-ca"
    )

    def client(name):
        return service.issue("issuing", make_csr(name, [f"email:{name}@example.com"]), "tls-client")

    early = client("early")
    service.revoke("issuing", early.serial, RevocationReason.keyCompromise)
    held = client("held")
    service.revoke("issuing", held.serial, RevocationReason.certificateHold)
    late = client("late")
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
    # A TLS CA's delta (no hold, so no removeFromCRL) also passes the BR profile.
    service.create_sub("tls", "root", "CN=Delta TLS CA,O=Revoca Tests,C=DE")
    crl.issue_crl(service, "tls", delta_url=f"{PUBLIC_BASE_URL}/crl/tls-delta.crl")
    now[0] += timedelta(hours=1)
    another = service.issue(
        "tls", make_csr("more.example.com", ["dns:more.example.com"]), "tls-server"
    )
    service.revoke("tls", another.serial, RevocationReason.cessationOfOperation)
    (tmp_path / "tls-delta.crl").write_bytes(crl.issue_crl(service, "tls", delta=True).der)
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
