"""ACME identifiers (RFC 8555 7.1.4, 9.7.7; RFC 8738): ``dns`` names, with
one leading ``*.`` for a wildcard, and ``ip`` addresses; how each becomes
a SAN, and which of a CSR's names must match an order's.
"""

import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509

from acmesrv.problems import Problem, subproblem

MAX_IDENTIFIERS = 100
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, order=True)
class Identifier:
    type: str  # dns | ip
    value: str

    @property
    def wildcard(self) -> bool:
        return self.type == "dns" and self.value.startswith("*.")

    @property
    def base(self) -> str:
        """The name validated for it: a wildcard's domain, else itself."""
        return self.value[2:] if self.wildcard else self.value

    def json(self) -> dict:
        return {"type": self.type, "value": self.value}

    def san(self) -> x509.GeneralName:
        if self.type == "ip":
            return x509.IPAddress(ipaddress.ip_address(self.value))
        return x509.DNSName(self.value)

    def registered_domain(self, labels: int) -> str | None:
        """The last ``labels`` labels of a DNS name (the rate limit's unit);
        None for an address."""
        if self.type != "dns":
            return None
        return ".".join(self.base.split(".")[-labels:])


def parse_identifier(obj) -> Identifier:
    """One identifier object, normalised (lower case, canonical address),
    or a Problem naming what is wrong with it."""
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise Problem("malformed", "an identifier is an object with 'type' and 'value'")
    kind, value = obj["type"], obj.get("value")
    if not isinstance(value, str) or not value:
        raise Problem("malformed", "an identifier is an object with 'type' and 'value'")
    if kind == "ip":
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise Problem("malformed", f"{value!r} is not an IP address") from None
        if getattr(address, "scope_id", None):
            # RFC 8738 3: the RFC 5952 text form, which has no zone.
            raise Problem("malformed", f"{value!r}: an address with a zone is not an identifier")
        return Identifier("ip", str(address))
    if kind != "dns":
        raise Problem(
            "unsupportedIdentifier", f"identifier type {kind!r} is not supported (dns, ip)"
        )
    name = value.lower()
    if name.endswith("."):
        raise Problem("rejectedIdentifier", f"{value!r}: a name may not end with a dot")
    labels = name.split(".")
    wildcard = labels[0] == "*"
    rest = labels[1:] if wildcard else labels
    if len(name) > 253 or len(rest) < 2 or not all(_LABEL.fullmatch(x) for x in rest):
        raise Problem("rejectedIdentifier", f"{value!r} is not a fully qualified domain name")
    if "*" in name[1:]:
        raise Problem("rejectedIdentifier", f"{value!r}: '*' only as the whole first label")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise Problem("malformed", f"{value!r} is an address: use an 'ip' identifier")
    return Identifier("dns", name)


def parse_identifiers(values) -> tuple[Identifier, ...]:
    """A newOrder's identifiers: 1 to 100, each well formed, no repeats."""
    if not isinstance(values, list) or not values:
        raise Problem("malformed", "'identifiers' must be a non-empty list")
    if len(values) > MAX_IDENTIFIERS:
        raise Problem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers per order")
    problems, out = [], []
    for obj in values:
        try:
            out.append(parse_identifier(obj))
        except Problem as exc:
            if not isinstance(obj, dict) or not isinstance(obj.get("value"), str):
                raise
            problems.append(
                subproblem(exc.type, exc.detail, {"type": obj.get("type"), "value": obj["value"]})
            )
    if problems:
        if len(problems) == 1:
            only = problems[0]
            raise Problem(only["type"].rpartition(":")[2], only["detail"], subproblems=(only,))
        raise Problem(
            "compound", f"{len(problems)} identifiers are refused", subproblems=tuple(problems)
        )
    unique = sorted(set(out))
    if len(unique) != len(out):
        raise Problem("malformed", "an identifier is repeated")
    return tuple(unique)


def csr_identifiers(csr: x509.CertificateSigningRequest) -> set[Identifier]:
    """The names a CSR asks for: its SANs (dNSName, iPAddress) and its CN."""
    names = set()
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        ext = None
    except ValueError as exc:
        raise Problem("badCSR", f"the CSR's extensions cannot be read: {exc}") from None
    if ext is not None:
        for general in ext.value:
            if isinstance(general, x509.DNSName):
                names.add(Identifier("dns", general.value.lower()))
            elif isinstance(general, x509.IPAddress):
                names.add(Identifier("ip", str(general.value)))
            else:
                raise Problem("badCSR", f"the CSR asks for a SAN ACME cannot validate: {general}")
    for attribute in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        value = str(attribute.value).lower()
        try:
            names.add(Identifier("ip", str(ipaddress.ip_address(value))))
        except ValueError:
            names.add(Identifier("dns", value))
    return names


def common_name(csr: x509.CertificateSigningRequest, identifiers) -> str:
    """The name the certificate's subject carries: the CSR's CN where it is
    one of the order's DNS names, else the first DNS name that fits (64
    characters, RFC 5280 ub-common-name); "" (an empty subject) when none
    does, e.g. for addresses alone, as Let's Encrypt issues them and as
    clients expect (certbot reads a CN as a DNS name)."""
    wanted = [i.value for i in identifiers if i.type == "dns"]
    for attribute in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        value = str(attribute.value).lower()
        if value in wanted and len(value) <= 64:
            return value
    for value in wanted:
        if len(value) <= 64:
            return value
    return ""
