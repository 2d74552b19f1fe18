"""Answering OCSP requests (RFC 6960, RFC 5019 profile) from the LMDB store.

Sources, in the order a request meets them (after Boulder's responder):
1. the request parser (native core); anything malformed gets malformedRequest;
2. the issuer filter: CertIDs must name an issuer this VA serves, else
   unauthorized;
3. pre-signed responses: one CertID, no nonce to echo, a stored response
   still inside its validity: its bytes, untouched;
4. the live signer: build ResponseData from precomputed pieces and sign it.
"""

import base64
import functools
import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from va import fastocsp as core
from va._fastocsp_py import _tlv  # DER TLV; used once per issuer at start-up
from va.errors import OCSPCoreError
from va.signing import Signer, load_key, spki_key_hash, subject_der
from va.store import ALGORITHM_BYTES, GOOD, HOLD, StatusRecord, StoredResponse, VAStore

HASH_NAMES = {
    core.HASH_SHA1: "sha1",
    core.HASH_SHA256: "sha256",
    core.HASH_SHA384: "sha384",
    core.HASH_SHA512: "sha512",
}
CERTIFICATE_HOLD = 6
# RFC 6960 2.2: a serial that was never issued may be reported "revoked" with
# reason certificateHold and revocationTime 1970-01-01T00:00:00Z, plus the
# extended revoked definition extension (4.4.8). CA/B Forum BR 4.9.10 forbids
# "good" for unissued serials; this is the default.
UNISSUED_POLICIES = ("revoked", "unknown", "unauthorized")
NONCE_POLICIES = ("echo", "ignore")
_WINDOW_UNPACK = struct.Struct(">qq").unpack_from  # this_update, next_update (va/store.py)
_STATUS_UNPACK = struct.Struct(">Bqbq").unpack  # StatusRecord as packed (va/store.py)
# CA/B Forum BR 4.9.10: OCSP responses valid at least 8 hours, at most 10 days.
MIN_VALIDITY, MAX_VALIDITY = 8 * 3600, 10 * 86400
STATUS_CACHE_ENTRIES = 65536  # about 150 bytes each; emptied when full


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class IssuerEntry:
    """Everything needed to answer for one issuing CA, computed once."""

    id: int
    name: str
    certificate: x509.Certificate
    signer: Signer
    delegated: bool
    responder_id_by: str = "key"
    nonce_policy: str = "echo"
    unissued: str = "revoked"
    validity: int = 4 * 86400
    hashes: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    responder_id: bytes = b""
    certs: bytes = b""
    key_prefix: bytes = b""
    # (encoded CertStatus, extensions) answered for a serial the VA has no status for
    unissued_status: tuple[bytes, bytes] = (b"", b"")

    def __post_init__(self):
        if self.nonce_policy not in NONCE_POLICIES:
            raise ValueError(f"issuer {self.name}: nonce policy must be one of {NONCE_POLICIES}")
        if self.unissued not in UNISSUED_POLICIES:
            raise ValueError(
                f"issuer {self.name}: unissued policy must be one of {UNISSUED_POLICIES}"
            )
        if not MIN_VALIDITY <= self.validity <= MAX_VALIDITY:
            raise ValueError(
                f"issuer {self.name}: response validity must be 8 hours to 10 days (BR 4.9.10)"
            )
        name = subject_der(self.certificate)
        for algorithm, hash_name in HASH_NAMES.items():
            self.hashes[algorithm] = (
                hashlib.new(hash_name, name).digest(),
                spki_key_hash(self.certificate, hash_name),
            )
        responder = self.signer.certificate
        if self.responder_id_by == "name":
            self.responder_id = _tlv(0xA1, subject_der(responder))
        else:  # byKey: SHA-1 of the responder's public key (RFC 6960 4.2.1)
            self.responder_id = _tlv(0xA2, _tlv(0x04, spki_key_hash(responder, "sha1")))
        # A delegated responder's certificate travels in the response
        # (RFC 6960 4.2.2.2); a CA signing for itself needs none.
        self.certs = _der(responder) if self.delegated else b""
        self.key_prefix = self.id.to_bytes(4, "big")  # LMDB key prefix (va/store.py)
        self.unissued_status = (
            core.encode_cert_status(*_unissued_status(self)),
            b"" if self.unissued == "unknown" else core.EXTENDED_REVOKE_EXTENSION,
        )


