"""Every exception the VA raises, in one plain module that imports nothing
else of the VA (as uvloop's and asyncpg's ``exceptions``), so the native
modules and their pure-Python twins raise the very same classes. Those a
front end reports to an operator (a responder key, a failed LMDB write) are
``RevocaError``s with a code (common/errors.py), mapped like any other.

The OCSP core (``va._fastocsp``, its twin ``va._fastocsp_py``) refuses input
with a :class:`DERError` (the DER itself) or a :class:`RequestError` (well-formed
DER that is not an acceptable OCSPRequest): a code, the offset of the element
that was refused, and a message; both implementations raise the same code,
offset and message for the same input, and the tests compare them.
"""

from enum import Enum, IntEnum
from typing import ClassVar

from common.errors import RevocaError
from common.listen import PortInUseError  # noqa: F401 (the VA's listeners raise it)


class DERErrorCode(IntEnum):
    """Why a DER encoding was refused. Values are shared with the native core
    (``DerStatus`` in va/_fastocsp.pxd)."""

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


class RequestErrorCode(IntEnum):
    """Why an OCSPRequest was refused (all answered with malformedRequest).
    Values are shared with the native core (``RequestStatus`` in
    va/_fastocsp.pxd); they start at 20, apart from the DER codes."""

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
    ENCODED_DEFAULT = 33
    BAD_OID = 34
    BAD_GENERAL_NAME = 35
    BAD_IA5_STRING = 36
    BAD_BIT_STRING = 37
    UNSORTED_SET = 38


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
    RequestErrorCode.WRONG_TAG: "unexpected element",
    RequestErrorCode.BAD_VERSION: "unsupported request version (only v1)",
    RequestErrorCode.EMPTY_REQUEST_LIST: "the request list is empty",
    RequestErrorCode.TOO_MANY_CERTIDS: "more CertIDs than this responder answers in one request",
    RequestErrorCode.BAD_HASH_LENGTH: "issuer name or key hash length does not fit the algorithm",
    RequestErrorCode.BAD_ALGORITHM: "malformed AlgorithmIdentifier parameters",
    RequestErrorCode.BAD_SERIAL: "serial number is not a minimally encoded INTEGER",
    RequestErrorCode.SERIAL_TOO_LONG: "serial number longer than 20 octets (RFC 5280 4.1.2.2)",
    RequestErrorCode.BAD_NONCE: "nonce must be an OCTET STRING of 1 to 128 octets (RFC 9654 2.1)",
    RequestErrorCode.DUPLICATE_EXTENSION: "the same extension appears twice",
    RequestErrorCode.UNSUPPORTED_CRITICAL_EXTENSION: "unsupported critical extension",
    RequestErrorCode.BAD_BOOLEAN: "BOOLEAN is not DER (0x00 or 0xff)",
    RequestErrorCode.TRAILING_DATA: "trailing data inside an element",
    RequestErrorCode.ENCODED_DEFAULT: "a component equal to its DEFAULT is encoded (X.690 11.5)",
    RequestErrorCode.BAD_OID: "OBJECT IDENTIFIER is empty or not minimally encoded (X.690 8.19.2)",
    RequestErrorCode.BAD_GENERAL_NAME: "requestorName is not a GeneralName (RFC 5280 4.2.1.6)",
    RequestErrorCode.BAD_IA5_STRING: "IA5String with an octet above 0x7f (X.680 41, Table 8)",
    RequestErrorCode.BAD_BIT_STRING: "BIT STRING is not DER (X.690 8.6.2, 11.2)",
    RequestErrorCode.UNSORTED_SET: "SET OF components not in ascending order (X.690 11.6)",
}


class OCSPCoreError(ValueError):
    """Input the OCSP core refuses. ``code`` is one of the subclass's codes,
    ``offset`` the byte offset of the element (tag octet) that was refused.
    Two errors are equal when their class, code and offset are."""

    codes: ClassVar[type[IntEnum]]

    def __init__(self, code: int, offset: int):
        self.code = self.codes(code)
        self.offset = offset
        super().__init__(f"{_MESSAGES[self.code]} (element at offset {offset})")

    @staticmethod
    def from_code(code: int, offset: int) -> "OCSPCoreError":
        """The error for a native status code: a DER code (below 20) is a
        :class:`DERError`, any other a :class:`RequestError` (the one mapping
        va/_fastocsp.pyx uses)."""
        if code < RequestErrorCode.WRONG_TAG:
            return DERError(code, offset)
        return RequestError(code, offset)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (self.code, self.offset) == (
            other.code,
            other.offset,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.offset))


