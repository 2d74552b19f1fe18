"""Apply a profile to a request: decide every field of the certificate, or
refuse with a message that names the rule that was broken."""

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from ca.errors import BadInputError, CAError, PolicyError
from ca.keys import key_spec_of
from ca.profiles import SUBJECT_ATTRIBUTE_NAMES, Profile
from ca.requests import CertificateRequest, format_san, san_type
from ca.x509build import Extension

_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Issuer:
    """What the policy needs to know about the issuing CA."""

    name: str
    certificate: x509.Certificate

    def path_length(self) -> int | None:
        return self.certificate.extensions.get_extension_for_class(
            x509.BasicConstraints
        ).value.path_length

    def key_identifier(self) -> bytes:
        try:
            return self.certificate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value.digest
        except x509.ExtensionNotFound:
            return x509.SubjectKeyIdentifier.from_public_key(self.certificate.public_key()).digest


@dataclass(frozen=True)
class CertificateTemplate:
    subject: x509.Name
    public_key: object
    key_spec: str
    sans: tuple[x509.GeneralName, ...]
    not_before: datetime
    not_after: datetime
    extensions: tuple[Extension, ...]


def _fmt(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def validity_window(days: int, now: datetime) -> tuple[datetime, datetime]:
    """BR 6.3.2 counts validity inclusively: notAfter is notBefore + days - 1 s."""
    not_before = now.replace(microsecond=0)
    return not_before, not_before + timedelta(days=days) - timedelta(seconds=1)


def check_dns_name(value: str) -> None:
    name = value.lower()
    labels = name[2:].split(".") if name.startswith("*.") else name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_DNS_LABEL.match(lb) for lb in labels):
        raise PolicyError(f"SAN dns:{value} is not a valid fully qualified host name")


def _check_san(profile: Profile, name: x509.GeneralName) -> None:
    kind = san_type(name)
    if kind not in profile.san_types:
        allowed = ", ".join(profile.san_types) or "none"
        raise PolicyError(
            f"profile {profile.name!r} does not allow SAN type {kind} "
            f"({format_san(name) if kind in ('dns', 'ip', 'email', 'uri') else kind}); "
            f"allowed: {allowed}"
        )
    if kind == "dns":
        check_dns_name(name.value)
    elif kind == "email" and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", name.value):
        raise PolicyError(f"SAN email:{name.value} is not a valid mail address")
    elif kind == "uri" and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$", name.value):
        raise PolicyError(f"SAN uri:{name.value} is not an absolute URI")


def _check_subject(profile: Profile, subject: x509.Name) -> None:
    allowed = profile.subject_attribute_oids()
    for rdn in subject.rdns:
        if len(rdn) != 1:
            raise PolicyError("multi-valued RDNs in the subject are not allowed")
        (attribute,) = rdn
        if attribute.oid not in allowed:
            label = SUBJECT_ATTRIBUTE_NAMES.get(attribute.oid, attribute.oid.dotted_string)
            raise PolicyError(
                f"profile {profile.name!r} does not allow subject attribute {label}; "
                f"allowed: {', '.join(profile.subject_attributes)}"
            )
        if not str(attribute.value).strip():
            raise PolicyError("subject attributes must not be empty")
    if len(subject.get_attributes_for_oid(NameOID.COMMON_NAME)) > 1:
        raise PolicyError("the subject may hold at most one CN")


def _cn_matches_san(cn: str, sans: tuple[x509.GeneralName, ...]) -> bool:
    for name in sans:
        if isinstance(name, x509.DNSName) and name.value.lower() == cn.lower():
            return True
        if isinstance(name, x509.IPAddress):
            try:
                if ipaddress.ip_address(cn) == name.value:
                    return True
            except ValueError:
                pass
    return False


def _unique(sans) -> tuple[x509.GeneralName, ...]:
    seen, out = set(), []
    for name in sans:
        key = (san_type(name), str(name.value).lower())
        if key not in seen:
            seen.add(key)
            out.append(name)
    return tuple(out)


