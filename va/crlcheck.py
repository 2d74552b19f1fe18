"""Checking a CRL before the VA serves it (RFC 5280 5).

Every CRL the VA stores comes through ``publish_crl``: the publish
protocol's ``PUT /crls/<name>`` (va/admin.py) and a co-located publisher's
writes into the VA's LMDB (publisher/targets.py) alike. A CRL is stored
under its name only when

- it is one DER CertificateList with nothing after it (5.1), carrying a
  cRLNumber (5.2.3) and a nextUpdate (5.1.2.5);
- its issuer is a CA certificate the VA holds, an issuer record's or one of
  its parents' (the certificates it serves): the CRL's issuer Name is that
  certificate's subject (5.1.2.3), and its authorityKeyIdentifier that
  certificate's subjectKeyIdentifier where both are present (5.2.1);
- that certificate's public key verifies the CRL's signature (5.1.1.3);
- the number, thisUpdate and nextUpdate its sender states, if any, are the
  CRL's own (the VA files the CRL under the CRL's values, never the
  sender's);
- its number is above the one held under the name, or equal with the very
  same bytes (5.2.3: CRL numbers increase monotonically; a resend is
  idempotent and changes nothing). Full, delta (5.2.4) and partitioned
  CRLs each have a name of their own (``<ca>``, ``<ca>-delta``, the
  partition's file name), so each is numbered on its own.

Anything else raises ``CRLRefused`` (its ``CRLRefusal`` names the code and
the HTTP status), stores nothing, and is logged.
"""

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from contextlib import contextmanager

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from va.errors import CRLRefusal, CRLRefused
from va.store import StoredCRL, VAStore, check_crl_name

log = logging.getLogger("revoca.va.crl")

# What a sender may state of a CRL: the protocol's header, the field.
HEADERS = {
    "X-CRL-Number": "number",
    "X-CRL-This-Update": "this_update",
    "X-CRL-Next-Update": "next_update",
}
_DECIMAL = re.compile(r"[0-9]{1,20}")
_MAX_NUMBER = 2**64 - 1  # the store keeps a CRL's number in 8 octets


def _stated_by_headers(headers: Mapping[str, str]) -> dict[str, int]:
    """The values a PUT's X-CRL-* headers state (each optional)."""
    stated = {}
    for header, field in HEADERS.items():
        value = headers.get(header)
        if value is None:
            continue
        if not _DECIMAL.fullmatch(value):
            raise CRLRefused(CRLRefusal.BAD_HEADER, f"{header} must be a decimal integer")
        stated[field] = int(value)
    return stated


def _read(der: bytes) -> tuple[x509.CertificateRevocationList, StoredCRL]:
    try:
        crl = x509.load_der_x509_crl(der)  # DER only, nothing after it
        # Read here what is decoded on first use, so it fails here if at all.
        extensions, _, this_update, next_update = (
            crl.extensions,
            crl.issuer,
            crl.last_update_utc,
            crl.next_update_utc,
        )
    except ValueError as exc:
        raise CRLRefused(CRLRefusal.MALFORMED, f"the body is not a DER CRL ({exc})") from None
    try:
        number = extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        raise CRLRefused(
            CRLRefusal.INCOMPLETE, "the CRL has no cRLNumber (RFC 5280 5.2.3: every CRL has one)"
        ) from None
    if next_update is None:
        raise CRLRefused(
            CRLRefusal.INCOMPLETE,
            "the CRL has no nextUpdate (RFC 5280 5.1.2.5: conforming CRL issuers include it)",
        )
    if number > _MAX_NUMBER:
        raise CRLRefused(
            CRLRefusal.NUMBER_TOO_LARGE, f"CRL number {number} does not fit in 64 bits"
        )
    times = int(this_update.timestamp()), int(next_update.timestamp())
    return crl, StoredCRL(*times, number, bytes(der))


def held_ca_certificates(store: VAStore) -> list[x509.Certificate]:
    """Every CA certificate the VA holds: each issuer's and its parents'."""
    found: dict[bytes, x509.Certificate] = {}
    for record in store.issuers().values():
        encoded = [record.get("certificate")]
        encoded += [parent.get("certificate") for parent in record.get("parents") or []]
        for value in encoded:
            try:
                der = base64.b64decode(value, validate=True)
                found.setdefault(der, x509.load_der_x509_certificate(der))
            except (TypeError, ValueError, binascii.Error):
                continue  # parse_issuer admits none of these; an older record's
    return list(found.values())


