"""SCEP (RFC 8894) messages: the pkiMessage a client sends, the CertRep the RA
answers with, and the certs-only SignedData of GetCACert.

A pkiMessage (section 3.2) is a CMS SignedData (RFC 5652 section 5) whose
signed content is the DER of a pkcsPKIEnvelope, a CMS EnvelopedData (RFC 5652
section 6) encrypted to the RA certificate, and whose signed attributes carry
the SCEP attributes of section 3.2.1. Everything here is a pure function of
bytes, certificates and keys: no I/O.

``parse_request`` raises :class:`ScepMalformed` for a message that cannot be
answered (no SignedData, no signer certificate, no transactionID or
senderNonce) and :class:`ScepFailure` for one the RA answers with a CertRep
FAILURE (section 3.3.2.2); the latter carries what was read of the request in
``request`` so that the reply can be built.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import ClassVar

from asn1crypto import cms, core, parser
from asn1crypto import crl as acrl
from asn1crypto import csr as acsr
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.name import _ASN1Type

MESSAGE_TYPES = {
    "CertRep": 3,
    "RenewalReq": 17,
    "PKCSReq": 19,
    "CertPoll": 20,
    "GetCert": 21,
    "GetCRL": 22,
}
FAIL_INFO = {"badAlg": 0, "badMessageCheck": 1, "badRequest": 2, "badTime": 3, "badCertId": 4}
PKI_STATUS = {"SUCCESS": 0, "FAILURE": 2, "PENDING": 3}
REQUEST_TYPES = ("PKCSReq", "RenewalReq", "CertPoll", "GetCert", "GetCRL")

# GetCACaps keywords (section 3.5.2); the legacy ones are appended when SHA-1
# and DES3 are accepted (and DES-CBC, which has no keyword).
CAPABILITIES = ("AES", "POSTPKIOperation", "Renewal", "SCEPStandard", "SHA-256", "SHA-512")
LEGACY_CAPABILITIES = ("DES3", "SHA-1")

NONCE_SIZE = 16


class ScepFailure(Exception):
    """A request answered with a CertRep FAILURE carrying ``fail_info``
    (section 3.2.1.4); ``request`` is what was read of it, when enough was."""

    def __init__(self, fail_info: str, message: str):
        if fail_info not in FAIL_INFO:
            raise ValueError(f"unknown SCEP failInfo {fail_info!r}")
        super().__init__(message)
        self.fail_info = fail_info
        self.message = message
        self.request: PKIMessage | None = None


class ScepMalformed(Exception):
    """A message that cannot be answered with a CertRep: no SignedData, no
    signer certificate, or no transactionID or senderNonce to reply to."""


@dataclass(frozen=True)
class PKIMessage:
    """A parsed, verified and decrypted pkiMessage (section 3.2).

    ``content`` is the pkcsPKIEnvelope's content: a CSR (PKCSReq, RenewalReq,
    section 3.3.1), an IssuerAndSubject (CertPoll, 3.3.3) or an
    IssuerAndSerialNumber (GetCert, GetCRL, 3.3.4 and 3.3.5)."""

    message_type: str
    transaction_id: str
    sender_nonce: bytes
    signer_certificate: x509.Certificate
    digest: str
    cipher: str  # "aes128", "aes192", "aes256"; "des3" and "des" when legacy
    content: bytes
    signing_time: datetime | None = None  # the signingTime attribute, when signed


@dataclass(frozen=True)
class CertRep:
    """A parsed and verified CertRep (section 3.3.2)."""

    status: str
    fail_info: str | None
    transaction_id: str
    recipient_nonce: bytes
    sender_nonce: bytes
    certificates: list[x509.Certificate]
    crl: bytes | None
    fail_text: str | None = None


# -- SCEP attributes (section 3.2.1), known to asn1crypto -------------------------


class _SetOfPrintableString(core.SetOf):
    _child_spec = core.PrintableString


class _SetOfUTF8String(core.SetOf):
    _child_spec = core.UTF8String


_OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
_OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
_OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
_OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
_OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
_OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"
_OID_FAIL_INFO_TEXT = "2.16.840.1.113733.1.9.24"
_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
_OID_CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"

_SCEP_ATTRIBUTES = {
    _OID_MESSAGE_TYPE: ("scep_message_type", _SetOfPrintableString),
    _OID_PKI_STATUS: ("scep_pki_status", _SetOfPrintableString),
    _OID_FAIL_INFO: ("scep_fail_info", _SetOfPrintableString),
    _OID_SENDER_NONCE: ("scep_sender_nonce", cms.SetOfOctetString),
    _OID_RECIPIENT_NONCE: ("scep_recipient_nonce", cms.SetOfOctetString),
    _OID_TRANSACTION_ID: ("scep_transaction_id", _SetOfPrintableString),
    _OID_FAIL_INFO_TEXT: ("scep_fail_info_text", _SetOfUTF8String),
}


def _register_attributes() -> None:
    """Adds the SCEP attribute types to asn1crypto's CMSAttributeType and their
    value specs to CMSAttribute, leaving any mapping already there alone."""
    kind = cms.CMSAttributeType
    for oid, (name, spec) in _SCEP_ATTRIBUTES.items():
        known = kind._map.setdefault(oid, name)
        if kind._reverse_map is not None:
            kind._reverse_map.setdefault(known, oid)
        cms.CMSAttribute._oid_specs.setdefault(known, spec)


_register_attributes()


def _attr_name(oid: str) -> str:
    return cms.CMSAttributeType._map.get(oid, oid)


# -- algorithms -------------------------------------------------------------------

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_RSA_SIGNATURES = {
    "1.2.840.113549.1.1.1": None,  # rsaEncryption: the digest algorithm says which hash
    "1.2.840.113549.1.1.5": "sha1",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
_ECDSA_SIGNATURES = {
    "1.2.840.10045.4.1": "sha1",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}
_ECDSA_NAMES = {"sha1": "sha1_ecdsa", "sha256": "sha256_ecdsa", "sha384": "sha384_ecdsa"}
_ECDSA_NAMES["sha512"] = "sha512_ecdsa"

# name: (asn1crypto name, OID, key size, legacy only)
_CIPHERS = {
    "aes128": ("aes128_cbc", "2.16.840.1.101.3.4.1.2", 16, False),
    "aes192": ("aes192_cbc", "2.16.840.1.101.3.4.1.22", 24, False),
    "aes256": ("aes256_cbc", "2.16.840.1.101.3.4.1.42", 32, False),
    "des3": ("tripledes_3key", "1.2.840.113549.3.7", 24, True),
    "des": ("des", "1.3.14.3.2.7", 8, True),
}
_CIPHER_BY_OID = {oid: name for name, (_, oid, _, _) in _CIPHERS.items()}
_KT_RSA_PKCS1 = "1.2.840.113549.1.1.1"
_KT_RSA_OAEP = "1.2.840.113549.1.1.7"


def _block_cipher(name: str, key: bytes) -> algorithms.BlockCipherAlgorithm:
    if name == "des":
        return TripleDES(key * 3)  # DES-CBC as EDE with one key (FIPS 46-3)
    return TripleDES(key) if name == "des3" else algorithms.AES(key)


def _encrypt(name: str, key: bytes, iv: bytes, data: bytes) -> bytes:
    size = len(iv)
    pad = size - len(data) % size
    enc = Cipher(_block_cipher(name, key), modes.CBC(iv)).encryptor()
    return enc.update(data + bytes([pad]) * pad) + enc.finalize()


def _decrypt(name: str, key: bytes, iv: bytes, data: bytes) -> bytes | None:
    """CBC decryption with the padding of RFC 5652 section 6.3; None when the
    padding is wrong."""
    size = len(iv)
    if not data or len(data) % size:
        return None
    dec = Cipher(_block_cipher(name, key), modes.CBC(iv)).decryptor()
    plain = dec.update(data) + dec.finalize()
    pad = plain[-1]
    if not 1 <= pad <= size or plain[-pad:] != bytes([pad]) * pad:
        return None
    return plain[:-pad]


def _digest(name: str, data: bytes) -> bytes:
    h = hashes.Hash(_HASHES[name]())
    h.update(data)
    return h.finalize()


# -- asn1crypto conversions -----------------------------------------------------


def _a_cert(cert: x509.Certificate) -> ax509.Certificate:
    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _issuer_and_serial(cert: x509.Certificate) -> cms.IssuerAndSerialNumber:
    a = _a_cert(cert)
    return cms.IssuerAndSerialNumber({"issuer": a.issuer, "serial_number": a.serial_number})


def _identifies(rid: core.Choice, cert: ax509.Certificate) -> bool:
    """Whether a SignerIdentifier or RecipientIdentifier (RFC 5652 sections
    5.3 and 6.2.1) names ``cert``."""
    if rid.name == "issuer_and_serial_number":
        ias = rid.chosen
        return ias["serial_number"].native == cert.serial_number and ias["issuer"] == cert.issuer
    if rid.name == "subject_key_identifier":
        return cert.key_identifier is not None and rid.chosen.native == cert.key_identifier
    return False


def _describe(rid: core.Choice) -> str:
    try:
        if rid.name == "issuer_and_serial_number":
            ias = rid.chosen
            return (
                f"issuer {ias['issuer'].human_friendly!r} serial {ias['serial_number'].native:#x}"
            )
        return f"subjectKeyIdentifier {rid.chosen.native.hex()}"
    except (ValueError, TypeError, KeyError, AttributeError):
        return "an unreadable identifier"


_STRING_TYPES = {
    core.PrintableString: _ASN1Type.PrintableString,
    core.UTF8String: _ASN1Type.UTF8String,
    core.IA5String: _ASN1Type.IA5String,
    core.TeletexString: _ASN1Type.T61String,
    core.BMPString: _ASN1Type.BMPString,
    core.UniversalString: _ASN1Type.UniversalString,
    core.VisibleString: _ASN1Type.VisibleString,
}


def _to_name(name: ax509.Name) -> x509.Name:
    """An asn1crypto Name (RFC 5280 section 4.1.2.4) as a cryptography Name,
    keeping each value's string type."""
    rdns = []
    for rdn in name.chosen:
        attributes = []
        for atv in rdn:
            value = atv["value"]
            if isinstance(value, core.Choice):
                value = value.chosen
            if isinstance(value, core.Any):
                value = core.load(value.dump(), strict=True)
            kind = next((t for cls, t in _STRING_TYPES.items() if isinstance(value, cls)), None)
            if kind is None:
                raise ValueError(f"name attribute {atv['type'].dotted} is not a string")
            oid = x509.ObjectIdentifier(atv["type"].dotted)
            attributes.append(x509.NameAttribute(oid, value.native, _type=kind))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


