"""Pure-Python twin of ``ca._crlcore``: CRL entries (RFC 5280 5.1.2.6, 5.3),
encoded while revoked rows stream from the store, in serial order.

Same names, same bytes as the native module; the tests compare them.
"""

from common._dertime_py import der_time

NO_REASON = -1
NO_DATE = -1


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def encode_time(epoch: int) -> bytes:
    """RFC 5280 5.1.2.4/5.1.2.6: UTCTime through 2049, GeneralizedTime from 2050."""
    return der_time(epoch, False)


def serial_content(serial_hex: str) -> bytes:
    """The DER INTEGER content of a positive serial given in hex (any padding)."""
    value = int(serial_hex, 16)
    if value <= 0:
        raise ValueError(f"serial {serial_hex!r} must be positive")
    return value.to_bytes((value.bit_length() + 8) // 8, "big")


class CRLEntryWriter:
    """Accumulates RevokedCertificate entries; ``getvalue()`` is their concatenation."""

    def __init__(self):
        self._parts = bytearray()
        self.count = 0

    def add(self, serial_hex: str, revocation_time: int, reason: int, invalidity_date: int):
        extensions = b""
        if reason != NO_REASON:
            if not 0 <= reason <= 10 or reason == 7:
                raise ValueError(f"invalid CRLReason {reason}")
            # reasonCode (2.5.29.21), ENUMERATED in an OCTET STRING
            extensions += b"\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01" + bytes((reason,))
        if invalidity_date != NO_DATE:
            # invalidityDate (2.5.29.24): always GeneralizedTime (RFC 5280 5.3.2)
            stamp = der_time(invalidity_date, True)
            extensions += _tlv(0x30, b"\x06\x03\x55\x1d\x18" + _tlv(0x04, stamp))
        body = _tlv(0x02, serial_content(serial_hex)) + encode_time(revocation_time)
        if extensions:
            body += _tlv(0x30, extensions)
        self._parts += _tlv(0x30, body)
        self.count += 1

    def add_rows(self, rows) -> int:
        """Add (serial_hex, revocation_time, reason, invalidity_date) tuples,
        with None for no reason or no invalidity date. Returns how many."""
        added = 0
        for serial_hex, revoked_at, reason, invalidity in rows:
            self.add(
                serial_hex,
                revoked_at,
                NO_REASON if reason is None else reason,
                NO_DATE if invalidity is None else invalidity,
            )
            added += 1
        return added

    def add_from_sqlite(self, path: str, sql: str, params: tuple = ()) -> int:
        """Run one SELECT on the SQLite database at ``path`` (a read-only
        connection of its own) and add each row. Columns: serial as hex TEXT,
        revocation time INTEGER, reason INTEGER or NULL, invalidity date
        INTEGER or NULL. Returns how many rows were added."""
        import sqlite3
        from urllib.parse import quote

        try:
            db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error as exc:
            raise OSError(f"cannot open {path}: {exc}") from exc
        added = 0
        try:
            try:
                cursor = db.execute(sql, params)
            except sqlite3.Error as exc:
                raise OSError(f"cannot prepare the CRL query: {exc}") from exc
            if len(cursor.description) != 4:
                raise ValueError("the CRL query must return 4 columns")
            added = self.add_rows(_checked(cursor))
        except sqlite3.Error as exc:
            raise OSError(f"reading revoked certificates failed: {exc}") from exc
        finally:
            db.close()
        return added

    def getvalue(self) -> bytes:
        return bytes(self._parts)


def _checked(rows):
    """Rows from SQLite, refused unless typed as the native reader requires."""
    for row in rows:
        serial, revoked_at, reason, invalidity = row
        if type(serial) is not str:
            raise ValueError("a revoked certificate without a hex serial")
        if type(revoked_at) is not int:
            raise ValueError(f"serial {serial}: column 1 is not an integer revocation time")
        for column, value in ((2, reason), (3, invalidity)):
            if value is not None and type(value) is not int:
                raise ValueError(f"serial {serial}: column {column} is neither NULL nor an integer")
        yield row