@dataclass(slots=True)
class Answer:
    """What to send: ``body`` always; the validity window for caching headers
    when the response is cacheable (no nonce, successful)."""

    body: bytes
    kind: str  # presigned | signed | error
    this_update: int = 0
    next_update: int = 0
    cacheable: bool = False


class SigningJob:
    """A response that needs a fresh signature; ``finish`` may run in a thread.

    The server fills ``answer`` once signed and then calls ``waiter`` (the
    connection's flush); ``started``, ``etag`` and ``keep_alive`` belong to
    the request."""

    __slots__ = (
        "answer",
        "cacheable",
        "entry",
        "etag",
        "keep_alive",
        "next_update",
        "started",
        "tbs",
        "this_update",
        "waiter",
    )

    def __init__(self, entry, tbs: bytes, this_update: int, next_update: int, cacheable: bool):
        self.entry = entry
        self.tbs = tbs
        self.this_update = this_update
        self.next_update = next_update
        self.cacheable = cacheable
        self.answer: Answer | None = None
        self.waiter: Callable[[], None] | None = None
        self.started = 0.0
        self.etag: bytes | None = None
        self.keep_alive = True

    def finish(self) -> Answer:
        """Sign this job alone (``finish_all`` of one) and return its answer;
        a signer's failure is raised."""
        finish_all([self])
        return self.answer


def finish_all(jobs: list[SigningJob]) -> None:
    """Fill each job's ``answer``: the signatures of one issuer's signer made
    in one call, back to back (the key's tables stay in the core's cache), then
    wrapped. A job whose signer fails gets INTERNAL_ERROR, and the failure
    is raised after every job has an answer."""
    by_issuer: dict[int, list[SigningJob]] = {}
    for job in jobs:
        group = by_issuer.get(id(job.entry))
        if group is None:
            by_issuer[id(job.entry)] = [job]
        else:
            group.append(job)
    failure = None
    for group in by_issuer.values():
        try:
            entry = group[0].entry
            tbs_list = [job.tbs for job in group]
            signatures = entry.signer.sign_many(tbs_list)
            bodies = core.encode_ocsp_responses(
                tbs_list, entry.signer.algorithm_identifier, signatures, entry.certs
            )
            for job, body in zip(group, bodies, strict=True):
                job.answer = Answer(body, "signed", job.this_update, job.next_update, job.cacheable)
        except Exception as exc:
            failure = exc
            for job in group:
                if job.answer is None:
                    job.answer = Answer(core.INTERNAL_ERROR, "error")
    if failure is not None:
        raise failure


