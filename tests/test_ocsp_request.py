"""OCSP request parsing, native and pure-Python: same answer for every input."""

import random
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from tests.conftest import native_module, needs_native
from va import _fastocsp_py
from va.errors import DERError, DERErrorCode, RequestError, RequestErrorCode

VECTORS = Path(__file__).with_name("vectors")
pytestmark = pytest.mark.codec("va._fastocsp", "va._fastocsp_py")


@pytest.mark.parametrize(
    "name",
    [
        "req-sha1-one-certid-nonce.der",
        "req-sha256-one-certid.der",
        "req-valid-sha1-nonce-built.der",
    ],
)
def test_matches_cryptography(impl, name):
    data = (VECTORS / name).read_bytes()
    certids, nonce = impl.parse_ocsp_request(data)
    reference = ocsp.load_der_ocsp_request(data)
    (algorithm, name_hash, key_hash, serial, certid_der) = certids[0]
    assert algorithm == {"sha1": 1, "sha256": 2}[reference.hash_algorithm.name]
    assert name_hash == reference.issuer_name_hash
    assert key_hash == reference.issuer_key_hash
    assert int.from_bytes(serial, "big", signed=True) == reference.serial_number
    assert certid_der[0] == 0x30 and certid_der in data
    ext = [e for e in reference.extensions if e.oid.dotted_string == "1.3.6.1.5.5.7.48.1.2"]
    if ext:
        assert nonce == b"\x04" + bytes([len(ext[0].value.nonce)]) + ext[0].value.nonce
    else:
        assert nonce is None


def test_two_certids(impl):
    certids, nonce = impl.parse_ocsp_request((VECTORS / "req-sha1-two-certids.der").read_bytes())
    assert len(certids) == 2 and nonce is None
    assert certids[0][1:3] == certids[1][1:3]  # same issuer
    assert certids[0][3] != certids[1][3]


MALFORMED = {
    "req-invalid-truncated.der": (DERError, DERErrorCode.TRUNCATED_CONTENT),
    "req-invalid-length-overflow.der": (DERError, DERErrorCode.TRUNCATED_CONTENT),
    "req-invalid-length-too-many-octets.der": (DERError, DERErrorCode.LENGTH_TOO_LARGE),
    "req-invalid-indefinite-length.der": (DERError, DERErrorCode.INDEFINITE_LENGTH),
    "req-invalid-non-minimal-length.der": (DERError, DERErrorCode.NON_MINIMAL_LENGTH),
    "req-invalid-trailing-bytes.der": (DERError, DERErrorCode.TRAILING_DATA),
    "req-invalid-empty.der": (DERError, DERErrorCode.TRUNCATED_TAG),
    "req-invalid-wrong-outer-tag.der": (RequestError, RequestErrorCode.WRONG_TAG),
    "req-invalid-deep-nesting.der": (RequestError, RequestErrorCode.WRONG_TAG),
    "req-invalid-empty-request-list.der": (RequestError, RequestErrorCode.EMPTY_REQUEST_LIST),
    "req-invalid-too-many-certids.der": (RequestError, RequestErrorCode.TOO_MANY_CERTIDS),
    "req-invalid-serial-too-long.der": (RequestError, RequestErrorCode.SERIAL_TOO_LONG),
    "req-invalid-serial-non-minimal.der": (RequestError, RequestErrorCode.BAD_SERIAL),
    "req-invalid-serial-empty.der": (RequestError, RequestErrorCode.BAD_SERIAL),
    "req-invalid-hash-length.der": (RequestError, RequestErrorCode.BAD_HASH_LENGTH),
    "req-invalid-sha256-with-sha1-length.der": (RequestError, RequestErrorCode.BAD_HASH_LENGTH),
    "req-invalid-nonce-too-long.der": (RequestError, RequestErrorCode.BAD_NONCE),
    "req-invalid-nonce-empty.der": (RequestError, RequestErrorCode.BAD_NONCE),
    "req-invalid-nonce-not-octet-string.der": (DERError, DERErrorCode.TRUNCATED_CONTENT),
    "req-invalid-duplicate-nonce.der": (RequestError, RequestErrorCode.DUPLICATE_EXTENSION),
    "req-invalid-unknown-critical-extension.der": (
        RequestError,
        RequestErrorCode.UNSUPPORTED_CRITICAL_EXTENSION,
    ),
    "req-invalid-bad-boolean.der": (RequestError, RequestErrorCode.BAD_BOOLEAN),
    "req-invalid-version-2.der": (RequestError, RequestErrorCode.BAD_VERSION),
}


def test_every_malformed_vector_is_listed():
    assert {p.name for p in VECTORS.glob("req-invalid-*.der")} == set(MALFORMED)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed(impl, name):
    error, code = MALFORMED[name]
    with pytest.raises(error) as exc:
        impl.parse_ocsp_request((VECTORS / name).read_bytes())
    assert exc.value.code == code


def test_certid_cap_is_a_parameter(impl):
    data = (VECTORS / "req-sha1-two-certids.der").read_bytes()
    with pytest.raises(RequestError) as exc:
        impl.parse_ocsp_request(data, 1)
    assert exc.value.code == RequestErrorCode.TOO_MANY_CERTIDS
    assert len(impl.parse_ocsp_request(data, 2)[0]) == 2


def test_unknown_hash_algorithm_is_reported_not_refused(impl):
    from tests.vectors.make_malformed import certid, request, seq, tlv

    md5 = seq(tlv(0x06, bytes.fromhex("2a864886f70d0205")), b"\x05\x00")
    certids, _ = impl.parse_ocsp_request(request(certid(alg=md5, hash_len=16)))
    assert certids[0][0] == _fastocsp_py.HASH_UNKNOWN


def _outcome(func, data):
    try:
        return ("ok", func(data))
    except (DERError, RequestError) as exc:
        return (type(exc).__name__, exc.code, exc.offset, str(exc))


@needs_native
def test_native_and_python_agree_on_mutated_requests():
    _native = native_module("va._fastocsp")
    seeds = [p.read_bytes() for p in sorted(VECTORS.glob("req-*.der")) if p.stat().st_size < 600]
    rng = random.Random(6960)
    for _ in range(20000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            if not data:
                break
            pos = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.6:
                data[pos] = rng.randrange(256)
            elif choice < 0.8:
                del data[pos]
            else:
                data.insert(pos, rng.randrange(256))
        sample = bytes(data)
        assert _outcome(_native.parse_ocsp_request, sample) == _outcome(
            _fastocsp_py.parse_ocsp_request, sample
        ), sample.hex()
