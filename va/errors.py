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
