"""The SCEP (RFC 8894) message codec: round trips through our client and
server sides, what OpenSSL makes of our messages and we of its, requests
captured from micromdm's scepclient, the live client against our CertReps,
and hostile input."""

import base64
import datetime as dt
import os
import random
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from enroll import scepmsg
from enroll.scepmsg import (
    MESSAGE_TYPES,
    PKIMessage,
    ScepFailure,
    ScepMalformed,
    build_cert_rep,
    build_request,
    parse_cert_rep,
    parse_request,
)
from tests.conftest import need

DATA = Path(__file__).parent / "data" / "scep"
NOW = dt.datetime.now(dt.UTC)
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer=None, issuer_key=None, *, ca=False, serial=None):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer or subject))
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _csr(key, cn="dev1", password: str | None = "secret"):
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(cn))
    if password is not None:
        builder = builder.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, password.encode())
    return builder.sign(key, hashes.SHA256()).public_bytes(DER)


class PKI:
    """An RA (its own CA here), a client with a self-signed certificate, a
    stranger, and an issued certificate and CRL to hand out."""

    def __init__(self):
        self.ra_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ra = _cert("Test SCEP RA", self.ra_key, ca=True)
        self.client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client = _cert("SCEP SIGNER", self.client_key)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = _cert("Other RA", self.other_key, ca=True)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.ec_client = _cert("EC SIGNER", self.ec_key)
        self.issued = _cert("dev1", self.client_key, "Test SCEP RA", self.ra_key)
        self.crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ra.subject)
            .last_update(NOW)
            .next_update(NOW + dt.timedelta(days=1))
            .sign(self.ra_key, hashes.SHA256())
            .public_bytes(DER)
        )
        self.csr = _csr(self.client_key)

    def request(self, message_type="PKCSReq", content=None, **kw) -> bytes:
        args = {
            "signer_cert": self.client,
            "signer_key": self.client_key,
            "recipient_cert": self.ra,
            "transaction_id": "tx-1",
            "sender_nonce": b"N" * 16,
        }
        args.update(kw)
        return build_request(message_type, self.csr if content is None else content, **args)

    def parse(self, der: bytes, **kw) -> PKIMessage:
        return parse_request(der, self.ra, self.ra_key, **kw)

    def rep(self, request: PKIMessage, status="SUCCESS", **kw) -> bytes:
        if status == "SUCCESS" and "crl" not in kw:
            kw.setdefault("certificates", [self.issued])
        return build_cert_rep(
            request,
            status=status,
            signer_cert=self.ra,
            signer_key=self.ra_key,
            sender_nonce=b"R" * 16,
            **kw,
        )

    def read_rep(self, der: bytes, recipient_key=None, recipient_cert=None):
        return parse_cert_rep(
            der,
            signer_cert_expected=self.ra,
            recipient_key=recipient_key or self.client_key,
            recipient_cert=recipient_cert or self.client,
        )


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def _issuer_and_serial(cert: x509.Certificate) -> bytes:
    return scepmsg._issuer_and_serial(cert).dump()


def _issuer_and_subject(issuer: x509.Name, subject: x509.Name) -> bytes:
    return scepmsg.IssuerAndSubject(
        {
            "issuer": ax509.Name.load(issuer.public_bytes()),
            "subject": ax509.Name.load(subject.public_bytes()),
        }
    ).dump()


def _openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([need("openssl"), *args], input=data, capture_output=True, check=False)


# -- round trips ----------------------------------------------------------------


def test_pkcsreq_round_trip(pki):
    msg = pki.parse(pki.request())
    assert msg.message_type == "PKCSReq"
    assert msg.transaction_id == "tx-1"
    assert msg.sender_nonce == b"N" * 16
    assert msg.signer_certificate == pki.client
    assert (msg.digest, msg.cipher) == ("sha256", "aes256")
    assert msg.content == pki.csr
    assert scepmsg.challenge_password(msg.content) == "secret"


