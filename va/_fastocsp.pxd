# Declarations shared by the native OCSP core's modules.

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

# One element's header: tag octet, and the content window [start, end).
cdef struct Tlv:
    unsigned char tag
    Py_ssize_t start
    Py_ssize_t end

cdef DerStatus der_read_header(const unsigned char* buf, Py_ssize_t pos,
                               Py_ssize_t end, Tlv* out) noexcept nogil