_ASN1_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
)


@contextmanager
def _reading(what: str, fail_info: str | None = "badRequest") -> Iterator[None]:
    """Turns a parser's exception into ScepFailure(fail_info) or, with
    fail_info None, ScepMalformed, naming what was being read."""
    try:
        yield
    except _ASN1_ERRORS as exc:
        if fail_info is None:
            raise ScepMalformed(f"{what}: {exc}") from exc
        raise ScepFailure(fail_info, f"{what}: {exc}") from exc


# -- the server side: parsing a pkiMessage (section 3.2) ----------------------


def _signed_attributes(signer: cms.SignerInfo) -> dict[str, core.Asn1Value]:
    """The signed attributes (RFC 5652 section 5.3) by OID, each with its one
    value; a repeated attribute or one with several values is refused."""
    attrs = signer["signed_attrs"]
    if not isinstance(attrs, cms.CMSAttributes) or len(attrs) == 0:
        raise ScepMalformed("the SignerInfo has no signed attributes")
    found: dict[str, core.Asn1Value] = {}
    for attr in attrs:
        oid = attr["type"].dotted
        if oid in found:
            raise ScepMalformed(f"signed attribute {oid} appears more than once")
        values = attr["values"]
        if len(values) != 1:
            raise ScepMalformed(f"signed attribute {oid} has {len(values)} values, not one")
        found[oid] = values[0]
    return found


