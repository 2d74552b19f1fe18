"""Hostile clients against the VA's HTTP front, all on 127.0.0.1 and bounded
in time: slow clients, oversized headers, idle and surplus connections,
pipelined floods from clients that do not read, connect-and-close. Through
all of it a well-behaved client keeps getting its answers."""

import contextlib
import resource
import socket
import threading
import time

import pytest
from cryptography.x509 import ocsp

from tests.test_va_http import port_of, post_bytes
from tests.test_va_openssl import _request
from tests.va_fixtures import make_va
from va.settings import HTTPSettings

pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins

HOSTILE = HTTPSettings(
    request_timeout=1.0,
    idle_timeout=1.5,
    max_connections=64,
    max_header_bytes=4096,
    max_headers=20,
    max_pipeline=8,
)


@pytest.fixture
def hostile(tmp_path, service):
    env, thread = make_va(tmp_path, service, http=HOSTILE)
    env.port = port_of(env)
    env.request = _request(env, tmp_path, "good.pem", "-no_nonce")
    yield env
    thread.stop()


def read_response(sock: socket.socket) -> bytes:
    """One HTTP response (Content-Length framed) from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends before closing; fails if it keeps the socket open."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open past {seconds} s: {data[:80]!r}")
    except ConnectionResetError:
        pass
    return data


def good_client_round_trips(env, count: int) -> float:
    """``count`` OCSP requests on one keep-alive connection; the slowest
    answer's seconds. Every answer must be a good status."""
    slowest = 0.0
    with socket.create_connection(("127.0.0.1", env.port), timeout=5) as sock:
        for _ in range(count):
            started = time.monotonic()
            sock.sendall(post_bytes(env.request))
            response = read_response(sock)
            slowest = max(slowest, time.monotonic() - started)
            assert response.startswith(b"HTTP/1.1 200 ")
            body = response.partition(b"\r\n\r\n")[2]
            status = ocsp.load_der_ocsp_response(body).certificate_status
            assert status == ocsp.OCSPCertStatus.GOOD
    return slowest


def test_a_slow_client_gets_408_and_others_are_served_meanwhile(hostile):
    slow = socket.create_connection(("127.0.0.1", hostile.port), timeout=5)
    stop = threading.Event()

    def dribble():  # one byte every 0.2 s: the request never completes in time
        for byte in b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n":
            if stop.is_set():
                return
            try:
                slow.send(bytes((byte,)))
            except OSError:
                return
            time.sleep(0.2)

    sender = threading.Thread(target=dribble, daemon=True)
    sender.start()
    try:
        assert good_client_round_trips(hostile, 50) < 1.0
        answer = closed_within(slow, 4.0)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
        assert b"Connection: close" in answer
    finally:
        stop.set()
        sender.join(5)
        slow.close()
    metrics = hostile.serving.metrics.render()
    assert 'revoca_http_connection_events_total{event="request_timeout"} 1' in metrics


def test_a_slow_body_is_timed_out_too(hostile):
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        sock.sendall(post_bytes(hostile.request)[:-10])  # the body's end never comes
        assert closed_within(sock, 4.0).startswith(b"HTTP/1.1 408 ")


def test_idle_connections_are_closed(hostile):
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        assert closed_within(sock, 4.0) == b""  # never sent anything
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        sock.sendall(post_bytes(hostile.request))
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        assert closed_within(sock, 4.0) == b""  # keep-alive, then nothing


@pytest.mark.parametrize(
    "head",
    [
        b"".join(b"X-H%d: v\r\n" % i for i in range(40)),  # too many lines
        b"X-Big: " + b"a" * 5000 + b"\r\n",  # one line too long
        b"X-A: " + b"a" * 3000 + b"\r\nX-B: " + b"b" * 3000 + b"\r\n",  # too long together
    ],
    ids=["many", "long-line", "long-total"],
)
def test_oversized_header_sections_get_431(hostile, head):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n"
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        sock.sendall(request)
        answer = closed_within(sock, 4.0)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert b"Traceback" not in answer
    good_client_round_trips(hostile, 3)


def test_an_endless_header_line_is_cut_off_not_buffered(hostile):
    """A header line that never ends: refused once past the limit, not kept."""
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 1 << 20:
                sock.sendall(b"a" * 1024)
                sent += 1024
        except OSError:  # reset by the server, having answered 431
            pass
        assert sent < 1 << 20 or closed_within(sock, 4.0).startswith(b"HTTP/1.1 431 ")


def test_connections_past_the_cap_are_closed_and_the_cap_frees_up(hostile):
    held = [socket.create_connection(("127.0.0.1", hostile.port), timeout=5) for _ in range(64)]
    try:
        deadline = time.monotonic() + 5
        while len(hostile.serving.front.connections) < 64 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(hostile.serving.front.connections) == 64
        with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as extra:
            assert closed_within(extra, 2.0) == b""
        assert hostile.serving.metrics.requests["connection_refused"] >= 1
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while hostile.serving.front.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    good_client_round_trips(hostile, 3)


