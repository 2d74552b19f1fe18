"""OCSP response encoding (RFC 6960 4.2.1), pure Python: the twin of
``va/_responses.pxi`` (compiled into ``va._fastocsp``). ``va._fastocsp_py``
re-exports every name here, as the native module holds the encoder, so the
two OCSP modules' namespaces match. Both produce the same bytes and raise the
same errors for every input.
"""

from common import der
from common._dertime_py import der_time

__all__ = (
    "EXTENDED_REVOKE_EXTENSION",
    "INTERNAL_ERROR",
    "MALFORMED_REQUEST",
    "NO_REASON",
    "SIG_REQUIRED",
    "STATUS_GOOD",
    "STATUS_REVOKED",
    "STATUS_UNKNOWN",
    "TRY_LATER",
    "UNAUTHORIZED",
    "encode_cert_status",
    "encode_certid",
    "encode_fresh_response_data",
    "encode_nonce_extension",
    "encode_ocsp_response",
    "encode_ocsp_responses",
    "encode_response_data",
    "encode_response_data_many",
    "encode_single_response",
    "generalized_time",
)

STATUS_GOOD, STATUS_REVOKED, STATUS_UNKNOWN = 0, 1, 2
NO_REASON = -1
# AlgorithmIdentifier with NULL parameters, as OpenSSL sends them, by the
# request parser's HASH_* value (va._fastocsp_py: 1 SHA-1 ... 4 SHA-512).
_HASH_ALGORITHM_IDS = {
    1: bytes.fromhex("300906052b0e03021a0500"),
    2: bytes.fromhex("300d06096086480165030402010500"),
    3: bytes.fromhex("300d06096086480165030402020500"),
    4: bytes.fromhex("300d06096086480165030402030500"),
}
# id-pkix-ocsp-basic
_BASIC_RESPONSE_TYPE = bytes.fromhex("06092b0601050507300101")
# Extension { id-pkix-ocsp-nonce, extnValue }: the prefix before extnValue's content.
_NONCE_EXTENSION_OID = bytes.fromhex("06092b0601050507300102")
# RFC 6960 4.4.8: id-pkix-ocsp-extended-revoke, value NULL.
EXTENDED_REVOKE_EXTENSION = bytes.fromhex("300f06092b060105050730010904020500")

# Unsigned error responses (RFC 6960 4.2.1), as byte constants.
MALFORMED_REQUEST = bytes.fromhex("30030a0101")
INTERNAL_ERROR = bytes.fromhex("30030a0102")
TRY_LATER = bytes.fromhex("30030a0103")
SIG_REQUIRED = bytes.fromhex("30030a0105")
UNAUTHORIZED = bytes.fromhex("30030a0106")


def _tlv(tag: int, content: bytes) -> bytes:
    # As the native encoder: up to three length octets.
    if len(content) >= 0x1000000:
        raise ValueError("element too large")
    return der.tlv(tag, content)


def generalized_time(epoch: int) -> bytes:
    """GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5.2), from 1970 to 9999
    (RFC 6960 writes every time as GeneralizedTime)."""
    return der_time(epoch, True)


def encode_certid(hash_algorithm: int, name_hash: bytes, key_hash: bytes, serial: bytes) -> bytes:
    """CertID with ``serial`` given as the INTEGER's content octets."""
    return _tlv(0x30, _certid_head(hash_algorithm, name_hash, key_hash) + _tlv(0x02, serial))


def _certid_head(hash_algorithm: int, name_hash: bytes, key_hash: bytes) -> bytes:
    """A CertID's content before serialNumber."""
    if hash_algorithm not in _HASH_ALGORITHM_IDS:
        raise ValueError(f"unsupported hash algorithm {hash_algorithm}")
    return _HASH_ALGORITHM_IDS[hash_algorithm] + _tlv(0x04, name_hash) + _tlv(0x04, key_hash)


def encode_cert_status(status: int, revocation_time: int, reason: int) -> bytes:
    """CertStatus: good, unknown, or revoked at ``revocation_time``;
    ``reason`` NO_REASON leaves revocationReason out (BR 7.2.2: unspecified
    is never encoded)."""
    if status == STATUS_GOOD:
        return b"\x80\x00"
    if status == STATUS_UNKNOWN:
        return b"\x82\x00"
    if status == STATUS_REVOKED:
        info = generalized_time(revocation_time)
        if reason != NO_REASON:
            if not 0 <= reason <= 10 or reason == 7:
                raise ValueError(f"invalid CRLReason {reason}")
            info += _tlv(0xA0, bytes((0x0A, 0x01, reason)))
        return _tlv(0xA1, info)
    raise ValueError(f"invalid certificate status {status}")


def encode_single_response(
    certid: bytes,
    status: int,
    revocation_time: int,
    reason: int,
    this_update: int,
    next_update: int,
) -> bytes:
    """SingleResponse (see ``encode_cert_status``); ``next_update`` -1 leaves
    it out."""
    body = (
        certid
        + encode_cert_status(status, revocation_time, reason)
        + _validity(this_update, next_update)
    )
    return _tlv(0x30, body)


def _validity(this_update: int, next_update: int) -> bytes:
    """A SingleResponse's thisUpdate and (unless -1) [0] nextUpdate."""
    if next_update == -1:
        return generalized_time(this_update)
    return generalized_time(this_update) + _tlv(0xA0, generalized_time(next_update))


