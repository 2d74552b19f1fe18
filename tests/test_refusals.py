"""Every refusal names the rule that was broken and writes nothing but its
audit record."""

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ca.errors import BadInputError, ConflictError, NotFoundError, PolicyError
from tests.conftest import counts, last_audit, make_csr, new_key


def refused(service, error, match, call, *args, **kwargs):
    before = counts(service)
    with pytest.raises(error, match=match):
        call(*args, **kwargs)
    assert counts(service) == before, "a refused operation changed the store"
    entry = last_audit(service)
    assert entry.result in ("refused", "error")
    assert json.loads(entry.detail)["error"] == error.code


@pytest.mark.parametrize(
    ("csr_args", "profile", "match"),
    [
        (
            {"key": "ed25519"},
            "tls-server",
            "profile 'tls-server' does not allow key type ed25519; allowed: ec-p256",
        ),
        ({"key": "rsa-1024"}, "tls-server", "does not allow key type rsa-1024"),
        ({"key": "ec-p521"}, "tls-server", "elliptic curve secp521r1 is not supported"),
        (
            {"sans": ["email:a@example.com"], "cn": None},
            "tls-server",
            r"does not allow SAN type email \(email:a@example.com\); allowed: dns, ip",
        ),
        ({"sans": ["uri:https://example.com/"], "cn": None}, "tls-client", None),
        (
            {"sans": ["dns:bad_name.example.com"], "cn": None},
            "tls-server",
            "SAN dns:bad_name.example.com is not a valid fully qualified host name",
        ),
        ({"sans": ["dns:localhost"], "cn": None}, "tls-server", "not a valid fully qualified"),
        (
            {"sans": [], "cn": "www.example.com"},
            "tls-server",
            "profile 'tls-server' requires at least one SAN",
        ),
        (
            {"sans": ["dns:a.example.com"], "cn": "b.example.com"},
            "tls-server",
            r"the CN 'b.example.com' must also appear as a SAN \(BR 7.1.4.3\)",
        ),
        (
            {"extra": [x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Org")]},
            "tls-server",
            "profile 'tls-server' does not allow subject attribute O; allowed: CN",
        ),
        ({"sans": [], "cn": None}, "tls-client", "needs a subject or at least one SAN"),
    ],
)
def test_profile_refusals(pki, csr_args, profile, match):
    csr = make_csr(
        csr_args.get("cn", "www.example.com"),
        csr_args.get("sans", ["dns:www.example.com"]),
        new_key(csr_args.get("key", "ec-p256")),
        extra_attributes=csr_args.get("extra", ()),
    )
    if match is None:  # a control: this one is allowed
        assert pki.issue("issuing", csr, profile)
        return
    refused(pki, PolicyError, match, pki.issue, "issuing", csr, profile)


def test_too_many_sans(pki):
    sans = [f"dns:h{i}.example.com" for i in range(101)]
    refused(
        pki,
        PolicyError,
        "101 SANs requested; profile 'tls-server' allows at most 100",
        pki.issue,
        "issuing",
        make_csr("h0.example.com", sans),
        "tls-server",
    )


def test_validity_beyond_profile(pki):
    refused(
        pki,
        PolicyError,
        "requested validity of 399 days exceeds the 398 days that profile 'tls-server' allows",
        pki.issue,
        "issuing",
        make_csr(),
        "tls-server",
        days=399,
    )
    refused(
        pki,
        BadInputError,
        "validity must be at least 1 day, not 0",
        pki.issue,
        "issuing",
        make_csr(),
        "tls-server",
        days=0,
    )


def test_validity_beyond_issuer(service):
    service.init_root("root", "CN=Root")
    service.create_sub("short", "root", "CN=Short-lived Sub", days=100)
    refused(
        service,
        PolicyError,
        r"would expire on .*, after its issuer 'short' \(notAfter .*\); request at most 99 days",
        service.issue,
        "short",
        make_csr(),
        "tls-server",
        days=200,
    )


def test_bad_csr_signature(pki):
    key = new_key()
    good = x509.load_pem_x509_csr(make_csr(key=key))
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # flip a bit in the signature
    refused(
        pki,
        BadInputError,
        "CSR signature does not verify",
        pki.issue,
        "issuing",
        bytes(der),
        "tls-server",
    )
    # A CSR signed by a key other than the one it carries.
    other = new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x.example.com")])
    )
    signed_by_other = builder.sign(other, hashes.SHA256())
    tampered = signed_by_other.public_bytes(serialization.Encoding.DER)
    tampered = tampered.replace(
        other.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    refused(
        pki,
        BadInputError,
        "CSR signature does not verify",
        pki.issue,
        "issuing",
        tampered,
        "tls-server",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        b"\x30\x82\xff\xff\x00",
    ],
    ids=["empty", "garbage", "bad-pem", "truncated-der"],
)
def test_malformed_csr(pki, data):
    refused(
        pki,
        BadInputError,
        "not a valid PKCS#10 certificate request",
        pki.issue,
        "issuing",
        data,
        "tls-server",
    )


def test_truncated_csr(pki):
    der = x509.load_pem_x509_csr(make_csr()).public_bytes(serialization.Encoding.DER)
    refused(
        pki, BadInputError, "not a valid PKCS#10", pki.issue, "issuing", der[:-10], "tls-server"
    )


def test_unknown_things(pki):
    refused(
        pki,
        NotFoundError,
        "no profile 'nope'; configured:",
        pki.issue,
        "issuing",
        make_csr(),
        "nope",
    )
    refused(pki, NotFoundError, "no CA named 'nope'", pki.issue, "nope", make_csr(), "tls-server")
    refused(
        pki,
        PolicyError,
        "profile 'root-ca' is only for self-signed roots",
        pki.issue,
        "issuing",
        make_csr(),
        "root-ca",
    )


def test_sub_ca_under_path_length_zero(pki):
    refused(
        pki,
        PolicyError,
        "issuer 'issuing' has pathLenConstraint 0 and cannot certify",
        pki.create_sub,
        "third",
        "issuing",
        "CN=Third Level",
    )
    assert not pki.token.has_key("ca-third"), "the key of a refused CA must be removed"


def test_duplicate_ca_name_and_bad_names(pki):
    refused(
        pki, ConflictError, "a CA named 'root' already exists", pki.init_root, "root", "CN=Again"
    )
    refused(pki, BadInputError, "invalid CA name 'Bad Name'", pki.init_root, "Bad Name", "CN=x")
    refused(pki, BadInputError, "invalid subject", pki.init_root, "ok", "not a dn")
    refused(
        pki,
        PolicyError,
        "profile 'root-ca' does not allow subject attribute",
        pki.init_root,
        "ok2",
        "CN=x,DC=example",
    )
    assert not pki.token.has_key("ca-ok2")


def test_generated_key_refusals(pki):
    refused(
        pki,
        PolicyError,
        "profile 'tls-server' does not allow key type ed25519",
        pki.issue_with_new_key,
        "issuing",
        "tls-server",
        "CN=a.example.com",
        ["dns:a.example.com"],
        key_type="ed25519",
    )
    refused(
        pki,
        BadInputError,
        "invalid SAN 'ftp:x': unknown type 'ftp'",
        pki.issue_with_new_key,
        "issuing",
        "tls-client",
        "CN=x",
        ["ftp:x"],
    )
    refused(
        pki,
        BadInputError,
        "invalid SAN 'ip:999.1.1.1': not an IP address",
        pki.issue_with_new_key,
        "issuing",
        "tls-server",
        "",
        ["ip:999.1.1.1"],
    )


def test_expired_ca_cannot_issue(make_service):
    from datetime import timedelta

    from tests.conftest import FIXED_NOW

    now = [FIXED_NOW]
    service = make_service(clock=lambda: now[0])
    service.init_root("root", "CN=Root")
    service.create_sub("sub", "root", "CN=Sub", days=10)
    now[0] = FIXED_NOW + timedelta(days=11)
    refused(
        service,
        PolicyError,
        "CA 'sub' expired on",
        service.issue,
        "sub",
        make_csr(),
        "tls-server",
        days=1,
    )


def test_default_validity_ends_with_the_issuer(service):
    service.init_root("root", "CN=Root")
    sub = service.create_sub("short", "root", "CN=Short-lived Sub", days=30)
    record = service.issue("short", make_csr(), "tls-server")  # profile default: 90 days
    assert record.not_after == sub.not_after
    assert record.certificate.not_valid_after_utc == sub.certificate.not_valid_after_utc
