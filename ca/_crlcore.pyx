# cython: language_level=3
"""Native CRL entry encoder (RFC 5280 5.1.2.6, 5.3): a growing C buffer,
bounds-checked writes, hex serials decoded in C. ``ca._crlcore_py`` is the
pure-Python twin; both produce the same bytes for every input."""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy
from libc.time cimport time_t, tm

cdef extern from "<time.h>" nogil:
    tm* gmtime_r(const time_t* timep, tm* result)

NO_REASON = -1
NO_DATE = -1
# An entry is at most: SEQUENCE hdr 4 + INTEGER 2+21 + time 17 + extensions 4+12+28.
DEF MAX_ENTRY = 96


cdef inline void _digits(unsigned char* dst, int value, int width) noexcept nogil:
    cdef int i
    for i in range(width - 1, -1, -1):
        dst[i] = <unsigned char>(48 + value % 10)
        value //= 10


cdef int _time(unsigned char* dst, long long epoch, bint generalized_always) except -1:
    """Write UTCTime (before 2050) or GeneralizedTime; return the bytes written."""
    cdef time_t t
    cdef tm parts
    cdef int year
    if not 0 <= epoch <= 253402300799:
        raise ValueError("time outside 1970-01-01..9999-12-31")
    t = <time_t>epoch
    if gmtime_r(&t, &parts) == NULL:
        raise ValueError("time outside 1970-01-01..9999-12-31")
    year = parts.tm_year + 1900
    if year < 2050 and not generalized_always:
        dst[0] = 0x17
        dst[1] = 13
        _digits(dst + 2, year % 100, 2)
        dst += 4
        written = 15
    else:
        dst[0] = 0x18
        dst[1] = 15
        _digits(dst + 2, year, 4)
        dst += 6
        written = 17
    _digits(dst, parts.tm_mon + 1, 2)
    _digits(dst + 2, parts.tm_mday, 2)
    _digits(dst + 4, parts.tm_hour, 2)
    _digits(dst + 6, parts.tm_min, 2)
    _digits(dst + 8, parts.tm_sec, 2)
    dst[10] = 90  # 'Z'
    return written


cdef int _hex(int c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


def encode_time(long long epoch):
    """RFC 5280 5.1.2.4/5.1.2.6: UTCTime through 2049, GeneralizedTime from 2050."""
    cdef unsigned char out[17]
    cdef int n = _time(out, epoch, False)
    return PyBytes_FromStringAndSize(<char*>out, n)


def serial_content(str serial_hex):
    """The DER INTEGER content of a positive serial given in hex (any padding)."""
    cdef unsigned char out[24]
    cdef int n = _serial(out, serial_hex)
    return PyBytes_FromStringAndSize(<char*>out, n)


cdef int _serial(unsigned char* out, str serial_hex) except -1:
    """Minimal two's-complement content of a positive hex serial, at most 21 octets."""
    cdef bytes raw = serial_hex.encode("ascii")
    cdef const unsigned char* text = raw
    cdef Py_ssize_t length = len(raw), i = 0, digits
    cdef unsigned char value[64]
    cdef int hi, lo, n = 0, start
    while i < length and text[i] == 48:  # leading '0'
        i += 1
    digits = length - i
    if digits == 0:
        raise ValueError(f"serial {serial_hex!r} must be positive")
    if digits > 40:
        raise ValueError(f"serial {serial_hex!r} is longer than 20 octets")
    if digits % 2:
        lo = _hex(text[i])
        if lo < 0:
            raise ValueError(f"invalid literal for int() with base 16: {serial_hex!r}")
        value[n] = <unsigned char>lo
        n += 1
        i += 1
    while i < length:
        hi = _hex(text[i])
        lo = _hex(text[i + 1])
        if hi < 0 or lo < 0:
            raise ValueError(f"invalid literal for int() with base 16: {serial_hex!r}")
        value[n] = <unsigned char>(hi * 16 + lo)
        n += 1
        i += 2
    if value[0] & 0x80:
        out[0] = 0
        memcpy(out + 1, value, n)
        return n + 1
    memcpy(out, value, n)
    return n


cdef class CRLEntryWriter:
    """Accumulates RevokedCertificate entries; ``getvalue()`` is their concatenation."""

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

    cpdef add(self, str serial_hex, long long revocation_time, int reason,
              long long invalidity_date):
        cdef unsigned char entry[MAX_ENTRY]
        cdef unsigned char* p = entry + 2  # room for the SEQUENCE header (body < 128)
        cdef int n
        if reason != -1 and (not 0 <= reason <= 10 or reason == 7):
            raise ValueError(f"invalid CRLReason {reason}")
        if invalidity_date != -1 and not 0 <= invalidity_date <= 253402300799:
            raise ValueError("time outside 1970-01-01..9999-12-31")
        n = _serial(p + 2, serial_hex)
        p[0] = 0x02
        p[1] = <unsigned char>n
        p += 2 + n
        p += _time(p, revocation_time, False)
        if reason != -1 or invalidity_date != -1:
            ext = p
            p += 2
            if reason != -1:
                memcpy(p, b"\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01", 11)
                p[11] = <unsigned char>reason
                p += 12
            if invalidity_date != -1:
                memcpy(p, b"\x30\x18\x06\x03\x55\x1d\x18\x04\x11", 9)  # 5 + 2 + 17 octets
                p += 9
                p += _time(p, invalidity_date, True)
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

    def add_rows(self, rows):
        """Add (serial_hex, revocation_time, reason, invalidity_date) tuples,
        with None for no reason or no invalidity date. Returns how many."""
        cdef Py_ssize_t added = 0
        for serial_hex, revoked_at, reason, invalidity in rows:
            self.add(serial_hex, revoked_at, -1 if reason is None else reason,
                     -1 if invalidity is None else invalidity)
            added += 1
        return added

    def getvalue(self):
        return PyBytes_FromStringAndSize(<char*>self.buf, self.size)
