"""The VA's exceptions: one module defines them all (va/errors.py), the OCSP
core's two error types share one implementation and keep their messages."""

import re
from pathlib import Path

import pytest

from va import errors
from va.errors import DERError, DERErrorCode, OCSPCoreError, RequestError, RequestErrorCode

pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins

VA = Path(errors.__file__).parent


def test_every_va_exception_is_defined_in_errors():
    """No other VA source (Python or Cython) defines a public exception class
    (a module's private control-flow exception, such as the HTTP parser
    callbacks' stop signal, stays where it is raised and caught)."""
    defining = re.compile(
        r"^class ([A-Za-z]\w*)\(([\w, ]*(?:Error|Exception)[\w, ]*)\)", re.MULTILINE
    )
    found = {}
    for path in sorted([*VA.glob("*.py"), *VA.glob("*.pyx"), *VA.glob("*.pxi")]):
        for name, _base in defining.findall(path.read_text()):
            found.setdefault(path.name, []).append(name)
    assert set(found) == {"errors.py"}, found
    assert set(found["errors.py"]) >= {
        "OCSPCoreError",
        "DERError",
        "RequestError",
        "SigningError",
        "ResponderKeyError",
        "StoreWriteError",
        "StoreFullError",
        "ProtocolError",
        "TokenError",
        "IndexError_",
    }


def test_defining_modules_hand_out_the_same_classes():
    from va import admin, openssl_index, publish, signing, store

    assert store.StoreWriteError is errors.StoreWriteError
    assert store.StoreFullError is errors.StoreFullError
    assert issubclass(errors.StoreFullError, errors.StoreWriteError)
    assert publish.ProtocolError is errors.ProtocolError
    assert admin.TokenError is errors.TokenError
    assert openssl_index.IndexError_ is errors.IndexError_
    assert signing.ResponderKeyError is errors.ResponderKeyError
    assert signing.SigningError is errors.SigningError
    if signing.EVPSigner is not None:
        from va import _evpsign

        assert _evpsign.SigningError is errors.SigningError


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            DERError(DERErrorCode.TRUNCATED_TAG, 0),
            "truncated: expected a tag (element at offset 0)",
        ),
        (
            DERError(DERErrorCode.NON_MINIMAL_LENGTH, 7),
            "length is not minimally encoded (X.690 10.1) (element at offset 7)",
        ),
        (
            RequestError(RequestErrorCode.BAD_NONCE, 12),
            "nonce must be an OCTET STRING of 1 to 128 octets (RFC 9654 2.1)"
            " (element at offset 12)",
        ),
        (
            RequestError(RequestErrorCode.ENCODED_DEFAULT, 9),
            "a component equal to its DEFAULT is encoded (X.690 11.5) (element at offset 9)",
        ),
        (
            RequestError(RequestErrorCode.BAD_OID, 21),
            "OBJECT IDENTIFIER is empty or not minimally encoded (X.690 8.19.2)"
            " (element at offset 21)",
        ),
        (
            RequestError(RequestErrorCode.TRAILING_DATA, 3),
            "trailing data inside an element (element at offset 3)",
        ),
    ],
)
def test_messages(error, message):
    assert str(error) == message
    assert isinstance(error, OCSPCoreError) and isinstance(error, ValueError)


def test_every_code_has_a_message():
    for code in [*DERErrorCode, *RequestErrorCode]:
        kind = DERError if isinstance(code, DERErrorCode) else RequestError
        assert not str(kind(code, 5)).startswith("(")


def test_codes_map_to_their_class():
    """The native core's one mapping: DER codes below 20, request codes from 20."""
    for code in DERErrorCode:
        error = OCSPCoreError.from_code(int(code), 4)
        assert type(error) is DERError and error.code is code and error.offset == 4
    for code in RequestErrorCode:
        error = OCSPCoreError.from_code(int(code), 4)
        assert type(error) is RequestError and error.code is code
    with pytest.raises(ValueError):
        OCSPCoreError.from_code(13, 0)
    with pytest.raises(ValueError):
        RequestError(DERErrorCode.TRAILING_DATA, 0)


def test_equality_is_class_code_and_offset():
    assert DERError(11, 3) == DERError(DERErrorCode.TRAILING_DATA, 3)
    assert hash(DERError(11, 3)) == hash(DERError(11, 3))
    assert DERError(11, 3) != DERError(11, 4)
    assert DERError(11, 3) != RequestError(32, 3)
    assert RequestError(32, 3) == RequestError(RequestErrorCode.TRAILING_DATA, 3)
