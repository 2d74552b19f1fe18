"""What the key files' encryption costs: writing and loading one P-256 key
file in the current format (common/pkcs8.py: scrypt N=2^14, r=8, p=5) and
signing with a key once loaded.

Baselines, in the same run on the same key:
- the older format, cryptography's BestAvailableEncryption (PBKDF2-HMAC-SHA256,
  2048 iterations), which the current one replaces;
- signing with the key object itself: what SoftwareToken's cache makes of
  every signature after the first load.

Run: pytest benchmarks/bench_keyfiles.py --benchmark-enable
"""

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ca.keys import PassphraseSource, signature_algorithm_for
from ca.token import SoftwareToken
from common import pkcs8

PASSPHRASE = b"correct horse battery staple"
KEY = ec.generate_private_key(ec.SECP256R1())
CURRENT = pkcs8.encrypt_private_key(KEY, PASSPHRASE, cost=pkcs8.KEY_FILE_COST)
OLDER = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.BestAvailableEncryption(PASSPHRASE),
)


@pytest.mark.benchmark(group="keyfile-load")
def test_load_current_format(benchmark):
    key = benchmark(serialization.load_pem_private_key, CURRENT, PASSPHRASE)
    assert key.private_numbers() == KEY.private_numbers()


@pytest.mark.benchmark(group="keyfile-load")
def test_baseline_load_older_format(benchmark):
    key = benchmark(serialization.load_pem_private_key, OLDER, PASSPHRASE)
    assert key.private_numbers() == KEY.private_numbers()


@pytest.mark.benchmark(group="keyfile-write")
def test_write_current_format(benchmark):
    data = benchmark(pkcs8.encrypt_private_key, KEY, PASSPHRASE, cost=pkcs8.KEY_FILE_COST)
    assert pkcs8.key_encryption(data).is_current()


@pytest.mark.benchmark(group="keyfile-sign")
def test_token_signs_from_its_cache(benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("REVOCA_KEY_PASSPHRASE", PASSPHRASE.decode())
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / "k.key.pem").write_bytes(CURRENT)
    token = SoftwareToken(tmp_path / "keys", PassphraseSource())
    algorithm = signature_algorithm_for(KEY.public_key())
    token.sign("k", b"warm-up", algorithm)  # the one load
    signature = benchmark(token.sign, "k", b"tbsCertificate", algorithm)
    KEY.public_key().verify(signature, b"tbsCertificate", ec.ECDSA(hashes.SHA256()))


@pytest.mark.benchmark(group="keyfile-sign")
def test_baseline_sign_with_the_key_object(benchmark):
    signature = benchmark(KEY.sign, b"tbsCertificate", ec.ECDSA(hashes.SHA256()))
    KEY.public_key().verify(signature, b"tbsCertificate", ec.ECDSA(hashes.SHA256()))
