# cython: language_level=3
"""Native CRL entry encoder (RFC 5280 5.1.2.6, 5.3): a growing C buffer,
bounds-checked writes, hex serials decoded in C. ``ca._crlcore_py`` is the
pure-Python twin; both produce the same bytes for every input."""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

from common._dertime cimport DER_TIME_MAX, der_time

cdef extern from *:
    """
    /* SQLite's C interface (https://sqlite.org/c3ref/intro.html), stable since
       3.0. Declared here when libsqlite3-dev is not installed; the library
       itself is the libsqlite3.so.0 that Python's sqlite3 module loads. */
    #if defined(__has_include)
    #  if __has_include(<sqlite3.h>)
    #    include <sqlite3.h>
    #    define REVOCA_SQLITE3_H 1
    #  endif
    #endif
    #ifndef REVOCA_SQLITE3_H
    typedef struct sqlite3 sqlite3;
    typedef struct sqlite3_stmt sqlite3_stmt;
    typedef long long sqlite3_int64;
    int sqlite3_open_v2(const char *filename, sqlite3 **db, int flags, const char *vfs);
    int sqlite3_close_v2(sqlite3 *db);
    const char *sqlite3_errmsg(sqlite3 *db);
    int sqlite3_busy_timeout(sqlite3 *db, int ms);
    int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int bytes, sqlite3_stmt **stmt,
                           const char **tail);
    int sqlite3_bind_int64(sqlite3_stmt *stmt, int index, sqlite3_int64 value);
    int sqlite3_step(sqlite3_stmt *stmt);
    int sqlite3_column_type(sqlite3_stmt *stmt, int column);
    sqlite3_int64 sqlite3_column_int64(sqlite3_stmt *stmt, int column);
    const unsigned char *sqlite3_column_text(sqlite3_stmt *stmt, int column);
    int sqlite3_column_bytes(sqlite3_stmt *stmt, int column);
    int sqlite3_column_count(sqlite3_stmt *stmt);
    int sqlite3_bind_parameter_count(sqlite3_stmt *stmt);
    int sqlite3_finalize(sqlite3_stmt *stmt);
    #define SQLITE_OK 0
    #define SQLITE_ROW 100
    #define SQLITE_DONE 101
    #define SQLITE_INTEGER 1
    #define SQLITE_TEXT 3
    #define SQLITE_NULL 5
    #define SQLITE_OPEN_READONLY 0x00000001
    #define SQLITE_OPEN_NOMUTEX 0x00008000
    #endif
    """
    ctypedef struct sqlite3
    ctypedef struct sqlite3_stmt
    int sqlite3_open_v2(const char* filename, sqlite3** db, int flags, const char* vfs)
    int sqlite3_close_v2(sqlite3* db)
    const char* sqlite3_errmsg(sqlite3* db)
    int sqlite3_busy_timeout(sqlite3* db, int ms)
    int sqlite3_prepare_v2(sqlite3* db, const char* sql, int nbytes, sqlite3_stmt** stmt,
                           const char** tail)
    int sqlite3_bind_int64(sqlite3_stmt* stmt, int index, long long value)
    int sqlite3_step(sqlite3_stmt* stmt)
    int sqlite3_column_type(sqlite3_stmt* stmt, int column)
    long long sqlite3_column_int64(sqlite3_stmt* stmt, int column)
    const unsigned char* sqlite3_column_text(sqlite3_stmt* stmt, int column)
    int sqlite3_column_bytes(sqlite3_stmt* stmt, int column)
    int sqlite3_column_count(sqlite3_stmt* stmt)
    int sqlite3_bind_parameter_count(sqlite3_stmt* stmt)
    int sqlite3_finalize(sqlite3_stmt* stmt)
    int SQLITE_OK, SQLITE_ROW, SQLITE_DONE, SQLITE_INTEGER, SQLITE_TEXT, SQLITE_NULL
    int SQLITE_OPEN_READONLY, SQLITE_OPEN_NOMUTEX

NO_REASON = -1
NO_DATE = -1
# An entry is at most: SEQUENCE hdr 4 + INTEGER 2+21 + time 17 + extensions 4+12+28.
DEF MAX_ENTRY = 96


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


cdef inline int _hex(unsigned char c) noexcept nogil:
    return _HEX[c]


def encode_time(long long epoch):
    """RFC 5280 5.1.2.4/5.1.2.6: UTCTime through 2049, GeneralizedTime from 2050."""
    cdef unsigned char out[DER_TIME_MAX]
    cdef int n = der_time(out, epoch, False)
    return PyBytes_FromStringAndSize(<char*>out, n)


def serial_content(str serial_hex):
    """The DER INTEGER content of a positive serial given in hex (any padding)."""
    cdef unsigned char out[24]
    cdef bytes raw = serial_hex.encode("ascii")
    cdef int n = _serial(out, raw, len(raw))
    return PyBytes_FromStringAndSize(<char*>out, n)


