"""OCSP request parsing, native and pure-Python: same answer for every input."""

import random
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from tests.conftest import native_module, needs_native
from tests.vectors.make_malformed import (
    CERTIFICATE,
    GOOD_TBS,
    NONCE_OID,
    certid,
    nonce_ext,
    request,
    seq,
    signed,
    single,
    tbs_request,
    tlv,
)
from va import _fastocsp_py
from va.errors import DERError, DERErrorCode, RequestError, RequestErrorCode

VECTORS = Path(__file__).with_name("vectors")
pytestmark = pytest.mark.codec("va._fastocsp", "va._fastocsp_py")


VALID = [
    "req-sha1-one-certid-nonce.der",
    "req-sha256-one-certid.der",
    "req-sha1-signed-nonce.der",
    "req-valid-sha1-nonce-built.der",
    "req-valid-nonce-33-octets-built.der",
    "req-valid-nonce-128-octets-built.der",
    "req-valid-requestor-name-built.der",
    "req-valid-signed-built.der",
]


def test_every_valid_vector_is_listed():
    built = {p.name for p in VECTORS.glob("req-valid-*.der")}
    assert built <= set(VALID)


@pytest.mark.parametrize("name", VALID)
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
        assert nonce == tlv(0x04, ext[0].value.nonce)
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
    "req-invalid-nonce-129-octets.der": (RequestError, RequestErrorCode.BAD_NONCE),
    "req-invalid-nonce-empty.der": (RequestError, RequestErrorCode.BAD_NONCE),
    "req-invalid-nonce-not-octet-string.der": (RequestError, RequestErrorCode.BAD_NONCE),
    "req-invalid-duplicate-nonce.der": (RequestError, RequestErrorCode.DUPLICATE_EXTENSION),
    "req-invalid-unknown-critical-extension.der": (
        RequestError,
        RequestErrorCode.UNSUPPORTED_CRITICAL_EXTENSION,
    ),
    "req-invalid-bad-boolean.der": (RequestError, RequestErrorCode.BAD_BOOLEAN),
    "req-invalid-version-2.der": (RequestError, RequestErrorCode.BAD_VERSION),
    "req-invalid-duplicate-extension.der": (RequestError, RequestErrorCode.DUPLICATE_EXTENSION),
    "req-invalid-hash-null-with-content.der": (RequestError, RequestErrorCode.BAD_ALGORITHM),
    "req-invalid-version-v1-encoded.der": (RequestError, RequestErrorCode.ENCODED_DEFAULT),
    "req-invalid-critical-false-encoded.der": (RequestError, RequestErrorCode.ENCODED_DEFAULT),
    "req-invalid-single-extension-critical-false-encoded.der": (
        RequestError,
        RequestErrorCode.ENCODED_DEFAULT,
    ),
    "req-invalid-oid-padded-hash-algorithm.der": (RequestError, RequestErrorCode.BAD_OID),
    "req-invalid-oid-unterminated-hash-algorithm.der": (RequestError, RequestErrorCode.BAD_OID),
    "req-invalid-oid-empty-hash-algorithm.der": (RequestError, RequestErrorCode.BAD_OID),
    "req-invalid-oid-padded-nonce.der": (RequestError, RequestErrorCode.BAD_OID),
    "req-invalid-oid-padded-single-extension.der": (RequestError, RequestErrorCode.BAD_OID),
    "req-invalid-oid-padded-signature-algorithm.der": (RequestError, RequestErrorCode.BAD_OID),
    "req-invalid-requestor-name-primitive.der": (RequestError, RequestErrorCode.WRONG_TAG),
    "req-invalid-requestor-name-not-general-name.der": (
        RequestError,
        RequestErrorCode.BAD_GENERAL_NAME,
    ),
    "req-invalid-requestor-name-two-names.der": (RequestError, RequestErrorCode.TRAILING_DATA),
    "req-invalid-requestor-name-not-ia5.der": (RequestError, RequestErrorCode.BAD_IA5_STRING),
    "req-invalid-requestor-name-unsorted-rdn.der": (RequestError, RequestErrorCode.UNSORTED_SET),
    "req-invalid-requestor-name-registered-id-oid.der": (RequestError, RequestErrorCode.BAD_OID),
    "req-invalid-signature-garbage.der": (DERError, DERErrorCode.TRUNCATED_CONTENT),
    "req-invalid-signature-not-sequence.der": (RequestError, RequestErrorCode.WRONG_TAG),
    "req-invalid-signature-trailing.der": (RequestError, RequestErrorCode.TRAILING_DATA),
    "req-invalid-signature-bit-string-unused-bits.der": (
        RequestError,
        RequestErrorCode.BAD_BIT_STRING,
    ),
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
    md5 = seq(tlv(0x06, bytes.fromhex("2a864886f70d0205")), b"\x05\x00")
    certids, _ = impl.parse_ocsp_request(request(certid(alg=md5, hash_len=16)))
    assert certids[0][0] == _fastocsp_py.HASH_UNKNOWN


