"""The file format of blocklist imports and checks: compromised keys as PEM
public keys, certificates or certificate requests, or as the hex SHA-256 of
their DER SubjectPublicKeyInfo, one per line.

ASCII text, read line by line:

- a PEM block (RFC 7468): ``PUBLIC KEY`` (RFC 7468 13), ``RSA PUBLIC KEY``
  (PKCS#1), ``CERTIFICATE`` (its subject's key), ``CERTIFICATE REQUEST`` or
  ``NEW CERTIFICATE REQUEST`` (the key it asks for; the request's signature
  is not checked, a forged request names a compromised key all the same);
- 64 hex digits, in either case, optionally as 32 colon-separated pairs
  (``openssl dgst`` and ``sha256sum`` print the first form);
- a blank line, or a comment from ``#`` to the end of the line.

Anything else is an error naming its line, and the whole file is refused,
so an import lists all of a file's keys or none.
"""

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ca.blocklist import spki_sha256
from ca.errors import BadInputError

# Large enough for a million hashes (65 bytes a line).
MAX_FILE_BYTES = 128 * 1024 * 1024
MAX_ENTRIES = 1_000_000

_HEX = re.compile(r"[0-9a-fA-F]{64}")
_PAIRS = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){31}")
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_KINDS = {
    "PUBLIC KEY": "public key",
    "RSA PUBLIC KEY": "public key",
    "CERTIFICATE": "certificate",
    "CERTIFICATE REQUEST": "certificate request",
    "NEW CERTIFICATE REQUEST": "certificate request",
}


@dataclass(frozen=True)
class BlocklistEntry:
    line: int  # where it starts (1-based)
    spki_sha256: str  # lowercase hex
    kind: str  # "hash", "public key", "certificate", "certificate request"


def parse_blocklist_file(data: bytes) -> list[BlocklistEntry]:
    """Every key in ``data``, in file order; BadInputError naming the first
    bad line, or for a file with no key at all."""
    if len(data) > MAX_FILE_BYTES:
        raise BadInputError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInputError(f"line {line}: not ASCII text") from None
    lines = text.splitlines()
    entries: list[BlocklistEntry] = []
    index = 0
    while index < len(lines):
        number = index + 1
        content = lines[index].partition("#")[0].strip()
        index += 1
        if not content:
            continue
        begin = _BEGIN.fullmatch(content)
        if begin:
            label = begin.group(1)
            end = f"-----END {label}-----"
            block = [content]
            while index < len(lines) and lines[index].strip() != end:
                if _BEGIN.fullmatch(lines[index].strip()):
                    break
                block.append(lines[index].strip())
                index += 1
            if index == len(lines) or lines[index].strip() != end:
                raise BadInputError(f"line {number}: the {label} block has no {end} line")
            block.append(end)
            index += 1
            entries.append(_pem_entry(label, "\n".join(block).encode() + b"\n", number))
        elif content.startswith("-----END "):
            raise BadInputError(f"line {number}: an END line without its BEGIN line")
        elif _HEX.fullmatch(content) or _PAIRS.fullmatch(content):
            entries.append(BlocklistEntry(number, content.replace(":", "").lower(), "hash"))
        else:
            raise BadInputError(
                f"line {number}: neither a SHA-256 hash (64 hex digits), a PEM block nor "
                "a comment (#)"
            )
        if len(entries) > MAX_ENTRIES:
            raise BadInputError(f"line {number}: more than {MAX_ENTRIES} keys in one file")
    if not entries:
        raise BadInputError("the file holds no key (PEM block or SHA-256 hash)")
    return entries


def _pem_entry(label: str, block: bytes, number: int) -> BlocklistEntry:
    kind = _KINDS.get(label)
    if kind is None:
        advice = " (give its public key: openssl pkey -pubout)" if "PRIVATE" in label else ""
        raise BadInputError(
            f"line {number}: a {label} block is not a public key, certificate or "
            f"certificate request{advice}"
        )
    try:
        if kind == "public key":
            public_key = serialization.load_pem_public_key(block)
        elif kind == "certificate":
            public_key = x509.load_pem_x509_certificate(block).public_key()
        else:
            public_key = x509.load_pem_x509_csr(block).public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadInputError(f"line {number}: the {kind} cannot be read: {exc}") from None
    return BlocklistEntry(number, spki_sha256(public_key), kind)
