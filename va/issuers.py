"""The issuers a VA answers for: each one's certificate, responder key and
policies, and everything an answer needs from them computed once at start.

An issuer record (va/store.py ``issuers``) names the CA certificate, the
responder certificate (a delegated OCSP signer, RFC 6960 4.2.2.2, or none
when the CA signs itself), the responder key's file in the VA's key
directory, and the policies of va/policy.py.
"""

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from common.der import tlv
from common.settings import SettingsError
from va import fastocsp as core
from va.errors import ResponderKeyError
from va.policy import IssuerPolicy, NoncePolicy, ResponderIdBy, UnissuedPolicy
from va.signing import Signer, load_key, spki_key_hash, subject_der
from va.store import VAStore, issuer_prefix

HASH_NAMES = {
    core.HASH_SHA1: "sha1",
    core.HASH_SHA256: "sha256",
    core.HASH_SHA384: "sha384",
    core.HASH_SHA512: "sha512",
}
CERTIFICATE_HOLD = 6


@dataclass
class IssuerEntry:
    """Everything needed to answer for one issuing CA, computed once."""

    id: int
    name: str
    certificate: x509.Certificate
    signer: Signer
    delegated: bool
    policy: IssuerPolicy = field(default_factory=IssuerPolicy)
    # Computed from the above:
    # CertID hash algorithm -> (issuerNameHash, issuerKeyHash)
    hashes: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    responder_id: bytes = b""
    certs: bytes = b""
    key_prefix: bytes = b""  # of its keys in the store
    echo_nonce: bool = True
    validity: int = 0  # seconds
    # For a serial the VA has no status for: (certStatus, revocationTime,
    # revocationReason), and (encoded CertStatus, response extensions);
    # both None where such serials are answered unauthorized.
    unissued_fields: tuple[int, int, int] | None = None
    unissued_status: tuple[bytes, bytes] | None = None

    def __post_init__(self):
        name = subject_der(self.certificate)
        for algorithm, hash_name in HASH_NAMES.items():
            self.hashes[algorithm] = (
                hashlib.new(hash_name, name).digest(),
                spki_key_hash(self.certificate, hash_name),
            )
        responder = self.signer.certificate
        if self.policy.responder_id is ResponderIdBy.NAME:
            self.responder_id = tlv(0xA1, subject_der(responder))
        else:  # byKey: SHA-1 of the responder's public key (RFC 6960 4.2.1)
            self.responder_id = tlv(0xA2, tlv(0x04, spki_key_hash(responder, "sha1")))
        # A delegated responder's certificate travels in the response
        # (RFC 6960 4.2.2.2); a CA signing for itself needs none.
        self.certs = responder.public_bytes(serialization.Encoding.DER) if self.delegated else b""
        self.key_prefix = issuer_prefix(self.id)
        self.echo_nonce = self.policy.nonce_policy is NoncePolicy.ECHO
        self.validity = self.policy.validity_seconds
        policy = self.policy.unissued
        if policy is not UnissuedPolicy.UNAUTHORIZED:
            self.unissued_fields = UNISSUED_FIELDS[policy]
            self.unissued_status = (
                core.encode_cert_status(*self.unissued_fields),
                b"" if policy is UnissuedPolicy.UNKNOWN else core.EXTENDED_REVOKE_EXTENSION,
            )


# A serial the VA has no status for: unknown, or revoked with reason
# certificateHold at the epoch and the extended revoked definition extension
# (RFC 6960 2.2, 4.4.8; BR 4.9.10 forbids "good").
UNISSUED_FIELDS = {
    UnissuedPolicy.REVOKED: (core.STATUS_REVOKED, 0, CERTIFICATE_HOLD),
    UnissuedPolicy.UNKNOWN: (core.STATUS_UNKNOWN, 0, core.NO_REASON),
}


class IssuerIndex:
    """CertID issuer hashes -> the issuer they name, for every hash algorithm."""

    def __init__(self, entries: list[IssuerEntry]):
        self.entries = {entry.id: entry for entry in entries}
        self.by_hashes: dict[tuple[int, bytes, bytes], IssuerEntry] = {}
        for entry in entries:
            for algorithm, (name_hash, key_hash) in entry.hashes.items():
                self.by_hashes[(algorithm, name_hash, key_hash)] = entry

    def __iter__(self):
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)


def load_issuers(store: VAStore, key_dir: Path, passphrase: bytes | None) -> list[IssuerEntry]:
    """Every issuer of the store with its responder key loaded (encrypted at
    rest, decrypted here with ``passphrase``)."""
    entries = []
    for issuer_id, record in sorted(store.issuers().items()):
        what = f"issuer {record.get('name', issuer_id)}"
        try:
            policy = IssuerPolicy.of_record(record, what)
        except SettingsError as exc:
            raise ResponderKeyError(f"the store's record of {exc.message}") from None
        certificate = x509.load_der_x509_certificate(base64.b64decode(record["certificate"]))
        delegated = bool(record.get("responder_certificate"))
        responder = (
            x509.load_der_x509_certificate(base64.b64decode(record["responder_certificate"]))
            if delegated
            else certificate
        )
        key_path = key_dir / record["responder_key"]
        try:
            pem = key_path.read_bytes()
        except OSError as exc:
            raise ResponderKeyError(
                f"cannot read the responder key {key_path}: {exc.strerror}"
            ) from None
        key = load_key(pem, passphrase, f"responder key {key_path}")
        entries.append(
            IssuerEntry(
                id=issuer_id,
                name=record["name"],
                certificate=certificate,
                signer=Signer(key, responder),
                delegated=delegated,
                policy=policy,
            )
        )
    return entries
