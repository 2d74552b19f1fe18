# cython: language_level=3
"""Native CRL entry encoder (RFC 5280 5.1.2.6, 5.3): rows in, DER out.

A pure codec: it knows no store, no file and no SQL. Rows arrive as Python
tuples (``add_rows``, the cursor path) or as packed rows from a store reader
(``add_packed``; the layout is in ca/_crlcore.pxd); the entries grow in a C
buffer with bounds-checked writes, hex serials decoded in C, times from
common/_dertime.pxd. ``ca._crlcore_py`` is the pure-Python twin: the same
names, the same bytes and the same refusals for every input."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

from common._dertime cimport DER_TIME_MAX, der_time

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)

NO_REASON = -1
NO_DATE = -1
ROW_HEADER_SIZE = ROW_HEADER

cdef enum:
    # An entry is at most: SEQUENCE header 2 + INTEGER 2+21 + time 17 +
    # extensions 2 + reasonCode 12 + invalidityDate 26 = 82 octets (its body
    # stays under 128, so every length here is one octet).
    MAX_ENTRY = 96


cdef signed char _HEX[256]


cdef void _init_hex() noexcept:
    cdef int c
    for c in range(256):
        _HEX[c] = -1
    for c in range(10):
        _HEX[48 + c] = c
    for c in range(6):
        _HEX[97 + c] = 10 + c  # a-f
        _HEX[65 + c] = 10 + c  # A-F


_init_hex()


def encode_time(epoch):
    """RFC 5280 5.1.2.4/5.1.2.6: UTCTime through 2049, GeneralizedTime from 2050."""
    cdef unsigned char out[DER_TIME_MAX]
    cdef int n = der_time(out, _time_value(epoch, "time"), False)
    return PyBytes_FromStringAndSize(<char*>out, n)


def serial_content(serial_hex):
    """The DER INTEGER content of a positive serial given in hex (any padding)."""
    cdef unsigned char out[24]
    cdef const unsigned char* text
    cdef Py_ssize_t length
    text = _ascii(serial_hex, &length)
    cdef int n = _serial(out, text, length)
    return PyBytes_FromStringAndSize(<char*>out, n)


def pack_row(serial, revocation_time, reason, invalidity_date):
    """One packed row (ca/_crlcore.pxd): the header, then ``serial`` (hex
    text) as it is. Only the fields' sizes are checked here (OverflowError);
    ``add_packed`` refuses what an entry cannot hold."""
    cdef unsigned char header[ROW_HEADER]
    if type(serial) is not bytes:
        raise TypeError(f"serial must be bytes, not {type(serial).__name__}")
    if PyBytes_GET_SIZE(serial) > 0xFFFFFFFF:
        raise OverflowError("serial does not fit in a packed row")
    put_row_header(header, <uint32_t>PyBytes_GET_SIZE(serial),
                   _int64(revocation_time, "revocation time"), _int64(reason, "reason"),
                   _int64(invalidity_date, "invalidity date"))
    return PyBytes_FromStringAndSize(<char*>header, ROW_HEADER) + serial


cdef int64_t _int64(object value, str what) except? -1:
    cdef int overflow
    cdef int64_t result
    _need_int(value, what)
    result = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow:
        raise OverflowError(f"{what} does not fit in 64 bits")
    return result


cdef int64_t _time_value(object value, str what) except? -1:
    """An int of seconds, as the twin takes it: any int outside 1970..9999,
    however large, is the same ValueError (from ``der_time`` or ``_check_date``)."""
    cdef int overflow
    cdef int64_t result
    _need_int(value, what)
    result = PyLong_AsLongLongAndOverflow(value, &overflow)
    return -2 if overflow else result  # -2: outside the range like any other


cdef int64_t _reason_value(object value) except? -2:
    cdef int overflow
    cdef int64_t result
    _need_int(value, "reason")
    result = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow:
        raise ValueError(f"invalid CRLReason {value}")
    return result


cdef inline int _need_int(object value, str what) except -1:
    if not PyLong_Check(value):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return 0


cdef const unsigned char* _ascii(object serial_hex, Py_ssize_t* length) except NULL:
    """The octets of a str serial, without a copy: an ASCII str holds one per
    character."""
    if type(serial_hex) is not str:
        raise TypeError(f"serial must be a str, not {type(serial_hex).__name__}")
    if not PyUnicode_IS_ASCII(serial_hex):
        raise ValueError(f"invalid literal for int() with base 16: {serial_hex!r}")
    length[0] = PyUnicode_GET_LENGTH(serial_hex)
    return <const unsigned char*>PyUnicode_DATA(serial_hex)


cdef int _serial(unsigned char* out, const unsigned char* text, Py_ssize_t length) except -1:
    """Minimal two's-complement content of a positive hex serial: at most 40
    significant digits (a value below 2**160), so at most 21 octets."""
    cdef Py_ssize_t i = 0, digits
    cdef unsigned char value[20]
    cdef int hi, lo, n = 0
    while i < length and text[i] == 48:  # leading '0'
        i += 1
    digits = length - i
    if digits == 0:
        raise ValueError(f"serial {_shown(text, length)!r} must be positive")
    if digits > 40:
        raise ValueError(f"serial {_shown(text, length)!r} is longer than 20 octets")
    if digits % 2:
        lo = _HEX[text[i]]
        if lo < 0:
            raise ValueError(f"invalid literal for int() with base 16: {_shown(text, length)!r}")
        value[n] = <unsigned char>lo
        n += 1
        i += 1
    while i < length:
        hi = _HEX[text[i]]
        lo = _HEX[text[i + 1]]
        if hi < 0 or lo < 0:
            raise ValueError(f"invalid literal for int() with base 16: {_shown(text, length)!r}")
        value[n] = <unsigned char>(hi * 16 + lo)
        n += 1
        i += 2
    if value[0] & 0x80:
        out[0] = 0
        memcpy(out + 1, value, n)
        return n + 1
    memcpy(out, value, n)
    return n


cdef str _shown(const unsigned char* text, Py_ssize_t length):
    return PyBytes_FromStringAndSize(<const char*>text, length).decode("ascii", "replace")


cdef class CRLEntryWriter:
    """Accumulates RevokedCertificate entries; ``getvalue()`` is their
    concatenation. A call that refuses a row leaves the writer as it was."""

    cdef unsigned char* buf
    cdef Py_ssize_t size
    cdef Py_ssize_t capacity
    cdef public Py_ssize_t count

    def __cinit__(self):
        self.buf = NULL
        self.size = 0
        self.capacity = 0
        self.count = 0

    def __dealloc__(self):
        free(self.buf)

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t wanted = self.size + extra
        cdef Py_ssize_t capacity = self.capacity or 65536
        cdef unsigned char* grown
        if wanted <= self.capacity:
            return 0
        while capacity < wanted:
            capacity *= 2
        grown = <unsigned char*>realloc(self.buf, capacity)
        if grown == NULL:
            raise MemoryError()
        self.buf = grown
        self.capacity = capacity
        return 0

    def add(self, serial_hex, revocation_time, reason, invalidity_date):
        """One entry; ``reason`` NO_REASON (-1) and ``invalidity_date``
        NO_DATE (-1) for none."""
        self._add_values(serial_hex, revocation_time, reason, invalidity_date, False)

    cdef int _add_values(self, object serial_hex, object revocation_time, object reason,
                         object invalidity_date, bint none_allowed) except -1:
        # As the twin: the types first (TypeError), then the values in the
        # order reason, invalidity date, serial, revocation time (ValueError).
        cdef int64_t time_value, reason_value = -1, invalidity_value = -1
        cdef bint none_reason, none_date
        cdef const unsigned char* text
        cdef Py_ssize_t length
        if type(serial_hex) is not str:
            raise TypeError(f"serial must be a str, not {type(serial_hex).__name__}")
        _need_int(revocation_time, "revocation time")
        none_reason = none_allowed and reason is None
        none_date = none_allowed and invalidity_date is None
        if not none_reason:
            _need_int(reason, "reason")
        if not none_date:
            _need_int(invalidity_date, "invalidity date")
        if not none_reason:
            reason_value = _reason_value(reason)
            _check_reason(reason_value)
        if not none_date:
            invalidity_value = _time_value(invalidity_date, "invalidity date")
            _check_date(invalidity_value)
        text = _ascii(serial_hex, &length)
        time_value = _time_value(revocation_time, "revocation time")
        return self._add(text, length, time_value, reason_value, invalidity_value)

    cdef int _add(self, const unsigned char* serial_hex, Py_ssize_t serial_length,
                  int64_t revocation_time, int64_t reason, int64_t invalidity_date) except -1:
        cdef unsigned char entry[MAX_ENTRY]
        cdef unsigned char* p = entry + 2  # room for the SEQUENCE header (body < 128)
        cdef unsigned char* ext
        cdef int n
        _check_reason(reason)
        _check_date(invalidity_date)
        n = _serial(p + 2, serial_hex, serial_length)
        p[0] = 0x02
        p[1] = <unsigned char>n
        p += 2 + n
        p += der_time(p, revocation_time, False)
        if reason != -1 or invalidity_date != -1:
            ext = p
            p += 2
            if reason != -1:
                # reasonCode (2.5.29.21, RFC 5280 5.3.1): ENUMERATED in an OCTET STRING
                memcpy(p, b"\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01", 11)
                p[11] = <unsigned char>reason
                p += 12
            if invalidity_date != -1:
                # invalidityDate (2.5.29.24, 5.3.2): always GeneralizedTime
                memcpy(p, b"\x30\x18\x06\x03\x55\x1d\x18\x04\x11", 9)  # 5 + 2 + 17 octets
                p += 9
                p += der_time(p, invalidity_date, True)
            ext[0] = 0x30
            ext[1] = <unsigned char>(p - ext - 2)
        entry[0] = 0x30
        entry[1] = <unsigned char>(p - entry - 2)
        n = <int>(p - entry)
        if n > MAX_ENTRY:  # cannot happen with the bounds above; never write past it
            raise OverflowError("CRL entry larger than its buffer")
        self._reserve(n)
        memcpy(self.buf + self.size, entry, n)
        self.size += n
        self.count += 1
        return 0

    def add_rows(self, rows):
        """Add (serial_hex, revocation_time, reason, invalidity_date) rows,
        with None (or -1) for no reason or no invalidity date. Returns how
        many; adds none of them if one is refused."""
        cdef Py_ssize_t size = self.size, count = self.count
        cdef Py_ssize_t added = 0
        cdef object row
        try:
            for row in rows:
                if not PyTuple_Check(row):
                    row = tuple(row)
                if PyTuple_GET_SIZE(row) != 4:
                    raise ValueError(f"a CRL row has 4 fields, not {PyTuple_GET_SIZE(row)}")
                self._add_values(<object>PyTuple_GET_ITEM(row, 0), <object>PyTuple_GET_ITEM(row, 1),
                                 <object>PyTuple_GET_ITEM(row, 2), <object>PyTuple_GET_ITEM(row, 3),
                                 True)
                added += 1
        except BaseException:
            self.size, self.count = size, count
            raise
        return added

    def add_packed(self, rows):
        """Add packed rows (ca/_crlcore.pxd), as a store reader hands them
        over. Returns how many; adds none of them if one is refused."""
        cdef const unsigned char* p
        cdef Py_ssize_t offset = 0, end
        cdef Py_ssize_t size = self.size, count = self.count
        cdef uint32_t serial_length
        cdef int64_t revocation_time, reason, invalidity_date
        if type(rows) is not bytes:
            raise TypeError(f"packed rows must be bytes, not {type(rows).__name__}")
        p = <const unsigned char*>PyBytes_AS_STRING(rows)
        end = PyBytes_GET_SIZE(rows)
        try:
            while offset < end:
                if end - offset < ROW_HEADER:
                    raise ValueError(f"packed rows: a row header is cut short at octet {offset}")
                get_row_header(p + offset, &serial_length, &revocation_time, &reason,
                               &invalidity_date)
                offset += ROW_HEADER
                if serial_length > end - offset:
                    raise ValueError(f"packed rows: a serial is cut short at octet {offset}")
                self._add(p + offset, serial_length, revocation_time, reason, invalidity_date)
                offset += serial_length
        except BaseException:
            self.size, self.count = size, count
            raise
        return self.count - count

    def getvalue(self):
        return PyBytes_FromStringAndSize(<char*>self.buf, self.size)


cdef inline int _check_reason(int64_t reason) except -1:
    # RFC 5280 5.3.1: 0..10, 7 unused; -1 is none.
    if reason != -1 and (not 0 <= reason <= 10 or reason == 7):
        raise ValueError(f"invalid CRLReason {reason}")
    return 0


cdef inline int _check_date(int64_t invalidity_date) except -1:
    if invalidity_date != -1 and not 0 <= invalidity_date <= 253402300799LL:
        raise ValueError("time outside 1970-01-01..9999-12-31")
    return 0
