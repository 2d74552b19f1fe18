# Byte helpers shared by the native modules that read untrusted input
# (va/_fastocsp.pyx, va/_fastlane.pyx): inline, so each module compiles its
# own copy from this one source and neither imports the other at run time.

from cpython.bytes cimport PyBytes_FromStringAndSize


cdef inline int check_bytes(object data) except -1:
    # Exactly bytes: a bytearray or memoryview could change size under the reader.
    if type(data) is not bytes:
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    return 0


cdef inline bytes bytes_slice(const unsigned char* buf, Py_ssize_t start, Py_ssize_t stop):
    # buf[start:stop] as a new bytes object; the caller has checked the window.
    return PyBytes_FromStringAndSize(<const char*>buf + start, stop - start)
