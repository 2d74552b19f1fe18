"""Certificate profiles: what a certificate of each kind may and must contain.

Profiles live in the ``[profiles.<name>]`` tables of the configuration file;
revoca/default.toml documents every key.
"""

from dataclasses import dataclass, fields

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ca import baseline
from ca.errors import ConfigError
from ca.keys import KEY_SPECS
from ca.reasons import RevocationReason

KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)

EKU_NAMES = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "time_stamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}

SUBJECT_ATTRIBUTES = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "emailAddress": NameOID.EMAIL_ADDRESS,
}
SUBJECT_ATTRIBUTE_NAMES = {oid: name for name, oid in SUBJECT_ATTRIBUTES.items()}

SAN_TYPES = ("dns", "ip", "email", "uri")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    ca: bool = False
    baseline_requirements: bool = False
    path_length: int | None = None
    validity_days: int = 90
    max_validity_days: int = 398
    key_types: tuple[str, ...] = ("ec-p256",)
    key_usage: tuple[str, ...] = ("digital_signature",)
    key_usage_rsa: tuple[str, ...] = ()
    extended_key_usage: tuple[str, ...] = ()
    subject_attributes: tuple[str, ...] = ("CN",)
    cn_in_san: bool = False
    san_types: tuple[str, ...] = ()
    san_required: bool = False
    max_sans: int = 100
    policies: tuple[str, ...] = ()
    ocsp_url: str = ""
    ca_issuers_url: str = ""
    crl_url: str = ""
    crl_partitions: int = 0
    ocsp_no_check: bool = False
    subject_key_identifier: bool = True
    allow_hold: bool = False
    revocation_reasons: tuple[str, ...] = ()

    def extended_key_usage_oids(self) -> list[ObjectIdentifier]:
        return [EKU_NAMES.get(name) or ObjectIdentifier(name) for name in self.extended_key_usage]

    def subject_attribute_oids(self) -> set[ObjectIdentifier]:
        return {SUBJECT_ATTRIBUTES[name] for name in self.subject_attributes}

    def allowed_reasons(self) -> set[RevocationReason]:
        return {RevocationReason.parse(name) for name in self.revocation_reasons}

    def url(self, template: str, *, base: str, ca: str, shard: int | None = None) -> str:
        return template.format(base=base.rstrip("/"), ca=ca, profile=self.name, shard=shard)

    def shard_of(self, serial: int) -> int | None:
        """The CRL partition listing ``serial`` (None: the profile is not partitioned)."""
        return serial % self.crl_partitions if self.crl_partitions else None

    def key_usage_for(self, key_spec: str) -> x509.KeyUsage:
        bits = set(self.key_usage)
        if key_spec.startswith("rsa-"):
            bits |= set(self.key_usage_rsa)
        return x509.KeyUsage(
            **{name: name in bits for name in KEY_USAGE_BITS},
            encipher_only=False,
            decipher_only=False,
        )


_TUPLE_FIELDS = {f.name for f in fields(Profile) if str(f.type).startswith("tuple")}
_BOOL_FIELDS = {f.name for f in fields(Profile) if f.type is bool}


def _check_choices(profile: str, key: str, values, allowed) -> None:
    for value in values:
        if value not in allowed:
            raise ConfigError(
                f"profile {profile!r}: {key} has unknown value {value!r}; "
                f"allowed: {', '.join(allowed)}"
            )


