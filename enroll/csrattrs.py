"""EST CSR attributes (RFC 7030 4.5.2, as RFC 8951 4 reads it): what a
CSR for a profile should carry, derived from the profile itself.

``CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID``, where an AttrOrOID is
a bare OID or an ``Attribute {type, values}``:

- ``challengePassword``: the CSR should carry the TLS channel binding (3.5);
- each allowed key type: ``rsaEncryption``, ``id-Ed25519``, or
  ``id-ecPublicKey`` with the allowed curves as the attribute's values;
- the signature algorithm to sign with (SHA-256 for RSA and ECDSA);
- ``extensionRequest`` with ``subjectAltName`` when the profile needs SANs.
"""

from common.der import oid, sequence, set_of

CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"
EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
SUBJECT_ALT_NAME = "2.5.29.17"
RSA = "1.2.840.113549.1.1.1"
EC = "1.2.840.10045.2.1"
ED25519 = "1.3.101.112"
CURVES = {"ec-p256": "1.2.840.10045.3.1.7", "ec-p384": "1.3.132.0.34"}
SHA256_RSA = "1.2.840.113549.1.1.11"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"


def for_profile(profile) -> bytes:
    """The DER of the CsrAttrs for ``profile`` (ca/profiles.py)."""
    key_types = tuple(profile.key_types)
    items = [oid(CHALLENGE_PASSWORD)]
    curves = [CURVES[k] for k in key_types if k in CURVES]
    if curves:
        items.append(sequence(oid(EC), set_of(*(oid(c) for c in curves))))
        items.append(oid(ECDSA_SHA256))
    if any(k.startswith("rsa-") for k in key_types):
        items.append(oid(RSA))
        items.append(oid(SHA256_RSA))
    if "ed25519" in key_types:
        items.append(oid(ED25519))
    if profile.san_required:
        items.append(sequence(oid(EXTENSION_REQUEST), set_of(oid(SUBJECT_ALT_NAME))))
    return sequence(*items)
