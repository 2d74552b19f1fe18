"""The CA/Browser Forum Baseline Requirements (BR) where they reach across
certificates: which CAs are under them, and what that forbids.

A profile says whether its certificates are under the BR
(``baseline_requirements``); what that asks of the profile itself is checked
when it loads (ca/profiles.py, with the sets below). A CA is under the BR by
the profile its own certificate was issued under here: ``root-ca`` for a
root made here, the profile of its certificate row in its parent for a
sub-CA. A CA imported from elsewhere, or one whose profile is no longer
configured, is taken to be under the BR: nothing here says it is not, and
the BR's rules are the stricter ones.

A CA under the BR puts nothing on hold, whatever the certificate's own
profile allows (BR 4.9.13, and 7.2.2: no certificateHold on its CRLs, also
for certificates outside the BR), and every revocation it records carries a
reason BR 7.2.2 lists. A profile under the BR is issued only by a CA under
the BR, so none of its certificates is listed on a CRL beside a hold.
"""

from cryptography import x509
from sqlalchemy import Connection, select

from ca.errors import BaselineRequirementsError
from ca.reasons import RevocationReason
from ca.records import CARecord, serial_to_db
from store.tables.ca import cas, certificates

ROOT_PROFILE = "root-ca"

# BR 7.2.2 CRLReasons: what a CRL entry may say (unspecified is an entry
# without reasonCode; certificateHold and cACompromise are not listed).
SUBSCRIBER_REASONS = frozenset(
    {
        RevocationReason.unspecified,
        RevocationReason.keyCompromise,
        RevocationReason.affiliationChanged,
        RevocationReason.superseded,
        RevocationReason.cessationOfOperation,
        RevocationReason.privilegeWithdrawn,
    }
)
# BR 7.2.2: the entry of a certificate capable of causing issuance (a CA
# certificate) MUST carry a reasonCode, so it is never unspecified.
CA_REASONS = SUBSCRIBER_REASONS - {RevocationReason.unspecified}

# BR 6.1.5: RSA of at least 2048 bits and ECDSA on P-256, P-384 (or P-521);
# no other algorithm.
KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")


def reasons_for(ca: bool) -> frozenset[RevocationReason]:
    """The reasons BR 7.2.2 allows for a CA or a subscriber certificate."""
    return CA_REASONS if ca else SUBSCRIBER_REASONS


def reason_names(reasons) -> str:
    return ", ".join(r.name for r in sorted(reasons))


def certificate_profile(conn: Connection, ca: CARecord) -> str | None:
    """The profile ``ca``'s own certificate was issued under here (None for
    a CA imported from elsewhere)."""
    if ca.origin != "created":
        return None
    if ca.parent is None:
        return ROOT_PROFILE
    parent_id = select(cas.c.id).where(cas.c.name == ca.parent).scalar_subquery()
    return conn.execute(
        select(certificates.c.profile).where(
            certificates.c.ca_id == parent_id, certificates.c.serial == serial_to_db(ca.serial)
        )
    ).scalar_one_or_none()


def br_status(profiles: dict, conn: Connection, ca: CARecord) -> tuple[bool, str]:
    """Whether ``ca`` is under the BR, and why, in words for a message."""
    name = certificate_profile(conn, ca)
    if name is None:
        return True, "imported"
    profile = profiles.get(name)
    if profile is None:
        return True, f"made under profile {name!r}, which is no longer configured"
    return profile.baseline_requirements, f"made under profile {name!r}"


def check_issuer(profiles: dict, conn: Connection, ca: CARecord, profile) -> None:
    """Refuse a profile under the BR on a CA outside them: that CA's CRLs
    may list holds, and its certificates' would sit beside them."""
    if not profile.baseline_requirements:
        return
    under, why = br_status(profiles, conn, ca)
    if not under:
        raise BaselineRequirementsError(
            f"profile {profile.name!r} is under the Baseline Requirements and CA {ca.name!r} "
            f"({why}) is not: its CRLs may list holds (BR 4.9.13, 7.2.2)"
        )


def check_revocation(
    profiles: dict, conn: Connection, ca: CARecord, profile, reason: RevocationReason, der: bytes
) -> None:
    """Refuse a hold, or a reason BR 7.2.2 does not list, on a certificate
    of a CA under the BR or of a profile under the BR."""
    under, why = br_status(profiles, conn, ca)
    if not under and not (profile is not None and profile.baseline_requirements):
        return
    subject = f"CA {ca.name!r} ({why})" if under else f"profile {profile.name!r}"
    if reason == RevocationReason.certificateHold:
        raise BaselineRequirementsError(
            f"{subject} is under the Baseline Requirements, which allow no hold "
            "(BR 4.9.13: no suspension); revoke the certificate instead"
        )
    is_ca = _is_ca_certificate(der)
    allowed = reasons_for(is_ca)
    if reason not in allowed:
        raise BaselineRequirementsError(
            f"{subject} is under the Baseline Requirements, and BR 7.2.2 does not allow "
            f"revocation reason {reason.name} for a {'CA' if is_ca else 'subscriber'} "
            f"certificate; allowed: {reason_names(allowed)}"
        )


def _is_ca_certificate(der: bytes) -> bool:
    try:
        constraints = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.BasicConstraints
        )
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca
