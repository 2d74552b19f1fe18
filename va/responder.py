"""Answering OCSP requests (RFC 6960, in the lightweight profile of RFC 9919)
from the VA's store.

A request is parsed first (the native core; anything malformed gets
malformedRequest), then meets a chain of sources, each answering it or
handing it on (after Boulder's responder: a filter of issuer hashes, then a
cache, then the live signer):

1. ``IssuerFilter``: every CertID must name the one issuer it asks about,
   and that issuer must be one this VA serves, else unauthorized; the
   issuer's nonce policy and the nonce lengths echoed (RFC 9654) apply;
2. ``PresignedSource``: one CertID, no nonce to echo, a stored response
   inside its validity: its bytes, untouched;
3. ``LiveSigner``: the ResponseData built from precomputed pieces, returned
   as a ``SigningJob`` for the caller to sign (the worker signs a loop
   iteration's jobs together, ``finish_all``).

Each source's ``answer(query, now)`` takes the parsed request and the time
in seconds since the epoch; nothing here reads a clock.
"""

from collections.abc import Iterable

from va import fastocsp as core
from va.errors import OCSPCoreError
from va.issuers import CERTIFICATE_HOLD, IssuerEntry, IssuerIndex
from va.store import GOOD, HOLD, StoreReader

PRESIGNED, SIGNED, ERROR = "presigned", "signed", "error"
STATUS_CACHE_ENTRIES = 65536  # about 150 bytes each; emptied when full


class Answer:
    """What to send: ``body`` always; the validity window for the caching
    headers when the response is ``cacheable`` (no nonce echoed, successful).
    ``repeatable``: the request could come again byte for byte (it carried
    no nonce), so its answer may be kept by request (va/worker.py)."""

    __slots__ = ("body", "cacheable", "kind", "next_update", "repeatable", "this_update")

    def __init__(
        self,
        body: bytes,
        kind: str,
        this_update: int = 0,
        next_update: int = 0,
        cacheable: bool = False,
        repeatable: bool = False,
    ):
        self.body = body
        self.kind = kind  # PRESIGNED, SIGNED or ERROR
        self.this_update = this_update
        self.next_update = next_update
        self.cacheable = cacheable
        self.repeatable = repeatable

    def __repr__(self) -> str:
        return f"Answer({self.kind}, {len(self.body)} bytes)"


# The unsigned answers (RFC 6960 4.2.1 OCSPResponseStatus), made once.
MALFORMED = Answer(core.MALFORMED_REQUEST, ERROR)
UNAUTHORIZED = Answer(core.UNAUTHORIZED, ERROR)
TRY_LATER = Answer(core.TRY_LATER, ERROR)
INTERNAL_ERROR = Answer(core.INTERNAL_ERROR, ERROR)


class SigningJob:
    """A response that needs a fresh signature: its ResponseData, the issuer
    whose key signs it, and the window its answer will carry. ``answer`` is
    None until ``finish_all`` has signed it."""

    __slots__ = ("answer", "cacheable", "entry", "next_update", "tbs", "this_update")

    def __init__(self, entry, tbs: bytes, this_update: int, next_update: int, cacheable: bool):
        self.entry = entry
        self.tbs = tbs
        self.this_update = this_update
        self.next_update = next_update
        self.cacheable = cacheable
        self.answer: Answer | None = None


