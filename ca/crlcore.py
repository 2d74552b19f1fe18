"""The CRL encoder's public face (rows in, DER out): each name bound from the
twin ``ca._crlcore_py``, then from the native ``ca._crlcore`` when
``common.native`` allows it and it is built (as aiohttp binds its
``_http_parser``). ``IMPLEMENTATION`` says which is in use."""

from ca import _crlcore_py
from common import native

CRLEntryWriter = _crlcore_py.CRLEntryWriter
NO_DATE = _crlcore_py.NO_DATE
NO_REASON = _crlcore_py.NO_REASON
ROW_HEADER_SIZE = _crlcore_py.ROW_HEADER_SIZE
encode_time = _crlcore_py.encode_time
pack_row = _crlcore_py.pack_row
serial_content = _crlcore_py.serial_content
IMPLEMENTATION = "python"

_native = native.load("ca._crlcore")
if _native is not None:
    CRLEntryWriter = _native.CRLEntryWriter
    NO_DATE = _native.NO_DATE
    NO_REASON = _native.NO_REASON
    ROW_HEADER_SIZE = _native.ROW_HEADER_SIZE
    encode_time = _native.encode_time
    pack_row = _native.pack_row
    serial_content = _native.serial_content
    IMPLEMENTATION = "native"

# The API both implementations provide (the tests check they agree on it).
API = (
    "CRLEntryWriter",
    "NO_DATE",
    "NO_REASON",
    "ROW_HEADER_SIZE",
    "encode_time",
    "pack_row",
    "serial_content",
)

__all__ = ["API", "IMPLEMENTATION", *API]
