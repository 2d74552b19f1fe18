"""Pure-Python twin of ``common/_dertime.pxd``: a certificate time in DER.

Same bytes and the same error as the C ``der_time``, from the C library's
``gmtime`` rather than the day-number arithmetic, so the tests comparing the
two also check one calendar against the other.
"""

import time

DER_TIME_MAX = 17
LAST_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


def der_time(epoch: int, generalized_always: bool) -> bytes:
    """The TLV of ``epoch``: UTCTime (15 octets) for years before 2050 unless
    ``generalized_always``, else GeneralizedTime (17 octets); RFC 5280
    4.1.2.5 and 5.1.2.4. ValueError outside 1970-01-01..9999-12-31."""
    if not 0 <= epoch <= LAST_EPOCH:
        raise ValueError("time outside 1970-01-01..9999-12-31")
    parts = time.gmtime(epoch)
    if parts.tm_year < 2050 and not generalized_always:
        return b"\x17\x0d" + time.strftime("%y%m%d%H%M%SZ", parts).encode()
    return b"\x18\x0f" + time.strftime("%Y%m%d%H%M%SZ", parts).encode()
