"""EST and SCEP listeners on 127.0.0.1 over a test PKI: a root, a TLS CA
under the BR (``issuing``) and a device CA outside it (``devices``), end
entities for devices, and the files curl, openssl and scepclient need."""

from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from common import listen
from enroll.server import EnrollServer, start, tls_context
from enroll.service import EnrollService
from enroll.settings import EnrollSettings
from ra.approvals import ApprovalPolicy
from ra.service import RAService
from tests.conftest import PASSPHRASE

DEVICE = {
    "name": "router-1",
    "email": "netops@example.com",
    "ca": "devices",
    "profile": "tls-client",
    "subject_template": "CN={name},O=Example Networks",
    "allowed_sans": ["dns:*.devices.example.com"],
}


@dataclass
class EnrollEnv:
    ra: RAService
    service: EnrollService
    server: EnrollServer
    est_port: int
    scep_port: int
    root_pem: Path  # the trust anchor of the EST listener's certificate
    directory: Path

    @property
    def est(self) -> str:
        return f"https://127.0.0.1:{self.est_port}/.well-known/est"

    @property
    def scep(self) -> str:
        return f"http://127.0.0.1:{self.scep_port}/scep"

    def secret(self, entity: str = "router-1", **kwargs) -> str:
        return self.ra.create_secret(entity, actor="test", **kwargs)["secret"]


def device_pki(service):
    """Root, the BR TLS CA ``issuing`` and the device CA ``devices``."""
    service.init_root("root", "CN=Test Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    service.create_sub("issuing", "root", "CN=Test Issuing CA,O=Revoca Tests,C=DE")
    service.create_sub(
        "devices", "root", "CN=Test Device CA,O=Revoca Tests,C=DE", profile="client-sub-ca"
    )
    return service


def start_enroll(
    loop, pki, directory: Path, *, policy=None, settings: EnrollSettings | None = None, entities=()
) -> tuple[EnrollEnv, list]:
    ra = RAService(pki, policy or ApprovalPolicy())
    for entity in entities or (DEVICE,):
        ra.create_entity(**entity)
    settings = replace(settings or EnrollSettings(), ca=(settings.ca if settings else "devices"))
    service = EnrollService(ra, settings, PASSPHRASE.encode())
    server = EnrollServer(service)
    est_sock = listen.bind_listener("127.0.0.1", 0, 64)
    scep_sock = listen.bind_listener("127.0.0.1", 0, 64)
    context = tls_context(service, settings.tls_cert, settings.tls_key, PASSPHRASE.encode())
    runners = [
        loop.run(start(server, est_sock, est=True, scep=True, ssl_context=context)),
        loop.run(start(server, scep_sock, est=False, scep=True)),
    ]
    root_pem = directory / "root.pem"
    root_pem.write_bytes(pki.get_ca("root").certificate.public_bytes(serialization.Encoding.PEM))
    env = EnrollEnv(
        ra,
        service,
        server,
        est_sock.getsockname()[1],
        scep_sock.getsockname()[1],
        root_pem,
        directory,
    )
    return env, runners


def stop_enroll(loop, runners) -> None:
    for runner in runners:
        loop.run(runner.cleanup())
