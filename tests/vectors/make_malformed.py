"""Write the request vectors built here: the malformed ones (req-invalid-*.der)
and the valid ones they are made from (req-valid-*-built.der).

Each malformed vector is built from the parts of a valid request so that
exactly one thing is wrong with it, the thing its name says. Run from the
repository root:
    python -m tests.vectors.make_malformed
"""

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from common.der import bit_string, tlv
from common.der import sequence as seq

HERE = Path(__file__).resolve().parent
SHA1_ALG = bytes.fromhex("300906052b0e03021a0500")
SHA256_ALG = bytes.fromhex("300d06096086480165030402010500")
NONCE_OID = bytes.fromhex("06092b0601050507300102")
ED25519_ALG = bytes.fromhex("300506032b6570")
# A fixed key, so the signed vector is the same bytes each time (Ed25519 is
# deterministic); nothing verifies it.
REQUESTOR_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def certid(serial: bytes = b"\x01\x02\x03", alg: bytes = SHA1_ALG, hash_len: int = 20) -> bytes:
    return seq(alg, tlv(0x04, b"\x11" * hash_len), tlv(0x04, b"\x22" * hash_len), tlv(0x02, serial))


def request(*certids: bytes, extensions: bytes | None = None) -> bytes:
    tbs = [seq(*(seq(c) for c in certids))]
    if extensions is not None:
        tbs.append(tlv(0xA2, seq(extensions)))
    return seq(seq(*tbs))


def tbs_request(*fields: bytes) -> bytes:
    """A request whose TBSRequest holds ``fields`` as given (version,
    requestorName, requestList, requestExtensions)."""
    return seq(seq(*fields))


def single(certid_der: bytes, extensions: bytes) -> bytes:
    """A requestList of one Request with singleRequestExtensions."""
    return seq(seq(certid_der, tlv(0xA0, seq(extensions))))


def nonce_ext(value: bytes, raw: bool = False) -> bytes:
    inner = value if raw else tlv(0x04, value)
    return seq(NONCE_OID, tlv(0x04, inner))


def attribute(oid: bytes, value: str) -> bytes:
    return seq(tlv(0x06, oid), tlv(0x0C, value.encode()))


COMMON_NAME, ORGANIZATION, COUNTRY = b"\x55\x04\x03", b"\x55\x04\x0a", b"\x55\x04\x06"


def signed(tbs: bytes, bits: bytes | None = None, certs: bytes | None = None) -> bytes:
    """``tbs`` with optionalSignature: an Ed25519 signature by REQUESTOR_KEY
    (or the BIT STRING ``bits``) and optionally ``certs``."""
    signature = bit_string(REQUESTOR_KEY.sign(tbs)) if bits is None else bits
    parts = [ED25519_ALG, signature] + ([] if certs is None else [tlv(0xA0, seq(certs))])
    return seq(tbs, tlv(0xA0, seq(*parts)))


GOOD = request(certid(), extensions=nonce_ext(b"\x42" * 16))
GOOD_TBS = seq(seq(seq(certid())), tlv(0xA2, seq(nonce_ext(b"\x42" * 16))))
# A requestorName as `openssl ocsp -signer` writes it: the signer's subject,
# a multi-valued RDN (its SET in DER order) among single ones.
REQUESTOR = tlv(
    0xA1,
    tlv(
        0xA4,
        seq(
            tlv(0x31, attribute(COUNTRY, "DE")),
            tlv(0x31, attribute(ORGANIZATION, "Example") + attribute(COMMON_NAME, "Requestor")),
        ),
    ),
)
# X.690 11.6 orders by the whole encoding: this 14-octet one after a 10-octet one.
UNSORTED_RDN = attribute(ORGANIZATION, "Example") + attribute(COMMON_NAME, "R")
# A certificate-shaped element: optionalSignature's certificates are not read.
CERTIFICATE = seq(seq(tlv(0x02, b"\x01")), ED25519_ALG, bit_string(b"\x00" * 64))

