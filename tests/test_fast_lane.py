"""The VA's fast lane (``simple_request``): the native recognizer and its
twin agree on every input, whatever it accepts httptools reads the same
way, and a request answered through it gets the bytes the full path gives."""

import random

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import native
from tests.conftest import native_module
from tests.test_va_http import port_of, post_bytes, raw_http
from tests.test_va_openssl import _request
from va import _fastlane_py, fastlane

# Every test here checks the twin (against httptools, and against the native
# recognizer unless it is switched off) or goes through the façade.
pytestmark = [pytest.mark.twin, pytest.mark.codec("va._fastlane", "va._fastlane_py")]
PREFIX = b"/ocsp"


def both(data: bytes, prefix: bytes = PREFIX):
    """The twin's answer, checked against the native one's."""
    expected = _fastlane_py.simple_request(data, prefix)
    if native.extensions_allowed():
        assert native_module("va._fastlane").simple_request(data, prefix) == expected, data
    return expected


class _Message:
    """What httptools reads from one buffer."""

    def __init__(self):
        self.url, self.body, self.complete, self.headers = b"", b"", 0, []

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name, value))

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        self.complete += 1


def httptools_reads(data: bytes):
    message = _Message()
    parser = httptools.HttpRequestParser(message)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        return None
    if message.complete != 1:
        return None
    return parser.get_method(), message.url, message.body, parser.should_keep_alive()


def agrees_with_httptools(data: bytes, prefix: bytes = PREFIX) -> None:
    """Whatever the lane accepts, httptools reads as one complete kept-alive
    request with the same method, target and body."""
    simple = both(data, prefix)
    if simple is None:
        return
    read = httptools_reads(data)
    assert read is not None, data
    method, url, body, keep_alive = read
    assert keep_alive, data
    is_post, value = simple
    if is_post:
        assert method == b"POST" and body == value, data
        assert url == prefix or url.startswith(prefix + b"/"), data
    else:
        assert (method, body) == (b"GET", b""), data
        assert url == prefix + b"/" + value, data


def get_bytes(encoded: bytes, headers: bytes = b"Host: x\r\n") -> bytes:
    return b"GET " + PREFIX + b"/" + encoded + b" HTTP/1.1\r\n" + headers + b"\r\n"


BODY = bytes.fromhex("3045304330413039300906052b0e03021a05000414") + bytes(range(40))


def test_accepts_plain_get_and_post():
    assert both(get_bytes(b"MEMwQTA%2FMD0wOzAJBgUrDgMCGgUABBQ=")) == (
        False,
        b"MEMwQTA%2FMD0wOzAJBgUrDgMCGgUABBQ=",
    )
    assert both(post_bytes(BODY)) == (True, BODY)
    assert both(post_bytes(BODY, path=b"/ocsp/anything")) == (True, BODY)
    # curl's and wrk's usual headers, any case, optional whitespace
    headers = (
        b"host: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
        b"CONNECTION:  Keep-Alive \r\ncache-control: no-cache\r\nPragma: no-cache\r\n"
        b"Accept-Encoding: gzip\r\nAccept-Language: en\r\n"
    )
    assert both(get_bytes(b"MEM=", headers)) == (False, b"MEM=")
    lower = post_bytes(BODY).replace(b"Content-Type:", b"content-type:\t")
    assert both(lower.replace(b"application/ocsp-request", b"Application/OCSP-Request")) == (
        True,
        BODY,
    )
    # the root as the OCSP path
    assert both(get_bytes(b"MEM=").replace(b"/ocsp/", b"/"), b"") == (False, b"MEM=")


