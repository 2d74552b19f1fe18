"""DER reading: the native core beside its baselines, on a real OCSP request.

Baselines, measured in the same run on the same input:
- the pure-Python twin (va._fastocsp_py), the same algorithm without C;
- asn1crypto's generic parser (core.load plus a walk of every element), the
  well-kept pure-Python DER library we would otherwise use;
- cryptography's load_der_ocsp_request (Rust), which parses the request into
  typed fields (it does more typing, and less generic tree-building, than we do).

Run: pytest benchmarks/bench_der.py --benchmark-enable
"""

from pathlib import Path

import pytest
from asn1crypto import core
from cryptography.x509 import ocsp

from va import _fastocsp_py

try:
    from va import _fastocsp
except ImportError:  # pragma: no cover
    _fastocsp = None

VECTOR = (
    Path(__file__).resolve().parent.parent / "tests" / "vectors" / "req-sha1-one-certid-nonce.der"
)
DATA = VECTOR.read_bytes()


def _asn1crypto_walk(data: bytes):
    def walk(value):
        if value.method == 1:  # constructed: parse children, like parse_der does
            parsed = core.Sequence.load(value.dump()) if value.tag == 16 else value
            for child in getattr(parsed, "children", None) or []:
                walk(child)
        return value

    return walk(core.load(data, strict=True))


@pytest.mark.benchmark(group="der-parse-request")
def test_native_parse_der(benchmark):
    if _fastocsp is None:
        pytest.fail("native module not built")
    result = benchmark(_fastocsp.parse_der, DATA)
    assert result == _fastocsp_py.parse_der(DATA)


@pytest.mark.benchmark(group="der-parse-request")
def test_python_twin_parse_der(benchmark):
    result = benchmark(_fastocsp_py.parse_der, DATA)
    assert result[0] == 0x30


@pytest.mark.benchmark(group="der-parse-request")
def test_baseline_asn1crypto(benchmark):
    benchmark(_asn1crypto_walk, DATA)


@pytest.mark.benchmark(group="der-parse-request")
def test_baseline_cryptography_ocsp_request(benchmark):
    request = benchmark(ocsp.load_der_ocsp_request, DATA)
    assert request.serial_number > 0


@pytest.mark.benchmark(group="der-read-tlv")
def test_native_read_tlv(benchmark):
    if _fastocsp is None:
        pytest.fail("native module not built")
    assert benchmark(_fastocsp.read_tlv, DATA)[2] == len(DATA)


@pytest.mark.benchmark(group="der-read-tlv")
def test_python_twin_read_tlv(benchmark):
    assert benchmark(_fastocsp_py.read_tlv, DATA)[2] == len(DATA)
