"""The native DER reader and its pure-Python twin: same results, same errors."""

import random
from pathlib import Path

import pytest

from tests.conftest import native_module, needs_native
from va import _fastocsp_py
from va.errors import DERError, DERErrorCode

pytestmark = pytest.mark.codec("va._fastocsp", "va._fastocsp_py")


def test_parse_nested(impl):
    data = bytes.fromhex("300902010530040402abcd")
    assert impl.parse_der(data) == (0x30, ((0x02, b"\x05"), (0x30, ((0x04, b"\xab\xcd"),))))


def test_long_form_lengths(impl):
    content = bytes(200)
    data = b"\x04\x81\xc8" + content
    assert impl.parse_der(data) == (0x04, content)
    big = bytes(70000)
    data = b"\x04\x83\x01\x11\x70" + big
    assert impl.read_tlv(data) == (0x04, 5, 5 + 70000)


def test_read_tlv_window(impl):
    data = bytes.fromhex("30060201010401ff")
    tag, start, end = impl.read_tlv(data)
    assert (tag, start, end) == (0x30, 2, 8)
    assert impl.read_tlv(data, start, end) == (0x02, 4, 5)
    assert impl.read_tlv(data, 5, end) == (0x04, 7, 8)
    # An element that fits in the data but not in the window is refused.
    with pytest.raises(DERError) as exc:
        impl.read_tlv(data, 5, 7)
    assert exc.value.code == DERErrorCode.TRUNCATED_CONTENT


@pytest.mark.parametrize(
    ("data", "code", "offset"),
    [
        (b"", DERErrorCode.TRUNCATED_TAG, 0),
        (b"\x30", DERErrorCode.TRUNCATED_LENGTH, 0),
        (b"\x30\x05\x02\x01", DERErrorCode.TRUNCATED_CONTENT, 0),
        (b"\x30\x82\x01", DERErrorCode.TRUNCATED_LENGTH, 0),
        (b"\x1f\x81\x00\x00", DERErrorCode.HIGH_TAG_NUMBER, 0),
        (b"\x30\x02\x00\x00", DERErrorCode.END_OF_CONTENTS_TAG, 2),
        (b"\x30\x80\x02\x01\x01\x00\x00", DERErrorCode.INDEFINITE_LENGTH, 0),
        (b"\x04\xff", DERErrorCode.RESERVED_LENGTH, 0),
        (b"\x04\x85\x01\x00\x00\x00\x00", DERErrorCode.LENGTH_TOO_LARGE, 0),
        (b"\x04\x81\x05abcde", DERErrorCode.NON_MINIMAL_LENGTH, 0),
        (b"\x04\x82\x00\x80" + bytes(128), DERErrorCode.NON_MINIMAL_LENGTH, 0),
        (b"\x04\x84\xff\xff\xff\xff", DERErrorCode.TRUNCATED_CONTENT, 0),
        (b"\x05\x00\x05\x00", DERErrorCode.TRAILING_DATA, 2),
        (b"\x30\x04\x30\x02\x30\x00", DERErrorCode.TOO_DEEP, 4),
    ],
    ids=lambda v: v.name if isinstance(v, DERErrorCode) else None,
)
def test_malformed(impl, data, code, offset):
    with pytest.raises(DERError) as exc:
        impl.parse_der(data, max_depth=2)
    assert (exc.value.code, exc.value.offset) == (code, offset)
    assert str(exc.value).endswith(f"(element at offset {offset})")


def test_depth_cap_allows_exactly_max(impl):
    data = b"\x05\x00"
    for _ in range(4):
        data = b"\x30" + bytes([len(data)]) + data
    assert impl.parse_der(data, max_depth=4)
    with pytest.raises(DERError):
        impl.parse_der(data, max_depth=3)


def test_type_and_value_errors(impl):
    with pytest.raises(TypeError, match="data must be bytes, not bytearray"):
        impl.parse_der(bytearray(b"\x05\x00"))
    with pytest.raises(TypeError, match="data must be bytes, not str"):
        impl.read_tlv("05 00")
    with pytest.raises(ValueError, match="max_depth must be at least 1"):
        impl.parse_der(b"\x05\x00", max_depth=0)
    for offset, end in ((-1, -1), (3, -1), (1, 0), (0, 5)):
        with pytest.raises(DERError) as exc:
            impl.read_tlv(b"\x05\x00", offset, end)
        assert exc.value.code == DERErrorCode.BAD_BOUNDS


def _outcome(func, *args):
    try:
        return ("ok", func(*args))
    except DERError as exc:
        return ("error", exc.code, exc.offset, str(exc))


VECTORS = Path(__file__).with_name("vectors")
SEEDS = [
    bytes.fromhex("300902010530040402abcd"),
    b"\x30\x81\x80" + b"\x04\x7e" + bytes(126),
    *(path.read_bytes() for path in sorted(VECTORS.glob("req-sha*.der"))),  # from openssl
]


def test_real_requests_parse(impl):
    for seed in SEEDS[2:]:
        tag, children = impl.parse_der(seed)
        assert tag == 0x30 and children[0][0] == 0x30  # OCSPRequest { TBSRequest ... }


@needs_native
def test_native_and_python_agree_on_mutations():
    """Bounded differential run; the long campaign is tests/fuzz_ocsp.py."""
    _native = native_module("va._fastocsp")
    rng = random.Random(20261126)
    checked = 0
    for seed in SEEDS:
        for _ in range(1000):
            data = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                op = rng.random()
                pos = rng.randrange(len(data) + 1)
                if op < 0.5 and data:
                    data[min(pos, len(data) - 1)] = rng.randrange(256)
                elif op < 0.75:
                    data.insert(pos, rng.randrange(256))
                elif data:
                    del data[min(pos, len(data) - 1)]
            sample = bytes(data[: rng.randint(0, len(data))] if rng.random() < 0.2 else data)
            for depth in (1, 3, 32):
                assert _outcome(_native.parse_der, sample, depth) == _outcome(
                    _fastocsp_py.parse_der, sample, depth
                ), sample.hex()
            assert _outcome(_native.read_tlv, sample) == _outcome(_fastocsp_py.read_tlv, sample)
            checked += 1
    assert len(SEEDS) == 6  # two made here, four openssl requests
    assert checked == len(SEEDS) * 1000
