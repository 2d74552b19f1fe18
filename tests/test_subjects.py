"""Subjects written as RFC 4514 strings (ca/requests.py parse_subject): the
standard attribute names and those the profiles allow (emailAddress,
serialNumber) are read; malformed input is refused saying what is wrong."""

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from ca.errors import BadInputError
from ca.requests import parse_subject
from ra.service import RAService
from tests.conftest import make_csr


@pytest.mark.parametrize(
    "text",
    ["CN=a,O=b,C=DE", "CN=x+UID=y,O=z", "CN=a\\,b,OU=Sales", "CN=www.example.com", "2.5.4.3=a"],
)
def test_reads_as_cryptography_does(text):
    assert parse_subject(text) == x509.Name.from_rfc4514_string(text)


def test_profile_attributes_and_escapes():
    name = parse_subject(
        "CN=Alice, emailAddress=alice@example.com ,serialNumber=1234,title=Dr,"
        "street=Main St 1,2.5.4.4=#0c03616263"
    )
    values = {a.oid: a.value for a in name}
    assert values[NameOID.COMMON_NAME] == "Alice"
    assert values[NameOID.EMAIL_ADDRESS] == "alice@example.com"
    assert values[NameOID.SERIAL_NUMBER] == "1234"
    assert values[NameOID.TITLE] == "Dr"
    assert values[NameOID.STREET_ADDRESS] == "Main St 1"
    assert values[NameOID.SURNAME] == "abc"  # a '#' value: the DER of a UTF8String
    assert parse_subject("CN=\\41b\\ ").get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Ab "
    )
    assert parse_subject("") == x509.Name([])  # SANs alone name the holder
    # What the CA stores (rfc4514_string writes these two as OIDs) reads back.
    assert parse_subject(name.rfc4514_string()) == name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a dn", "'not a dn' (at character 1) has no '=': each attribute is NAME=value"),
        ("CN=a,,O=b", "an empty attribute at character 6"),
        ("CN=a+", "an empty attribute at character 6"),
        (",CN=a", "an empty attribute at character 1"),
        ("=x", "an attribute at character 1 has a value but no name"),
        ("CN=", "CN has an empty value"),
        ("CN=a,FOO=b", "unknown attribute name 'FOO'; known: CN, L, ST, O, OU, C"),
        ("CN=a\\q", "'\\q' in the value of CN is no escape"),
        ("CN=a\\", "the value of CN ends in a backslash that escapes nothing"),
        ("CN=\\ff", "the hex escapes in the value of CN are not UTF-8"),
        ("CN=#zz", "the value of CN starts with '#' but is not hex digits"),
        ("CN=#0201ff", "the '#' value of CN is not a DER string"),
        ("C=DEU", "C='DEU': "),
    ],
)
def test_malformed_subjects_say_what_is_wrong(text, message):
    with pytest.raises(BadInputError) as refused:
        parse_subject(text)
    assert message in refused.value.message
    assert not refused.value.message.rstrip().endswith(":")  # never an empty reason


def test_a_client_certificate_with_email_and_serial_number(pki):
    """Both attributes the tls-client profile allows, through an end entity."""
    ra = RAService(pki)
    ra.create_entity(
        "alice",
        email="alice@example.com",
        ca="issuing",
        profile="tls-client",
        subject_template="CN=Alice,emailAddress={email},serialNumber={staff}",
        attributes={"staff": "E-1234"},
    )
    issued = ra.enroll("alice", csr=make_csr("x", ())).certificate.certificate
    assert issued.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)[0].value == (
        "alice@example.com"
    )
    assert issued.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "E-1234"