def profile_from_config(name: str, table: dict) -> Profile:
    known = {f.name for f in fields(Profile)} - {"name"}
    if "delta_crl_url" in table:
        raise ConfigError(
            f"profile {name!r}: delta_crl_url is not a profile setting; certificates "
            "carry FreshestCRL to [crl] delta_url when their CA publishes delta CRLs"
        )
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"profile {name!r}: unknown setting(s) {', '.join(unknown)}")
    values = {}
    for key, value in table.items():
        if key in _TUPLE_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"profile {name!r}: {key} must be a list of strings")
            value = tuple(value)
        elif key in _BOOL_FIELDS and not isinstance(value, bool):
            raise ConfigError(f"profile {name!r}: {key} must be true or false")
        values[key] = value
    profile = Profile(name=name, **values)
    _check_choices(name, "key_types", profile.key_types, KEY_SPECS)
    _check_choices(name, "key_usage", profile.key_usage + profile.key_usage_rsa, KEY_USAGE_BITS)
    _check_choices(name, "subject_attributes", profile.subject_attributes, SUBJECT_ATTRIBUTES)
    _check_choices(name, "san_types", profile.san_types, SAN_TYPES)
    for eku in profile.extended_key_usage:
        if eku not in EKU_NAMES:
            _check_oid(name, "extended_key_usage", eku)
    for oid in profile.policies:
        _check_oid(name, "policies", oid)
    try:
        profile.allowed_reasons()
    except Exception as exc:
        raise ConfigError(f"profile {name!r}: revocation_reasons: {exc}") from None
    if not 1 <= profile.validity_days <= profile.max_validity_days:
        raise ConfigError(
            f"profile {name!r}: validity_days must be between 1 and max_validity_days"
        )
    if profile.path_length is not None and (not profile.ca or profile.path_length < 0):
        raise ConfigError(f"profile {name!r}: path_length needs ca = true and a value >= 0")
    if not isinstance(profile.crl_partitions, int) or not 0 <= profile.crl_partitions <= 4096:
        raise ConfigError(f"profile {name!r}: crl_partitions must be 0 to 4096")
    if profile.crl_partitions and "{shard}" not in profile.crl_url:
        raise ConfigError(
            f"profile {name!r}: a partitioned crl_url must contain {{shard}}, e.g. "
            '"{base}/crl/{ca}-{profile}-p{shard}.crl"'
        )
    if profile.baseline_requirements:
        _check_baseline(profile)
    if profile.allow_hold and "certificateHold" not in profile.revocation_reasons:
        raise ConfigError(
            f"profile {name!r}: allow_hold needs certificateHold in revocation_reasons"
        )
    return profile


def _check_baseline(profile: Profile) -> None:
    """What a profile under the CA/B Forum Baseline Requirements may not say."""
    name = profile.name
    if profile.allow_hold:
        raise ConfigError(
            f"profile {name!r}: allow_hold is not allowed with baseline_requirements "
            "(BR 4.9.13: no suspension)"
        )
    reasons = profile.allowed_reasons()
    if RevocationReason.certificateHold in reasons:
        raise ConfigError(
            f"profile {name!r}: revocation_reasons has certificateHold, which "
            "baseline_requirements does not allow (BR 4.9.13: no suspension)"
        )
    allowed = baseline.reasons_for(profile.ca)
    if reasons - allowed:
        reason = min(reasons - allowed)
        raise ConfigError(
            f"profile {name!r}: revocation_reasons has {reason.name}, which BR 7.2.2 does "
            f"not allow for {'CA' if profile.ca else 'subscriber'} certificates; "
            f"allowed: {baseline.reason_names(allowed)}"
        )
    for key_type in profile.key_types:
        if key_type not in baseline.KEY_TYPES:
            raise ConfigError(
                f"profile {name!r}: key_types has {key_type}, which baseline_requirements "
                f"does not allow (BR 6.1.5); allowed: {', '.join(baseline.KEY_TYPES)}"
            )
    if profile.ca and "OU" in profile.subject_attributes:
        raise ConfigError(
            f"profile {name!r}: subject_attributes has OU, which BR 7.1.2.10.2 does not "
            "allow in root or TLS subordinate CA certificates"
        )


def _check_oid(profile: str, key: str, value: str) -> None:
    try:
        ObjectIdentifier(value)
    except ValueError:
        raise ConfigError(f"profile {profile!r}: {key} value {value!r} is not an OID") from None


def load_profiles(tables: dict) -> dict[str, Profile]:
    return {name: profile_from_config(name, table) for name, table in tables.items()}
