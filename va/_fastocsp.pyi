"""Type stubs for the native OCSP core (see va/_fastocsp_py.py for the twin)."""

DEFAULT_MAX_DEPTH: int
MAX_LENGTH_OCTETS: int

def read_tlv(data: bytes, offset: int = 0, end: int = -1) -> tuple[int, int, int]:
    """Header of one DER element in data[offset:end]: (tag, content_start, content_end)."""

def parse_der(data: bytes, max_depth: int = 32) -> tuple:
    """One complete DER element as (tag, bytes) or (tag, (children...)); no trailing data."""

SIMPLE_MAX: int

def simple_request(data: bytes, prefix: bytes) -> tuple[bool, bytes] | None:
    """(is_post, value) for the simplest complete OCSP HTTP request, else None."""