def encode_response_data_many(
    responder_id: bytes,
    produced_at: int,
    hash_algorithm: int,
    name_hash: bytes,
    key_hash: bytes,
    serials: list,
    cert_statuses: list,
    this_update: int,
    next_update: int,
    extensions: list,
) -> list:
    """One ResponseData per serial, each answering that serial alone (what
    pre-signing stores): item i is ``encode_response_data(responder_id,
    produced_at, [SingleResponse(CertID(hash_algorithm, name_hash, key_hash,
    serials[i]), cert_statuses[i], this_update, next_update)],
    extensions[i])``, with ``cert_statuses[i]`` from ``encode_cert_status``.
    The shared parts are encoded once."""
    if not (type(serials) is type(cert_statuses) is type(extensions) is list):
        raise TypeError("serials, cert_statuses and extensions must be lists")
    if not len(serials) == len(cert_statuses) == len(extensions):
        raise ValueError("serials, cert_statuses and extensions differ in length")
    certid_head = _certid_head(hash_algorithm, name_hash, key_hash)
    head = responder_id + generalized_time(produced_at)
    tail = _validity(this_update, next_update)
    out = []
    for serial, cert_status, extension in zip(serials, cert_statuses, extensions, strict=True):
        if type(serial) is not bytes or type(cert_status) is not bytes:
            raise TypeError("serials and cert_statuses must be bytes")
        if type(extension) is not bytes:
            raise TypeError("extensions must be bytes")
        certid = _tlv(0x30, certid_head + _tlv(0x02, serial))
        body = head + _tlv(0x30, _tlv(0x30, certid + cert_status + tail))
        if extension:
            body += _tlv(0xA1, _tlv(0x30, extension))
        out.append(_tlv(0x30, body))
    return out


def encode_nonce_extension(nonce: bytes) -> bytes:
    """The response's nonce Extension, echoing the request's extnValue content."""
    return _tlv(0x30, _NONCE_EXTENSION_OID + _tlv(0x04, nonce))


def encode_fresh_response_data(
    responder_id: bytes,
    produced_at: int,
    certid: bytes,
    cert_status: bytes,
    next_update: int,
    nonce: bytes | None,
    extensions: bytes,
) -> bytes:
    """The ResponseData of a fresh answer for one CertID: ``encode_response_data(
    responder_id, produced_at, [SingleResponse(certid, cert_status, thisUpdate
    produced_at, next_update)], nonce Extension (unless ``nonce`` is None) +
    extensions)``, with ``cert_status`` from ``encode_cert_status``."""
    for name, value in (
        ("responder_id", responder_id),
        ("certid", certid),
        ("cert_status", cert_status),
        ("extensions", extensions),
    ):
        if type(value) is not bytes:
            raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if nonce is not None and type(nonce) is not bytes:
        raise TypeError("nonce must be bytes or None")
    if max(len(responder_id), len(certid), len(cert_status), len(extensions)) >= 0x10000 or (
        nonce is not None and len(nonce) >= 0x10000
    ):
        raise ValueError("element too large")
    single = _tlv(0x30, certid + cert_status + _validity(produced_at, next_update))
    if nonce is not None:
        extensions = encode_nonce_extension(nonce) + extensions
    return encode_response_data(responder_id, produced_at, [single], extensions)


def encode_response_data(
    responder_id: bytes, produced_at: int, responses, extensions: bytes
) -> bytes:
    """ResponseData (v1, so no version field). ``responder_id`` is the encoded
    ResponderID choice, ``responses`` the encoded SingleResponses,
    ``extensions`` the encoded Extension elements (b"" for none)."""
    if type(extensions) is not bytes:
        raise TypeError(f"extensions must be bytes, not {type(extensions).__name__}")
    body = responder_id + generalized_time(produced_at) + _tlv(0x30, b"".join(responses))
    if extensions:
        body += _tlv(0xA1, _tlv(0x30, extensions))
    return _tlv(0x30, body)


def encode_ocsp_response(
    response_data: bytes, signature_algorithm: bytes, signature: bytes, certs: bytes
) -> bytes:
    """A successful OCSPResponse around a signed BasicOCSPResponse;
    ``certs`` is the concatenated certificates to include (b"" for none)."""
    if type(certs) is not bytes:
        raise TypeError(f"certs must be bytes, not {type(certs).__name__}")
    basic = response_data + signature_algorithm + _tlv(0x03, b"\x00" + signature)
    if certs:
        basic += _tlv(0xA0, _tlv(0x30, certs))
    response_bytes = _tlv(0x30, _BASIC_RESPONSE_TYPE + _tlv(0x04, _tlv(0x30, basic)))
    return _tlv(0x30, b"\x0a\x01\x00" + _tlv(0xA0, response_bytes))


def encode_ocsp_responses(
    response_data: list, signature_algorithm: bytes, signatures: list, certs: bytes
) -> list:
    """``encode_ocsp_response`` for each ResponseData and its signature (one
    signer's batch)."""
    if type(response_data) is not list or type(signatures) is not list:
        raise TypeError("response_data and signatures must be lists")
    if len(response_data) != len(signatures):
        raise ValueError("response_data and signatures differ in length")
    out = []
    for data, signature in zip(response_data, signatures, strict=True):
        if type(data) is not bytes or type(signature) is not bytes:
            raise TypeError("response_data and signatures must be bytes")
        out.append(encode_ocsp_response(data, signature_algorithm, signature, certs))
    return out