@pytest.mark.parametrize(
    "data",
    [
        get_bytes(b"MEM=?x=1"),  # a query
        get_bytes(b"MEM=").replace(b"HTTP/1.1", b"HTTP/1.0"),  # HTTP/1.0: keep-alive rules
        get_bytes(b"MEM=", b"Host: x\r\nConnection: close\r\n"),
        get_bytes(b"MEM=", b'Host: x\r\nIf-None-Match: "a"\r\n'),  # conditional
        get_bytes(b"MEM=", b"Host: x\r\nTransfer-Encoding: chunked\r\n"),
        get_bytes(b"MEM=", b"Host: x\r\nContent-Length: 0\r\n"),  # GET with a length
        get_bytes(b"MEM=", b"Host: x\r\nX-Anything: 1\r\n"),  # an unknown header
        get_bytes(b"MEM=", b"Host : x\r\n"),  # space before the colon
        get_bytes(b"MEM=", b"Host: x\r\n continued\r\n"),  # obs-fold
        get_bytes(b"MEM=", b"Host: \xc3\xa9\r\n"),  # obs-text
        get_bytes(b"MEM=", b"Host: x\n"),  # bare LF
        get_bytes(b"MEM=") + b"x",  # bytes after the request
        get_bytes(b"MEM=") * 2,  # pipelined: the full parser takes both
        get_bytes(b"MEM=")[:-2],  # incomplete
        get_bytes(b""),  # nothing after the prefix
        get_bytes(b"MEM=").replace(b"/ocsp/", b"/ocspx/"),  # another path
        get_bytes(b"MEM=").replace(b"/ocsp/", b"http://h/ocsp/"),  # absolute form
        get_bytes(b'ME"M='),  # not a path character
        get_bytes(b"MEM=").replace(b"GET", b"get"),
        get_bytes(b"MEM=").replace(b"GET", b"HEAD"),
        get_bytes(b"MEM=", b"Host: x\r\n" * 33),  # too many headers
        get_bytes(b"A" * 8192),  # over SIMPLE_MAX
        post_bytes(BODY, path=b"/ocsp?x"),
        post_bytes(BODY, ctype=b"application/ocsp-request; charset=x"),  # the full path decides
        post_bytes(BODY, ctype=b"text/plain"),
        post_bytes(BODY).replace(b"Content-Type: application/ocsp-request\r\n", b""),
        post_bytes(BODY).replace(b"Content-Length: 61", b"Content-Length: 60"),
        post_bytes(BODY).replace(b"Content-Length: 61", b"Content-Length: 62"),
        post_bytes(BODY).replace(b"Content-Length: 61", b"Content-Length: +61"),
        post_bytes(BODY).replace(b"Length: 61", b"Length: 61\r\nContent-Length: 61"),
        post_bytes(b""),  # empty body
        post_bytes(BODY)[:-1],  # short body: more is coming
        post_bytes(BODY) + post_bytes(BODY),
    ],
)
def test_leaves_everything_else_to_httptools(data):
    assert both(data) is None
    agrees_with_httptools(data)


def test_rejects_non_bytes(impl):
    with pytest.raises(TypeError, match="data must be bytes, not bytearray"):
        impl.simple_request(bytearray(get_bytes(b"MEM=")), PREFIX)
    with pytest.raises(TypeError):
        impl.simple_request(get_bytes(b"MEM="), None)
    with pytest.raises(TypeError):
        impl.simple_request(get_bytes(b"MEM="), PREFIX.decode())


# -- every input: twin agreement and httptools agreement ---------------------

_HEADER_NAMES = [
    b"Host",
    b"host",
    b"User-Agent",
    b"Accept",
    b"Connection",
    b"Content-Type",
    b"content-length",
    b"Content-Length",
    b"Transfer-Encoding",
    b"If-None-Match",
    b"X-A",
    b"Pragma",
    b"Ho st",
    b"",
]
_HEADER_VALUES = [
    b"x",
    b"keep-alive",
    b"close",
    b"application/ocsp-request",
    b"0",
    b"61",
    b"061",
    b"99999",
    b"100000",
    b" a ",
    b"\ta",
    b"",
    b"chunked",
    b"\x7f",
    b"\x00",
]


