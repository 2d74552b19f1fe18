"""Importing an OpenSSL CA database (``index.txt``) so an existing
``openssl ocsp -index`` responder can be replaced by this VA.

Each line has six tab-separated fields (OpenSSL apps/ca.c): status (V valid,
R revoked, E expired), expiry time, revocation time[,reason[,extra]] (empty
unless revoked), serial in hex, file name, subject.
"""

import base64
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from common.der import integer_content
from common.pkcs8 import encrypt_private_key
from common.privatedir import make_private_dir
from va.errors import IndexError_
from va.policy import IssuerPolicy
from va.signing import Signer, load_key
from va.store import GOOD, HOLD, REVOKED, StatusRecord, VAStore

# OpenSSL's names (crypto/x509/v3_crld.c reason strings as apps/ca.c writes them).
REASONS = {
    "unspecified": 0,
    "keycompromise": 1,
    "cacompromise": 2,
    "affiliationchanged": 3,
    "superseded": 4,
    "cessationofoperation": 5,
    "certificatehold": 6,
    "removefromcrl": 8,
}


@dataclass(frozen=True)
class IndexEntry:
    serial: int
    record: StatusRecord
    subject: str


def _time(text: str, line: int) -> int:
    epoch = _epoch(text)
    if epoch is None:
        raise IndexError_(f"line {line}: {text!r} is not a UTCTime or GeneralizedTime")
    return epoch


_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


@functools.lru_cache(maxsize=65536)  # index files repeat their times a lot
def _epoch(text: str) -> int | None:
    """YYMMDDHHMMSSZ (UTCTime, RFC 5280 4.1.2.5.1: 50-99 are 19xx) or
    YYYYMMDDHHMMSSZ (GeneralizedTime), as OpenSSL writes them; None if not.
    Digits are read directly: time.strptime cost 10-20 us a field."""
    if not text.endswith("Z") or not text[:-1].isdigit() or not text[:-1].isascii():
        return None
    if len(text) == 13:
        year = int(text[0:2])
        year += 1900 if year >= 50 else 2000
        rest = text[2:12]
    elif len(text) == 15:
        year, rest = int(text[0:4]), text[4:14]
    else:
        return None
    try:
        moment = datetime(
            year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), int(rest[8:10])
        )
    except ValueError:  # no such date or time
        return None
    return (moment - _EPOCH) // _SECOND


def parse_index(text: str) -> Iterator[IndexEntry]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if len(fields) != 6:
            raise IndexError_(
                f"line {number}: expected 6 tab-separated fields, found {len(fields)}"
            )
        status, expires, revocation, serial_hex, _file, subject = fields
        not_after = _time(expires, number)
        try:
            serial = int(serial_hex, 16)
        except ValueError:
            raise IndexError_(f"line {number}: serial {serial_hex!r} is not hexadecimal") from None
        if status in ("V", "E"):
            if revocation:
                raise IndexError_(f"line {number}: status {status} with a revocation time")
            record = StatusRecord(GOOD, 0, -1, not_after)
        elif status == "R":
            parts = revocation.split(",")
            revoked_at = _time(parts[0], number)
            reason = -1
            if len(parts) > 1:
                try:
                    reason = REASONS[parts[1].lower()]
                except KeyError:
                    raise IndexError_(f"line {number}: unknown reason {parts[1]!r}") from None
            state = HOLD if reason == 6 else REVOKED
            record = StatusRecord(state, revoked_at, reason, not_after)
        else:
            raise IndexError_(f"line {number}: unknown status {status!r} (V, R or E)")
        yield IndexEntry(serial, record, subject)


def import_index(
    store: VAStore,
    key_dir: Path,
    *,
    name: str,
    issuer: x509.Certificate,
    responder: x509.Certificate,
    responder_key: Path,
    key_passphrase: bytes | None,
    va_passphrase: bytes,
    index_text: str,
    policy: IssuerPolicy,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Register the issuer with its responder and load every status.

    The responder key is checked against its certificate and stored in
    ``key_dir`` encrypted with ``va_passphrase`` (mode 0600). Nothing is written
    unless the whole index parses. Returns the number of statuses.
    """
    count = sum(1 for _ in parse_index(index_text))  # every line checked first
    private_key = load_key(
        responder_key.read_bytes(), key_passphrase, f"responder key {responder_key}"
    )
    Signer(private_key, responder)  # refuses a key that does not match the certificate
    delegated = responder.public_bytes(serialization.Encoding.DER) != issuer.public_bytes(
        serialization.Encoding.DER
    )
    existing = store.issuers()
    issuer_id = next(
        (i for i, r in existing.items() if r["name"] == name), max(existing, default=0) + 1
    )
    make_private_dir(key_dir)
    key_file = f"index-{name}.key.pem"
    # Re-encrypted under the VA's passphrase, which is what it starts with.
    pem = encrypt_private_key(private_key, va_passphrase)
    fd = os.open(key_dir / key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    der = lambda cert: base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()  # noqa: E731
    store.put_issuer(
        issuer_id,
        {
            "name": name,
            "certificate": der(issuer),
            "responder_certificate": der(responder) if delegated else None,
            "responder_key": key_file,
            **policy.record(),
        },
    )
    # In batches, so ten million lines never become ten million objects at
    # once; each batch is one transaction (importing again is idempotent).
    batch: list = []
    for entry in parse_index(index_text):
        batch.append((issuer_id, integer_content(entry.serial), entry.record))
        if len(batch) == IMPORT_BATCH:
            _apply_batch(store, batch)
            progress(len(batch))
            batch = []
    _apply_batch(store, batch)
    progress(len(batch))
    return count


IMPORT_BATCH = 100_000


def _apply_batch(store: VAStore, statuses: list) -> None:
    # New statuses invalidate any pre-signed answer for those serials (put_status).
    store.apply(statuses=statuses)