def _printable(attrs: dict[str, core.Asn1Value], oid: str, label: str) -> str | None:
    value = attrs.get(oid)
    if value is None:
        return None
    if not isinstance(value, core.PrintableString):
        raise ValueError(f"{label} is not a PrintableString")
    return value.native


def _verify_signature(
    cert: x509.Certificate, sig_oid: str, digest: str, signature: bytes, data: bytes
) -> None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ScepFailure(
            "badAlg", f"the signer certificate's key is not supported: {exc}"
        ) from exc
    try:
        if isinstance(key, rsa.RSAPublicKey) and sig_oid in _RSA_SIGNATURES:
            key.verify(signature, data, padding.PKCS1v15(), _HASHES[digest]())
        elif isinstance(key, ec.EllipticCurvePublicKey) and sig_oid in _ECDSA_SIGNATURES:
            key.verify(signature, data, ec.ECDSA(_HASHES[digest]()))
        else:
            kind = type(key).__name__.removeprefix("_").replace("PublicKey", "")
            raise ScepFailure(
                "badAlg", f"signature algorithm {sig_oid} is not supported with a {kind} key"
            )
    except (InvalidSignature, ValueError) as exc:
        raise ScepFailure("badMessageCheck", "the pkiMessage signature does not verify") from exc


def parse_request(
    der: bytes,
    recipient_cert: x509.Certificate,
    recipient_key: rsa.RSAPrivateKey,
    *,
    legacy: bool = False,
    max_size: int = 256 * 1024,
) -> PKIMessage:
    """Parses, verifies and decrypts a pkiMessage (sections 3.2 and 3.3).

    The SignedData must have one SignerInfo whose certificate it carries
    (3.2.1), signed with SHA-256, SHA-384 or SHA-512 (SHA-1 with ``legacy``)
    over signed attributes holding messageType, transactionID and senderNonce
    (3.2.1.2 to 3.2.1.5); its content is an EnvelopedData for
    ``recipient_cert`` under RSA key transport (PKCS#1 v1.5 or OAEP) and
    AES-CBC (DES-EDE3-CBC and DES-CBC with ``legacy``), section 3.2.2."""
    if len(der) > max_size:
        raise ScepMalformed(f"the pkiMessage is {len(der)} bytes, more than {max_size}")
    with _reading("the pkiMessage is not a CMS ContentInfo", None):
        info = cms.ContentInfo.load(der, strict=True)
        kind = info["content_type"].native
        if kind != "signed_data":
            raise ScepMalformed(f"the pkiMessage is a CMS {kind}, not a SignedData")
        signed = info["content"]
    with _reading("the pkiMessage SignedData", None):
        # v1 with issuerAndSerialNumber, v3 with subjectKeyIdentifier (RFC 5652 5.1)
        if signed["version"].native not in ("v1", "v3"):
            raise ScepMalformed(f"SignedData version {signed['version'].native}, not v1 or v3")
        if len(signed["signer_infos"]) != 1:
            raise ScepMalformed(
                f"the SignedData has {len(signed['signer_infos'])} SignerInfos, not one"
            )
        signer = signed["signer_infos"][0]
        carried = signed["certificates"]
        carried = carried if isinstance(carried, cms.CertificateSet) else []
        certs = [c.chosen for c in carried if c.name == "certificate"]
        signer_a = next((c for c in certs if _identifies(signer["sid"], c)), None)
        if signer_a is None:
            raise ScepMalformed(
                f"the SignedData carries no certificate of its signer ({_describe(signer['sid'])})"
            )
        signer_cert = x509.load_der_x509_certificate(signer_a.dump())
        attrs = _signed_attributes(signer)
        transaction_id = _printable(attrs, _OID_TRANSACTION_ID, "transactionID")
        if not transaction_id:
            raise ScepMalformed("the pkiMessage has no transactionID (section 3.2.1.1)")
        nonce = attrs.get(_OID_SENDER_NONCE)
        if not isinstance(nonce, core.OctetString):
            raise ScepMalformed("the pkiMessage has no senderNonce OCTET STRING (3.2.1.5)")
        sender_nonce = nonce.native
        if len(sender_nonce) != NONCE_SIZE:
            raise ScepMalformed(f"the senderNonce is {len(sender_nonce)} bytes, not 16")
    request = PKIMessage("", transaction_id, sender_nonce, signer_cert, "sha256", "", b"")
    return _check_request(signed, signer, attrs, request, recipient_cert, recipient_key, legacy)