cdef int _serial(unsigned char* out, const unsigned char* text, Py_ssize_t length) except -1:
    """Minimal two's-complement content of a positive hex serial, at most 21 octets."""
    cdef Py_ssize_t i = 0, digits
    cdef unsigned char value[64]
    cdef int hi, lo, n = 0
    while i < length and text[i] == 48:  # leading '0'
        i += 1
    digits = length - i
    if digits == 0:
        raise ValueError(f"serial {_shown(text, length)!r} must be positive")
    if digits > 40:
        raise ValueError(f"serial {_shown(text, length)!r} is longer than 20 octets")
    if digits % 2:
        lo = _hex(text[i])
        if lo < 0:
            raise ValueError(f"invalid literal for int() with base 16: {_shown(text, length)!r}")
        value[n] = <unsigned char>lo
        n += 1
        i += 1
    while i < length:
        hi = _hex(text[i])
        lo = _hex(text[i + 1])
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


cdef _sqlite_error(sqlite3* db, str what):
    if db == NULL:
        return MemoryError(what)
    return OSError(f"{what}: {sqlite3_errmsg(db).decode('utf-8', 'replace')}")


cdef long long _optional_int(sqlite3_stmt* stmt, int column) except? -2:
    cdef int kind = sqlite3_column_type(stmt, column)
    if kind == SQLITE_NULL:
        return -1
    if kind != SQLITE_INTEGER:
        raise ValueError(
            f"serial {_shown(sqlite3_column_text(stmt, 0), sqlite3_column_bytes(stmt, 0))}: "
            f"column {column} is neither NULL nor an integer")
    return sqlite3_column_int64(stmt, column)


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
        cdef bytes raw = serial_hex.encode("ascii")
        self._add(raw, len(raw), revocation_time, reason, invalidity_date)

    cdef int _add(self, const unsigned char* serial_hex, Py_ssize_t serial_length,
                  long long revocation_time, int reason, long long invalidity_date) except -1:
        cdef unsigned char entry[MAX_ENTRY]
        cdef unsigned char* p = entry + 2  # room for the SEQUENCE header (body < 128)
        cdef int n
        if reason != -1 and (not 0 <= reason <= 10 or reason == 7):
            raise ValueError(f"invalid CRLReason {reason}")
        if invalidity_date != -1 and not 0 <= invalidity_date <= 253402300799:
            raise ValueError("time outside 1970-01-01..9999-12-31")
        n = _serial(p + 2, serial_hex, serial_length)
        p[0] = 0x02
        p[1] = <unsigned char>n
        p += 2 + n
        p += der_time(p, revocation_time, False)
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
        """Add (serial_hex, revocation_time, reason, invalidity_date) tuples,
        with None for no reason or no invalidity date. Returns how many."""
        cdef Py_ssize_t added = 0
        for serial_hex, revoked_at, reason, invalidity in rows:
            self.add(serial_hex, revoked_at, -1 if reason is None else reason,
                     -1 if invalidity is None else invalidity)
            added += 1
        return added

    def add_from_sqlite(self, str path, str sql, tuple params=()):
        """Run one SELECT on the SQLite database at ``path`` (a read-only
        connection of its own: one statement is one consistent snapshot) and
        add each row, stepped in C straight into the buffer: no Python object
        per row. Columns: serial as hex TEXT, revocation time INTEGER, reason
        INTEGER or NULL, invalidity date INTEGER or NULL; ``params`` are
        integers for the statement's ``?``. Returns how many rows were added."""
        cdef sqlite3* db = NULL
        cdef sqlite3_stmt* stmt = NULL
        cdef bytes path_raw = path.encode()
        cdef bytes sql_raw = sql.encode()
        cdef int rc, i
        cdef Py_ssize_t added = 0
        cdef const unsigned char* serial
        cdef long long reason, invalidity
        try:
            rc = sqlite3_open_v2(path_raw, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                                 NULL)
            if rc != SQLITE_OK:
                raise _sqlite_error(db, f"cannot open {path}")
            sqlite3_busy_timeout(db, 10000)
            rc = sqlite3_prepare_v2(db, sql_raw, <int>len(sql_raw), &stmt, NULL)
            if rc != SQLITE_OK:
                raise _sqlite_error(db, "cannot prepare the CRL query")
            if sqlite3_column_count(stmt) != 4:
                raise ValueError("the CRL query must return 4 columns")
            if sqlite3_bind_parameter_count(stmt) != len(params):
                raise ValueError("the CRL query's parameters do not match")
            for i in range(len(params)):
                sqlite3_bind_int64(stmt, i + 1, <long long>params[i])
            while True:
                rc = sqlite3_step(stmt)
                if rc == SQLITE_DONE:
                    break
                if rc != SQLITE_ROW:
                    raise _sqlite_error(db, "reading revoked certificates failed")
                if sqlite3_column_type(stmt, 0) != SQLITE_TEXT:
                    raise ValueError("a revoked certificate without a hex serial")
                serial = sqlite3_column_text(stmt, 0)
                if sqlite3_column_type(stmt, 1) != SQLITE_INTEGER:
                    raise ValueError(
                        f"serial {_shown(serial, sqlite3_column_bytes(stmt, 0))}: "
                        "column 1 is not an integer revocation time")
                reason = _optional_int(stmt, 2)
                invalidity = _optional_int(stmt, 3)
                if not -1 <= reason <= 255:
                    raise ValueError(f"invalid CRLReason {reason}")
                self._add(serial, sqlite3_column_bytes(stmt, 0), sqlite3_column_int64(stmt, 1),
                          <int>reason, invalidity)
                added += 1
        finally:
            sqlite3_finalize(stmt)  # a no-op on NULL
            sqlite3_close_v2(db)
        return added

    def getvalue(self):
        return PyBytes_FromStringAndSize(<char*>self.buf, self.size)
