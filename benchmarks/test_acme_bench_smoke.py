"""The ACME issuance benchmark in a tiny configuration (2 clients, 4
certificates, seconds) against Pebble and Revoca in one run, so it cannot
rot: the whole RFC 8555 flow works on both and the report has its fields.
No timing is asserted."""

import asyncio
import json

import pytest

from benchmarks import acme_bench
from benchmarks.acme_client import STEPS, Responder, retry_after
from tests.conftest import need


def test_acme_bench_smoke(tmp_path, capsys):
    need("pebble", "pebble")
    need("pebble-challtestsrv", "pebble")
    out = tmp_path / "acme.json"
    argv = ["--clients", "2", "--certs", "4", "--seconds", "20", "--cert-timeout", "15"]
    assert acme_bench.main([*argv, "--repeat", "2", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["target"] == "pebble"
    assert results["machine"]["pebble"].startswith("pebble ")
    bench = results["run"]
    assert bench["accounts"]["made"] == 2 and bench["accounts"]["errors"] == {}
    assert bench["warmup"]["issued"] == 2  # one per client, untimed
    assert len(bench["runs"]) == 2 and bench["median"] in (0, 1)
    run = bench["runs"][bench["median"]]
    assert all(r["issued"] == 4 and r["errors"] == {} for r in bench["runs"])
    assert run["issued"] == run["certs_started"] == 4
    assert run["errors"] == {} and run["bad_nonce_retries"] == 0
    # every order was validated (no authorization reused): one challenge
    # each, fetched by Pebble's validator from this process's responder
    assert run["validations_served"] >= 4 and run["validations_missed"] == 0
    assert run["certs_per_second"] > 0
    for step in (*STEPS, "total"):
        figures = run["total"] if step == "total" else run["steps"][step]
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"], step
    assert run["client_cpu_seconds"] > 0 and run["server_cpu_seconds"] > 0
    assert run["dns_cpu_seconds"] is not None
    assert run["server_cpu_ms_per_cert"] > 0 and run["client_busy"] > 0
    assert run["client_bound"] == (run["client_busy"] > 0.9)
    # what else ran on the two cores (a shared machine), when pinned
    for load in run["other_load"].values():
        assert load is None or {"core", "others", "irq", "steal"} <= set(load)
    assert isinstance(run["contended"], bool)
    # Revoca, in the same run, through the same client.
    revoca = results["targets"]["revoca"]
    assert revoca["accounts"]["made"] == 2 and revoca["accounts"]["errors"] == {}
    assert all(r["issued"] == 4 and r["errors"] == {} for r in revoca["runs"])
    assert revoca["runs"][revoca["median"]]["server_cpu_ms_per_cert"] > 0
    ratio = results["ratio"]
    assert ratio["rate_revoca_over_pebble"] > 0 and set(ratio["steps"]) == set(STEPS)
    printed = capsys.readouterr().out
    assert "certificates/s" in printed and "p99 ms" in printed and "CPU: server" in printed
    assert "Revoca / Pebble" in printed


def test_acme_bench_drives_a_server_by_its_directory_url(tmp_path):
    """The way Revoca's server will be measured: a running server named by
    its directory URL, its validator's port, the DNS this bench starts and
    the server's process for its CPU time (Pebble stands in for it here)."""
    need("pebble", "pebble")
    need("pebble-challtestsrv", "pebble")
    from benchmarks.acme_pebble import start_pebble
    from benchmarks.load_servers import free_port

    http_port, dns_port = free_port(), free_port()
    server = start_pebble(tmp_path / "pebble", http_port, None, None, dns_port=dns_port)
    out = tmp_path / "acme.json"
    try:
        argv = ["--directory", server.directory, "--ca-file", str(server.ca_file)]
        argv += ["--http-port", str(http_port), "--dns-port", str(dns_port)]
        argv += ["--server-pid", str(server.process.pid), "--clients", "2", "--certs", "2"]
        argv += ["--repeat", "1", "--warmup", "0", "--seconds", "20"]
        assert acme_bench.main([*argv, "--json", str(out)]) == 0
    finally:
        server.stop()
    results = json.loads(out.read_text())
    assert results["target"] == "target"
    run = results["run"]["runs"][results["run"]["median"]]
    assert (
        run["issued"] == 2 and run["server_cpu_seconds"] > 0 and run["dns_cpu_seconds"] is not None
    )


def test_directory_needs_the_validators_port():
    with pytest.raises(SystemExit):
        acme_bench.main(["--directory", "http://127.0.0.1:1/directory"])


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 0.25), ("3", 3.0), ("-1", 0.0), ("soon", 0.25)]
)
def test_retry_after(value, expected):
    headers = {} if value is None else {"Retry-After": value}
    assert retry_after(headers, 0.25) == expected


def test_responder_answers_known_tokens_only():
    async def check():
        responder = Responder()
        from benchmarks.load_servers import free_port

        port = free_port()
        await responder.start(port)
        responder.tokens["tok"] = "tok.thumb"
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a.test\r\n\r\n"
                b"GET /.well-known/acme-challenge/nope HTTP/1.1\r\nHost: a.test\r\n"
                b"Connection: close\r\n\r\n"
            )
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
        finally:
            await responder.stop()
        return answer

    answer = asyncio.run(check())
    first, _, second = answer.partition(b"tok.thumb")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 9\r\n" in first
    assert second.startswith(b"HTTP/1.1 404 Not Found\r\n")


def test_bad_nonce_is_retried_once_with_the_errors_nonce():
    """RFC 8555 6.5: a badNonce error carries a fresh nonce; the client
    retries with it, once (a second badNonce is an error)."""
    import base64

    from aiohttp import web

    from benchmarks.acme_client import AcmeClient, AcmeError
    from benchmarks.load_servers import free_port

    seen, mode = [], {"reject_all": False}

    def nonce_of(jws: dict) -> str:
        protected = jws["protected"] + "=" * (-len(jws["protected"]) % 4)
        return json.loads(base64.urlsafe_b64decode(protected))["nonce"]

    async def directory(request):
        base = f"http://127.0.0.1:{request.url.port}"
        return web.json_response({"newNonce": f"{base}/nonce", "newAccount": f"{base}/acct"})

    async def nonce(request):
        return web.Response(headers={"Replay-Nonce": "first"})

    async def account(request):
        seen.append(nonce_of(await request.json()))
        if mode["reject_all"] or seen[-1] != "retry-0":  # until the first error's nonce
            problem = {"type": "urn:ietf:params:acme:error:badNonce", "detail": "stale"}
            return web.json_response(
                problem, status=400, headers={"Replay-Nonce": f"retry-{len(seen) - 1}"}
            )
        return web.json_response({"status": "valid"}, status=201, headers={"Location": "/a/1"})

    async def check():
        app = web.Application()
        app.router.add_get("/dir", directory)
        app.router.add_head("/nonce", nonce)
        app.router.add_post("/acct", account)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with AcmeClient(f"http://127.0.0.1:{port}/dir", Responder()) as client:
                await client.register()
                assert client.kid == "/a/1" and client.bad_nonces == 1
                assert seen == ["first", "retry-0"]
                seen.clear()
                mode["reject_all"] = True
                client.kid, client.nonce = None, "stale"
                with pytest.raises(AcmeError) as error:
                    await client.register()
                assert error.value.kind.endswith("badNonce") and seen == ["stale", "retry-0"]
                assert client.bad_nonces == 2  # one retry each time, no more
        finally:
            await runner.cleanup()

    asyncio.run(check())
