"""Full CRLs (RFC 5280 5.1), streamed from the store and encoded natively.

Revoked rows are read in serial order (ca/crlrows.py: on a SQLite file by
the native row reader, packed, no Python object per row) and fed to the
entry encoder (ca/crlcore.py), a codec that knows no store; only the
finished TBSCertList is signed.

Contents follow the CA/B Forum BR 7.2: reasonCode is left out for
unspecified; holds appear as certificateHold; a revoked certificate stays
listed until it has appeared on one CRL issued after it expired, then it is
dropped; nextUpdate is at most 10 days after thisUpdate.
"""

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from sqlalchemy import func, insert, select

from ca import crlcore
from ca.crlrows import add_changed, add_revoked
from ca.errors import CAError, PolicyError
from ca.keys import signature_algorithm_for
from ca.records import CARecord, to_epoch
from ca.x509build import Extension
from common import der
from store.tables.ca import crls
from store.tables.outbox import outbox

CERTIFICATE_HOLD = 6
MAX_VALIDITY_DAYS = 10  # BR 4.9.7 for subscriber CRLs
DEFAULT_VALIDITY_DAYS = 7
DELTA_VALIDITY_DAYS = 1
DEFAULT_ARL_VALIDITY_DAYS = 365
MAX_ARL_VALIDITY_DAYS = 366  # BR 4.9.7: CRLs for CA certificates, at most 12 months


@dataclass(frozen=True)
class CRLRecord:
    ca: str
    number: int
    this_update: int
    next_update: int
    entries: int
    der: bytes


def _issuer_name_der(ca: CARecord) -> bytes:
    """The CA's subject exactly as encoded in its certificate (RFC 5280 5.1.2.3)."""
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(ca.cert_der)["tbs_certificate"]["subject"].dump()


def encode_tbs(
    issuer_name: bytes,
    algorithm,
    number: int,
    this_update: int,
    next_update: int,
    entries: bytes,
    count: int,
    key_identifier: bytes,
    extra_extensions: list[Extension] = (),
) -> bytes:
    extensions = [
        Extension(x509.AuthorityKeyIdentifier(key_identifier, None, None), False),
        Extension(x509.CRLNumber(number), False),
        *extra_extensions,
    ]
    parts = [
        der.integer(1),  # v2 (RFC 5280 5.1.2.1: extensions present)
        algorithm.algorithm_identifier,
        issuer_name,
        crlcore.encode_time(this_update),
        crlcore.encode_time(next_update),
    ]
    if count:  # absent, not empty, when none (5.1.2.6); header and body apart: no copy
        parts += (b"\x30" + der.length(len(entries)), entries)
    parts.append(der.explicit(0, der.sequence(*(e.encode() for e in extensions))))
    return der.sequence(*parts)


def issue_full_crl(service, ca_name: str, **options) -> CRLRecord:
    return issue_crl(service, ca_name, delta=False, **options)