def _check_request(
    signed: cms.SignedData,
    signer: cms.SignerInfo,
    attrs: dict[str, core.Asn1Value],
    request: PKIMessage,
    recipient_cert: x509.Certificate,
    recipient_key: rsa.RSAPrivateKey,
    legacy: bool,
) -> PKIMessage:
    """The checks after which a failure is answered: algorithms, messageDigest,
    signature, messageType, the envelope and its content. A ScepFailure gets
    ``request``, filled in as far as the checks went."""
    try:
        with _reading("the messageType"):
            number = _printable(attrs, _OID_MESSAGE_TYPE, "messageType")
        if number is None:
            raise ScepFailure("badRequest", "the pkiMessage has no messageType (3.2.1.2)")
        message_type = next((k for k, v in MESSAGE_TYPES.items() if str(v) == number), number)
        request = replace(request, message_type=message_type)
        with _reading("the SignerInfo algorithms", "badAlg"):
            digest = signer["digest_algorithm"]["algorithm"].native
            sig_oid = signer["signature_algorithm"]["algorithm"].dotted
        if digest not in _HASHES or (digest == "sha1" and not legacy):
            raise ScepFailure("badAlg", f"digest algorithm {digest} is not accepted")
        request = replace(request, digest=digest)
        sig_hash = _RSA_SIGNATURES.get(sig_oid) or _ECDSA_SIGNATURES.get(sig_oid) or digest
        if sig_hash != digest:
            raise ScepFailure(
                "badAlg", f"signature algorithm {sig_oid} uses {sig_hash}, the digest is {digest}"
            )
        with _reading("the signed content"):
            encap = signed["encap_content_info"]
            if encap["content_type"].native != "data":
                raise ScepFailure(
                    "badRequest", f"the signed content is {encap['content_type'].native}, not data"
                )
            content = encap["content"].native
            if content is None:
                raise ScepFailure("badRequest", "the SignedData has no pkcsPKIEnvelope")
            content_type = attrs.get(_OID_CONTENT_TYPE)
            if not isinstance(content_type, cms.ContentType) or content_type.native != "data":
                raise ScepFailure("badRequest", "the contentType attribute is missing or not data")
            message_digest = attrs.get(_OID_MESSAGE_DIGEST)
            if not isinstance(message_digest, core.OctetString):
                raise ScepFailure("badRequest", "the messageDigest attribute is missing")
            message_digest = message_digest.native
            # RFC 5652 section 5.4: the signature covers the SET OF, not the [0].
            to_verify = cms.CMSAttributes(contents=signer["signed_attrs"].contents).dump()
            signature = signer["signature"].native
        if message_digest != _digest(digest, content):
            raise ScepFailure(
                "badMessageCheck", "the messageDigest attribute does not match the content"
            )
        _verify_signature(request.signer_certificate, sig_oid, digest, signature, to_verify)
        signing_time = attrs.get(_OID_SIGNING_TIME)
        if signing_time is not None:
            with _reading("the signingTime attribute"):
                when = signing_time.native
            if not isinstance(when, datetime):
                raise ScepFailure("badRequest", "the signingTime attribute is not a time")
            request = replace(request, signing_time=when)
        if message_type not in REQUEST_TYPES:
            raise ScepFailure("badRequest", f"messageType {number} is not a request (3.2.1.2)")
        cipher, plain = _open_envelope(content, recipient_cert, recipient_key, legacy)
        request = replace(request, cipher=cipher, content=plain)
        _check_content(message_type, plain)
        return request
    except ScepFailure as exc:
        exc.request = request
        raise


class _EncryptedContentInfo(core.Sequence):
    """EncryptedContentInfo (RFC 5652 section 6.1) keeping encryptedContent as
    sent: BER lets it be constructed with a definite length, as Go's pkcs7
    writes it, which asn1crypto's implicit OCTET STRING refuses."""

    _fields: ClassVar = [
        ("content_type", cms.ContentType),
        ("content_encryption_algorithm", cms.EncryptionAlgorithm),
        ("encrypted_content", core.Any, {"optional": True}),
    ]


