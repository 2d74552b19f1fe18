"""CRL generation: the native entry encoder and a whole signed CRL, beside
cryptography's CertificateRevocationListBuilder on the same input.

cryptography's builder copies its entry list on every add (quadratic), so the
side-by-side ratio uses 20,000 entries; the native path alone is also timed
at 1,000,000 entries (encode, assemble the TBS, sign with P-256), from
Python tuples (the cursor path) and from packed rows (what the SQLite row
reader hands the encoder).

Run: pytest benchmarks/bench_crl.py --benchmark-enable
"""

import random
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ca import _crlcore_py, crl
from ca.keys import signature_algorithm_for
from ca.token import sign_with
from common import der

try:
    from ca import _crlcore
except ImportError:  # pragma: no cover
    _crlcore = None

KEY = ec.generate_private_key(ec.SECP256R1())
NAME = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Bench CA")])
REASONS = [None, 1, 4, 5]


def _rows(count: int, seed: int = 5):
    rng = random.Random(seed)
    return sorted(
        (f"{rng.getrandbits(126) | 1 << 120:040x}", 1_700_000_000 + i, rng.choice(REASONS), None)
        for i in range(count)
    )


SMALL = _rows(20_000)
ALGORITHM = signature_algorithm_for(KEY.public_key())


def _native_crl(writer_class, rows, packed: bool = False) -> bytes:
    writer = writer_class()
    if packed:
        writer.add_packed(rows)
    else:
        writer.add_rows(rows)
    tbs = crl.encode_tbs(
        NAME.public_bytes(),
        ALGORITHM,
        7,
        1_700_000_000,
        1_700_600_000,
        writer.getvalue(),
        writer.count,
        b"\x01" * 20,
    )
    signature = sign_with(KEY, tbs, ALGORITHM)
    return der.sequence(tbs, ALGORITHM.algorithm_identifier, der.bit_string(signature))


def _cryptography_crl(rows) -> bytes:
    now = datetime.fromtimestamp(1_700_000_000, UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(NAME)
        .last_update(now)
        .next_update(datetime.fromtimestamp(1_700_600_000, UTC))
        .add_extension(x509.CRLNumber(7), False)
    )
    flags = {
        1: x509.ReasonFlags.key_compromise,
        4: x509.ReasonFlags.superseded,
        5: x509.ReasonFlags.cessation_of_operation,
    }
    for serial, revoked_at, reason, _ in rows:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(serial, 16))
            .revocation_date(datetime.fromtimestamp(revoked_at, UTC))
        )
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(flags[reason]), False)
        builder = builder.add_revoked_certificate(entry.build())
    from cryptography.hazmat.primitives.serialization import Encoding

    return builder.sign(KEY, hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.mark.benchmark(group="crl-20k-same-input")
def test_native_20k(benchmark):
    if _crlcore is None:
        pytest.fail("native module not built")
    data = benchmark(_native_crl, _crlcore.CRLEntryWriter, SMALL)
    assert len(x509.load_der_x509_crl(data)) == len(SMALL)


@pytest.mark.benchmark(group="crl-20k-same-input")
def test_python_twin_20k(benchmark):
    data = benchmark.pedantic(_native_crl, args=(_crlcore_py.CRLEntryWriter, SMALL), rounds=3)
    assert len(x509.load_der_x509_crl(data)) == len(SMALL)


@pytest.mark.benchmark(group="crl-20k-same-input")
def test_baseline_cryptography_20k(benchmark):
    timing = not benchmark.disabled
    rows = SMALL if timing else SMALL[:2000]  # quadratic: keep the untimed pass short
    data = benchmark.pedantic(_cryptography_crl, args=(rows,), rounds=1, iterations=1)
    assert len(x509.load_der_x509_crl(data)) == len(rows)


@pytest.mark.benchmark(group="crl-1m-native")
def test_native_1m(benchmark):
    if _crlcore is None:
        pytest.fail("native module not built")
    # 1,000,000 entries when timing; 10,000 in the suite's untimed pass.
    timing = not benchmark.disabled
    rows = _rows(1_000_000 if timing else 10_000)
    data = benchmark.pedantic(_native_crl, args=(_crlcore.CRLEntryWriter, rows), rounds=3)
    parsed = x509.load_der_x509_crl(data)
    assert parsed.is_signature_valid(KEY.public_key())


@pytest.mark.benchmark(group="crl-1m-native")
def test_native_1m_packed(benchmark):
    if _crlcore is None:
        pytest.fail("native module not built")
    timing = not benchmark.disabled
    rows = _rows(1_000_000 if timing else 10_000)
    packed = b"".join(
        _crlcore.pack_row(serial.encode(), at, -1 if reason is None else reason, -1)
        for serial, at, reason, _ in rows
    )
    data = benchmark.pedantic(_native_crl, args=(_crlcore.CRLEntryWriter, packed, True), rounds=3)
    parsed = x509.load_der_x509_crl(data)
    assert parsed.is_signature_valid(KEY.public_key()) and len(parsed) == len(rows)