class DERError(OCSPCoreError):
    """Malformed DER (X.690 section 10); ``code`` is a :class:`DERErrorCode`."""

    codes = DERErrorCode


class RequestError(OCSPCoreError):
    """A well-formed DER that is not an acceptable OCSPRequest (RFC 6960
    4.1.1); ``code`` is a :class:`RequestErrorCode`."""

    codes = RequestErrorCode


# -- keys and signing (va/signing.py, va/_evpsign.pyx) -----------------------


class SigningError(Exception):
    """libcrypto refused to load a key or to sign; the message is libcrypto's
    (va/_evpsign.pyx)."""


class ResponderKeyError(RevocaError, ValueError):
    """A responder key could not be loaded (unreadable, wrong passphrase), or
    does not fit its certificate: a key problem, whoever reports it."""

    code = "key_access"


# -- the status store (va/store.py) ------------------------------------------


class StoreWriteError(RevocaError, RuntimeError):
    """A write transaction failed (disk full, I/O error); nothing was written."""

    code = "store_error"


class StoreFullError(StoreWriteError):
    """The LMDB map is full and may not grow further."""


# -- the publisher's interface and the admin listener ------------------------


class ProtocolError(ValueError):
    """A request the VA refuses (HTTP 400): nothing of it was applied (va/publish.py)."""


class SequenceGapError(ProtocolError):
    """A batch that starts after events the VA has not applied (va/publish.py):
    applying it would skip them for ever. Nothing was applied; the sender
    resends from ``high_water``."""

    code = "sequence_gap"

    def __init__(self, source: str, after: int, high_water: int):
        super().__init__(
            f"source {source!r}: the batch follows seq {after}, but this VA has applied "
            f"events up to seq {high_water} only: send again from after {high_water}"
        )
        self.source = source
        self.after = after
        self.high_water = high_water


class CRLRefusal(Enum):
    """Why the VA refuses a CRL (va/crlcheck.py): the JSON error code of the
    admin listener's answer, its HTTP status, and whether the same bytes may
    be taken later (only once the VA holds the issuer's certificate)."""

    BAD_NAME = ("crl_bad_name", 400, False)
    BAD_HEADER = ("crl_bad_header", 400, False)
    MALFORMED = ("crl_malformed", 400, False)
    INCOMPLETE = ("crl_incomplete", 400, False)
    NUMBER_TOO_LARGE = ("crl_number_too_large", 400, False)
    HEADER_MISMATCH = ("crl_header_mismatch", 400, False)
    UNKNOWN_ISSUER = ("crl_unknown_issuer", 422, True)
    BAD_SIGNATURE = ("crl_bad_signature", 422, False)
    NUMBER_LOWER = ("crl_number_lower", 409, False)
    NUMBER_REUSED = ("crl_number_reused", 409, False)

    def __init__(self, code: str, status: int, transient: bool):
        self.code = code
        self.status = status
        self.transient = transient

    @classmethod
    def of_code(cls, code: object) -> "CRLRefusal | None":
        return next((refusal for refusal in cls if refusal.code == code), None)


class CRLRefused(ProtocolError):
    """A CRL the VA does not store; nothing was stored (va/crlcheck.py)."""

    def __init__(self, refusal: CRLRefusal, message: str):
        super().__init__(message)
        self.refusal = refusal
        self.code = refusal.code
        self.status = refusal.status


# PortInUseError (common/listen.py, imported above): a port this VA should
# listen on is taken, by another program or by another VA (whose SO_REUSEPORT
# would otherwise let the kernel split the connections, va/ports.py).


class WorkerStartError(RuntimeError):
    """A worker process could not start serving (its message says why, as the
    worker logged it); the VA stops rather than restart it in a loop."""


class TokenError(ValueError):
    """The admin token file cannot be used: unreadable, readable by others,
    or too short (va/admin.py)."""


# -- OpenSSL's index.txt (va/openssl_index.py) -------------------------------


class IndexError_(ValueError):  # the trailing underscore: not the builtin IndexError
    """A line of an OpenSSL CA database (index.txt) that cannot be read."""
