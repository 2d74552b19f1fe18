"""Encrypted key files: scrypt at the current cost (common/pkcs8.py), read
by openssl, the older format still read and rewritten by `ca rekey-files`."""

import json
import stat
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update

from ca.errors import KeyAccessError
from ca.keys import PassphraseSource, signature_algorithm_for
from ca.rekey import rekey
from ca.token import SoftwareToken, load_private_key
from common import pkcs8
from store.tables.ca import certificates
from tests.conftest import PASSPHRASE, key_file_kdf, make_csr, need, run

SCRYPT = "1.3.6.1.4.1.11591.4.11"  # RFC 7914 7
AES256_CBC = "2.16.840.1.101.3.4.1.42"

real_cost = pytest.mark.key_file_cost


def old_format(private_key, passphrase: bytes = PASSPHRASE.encode()) -> bytes:
    """What the key files were before: PBES2, PBKDF2 with 2048 iterations."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def assert_current(data: bytes) -> None:
    found = key_file_kdf(data)
    salt, n, r, p = found["params"]
    assert found["kdf"] == SCRYPT and (n, r, p) == (2**14, 8, 5) and len(salt) >= 16
    assert found["cipher"] == AES256_CBC and len(found["iv"]) == 16


def openssl_public_key(path, tmp_path) -> bytes:
    need("openssl")
    passfile = tmp_path / "openssl-pass"
    passfile.write_text(PASSPHRASE)
    passfile.chmod(0o600)
    result = subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-passin", f"file:{passfile}", "-pubout"],
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@real_cost
def test_every_writer_uses_scrypt_at_the_current_cost(pki, tmp_path):
    """The token's files, the keys the store keeps, and the VA's own files."""
    from va.openssl_index import import_index
    from va.policy import IssuerPolicy
    from va.store import VAStore

    assert_current((tmp_path / "keys" / "ca-issuing.key.pem").read_bytes())
    record = pki.issue_with_new_key("issuing", "tls-client", "CN=kdf", [])
    assert_current(pki.private_key_pem("issuing", record.serial))
    # The VA re-encrypts an imported responder key under its own passphrase.
    responder_key = tmp_path / "responder.key"
    responder_key.write_bytes(pki.private_key_pem("issuing", record.serial))
    store = VAStore(tmp_path / "lmdb", map_size=1 << 24, max_map_size=1 << 26)
    try:
        import_index(
            store,
            tmp_path / "va-keys",
            name="kdf",
            issuer=pki.get_ca("issuing").certificate,
            responder=record.certificate,
            responder_key=responder_key,
            key_passphrase=PASSPHRASE.encode(),
            va_passphrase=b"the VA's passphrase",
            index_text="",
            policy=IssuerPolicy(),
        )
    finally:
        store.close()
    assert_current((tmp_path / "va-keys" / "index-kdf.key.pem").read_bytes())


@real_cost
def test_openssl_reads_the_key_files(pki, tmp_path):
    need("openssl")
    key_file = tmp_path / "keys" / "ca-issuing.key.pem"
    expected = pki.get_ca("issuing").certificate.public_key()
    assert openssl_public_key(key_file, tmp_path) == expected.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = pki.issue_with_new_key("issuing", "tls-client", "CN=openssl", [])
    stored = tmp_path / "stored.pem"
    stored.write_bytes(pki.private_key_pem("issuing", record.serial))
    assert openssl_public_key(stored, tmp_path) == record.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_der_and_wrong_arguments():
    key = ec.generate_private_key(ec.SECP256R1())
    der = pkcs8.encrypt_private_key(key, b"passphrase", encoding=serialization.Encoding.DER)
    assert serialization.load_der_private_key(der, b"passphrase").public_key() == key.public_key()
    with pytest.raises(TypeError, match="passphrase must be non-empty bytes"):
        pkcs8.encrypt_private_key(key, "passphrase")
    with pytest.raises(ValueError, match="encoding must be PEM or DER"):
        pkcs8.encrypt_private_key(key, b"passphrase", encoding=serialization.Encoding.Raw)


def test_key_encryption_tells_the_formats_apart():
    key = ec.generate_private_key(ec.SECP256R1())
    old = pkcs8.key_encryption(old_format(key))
    assert (old.kdf, old.iterations, old.prf, old.is_current()) == ("pbkdf2", 2048, "sha256", False)
    new = pkcs8.key_encryption(pkcs8.encrypt_private_key(key, b"passphrase"))
    assert new.is_current() and new.describe().startswith("PBES2 scrypt N=2^4 r=8 p=1")
    weaker = pkcs8.encrypt_private_key(key, b"passphrase", cost=pkcs8.ScryptCost(2**3, 8, 1))
    assert not pkcs8.key_encryption(weaker).is_current()
    plain = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert pkcs8.key_encryption(plain).describe() == "unencrypted"
    with pytest.raises(ValueError, match="not a PKCS#8 private key"):
        pkcs8.key_encryption(b"\x30\x03\x02\x01\x01")


def test_an_old_format_key_file_still_loads_and_signs(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / "old.key.pem").write_bytes(old_format(key))
    token = SoftwareToken(tmp_path / "keys", PassphraseSource())
    algorithm = signature_algorithm_for(key.public_key())
    key.public_key().verify(
        token.sign("old", b"data", algorithm), b"data", ec.ECDSA(algorithm.hash())
    )


@real_cost
def test_a_key_is_decrypted_once_and_then_signs_from_memory(tmp_path, monkeypatch):
    """Loading costs one scrypt (measured here); signing does not repeat it."""
    import ca.token

    SoftwareToken(tmp_path / "keys", PassphraseSource()).generate_key("k", "ec-p256")
    token = SoftwareToken(tmp_path / "keys", PassphraseSource())  # a restart: nothing cached
    loads = []
    real_load = ca.token.load_private_key
    monkeypatch.setattr(
        ca.token, "load_private_key", lambda *a, **kw: loads.append(1) or real_load(*a, **kw)
    )
    algorithm = signature_algorithm_for(token.public_key("k"))
    started = time.perf_counter()
    for _ in range(200):
        token.sign("k", b"data", algorithm)
    two_hundred = time.perf_counter() - started
    assert loads == [1]
    # 200 signatures from memory take milliseconds; 200 loads would take a minute.
    assert two_hundred < 5.0


@real_cost
def test_rekey_rewrites_old_files_and_stored_keys_once(pki, tmp_path):
    """Old-format files and a stored key are rewritten (mode 0600, atomically),
    the keys still work, and a second run changes nothing."""
    record = pki.issue_with_new_key("issuing", "tls-client", "CN=stored", [])
    keys = tmp_path / "keys"
    for path in keys.glob("*.key.pem"):
        path.write_bytes(old_format(load_private_key(path.read_bytes(), PASSPHRASE.encode())))
    stored_key = load_private_key(
        pki.private_key_pem("issuing", record.serial), PASSPHRASE.encode()
    )
    with pki.store.transaction() as conn:
        conn.execute(
            update(certificates)
            .where(certificates.c.der == record.der)
            .values(private_key=old_format(stored_key))
        )
    progress = []
    items = rekey(
        pki.store,
        pki.audit,
        [keys, tmp_path / "no-such-dir"],
        PASSPHRASE.encode(),
        actor="test",
        progress=lambda done, total, where: progress.append((done, total)),
    )
    assert [i.action for i in items] == ["rewritten"] * 3
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert all("PBKDF2-HMAC-SHA256 2048 iterations" in i.was for i in items)
    for path in keys.glob("*.key.pem"):
        assert_current(path.read_bytes())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(keys.glob(".*tmp"))
    assert_current(pki.private_key_pem("issuing", record.serial))
    # The CA key signs, the stored key exports.
    pki.issue("issuing", make_csr(), "tls-server")
    assert pki.export("issuing", record.serial, "p12", export_passphrase=b"export-pass")
    before = {p: p.read_bytes() for p in keys.glob("*.key.pem")}
    again = rekey(pki.store, pki.audit, [keys], PASSPHRASE.encode(), actor="test")
    assert [i.action for i in again] == ["current"] * 3
    assert {p: p.read_bytes() for p in keys.glob("*.key.pem")} == before


def test_rekey_with_a_wrong_passphrase_changes_nothing(pki, tmp_path):
    keys = tmp_path / "keys"
    for path in keys.glob("*.key.pem"):
        path.write_bytes(old_format(load_private_key(path.read_bytes(), PASSPHRASE.encode())))
    before = {p: p.read_bytes() for p in keys.glob("*.key.pem")}
    with pytest.raises(KeyAccessError, match="wrong passphrase for key file"):
        rekey(pki.store, pki.audit, [keys], b"not the passphrase", actor="test")
    assert {p: p.read_bytes() for p in keys.glob("*.key.pem")} == before


@real_cost
def test_renewing_with_the_same_key_stores_it_in_the_current_format(pki):
    from ca.requests import CertificateRequest, parse_subject

    record = pki.issue_with_new_key("issuing", "tls-client", "CN=renew", [])
    stored_key = load_private_key(
        pki.private_key_pem("issuing", record.serial), PASSPHRASE.encode()
    )
    old = old_format(stored_key)
    renewed = pki.issue_request(
        "issuing",
        "tls-client",
        CertificateRequest(parse_subject("CN=renew"), stored_key.public_key(), ()),
        keep_private_key=old,
    )
    new = pki.private_key_pem("issuing", renewed.serial)
    assert_current(new)
    assert load_private_key(new, PASSPHRASE.encode()).public_key() == stored_key.public_key()


@real_cost
def test_cli_rekey_files(cli_pki):
    """`revoca ca rekey-files`: progress, a JSON summary, idempotent, exit 6
    with a wrong passphrase."""
    tmp = cli_pki
    keys = tmp / "data" / "keys"
    for path in keys.glob("*.key.pem"):
        path.write_bytes(old_format(load_private_key(path.read_bytes(), PASSPHRASE.encode())))
    before = {p: p.read_bytes() for p in keys.glob("*.key.pem")}
    wrong = run(tmp, "ca", "rekey-files", env={"REVOCA_KEY_PASSPHRASE": "not the passphrase"})
    assert wrong.returncode == 6, wrong.stderr
    assert b"wrong passphrase for key file" in wrong.stderr
    assert {p: p.read_bytes() for p in keys.glob("*.key.pem")} == before
    result = run(tmp, "ca", "rekey-files", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rewritten"], summary["current"]) == (2, 0)
    assert {item["where"].rsplit("/", 1)[1] for item in summary["keys"]} == {
        "ca-root.key.pem",
        "ca-issuing.key.pem",
    }
    assert b"[1/2]" in result.stderr and b"[2/2]" in result.stderr
    for path in keys.glob("*.key.pem"):
        assert_current(path.read_bytes())
    again = run(tmp, "ca", "rekey-files")
    assert again.returncode == 0 and again.stdout.count(b"current ") == 2
    header, *rows = again.stdout.decode().splitlines()
    assert header.split() == ["ACTION", "WAS", "ENCRYPTED", "AS", "FILE"]
    at = header.index("FILE")
    assert sorted(row[at:].rsplit("/", 1)[1] for row in rows) == [
        "ca-issuing.key.pem",
        "ca-root.key.pem",
    ]
    assert b"0 rewritten, 2 already current" in again.stderr
    assert run(tmp, "audit", "verify").returncode == 0


def test_cli_rekey_files_refuses_a_damaged_file(cli_pki):
    keys = cli_pki / "data" / "keys"
    (keys / "broken.key.pem").write_bytes(b"not a key")
    before = {p: p.read_bytes() for p in keys.glob("*.key.pem")}
    result = run(cli_pki, "ca", "rekey-files")
    assert result.returncode == 5, result.stderr
    assert b"broken.key.pem is not a PEM or DER private key" in result.stderr
    assert {p: p.read_bytes() for p in keys.glob("*.key.pem")} == before


def test_rekey_leaves_a_key_changed_meanwhile(pki, tmp_path, monkeypatch):
    """A file replaced between its decryption and the write is left alone."""
    import ca.rekey

    keys = tmp_path / "keys"
    path = keys / "ca-root.key.pem"
    path.write_bytes(old_format(load_private_key(path.read_bytes(), PASSPHRASE.encode())))
    replaced = old_format(ec.generate_private_key(ec.SECP256R1()))
    real = ca.rekey.reencrypt

    def and_replace(data, *args, **kwargs):
        result = real(data, *args, **kwargs)
        if path.read_bytes() == data:
            path.write_bytes(replaced)
        return result

    monkeypatch.setattr(ca.rekey, "reencrypt", and_replace)
    items = rekey(pki.store, pki.audit, [keys], PASSPHRASE.encode(), actor="test")
    assert {i.where.rsplit("/", 1)[1]: i.action for i in items}["ca-root.key.pem"] == "changed"
    assert path.read_bytes() == replaced