def _code(impl, data):
    """The error code ``data`` gets, or None when it is accepted."""
    try:
        impl.parse_ocsp_request(data)
    except (DERError, RequestError) as exc:
        return exc.code
    return None


@pytest.mark.parametrize(
    ("octets", "accepted"),
    [
        (0, False),
        (1, True),
        (15, True),
        (16, True),
        (32, True),
        (33, True),
        (127, True),
        (128, True),
        (129, False),
        (200, False),
    ],
)
def test_nonce_lengths_follow_rfc_9654(impl, octets, accepted):
    """RFC 9654 2.1: 1 to 128 octets; 0 or more is malformedRequest."""
    data = request(certid(), extensions=nonce_ext(b"\x42" * octets))
    if accepted:
        assert impl.parse_ocsp_request(data)[1] == tlv(0x04, b"\x42" * octets)
    else:
        assert _code(impl, data) == RequestErrorCode.BAD_NONCE


def _with_oid(where: str, oid: bytes) -> bytes:
    """A request whose OBJECT IDENTIFIER at ``where`` has content ``oid``."""
    if where == "hash algorithm":
        return request(certid(alg=seq(tlv(0x06, oid), b"\x05\x00"), hash_len=16))
    if where == "request extension":
        return request(certid(), extensions=seq(tlv(0x06, oid), tlv(0x04, b"")))
    if where == "single extension":
        return tbs_request(single(certid(), seq(tlv(0x06, oid), tlv(0x04, b""))))
    if where == "signature algorithm":
        body = seq(seq(tlv(0x06, oid)), tlv(0x03, b"\x00"))
        return seq(seq(seq(seq(certid()))), tlv(0xA0, body))
    names = {
        "otherName type-id": tlv(0xA0, tlv(0x06, oid) + tlv(0xA0, tlv(0x04, b"x"))),
        "registeredID": tlv(0x88, oid),
        "attribute type": tlv(0xA4, seq(tlv(0x31, seq(tlv(0x06, oid), tlv(0x0C, b"x"))))),
    }
    return tbs_request(tlv(0xA1, names[where]), seq(seq(certid())))


OID_PLACES = [
    "hash algorithm",
    "request extension",
    "single extension",
    "signature algorithm",
    "otherName type-id",
    "registeredID",
    "attribute type",
]


@pytest.mark.parametrize("where", OID_PLACES)
@pytest.mark.parametrize(
    "oid",
    [b"", b"\x80\x01", b"\x2a\x80\x03", b"\x2a\x03\x81", b"\x2a\x86"],
    ids=["empty", "padded-first", "padded", "unterminated", "unterminated-multi"],
)
def test_every_oid_read_is_minimal(impl, where, oid):
    """X.690 8.19.2, wherever the parser reads an OBJECT IDENTIFIER."""
    assert _code(impl, _with_oid(where, oid)) == RequestErrorCode.BAD_OID


@pytest.mark.parametrize("where", OID_PLACES)
def test_minimal_oids_are_accepted_everywhere(impl, where):
    # 1.2.16385.3: 0x80 inside a subidentifier (81 80 01) is not padding.
    assert _code(impl, _with_oid(where, b"\x2a\x81\x80\x01\x03")) is None


GENERAL_NAMES = {
    "otherName": tlv(0xA0, tlv(0x06, b"\x2a\x03") + tlv(0xA0, tlv(0x0C, b"x"))),
    "rfc822Name": tlv(0x81, b"requestor@example.com"),
    "dNSName": tlv(0x82, b"requestor.example"),
    "x400Address": tlv(0xA3, seq()),
    "directoryName": tlv(0xA4, seq(tlv(0x31, seq(tlv(0x06, b"\x55\x04\x03"), tlv(0x0C, b"R"))))),
    "ediPartyName": tlv(0xA5, tlv(0xA1, tlv(0x0C, b"party"))),
    "uniformResourceIdentifier": tlv(0x86, b"https://requestor.example/"),
    "iPAddress": tlv(0x87, b"\x7f\x00\x00\x01"),
    "registeredID": tlv(0x88, b"\x2a\x03"),
}


def _named(name: bytes) -> bytes:
    return tbs_request(tlv(0xA1, name), seq(seq(certid())))


@pytest.mark.parametrize("choice", sorted(GENERAL_NAMES))
def test_each_general_name_choice_is_accepted(impl, choice):
    assert _code(impl, _named(GENERAL_NAMES[choice])) is None