def finish_all(jobs: list[SigningJob]) -> None:
    """Fill each job's ``answer``: the signatures of one issuer's signer made
    in one call, back to back (the key's tables stay in the core's cache), then
    wrapped. A job whose signer fails answers internalError, and the failure
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
                job.answer = Answer(body, SIGNED, job.this_update, job.next_update, job.cacheable)
        except Exception as exc:
            failure = exc
            for job in group:
                if job.answer is None:
                    job.answer = INTERNAL_ERROR
    if failure is not None:
        raise failure


# RFC 9654 2.1: "An OCSP responder that supports the Nonce extension MUST
# accept Nonce lengths of at least 16 octets and up to and including 32
# octets. A responder MAY choose to respond without the Nonce extension for
# requests in which the length of the Nonce is in between 1 octet and 15
# octets or 33 octets and 128 octets." (0 and over 128: malformedRequest, in
# the parser.) Nonces of 16 to 32 octets are echoed in a fresh signature;
# those of 1 to 15 and 33 to 128 are answered without one, as a request
# without a nonce is: from the pre-signed responses.
ECHOED_NONCE_OCTETS = range(16, 33)


def nonce_octets(nonce: bytes) -> int:
    """The length of the Nonce in ``nonce``, the extnValue the parser returns
    (an OCTET STRING of 1 to 128 octets: a one-octet length, or 0x81 and one)."""
    return nonce[1] if nonce[1] < 0x80 else nonce[2]


class Query:
    """A parsed request on its way through the sources."""

    __slots__ = ("certids", "issuer", "nonce", "repeatable")

    def __init__(self, certids: tuple, nonce: bytes | None):
        # (hash algorithm, issuerNameHash, issuerKeyHash, serial, CertID DER) each
        self.certids = certids
        self.nonce = nonce  # the nonce extension to echo, or None
        # A request with a nonce, echoed or not, is not sent twice.
        self.repeatable = nonce is None
        self.issuer: IssuerEntry | None = None  # set by IssuerFilter


class LiveSigner:
    """The last source: a fresh ResponseData for every request that reaches
    it, from the stored statuses (kept per worker in ``statuses`` when the
    owner empties them on every committed write, ``keep_statuses``)."""

    def __init__(self, reader: StoreReader, keep_statuses: bool = False):
        self.reader = reader
        # prefix + serial -> (encoded CertStatus, extensions), or () where
        # the serial is unknown and its issuer answers unauthorized.
        self.statuses: dict[bytes, tuple] | None = {} if keep_statuses else None

    def forget(self) -> None:
        if self.statuses is not None:
            self.statuses.clear()

    def answer(self, query: Query, now: int) -> Answer | SigningJob:
        entry = query.issuer
        nonce = query.nonce
        next_update = now + entry.validity
        certids = query.certids
        if len(certids) == 1:
            status = self._status(entry, certids[0][3])
            if status is None:
                return UNAUTHORIZED
            # One CertID: its ResponseData in one native call.
            tbs = core.encode_fresh_response_data(
                entry.responder_id, now, certids[0][4], status[0], next_update, nonce, status[1]
            )
            return SigningJob(entry, tbs, now, next_update, nonce is None)
        records = self.reader.statuses(entry.key_prefix, [certid[3] for certid in certids])
        singles = []
        extensions = b""
        encode_single = core.encode_single_response
        for certid, record in zip(certids, records, strict=True):
            if record is not None:
                status = record_status(record)
            elif entry.unissued_status is None:
                return UNAUTHORIZED
            else:
                status = entry.unissued_fields
                extensions = entry.unissued_status[1]
            singles.append(encode_single(certid[4], *status, now, next_update))
        if nonce is not None:
            extensions = core.encode_nonce_extension(nonce) + extensions
        tbs = core.encode_response_data(entry.responder_id, now, singles, extensions)
        return SigningJob(entry, tbs, now, next_update, nonce is None)

    def _status(self, entry: IssuerEntry, serial: bytes) -> tuple[bytes, bytes] | None:
        """(encoded CertStatus, response extensions) for one serial; None when
        its issuer answers unauthorized for serials it does not know."""
        key = entry.key_prefix + serial
        cache = self.statuses
        if cache is not None:
            found = cache.get(key)
            if found is not None:
                return found or None
        record = self.reader.status(entry.key_prefix, serial)
        found = (encoded_status(record), b"") if record is not None else entry.unissued_status or ()
        if cache is not None:
            if len(cache) >= STATUS_CACHE_ENTRIES:
                cache.clear()
            cache[key] = found
        return found or None


class PresignedSource:
    """One CertID and no nonce to echo: the stored response, if one is valid."""

    def __init__(self, reader: StoreReader, then: LiveSigner):
        self.reader = reader
        self.then = then

    def answer(self, query: Query, now: int) -> Answer | SigningJob:
        if query.nonce is None and len(query.certids) == 1:
            certid = query.certids[0]
            found = self.reader.presigned(query.issuer.key_prefix, certid[0], certid[3], now)
            if found is not None:
                return Answer(found[2], PRESIGNED, found[0], found[1], True, query.repeatable)
        return self.then.answer(query, now)


class IssuerFilter:
    """The first source: CertIDs must name an issuer this VA serves, all the
    same one (else unauthorized, RFC 6960 2.3); a nonce is echoed when the
    issuer's nonce policy says so and its length is one of
    ``ECHOED_NONCE_OCTETS``, else dropped (RFC 9654 2.1, RFC 9919)."""

    def __init__(self, issuers: IssuerIndex, then: PresignedSource):
        self.by_hashes = issuers.by_hashes
        self.then = then

    def answer(self, query: Query, now: int) -> Answer | SigningJob:
        certids = query.certids
        by_hashes = self.by_hashes
        first = certids[0]
        entry = by_hashes.get((first[0], first[1], first[2]))
        if entry is None:
            return UNAUTHORIZED
        if len(certids) > 1:
            for other in certids[1:]:
                if by_hashes.get(other[:3]) is not entry:
                    # Unknown issuer, or CertIDs of several issuers in one request.
                    return UNAUTHORIZED
        query.issuer = entry
        nonce = query.nonce
        if nonce is not None and not (
            entry.echo_nonce and nonce_octets(nonce) in ECHOED_NONCE_OCTETS
        ):
            query.nonce = None
        return self.then.answer(query, now)


class Responder:
    """Request DER in, an Answer or a SigningJob out."""

    def __init__(
        self,
        reader: StoreReader,
        issuers: Iterable[IssuerEntry],
        *,
        max_certids: int = core.DEFAULT_MAX_CERTIDS,
        keep_statuses: bool = False,
    ):
        self.reader = reader
        self.issuers = IssuerIndex(list(issuers))
        self.max_certids = max_certids
        self.live = LiveSigner(reader, keep_statuses)
        self.first = IssuerFilter(self.issuers, PresignedSource(reader, self.live))

    def answer(self, request: bytes, now: int) -> Answer | SigningJob:
        """A ready answer, or the signing job the caller must finish."""
        try:
            certids, nonce = core.parse_ocsp_request(request, self.max_certids)
        except OCSPCoreError:
            return MALFORMED
        return self.first.answer(Query(certids, nonce), now)

    def forget(self) -> None:
        """Drop what the sources keep from the store (a write has committed)."""
        self.live.forget()


def record_status(record) -> tuple[int, int, int]:
    """(certStatus, revocationTime, revocationReason) of a stored status
    record (status, revoked_at, reason, ...)."""
    status, revoked_at, reason = record[0], record[1], record[2]
    if status == GOOD:
        return core.STATUS_GOOD, 0, core.NO_REASON
    reason = CERTIFICATE_HOLD if status == HOLD else reason
    # BR 7.2.2: unspecified (0) is expressed by leaving the reason out.
    return core.STATUS_REVOKED, revoked_at, core.NO_REASON if reason == 0 else reason


_GOOD_STATUS = core.encode_cert_status(core.STATUS_GOOD, 0, core.NO_REASON)


def encoded_status(record) -> bytes:
    """The encoded CertStatus of a stored status record."""
    if record[0] == GOOD:
        return _GOOD_STATUS
    return core.encode_cert_status(*record_status(record))
