"""Pure-Python twin of ``ca._crlcore``: CRL entries (RFC 5280 5.1.2.6, 5.3),
rows in, DER out; no store, no file, no SQL.

Same names, same bytes and the same refusals (exception type and message) as
the native module for every input; the tests compare them. The packed row
(``pack_row``, ``add_packed``) is the layout of ca/_crlcore.pxd.
"""

import re
import struct

from common._dertime_py import LAST_EPOCH, der_time

NO_REASON = -1
NO_DATE = -1
# ca/_crlcore.pxd: serial length, revocation time, reason, invalidity date.
_HEADER = struct.Struct("=Iqqq")
ROW_HEADER_SIZE = _HEADER.size
_INT64 = range(-(2**63), 2**63)
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]*")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _need_int(value, what: str) -> None:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")


def _ascii(serial_hex) -> bytes:
    if type(serial_hex) is not str:
        raise TypeError(f"serial must be a str, not {type(serial_hex).__name__}")
    if not serial_hex.isascii():
        raise ValueError(f"invalid literal for int() with base 16: {serial_hex!r}")
    return serial_hex.encode("ascii")


def _serial(text: bytes) -> bytes:
    """Minimal two's-complement content of a positive hex serial: at most 40
    significant digits (a value below 2**160), so at most 21 octets."""
    digits = text.lstrip(b"0")
    if not digits:
        raise ValueError(f"serial {_shown(text)!r} must be positive")
    if len(digits) > 40:
        raise ValueError(f"serial {_shown(text)!r} is longer than 20 octets")
    if not _HEX_DIGITS.fullmatch(digits):
        raise ValueError(f"invalid literal for int() with base 16: {_shown(text)!r}")
    value = int(digits, 16)
    return value.to_bytes((value.bit_length() + 8) // 8, "big")


def _shown(text: bytes) -> str:
    return text.decode("ascii", "replace")


def _check_reason(reason: int) -> None:
    # RFC 5280 5.3.1: 0..10, 7 unused; -1 is none.
    if reason != NO_REASON and (not 0 <= reason <= 10 or reason == 7):
        raise ValueError(f"invalid CRLReason {reason}")


def _check_date(invalidity_date: int) -> None:
    if invalidity_date != NO_DATE and not 0 <= invalidity_date <= LAST_EPOCH:
        raise ValueError("time outside 1970-01-01..9999-12-31")


def encode_time(epoch: int) -> bytes:
    """RFC 5280 5.1.2.4/5.1.2.6: UTCTime through 2049, GeneralizedTime from 2050."""
    _need_int(epoch, "time")
    return der_time(epoch, False)


def serial_content(serial_hex: str) -> bytes:
    """The DER INTEGER content of a positive serial given in hex (any padding)."""
    return _serial(_ascii(serial_hex))


def pack_row(serial: bytes, revocation_time: int, reason: int, invalidity_date: int) -> bytes:
    """One packed row (ca/_crlcore.pxd): the header, then ``serial`` (hex
    text) as it is. Only the fields' sizes are checked here (OverflowError);
    ``add_packed`` refuses what an entry cannot hold."""
    if type(serial) is not bytes:
        raise TypeError(f"serial must be bytes, not {type(serial).__name__}")
    if len(serial) > 0xFFFFFFFF:
        raise OverflowError("serial does not fit in a packed row")
    for value, what in (
        (revocation_time, "revocation time"),
        (reason, "reason"),
        (invalidity_date, "invalidity date"),
    ):
        _need_int(value, what)
        if value not in _INT64:
            raise OverflowError(f"{what} does not fit in 64 bits")
    return _HEADER.pack(len(serial), revocation_time, reason, invalidity_date) + serial


class CRLEntryWriter:
    """Accumulates RevokedCertificate entries; ``getvalue()`` is their
    concatenation. A call that refuses a row leaves the writer as it was."""

    def __init__(self):
        self._parts = bytearray()
        self.count = 0

    def add(self, serial_hex: str, revocation_time: int, reason: int, invalidity_date: int):
        """One entry; ``reason`` NO_REASON (-1) and ``invalidity_date``
        NO_DATE (-1) for none."""
        self._add_values(serial_hex, revocation_time, reason, invalidity_date, False)

    def _add_values(self, serial_hex, revocation_time, reason, invalidity_date, none_allowed):
        # The types first (TypeError), then the values in the order reason,
        # invalidity date, serial, revocation time (ValueError), as the native.
        if type(serial_hex) is not str:
            raise TypeError(f"serial must be a str, not {type(serial_hex).__name__}")
        _need_int(revocation_time, "revocation time")
        if none_allowed and reason is None:
            reason = NO_REASON
        else:
            _need_int(reason, "reason")
        if none_allowed and invalidity_date is None:
            invalidity_date = NO_DATE
        else:
            _need_int(invalidity_date, "invalidity date")
        _check_reason(reason)
        _check_date(invalidity_date)
        self._add(_ascii(serial_hex), revocation_time, reason, invalidity_date)

    def _add(self, serial: bytes, revocation_time: int, reason: int, invalidity_date: int):
        _check_reason(reason)
        _check_date(invalidity_date)
        extensions = b""
        if reason != NO_REASON:
            # reasonCode (2.5.29.21, RFC 5280 5.3.1): ENUMERATED in an OCTET STRING
            extensions += b"\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01" + bytes((reason,))
        if invalidity_date != NO_DATE:
            # invalidityDate (2.5.29.24, 5.3.2): always GeneralizedTime
            stamp = der_time(invalidity_date, True)
            extensions += _tlv(0x30, b"\x06\x03\x55\x1d\x18" + _tlv(0x04, stamp))
        body = _tlv(0x02, _serial(serial)) + der_time(revocation_time, False)
        if extensions:
            body += _tlv(0x30, extensions)
        self._parts += _tlv(0x30, body)
        self.count += 1

    def add_rows(self, rows) -> int:
        """Add (serial_hex, revocation_time, reason, invalidity_date) rows,
        with None (or -1) for no reason or no invalidity date. Returns how
        many; adds none of them if one is refused."""
        size, count = len(self._parts), self.count
        try:
            for row in rows:
                if type(row) is not tuple:
                    row = tuple(row)
                if len(row) != 4:
                    raise ValueError(f"a CRL row has 4 fields, not {len(row)}")
                self._add_values(*row, True)
        except BaseException:
            del self._parts[size:]
            self.count = count
            raise
        return self.count - count

    def add_packed(self, rows: bytes) -> int:
        """Add packed rows (ca/_crlcore.pxd), as a store reader hands them
        over. Returns how many; adds none of them if one is refused."""
        if type(rows) is not bytes:
            raise TypeError(f"packed rows must be bytes, not {type(rows).__name__}")
        size, count = len(self._parts), self.count
        offset, end = 0, len(rows)
        try:
            while offset < end:
                if end - offset < ROW_HEADER_SIZE:
                    raise ValueError(f"packed rows: a row header is cut short at octet {offset}")
                serial_length, revoked_at, reason, invalidity = _HEADER.unpack_from(rows, offset)
                offset += ROW_HEADER_SIZE
                if serial_length > end - offset:
                    raise ValueError(f"packed rows: a serial is cut short at octet {offset}")
                self._add(rows[offset : offset + serial_length], revoked_at, reason, invalidity)
                offset += serial_length
        except BaseException:
            del self._parts[size:]
            self.count = count
            raise
        return self.count - count

    def getvalue(self) -> bytes:
        return bytes(self._parts)
