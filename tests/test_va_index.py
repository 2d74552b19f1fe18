"""Moving an `openssl ocsp -index` responder over: index.txt import."""

import subprocess
import sys

import pytest

from tests.conftest import PASSPHRASE, free_port, key_file_kdf
from va.openssl_index import IndexError_, parse_index
from va.store import GOOD, HOLD, REVOKED

INDEX = (
    "V\t301231235959Z\t\t1001\tunknown\t/CN=good.example\n"
    "R\t301231235959Z\t240102030405Z,keyCompromise\t1002\tunknown\t/CN=bad.example\n"
    "R\t301231235959Z\t240102030405Z,certificateHold\t1003\tunknown\t/CN=held.example\n"
    "R\t301231235959Z\t240102030405Z\t1004\tunknown\t/CN=noreason.example\n"
    "E\t200101000000Z\t\t1005\tunknown\t/CN=old.example\n"
)


def test_parse_index():
    entries = list(parse_index(INDEX))
    assert [e.serial for e in entries] == [0x1001, 0x1002, 0x1003, 0x1004, 0x1005]
    assert [e.record.status for e in entries] == [GOOD, REVOKED, HOLD, REVOKED, GOOD]
    assert entries[1].record.reason == 1 and entries[3].record.reason == -1
    assert entries[1].record.revoked_at == 1704164645  # 2024-01-02T03:04:05Z


def test_index_times():
    """UTCTime years 50-99 are 19xx (RFC 5280 4.1.2.5.1); GeneralizedTime from
    2050 as OpenSSL writes it; leap days checked."""
    from va.openssl_index import _time

    assert _time("500101000000Z", 1) == -631152000  # 1950-01-01
    assert _time("491231235959Z", 1) == 2524607999  # 2049-12-31T23:59:59
    assert _time("20500101000000Z", 1) == 2524608000
    assert _time("240229120000Z", 1) == 1709208000
    with pytest.raises(IndexError_, match="line 7: '230229120000Z'"):
        _time("230229120000Z", 7)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("V\t301231235959Z\t\t1001\tunknown", "expected 6 tab-separated fields, found 5"),
        ("X\t301231235959Z\t\t1001\tunknown\t/CN=x", "unknown status 'X'"),
        ("V\tyesterday\t\t1001\tunknown\t/CN=x", "'yesterday' is not a UTCTime"),
        ("V\t301331235959Z\t\t1001\tunknown\t/CN=x", "'301331235959Z' is not a UTCTime"),
        ("V\t010229000000Z\t\t1001\tunknown\t/CN=x", "'010229000000Z' is not a UTCTime"),
        ("V\t3012312359Z\t\t1001\tunknown\t/CN=x", "'3012312359Z' is not a UTCTime"),
        ("V\t301231235959\t\t1001\tunknown\t/CN=x", "'301231235959' is not a UTCTime"),
        ("V\t301231235959Z\t\tzz\tunknown\t/CN=x", "serial 'zz' is not hexadecimal"),
        ("R\t301231235959Z\t240102030405Z,bored\t10\tunknown\t/CN=x", "unknown reason 'bored'"),
        ("V\t301231235959Z\t240102030405Z\t10\tunknown\t/CN=x", "status V with a revocation"),
    ],
)
def test_bad_index_lines(line, message):
    with pytest.raises(IndexError_, match=f"line 2: {message}"):
        list(parse_index(INDEX.splitlines()[0] + "\n" + line + "\n"))


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_import_index_and_answer_openssl(tmp_path):
    """An openssl-made CA and responder, its index.txt, then the real client."""
    import os

    d = tmp_path
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=Legacy CA",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "ocsp.key",
        "-passout",
        "pass:legacy-secret",
        "-out",
        "ocsp.csr",
        "-subj",
        "/CN=Legacy OCSP",
        cwd=d,
    )
    (d / "ext.cnf").write_text("extendedKeyUsage=OCSPSigning\nnoCheck=ignored\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "ocsp.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "99",
        "-days",
        "10",
        "-extfile",
        "ext.cnf",
        "-out",
        "ocsp.pem",
        cwd=d,
    )
    (d / "index.txt").write_text(INDEX)
    (d / "pass.txt").write_text("legacy-secret\n")
    (d / "pass.txt").chmod(0o600)
    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE}
    base = [sys.executable, "-m", "revoca", "--data-dir", str(d / "data")]
    result = subprocess.run(
        [
            *base,
            "va",
            "import-index",
            "--name",
            "legacy",
            "--issuer",
            "ca.pem",
            "--index",
            "index.txt",
            "--responder-cert",
            "ocsp.pem",
            "--responder-key",
            "ocsp.key",
            "--key-passphrase-file",
            "pass.txt",
        ],
        cwd=d,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "legacy: 5 certificate statuses" in result.stdout
    stored_key = d / "data" / "va" / "keys" / "index-legacy.key.pem"
    assert stored_key.stat().st_mode & 0o777 == 0o600
    assert stored_key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # The `revoca` process encrypts at the real cost: scrypt (RFC 7914), N=2^14, r=8, p=5.
    kdf = key_file_kdf(stored_key.read_bytes())
    assert kdf["kdf"] == "1.3.6.1.4.1.11591.4.11" and kdf["params"][1:] == [2**14, 8, 5]

    port = free_port()
    server = subprocess.Popen(
        [*base, "va", "serve", "--port", str(port), "--admin-port", "0"],
        cwd=d,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        import time

        answers = {}
        deadline = time.monotonic() + 15
        for serial in ("0x1001", "0x1002", "0x1003", "0x1005", "0x7777"):
            while True:
                out = subprocess.run(
                    [
                        "openssl",
                        "ocsp",
                        "-issuer",
                        "ca.pem",
                        "-serial",
                        serial,
                        "-url",
                        f"http://127.0.0.1:{port}/ocsp",
                        "-CAfile",
                        "ca.pem",
                        "-VAfile",
                        "ocsp.pem",
                    ],
                    cwd=d,
                    capture_output=True,
                    text=True,
                    timeout=10,
                )
                if out.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert "Response verify OK" in out.stderr, out.stderr
            answers[serial] = out.stdout.split(f"{serial}: ")[1].split()[0]
        assert answers == {
            "0x1001": "good",
            "0x1002": "revoked",
            "0x1003": "revoked",
            "0x1005": "good",
            "0x7777": "revoked",
        }
    finally:
        server.terminate()
        server.wait(10)
