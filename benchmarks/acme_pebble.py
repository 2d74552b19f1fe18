"""Pebble (Let's Encrypt's ACME test server) as the issuance benchmark's
baseline, with pebble-challtestsrv as the DNS that sends every name to
127.0.0.1, where the benchmark's own http-01 responder listens.

Pebble runs at full speed and validates every order: no sleep before a
validation (PEBBLE_VA_NOSLEEP=1), no authorization reuse
(PEBBLE_AUTHZREUSE=0), no nonce rejected on purpose
(PEBBLE_WFE_NONCEREJECT=0; Pebble's default rejects 5% to test clients).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from benchmarks.load_servers import free_port, pinned, stop, wait_port

PEBBLE_ENV = {
    "PEBBLE_VA_NOSLEEP": "1",
    "PEBBLE_AUTHZREUSE": "0",
    "PEBBLE_WFE_NONCEREJECT": "0",
    "PEBBLE_VA_ALWAYS_VALID": "0",
}


@dataclass
class Pebble:
    directory: str
    ca_file: Path
    process: subprocess.Popen
    dns: subprocess.Popen | None
    dns_port: int
    management_port: int

    def stop(self) -> None:
        stop(self.process)
        stop(self.dns)


def write_tls_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 and localhost: Pebble's
    HTTPS certificate, and the CA file the clients verify it with."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "pebble-tls.pem", directory / "pebble-tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def start_dns(
    workdir: Path, core: str | None, port: int | None = None
) -> tuple[subprocess.Popen, int, int]:
    """pebble-challtestsrv's DNS only (on ``port``, or a free one): A answers
    127.0.0.1 for every name, no AAAA, and its own challenge listeners off
    (the benchmark answers http-01)."""
    dns_port, management_port = port or free_port(), free_port()
    argv = [shutil.which("pebble-challtestsrv") or "pebble-challtestsrv"]
    argv += ["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]
    argv += ["-dns01", f"127.0.0.1:{dns_port}", "-management", f"127.0.0.1:{management_port}"]
    argv += ["-http01", "", "-https01", "", "-tlsalpn01", ""]
    process = subprocess.Popen(
        pinned(core, argv),
        stdout=open(workdir / "challtestsrv.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    wait_port(management_port, process, timeout=20)
    return process, dns_port, management_port


def start_pebble(
    workdir: Path,
    http_port: int,
    core: str | None,
    dns_core: str | None,
    dns_port: int | None = None,
) -> Pebble:
    """Pebble on free 127.0.0.1 ports, validating http-01 on ``http_port``,
    with its DNS started here (or, given ``dns_port``, one started by the
    caller there: Pebble asks it only when it validates)."""
    workdir.mkdir(parents=True, exist_ok=True)
    dns = None
    if dns_port is None:
        dns, dns_port, _ = start_dns(workdir, dns_core)
    cert, key = write_tls_cert(workdir)
    port, management = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": free_port(),  # tls-alpn-01 is not used: a port nothing listens on
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    config_path = workdir / "pebble-config.json"
    config_path.write_text(json.dumps(config, indent=2))
    argv = [shutil.which("pebble") or "pebble", "-config", str(config_path)]
    argv += ["-dnsserver", f"127.0.0.1:{dns_port}"]
    try:
        process = subprocess.Popen(
            pinned(core, argv),
            env={**os.environ, **PEBBLE_ENV},
            stdout=open(workdir / "pebble.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        wait_port(port, process, timeout=30)
    except BaseException:
        stop(dns)
        raise
    return Pebble(f"https://127.0.0.1:{port}/dir", cert, process, dns, dns_port, management)


def pebble_version() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "pebble"], capture_output=True, text=True
    )
    return f"pebble {out.stdout.strip()} (Debian)" if out.returncode == 0 else "pebble (unknown)"