def test_names_keep_their_string_types(pki):
    issuer = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Grüße GmbH"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ca@example.com"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, "CA", _type=x509.name._ASN1Type.PrintableString
            ),
        ]
    )
    got_issuer, got_subject = scepmsg.issuer_and_subject(_issuer_and_subject(issuer, _name("d")))
    assert got_issuer.public_bytes() == issuer.public_bytes() and got_subject == _name("d")
    with pytest.raises(ScepFailure, match="IssuerAndSubject") as info:
        scepmsg.issuer_and_subject(_issuer_and_serial(pki.issued))
    assert info.value.fail_info == "badRequest"


def test_every_request_type_round_trips(pki):
    contents = {
        "PKCSReq": pki.csr,
        "RenewalReq": pki.csr,
        "CertPoll": _issuer_and_subject(pki.ra.subject, _name("dev1")),
        "GetCert": _issuer_and_serial(pki.issued),
        "GetCRL": _issuer_and_serial(pki.issued),
    }
    for message_type, content in contents.items():
        msg = pki.parse(pki.request(message_type, content))
        assert (msg.message_type, msg.content) == (message_type, content)
    issuer, subject = scepmsg.issuer_and_subject(contents["CertPoll"])
    assert (issuer, subject) == (pki.ra.subject, _name("dev1"))
    assert scepmsg.issuer_and_serial(contents["GetCert"]) == (
        pki.ra.subject,
        pki.issued.serial_number,
    )


@pytest.mark.parametrize(
    ("digest", "cipher"),
    [("sha256", "aes128"), ("sha384", "aes192"), ("sha512", "aes256"), ("sha256", "aes256")],
)
def test_digests_and_ciphers(pki, digest, cipher):
    msg = pki.parse(pki.request(digest=digest, cipher=cipher))
    assert (msg.digest, msg.cipher) == (digest, cipher)


def test_ecdsa_signer(pki):
    der = pki.request(signer_cert=pki.ec_client, signer_key=pki.ec_key, digest="sha384")
    assert pki.parse(der).signer_certificate == pki.ec_client


@pytest.mark.parametrize(
    ("digest", "cipher", "what"),
    [("sha1", "aes256", "sha1"), ("sha256", "des3", "des3"), ("sha256", "des", "des")],
)
def test_legacy_algorithms_only_with_legacy(pki, digest, cipher, what):
    der = pki.request(digest=digest, cipher=cipher)
    with pytest.raises(ScepFailure, match=what) as info:
        pki.parse(der)
    assert info.value.fail_info == "badAlg"
    assert info.value.request.transaction_id == "tx-1"
    msg = pki.parse(der, legacy=True)
    assert (msg.digest, msg.cipher) == (digest, cipher)


def test_cert_rep_success(pki):
    request = pki.parse(pki.request(cipher="aes128"))
    rep = pki.read_rep(pki.rep(request))
    assert rep.status == "SUCCESS" and rep.fail_info is None
    assert rep.transaction_id == "tx-1"
    assert rep.recipient_nonce == b"N" * 16 and rep.sender_nonce == b"R" * 16
    assert rep.certificates == [pki.issued] and rep.crl is None


def test_cert_rep_get_crl(pki):
    request = pki.parse(pki.request("GetCRL", _issuer_and_serial(pki.issued)))
    rep = pki.read_rep(pki.rep(request, crl=pki.crl))
    assert rep.status == "SUCCESS" and rep.crl == pki.crl and rep.certificates == []


@pytest.mark.parametrize("fail_info", sorted(scepmsg.FAIL_INFO))
def test_cert_rep_failure(pki, fail_info):
    request = pki.parse(pki.request())
    rep = pki.read_rep(pki.rep(request, "FAILURE", fail_info=fail_info))
    assert (rep.status, rep.fail_info, rep.certificates) == ("FAILURE", fail_info, [])
    assert rep.fail_text is None
    rep = pki.read_rep(pki.rep(request, "FAILURE", fail_info=fail_info, fail_text="nö"))
    assert (rep.fail_info, rep.fail_text) == (fail_info, "nö")


@pytest.mark.parametrize("message_type", ["PKCSReq", "RenewalReq"])
def test_cert_rep_pending(pki, message_type):
    request = pki.parse(pki.request(message_type))
    rep = pki.read_rep(pki.rep(request, "PENDING"))
    assert (rep.status, rep.fail_info, rep.recipient_nonce) == ("PENDING", None, b"N" * 16)


