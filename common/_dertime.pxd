# cython: language_level=3
#
# A certificate time in DER, computed in C: the one civil-date conversion of
# the native core. cimport it (the project root is on setup.py's include
# path); it has no runtime module, everything here is inline.
#
#     from common._dertime cimport DER_TIME_MAX, der_time
#
#     cdef inline int der_time(unsigned char* dst, long long epoch,
#                              bint generalized_always) except -1
#
# Writes the whole TLV for ``epoch`` (seconds since 1970-01-01T00:00:00Z) at
# ``dst`` and returns the octets written:
#   15  UTCTime YYMMDDHHMMSSZ, for years before 2050 unless generalized_always
#       (RFC 5280 4.1.2.5.1 and 5.1.2.4: UTCTime through 2049);
#   17  GeneralizedTime YYYYMMDDHHMMSSZ, from 2050, or always when asked
#       (RFC 5280 4.1.2.5.2; invalidityDate 5.3.2, OCSP's times in RFC 6960).
# ``dst`` needs room for DER_TIME_MAX (17) octets. Outside
# 1970-01-01T00:00:00Z..9999-12-31T23:59:59Z it raises
# ValueError("time outside 1970-01-01..9999-12-31") and writes nothing.
# The pure-Python twin is common/_dertime_py.py (same bytes, same error).
#
# The date comes from arithmetic on the day number (proleptic Gregorian, as in
# Howard Hinnant's civil_from_days), not gmtime_r: glibc's gmtime_r takes the
# time-zone lock on every call, once per CRL entry or OCSP time.

cdef enum:
    DER_TIME_MAX = 17


cdef inline void _dertime_digits(unsigned char* dst, int value, int width) noexcept nogil:
    cdef int i
    for i in range(width - 1, -1, -1):
        dst[i] = <unsigned char>(48 + value % 10)
        value //= 10


cdef inline int der_time(unsigned char* dst, long long epoch,
                         bint generalized_always) except -1:
    cdef long long days, seconds, z, era, doe, yoe, doy, mp
    cdef int year, month, day, written
    # LL: a C constant; a plain literal this large would be a Python int,
    # and the comparison a Python one, on every call.
    if not 0 <= epoch <= 253402300799LL:  # 9999-12-31T23:59:59Z
        raise ValueError("time outside 1970-01-01..9999-12-31")
    days = epoch // 86400
    seconds = epoch - days * 86400
    z = days + 719468  # days from 0000-03-01 to 1970-01-01
    era = z // 146097
    doe = z - era * 146097  # day of the 400-year era, 0..146096
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # day of the March-based year
    mp = (5 * doy + 2) // 153
    day = <int>(doy - (153 * mp + 2) // 5 + 1)
    month = <int>(mp + 3 if mp < 10 else mp - 9)
    year = <int>(yoe + era * 400 + (1 if month <= 2 else 0))
    if year < 2050 and not generalized_always:
        dst[0] = 0x17
        dst[1] = 13
        _dertime_digits(dst + 2, year % 100, 2)
        dst += 4
        written = 15
    else:
        dst[0] = 0x18
        dst[1] = 15
        _dertime_digits(dst + 2, year, 4)
        dst += 6
        written = 17
    _dertime_digits(dst, month, 2)
    _dertime_digits(dst + 2, day, 2)
    _dertime_digits(dst + 4, <int>(seconds // 3600), 2)
    _dertime_digits(dst + 6, <int>(seconds // 60 % 60), 2)
    _dertime_digits(dst + 8, <int>(seconds % 60), 2)
    dst[10] = 90  # 'Z'
    return written
