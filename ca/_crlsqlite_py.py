"""Pure-Python twin of ``ca._crlsqlite``: one SELECT on the store's SQLite
file through Python's sqlite3 module, its rows handed on packed
(ca/_crlcore.pxd, built by ``ca._crlcore_py.pack_row``) in the same chunks
and with the same refusals as the native reader.
"""

import sqlite3
from urllib.parse import quote

from ca._crlcore_py import pack_row

CHUNK_OCTETS = 65536
_INT64 = range(-(2**63), 2**63)
_BINDINGS = "Incorrect number of bindings supplied"


def _checked_arguments(path, sql, params, sink, chunk_octets) -> None:
    if type(path) is not str:
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    if type(sql) is not str:
        raise TypeError(f"sql must be a str, not {type(sql).__name__}")
    if type(params) is not tuple:
        raise TypeError(f"params must be a tuple, not {type(params).__name__}")
    for value in params:
        if not isinstance(value, int):
            raise TypeError(f"the CRL query's parameters must be ints, not {type(value).__name__}")
        if value not in _INT64:
            raise OverflowError("a CRL query parameter does not fit in 64 bits")
    if not callable(sink):
        raise TypeError("sink must be callable")
    if not isinstance(chunk_octets, int):
        raise TypeError(f"chunk_octets must be an int, not {type(chunk_octets).__name__}")
    if not 1 <= chunk_octets <= 1 << 30:
        raise ValueError("chunk_octets must be 1 to 2**30")
    if "\0" in path:
        raise ValueError("embedded null character in path")


def _row_error(row) -> ValueError | None:
    """Why a row is refused, as the native reader says it; None if it is not."""
    serial, revoked_at, reason, invalidity = row
    if type(serial) is not bytearray:  # TEXT (see text_factory below)
        return ValueError("a revoked certificate without a hex serial")
    shown = serial.decode("ascii", "replace")
    if type(revoked_at) is not int:
        return ValueError(f"serial {shown}: column 1 is not an integer revocation time")
    for column, value in ((2, reason), (3, invalidity)):
        if value is not None and type(value) is not int:
            return ValueError(f"serial {shown}: column {column} is neither NULL nor an integer")
    return None


def read_sqlite(path, sql, params, sink, chunk_octets=CHUNK_OCTETS) -> int:
    """Run one SELECT on the SQLite database file at ``path`` and hand its
    rows to ``sink`` packed, as bytes of at most ``chunk_octets`` (one row
    longer than that goes alone). Returns how many rows were handed on.

    Columns: serial as hex TEXT, revocation time INTEGER, reason INTEGER or
    NULL, invalidity date INTEGER or NULL; ``params`` are 64-bit ints for
    the statement's ``?``. The connection is read-only and its own. Before a
    bad row is refused (ValueError), the rows before it are handed on."""
    _checked_arguments(path, sql, params, sink, chunk_octets)
    try:
        db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise OSError(f"cannot open {path}: {exc}") from None
    # TEXT arrives as bytearray and BLOB as bytes: told apart, and the
    # serial's octets as SQLite holds them (no UTF-8 decoding), as in C.
    db.text_factory = bytearray
    chunk = bytearray()
    rows = handed = 0

    def hand_on():
        nonlocal chunk, rows, handed
        data = bytes(chunk)
        handed += rows
        chunk, rows = bytearray(), 0
        sink(data)

    try:
        try:
            cursor = db.execute(sql, params)
        except sqlite3.ProgrammingError as exc:
            if str(exc).startswith(_BINDINGS):
                raise ValueError("the CRL query's parameters do not match") from None
            raise OSError(f"the CRL query failed: {exc}") from None
        except sqlite3.Error as exc:
            raise OSError(f"the CRL query failed: {exc}") from None
        if cursor.description is None or len(cursor.description) != 4:
            raise ValueError("the CRL query must return 4 columns")
        try:
            for row in cursor:
                error = _row_error(row)
                if error is not None:
                    if chunk:
                        hand_on()  # the rows before it first
                    raise error
                serial, revoked_at, reason, invalidity = row
                packed = pack_row(
                    bytes(serial),
                    revoked_at,
                    -1 if reason is None else reason,
                    -1 if invalidity is None else invalidity,
                )
                if chunk and len(chunk) + len(packed) > chunk_octets:
                    hand_on()
                chunk += packed
                rows += 1
        except sqlite3.Error as exc:
            # Not a bad row: the chunk under way is dropped, as in C (which
            # rows reached the sink before it is left open: sqlite3 reads a
            # row ahead, so it fails a row earlier than C does).
            raise OSError(f"the CRL query failed: {exc}") from None
        if chunk:
            hand_on()
    finally:
        db.close()
    return handed