@pytest.mark.parametrize("tag", [0x80, 0x83, 0x84, 0x85, 0x89, 0xA1, 0xA2, 0xA6, 0xA8, 0x30, 0x0C])
def test_other_tags_are_not_general_names(impl, tag):
    """RFC 5280 4.2.1.6: [0] to [8], each in its one form (X.690 10.2: the
    string types primitive)."""
    assert _code(impl, _named(tlv(tag, b""))) == RequestErrorCode.BAD_GENERAL_NAME


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (tlv(0xA0, tlv(0x06, b"\x2a\x03")), DERErrorCode.TRUNCATED_TAG),  # no value
        (tlv(0xA0, tlv(0x06, b"\x2a\x03") + tlv(0x80, b"x")), RequestErrorCode.WRONG_TAG),
        (
            tlv(0xA0, tlv(0x06, b"\x2a\x03") + tlv(0xA0, tlv(0x0C, b"x") + tlv(0x0C, b"y"))),
            RequestErrorCode.TRAILING_DATA,
        ),
        (tlv(0xA4, tlv(0x04, b"x")), RequestErrorCode.WRONG_TAG),  # not a Name
        (tlv(0xA4, seq(seq())), RequestErrorCode.WRONG_TAG),  # an RDN that is not a SET
        (
            tlv(0xA4, seq(tlv(0x31, seq(tlv(0x06, b"\x55\x04\x03"))))),
            DERErrorCode.TRUNCATED_TAG,
        ),  # no attribute value
        (tlv(0x86, b"https://\xe2\x82\xac.example/"), RequestErrorCode.BAD_IA5_STRING),
    ],
)
def test_malformed_general_names(impl, name, code):
    assert _code(impl, _named(name)) == code


def test_set_of_order_is_by_encoding(impl):
    """X.690 11.6: the whole encodings ascend (length octets included), equal
    ones may repeat."""
    short = seq(tlv(0x06, b"\x55\x04\x0a"), tlv(0x0C, b"Zz"))  # 30 07 ...
    long = seq(tlv(0x06, b"\x55\x04\x03"), tlv(0x0C, b"Aaaa"))  # 30 09 ...
    rdn = lambda *atvs: _named(tlv(0xA4, seq(tlv(0x31, b"".join(atvs)))))  # noqa: E731
    assert _code(impl, rdn(short, long)) is None
    assert _code(impl, rdn(short, short)) is None
    assert _code(impl, rdn(long, short)) == RequestErrorCode.UNSORTED_SET


@pytest.mark.parametrize(
    ("params", "known", "code"),
    [
        (b"", True, None),
        (b"\x05\x00", True, None),
        (b"\x05\x00", False, None),
        (tlv(0x04, b"params"), False, None),  # ANY DEFINED BY an algorithm we do not know
        (tlv(0x04, b"params"), True, RequestErrorCode.WRONG_TAG),  # RFC 5754 2: NULL or absent
        (b"\x05\x01\x00", True, RequestErrorCode.BAD_ALGORITHM),  # X.690 8.8.2
        (b"\x05\x01\x00", False, RequestErrorCode.BAD_ALGORITHM),
        (b"\x05\x00\x05\x00", False, RequestErrorCode.BAD_ALGORITHM),
    ],
)
def test_hash_algorithm_parameters(impl, params, known, code):
    oid = bytes.fromhex("608648016503040201" if known else "2a864886f70d0205")
    data = request(certid(alg=seq(tlv(0x06, oid), params), hash_len=32 if known else 16))
    assert _code(impl, data) == code


@pytest.mark.parametrize(
    ("content", "accepted"),
    [
        (b"\x00", True),  # no bits
        (b"\x00\xab\xcd", True),
        (b"\x01\x02", True),  # one unused bit, zero
        (b"\x07\x80", True),
        (b"", False),  # no initial octet
        (b"\x01", False),  # unused bits but no others
        (b"\x08\x00", False),  # more than 7 unused
        (b"\x01\x01", False),  # an unused bit set
        (b"\x04\x18", False),
    ],
)
def test_signature_bit_string_is_der(impl, content, accepted):
    data = signed(GOOD_TBS, bits=tlv(0x03, content))
    assert _code(impl, data) == (None if accepted else RequestErrorCode.BAD_BIT_STRING)


@pytest.mark.parametrize(
    ("certs", "code"),
    [
        (b"", None),  # an empty SEQUENCE OF
        (CERTIFICATE + CERTIFICATE, None),
        (tlv(0x04, b"x"), RequestErrorCode.WRONG_TAG),  # not a Certificate
    ],
)
def test_signature_certs(impl, certs, code):
    assert _code(impl, signed(GOOD_TBS, certs=certs)) == code


def test_signature_algorithm_parameters_are_one_element(impl):
    good = seq(
        GOOD_TBS,
        tlv(0xA0, seq(seq(tlv(0x06, b"\x2b\x65\x70"), tlv(0x04, b"p")), tlv(0x03, b"\x00"))),
    )
    assert _code(impl, good) is None
    two = seq(
        GOOD_TBS,
        tlv(0xA0, seq(seq(tlv(0x06, b"\x2b\x65\x70"), b"\x05\x00\x05\x00"), tlv(0x03, b"\x00"))),
    )
    assert _code(impl, two) == RequestErrorCode.BAD_ALGORITHM


def test_critical_true_is_still_read(impl):
    """Only FALSE, the DEFAULT, may not be encoded: a critical nonce is a nonce."""
    critical_nonce = seq(NONCE_OID, b"\x01\x01\xff", tlv(0x04, tlv(0x04, b"\x42" * 16)))
    data = request(certid(), extensions=critical_nonce)
    assert impl.parse_ocsp_request(data)[1] == tlv(0x04, b"\x42" * 16)


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