class _EnvelopedData(core.Sequence):
    _fields: ClassVar = [
        ("version", cms.CMSVersion),
        ("originator_info", cms.OriginatorInfo, {"implicit": 0, "optional": True}),
        ("recipient_infos", cms.RecipientInfos),
        ("encrypted_content_info", _EncryptedContentInfo),
        ("unprotected_attrs", cms.CMSAttributes, {"implicit": 1, "optional": True}),
    ]


class _EnvelopeInfo(core.Sequence):
    _fields: ClassVar = [
        ("content_type", cms.ContentType),
        ("content", _EnvelopedData, {"explicit": 0}),
    ]


def _ber_octets(method: int, contents: bytes, depth: int = 0) -> bytes:
    """The value of a BER OCTET STRING, primitive or constructed (X.690 section
    8.7), from its method and contents."""
    if method == 0:
        return contents
    if depth > 4:
        raise ValueError("the OCTET STRING nests too deep")
    chunks, pos = [], 0
    while pos < len(contents):
        # parser.parse would take a copy of the rest for each chunk
        (class_, inner, tag, _, body, _), pos = parser._parse(contents, len(contents), pos)
        if class_ != 0 or tag != 4:
            raise ValueError("a constructed OCTET STRING holds something else")
        chunks.append(_ber_octets(inner, body, depth + 1))
    return b"".join(chunks)


def _open_envelope(
    der: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey, legacy: bool
) -> tuple[str, bytes]:
    """Decrypts the pkcsPKIEnvelope (section 3.2.2): returns the cipher name and
    the content."""
    ours = _a_cert(cert)
    with _reading("the pkcsPKIEnvelope is not a CMS ContentInfo"):
        info = _EnvelopeInfo.load(der, strict=True)
        if info["content_type"].native != "enveloped_data":
            raise ScepFailure(
                "badRequest",
                f"the pkcsPKIEnvelope is a CMS {info['content_type'].native}, not EnvelopedData",
            )
        env = info["content"]
        ktris = [r.chosen for r in env["recipient_infos"] if r.name == "ktri"]
        ktri = next((r for r in ktris if _identifies(r["rid"], ours)), None)
        if ktri is None:
            names = ", ".join(_describe(r["rid"]) for r in ktris) or "no key transport recipient"
            raise ScepFailure(
                "badRequest",
                "the pkcsPKIEnvelope is not encrypted to this RA certificate (issuer "
                f"{ours.issuer.human_friendly!r} serial {ours.serial_number:#x}); "
                f"it is for {names}",
            )
        kt = ktri["key_encryption_algorithm"]
        kt_oid = kt["algorithm"].dotted
        encrypted_key = ktri["encrypted_key"].native
        eci = env["encrypted_content_info"]
        if eci["content_type"].native != "data":
            raise ScepFailure("badRequest", "the enveloped content is not data")
        alg = eci["content_encryption_algorithm"]
        cipher = _CIPHER_BY_OID.get(alg["algorithm"].dotted)
        if cipher is None:
            raise ScepFailure(
                "badAlg", f"content encryption {alg['algorithm'].dotted} is not supported"
            )
        if _CIPHERS[cipher][3] and not legacy:
            raise ScepFailure("badAlg", f"content encryption {cipher} is not accepted")
        iv = alg["parameters"].native
        block = 8 if cipher.startswith("des") else 16
        if not isinstance(iv, bytes) or len(iv) != block:
            raise ScepFailure("badRequest", f"the {cipher} IV is not {block} bytes")
        sent = eci["encrypted_content"]
        if isinstance(sent, core.Void):
            raise ScepFailure("badRequest", "the pkcsPKIEnvelope has no encrypted content")
        class_, method, tag, _, body, _ = parser.parse(sent._header + sent.contents, strict=True)
        if class_ != 2 or tag != 0:
            raise ScepFailure("badRequest", "the encryptedContent is not tagged [0]")
        ciphertext = _ber_octets(method, body)
        if not ciphertext:
            raise ScepFailure("badRequest", "the pkcsPKIEnvelope has no encrypted content")
        if kt_oid == _KT_RSA_PKCS1:
            scheme: padding.AsymmetricPadding = padding.PKCS1v15()
        elif kt_oid == _KT_RSA_OAEP:
            params = kt["parameters"]
            oaep_hash = params["hash_algorithm"]["algorithm"].native
            mgf = params["mask_gen_algorithm"]
            mgf_hash = mgf["parameters"]["algorithm"].native
            if (
                mgf["algorithm"].native != "mgf1"
                or oaep_hash not in _HASHES
                or mgf_hash not in _HASHES
                or params["p_source_algorithm"]["parameters"].native
            ):
                raise ScepFailure("badAlg", "RSAES-OAEP parameters are not supported")
            h = _HASHES[oaep_hash]()
            scheme = padding.OAEP(mgf=padding.MGF1(_HASHES[mgf_hash]()), algorithm=h, label=None)
        else:
            raise ScepFailure("badAlg", f"key transport {kt_oid} is not supported")
    try:
        cek = key.decrypt(encrypted_key, scheme)
    except ValueError as exc:
        raise ScepFailure("badMessageCheck", "the content-encryption key does not decrypt") from exc
    size = _CIPHERS[cipher][2]
    if len(cek) != size:
        raise ScepFailure(
            "badMessageCheck",
            f"the content-encryption key is {len(cek)} bytes, {cipher} takes {size}",
        )
    try:
        plain = _decrypt(cipher, cek, iv, ciphertext)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ScepFailure("badMessageCheck", f"the content does not decrypt: {exc}") from exc
    if plain is None:
        raise ScepFailure("badMessageCheck", "the decrypted content has bad padding")
    return cipher, plain


