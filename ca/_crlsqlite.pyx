# cython: language_level=3
"""Native SQLite reader of CRL rows: one SELECT on the store's database file,
stepped in C, its rows handed on packed (ca/_crlcore.pxd) in chunks, so no
Python object is made per row. It knows SQLite and nothing of DER; the
encoder (ca/_crlcore.pyx) knows DER and nothing of SQLite.

``ca._crlsqlite_py`` is the pure-Python twin (Python's sqlite3 module): the
same chunks to the sink and the same refusals for every database and query.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

from ca._crlcore cimport ROW_HEADER, put_row_header

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
    int sqlite3_step(sqlite3_stmt* stmt) nogil
    int sqlite3_column_type(sqlite3_stmt* stmt, int column) nogil
    long long sqlite3_column_int64(sqlite3_stmt* stmt, int column) nogil
    const unsigned char* sqlite3_column_text(sqlite3_stmt* stmt, int column) nogil
    int sqlite3_column_bytes(sqlite3_stmt* stmt, int column) nogil
    int sqlite3_column_count(sqlite3_stmt* stmt)
    int sqlite3_bind_parameter_count(sqlite3_stmt* stmt)
    int sqlite3_finalize(sqlite3_stmt* stmt)
    int SQLITE_OK, SQLITE_ROW, SQLITE_DONE, SQLITE_INTEGER, SQLITE_TEXT, SQLITE_NULL
    int SQLITE_OPEN_READONLY, SQLITE_OPEN_NOMUTEX

CHUNK_OCTETS = 65536

# What _check_row and _fill report.
cdef enum:
    ROW_OK = 0
    CHUNK_FULL = 1
    ROWS_DONE = 2
    STEP_FAILED = 3
    NO_MEMORY = 4
    BAD_SERIAL = 5  # column 0 not TEXT
    BAD_TIME = 6  # column 1 not INTEGER
    BAD_REASON = 7  # column 2 neither NULL nor INTEGER
    BAD_DATE = 8  # column 3 neither NULL nor INTEGER


cdef struct Chunk:
    sqlite3_stmt* stmt
    unsigned char* buf
    Py_ssize_t size
    Py_ssize_t capacity
    Py_ssize_t limit
    Py_ssize_t rows
    bint pending  # the statement stands on a checked row not yet packed
    int nulls  # of that row: bit 1 reason NULL, bit 2 invalidity date NULL


cdef int _check_row(sqlite3_stmt* stmt, int* nulls) noexcept nogil:
    """ROW_OK, or why the row's columns are refused; ``nulls`` gets bit 1
    for a NULL reason and bit 2 for a NULL invalidity date (each column's
    type is asked once)."""
    cdef int reason, invalidity
    if sqlite3_column_type(stmt, 0) != SQLITE_TEXT:
        return BAD_SERIAL
    if sqlite3_column_type(stmt, 1) != SQLITE_INTEGER:
        return BAD_TIME
    reason = sqlite3_column_type(stmt, 2)
    if reason != SQLITE_INTEGER and reason != SQLITE_NULL:
        return BAD_REASON
    invalidity = sqlite3_column_type(stmt, 3)
    if invalidity != SQLITE_INTEGER and invalidity != SQLITE_NULL:
        return BAD_DATE
    nulls[0] = (1 if reason == SQLITE_NULL else 0) | (2 if invalidity == SQLITE_NULL else 0)
    return ROW_OK


cdef int _fill(Chunk* chunk) noexcept nogil:
    """Pack rows into the chunk until the next would take it past its limit
    (CHUNK_FULL, that row still pending) or the rows end (ROWS_DONE); on a
    bad row, the statement stands on it and its code is returned."""
    cdef const unsigned char* serial
    cdef Py_ssize_t serial_length, need, capacity
    cdef unsigned char* grown
    cdef int rc, status
    while True:
        if not chunk.pending:
            rc = sqlite3_step(chunk.stmt)
            if rc == SQLITE_DONE:
                return ROWS_DONE
            if rc != SQLITE_ROW:
                return STEP_FAILED
            status = _check_row(chunk.stmt, &chunk.nulls)
            if status != ROW_OK:
                return status
            chunk.pending = True
        serial = sqlite3_column_text(chunk.stmt, 0)  # text first, then its length
        serial_length = sqlite3_column_bytes(chunk.stmt, 0)
        need = ROW_HEADER + serial_length
        if chunk.size and chunk.size + need > chunk.limit:
            return CHUNK_FULL
        if chunk.size + need > chunk.capacity:
            capacity = chunk.capacity or 4096
            while capacity < chunk.size + need:
                capacity *= 2
            grown = <unsigned char*>realloc(chunk.buf, capacity)
            if grown == NULL:
                return NO_MEMORY
            chunk.buf = grown
            chunk.capacity = capacity
        put_row_header(chunk.buf + chunk.size, <uint32_t>serial_length,
                       sqlite3_column_int64(chunk.stmt, 1),
                       -1 if chunk.nulls & 1 else sqlite3_column_int64(chunk.stmt, 2),
                       -1 if chunk.nulls & 2 else sqlite3_column_int64(chunk.stmt, 3))
        if serial_length:
            memcpy(chunk.buf + chunk.size + ROW_HEADER, serial, serial_length)
        chunk.size += need
        chunk.rows += 1
        chunk.pending = False


cdef object _failed(sqlite3* db):
    return OSError(f"the CRL query failed: {sqlite3_errmsg(db).decode('utf-8', 'replace')}")


cdef object _row_error(sqlite3_stmt* stmt, int status):
    if status == BAD_SERIAL:
        return ValueError("a revoked certificate without a hex serial")
    serial = PyBytes_FromStringAndSize(<const char*>sqlite3_column_text(stmt, 0),
                                       sqlite3_column_bytes(stmt, 0)).decode("ascii", "replace")
    if status == BAD_TIME:
        return ValueError(f"serial {serial}: column 1 is not an integer revocation time")
    column = 2 if status == BAD_REASON else 3
    return ValueError(f"serial {serial}: column {column} is neither NULL nor an integer")


cdef bint _more_sql(const char* tail) noexcept:
    """Whether anything but blanks and comments follows the first statement:
    the rule of Python's sqlite3 (lstrip_sql in Modules/_sqlite/statement.c),
    which refuses a second statement; so does the twin, through it."""
    cdef const char* pos = tail
    if pos == NULL:
        return False
    while pos[0]:
        if pos[0] in b" \t\f\n\r":
            pos += 1
        elif pos[0] == b"-" and pos[1] == b"-":
            pos += 2
            while pos[0] and pos[0] != b"\n":
                pos += 1
        elif pos[0] == b"/" and pos[1] == b"*":
            pos += 2
            while pos[0] and not (pos[0] == b"*" and pos[1] == b"/"):
                pos += 1
            if not pos[0]:
                return False
            pos += 2
        else:
            return True
    return False


def _checked_arguments(path, sql, params, sink, chunk_octets):
    cdef int overflow
    if type(path) is not str:
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    if type(sql) is not str:
        raise TypeError(f"sql must be a str, not {type(sql).__name__}")
    if type(params) is not tuple:
        raise TypeError(f"params must be a tuple, not {type(params).__name__}")
    for value in params:
        if not PyLong_Check(value):
            raise TypeError(
                f"the CRL query's parameters must be ints, not {type(value).__name__}")
        PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow:
            raise OverflowError("a CRL query parameter does not fit in 64 bits")
    if not callable(sink):
        raise TypeError("sink must be callable")
    if not PyLong_Check(chunk_octets):
        raise TypeError(f"chunk_octets must be an int, not {type(chunk_octets).__name__}")
    if not 1 <= chunk_octets <= 1 << 30:
        raise ValueError("chunk_octets must be 1 to 2**30")
    if "\0" in path:
        raise ValueError("embedded null character in path")


def read_sqlite(path, sql, params, sink, chunk_octets=CHUNK_OCTETS):
    """Run one SELECT on the SQLite database file at ``path`` and hand its
    rows to ``sink`` packed (ca/_crlcore.pxd), as bytes of at most
    ``chunk_octets`` (one row longer than that goes alone). Returns how many
    rows were handed on.

    Columns: serial as hex TEXT, revocation time INTEGER, reason INTEGER or
    NULL, invalidity date INTEGER or NULL; ``params`` are 64-bit ints for
    the statement's ``?``. The connection is read-only and its own: one
    statement is one consistent snapshot. Rows are stepped and packed with
    the GIL released. Before a bad row is refused (ValueError), the rows
    before it are handed on, so the error raised is the first bad row's,
    whoever finds it (this reader or the sink). When SQLite itself fails
    (OSError) the chunk under way is dropped."""
    _checked_arguments(path, sql, params, sink, chunk_octets)
    cdef bytes path_raw = path.encode()
    cdef bytes sql_raw = sql.encode()
    cdef sqlite3* db = NULL
    cdef Chunk chunk
    cdef const char* tail = NULL
    cdef int rc, status, i
    cdef Py_ssize_t handed = 0
    chunk.stmt = NULL
    chunk.buf = NULL
    chunk.size = chunk.capacity = chunk.rows = 0
    chunk.limit = chunk_octets
    chunk.pending = False
    chunk.nulls = 0
    try:
        rc = sqlite3_open_v2(path_raw, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL)
        if rc != SQLITE_OK:
            if db == NULL:
                raise MemoryError()
            raise OSError(f"cannot open {path}: {sqlite3_errmsg(db).decode('utf-8', 'replace')}")
        sqlite3_busy_timeout(db, 10000)
        # Python's sqlite3 refuses a NUL in the query before SQLite sees it.
        if b"\0" in sql_raw:
            raise OSError("the CRL query failed: the query contains a null character")
        rc = sqlite3_prepare_v2(db, sql_raw, <int>len(sql_raw), &chunk.stmt, &tail)
        if rc != SQLITE_OK:
            raise _failed(db)
        if _more_sql(tail):
            raise OSError("the CRL query failed: You can only execute one statement at a time.")
        if sqlite3_bind_parameter_count(chunk.stmt) != len(params):  # 0 for no statement
            raise ValueError("the CRL query's parameters do not match")
        if chunk.stmt == NULL:  # blanks or comments only: no statement, no columns
            raise ValueError("the CRL query must return 4 columns")
        for i in range(len(params)):
            sqlite3_bind_int64(chunk.stmt, i + 1, <long long>params[i])
        # The first step comes before the columns are checked, as in the twin
        # (Python's execute steps once).
        rc = sqlite3_step(chunk.stmt)
        if rc != SQLITE_ROW and rc != SQLITE_DONE:
            raise _failed(db)
        if sqlite3_column_count(chunk.stmt) != 4:
            raise ValueError("the CRL query must return 4 columns")
        if rc == SQLITE_DONE:
            return 0
        status = _check_row(chunk.stmt, &chunk.nulls)
        if status != ROW_OK:
            raise _row_error(chunk.stmt, status)
        chunk.pending = True
        while True:
            with nogil:
                status = _fill(&chunk)
            if status == STEP_FAILED:  # not a bad row: the chunk under way is dropped
                raise _failed(db)
            if status == NO_MEMORY:
                raise MemoryError()
            if chunk.size:
                # The rows before a bad one go first: the first bad row's
                # error is the one raised.
                data = PyBytes_FromStringAndSize(<char*>chunk.buf, chunk.size)
                handed += chunk.rows
                chunk.size = chunk.rows = 0
                sink(data)
                del data
            if status == CHUNK_FULL:
                continue
            if status == ROWS_DONE:
                return handed
            raise _row_error(chunk.stmt, status)
    finally:
        free(chunk.buf)
        sqlite3_finalize(chunk.stmt)  # a no-op on NULL
        sqlite3_close_v2(db)