def test_thousands_of_idle_connections_neither_block_nor_leak(tmp_path, service):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 8192:
        pytest.skip(f"needs 8192 file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 8192), hard))
    settings = HTTPSettings(idle_timeout=2.0, max_connections=5000)
    env, thread = make_va(tmp_path, service, http=settings)
    env.port = port_of(env)
    env.request = _request(env, tmp_path, "good.pem", "-no_nonce")
    idle = []
    try:
        for _ in range(3000):
            idle.append(socket.create_connection(("127.0.0.1", env.port), timeout=5))
        assert good_client_round_trips(env, 20) < 1.0
        deadline = time.monotonic() + 10
        while env.serving.front.connections and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not env.serving.front.connections  # every idle one closed by the server
        assert env.serving.metrics.requests["idle_timeout"] >= 3000
    finally:
        for sock in idle:
            sock.close()
        thread.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def patient(tmp_path, service):
    """Hostile limits, but an idle timeout long enough to watch a stalled client."""
    from dataclasses import replace

    env, thread = make_va(tmp_path, service, http=replace(HOSTILE, idle_timeout=30.0))
    env.port = port_of(env)
    yield env
    thread.stop()


def test_a_pipelined_flood_from_a_client_that_does_not_read_is_throttled(patient):
    """Thousands of pipelined requests and no reading: the server stops
    reading that connection instead of queueing answers without bound; once
    the client reads, every answer arrives, in order."""
    hostile = patient
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
    total = 250_000  # 8.5 MB of requests, 20 MB of answers: more than socket buffers hold
    requests = one * total
    with socket.socket() as sock:
        # Small client buffers: what stays unsent is held by the server's
        # refusal to read, not by this kernel's buffers.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sock.settimeout(2.0)
        sock.connect(("127.0.0.1", hostile.port))
        sent = 0
        try:
            while sent < len(requests):
                sent += sock.send(requests[sent : sent + 65536])
        except TimeoutError:
            pass  # the server stopped reading: the flood is held back
        assert sent < len(requests)
        assert len(hostile.serving.front.connections) == 1
        (connection,) = hostile.serving.front.connections
        assert connection.paused
        assert len(connection.pending) <= HOSTILE.max_pipeline
        # What the server holds for this client: one read's worth of answers.
        assert connection.transport.get_write_buffer_size() < 2 << 20

        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.settimeout(10.0)

        def send_rest():
            nonlocal sent
            with contextlib.suppress(OSError):
                while sent < len(requests):
                    sent += sock.send(requests[sent : sent + 65536])

        writer = threading.Thread(target=send_rest, daemon=True)
        writer.start()
        chunks, size = [], 0
        deadline = time.monotonic() + 60
        while size < len(answer) * total and time.monotonic() < deadline:
            chunk = sock.recv(4 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        writer.join(5)
    assert size == len(answer) * total, hostile.serving.metrics.requests
    assert b"".join(chunks) == answer * total  # every answer, in order, nothing else


def test_a_client_that_stops_reading_is_dropped_after_the_idle_timeout(hostile):
    # The client keeps sending whole requests and never reads: the VA stops
    # reading once its answers back up, and drops the connection (a reset, so
    # that the socket does not wait for a reader) after the idle timeout.
    requests = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 20_000
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(15.0)
        started = time.monotonic()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while time.monotonic() - started < 15:  # bounded: 15 s at most
                sock.sendall(requests)
        assert time.monotonic() - started < 12
    deadline = time.monotonic() + 5
    while hostile.serving.front.connections and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not hostile.serving.front.connections
    assert hostile.serving.metrics.requests["idle_timeout"] >= 1


def test_connect_and_close_leaves_nothing_behind(hostile):
    for _ in range(200):
        socket.create_connection(("127.0.0.1", hostile.port), timeout=5).close()
    deadline = time.monotonic() + 5
    while hostile.serving.front.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not hostile.serving.front.connections
    good_client_round_trips(hostile, 3)


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"PUT /ocsp", b"405"),
        (b"DELETE /ocsp", b"405"),
        (b"PATCH /ocsp/abc", b"405"),
        (b"OPTIONS /ocsp", b"405"),
        (b"PUT /healthz", b"405"),
        (b"DELETE /crl/issuing.crl", b"405"),
        (b"POST /metrics", b"405"),
        (b"GET /", b"404"),
        (b"GET /ca/../../etc/passwd", b"404"),
        (b"GET /crl/..%2f..%2fetc%2fpasswd.crl", b"404"),
        (b"GET /ocspx", b"404"),
    ],
)
def test_unsupported_methods_and_paths(hostile, request_line, status):
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        sock.sendall(request_line + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    assert b"Traceback" not in answer and b"Error" not in answer.partition(b"\r\n\r\n")[2]