def _check_content(message_type: str, content: bytes) -> None:
    """The envelope's content has the type its messageType says (3.3.1, 3.3.3
    to 3.3.5); a CSR's own signature is checked."""
    if message_type in ("PKCSReq", "RenewalReq"):
        try:
            csr = x509.load_der_x509_csr(content)
            valid = csr.is_signature_valid
        except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
            raise ScepFailure("badRequest", f"the {message_type} content is not a CSR") from exc
        if not valid:
            raise ScepFailure("badMessageCheck", "the CSR signature does not verify")
    elif message_type == "CertPoll":
        issuer_and_subject(content)
    else:
        issuer_and_serial(content)


class IssuerAndSubject(core.Sequence):
    """IssuerAndSubject of a CertPoll (section 3.3.3)."""

    _fields: ClassVar = [("issuer", ax509.Name), ("subject", ax509.Name)]


def issuer_and_subject(content: bytes) -> tuple[x509.Name, x509.Name]:
    """The issuer and subject of a CertPoll's IssuerAndSubject (section 3.3.3)."""
    with _reading("the CertPoll content is not an IssuerAndSubject"):
        value = IssuerAndSubject.load(content, strict=True)
        return _to_name(value["issuer"]), _to_name(value["subject"])


def issuer_and_serial(content: bytes) -> tuple[x509.Name, int]:
    """The issuer and serial number of a GetCert or GetCRL IssuerAndSerialNumber
    (sections 3.3.4 and 3.3.5, RFC 5652 section 10.2.4)."""
    with _reading("the content is not an IssuerAndSerialNumber"):
        value = cms.IssuerAndSerialNumber.load(content, strict=True)
        return _to_name(value["issuer"]), value["serial_number"].native


def challenge_password(csr_der: bytes) -> str | None:
    """The challengePassword attribute of a CSR (RFC 2985 section 5.4.1, RFC
    8894 section 2.3), of any string type; None when absent."""
    with _reading("the CSR"):
        request = acsr.CertificationRequest.load(csr_der, strict=True)
        found = None
        for attr in request["certification_request_info"]["attributes"]:
            if attr["type"].dotted != _OID_CHALLENGE_PASSWORD:
                continue
            values = cms.SetOfAny.load(attr["values"].dump(), strict=True)
            if found is not None or len(values) != 1:
                raise ScepFailure("badRequest", "the CSR has more than one challengePassword")
            value = core.load(values[0].dump(), strict=True)
            if not isinstance(value, core.AbstractString):
                raise ScepFailure("badRequest", "the challengePassword is not a string")
            found = value.native
        return found


def capabilities(legacy: bool) -> str:
    """The GetCACaps body (section 3.5.2), one keyword a line."""
    names = CAPABILITIES + (LEGACY_CAPABILITIES if legacy else ())
    return "".join(f"{n}\n" for n in names)


# -- building: SignedData and EnvelopedData ---------------------------------


def _attribute(oid: str, value: core.Asn1Value) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": _attr_name(oid), "values": [value]})


def _seal(content: bytes, recipient: x509.Certificate, cipher: str) -> bytes:
    """An EnvelopedData ContentInfo (RFC 5652 section 6) of ``content`` for
    ``recipient`` with RSA PKCS#1 v1.5 key transport."""
    if cipher not in _CIPHERS:
        raise ValueError(f"unknown cipher {cipher!r}")
    public = recipient.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("the recipient certificate's key is not RSA")
    name, _, size, _ = _CIPHERS[cipher]
    key = os.urandom(size)
    iv = os.urandom(8 if cipher.startswith("des") else 16)
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": cms.RecipientIdentifier(
                {"issuer_and_serial_number": _issuer_and_serial(recipient)}
            ),
            "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()},
            "encrypted_key": public.encrypt(key, padding.PKCS1v15()),
        }
    )
    env = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [cms.RecipientInfo({"ktri": ktri})],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": name, "parameters": iv},
                "encrypted_content": _encrypt(cipher, key, iv, content),
            },
        }
    )
    return cms.ContentInfo({"content_type": "enveloped_data", "content": env}).dump()