VALID = {
    "req-valid-sha1-nonce-built.der": GOOD,
    # RFC 9654 2.1: nonces of 1 to 128 octets are accepted.
    "req-valid-nonce-33-octets-built.der": request(certid(), extensions=nonce_ext(b"\x42" * 33)),
    "req-valid-nonce-128-octets-built.der": request(certid(), extensions=nonce_ext(b"\x42" * 128)),
    "req-valid-requestor-name-built.der": tbs_request(REQUESTOR, seq(seq(certid()))),
    "req-valid-signed-built.der": signed(
        seq(REQUESTOR, seq(seq(certid())), tlv(0xA2, seq(nonce_ext(b"\x42" * 16)))),
        certs=CERTIFICATE,
    ),
}

VECTORS = {
    # DER-level faults
    "req-invalid-truncated.der": GOOD[:-5],
    "req-invalid-length-overflow.der": b"\x30\x84\xff\xff\xff\xff" + GOOD[2:],
    "req-invalid-length-too-many-octets.der": b"\x30\x85\x00\x00\x00\x00"
    + bytes([len(GOOD) - 2])
    + GOOD[2:],
    "req-invalid-indefinite-length.der": b"\x30\x80" + GOOD[2:] + b"\x00\x00",
    "req-invalid-non-minimal-length.der": b"\x30\x81" + GOOD[1:],
    "req-invalid-trailing-bytes.der": GOOD + b"\x00",
    "req-invalid-wrong-outer-tag.der": b"\x31" + GOOD[1:],
    "req-invalid-empty.der": b"",
    # X.690 11.5: a DER encoding leaves out a component equal to its DEFAULT.
    "req-invalid-version-v1-encoded.der": tbs_request(
        tlv(0xA0, tlv(0x02, b"\x00")), seq(seq(certid()))
    ),
    "req-invalid-critical-false-encoded.der": request(
        certid(),
        extensions=seq(tlv(0x06, b"\x2a\x03\x04"), b"\x01\x01\x00", tlv(0x04, b"\x05\x00")),
    ),
    "req-invalid-single-extension-critical-false-encoded.der": tbs_request(
        single(certid(), seq(tlv(0x06, b"\x2a\x03\x04"), b"\x01\x01\x00", tlv(0x04, b"")))
    ),
    # X.690 8.19.2: subidentifiers in the fewest octets (no leading 0x80), and
    # complete; an OBJECT IDENTIFIER has at least one.
    "req-invalid-oid-padded-hash-algorithm.der": request(
        certid(alg=seq(tlv(0x06, bytes.fromhex("2b0e0302801a")), b"\x05\x00"))
    ),
    "req-invalid-oid-unterminated-hash-algorithm.der": request(
        certid(alg=seq(tlv(0x06, bytes.fromhex("2b0e03029a")), b"\x05\x00"))
    ),
    "req-invalid-oid-empty-hash-algorithm.der": request(
        certid(alg=seq(tlv(0x06, b""), b"\x05\x00"))
    ),
    "req-invalid-oid-padded-nonce.der": request(
        certid(),
        extensions=seq(
            tlv(0x06, bytes.fromhex("2b06010505073001" + "8002")),
            tlv(0x04, tlv(0x04, b"\x42" * 16)),
        ),
    ),
    "req-invalid-oid-padded-single-extension.der": tbs_request(
        single(certid(), seq(tlv(0x06, b"\x2a\x80\x03"), tlv(0x04, b"")))
    ),
    "req-invalid-oid-padded-signature-algorithm.der": seq(
        GOOD_TBS, tlv(0xA0, seq(seq(tlv(0x06, b"\x2b\x80\x70")), bit_string(b"\x00" * 64)))
    ),
    # requestorName [1] EXPLICIT GeneralName (RFC 6960 4.1.1, RFC 5280 4.2.1.6)
    "req-invalid-requestor-name-primitive.der": tbs_request(
        tlv(0x81, b"requestor@example.com"), seq(seq(certid()))
    ),
    "req-invalid-requestor-name-not-general-name.der": tbs_request(
        tlv(0xA1, tlv(0x0C, b"requestor")), seq(seq(certid()))
    ),
    "req-invalid-requestor-name-two-names.der": tbs_request(
        tlv(0xA1, tlv(0x82, b"a.example") + tlv(0x82, b"b.example")), seq(seq(certid()))
    ),
    "req-invalid-requestor-name-not-ia5.der": tbs_request(
        tlv(0xA1, tlv(0x82, "bücher.example".encode())), seq(seq(certid()))
    ),
    "req-invalid-requestor-name-unsorted-rdn.der": tbs_request(
        tlv(0xA1, tlv(0xA4, seq(tlv(0x31, UNSORTED_RDN)))),
        seq(seq(certid())),
    ),
    "req-invalid-requestor-name-registered-id-oid.der": tbs_request(
        tlv(0xA1, tlv(0x88, b"\x2a\x80\x03")), seq(seq(certid()))
    ),
    # optionalSignature [0] EXPLICIT Signature (RFC 6960 4.1.1)
    "req-invalid-signature-garbage.der": seq(GOOD_TBS, tlv(0xA0, b"\x01\x02")),
    "req-invalid-signature-not-sequence.der": seq(GOOD_TBS, tlv(0xA0, tlv(0x02, b"\x01"))),
    "req-invalid-signature-trailing.der": seq(
        GOOD_TBS, tlv(0xA0, seq(ED25519_ALG, bit_string(b"\x00" * 64)) + b"\x05\x00")
    ),
    # X.690 11.2.1: the unused bits of a DER BIT STRING are zero.
    "req-invalid-signature-bit-string-unused-bits.der": signed(
        GOOD_TBS, bits=tlv(0x03, b"\x01" + b"\x00" * 63 + b"\x01")
    ),
    # OCSP-level faults
    "req-invalid-empty-request-list.der": seq(seq(seq())),
    "req-invalid-too-many-certids.der": request(*[certid(bytes([i + 1])) for i in range(9)]),
    "req-invalid-serial-too-long.der": request(certid(b"\x01" * 21)),
    "req-invalid-serial-non-minimal.der": request(certid(b"\x00\x01")),
    "req-invalid-serial-empty.der": request(certid(b"")),
    "req-invalid-hash-length.der": request(certid(hash_len=19)),
    "req-invalid-sha256-with-sha1-length.der": request(certid(alg=SHA256_ALG, hash_len=20)),
    # X.690 8.8.2: NULL has no contents octets.
    "req-invalid-hash-null-with-content.der": request(
        certid(alg=seq(tlv(0x06, bytes.fromhex("2b0e03021a")), b"\x05\x01\x00"))
    ),
    # RFC 9654 2.1: 0 or more than 128 octets is malformedRequest.
    "req-invalid-nonce-too-long.der": request(certid(), extensions=nonce_ext(b"\x42" * 200)),
    "req-invalid-nonce-129-octets.der": request(certid(), extensions=nonce_ext(b"\x42" * 129)),
    "req-invalid-nonce-empty.der": request(certid(), extensions=nonce_ext(b"")),
    "req-invalid-nonce-not-octet-string.der": request(
        certid(), extensions=nonce_ext(b"\x42" * 16, raw=True)
    ),
    "req-invalid-duplicate-nonce.der": request(
        certid(), extensions=nonce_ext(b"\x01" * 8) + nonce_ext(b"\x02" * 8)
    ),
    # RFC 5280 4.2: one instance of an extension.
    "req-invalid-duplicate-extension.der": request(
        certid(),
        extensions=2 * seq(tlv(0x06, b"\x2a\x03\x04"), tlv(0x04, b"\x05\x00")),
    ),
    "req-invalid-unknown-critical-extension.der": request(
        certid(),
        extensions=seq(tlv(0x06, b"\x2a\x03\x04"), b"\x01\x01\xff", tlv(0x04, b"\x05\x00")),
    ),
    "req-invalid-bad-boolean.der": request(
        certid(),
        extensions=seq(tlv(0x06, b"\x2a\x03\x04"), b"\x01\x01\x01", tlv(0x04, b"\x05\x00")),
    ),
    "req-invalid-version-2.der": seq(seq(tlv(0xA0, tlv(0x02, b"\x01")), seq(seq(certid())))),
}

# Deeply nested SEQUENCEs where the TBSRequest should be: 2,000 levels.
deep = b""
for _ in range(2000):
    deep = seq(deep)
VECTORS["req-invalid-deep-nesting.der"] = seq(deep)

if __name__ == "__main__":
    for name, data in {**VECTORS, **VALID}.items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(VECTORS) + len(VALID)} vectors to {HERE}")