class Responder:
    def __init__(
        self,
        store: VAStore,
        issuers: list[IssuerEntry],
        *,
        clock: Callable[[], float] = time.time,
        max_certids: int = core.DEFAULT_MAX_CERTIDS,
    ):
        self.store = store
        self.env = store.env
        self.responses_db = store.responses_db
        self.status_db = store.status_db
        self.clock = clock
        self.max_certids = max_certids
        # Encoded statuses by LMDB key, for fresh answers: None (every answer
        # reads the store) unless the owner empties it on every committed
        # write, as va.server.Server does.
        self.status_cache: dict[bytes, tuple[bytes, bytes] | tuple[()]] | None = None
        self.issuers = {entry.id: entry for entry in issuers}
        self.index: dict[tuple[int, bytes, bytes], IssuerEntry] = {}
        for entry in issuers:
            for algorithm, (name_hash, key_hash) in entry.hashes.items():
                self.index[(algorithm, name_hash, key_hash)] = entry

    def generation(self) -> int:
        """The id of the store's last committed write transaction."""
        return self.env.info()["last_txnid"]

    def _presigned(self, entry: IssuerEntry, algorithm: int, serial: bytes, now: int):
        """The pre-signed Answer for one serial, if one is stored and valid:
        one read, its bytes untouched (the hot path)."""
        txn = self.env.begin(buffers=True)
        try:
            value = txn.get(
                entry.key_prefix + ALGORITHM_BYTES[algorithm] + serial, db=self.responses_db
            )
            if value is not None:
                this_update, next_update = _WINDOW_UNPACK(value)
                if this_update <= now < next_update:
                    return Answer(bytes(value[16:]), "presigned", this_update, next_update, True)
            return None
        finally:
            txn.abort()

    def _status(self, entry: IssuerEntry, serial: bytes) -> tuple[bytes, bytes] | None:
        """(encoded CertStatus, response extensions) for one serial; None when
        its issuer answers unauthorized for serials it does not know. Kept in
        ``status_cache`` when the server gives the responder one (the server
        empties it whenever the store commits a write)."""
        key = entry.key_prefix + serial
        cache = self.status_cache
        if cache is not None:
            found = cache.get(key)
            if found is not None:
                return found or None
        txn = self.env.begin(buffers=True)
        try:
            value = txn.get(key, db=self.status_db)
            if value is not None:
                found = (_encoded_status(value), b"")
            elif entry.unissued == "unauthorized":
                found = ()
            else:
                found = entry.unissued_status
        finally:
            txn.abort()
        if cache is not None:
            if len(cache) >= STATUS_CACHE_ENTRIES:
                cache.clear()
            cache[key] = found
        return found or None

    def answer(self, request: bytes) -> Answer | SigningJob:
        """A ready answer, or the signing job the caller must finish."""
        try:
            certids, nonce = core.parse_ocsp_request(request, self.max_certids)
        except OCSPCoreError:
            return Answer(core.MALFORMED_REQUEST, "error")
        algorithm, name_hash, key_hash, serial, certid_der = certids[0]
        entry = self.index.get((algorithm, name_hash, key_hash))
        if entry is None:
            return Answer(core.UNAUTHORIZED, "error")
        if len(certids) > 1:
            for other in certids[1:]:
                if self.index.get(other[:3]) is not entry:
                    # Unknown issuer, or CertIDs of several issuers in one request.
                    return Answer(core.UNAUTHORIZED, "error")
        if nonce is not None and entry.nonce_policy != "echo":
            nonce = None
        now = int(self.clock())
        next_update = now + entry.validity
        if len(certids) == 1:
            if nonce is None:
                stored = self._presigned(entry, algorithm, serial, now)
                if stored is not None:
                    return stored
            # One CertID signed fresh (a nonce to echo, or nothing stored):
            # its ResponseData in one native call.
            status = self._status(entry, serial)
            if status is None:
                return Answer(core.UNAUTHORIZED, "error")
            tbs = core.encode_fresh_response_data(
                entry.responder_id, now, certid_der, status[0], next_update, nonce, status[1]
            )
            return SigningJob(entry, tbs, now, next_update, nonce is None)
        # No context-manager generator and no StatusRecord: the packed values
        # are read in place.
        txn = self.env.begin(buffers=True)
        try:
            singles = []
            extensions = b""
            status_db, prefix = self.status_db, entry.key_prefix
            encode_single = core.encode_single_response
            for _algorithm, _, _, serial, certid_der in certids:
                value = txn.get(prefix + serial, db=status_db)
                if value is not None:
                    status, when, reason, _ = _STATUS_UNPACK(value)
                    cert_status = _GOOD if status == GOOD else _cert_status(status, when, reason)
                elif entry.unissued == "unauthorized":
                    return Answer(core.UNAUTHORIZED, "error")
                else:
                    cert_status = _unissued_status(entry)
                    if entry.unissued != "unknown":
                        extensions = core.EXTENDED_REVOKE_EXTENSION
                singles.append(encode_single(certid_der, *cert_status, now, next_update))
        finally:
            txn.abort()
        if nonce is not None:
            extensions = core.encode_nonce_extension(nonce) + extensions
        tbs = core.encode_response_data(entry.responder_id, now, singles, extensions)
        return SigningJob(entry, tbs, now, next_update, nonce is None)


def _encoded_status(value) -> bytes:
    """The encoded CertStatus of a packed status record (va/store.py)."""
    status, when, reason, _ = _STATUS_UNPACK(value)
    if status == GOOD:
        return _GOOD_STATUS
    return core.encode_cert_status(*_cert_status(status, when, reason))


def _unissued_status(entry: IssuerEntry) -> tuple[int, int, int]:
    """(certStatus, revocationTime, revocationReason) for a serial the VA has
    no status for: unknown, or revoked with reason certificateHold at the
    epoch (RFC 6960 2.2; the caller adds the extended revoked definition
    extension)."""
    if entry.unissued == "unknown":
        return core.STATUS_UNKNOWN, 0, core.NO_REASON
    return core.STATUS_REVOKED, 0, CERTIFICATE_HOLD