def apply_profile(
    profile: Profile,
    request: CertificateRequest,
    issuer: Issuer | None,
    *,
    now: datetime,
    days: int | None,
    base_url: str,
    ca_name: str,
    serial: int | None = None,
    delta_url: str = "",
) -> CertificateTemplate:
    """Build the certificate template, or raise PolicyError/BadInputError.

    ``issuer`` is None for a self-signed root; ``ca_name`` names the CA whose
    URLs go into the certificate (the issuer, or the root itself);
    ``delta_url`` is where that CA publishes delta CRLs ("" for none).
    """
    key_spec = key_spec_of(request.public_key)
    if key_spec not in profile.key_types:
        raise PolicyError(
            f"profile {profile.name!r} does not allow key type {key_spec}; "
            f"allowed: {', '.join(profile.key_types)}"
        )
    _check_subject(profile, request.subject)

    sans = _unique(request.sans)
    for name in sans:
        _check_san(profile, name)
    if profile.san_required and not sans:
        raise PolicyError(f"profile {profile.name!r} requires at least one SAN")
    if len(sans) > profile.max_sans:
        raise PolicyError(
            f"{len(sans)} SANs requested; profile {profile.name!r} allows "
            f"at most {profile.max_sans}"
        )
    cns = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if profile.cn_in_san and cns and not _cn_matches_san(str(cns[0].value), sans):
        raise PolicyError(f"the CN {cns[0].value!r} must also appear as a SAN (BR 7.1.4.3)")
    if not request.subject.rdns and not sans:
        raise PolicyError("a certificate needs a subject or at least one SAN")

    if issuer is not None and profile.ca and issuer.path_length() == 0:
        raise PolicyError(
            f"issuer {issuer.name!r} has pathLenConstraint 0 and cannot certify another CA"
        )
    requested = days is not None
    days = days if requested else profile.validity_days
    if days < 1:
        raise BadInputError(f"validity must be at least 1 day, not {days}")
    if days > profile.max_validity_days:
        raise PolicyError(
            f"requested validity of {days} days exceeds the {profile.max_validity_days} "
            f"days that profile {profile.name!r} allows"
        )
    not_before, not_after = validity_window(days, now)

    if issuer is not None:
        issuer_cert = issuer.certificate
        if not_before < issuer_cert.not_valid_before_utc:
            raise PolicyError(f"issuer {issuer.name!r} is not valid yet")
        if not_after > issuer_cert.not_valid_after_utc:
            if requested:
                raise PolicyError(
                    f"the certificate would expire on {_fmt(not_after)}, after its issuer "
                    f"{issuer.name!r} (notAfter {_fmt(issuer_cert.not_valid_after_utc)}); "
                    f"request at most {(issuer_cert.not_valid_after_utc - not_before).days} days"
                )
            # The profile's default, not a request: end with the issuer (RFC 5280
            # 6.1 would reject a chain whose leaf outlives it anyway).
            not_after = issuer_cert.not_valid_after_utc

    if profile.crl_partitions and serial is None:
        raise CAError("internal error: a partitioned profile needs the serial first")
    extensions = _extensions(
        profile,
        request,
        key_spec,
        sans,
        issuer,
        base_url,
        ca_name,
        profile.shard_of(serial) if serial is not None else None,
        delta_url,
    )
    return CertificateTemplate(
        subject=request.subject,
        public_key=request.public_key,
        key_spec=key_spec,
        sans=sans,
        not_before=not_before,
        not_after=not_after,
        extensions=tuple(extensions),
    )


def _extensions(
    profile, request, key_spec, sans, issuer, base_url, ca_name, shard, delta_url
) -> list[Extension]:
    url = lambda template: profile.url(template, base=base_url, ca=ca_name, shard=shard)  # noqa: E731
    exts = [
        Extension(x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length), True),
        Extension(profile.key_usage_for(key_spec), True),
    ]
    if profile.extended_key_usage:
        exts.append(Extension(x509.ExtendedKeyUsage(profile.extended_key_usage_oids()), False))
    if profile.subject_key_identifier or profile.ca:  # RFC 5280 4.2.1.2: MUST for CAs
        exts.append(Extension(x509.SubjectKeyIdentifier.from_public_key(request.public_key), False))
    if issuer is not None:
        exts.append(
            Extension(x509.AuthorityKeyIdentifier(issuer.key_identifier(), None, None), False)
        )
    elif profile.ca:
        # BR 7.1.2.1.3: a root's AKI repeats its own SKI (RFC 5280 4.2.1.1 allows it).
        own = x509.SubjectKeyIdentifier.from_public_key(request.public_key).digest
        exts.append(Extension(x509.AuthorityKeyIdentifier(own, None, None), False))
    if sans:
        # RFC 5280 4.2.1.6: critical when the subject is empty.
        exts.append(Extension(x509.SubjectAlternativeName(list(sans)), not request.subject.rdns))
    if profile.policies:
        policies = [
            x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in profile.policies
        ]
        exts.append(Extension(x509.CertificatePolicies(policies), False))
    access = []
    if profile.ocsp_url:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(url(profile.ocsp_url)),
            )
        )
    if profile.ca_issuers_url:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(url(profile.ca_issuers_url)),
            )
        )
    if access:
        exts.append(Extension(x509.AuthorityInformationAccess(access), False))
    if profile.crl_url:
        exts.append(Extension(x509.CRLDistributionPoints([_point(url(profile.crl_url))]), False))
    if delta_url and profile.crl_url and not profile.crl_partitions:
        # RFC 5280 4.2.1.15: the certificate names its delta CRLs; relying
        # parties that fetch (pyhanko) look for them nowhere else. A partition
        # has no deltas of its scope, so it names none.
        exts.append(Extension(x509.FreshestCRL([_point(delta_url)]), False))
    if profile.ocsp_no_check:
        exts.append(Extension(x509.OCSPNoCheck(), False))
    return exts


def _point(uri: str) -> x509.DistributionPoint:
    return x509.DistributionPoint([x509.UniformResourceIdentifier(uri)], None, None, None)