def _key_identifier(holder, kind) -> bytes | None:
    """The keyIdentifier of ``holder``'s authority or subject key identifier."""
    try:
        value = holder.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return value.key_identifier if kind is x509.AuthorityKeyIdentifier else value.digest


def _same_key(certificate: x509.Certificate, authority: bytes | None) -> bool:
    """RFC 5280 5.2.1: the CRL's authorityKeyIdentifier names its signing
    key by the issuer certificate's subjectKeyIdentifier."""
    if authority is None:
        return True
    subject = _key_identifier(certificate, x509.SubjectKeyIdentifier)
    return subject is None or subject == authority


def _signed_by_a_held_issuer(crl: x509.CertificateRevocationList, store: VAStore) -> None:
    authority = _key_identifier(crl, x509.AuthorityKeyIdentifier)
    named = [c for c in held_ca_certificates(store) if c.subject == crl.issuer]
    candidates = [c for c in named if _same_key(c, authority)]
    if not candidates:
        issuer = crl.issuer.rfc4514_string()
        if named:
            raise CRLRefused(
                CRLRefusal.UNKNOWN_ISSUER,
                f"this VA holds no certificate of {issuer} with key identifier "
                f"{authority.hex()} (the CRL's authorityKeyIdentifier)",
            )
        raise CRLRefused(
            CRLRefusal.UNKNOWN_ISSUER, f"this VA holds no CA certificate with subject {issuer}"
        )
    for certificate in candidates:
        try:
            if crl.is_signature_valid(certificate.public_key()):
                return
        except (TypeError, ValueError, UnsupportedAlgorithm):
            continue
    raise CRLRefused(
        CRLRefusal.BAD_SIGNATURE,
        f"the CRL's signature does not verify with the key of {crl.issuer.rfc4514_string()}",
    )


def check_crl(store: VAStore, der: bytes, stated: Mapping[str, int] | None = None) -> StoredCRL:
    """The CRL ``der`` as the VA files it, checked against the issuers the VA
    holds and what its sender ``stated`` (``HEADERS``' fields); CRLRefused
    when it is not one to serve. Its number against the one held is
    ``publish_crl``'s, in the write transaction."""
    crl, checked = _read(der)
    for field, value in (stated or {}).items():
        own = getattr(checked, field)
        if value != own:
            header = next(h for h, f in HEADERS.items() if f == field)
            raise CRLRefused(
                CRLRefusal.HEADER_MISMATCH, f"{header} says {value}, the CRL's own is {own}"
            )
    _signed_by_a_held_issuer(crl, store)
    return checked


def _replace(name: str, new: StoredCRL):
    def decide(held: StoredCRL | None) -> StoredCRL | None:
        if held is None or new.number > held.number:
            return new
        if new.number < held.number:
            raise CRLRefused(
                CRLRefusal.NUMBER_LOWER,
                f"CRL number {new.number} is below number {held.number}, which this VA holds "
                f"under {name!r} (RFC 5280 5.2.3: CRL numbers increase)",
            )
        if new.der != held.der:
            raise CRLRefused(
                CRLRefusal.NUMBER_REUSED,
                f"CRL number {new.number} is held under {name!r} with other contents "
                "(RFC 5280 5.2.3: a number names one CRL)",
            )
        return None  # the very CRL held: a resend

    return decide


@contextmanager
def _logged(name: str):
    """Refusals are the sender's fault: logged as warnings, then raised."""
    try:
        yield
    except CRLRefused as exc:
        log.warning("refused a CRL", extra={"crl": name, "code": exc.code, "reason": str(exc)})
        raise


def publish_crl(
    store: VAStore, name: str, der: bytes, stated: Mapping[str, int] | None = None
) -> dict:
    """Check the CRL ``der`` and store it under ``name`` if it is newer than
    the one held; the answer of ``PUT /crls/<name>``. CRLRefused (logged)
    leaves the store as it was."""
    with _logged(name):
        try:
            check_crl_name(name)
        except ValueError as exc:
            raise CRLRefused(CRLRefusal.BAD_NAME, str(exc)) from None
        checked = check_crl(store, der, stated)
        stored = store.update_crl(name, _replace(name, checked))
    return {"stored": name, "number": checked.number, "unchanged": stored is None}


def publish_crl_request(store: VAStore, name: str, headers: Mapping[str, str], der: bytes) -> dict:
    """``PUT /crls/<name>`` with ``headers``: ``publish_crl`` of what its
    X-CRL-* headers state."""
    with _logged(name):
        stated = _stated_by_headers(headers)
    return publish_crl(store, name, der, stated)
