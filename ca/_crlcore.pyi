"""Type stubs for the native CRL entry encoder ``ca._crlcore`` (a codec: rows
in, DER out). The pure-Python twin is ca/_crlcore_py.py; the packed row
layout is in ca/_crlcore.pxd."""

from collections.abc import Iterable

NO_REASON: int
"""-1: an entry without reasonCode."""
NO_DATE: int
"""-1: an entry without invalidityDate."""
ROW_HEADER_SIZE: int
"""28: octets of a packed row's header (struct "=Iqqq"), before its serial."""

def encode_time(epoch: int) -> bytes:
    """RFC 5280 5.1.2.4/5.1.2.6: UTCTime through 2049, GeneralizedTime from 2050."""

def serial_content(serial_hex: str) -> bytes:
    """The DER INTEGER content of a positive serial given in hex (any padding)."""

def pack_row(serial: bytes, revocation_time: int, reason: int, invalidity_date: int) -> bytes:
    """One packed row: the header, then ``serial`` (hex text) as it is. Only the
    fields' sizes are checked here (OverflowError); ``add_packed`` refuses what
    an entry cannot hold."""

class CRLEntryWriter:
    """Accumulates RevokedCertificate entries; ``getvalue()`` is their
    concatenation. A call that refuses a row leaves the writer as it was."""

    count: int
    """Entries added so far."""

    def add(self, serial_hex: str, revocation_time: int, reason: int, invalidity_date: int) -> None:
        """One entry; ``reason`` NO_REASON (-1) and ``invalidity_date`` NO_DATE
        (-1) for none."""

    def add_rows(self, rows: Iterable[tuple[str, int, int | None, int | None]]) -> int:
        """Add (serial_hex, revocation_time, reason, invalidity_date) rows, with
        None (or -1) for no reason or no invalidity date. Returns how many; adds
        none of them if one is refused."""

    def add_packed(self, rows: bytes) -> int:
        """Add packed rows, as a store reader hands them over. Returns how many;
        adds none of them if one is refused."""

    def getvalue(self) -> bytes:
        """The entries added so far, concatenated (the content of
        revokedCertificates)."""
