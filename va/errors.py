"""Exceptions raised by the OCSP core, native and pure-Python alike.

Both implementations raise :class:`DERError` with the same code, offset and
message for the same input; the tests compare them.
"""

from enum import IntEnum


class DERErrorCode(IntEnum):
    """Why a DER encoding was refused. Values are shared with the native core."""

    TRUNCATED_TAG = 1
    TRUNCATED_LENGTH = 2
    TRUNCATED_CONTENT = 3
    HIGH_TAG_NUMBER = 4
    END_OF_CONTENTS_TAG = 5
    INDEFINITE_LENGTH = 6
    RESERVED_LENGTH = 7
    LENGTH_TOO_LARGE = 8
    NON_MINIMAL_LENGTH = 9
    TOO_DEEP = 10
    TRAILING_DATA = 11
    BAD_BOUNDS = 12


_MESSAGES = {
    DERErrorCode.TRUNCATED_TAG: "truncated: expected a tag",
    DERErrorCode.TRUNCATED_LENGTH: "truncated: the length field runs past the end",
    DERErrorCode.TRUNCATED_CONTENT: "truncated: the content is longer than the data left",
    DERErrorCode.HIGH_TAG_NUMBER: "high tag number form is not used by OCSP and is refused",
    DERErrorCode.END_OF_CONTENTS_TAG: "end-of-contents tag (0x00) is not allowed in DER",
    DERErrorCode.INDEFINITE_LENGTH: "indefinite length is not allowed in DER",
    DERErrorCode.RESERVED_LENGTH: "length octet 0xff is reserved (X.690 8.1.3.5)",
    DERErrorCode.LENGTH_TOO_LARGE: "length field longer than 4 octets",
    DERErrorCode.NON_MINIMAL_LENGTH: "length is not minimally encoded (X.690 10.1)",
    DERErrorCode.TOO_DEEP: "nesting deeper than the allowed maximum",
    DERErrorCode.TRAILING_DATA: "trailing data after the outermost element",
    DERErrorCode.BAD_BOUNDS: "offset/end outside the data",
}


class OCSPCoreError(ValueError):
    """Base class for input the OCSP core refuses."""


class DERError(OCSPCoreError):
    """Malformed DER. ``code`` is a :class:`DERErrorCode`, ``offset`` the byte
    offset of the element (tag octet) that could not be read."""

    def __init__(self, code: int, offset: int):
        self.code = DERErrorCode(code)
        self.offset = offset
        super().__init__(f"{_MESSAGES[self.code]} (element at offset {offset})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DERError) and (self.code, self.offset) == (
            other.code,
            other.offset,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.offset))


class RequestErrorCode(IntEnum):
    """Why an OCSPRequest was refused (all answered with malformedRequest)."""

    WRONG_TAG = 20
    BAD_VERSION = 21
    EMPTY_REQUEST_LIST = 22
    TOO_MANY_CERTIDS = 23
    BAD_HASH_LENGTH = 24
    BAD_ALGORITHM = 25
    BAD_SERIAL = 26
    SERIAL_TOO_LONG = 27
    BAD_NONCE = 28
    DUPLICATE_EXTENSION = 29
    UNSUPPORTED_CRITICAL_EXTENSION = 30
    BAD_BOOLEAN = 31
    TRAILING_DATA = 32


_REQUEST_MESSAGES = {
    RequestErrorCode.WRONG_TAG: "unexpected element",
    RequestErrorCode.BAD_VERSION: "unsupported request version (only v1)",
    RequestErrorCode.EMPTY_REQUEST_LIST: "the request list is empty",
    RequestErrorCode.TOO_MANY_CERTIDS: "more CertIDs than this responder answers in one request",
    RequestErrorCode.BAD_HASH_LENGTH: "issuer name or key hash length does not fit the algorithm",
    RequestErrorCode.BAD_ALGORITHM: "malformed hash AlgorithmIdentifier",
    RequestErrorCode.BAD_SERIAL: "serial number is not a minimally encoded INTEGER",
    RequestErrorCode.SERIAL_TOO_LONG: "serial number longer than 20 octets (RFC 5280 4.1.2.2)",
    RequestErrorCode.BAD_NONCE: "nonce must be an OCTET STRING of 1 to 32 octets (RFC 8954)",
    RequestErrorCode.DUPLICATE_EXTENSION: "the same extension appears twice",
    RequestErrorCode.UNSUPPORTED_CRITICAL_EXTENSION: "unsupported critical extension",
    RequestErrorCode.BAD_BOOLEAN: "BOOLEAN is not DER (0x00 or 0xff)",
    RequestErrorCode.TRAILING_DATA: "trailing data inside an element",
}


class RequestError(OCSPCoreError):
    """A well-formed DER that is not an acceptable OCSPRequest."""

    def __init__(self, code: int, offset: int):
        self.code = RequestErrorCode(code)
        self.offset = offset
        super().__init__(f"{_REQUEST_MESSAGES[self.code]} (element at offset {offset})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestError) and (self.code, self.offset) == (
            other.code,
            other.offset,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.offset))
