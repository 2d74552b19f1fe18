"""Where a CRL's rows come from: the store's SELECTs, read in serial order.

The encoder (``ca.crlcore``) takes rows and gives DER; this module finds
the rows. On a SQLite file the SQLite row reader (native ``ca._crlsqlite``,
or its twin ``ca._crlsqlite_py``, bound here as ``ca.crlcore`` binds the
encoder) steps the SELECT on a read-only connection of its own and hands
the writer packed rows, no Python object per row. Elsewhere (PostgreSQL,
SQLite in memory) the rows come through the caller's DB-API cursor as
tuples, fetched in chunks.

Each row: (serial as hex text, revocation time, reason or None,
invalidity date or None), times in seconds since 1970.
"""

from sqlalchemy import Connection

from ca import _crlsqlite_py
from common import native

CHUNK_OCTETS = _crlsqlite_py.CHUNK_OCTETS
read_sqlite = _crlsqlite_py.read_sqlite
IMPLEMENTATION = "python"

_native = native.load("ca._crlsqlite")
if _native is not None:
    CHUNK_OCTETS = _native.CHUNK_OCTETS
    read_sqlite = _native.read_sqlite
    IMPLEMENTATION = "native"

# The API both SQLite readers provide (the tests check they agree on it).
API = ("CHUNK_OCTETS", "read_sqlite")

CHUNK = 10_000  # rows per fetch on the cursor path

_REVOKED_SQL = (
    "SELECT serial, revoked_at, "
    # BR 7.2.2: unspecified (0) is expressed by leaving reasonCode out; a hold
    # is listed as certificateHold.
    "CASE WHEN status = 'hold' THEN 6 WHEN revocation_reason = 0 THEN NULL "
    "ELSE revocation_reason END, invalidity_date "
    "FROM certificates WHERE ca_id = {ca} AND status IN ('revoked', 'hold') "
    "AND not_after >= {since} ORDER BY serial"
)


def _revoked_query(
    ca_id: int,
    listed_since: int | None,
    profiles: tuple[str, ...] | None,
    shard: int | None,
    placeholder: str = "?",
) -> tuple[str, tuple[int, int]]:
    """The revoked-entries SELECT and its parameters (ca_id, since)."""
    since = listed_since if listed_since is not None else -(2**62)
    sql = _REVOKED_SQL.format(ca=placeholder, since=placeholder)
    if profiles is not None:  # an ARL (CA profiles) or one partition (one profile)
        names = ", ".join("'" + p.replace("'", "''") + "'" for p in profiles) or "''"
        sql = sql.replace(" ORDER BY", f" AND profile IN ({names}) ORDER BY")
    if shard is not None:
        sql = sql.replace(" ORDER BY", f" AND crl_shard = {int(shard)} ORDER BY")
    return sql, (ca_id, since)


def sqlite_file(conn: Connection) -> str | None:
    """The database file behind ``conn`` when it is a plain SQLite file (not
    in memory, no URI options), else None."""
    url = conn.engine.url
    if conn.dialect.name != "sqlite" or url.query:
        return None
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return None
    return url.database


def add_revoked(
    writer,
    conn: Connection,
    ca_id: int,
    listed_since: int | None,
    profiles: tuple[str, ...] | None = None,
    shard: int | None = None,
) -> int:
    """Add the CA's listed entries to ``writer`` in serial order; returns how many.

    ``listed_since``: the previous full CRL's thisUpdate; certificates that
    expired before it have already appeared on a CRL after expiry.

    On a SQLite file the row reader steps the SELECT on a read-only
    connection of its own. The caller holds the store's write lock, so that
    connection's snapshot is exactly the caller's view. Elsewhere rows come
    from ``revoked_rows``.
    """
    path = sqlite_file(conn)
    if path is not None:
        sql, params = _revoked_query(ca_id, listed_since, profiles, shard)
        return read_sqlite(path, sql, params, writer.add_packed)
    return writer.add_rows(revoked_rows(conn, ca_id, listed_since, profiles, shard))


def revoked_rows(
    conn: Connection,
    ca_id: int,
    listed_since: int | None,
    profiles: tuple[str, ...] | None = None,
    shard: int | None = None,
):
    """(serial_hex, revoked_at, reason or None, invalidity_date or None), in
    serial order, through the caller's connection and transaction.

    Rows come straight from the DB-API cursor (a server-side cursor on
    PostgreSQL): plain tuples, fetched in chunks, never a list of them.
    """
    raw = conn.connection.dbapi_connection
    postgres = conn.dialect.name == "postgresql"
    sql, params = _revoked_query(
        ca_id, listed_since, profiles, shard, placeholder="%s" if postgres else "?"
    )
    if postgres:
        cursor = raw.cursor(name="revoca_crl_rows")
        cursor.itersize = CHUNK
        cursor.execute(sql, params)
    else:
        cursor = raw.cursor()
        cursor.arraysize = CHUNK
        cursor.execute(sql, params)
    try:
        while True:
            chunk = cursor.fetchmany(CHUNK)
            if not chunk:
                return
            yield from chunk
    finally:
        cursor.close()


# Revoked or held now: listed as such (reasonCode left out for unspecified,
# BR 7.2.2). Good again: released from hold, listed with removeFromCRL (8) at
# the time of the release. An index-only read of ix_certificates_status_seq.
_CHANGED_SQL = (
    "SELECT serial, "
    "CASE WHEN status = 'good' THEN status_changed_at ELSE revoked_at END, "
    "CASE WHEN status = 'hold' THEN 6 WHEN status = 'revoked' "
    "THEN NULLIF(revocation_reason, 0) ELSE 8 END, "
    "CASE WHEN status = 'good' THEN NULL ELSE invalidity_date END "
    "FROM certificates WHERE ca_id = {p} AND status_seq > {p} ORDER BY serial"
)


def add_changed(writer, conn: Connection, ca_id: int, base_outbox_id: int) -> int:
    """Add the entries of a delta CRL (RFC 5280 5.2.4) to ``writer``: every
    certificate whose status changed after the base CRL (its last status
    change has an outbox id past the last one the base reflects), as it
    stands now; one released from hold is listed with removeFromCRL. Returns
    how many."""
    path = sqlite_file(conn)
    if path is not None:
        return read_sqlite(
            path, _CHANGED_SQL.format(p="?"), (ca_id, base_outbox_id), writer.add_packed
        )
    return writer.add_rows(delta_rows(conn, ca_id, base_outbox_id))


def delta_rows(conn: Connection, ca_id: int, base_outbox_id: int):
    """The rows ``add_changed`` adds, through the caller's connection: tuples
    straight from the cursor, in chunks."""
    postgres = conn.dialect.name == "postgresql"
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(_CHANGED_SQL.format(p="%s" if postgres else "?"), (ca_id, base_outbox_id))
        while chunk := cursor.fetchmany(CHUNK):
            yield from chunk
    finally:
        cursor.close()
