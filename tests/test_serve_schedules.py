"""`revoca serve` runs every schedule: a revocation reaches the CRLs its VA
serves within the [crl] revocation delay, full CRL and delta alike, and a
root's ARL is served from the start."""

import signal
import subprocess
import time
import urllib.error
import urllib.request

from cryptography import x509

from tests.conftest import REVOCA_CMD, demo_pki, free_port


def _crl(port: int, name: str) -> x509.CertificateRevocationList | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/crl/{name}.crl", timeout=5) as r:
            return x509.load_der_x509_crl(r.read())
    except (urllib.error.URLError, OSError):
        return None


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _wait(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:  # an empty CRL is falsy
            return value
        time.sleep(0.5)
    return None


def test_a_revocation_reaches_the_served_crls_within_the_delay(tmp_path):
    d, env = demo_pki(tmp_path)
    va_port, ra_port = free_port(), free_port()
    config = tmp_path / "node.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{d}"\n'
        f"[va]\nport = {va_port}\nadmin_port = 0\n[ra]\nport = {ra_port}\n"
        "[acme]\nport = 0\n[enroll]\nest_port = 0\nscep_port = 0\n"
        "[crl]\nrevocation_delay_minutes = 0\n"
    )
    node = subprocess.Popen(
        [*REVOCA_CMD, "--config", str(config), "serve", "--seconds", "90"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = _wait(lambda: _crl(va_port, "demo-issuing"), 30)
        assert before is not None, "the VA serves no CRL for the issuing CA"
        assert _wait(lambda: _crl(va_port, "demo-root"), 15) is not None  # the root's ARL
        www = x509.load_pem_x509_certificate((d / "www.pem").read_bytes())
        assert before.get_revoked_certificate_by_serial_number(www.serial_number) is None
        revoked = subprocess.run(
            [
                *REVOCA_CMD,
                "--config",
                str(config),
                "ca",
                "revoke",
                "--ca",
                "demo-issuing",
                "--serial",
                f"{www.serial_number:x}",
                "--reason",
                "superseded",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoked.returncode == 0, revoked.stderr
        started = time.monotonic()

        def listed():
            crl = _crl(va_port, "demo-issuing")
            if crl is not None and crl.get_revoked_certificate_by_serial_number(www.serial_number):
                return crl
            return None

        after = _wait(listed, 30)  # a pass every 5 s with no delay, then the publisher
        assert after is not None, "the revocation never reached the served full CRL"
        assert _number(after) > _number(before)
        assert time.monotonic() - started < 30
        # Its delta is based on it.
        delta = _wait(
            lambda: (
                (c := _crl(va_port, "demo-issuing-delta"))
                and c.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
                == _number(after)
                and c
            ),
            15,
        )
        assert delta is not None, "the served delta is not based on the new full CRL"
        assert node.poll() is None
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(30)
    assert "Traceback" not in node.stderr.read()
