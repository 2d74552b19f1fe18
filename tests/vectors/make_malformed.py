"""Write the malformed OCSP request vectors (req-invalid-*.der).

Each is built from the parts of a valid request so that exactly one thing is
wrong with it, the thing its name says. Run from the repository root:
    python -m tests.vectors.make_malformed
"""

from pathlib import Path

from common.der import sequence as seq
from common.der import tlv

HERE = Path(__file__).resolve().parent
SHA1_ALG = bytes.fromhex("300906052b0e03021a0500")
SHA256_ALG = bytes.fromhex("300d06096086480165030402010500")
NONCE_OID = bytes.fromhex("06092b0601050507300102")


def certid(serial: bytes = b"\x01\x02\x03", alg: bytes = SHA1_ALG, hash_len: int = 20) -> bytes:
    return seq(alg, tlv(0x04, b"\x11" * hash_len), tlv(0x04, b"\x22" * hash_len), tlv(0x02, serial))


def request(*certids: bytes, extensions: bytes | None = None) -> bytes:
    tbs = [seq(*(seq(c) for c in certids))]
    if extensions is not None:
        tbs.append(tlv(0xA2, seq(extensions)))
    return seq(seq(*tbs))


def nonce_ext(value: bytes, raw: bool = False) -> bytes:
    inner = value if raw else tlv(0x04, value)
    return seq(NONCE_OID, tlv(0x04, inner))


GOOD = request(certid(), extensions=nonce_ext(b"\x42" * 16))

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
    # OCSP-level faults
    "req-invalid-empty-request-list.der": seq(seq(seq())),
    "req-invalid-too-many-certids.der": request(*[certid(bytes([i + 1])) for i in range(9)]),
    "req-invalid-serial-too-long.der": request(certid(b"\x01" * 21)),
    "req-invalid-serial-non-minimal.der": request(certid(b"\x00\x01")),
    "req-invalid-serial-empty.der": request(certid(b"")),
    "req-invalid-hash-length.der": request(certid(hash_len=19)),
    "req-invalid-sha256-with-sha1-length.der": request(certid(alg=SHA256_ALG, hash_len=20)),
    "req-invalid-nonce-too-long.der": request(certid(), extensions=nonce_ext(b"\x42" * 33)),
    "req-invalid-nonce-empty.der": request(certid(), extensions=nonce_ext(b"")),
    "req-invalid-nonce-not-octet-string.der": request(
        certid(), extensions=nonce_ext(b"\x42" * 16, raw=True)
    ),
    "req-invalid-duplicate-nonce.der": request(
        certid(), extensions=nonce_ext(b"\x01" * 8) + nonce_ext(b"\x02" * 8)
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
    for name, data in VECTORS.items():
        (HERE / name).write_bytes(data)
    (HERE / "req-valid-sha1-nonce-built.der").write_bytes(GOOD)
    print(f"wrote {len(VECTORS) + 1} vectors to {HERE}")
