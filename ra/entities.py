"""End entities: who should hold which certificates.

An end entity names its issuing CA and profile, a contact email, a subject
template and the SANs it may carry. The subject of every certificate issued
to it comes from the template (a CSR's own subject is not trusted, as in
most RAs); requested SANs must each match an allowed pattern.

Subject templates are RFC 4514 strings with ``{name}``, ``{email}`` and
``{<attribute>}`` placeholders, filled from the end entity (values escaped
per RFC 4514 2.4). SAN patterns are ``type:pattern``:

- ``dns:www.example.com`` exactly; ``dns:*.example.com`` one label in place
  of ``*`` (not ``example.com`` itself, not ``a.b.example.com``), or the
  wildcard name ``*.example.com``, which covers the same names; case-blind;
- ``ip:192.0.2.10`` or ``ip:192.0.2.0/24`` (any address in the network);
- ``email:alice@example.com`` or ``email:*@example.com`` (any local part);
- ``uri:https://example.com/x`` exactly, or ``uri:https://example.com/*``
  (that prefix).
"""

import ipaddress
import json
import re
from dataclasses import dataclass

from cryptography import x509

from ca.errors import BadInputError, PolicyError
from ca.requests import format_san, parse_san, parse_subject
from common.clock import iso8601

STATUSES = ("active", "disabled")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_ATTRIBUTE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_DNS_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_ATTRIBUTE_VALUE = 1024
# Placeholders the RA fills itself: an attribute may not take their names.
RESERVED = ("name", "email", "identifier")


@dataclass(frozen=True)
class EndEntity:
    id: int
    name: str
    email: str
    ca: str
    profile: str
    subject_template: str
    allowed_sans: tuple[str, ...]
    attributes: dict
    status: str
    created_at: int
    updated_at: int

    def summary(self) -> dict:
        return {
            "name": self.name,
            "email": self.email,
            "ca": self.ca,
            "profile": self.profile,
            "subject_template": self.subject_template,
            "allowed_sans": list(self.allowed_sans),
            "attributes": dict(self.attributes),
            "status": self.status,
            "created_at": iso8601(self.created_at),
            "updated_at": iso8601(self.updated_at),
        }

    def subject(self, identifier: str | None = None) -> x509.Name:
        """The subject for a certificate. ``identifier``: the name an
        enrollment protocol (ACME) asks for, filling ``{identifier}`` in the
        template; a template without that placeholder gives ``CN=`` that
        name alone, so the common name is always one of the certificate's
        SANs (CA/B Forum BR 7.1.4.3); "" gives an empty subject."""
        if identifier is None:
            return parse_subject(render_subject(self.subject_template, self._values()))
        if identifier == "":
            # No name fits a CN (IP addresses alone): an empty subject, the
            # SAN extension then critical (RFC 5280 4.2.1.6), as Let's Encrypt
            # issues for addresses; BR 7.1.4.3 makes the CN optional.
            return x509.Name([])
        if "{identifier}" not in self.subject_template:
            return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, identifier)])
        values = {**self._values(), "identifier": identifier}
        return parse_subject(render_subject(self.subject_template, values))

    def _values(self) -> dict[str, str]:
        return {**self.attributes, "name": self.name, "email": self.email}

    def check_sans(self, sans) -> None:
        """Refuse any SAN no allowed pattern matches."""
        for san in sans:
            text = format_san(san)
            if not any(san_matches(pattern, san) for pattern in self.allowed_sans):
                allowed = ", ".join(self.allowed_sans) or "none"
                raise PolicyError(
                    f"end entity {self.name!r} may not have the SAN {text}; allowed: {allowed}"
                )


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInputError(
            f"invalid end entity name {name!r}: 1-128 letters, digits, '.', '_', '@', '-', "
            "starting with a letter or digit"
        )
    return name


def check_email(email: str) -> str:
    if not isinstance(email, str) or len(email) > 254 or not _EMAIL.match(email):
        raise BadInputError(f"invalid contact email {email!r}")
    return email


def check_attributes(attributes) -> dict[str, str]:
    if not isinstance(attributes, dict):
        raise BadInputError("attributes must be an object of strings")
    for key, value in attributes.items():
        if not isinstance(key, str) or not _ATTRIBUTE.match(key) or key in RESERVED:
            raise BadInputError(
                f"invalid attribute name {key!r}: lowercase letters, digits, '_' "
                "(not 'name', 'email' or 'identifier')"
            )
        if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_VALUE:
            raise BadInputError(
                f"attribute {key!r} must be a string of at most {MAX_ATTRIBUTE_VALUE} characters"
            )
    return dict(attributes)


