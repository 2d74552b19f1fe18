"""Type stubs for the native SQLite reader of CRL rows ``ca._crlsqlite``.
The pure-Python twin is ca/_crlsqlite_py.py."""

from collections.abc import Callable

CHUNK_OCTETS: int
"""65536: the default most octets of packed rows handed to the sink at once."""

def read_sqlite(
    path: str,
    sql: str,
    params: tuple[int, ...],
    sink: Callable[[bytes], object],
    chunk_octets: int = ...,
) -> int:
    """Run one SELECT on the SQLite database file at ``path`` and hand its rows
    to ``sink`` packed (ca/_crlcore.pxd), as bytes of at most ``chunk_octets``
    (one row longer than that goes alone). Returns how many rows were handed on.

    Columns: serial as hex TEXT, revocation time INTEGER, reason INTEGER or NULL,
    invalidity date INTEGER or NULL; ``params`` are 64-bit ints for the
    statement's ``?``. The connection is read-only and its own: one statement is
    one consistent snapshot. Before a bad row is refused (ValueError), the rows
    before it are handed on, so the error raised is the first bad row's. When
    SQLite itself fails (OSError) the chunk under way is dropped."""
