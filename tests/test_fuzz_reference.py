"""The fuzzer's cryptography oracle (tests/fuzz_reference.py): it reports what
it should, and each listed exception is a real case, met by an input."""

from pathlib import Path

import pytest

from tests import fuzz_reference
from tests.vectors.make_malformed import (
    GOOD,
    REQUESTOR,
    certid,
    request,
    seq,
    single,
    tbs_request,
    tlv,
)
from va import _fastocsp_py as twin
from va.errors import RequestError, RequestErrorCode

VECTORS = Path(__file__).with_name("vectors")


def _ours(data: bytes):
    try:
        return twin.parse_ocsp_request(data)
    except (RequestError, ValueError) as exc:
        return exc


def _named(name: bytes) -> bytes:
    return tbs_request(tlv(0xA1, name), seq(seq(certid())))


# One input per STRICTER case: we accept it, cryptography refuses it.
STRICTER_INPUTS = {
    "several CertIDs": (VECTORS / "req-sha1-two-certids.der").read_bytes(),
    "OBJECT IDENTIFIER over 63 octets": request(
        certid(alg=seq(tlv(0x06, b"\x2a" + b"\x01" * 63), b"\x05\x00"), hash_len=16)
    ),
    "OBJECT IDENTIFIER arc of 2**128 or more": request(
        certid(alg=seq(tlv(0x06, b"\x2a" + b"\xff" * 19 + b"\x7f"), b"\x05\x00"), hash_len=16)
    ),
    "character set of a directoryName's attribute value": _named(
        tlv(0xA4, seq(tlv(0x31, seq(tlv(0x06, b"\x55\x04\x03"), tlv(0x13, b"a@b")))))
    ),
    "a non-critical AcceptableResponses extension's value": request(
        certid(),
        extensions=seq(
            tlv(0x06, fuzz_reference.ACCEPTABLE_RESPONSES), tlv(0x04, tlv(0x04, b"not OIDs"))
        ),
    ),
    "parameters of a CertID hash algorithm we do not know": request(
        # dsa-with-sha224 with NULL parameters (RFC 5758 3.1 has them absent)
        certid(alg=seq(tlv(0x06, bytes.fromhex("608648016503040301")), b"\x05\x00"))
    ),
}


def test_every_stricter_case_has_an_input():
    assert set(STRICTER_INPUTS) == {name for name, _, _ in fuzz_reference.STRICTER}


@pytest.mark.parametrize("name", sorted(STRICTER_INPUTS))
def test_each_stricter_case_is_recognized(name):
    data = STRICTER_INPUTS[name]
    ours = _ours(data)
    assert isinstance(ours, tuple), ours  # we accept it
    refusal = fuzz_reference.reference(data)
    if isinstance(refusal, str):  # cryptography does not, in this release
        assert fuzz_reference.why_allowed(data, ours, refusal).startswith(name)
    assert fuzz_reference.problem(data, ours) is None


def test_a_version_other_than_v1_is_required_refused():
    """RFC 6960 4.1.1 defines v1 only; cryptography reads the version from release 50 on."""
    data = tbs_request(tlv(0xA0, tlv(0x02, b"\x01")), seq(seq(certid())))
    ours = _ours(data)
    assert isinstance(ours, RequestError) and ours.code == RequestErrorCode.BAD_VERSION
    assert fuzz_reference.why_required(data, ours) is not None
    assert fuzz_reference.problem(data, ours) is None


# One input per REQUIRED code: cryptography accepts it, we refuse it.
REQUIRED_INPUTS = {
    RequestErrorCode.SERIAL_TOO_LONG: "req-invalid-serial-too-long.der",
    RequestErrorCode.BAD_HASH_LENGTH: "req-invalid-hash-length.der",
    RequestErrorCode.BAD_NONCE: "req-invalid-nonce-129-octets.der",
    # cryptography checks requestExtensions for repeats, not singleRequestExtensions
    RequestErrorCode.DUPLICATE_EXTENSION: tbs_request(
        single(certid(), 2 * seq(tlv(0x06, b"\x2a\x03"), tlv(0x04, b"")))
    ),
    RequestErrorCode.UNSUPPORTED_CRITICAL_EXTENSION: "req-invalid-unknown-critical-extension.der",
    RequestErrorCode.BAD_IA5_STRING: "req-invalid-requestor-name-not-ia5.der",
    RequestErrorCode.BAD_BIT_STRING: "req-invalid-signature-bit-string-unused-bits.der",
}


@pytest.mark.parametrize("code", sorted(REQUIRED_INPUTS))
def test_required_refusals_are_not_findings(code):
    data = REQUIRED_INPUTS[code]
    data = data if isinstance(data, bytes) else (VECTORS / data).read_bytes()
    ours = _ours(data)
    assert isinstance(ours, RequestError) and ours.code == code
    assert not isinstance(fuzz_reference.reference(data), str)  # cryptography accepts it
    assert fuzz_reference.why_required(data, ours) is not None
    assert fuzz_reference.problem(data, ours) is None


def test_an_unknown_algorithms_null_with_content_is_required_refused():
    """X.690 8.8.2, where cryptography does not look (an unknown algorithm's parameters)."""
    md5 = seq(tlv(0x06, bytes.fromhex("2a864886f70d0205")), b"\x05\x01\x00")
    data = request(certid(alg=md5, hash_len=16))
    ours = _ours(data)
    assert ours.code == RequestErrorCode.BAD_ALGORITHM
    assert fuzz_reference.problem(data, ours) is None


def test_accepting_what_cryptography_refuses_is_a_finding():
    """An encoded DEFAULT, as the parser took it before it was strict."""
    data = (VECTORS / "req-invalid-critical-false-encoded.der").read_bytes()
    accepted = twin.parse_ocsp_request(GOOD)
    found = fuzz_reference.problem(data, accepted)
    assert found.startswith("cryptography refuses what we accept") and "EncodedDefault" in found


def test_refusing_without_a_reason_is_a_finding():
    wrong = RequestError(RequestErrorCode.WRONG_TAG, 4)
    found = fuzz_reference.problem(GOOD, wrong)
    assert found.startswith("cryptography accepts what we refuse")


def test_a_different_reading_is_a_finding():
    certids, nonce = twin.parse_ocsp_request(GOOD)
    other_serial = ((*certids[0][:3], b"\x07", certids[0][4]),)
    assert fuzz_reference.problem(GOOD, (other_serial, nonce)).startswith("serial")
    assert fuzz_reference.problem(GOOD, (certids, None)).startswith("nonce")
    assert fuzz_reference.problem(GOOD, (certids, nonce)) is None


def test_errors_inside_the_signature_are_required():
    data = (VECTORS / "req-invalid-oid-padded-signature-algorithm.der").read_bytes()
    ours = _ours(data)
    assert ours.code == RequestErrorCode.BAD_OID
    assert fuzz_reference.why_required(data, ours) == fuzz_reference.IN_SIGNATURE


def test_the_requestor_name_vector_is_read_alike():
    data = tbs_request(REQUESTOR, seq(seq(certid())))
    assert fuzz_reference.problem(data, twin.parse_ocsp_request(data)) is None