def _sign(
    content: bytes | None,
    attributes: list[cms.CMSAttribute],
    signer_cert: x509.Certificate,
    signer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    digest: str,
    signing_time: datetime | None = None,
) -> bytes:
    """A SignedData ContentInfo (RFC 5652 section 5) of id-data ``content``
    (absent when None), signed by ``signer_key`` over the signed attributes
    contentType, messageDigest, signingTime and ``attributes``."""
    if digest not in _HASHES:
        raise ValueError(f"unknown digest {digest!r}")
    attrs = [
        _attribute(_OID_CONTENT_TYPE, cms.ContentType("data")),
        _attribute(_OID_MESSAGE_DIGEST, core.OctetString(_digest(digest, content or b""))),
        _attribute(_OID_SIGNING_TIME, cms.Time({"utc_time": signing_time or datetime.now(UTC)})),
        *attributes,
    ]
    signed_attrs = cms.CMSAttributes(sorted(attrs, key=lambda a: a.dump()))  # DER SET OF order
    to_sign = signed_attrs.dump()
    if isinstance(signer_key, rsa.RSAPrivateKey):
        signature = signer_key.sign(to_sign, padding.PKCS1v15(), _HASHES[digest]())
        sig_alg = {"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()}
    elif isinstance(signer_key, ec.EllipticCurvePrivateKey):
        signature = signer_key.sign(to_sign, ec.ECDSA(_HASHES[digest]()))
        sig_alg = {"algorithm": _ECDSA_NAMES[digest]}
    else:
        raise ValueError("the signer key is neither RSA nor EC")
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": _issuer_and_serial(signer_cert)}
            ),
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": signed_attrs,
            "signature_algorithm": sig_alg,
            "signature": signature,
        }
    )
    encap = {"content_type": "data"}
    if content is not None:
        encap["content"] = content
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": digest}],
            "encap_content_info": encap,
            "certificates": [_a_cert(signer_cert)],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def _degenerate(certs: Sequence[x509.Certificate], crls: Sequence[bytes]) -> bytes:
    fields: dict[str, object] = {
        "version": "v1",
        "digest_algorithms": [],
        "encap_content_info": {"content_type": "data"},
        "signer_infos": [],
    }
    if certs:
        fields["certificates"] = [_a_cert(c) for c in certs]
    if crls:
        fields["crls"] = [
            cms.RevocationInfoChoice({"crl": acrl.CertificateList.load(c, strict=True)})
            for c in crls
        ]
    return cms.ContentInfo(
        {"content_type": "signed_data", "content": cms.SignedData(fields)}
    ).dump()


def certs_only(certs: Sequence[x509.Certificate]) -> bytes:
    """A degenerate certificates-only SignedData ContentInfo (RFC 8894 section
    3.4): the certificates (a SET OF, so in DER order), no content, no signers."""
    if not certs:
        raise ValueError("a certs-only SignedData needs at least one certificate")
    return _degenerate(certs, ())


def build_cert_rep(
    request: PKIMessage,
    *,
    status: str,
    signer_cert: x509.Certificate,
    signer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    fail_info: str | None = None,
    certificates: Sequence[x509.Certificate] = (),
    crl: bytes | None = None,
    sender_nonce: bytes,
    fail_text: str | None = None,
) -> bytes:
    """A CertRep pkiMessage (section 3.3.2) answering ``request``.

    SUCCESS envelopes, for the request's signer certificate and with the
    request's cipher, a certs-only SignedData of ``certificates`` or, for
    GetCRL, one carrying ``crl`` (3.3.2.1); FAILURE (with ``fail_info`` and,
    optionally, ``fail_text`` as failInfoText, 3.2.1.4) and PENDING have no
    content. The RA signs with the request's digest."""
    if status not in PKI_STATUS:
        raise ValueError(f"unknown pkiStatus {status!r}")
    if (status == "FAILURE") != (fail_info is not None):
        raise ValueError("failInfo goes with a FAILURE and only with it")
    if fail_info is not None and fail_info not in FAIL_INFO:
        raise ValueError(f"unknown failInfo {fail_info!r}")
    if len(sender_nonce) != NONCE_SIZE:
        raise ValueError("the senderNonce must be 16 bytes")
    attributes = [
        _attribute(_OID_MESSAGE_TYPE, core.PrintableString(str(MESSAGE_TYPES["CertRep"]))),
        _attribute(_OID_PKI_STATUS, core.PrintableString(str(PKI_STATUS[status]))),
        _attribute(_OID_TRANSACTION_ID, core.PrintableString(request.transaction_id)),
        _attribute(_OID_RECIPIENT_NONCE, core.OctetString(request.sender_nonce)),
        _attribute(_OID_SENDER_NONCE, core.OctetString(sender_nonce)),
    ]
    if fail_info is not None:
        attributes.append(
            _attribute(_OID_FAIL_INFO, core.PrintableString(str(FAIL_INFO[fail_info])))
        )
        if fail_text:
            attributes.append(_attribute(_OID_FAIL_INFO_TEXT, core.UTF8String(fail_text)))
    content = None
    if status == "SUCCESS":
        if crl is not None:
            inner = _degenerate((), (crl,))
        elif certificates:
            inner = certs_only(certificates)
        else:
            raise ValueError("a SUCCESS CertRep carries certificates or a CRL")
        content = _seal(inner, request.signer_certificate, request.cipher or "aes256")
    digest = request.digest if request.digest in _HASHES else "sha256"
    return _sign(content, attributes, signer_cert, signer_key, digest)


# -- the client side -----------------------------------------------------------


