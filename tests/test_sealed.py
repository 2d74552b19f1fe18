"""Secrets sealed with a passphrase (common/sealed.py): what opens, and
the exact refusal of everything else."""

import json

import pytest

from common.sealed import SealedError, seal, unseal


@pytest.fixture(scope="module")
def sealed() -> bytes:
    return seal(b"k" * 32, b"a passphrase", "audit-hmac-sha256")


def test_opens_with_its_passphrase_and_label(sealed):
    assert unseal(sealed, b"a passphrase", "audit-hmac-sha256") == b"k" * 32
    assert b"k" * 32 not in sealed
    assert seal(b"k" * 32, b"a passphrase", "audit-hmac-sha256") != sealed  # salt, nonce


def _edited(sealed: bytes, **changes) -> bytes:
    data = json.loads(sealed)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section] = {**data[section], field: value}
        else:
            data[section] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({}, "does not open with this passphrase"),
        ({"label": "other"}, "holds a 'other', not a 'audit-hmac-sha256'"),
        ({"format": "v0"}, "has an unknown format"),
        ({"kdf__n": 2**30}, "scrypt parameters outside the accepted range (N=1073741824)"),
        ({"kdf__n": 3000}, "scrypt parameters outside the accepted range"),
        ({"cipher__name": "aes-128-cbc"}, "uses an unknown cipher"),
    ],
)
def test_refusals(sealed, edit, message):
    data = _edited(sealed, **edit) if edit else sealed
    passphrase = b"a passphrase" if edit else b"another passphrase"
    with pytest.raises(SealedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        unseal(data, passphrase, "audit-hmac-sha256")


def test_an_edited_header_fails_the_tag(sealed):
    """The header is associated data: lowering the scrypt cost (a valid
    value) is caught by AES-GCM, not trusted."""
    with pytest.raises(SealedError, match="does not open"):
        unseal(_edited(sealed, kdf__n=2**14), b"a passphrase", "audit-hmac-sha256")


@pytest.mark.parametrize("data", [b"", b"not json", b"[1, 2]", b'{"format": 1}'])
def test_damaged(data):
    with pytest.raises(SealedError, match="is not a sealed secret"):
        unseal(data, b"a passphrase", "audit-hmac-sha256")
