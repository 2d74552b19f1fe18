"""A CA, a VA loaded from it, and a VA server on 127.0.0.1 in a thread."""

import asyncio
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop

from ca.reasons import RevocationReason
from revoca.va_import import import_from_ca
from tests.conftest import PASSPHRASE, make_csr, pem
from va.app import build, open_store
from va.policy import IssuerPolicy
from va.presign import presign_all
from va.settings import HTTPSettings, VASettings

POLICIES = {"nonce_policy": "echo", "unissued": "revoked", "response_validity_hours": 96}


@dataclass
class VAEnv:
    url: str
    files: Path
    serving: object  # va.app.Serving
    good: int
    revoked: int
    held: int
    service: object
    settings: VASettings

    def ocsp(self, *args: str, cert: str | None = "good.pem") -> subprocess.CompletedProcess:
        """`openssl ocsp` against this VA, verifying with the chain."""
        cmd = ["openssl", "ocsp", *args, "-issuer", str(self.files / "issuing.pem")]
        if cert:
            cmd += ["-cert", str(self.files / cert)]
        return subprocess.run(
            [*cmd, "-url", self.url, "-CAfile", str(self.files / "chain.pem")],
            capture_output=True,
            text=True,
            timeout=30,
        )


class ServerThread:
    def __init__(self, serving):
        self.serving = serving
        self.loop = uvloop.new_event_loop()  # as `revoca va serve` runs
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def start():
            self.listener = await self.loop.create_server(
                self.serving.front.connection, "127.0.0.1", 0
            )
            self.port = self.listener.sockets[0].getsockname()[1]
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def start(self) -> int:
        self.thread.start()
        assert self.ready.wait(10)
        return self.port

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def make_va(
    tmp_path,
    service,
    *,
    policies=None,
    sign_with_ca_key=False,
    presign=True,
    http=None,
    signer=True,
) -> tuple[VAEnv, ServerThread]:
    service.init_root("root", "CN=VA Test Root,O=Revoca Tests,C=DE")
    # Good, revoked and held under one issuer: a CA outside the Baseline
    # Requirements, which forbid holds (BR 4.9.13).
    service.create_sub(
        "issuing", "root", "CN=VA Test Issuing CA,O=Revoca Tests,C=DE", profile="client-sub-ca"
    )
    if signer:
        service.issue_ocsp_signer("issuing")
    good = service.issue(
        "issuing", make_csr("good.example.com", ["dns:good.example.com"]), "tls-client"
    )
    revoked = service.issue(
        "issuing", make_csr("bad.example.com", ["dns:bad.example.com"]), "tls-client"
    )
    held = service.issue("issuing", make_csr("held", ["email:held@example.com"]), "tls-client")
    service.revoke("issuing", revoked.serial, RevocationReason.keyCompromise)
    service.revoke("issuing", held.serial, RevocationReason.certificateHold)
    files = tmp_path / "files"
    files.mkdir()
    chain = service.chain("issuing")
    (files / "issuing.pem").write_bytes(pem(chain[0]))
    (files / "root.pem").write_bytes(pem(chain[1]))
    (files / "chain.pem").write_bytes(pem(chain[0]) + pem(chain[1]))
    (files / "good.pem").write_bytes(pem(good.certificate))
    (files / "revoked.pem").write_bytes(pem(revoked.certificate))
    (files / "held.pem").write_bytes(pem(held.certificate))
    settings = VASettings(directory=tmp_path / "va", http=http or HTTPSettings())
    store = open_store(settings)
    import_from_ca(
        service,
        store,
        settings.key_dir,
        policy=IssuerPolicy.of_record({**POLICIES, **(policies or {})}, "test"),
        ca_names=["issuing"],
        sign_with_ca_key=sign_with_ca_key,
    )
    store.close()
    serving = build(settings, PASSPHRASE.encode())
    if presign:
        presign_all(serving.store, serving.entries, (1, 2), now=int(time.time()))
    thread = ServerThread(serving)
    port = thread.start()
    env = VAEnv(
        f"http://127.0.0.1:{port}/ocsp",
        files,
        serving,
        good.serial,
        revoked.serial,
        held.serial,
        service,
        settings,
    )
    return env, thread