def test_cert_rep_for_every_request_type_and_status(pki):
    contents = {
        "PKCSReq": pki.csr,
        "RenewalReq": pki.csr,
        "CertPoll": _issuer_and_subject(pki.ra.subject, _name("dev1")),
        "GetCert": _issuer_and_serial(pki.issued),
        "GetCRL": _issuer_and_serial(pki.issued),
    }
    for message_type, content in contents.items():
        request = pki.parse(pki.request(message_type, content, digest="sha512"))
        success = {"crl": pki.crl} if message_type == "GetCRL" else {}
        for status, kw in [
            ("SUCCESS", success),
            ("PENDING", {}),
            ("FAILURE", {"fail_info": "badCertId"}),
        ]:
            rep = pki.read_rep(pki.rep(request, status, **kw))
            assert (rep.status, rep.transaction_id) == (status, "tx-1")


def test_failure_answers_a_request_that_failed(pki):
    with pytest.raises(ScepFailure) as info:
        pki.parse(pki.request(digest="sha1"))
    rep = pki.read_rep(pki.rep(info.value.request, "FAILURE", fail_info=info.value.fail_info))
    assert (rep.fail_info, rep.recipient_nonce) == ("badAlg", b"N" * 16)


def test_build_cert_rep_refuses_misuse(pki):
    request = pki.parse(pki.request())
    for status, kw in [
        ("FAILURE", {}),
        ("PENDING", {"fail_info": "badAlg"}),
        ("SUCCESS", {"certificates": []}),
        ("DONE", {}),
    ]:
        with pytest.raises(ValueError):
            pki.rep(request, status, **kw)


def test_capabilities():
    assert scepmsg.capabilities(False) == (
        "AES\nPOSTPKIOperation\nRenewal\nSCEPStandard\nSHA-256\nSHA-512\n"
    )
    assert scepmsg.capabilities(True).endswith("SHA-512\nDES3\nSHA-1\n")


def test_challenge_password_string_types(pki):
    assert scepmsg.challenge_password(_csr(pki.client_key, password=None)) is None
    assert scepmsg.challenge_password(_csr(pki.client_key, password="pässwörd")) == "pässwörd"
    with pytest.raises(ScepFailure, match="CSR"):
        scepmsg.challenge_password(b"\x30\x03\x02\x01\x00")


def test_asn1crypto_knows_the_scep_attributes():
    attr = cms.CMSAttribute.load(
        cms.CMSAttribute(
            {"type": "scep_transaction_id", "values": [core.PrintableString("x")]}
        ).dump()
    )
    assert attr["type"].dotted == "2.16.840.1.113733.1.9.7"
    assert attr["values"].native == ["x"]
    assert cms.CMSAttributeType("1.2.840.113549.1.9.4").native == "message_digest"


# -- OpenSSL reads what we make, we read what it makes --------------------------


