"""Keys at rest: encrypted PKCS#8, mode 0600 in a 0700 directory, clear errors."""

import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ca.errors import BadInputError, KeyAccessError, NotFoundError
from ca.keys import KEY_SPECS, PassphraseSource, signature_algorithm_for
from ca.token import SoftwareToken, load_private_key


@pytest.mark.parametrize("spec", KEY_SPECS)
def test_generate_sign_and_reload(tmp_path, spec):
    token = SoftwareToken(tmp_path / "keys", PassphraseSource())
    public = token.generate_key("k1", spec)
    algorithm = signature_algorithm_for(public)
    signature = token.sign("k1", b"data", algorithm)
    # A second token (a restart) must decrypt the file and sign the same way.
    again = SoftwareToken(tmp_path / "keys", PassphraseSource())
    signature2 = again.sign("k1", b"data", algorithm)
    for sig in (signature, signature2):
        if algorithm.family == "ed25519":
            public.verify(sig, b"data")
        elif algorithm.family == "ec":
            public.verify(sig, b"data", ec.ECDSA(algorithm.hash()))
        else:
            from cryptography.hazmat.primitives.asymmetric import padding

            public.verify(sig, b"data", padding.PKCS1v15(), algorithm.hash())


def test_files_are_encrypted_and_private(tmp_path):
    token = SoftwareToken(tmp_path / "keys", PassphraseSource())
    token.generate_key("ca-x", "ec-p256")
    path = tmp_path / "keys" / "ca-x.key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    text = path.read_bytes()
    assert text.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert not list(tmp_path.joinpath("keys").glob(".*tmp"))


def test_wrong_passphrase_is_a_clear_error(tmp_path, monkeypatch):
    SoftwareToken(tmp_path / "keys", PassphraseSource()).generate_key("ca-x", "ec-p256")
    monkeypatch.setenv("REVOCA_KEY_PASSPHRASE", "not the right one")
    token = SoftwareToken(tmp_path / "keys", PassphraseSource())
    with pytest.raises(KeyAccessError, match="wrong passphrase for key 'ca-x'"):
        token.public_key("ca-x")


def test_missing_and_short_passphrase(tmp_path, monkeypatch):
    monkeypatch.delenv("REVOCA_KEY_PASSPHRASE")
    with pytest.raises(KeyAccessError, match="set the environment variable REVOCA_KEY_PASSPHRASE"):
        PassphraseSource().get()
    monkeypatch.setenv("REVOCA_KEY_PASSPHRASE", "short")
    with pytest.raises(KeyAccessError, match="shorter than 8 characters"):
        PassphraseSource().get()
    with pytest.raises(KeyAccessError, match="cannot read the passphrase file"):
        PassphraseSource(file=tmp_path / "missing").get()


def test_passphrase_file_wins_and_loses_its_newline(tmp_path):
    path = tmp_path / "pass"
    path.write_text("from-the-file\n")
    path.chmod(0o600)
    assert PassphraseSource(file=path).get() == b"from-the-file"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_passphrase_file_others_may_read_is_refused(tmp_path, mode):
    path = tmp_path / "pass"
    path.write_text("from-the-file\n")
    path.chmod(mode)
    with pytest.raises(KeyAccessError) as caught:
        PassphraseSource(file=path).get()
    assert caught.value.message == (
        f"the passphrase file {path} must be mode 0600 (it is {mode:o})"
    )


def test_missing_key_and_bad_key_ids(tmp_path):
    token = SoftwareToken(tmp_path / "keys", PassphraseSource())
    with pytest.raises(NotFoundError, match="key 'nope' not found"):
        token.public_key("nope")
    for bad in ("../etc/passwd", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(BadInputError, match="invalid key id"):
            token.generate_key(bad, "ec-p256")


def test_existing_key_is_never_overwritten(tmp_path):
    from ca.errors import ConflictError

    token = SoftwareToken(tmp_path / "keys", PassphraseSource())
    token.generate_key("k", "ec-p256")
    before = (tmp_path / "keys" / "k.key.pem").read_bytes()
    with pytest.raises(ConflictError, match="refusing to overwrite"):
        token.generate_key("k", "ec-p256")
    assert (tmp_path / "keys" / "k.key.pem").read_bytes() == before


def test_load_private_key_errors():
    with pytest.raises(BadInputError, match="not a valid PEM or DER private key"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None)
    with pytest.raises(BadInputError, match="not a valid PEM or DER private key"):
        load_private_key(b"\x30\x03\x02\x01\x00", None)
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-pass"),
    )
    with pytest.raises(KeyAccessError, match="is encrypted and no passphrase was given"):
        load_private_key(encrypted, None)
    with pytest.raises(KeyAccessError, match="wrong passphrase"):
        load_private_key(encrypted, b"other-pass")
    assert load_private_key(encrypted, b"secret-pass").public_key() == key.public_key()


def test_wrong_passphrase_with_valid_padding_is_still_a_wrong_passphrase():
    """About one wrong passphrase in 256 decrypts to valid padding; the error
    must not turn into "not a valid key"."""
    from pathlib import Path

    from va.signing import ResponderKeyError, load_key

    vector = (
        Path(__file__).with_name("vectors") / "key-encrypted-wrong-passphrase-valid-padding.pem"
    )
    pem = vector.read_bytes()
    with pytest.raises(KeyAccessError, match="wrong passphrase"):
        load_private_key(pem, b"wrong-159")
    with pytest.raises(ResponderKeyError, match="wrong passphrase"):
        load_key(pem, b"wrong-159", "responder key")
    assert load_private_key(pem, b"the-right-one") is not None