@st.composite
def requests(draw):
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"GET ", b"POS"]))
    target = draw(
        st.sampled_from([b"/ocsp", b"/ocsp/", b"/ocsp/MEM=", b"/ocsp/a%2Fb+c", b"/", b"/x", b"*"])
    ) + draw(st.sampled_from([b"", b"?q", b"/z", b"#f", b"\x00"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"http/1.1"]))
    headers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_HEADER_NAMES),
                st.sampled_from([b": ", b":", b" : ", b":\t"]),
                st.sampled_from(_HEADER_VALUES),
                st.sampled_from([b"\r\n", b"\r\n", b"\n", b" \r\n"]),
            ),
            max_size=6,
        )
    )
    body = draw(st.sampled_from([b"", BODY, BODY[:1], b"x" * 99999]))
    data = method + b" " + target + b" " + version + b"\r\n"
    data += b"".join(b"".join(h) for h in headers) + b"\r\n" + body
    if draw(st.booleans()):  # a random edit
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=3)) + data[at + draw(st.integers(0, 3)) :]
    return data


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_structured_inputs_agree(data):
    agrees_with_httptools(data)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"/ocsp", b"", b"/a/b"]))
def test_arbitrary_bytes_agree(data, prefix):
    agrees_with_httptools(data, prefix)


def test_every_truncation_and_byte_edit_of_accepted_requests_agrees():
    rng = random.Random(20261127)
    seeds = [
        get_bytes(b"MEMwQTA%2FMD0wOzAJBgUrDgMCGgUABBQ="),
        post_bytes(BODY),
        get_bytes(b"MEM=", b"Host: a\r\nConnection: keep-alive\r\nAccept: */*\r\n"),
    ]
    for seed in seeds:
        assert both(seed) is not None
        for cut in range(len(seed) + 1):
            agrees_with_httptools(seed[:cut])
        for _ in range(3000):
            at = rng.randrange(len(seed))
            edited = seed[:at] + bytes([rng.randrange(256)]) + seed[at + 1 :]
            agrees_with_httptools(edited)


# -- the server: the lane's answer is the full path's answer -----------------


def _strip_max_age(response: bytes) -> bytes:
    """The response with Cache-Control's max-age blanked (it may tick between
    two requests)."""
    head, sep, body = response.partition(b"\r\n\r\n")
    lines = [
        b"Cache-Control: max-age=*" if line.startswith(b"Cache-Control: max-age=") else line
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + sep + body


def test_lane_and_full_path_give_the_same_bytes(va_env, tmp_path):
    import base64
    from urllib.parse import quote

    port = port_of(va_env)
    for cert in ("good.pem", "revoked.pem"):
        request = _request(va_env, tmp_path, cert, "-no_nonce")
        encoded = quote(base64.b64encode(request).decode(), safe="").encode()
        for plain in (post_bytes(request), get_bytes(encoded)):
            assert fastlane.simple_request(plain, PREFIX) is not None
            # One header more sends the same request through httptools.
            full = plain.replace(b"Host: x\r\n", b"Host: x\r\nX-Trace: 1\r\n")
            assert fastlane.simple_request(full, PREFIX) is None
            fast, slow = raw_http(port, plain), raw_http(port, full)
            assert fast.startswith(b"HTTP/1.1 200 OK\r\n")
            assert _strip_max_age(fast) == _strip_max_age(slow)
    # A malformed request through the lane: the same error answer as the full path.
    broken = post_bytes(b"\x30\x03\x02\x01")
    assert fastlane.simple_request(broken, PREFIX) is not None
    full = broken.replace(b"Host: x\r\n", b"Host: x\r\nX-Trace: 1\r\n")
    assert raw_http(port, broken) == raw_http(port, full)
    assert b"\r\n\r\n\x30\x03\x0a\x01\x01" in raw_http(port, broken)  # malformedRequest
    # The lane's requests are counted for operators (Prometheus).
    metrics = raw_http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Trace: 1\r\n\r\n")
    line = next(
        line
        for line in metrics.split(b"\n")
        if line.startswith(b"revoca_http_fast_lane_requests_total ")
    )
    assert int(line.split()[1]) >= 6  # the plain requests above (4 + 2 malformed)


def test_tighter_limits_turn_the_lane_off():
    """Limits below what the lane accepts: every request goes through the
    path that enforces them."""
    from va.http import Front
    from va.metrics import Metrics
    from va.settings import HTTPSettings

    def front(settings):
        return Front(None, settings, Metrics(), {}, None)

    assert front(HTTPSettings()).fast_lane
    for tight in ({"max_headers": 10}, {"max_header_bytes": 4096}, {"max_url": 1024}):
        assert not front(HTTPSettings(**tight)).fast_lane, tight