def escape_rfc4514(value: str) -> str:
    """Escape an attribute value for an RFC 4514 string (section 2.4)."""
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        elif ch == "\x00":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def render_subject(template: str, values: dict[str, str]) -> str:
    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise BadInputError(
                f"subject template uses {{{key}}}, which is neither name, email nor "
                "an attribute of the end entity"
            )
        return escape_rfc4514(values[key])

    return _PLACEHOLDER.sub(fill, template)


def check_template(template: str, values: dict[str, str]) -> str:
    if not isinstance(template, str) or not template.strip():
        raise BadInputError("a subject template is required, e.g. 'CN={name},O=Example'")
    # {identifier} is filled at enrollment (ACME); a sample name checks the rest.
    name = parse_subject(render_subject(template, {"identifier": "host.example", **values}))
    if len(name) == 0:
        raise BadInputError("the subject template yields an empty subject")
    return template


def check_san_patterns(patterns) -> tuple[str, ...]:
    if not isinstance(patterns, list | tuple):
        raise BadInputError("allowed_sans must be a list of 'type:pattern' strings")
    out = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise BadInputError("allowed_sans must be a list of 'type:pattern' strings")
        kind, sep, value = pattern.partition(":")
        kind = kind.strip().lower()
        if not sep or not value:
            raise BadInputError(f"invalid SAN pattern {pattern!r}: write it as type:pattern")
        if kind == "dns":
            labels = value.lower().split(".")
            wildcard = labels[0] == "*"
            rest = labels[1:] if wildcard else labels
            if len(rest) < (2 if wildcard else 1) or not all(_DNS_LABEL.match(x) for x in rest):
                raise BadInputError(
                    f"invalid SAN pattern {pattern!r}: a host name, or '*.' and a domain"
                )
        elif kind == "ip":
            try:
                ipaddress.ip_network(value, strict=True)
            except ValueError:
                raise BadInputError(
                    f"invalid SAN pattern {pattern!r}: an IP address or a network (CIDR)"
                ) from None
        elif kind == "email":
            local, at, domain = value.rpartition("@")
            if not at or not local or not domain or "*" in domain:
                raise BadInputError(
                    f"invalid SAN pattern {pattern!r}: an address or '*@' and a domain"
                )
        elif kind == "uri":
            if "*" in value[:-1]:
                raise BadInputError(f"invalid SAN pattern {pattern!r}: '*' only at the end")
        else:
            raise BadInputError(
                f"invalid SAN pattern {pattern!r}: unknown type {kind!r} (dns, ip, email, uri)"
            )
        out.append(f"{kind}:{value}")
    return tuple(out)


def san_matches(pattern: str, san: x509.GeneralName) -> bool:
    kind, _, value = pattern.partition(":")
    if kind == "dns" and isinstance(san, x509.DNSName):
        host, want = san.value.lower().rstrip("."), value.lower()
        if host == want:  # also a wildcard SAN under the same wildcard pattern
            return True
        if want.startswith("*."):
            label, _, rest = host.partition(".")
            return bool(label) and label != "*" and rest == want[2:]
        return host == want
    if kind == "ip" and isinstance(san, x509.IPAddress):
        address = san.value
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        network = ipaddress.ip_network(value)
        return address.version == network.version and address in network
    if kind == "email" and isinstance(san, x509.RFC822Name):
        local, _, domain = san.value.rpartition("@")
        want_local, _, want_domain = value.rpartition("@")
        if domain.lower() != want_domain.lower():
            return False
        return want_local == "*" or local == want_local
    if kind == "uri" and isinstance(san, x509.UniformResourceIdentifier):
        if value.endswith("*"):
            return san.value.startswith(value[:-1])
        return san.value == value
    return False


def parse_sans(texts) -> tuple[x509.GeneralName, ...]:
    if not isinstance(texts, list | tuple) or not all(isinstance(t, str) for t in texts):
        raise BadInputError("sans must be a list of 'type:value' strings")
    return tuple(parse_san(t) for t in texts)


def entity_from_row(row, ca_name: str) -> EndEntity:
    return EndEntity(
        id=row.id,
        name=row.name,
        email=row.email,
        ca=ca_name,
        profile=row.profile,
        subject_template=row.subject_template,
        allowed_sans=tuple(json.loads(row.allowed_sans)),
        attributes=json.loads(row.attributes),
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
