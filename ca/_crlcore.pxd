# cython: language_level=3
#
# The packed row: the form in which a store reader hands CRL rows to the
# encoder (CRLEntryWriter.add_packed) without a Python object per row. One
# definition for C: ca/_crlcore.pyx reads it, ca/_crlsqlite.pyx writes it
# (cimport ca._crlcore; inline only, so no runtime import). The twin's
# definition is ca/_crlcore_py.py's pack_row.
#
# A packed row is a 28-octet header in native byte order (struct "=Iqqq"):
#   serial_length    uint32  octets of serial text that follow the header
#   revocation_time  int64   seconds since 1970-01-01T00:00:00Z
#   reason           int64   CRLReason, or -1 for none
#   invalidity_date  int64   seconds since 1970-01-01T00:00:00Z, or -1 for none
# then the serial as hexadecimal text. Rows follow each other directly. The
# values are not checked here: the encoder refuses what an entry cannot hold.

from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memcpy

cdef enum:
    ROW_HEADER = 28


cdef inline void put_row_header(unsigned char* p, uint32_t serial_length,
                                int64_t revocation_time, int64_t reason,
                                int64_t invalidity_date) noexcept nogil:
    memcpy(p, &serial_length, 4)
    memcpy(p + 4, &revocation_time, 8)
    memcpy(p + 12, &reason, 8)
    memcpy(p + 20, &invalidity_date, 8)


cdef inline void get_row_header(const unsigned char* p, uint32_t* serial_length,
                                int64_t* revocation_time, int64_t* reason,
                                int64_t* invalidity_date) noexcept nogil:
    memcpy(serial_length, p, 4)
    memcpy(revocation_time, p + 4, 8)
    memcpy(reason, p + 12, 8)
    memcpy(invalidity_date, p + 20, 8)