def test_openssl_verifies_and_decrypts_a_cert_rep(pki, tmp_path):
    request = pki.parse(pki.request(cipher="aes192"))
    (tmp_path / "rep.der").write_bytes(pki.rep(request))
    (tmp_path / "ra.pem").write_bytes(pki.ra.public_bytes(PEM))
    (tmp_path / "client.pem").write_bytes(pki.client.public_bytes(PEM))
    (tmp_path / "client.key").write_bytes(
        pki.client_key.private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    t = str(tmp_path)
    out = _openssl(
        "cms", "-verify", "-inform", "DER", "-in", f"{t}/rep.der", "-CAfile", f"{t}/ra.pem",
        "-purpose", "any", "-binary", "-out", f"{t}/env.der",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert b"Verification successful" in out.stderr
    printed = _openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", f"{t}/rep.der")
    for oid in ("2.16.840.1.113733.1.9.2", "2.16.840.1.113733.1.9.3", "2.16.840.1.113733.1.9.6"):
        assert oid.encode() in printed.stdout
    out = _openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", f"{t}/env.der", "-recip", f"{t}/client.pem",
        "-inkey", f"{t}/client.key", "-binary", "-out", f"{t}/inner.der",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    certs = _openssl("pkcs7", "-inform", "DER", "-in", f"{t}/inner.der", "-print_certs")
    assert certs.returncode == 0, certs.stderr
    assert x509.load_pem_x509_certificates(certs.stdout) == [pki.issued]
    enc = _openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", f"{t}/env.der")
    assert b"aes-192-cbc" in enc.stdout


@pytest.mark.parametrize("status", ["FAILURE", "PENDING"])
def test_openssl_verifies_a_cert_rep_without_content(pki, tmp_path, status):
    request = pki.parse(pki.request())
    kw = {"fail_info": "badRequest"} if status == "FAILURE" else {}
    (tmp_path / "rep.der").write_bytes(pki.rep(request, status, **kw))
    (tmp_path / "ra.pem").write_bytes(pki.ra.public_bytes(PEM))
    t = str(tmp_path)
    out = _openssl(
        "cms", "-verify", "-inform", "DER", "-in", f"{t}/rep.der", "-CAfile", f"{t}/ra.pem",
        "-purpose", "any", "-binary", "-content", "/dev/null",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    asn1 = _openssl("asn1parse", "-inform", "DER", "-in", f"{t}/rep.der")
    assert asn1.returncode == 0
    assert b"pkcs7-envelopedData" not in asn1.stdout


def test_openssl_reads_certs_only(pki):
    out = _openssl(
        "pkcs7", "-inform", "DER", "-print_certs", data=scepmsg.certs_only([pki.ra, pki.issued])
    )
    printed = x509.load_pem_x509_certificates(out.stdout)
    assert sorted(c.serial_number for c in printed) == sorted(
        [pki.ra.serial_number, pki.issued.serial_number]
    )


def _wrap_envelope(pki, envelope: bytes) -> bytes:
    """A pkiMessage around an EnvelopedData made by someone else."""
    attrs = [
        scepmsg._attribute(scepmsg._OID_MESSAGE_TYPE, core.PrintableString("19")),
        scepmsg._attribute(scepmsg._OID_TRANSACTION_ID, core.PrintableString("tx-openssl")),
        scepmsg._attribute(scepmsg._OID_SENDER_NONCE, core.OctetString(os.urandom(16))),
    ]
    return scepmsg._sign(envelope, attrs, pki.client, pki.client_key, "sha256")


@pytest.mark.parametrize(
    ("flags", "cipher"),
    [
        (["-aes256"], "aes256"),
        (["-aes128", "-keyopt", "rsa_padding_mode:oaep"], "aes128"),
        (
            ["-aes192", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"],
            "aes192",
        ),
    ],
)
def test_openssl_made_envelope(pki, tmp_path, flags, cipher):
    (tmp_path / "ra.pem").write_bytes(pki.ra.public_bytes(PEM))
    out = _openssl(
        "cms", "-encrypt", flags[0], "-recip", str(tmp_path / "ra.pem"), *flags[1:], "-binary",
        "-outform", "DER",
        data=pki.csr,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    msg = pki.parse(_wrap_envelope(pki, out.stdout))
    assert (msg.message_type, msg.cipher, msg.content) == ("PKCSReq", cipher, pki.csr)


def test_openssl_envelope_for_several_recipients(pki, tmp_path):
    """scepclient encrypts to every certificate GetCACert returned (CA and
    RA): the RA's recipient is the one opened."""
    (tmp_path / "other.pem").write_bytes(pki.other.public_bytes(PEM))
    (tmp_path / "ra.pem").write_bytes(pki.ra.public_bytes(PEM))
    out = _openssl(
        "cms", "-encrypt", "-aes256", "-recip", str(tmp_path / "other.pem"),
        "-recip", str(tmp_path / "ra.pem"), "-binary", "-outform", "DER", data=pki.csr,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert pki.parse(_wrap_envelope(pki, out.stdout)).content == pki.csr


def test_openssl_envelope_for_another_ra(pki, tmp_path):
    (tmp_path / "other.pem").write_bytes(pki.other.public_bytes(PEM))
    out = _openssl(
        "cms", "-encrypt", "-aes256", "-recip", str(tmp_path / "other.pem"), "-binary",
        "-outform", "DER", data=pki.csr,
    )  # fmt: skip
    with pytest.raises(ScepFailure, match="not encrypted to this RA") as info:
        pki.parse(_wrap_envelope(pki, out.stdout))
    assert info.value.fail_info == "badRequest"


# -- micromdm scepclient (Debian's scep package) --------------------------------


@pytest.fixture(scope="module")
def captured_ra():
    ra = x509.load_pem_x509_certificate((DATA / "ra.pem").read_bytes())
    key = serialization.load_pem_private_key((DATA / "ra.key").read_bytes(), None)
    return ra, key


def test_scepclient_pkcsreq(captured_ra):
    ra, key = captured_ra
    der = (DATA / "scepclient-pkcsreq.der").read_bytes()
    with pytest.raises(ScepFailure, match="sha1") as info:
        parse_request(der, ra, key)
    assert info.value.fail_info == "badAlg"
    assert info.value.request.transaction_id == "VWD9lrJ2O2hMyibit59o9fGhV0U="
    msg = parse_request(der, ra, key, legacy=True)
    assert (msg.message_type, msg.digest, msg.cipher) == ("PKCSReq", "sha1", "des")
    assert msg.transaction_id == "VWD9lrJ2O2hMyibit59o9fGhV0U="
    assert len(msg.sender_nonce) == 16
    assert msg.signer_certificate.subject.rfc4514_string() == "CN=SCEP SIGNER,O=scep-client"
    csr = x509.load_der_x509_csr(msg.content)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev1"
    assert scepmsg.challenge_password(msg.content) == "secret"


def test_scepclient_renewalreq(captured_ra):
    ra, key = captured_ra
    msg = parse_request((DATA / "scepclient-renewalreq.der").read_bytes(), ra, key, legacy=True)
    assert (msg.message_type, msg.digest, msg.cipher) == ("RenewalReq", "sha1", "des")
    assert msg.signer_certificate.issuer == ra.subject
    assert msg.signer_certificate.public_key() == x509.load_der_x509_csr(msg.content).public_key()


def test_cert_rep_to_scepclient_request(captured_ra):
    ra, key = captured_ra
    client_key = serialization.load_pem_private_key(
        (DATA / "scepclient-key.pem").read_bytes(), None
    )
    msg = parse_request((DATA / "scepclient-pkcsreq.der").read_bytes(), ra, key, legacy=True)
    issued = _cert("dev1", client_key, "Revoca Test SCEP RA", key)
    der = build_cert_rep(
        msg, status="SUCCESS", signer_cert=ra, signer_key=key, certificates=[issued],
        sender_nonce=os.urandom(16),
    )  # fmt: skip
    rep = parse_cert_rep(
        der, signer_cert_expected=ra, recipient_key=client_key,
        recipient_cert=msg.signer_certificate,
    )  # fmt: skip
    assert rep.certificates == [issued]
    envelope = cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native
    alg = cms.ContentInfo.load(envelope)["content"]["encrypted_content_info"]
    assert alg["content_encryption_algorithm"]["algorithm"].native == "des"


class _ScepHandler(BaseHTTPRequestHandler):
    """GetCACaps, GetCACert and PKIOperation answered by the codec."""

    ra: x509.Certificate
    ra_key: rsa.RSAPrivateKey
    answer: str = "SUCCESS"
    caps: str = scepmsg.capabilities(False)
    seen: list
    methods: list

    def log_message(self, *args):
        pass

    def _reply(self, body: bytes) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        operation = query.get("operation", [""])[0]
        if operation == "GetCACaps":
            return self._send("text/plain", self.caps.encode())
        if operation == "GetCACert":
            return self._send("application/x-x509-ca-cert", self.ra.public_bytes(DER))
        if self.command == "GET":  # scepclient sends base64url, unpadded
            body = base64.urlsafe_b64decode(query["message"][0] + "==")
        self.methods.append(self.command)
        try:
            msg = parse_request(body, self.ra, self.ra_key, legacy=True)
        except ScepFailure as exc:
            msg, status = exc.request, "FAILURE"
            kw = {"fail_info": exc.fail_info, "fail_text": str(exc)}
        else:
            status, kw = self.answer, {}
            if status == "FAILURE":
                kw = {"fail_info": "badRequest", "fail_text": "no such device: dev1"}
        self.seen.append(msg)
        if status == "SUCCESS":
            csr = x509.load_der_x509_csr(msg.content)
            cert = (
                x509.CertificateBuilder()
                .subject_name(csr.subject)
                .issuer_name(self.ra.subject)
                .public_key(csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW - dt.timedelta(hours=1))
                .not_valid_after(NOW + dt.timedelta(days=1))
                .sign(self.ra_key, hashes.SHA256())
            )
            kw = {"certificates": [cert]}
        rep = build_cert_rep(
            msg, status=status, signer_cert=self.ra, signer_key=self.ra_key,
            sender_nonce=os.urandom(16), **kw,
        )  # fmt: skip
        self._send("application/x-pki-message", rep)

    def do_GET(self):
        self._reply(b"")

    def do_POST(self):
        self._reply(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _send(self, content_type: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.parametrize(
    ("answer", "caps", "method"),
    [
        ("SUCCESS", scepmsg.capabilities(False), "POST"),
        ("SUCCESS", "AES\nSHA-256\n", "GET"),
        ("FAILURE", scepmsg.capabilities(True), "POST"),
    ],
)
def test_scepclient_against_the_codec(pki, tmp_path, answer, caps, method):
    """micromdm scepclient sends SHA-1 and DES-CBC whatever the capabilities,
    by GET without POSTPKIOperation, and takes our SUCCESS and FAILURE."""
    scepclient = need("scepclient", "scep")
    attributes = {"ra": pki.ra, "ra_key": pki.ra_key, "answer": answer, "caps": caps}
    handler = type("Handler", (_ScepHandler,), {**attributes, "seen": [], "methods": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "k.pem").write_bytes(
            pki.client_key.private_bytes(
                PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        )
        out = subprocess.run(
            [
                scepclient, "-server-url", f"http://127.0.0.1:{server.server_port}/scep",
                "-challenge", "secret", "-private-key", str(tmp_path / "k.pem"), "-cn", "dev1",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    (msg,) = handler.seen
    assert (msg.message_type, msg.digest, msg.cipher) == ("PKCSReq", "sha1", "des")
    assert handler.methods == [method]
    if answer == "SUCCESS":
        assert out.returncode == 0, out.stderr
        issued = x509.load_pem_x509_certificate((tmp_path / "client.pem").read_bytes())
        assert issued.issuer == pki.ra.subject
        assert issued.public_key() == pki.client_key.public_key()
    else:
        assert out.returncode != 0
        assert "failInfo: badRequest" in out.stderr + out.stdout
        assert not (tmp_path / "client.pem").exists()


# -- hostile input --------------------------------------------------------------


def _expect_refusal(pki, der: bytes, **kw) -> Exception:
    with pytest.raises((ScepMalformed, ScepFailure)) as info:
        pki.parse(der, **kw)
    return info.value


def test_truncated(pki):
    der = pki.request()
    for cut in [0, 1, 2, 4, 10, 50, 200, len(der) // 2, len(der) - 300, len(der) - 1]:
        assert isinstance(_expect_refusal(pki, der[:cut]), ScepMalformed)


def test_trailing_bytes(pki):
    for tail in (b"\x00", b"\x00\x00", b"\x30\x00"):
        exc = _expect_refusal(pki, pki.request() + tail)
        assert isinstance(exc, ScepMalformed) and "trailing" in str(exc)


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"hello world",
        random.Random(300).randbytes(300),  # fixed: both test processes collect the same
        b"\x30\x80\x00\x00",
        b"\x30\x84\xff\xff\xff\xff",
    ],
)
def test_garbage(pki, garbage):
    assert isinstance(_expect_refusal(pki, garbage), ScepMalformed)


def test_not_signed_data(pki):
    exc = _expect_refusal(pki, scepmsg._seal(pki.csr, pki.ra, "aes256"))
    assert isinstance(exc, ScepMalformed) and "enveloped_data" in str(exc)


def test_flipped_signature_byte(pki):
    der = bytearray(pki.request())
    der[-5] ^= 0x01  # the signature is the last element
    exc = _expect_refusal(pki, bytes(der))
    assert isinstance(exc, ScepFailure) and exc.fail_info == "badMessageCheck"
    assert "signature" in str(exc)


def test_altered_content(pki):
    der = pki.request()
    info = cms.ContentInfo.load(der)
    content = info["content"]["encap_content_info"]["content"].native
    pos = der.index(content) + len(content) - 3
    altered = der[:pos] + bytes([der[pos] ^ 0xFF]) + der[pos + 1 :]
    exc = _expect_refusal(pki, altered)
    assert isinstance(exc, ScepFailure) and exc.fail_info == "badMessageCheck"
    assert "messageDigest" in str(exc)


def test_wrong_recipient(pki):
    exc = _expect_refusal(pki, pki.request(recipient_cert=pki.other))
    assert isinstance(exc, ScepFailure) and exc.fail_info == "badRequest"
    assert "not encrypted to this RA certificate" in str(exc)


def test_oversize(pki):
    exc = _expect_refusal(pki, pki.request(), max_size=1000)
    assert isinstance(exc, ScepMalformed) and "more than 1000" in str(exc)


def _signed(pki, attrs, content=None):
    envelope = scepmsg._seal(content or pki.csr, pki.ra, "aes256")
    return scepmsg._sign(envelope, attrs, pki.client, pki.client_key, "sha256")


def _attrs(message_type="19", transaction_id="tx", nonce=b"N" * 16):
    out = []
    if message_type is not None:
        out.append(
            scepmsg._attribute(scepmsg._OID_MESSAGE_TYPE, core.PrintableString(message_type))
        )
    if transaction_id is not None:
        out.append(
            scepmsg._attribute(scepmsg._OID_TRANSACTION_ID, core.PrintableString(transaction_id))
        )
    if nonce is not None:
        out.append(scepmsg._attribute(scepmsg._OID_SENDER_NONCE, core.OctetString(nonce)))
    return out


@pytest.mark.parametrize(
    ("attrs", "kind", "fail_info", "text"),
    [
        ({"transaction_id": None}, ScepMalformed, None, "transactionID"),
        ({"nonce": None}, ScepMalformed, None, "senderNonce"),
        ({"nonce": b"n" * 15}, ScepMalformed, None, "15 bytes"),
        ({"message_type": None}, ScepFailure, "badRequest", "no messageType"),
        ({"message_type": "99"}, ScepFailure, "badRequest", "99"),
        ({"message_type": "3"}, ScepFailure, "badRequest", "not a request"),
        ({"message_type": "nineteen"}, ScepFailure, "badRequest", "nineteen"),
    ],
)
def test_bad_attributes(pki, attrs, kind, fail_info, text):
    exc = _expect_refusal(pki, _signed(pki, _attrs(**attrs)))
    assert isinstance(exc, kind) and text in str(exc)
    if fail_info:
        assert exc.fail_info == fail_info


def test_content_of_the_wrong_kind(pki):
    exc = _expect_refusal(pki, pki.request("GetCert", pki.csr))
    assert isinstance(exc, ScepFailure) and "IssuerAndSerialNumber" in str(exc)
    exc = _expect_refusal(pki, pki.request("PKCSReq", _issuer_and_serial(pki.issued)))
    assert isinstance(exc, ScepFailure) and "not a CSR" in str(exc)


def test_no_signer_certificate(pki):
    der = pki.request()
    info = cms.ContentInfo.load(der)
    signed = info["content"]
    stripped = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": signed["digest_algorithms"],
            "encap_content_info": signed["encap_content_info"],
            "certificates": [scepmsg._a_cert(pki.other)],
            "signer_infos": signed["signer_infos"],
        }
    )
    der = cms.ContentInfo({"content_type": "signed_data", "content": stripped}).dump()
    exc = _expect_refusal(pki, der)
    assert isinstance(exc, ScepMalformed) and "no certificate of its signer" in str(exc)


def test_every_byte_flip_is_refused_cleanly(pki):
    """A flipped byte anywhere gives ScepMalformed or ScepFailure, never a
    parser's exception; none passes unnoticed past the signature."""
    der = pki.request()
    outcomes = {"malformed": 0, "failure": 0, "accepted": 0}
    for pos in range(0, len(der), 7):
        flipped = der[:pos] + bytes([der[pos] ^ 0x5A]) + der[pos + 1 :]
        try:
            msg = pki.parse(flipped)
        except ScepMalformed:
            outcomes["malformed"] += 1
        except ScepFailure:
            outcomes["failure"] += 1
        else:  # only bytes outside what is signed: the certificates, unsigned fields
            assert msg.content == pki.csr
            outcomes["accepted"] += 1
    assert outcomes["malformed"] and outcomes["failure"]


def test_cert_rep_checks(pki):
    request = pki.parse(pki.request())
    rep = bytearray(pki.rep(request))
    rep[-5] ^= 1
    with pytest.raises(ScepMalformed, match="signature"):
        pki.read_rep(bytes(rep))
    with pytest.raises(ScepMalformed, match="expected RA"):
        parse_cert_rep(
            pki.rep(request), signer_cert_expected=pki.other, recipient_key=pki.client_key,
            recipient_cert=pki.client,
        )  # fmt: skip


def test_message_types_are_rfc_values():
    assert MESSAGE_TYPES == {
        "CertRep": 3, "RenewalReq": 17, "PKCSReq": 19, "CertPoll": 20, "GetCert": 21, "GetCRL": 22,
    }  # fmt: skip


def _resigned(pki, der: bytes, **changes) -> bytes:
    """``der`` with SignedData and SignerInfo fields replaced (what the
    signature does not cover)."""
    signed = cms.ContentInfo.load(der)["content"]
    signer = signed["signer_infos"][0]
    info = {k: signer[k] for k in ("version", "sid", "digest_algorithm", "signed_attrs")}
    info |= {k: signer[k] for k in ("signature_algorithm", "signature")}
    info |= changes.pop("signer", {})
    fields = {k: signed[k] for k in ("version", "digest_algorithms", "encap_content_info")}
    fields |= {"certificates": signed["certificates"], "signer_infos": [cms.SignerInfo(info)]}
    fields |= changes
    fields = {k: v for k, v in fields.items() if v is not None}
    return cms.ContentInfo(
        {"content_type": "signed_data", "content": cms.SignedData(fields)}
    ).dump()


def test_signer_by_subject_key_identifier(pki):
    ski = pki.client.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    der = pki.request()
    content = cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native
    der = _resigned(
        pki,
        der,
        version="v3",
        encap_content_info=cms.EncapsulatedContentInfo(
            {"content_type": "data", "content": content}
        ),
        signer={"version": "v3", "sid": cms.SignerIdentifier({"subject_key_identifier": ski})},
    )
    assert pki.parse(der).signer_certificate == pki.client


def test_signature_algorithm_not_matching_the_key(pki):
    der = _resigned(
        pki, pki.request(), signer={"signature_algorithm": {"algorithm": "sha256_ecdsa"}}
    )
    exc = _expect_refusal(pki, der)
    assert isinstance(exc, ScepFailure) and exc.fail_info == "badAlg"
    assert "not supported with a RSA key" in str(exc)


def test_signature_algorithm_with_another_hash(pki):
    der = _resigned(pki, pki.request(), signer={"signature_algorithm": {"algorithm": "sha512_rsa"}})
    exc = _expect_refusal(pki, der)
    assert isinstance(exc, ScepFailure) and exc.fail_info == "badAlg" and "sha512" in str(exc)


def test_no_certificates_at_all(pki):
    exc = _expect_refusal(pki, _resigned(pki, pki.request(), certificates=None))
    assert isinstance(exc, ScepMalformed) and "no certificate of its signer" in str(exc)


def test_two_signers(pki):
    signer = cms.ContentInfo.load(pki.request())["content"]["signer_infos"][0]
    der = _resigned(pki, pki.request(), signer_infos=[signer, signer])
    exc = _expect_refusal(pki, der)
    assert isinstance(exc, ScepMalformed) and "2 SignerInfos" in str(exc)


def test_constructed_octet_strings():
    """encryptedContent as BER allows (X.690 8.7): Go's pkcs7 writes [0]
    constructed around one OCTET STRING, OpenSSL streams indefinite chunks."""
    assert scepmsg._ber_octets(0, b"ab") == b"ab"
    assert scepmsg._ber_octets(1, b"\x04\x02ab\x04\x01c\x24\x80\x04\x01d\x00\x00") == b"abcd"
    for bad in (b"\x05\x00", b"\x04\x05ab", b"\x24\x80" * 8 + b"\x00\x00" * 8):
        with pytest.raises(ValueError):
            scepmsg._ber_octets(1, bad)
