"""TLS channel bindings of an EST connection (RFC 7030 3.5): ``tls-unique``
(RFC 5929) on TLS 1.2 and ``tls-exporter`` (RFC 9266) on TLS 1.3, where
tls-unique is undefined.

Python's ``ssl`` gives tls-unique but no keying-material exporter, so the
exporter is called in the libssl Python's ``_ssl`` module is linked with,
on the ``SSL *`` of the connection. Finding that pointer relies on
CPython's layout of its SSL socket object (``PyObject_HEAD``, the socket,
then ``SSL *``); it is checked against ``SSL_version`` before any use, and
where it does not hold (another interpreter, another layout) the
exporter is reported as unavailable and channel binding on TLS 1.3 is
not offered, rather than guessed.
"""

import ctypes
import ssl

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
EXPORTER_LENGTH = 32
_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _libssl():
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        export = lib.SSL_export_keying_material
        version = lib.SSL_version
    except (ImportError, OSError, AttributeError):
        return None
    export.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_int,
    ]
    export.restype = ctypes.c_int
    version.argtypes = [ctypes.c_void_p]
    version.restype = ctypes.c_int
    return export, version


_LIB = _libssl()


def _ssl_pointer(ssl_object) -> int | None:
    inner = getattr(ssl_object, "_sslobj", None)
    if inner is None or _LIB is None:
        return None
    # PySSLSocket: PyObject_HEAD (object.__basicsize__), the weak reference
    # to the socket (NULL under a memory BIO, as asyncio's), then SSL *.
    offset = object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(id(inner) + offset).value
    if not pointer:
        return None
    expected = _VERSIONS.get(ssl_object.version())
    if expected is None or _LIB[1](pointer) != expected:
        return None
    return pointer


def exporter(ssl_object) -> bytes | None:
    """RFC 9266's tls-exporter value of a TLS 1.3 connection, or None."""
    if ssl_object.version() != "TLSv1.3":
        return None
    pointer = _ssl_pointer(ssl_object)
    if pointer is None:
        return None
    out = ctypes.create_string_buffer(EXPORTER_LENGTH)
    ok = _LIB[0](pointer, out, EXPORTER_LENGTH, EXPORTER_LABEL, len(EXPORTER_LABEL), None, 0, 0)
    return out.raw if ok == 1 else None


def channel_binding(ssl_object) -> tuple[str, bytes] | None:
    """(type, value) of a connection's channel binding, or None when it has
    none this process can compute."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    version = ssl_object.version()
    if version == "TLSv1.3":
        value = exporter(ssl_object)
        return ("tls-exporter", value) if value else None
    if version == "TLSv1.2":
        value = ssl_object.get_channel_binding("tls-unique")
        return ("tls-unique", value) if value else None
    return None
