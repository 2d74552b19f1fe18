"""The aiohttp listeners (the VA's admin listener, the RA API) under hostile
clients: header and body deadlines, idle connections, connection and body
limits, and JSON that json.loads alone would turn into a 500
(common/httpguard.py, common/jsonbody.py)."""

import json
import socket
import time

import pytest

from common import jsonbody
from common.httpguard import Limits
from tests.conftest import free_port
from tests.ra_fixtures import start_ra
from va.admin import make_app, start_admin
from va.store import VAStore

TOKEN = "t" * 43
LIMITS = Limits(request_timeout=1.0, idle_timeout=1.5, max_connections=8)


@pytest.fixture(params=["admin", "ra"])
def listener(request, loop, tmp_path, make_service):
    """(kind, port, token, a JSON POST path, its guard) for each listener."""
    if request.param == "admin":
        store = VAStore(tmp_path / "lmdb")
        app = make_app(store, TOKEN.encode(), limits=LIMITS)
        port = free_port()
        runner = loop.run(start_admin(app, "127.0.0.1", port))
        from va.admin import GUARD

        yield "admin", port, TOKEN, "/publish/v2/events", app[GUARD]
        loop.run(runner.cleanup())
        store.close()
    else:
        pki = make_service()
        pki.init_root("root", "CN=Guard Test Root", key_type="ec-p256")
        env, runner = start_ra(loop, pki, limits=LIMITS)
        token = env.tokens["administrator"]
        yield "ra", env.port, token, "/api/entities", _ra_guard(runner)
        loop.run(runner.cleanup())


def _ra_guard(runner):
    for site in runner.sites:
        return site.guard
    raise AssertionError("the RA runner has no guarded site")


def _read_all(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends until it closes, within ``seconds``."""
    sock.settimeout(seconds)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            return data + b"<closed>"
        data += chunk
    return data


def _send(port: int, data: bytes, seconds: float) -> tuple[bytes, float]:
    """Send ``data`` on a new connection, then read as _read_all does;
    (what came back, seconds from the send to the end of it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(data)
        answer = _read_all(sock, seconds)
        return answer, time.monotonic() - started


def test_headers_that_never_end_get_408_after_the_request_timeout(listener):
    _kind, port, _token, path, guard = listener
    # Headers that never end: nothing after this line.
    answer, took = _send(port, f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode(), 5)
    assert answer.startswith(b"HTTP/1.1 408") and answer.endswith(b"<closed>"), answer
    assert LIMITS.request_timeout <= took < LIMITS.request_timeout + 1.5
    assert guard.counts["request_timeout"] == 1


def test_a_body_that_never_arrives_gets_408_and_the_handler_never_runs(listener):
    _kind, port, token, path, guard = listener
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    answer, took = _send(port, head.encode(), 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"request_timeout" in answer and answer.endswith(b"<closed>"), answer
    assert took < LIMITS.request_timeout + 1.5
    assert guard.counts["request_timeout"] == 1


def test_a_declared_huge_body_gets_413_at_once(listener):
    _kind, port, token, path, _guard = listener
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {1 << 30}\r\n\r\n{{"
    )
    answer, took = _send(port, head.encode(), 3)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"too_large" in answer
    assert took < 0.5


def test_an_unauthenticated_request_is_answered_before_its_body(listener):
    """The body is read after authentication: a client without credentials
    has nothing buffered, and is answered (401) without waiting for it."""
    _kind, port, _token, path, _guard = listener
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{"
    answer, took = _send(port, head.encode(), 3)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert took < 0.5


def test_a_client_that_does_not_read_its_answers_is_reset(loop, make_service):
    """Many requests for the RA's public OpenAPI document, none of the
    answers read: the connection is closed after the idle timeout, and reset
    at the next sweep (a graceful close would wait for the reader for ever)."""
    pki = make_service()
    pki.init_root("root", "CN=Guard Test Root", key_type="ec-p256")
    env, runner = start_ra(loop, pki, limits=LIMITS)
    guard = _ra_guard(runner)
    try:
        request = b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", env.port), timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(1.0)
            started = time.monotonic()
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                while time.monotonic() - started < 15:  # bounded
                    try:
                        sock.sendall(request * 200)
                    except TimeoutError:
                        continue  # the server stopped reading; wait for its verdict
        assert time.monotonic() - started < LIMITS.idle_timeout + 8
        deadline = time.monotonic() + 5
        while guard.connections and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not guard.connections
        assert guard.counts["idle_timeout"] >= 1
    finally:
        loop.run(runner.cleanup())


def test_an_idle_connection_closes_after_the_idle_timeout(listener):
    _kind, port, _token, _path, guard = listener
    answer, took = _send(port, b"", 5)  # connect, send nothing
    assert answer == b"<closed>"
    assert LIMITS.idle_timeout <= took < LIMITS.idle_timeout + 1.5
    assert guard.counts["idle_timeout"] == 1


def test_connections_past_the_limit_are_closed_at_once(listener):
    _kind, port, _token, _path, guard = listener
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(8)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            assert _read_all(extra, 2) == b"<closed>"
        assert guard.counts["refused"] == 1
    finally:
        for sock in held:
            sock.close()


def _post(port: int, path: str, token: str, body: bytes) -> tuple[int, dict]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST",
        path,
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload


def _message(kind: str, payload: dict) -> str:
    return payload["message"] if kind == "admin" else payload["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 990 + b"]" * 990, "nested deeper than 32 levels"),
        (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested deeper than 32 levels"),
        (b'{"seq": ' + b"9" * 5000 + b"}", "a number longer than 40 characters"),
        (b'{"seq": 18446744073709551616}', "outside the signed 64-bit range"),
        (b'{"seq": NaN}', "NaN is not a JSON number"),
        (b'{"seq": 1e400}', "out of range"),
        (b'{"seq": 1', "the body is not JSON"),
        (b'{"name": "\xff"}', "not UTF-8"),
    ],
)
def test_json_that_would_be_an_internal_error_gets_400(listener, body, message):
    kind, port, token, path, _guard = listener
    status, payload = _post(port, path, token, body)
    assert status == 400, payload
    assert message in _message(kind, payload), payload


def test_the_json_reader_alone():
    assert jsonbody.loads(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert jsonbody.loads("[" * 32 + "]" * 32) is not None  # at the limit
    with pytest.raises(jsonbody.JSONBodyError, match="nested deeper than 32"):
        jsonbody.loads("[" * 33 + "]" * 33)
    assert jsonbody.loads(str(2**63 - 1)) == 2**63 - 1
    assert jsonbody.loads(str(-(2**63))) == -(2**63)
    with pytest.raises(jsonbody.JSONBodyError, match="64-bit"):
        jsonbody.loads(str(2**63))
    with pytest.raises(jsonbody.JSONBodyError, match="Infinity is not"):
        jsonbody.loads("[-Infinity]")
    deep = "[" * 100_000 + "]" * 100_000  # past the interpreter's recursion limit
    with pytest.raises(jsonbody.JSONBodyError, match="nested deeper"):
        jsonbody.loads(deep)
