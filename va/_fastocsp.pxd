# Declarations of the native OCSP core (va/_fastocsp.pyx); the status codes
# are va.errors.DERErrorCode's and RequestErrorCode's values.

cdef enum DerStatus:
    DER_OK = 0
    DER_TRUNCATED_TAG = 1
    DER_TRUNCATED_LENGTH = 2
    DER_TRUNCATED_CONTENT = 3
    DER_HIGH_TAG_NUMBER = 4
    DER_END_OF_CONTENTS_TAG = 5
    DER_INDEFINITE_LENGTH = 6
    DER_RESERVED_LENGTH = 7
    DER_LENGTH_TOO_LARGE = 8
    DER_NON_MINIMAL_LENGTH = 9
    DER_TOO_DEEP = 10
    DER_TRAILING_DATA = 11
    DER_BAD_BOUNDS = 12

# Why a well-formed DER is not an acceptable OCSPRequest (va.errors.RequestErrorCode).
cdef enum RequestStatus:
    REQ_WRONG_TAG = 20
    REQ_BAD_VERSION = 21
    REQ_EMPTY_REQUEST_LIST = 22
    REQ_TOO_MANY_CERTIDS = 23
    REQ_BAD_HASH_LENGTH = 24
    REQ_BAD_ALGORITHM = 25
    REQ_BAD_SERIAL = 26
    REQ_SERIAL_TOO_LONG = 27
    REQ_BAD_NONCE = 28
    REQ_DUPLICATE_EXTENSION = 29
    REQ_UNSUPPORTED_CRITICAL_EXTENSION = 30
    REQ_BAD_BOOLEAN = 31
    REQ_TRAILING_DATA = 32
    REQ_ENCODED_DEFAULT = 33
    REQ_BAD_OID = 34
    REQ_BAD_GENERAL_NAME = 35
    REQ_BAD_IA5_STRING = 36
    REQ_BAD_BIT_STRING = 37
    REQ_UNSORTED_SET = 38

# One element's header: tag octet, and the content window [start, end).
cdef struct Tlv:
    unsigned char tag
    Py_ssize_t start
    Py_ssize_t end

cdef DerStatus der_read_header(const unsigned char* buf, Py_ssize_t pos,
                               Py_ssize_t end, Tlv* out) noexcept nogil