def build_request(
    message_type: str,
    content: bytes,
    *,
    signer_cert: x509.Certificate,
    signer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    recipient_cert: x509.Certificate,
    transaction_id: str,
    sender_nonce: bytes,
    digest: str = "sha256",
    cipher: str = "aes256",
    signing_time: datetime | None = None,
) -> bytes:
    """A client's pkiMessage (section 3.2): ``content`` enveloped for
    ``recipient_cert`` with ``cipher``, signed by ``signer_key``."""
    if message_type not in REQUEST_TYPES:
        raise ValueError(f"{message_type!r} is not a SCEP request type")
    if len(sender_nonce) != NONCE_SIZE:
        raise ValueError("the senderNonce must be 16 bytes")
    attributes = [
        _attribute(_OID_MESSAGE_TYPE, core.PrintableString(str(MESSAGE_TYPES[message_type]))),
        _attribute(_OID_TRANSACTION_ID, core.PrintableString(transaction_id)),
        _attribute(_OID_SENDER_NONCE, core.OctetString(sender_nonce)),
    ]
    envelope = _seal(content, recipient_cert, cipher)
    return _sign(envelope, attributes, signer_cert, signer_key, digest, signing_time)


def parse_cert_rep(
    der: bytes,
    *,
    signer_cert_expected: x509.Certificate,
    recipient_key: rsa.RSAPrivateKey,
    recipient_cert: x509.Certificate,
) -> CertRep:
    """Verifies a CertRep (section 3.3.2) signed by ``signer_cert_expected``
    and, for SUCCESS, opens its envelope with ``recipient_key``; raises
    ScepMalformed for anything amiss."""
    with _reading("the CertRep", None):
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise ScepMalformed("the CertRep is not a SignedData")
        sd = info["content"]
        (si,) = sd["signer_infos"]
        if not _identifies(si["sid"], _a_cert(signer_cert_expected)):
            raise ScepMalformed("the CertRep is not signed by the expected RA certificate")
        values: dict[str, object] = {}
        for attr in si["signed_attrs"]:
            (values[attr["type"].dotted],) = attr["values"].native
        required = {
            _OID_MESSAGE_DIGEST: "messageDigest",
            _OID_MESSAGE_TYPE: "messageType",
            _OID_PKI_STATUS: "pkiStatus",
            _OID_TRANSACTION_ID: "transactionID",
            _OID_RECIPIENT_NONCE: "recipientNonce",
            _OID_SENDER_NONCE: "senderNonce",
        }
        missing = [label for oid, label in required.items() if oid not in values]
        if missing:
            raise ScepMalformed(f"the CertRep lacks {', '.join(missing)}")
        digest = si["digest_algorithm"]["algorithm"].native
        content = sd["encap_content_info"]["content"].native
        if values[_OID_MESSAGE_DIGEST] != _digest(digest, content or b""):
            raise ScepMalformed("the CertRep messageDigest does not match its content")
        signed_bytes = b"\x31" + si["signed_attrs"].dump()[1:]
        public = signer_cert_expected.public_key()
        try:
            if isinstance(public, rsa.RSAPublicKey):
                public.verify(
                    si["signature"].native, signed_bytes, padding.PKCS1v15(), _HASHES[digest]()
                )
            else:
                public.verify(si["signature"].native, signed_bytes, ec.ECDSA(_HASHES[digest]()))
        except InvalidSignature as exc:
            raise ScepMalformed("the CertRep signature does not verify") from exc
        if values[_OID_MESSAGE_TYPE] != "3":
            raise ScepMalformed(f"messageType {values[_OID_MESSAGE_TYPE]} is not CertRep")
        status = {str(v): k for k, v in PKI_STATUS.items()}[values[_OID_PKI_STATUS]]
        fail = values.get(_OID_FAIL_INFO)
        fail_info = {str(v): k for k, v in FAIL_INFO.items()}[fail] if fail is not None else None
        certificates: list[x509.Certificate] = []
        crl = None
        if status == "SUCCESS":
            inner = _client_open(content, recipient_key, recipient_cert)
            degenerate = cms.ContentInfo.load(inner, strict=True)["content"]
            for choice in degenerate["certificates"] or []:
                certificates.append(x509.load_der_x509_certificate(choice.chosen.dump()))
            crls = degenerate["crls"]
            crl = crls[0].chosen.dump() if crls else None
        return CertRep(
            status,
            fail_info,
            values[_OID_TRANSACTION_ID],
            values[_OID_RECIPIENT_NONCE],
            values[_OID_SENDER_NONCE],
            certificates,
            crl,
            values.get(_OID_FAIL_INFO_TEXT),
        )


def _client_open(der: bytes, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bytes:
    """The content of a CertRep's EnvelopedData (RFC 5652 section 6.2.1), for a
    key transport recipient naming ``cert``."""
    env = cms.ContentInfo.load(der, strict=True)["content"]
    mine = _a_cert(cert)
    (ktri,) = [
        r.chosen
        for r in env["recipient_infos"]
        if r.name == "ktri" and _identifies(r.chosen["rid"], mine)
    ]
    cek = key.decrypt(ktri["encrypted_key"].native, padding.PKCS1v15())
    eci = env["encrypted_content_info"]
    cipher = _CIPHER_BY_OID[eci["content_encryption_algorithm"]["algorithm"].dotted]
    plain = _decrypt(
        cipher,
        cek,
        eci["content_encryption_algorithm"]["parameters"].native,
        eci["encrypted_content"].native,
    )
    if plain is None:
        raise ValueError("the CertRep envelope has bad padding")
    return plain
