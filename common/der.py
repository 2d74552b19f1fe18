"""Minimal DER encoding (X.690 section 10): the one Python writer of DER
lengths and TLVs, used by what the CA signs and by the OCSP and CRL twins."""

from datetime import UTC, datetime


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + length(len(content)) + content


def sequence(*items: bytes) -> bytes:
    # One copy of the items, however large (a CRL's entries run to megabytes).
    return b"".join((b"\x30", length(sum(map(len, items))), *items))


def set_of(*items: bytes) -> bytes:
    """A SET OF, its elements in DER order (X.690 11.6: ascending encodings)."""
    return tlv(0x31, b"".join(sorted(items)))


def integer_content(value: int) -> bytes:
    """The content octets of a DER INTEGER: two's complement in the fewest
    octets (X.690 8.3.2). A certificate serial as OCSP CertIDs, CRL entries
    and the VA's store carry it."""
    size = (value.bit_length() + 8) // 8 if value >= 0 else ((-value - 1).bit_length() + 8) // 8
    return value.to_bytes(size, "big", signed=True)


def integer(value: int) -> bytes:
    return tlv(0x02, integer_content(value))


def boolean(value: bool) -> bytes:
    return tlv(0x01, b"\xff" if value else b"\x00")


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes) -> bytes:
    return tlv(0x03, b"\x00" + value)


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def explicit(number: int, content: bytes) -> bytes:
    return tlv(0xA0 | number, content)


def time(value: datetime) -> bytes:
    """RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, in UTC, Z."""
    value = value.astimezone(UTC)
    if value.year < 2050:
        return tlv(0x17, value.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(0x18, value.strftime("%Y%m%d%H%M%SZ").encode())