def issue_crl(
    service,
    ca_name: str,
    *,
    delta: bool = False,
    arl: bool = False,
    partition: tuple[str, int] | None = None,
    days: int | None = None,
    delta_url: str = "",
    now: datetime | None = None,
    actor: str = "system",
) -> CRLRecord:
    """Sign and store the next full CRL, or with ``delta`` the next delta CRL
    against the latest full one. ``delta_url``: where the delta CRLs are
    published; full CRLs then carry FreshestCRL pointing there (RFC 5280
    5.2.6), which relying parties need before they use a delta."""
    if sum((delta, arl, partition is not None)) > 1:
        raise PolicyError("a CRL is one of full, delta, ARL or partition")
    kind = "delta" if delta else "arl" if arl else "partition" if partition else "full"
    limit = MAX_ARL_VALIDITY_DAYS if arl else MAX_VALIDITY_DAYS
    with service.audit.failures(actor, "ca.crl", ca_name):
        if days is None:
            days = {"delta": DELTA_VALIDITY_DAYS, "arl": DEFAULT_ARL_VALIDITY_DAYS}.get(
                kind, DEFAULT_VALIDITY_DAYS
            )
        if not 1 <= days <= limit:
            raise PolicyError(
                f"{'ARL' if arl else 'CRL'} validity must be 1 to {limit} days (BR 4.9.7)"
            )
        ca = service.get_own_ca(ca_name)
        name = f"{ca.name}-delta" if delta else ca.name
        if partition is not None:
            profile_name, shard = partition
            profile = service.profile(profile_name)
            if not profile.crl_partitions or not 0 <= shard < profile.crl_partitions:
                raise PolicyError(f"profile {profile_name!r} has no CRL partition {shard}")
            # BR 7.2.2: the IDP URL is byte-identical to the certificates' CRL DP.
            idp_url = profile.url(profile.crl_url, base=service.base_url, ca=ca.name, shard=shard)
            head, _, last = idp_url.rpartition("/crl/")
            if not head or not last.endswith(".crl") or "/" in last:
                raise PolicyError(f"partition URL {idp_url!r} must end in /crl/<name>.crl")
            name = last[: -len(".crl")]
        this_update = to_epoch(now or service.clock())
        next_update = this_update + days * 86400
        algorithm = signature_algorithm_for(ca.certificate.public_key())
        issuer_name = _issuer_name_der(ca)
        key_identifier = x509.SubjectKeyIdentifier.from_public_key(
            ca.certificate.public_key()
        ).digest
        with service.store.transaction() as conn:  # serialises CRL numbering
            number = (
                conn.execute(select(func.max(crls.c.number)).where(crls.c.ca_id == ca.id)).scalar()
                or 0
            ) + 1
            base = conn.execute(
                select(crls.c.number, crls.c.this_update, crls.c.outbox_id)
                .where(
                    crls.c.ca_id == ca.id,
                    crls.c.name == (ca.name if delta else name),
                    crls.c.kind != "delta",
                )
                .order_by(crls.c.number.desc())
                .limit(1)
            ).first()
            # The outbox position this CRL reflects, read before its entries: on
            # PostgreSQL (READ COMMITTED) a change committed between the two
            # reads is then on the CRL and after its position, so the updater
            # signs again rather than take it as carried.
            position = None if delta else conn.execute(select(func.max(outbox.c.id))).scalar()
            writer = crlcore.CRLEntryWriter()
            if delta:
                if base is None:
                    raise PolicyError(f"CA {ca_name!r} has no full CRL yet to base a delta on")
                add_changed(writer, conn, ca.id, base.outbox_id or 0)
                # RFC 5280 5.2.4: deltaCRLIndicator is critical and names the base.
                extra = [Extension(x509.DeltaCRLIndicator(base.number), True)]
            elif partition is not None:
                add_revoked(
                    writer,
                    conn,
                    ca.id,
                    base.this_update if base else None,
                    profiles=(profile_name,),
                    shard=shard,
                )
                extra = [
                    Extension(
                        x509.IssuingDistributionPoint(
                            [x509.UniformResourceIdentifier(idp_url)],
                            None,
                            not profile.ca,
                            profile.ca,
                            None,
                            False,
                            False,
                        ),
                        True,
                    )
                ]
            elif arl:
                ca_profiles = tuple(n for n, p in service.profiles.items() if p.ca)
                add_revoked(
                    writer, conn, ca.id, base.this_update if base else None, profiles=ca_profiles
                )
                # RFC 5280 5.2.5: an ARL says so in a critical IssuingDistributionPoint.
                extra = [
                    Extension(
                        x509.IssuingDistributionPoint(None, None, False, True, None, False, False),
                        True,
                    )
                ]
            else:
                add_revoked(writer, conn, ca.id, base.this_update if base else None)
                extra = (
                    [
                        Extension(
                            x509.FreshestCRL(
                                [
                                    x509.DistributionPoint(
                                        [x509.UniformResourceIdentifier(delta_url)],
                                        None,
                                        None,
                                        None,
                                    )
                                ]
                            ),
                            False,
                        )
                    ]
                    if delta_url
                    else []
                )
            tbs = encode_tbs(
                issuer_name,
                algorithm,
                number,
                this_update,
                next_update,
                writer.getvalue(),
                writer.count,
                key_identifier,
                extra,
            )
            count = writer.count
            del writer  # its buffer: one copy of the entries fewer in memory
            signature = service.token.sign(ca.key_id, tbs, algorithm)
            crl_der = der.sequence(tbs, algorithm.algorithm_identifier, der.bit_string(signature))
            _self_check(crl_der, ca, tbs, signature, algorithm)
            del tbs
            conn.execute(
                insert(crls).values(
                    ca_id=ca.id,
                    number=number,
                    kind=kind,
                    name=name,
                    this_update=this_update,
                    next_update=next_update,
                    entries=count,
                    der=crl_der,
                    base_number=base.number if delta and base else None,
                    outbox_id=position,
                )
            )
            service.audit.ok(
                conn, actor, "ca.crl", ca_name, number=number, kind=kind, entries=count
            )
        return CRLRecord(ca.name, number, this_update, next_update, count, crl_der)


def _self_check(crl_der: bytes, ca: CARecord, tbs: bytes, signature: bytes, algorithm) -> None:
    """Before anyone sees the CRL: verify the signature over the exact TBS
    bytes with the CA's public key, and parse the envelope strictly with
    asn1crypto (lazily: the entries, correct by construction and compared
    with the twin in the tests, are not walked again one by one)."""
    from asn1crypto import crl as asn1_crl
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    try:
        key = ca.certificate.public_key()
        if algorithm.family == "ed25519":
            key.verify(signature, tbs)
        elif algorithm.family == "ec":
            key.verify(signature, tbs, ec.ECDSA(algorithm.hash()))
        else:
            key.verify(signature, tbs, padding.PKCS1v15(), algorithm.hash())
        parsed = asn1_crl.CertificateList.load(crl_der, strict=True)
        inner = parsed["tbs_cert_list"]
        if (
            inner["version"].native != "v2"
            or inner["signature"].dump() != parsed["signature_algorithm"].dump()
            or inner["issuer"].dump() != _issuer_name_der(ca)
            or parsed["signature"].native != signature
        ):
            raise ValueError("the envelope does not match what was signed")
    except (ValueError, InvalidSignature) as exc:
        raise CAError(f"internal error: the signed CRL failed its self-check: {exc}") from exc