def _cert_status(status: int, revoked_at: int, reason: int) -> tuple[int, int, int]:
    """(certStatus, revocationTime, revocationReason) of a stored status."""
    if status == GOOD:
        return core.STATUS_GOOD, 0, core.NO_REASON
    reason = CERTIFICATE_HOLD if status == HOLD else reason
    # BR 7.2.2: unspecified (0) is expressed by leaving the reason out.
    return core.STATUS_REVOKED, revoked_at, core.NO_REASON if reason == 0 else reason


_GOOD = (core.STATUS_GOOD, 0, core.NO_REASON)
_GOOD_STATUS = core.encode_cert_status(*_GOOD)


def response_data(
    entry: IssuerEntry, algorithm: int, serial: bytes, record: StatusRecord | None, now: int
) -> bytes:
    """The ResponseData (the signed part) of a pre-signed response for one serial."""
    return response_data_many(entry, algorithm, [serial], [record], now)[0]


def response_data_many(
    entry: IssuerEntry,
    algorithm: int,
    serials: list[bytes],
    records: list[StatusRecord | None],
    now: int,
) -> list[bytes]:
    """The ResponseData of a pre-signed response for each serial (record:
    its status, None for a serial the VA does not know), one native call."""
    cert_statuses, extensions = [], []
    for record in records:
        if record is None:
            cert_statuses.append(entry.unissued_status[0])
            extensions.append(entry.unissued_status[1])
            continue
        if record.status == GOOD:
            cert_statuses.append(_GOOD_STATUS)
        else:
            status = _cert_status(record.status, record.revoked_at, record.reason)
            cert_statuses.append(core.encode_cert_status(*status))
        extensions.append(b"")
    name_hash, key_hash = entry.hashes[algorithm]
    return core.encode_response_data_many(
        entry.responder_id,
        now,
        algorithm,
        name_hash,
        key_hash,
        serials,
        cert_statuses,
        now,
        now + entry.validity,
        extensions,
    )


def presign(
    entry: IssuerEntry, algorithm: int, serial: bytes, record: StatusRecord | None, now: int
) -> StoredResponse:
    """A complete signed response for one serial, to store and serve as is."""
    return presign_many(entry, [response_data(entry, algorithm, serial, record, now)], now)[0]


def presign_many(entry: IssuerEntry, tbs_list: list[bytes], now: int) -> list[StoredResponse]:
    """Sign ResponseData values back to back, then wrap each: in a row the
    key's precomputed tables stay in the core's cache (a P-256 signature
    between other work costs up to 15% more)."""
    signer = entry.signer
    signatures = signer.sign_many(tbs_list)
    bodies = core.encode_ocsp_responses(
        tbs_list, signer.algorithm_identifier, signatures, entry.certs
    )
    next_update = now + entry.validity
    # tuple.__new__ without the NamedTuple's Python-level __new__ (0.3 µs each)
    stored = functools.partial(tuple.__new__, StoredResponse)
    return [stored((now, next_update, body)) for body in bodies]


def load_issuers(store: VAStore, key_dir: Path, passphrase: bytes | None) -> list[IssuerEntry]:
    entries = []
    for issuer_id, record in sorted(store.issuers().items()):
        certificate = x509.load_der_x509_certificate(base64.b64decode(record["certificate"]))
        delegated = bool(record.get("responder_certificate"))
        responder = (
            x509.load_der_x509_certificate(base64.b64decode(record["responder_certificate"]))
            if delegated
            else certificate
        )
        key_path = key_dir / record["responder_key"]
        key = load_key(key_path.read_bytes(), passphrase, f"responder key {key_path}")
        entries.append(
            IssuerEntry(
                id=issuer_id,
                name=record["name"],
                certificate=certificate,
                signer=Signer(key, responder),
                delegated=delegated,
                responder_id_by=record.get("responder_id", "key"),
                nonce_policy=record.get("nonce_policy", "echo"),
                unissued=record.get("unissued", "revoked"),
                validity=record.get("validity_seconds", 4 * 86400),
            )
        )
    return entries
