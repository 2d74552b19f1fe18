"""SCEP (RFC 8894) over HTTP: ``/scep[/<label>]`` (and
``/cgi-bin/pkiclient.exe``, the path many devices have built in) with
``?operation=`` GetCACaps, GetCACert and PKIOperation, over GET (the
message base64 in ``message``) and POST (the DER body).

Requests are CMS messages encrypted to the RA certificate of the label's
CA (issued here under the ``scep-ra`` profile, enroll/service.py) and
signed by the device (enroll/scepmsg.py does the CMS). PKCSReq enrolls
with the CSR's challengePassword, a one-time enrollment secret of an end
entity; RenewalReq is signed with the certificate it renews; CertPoll asks
what became of a transaction that was told PENDING while approvers decide;
GetCert and GetCRL return a certificate or the CA's CRL. What is wrong
with a request is a CertRep FAILURE with its failInfo (badAlg,
badMessageCheck, badRequest, badTime, badCertId); a body that cannot be
read as a SCEP message at all is HTTP 400.
"""

import base64
import binascii
import hashlib
import logging
import secrets

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from ca.records import serial_hex
from enroll import scepmsg
from enroll.service import Credential, EnrollError, EnrollService, spki_sha256

log = logging.getLogger("revoca.scep")

PKI_MESSAGE = "application/x-pki-message"
# RFC 8894 3.3.2.2 badTime: a signingTime this far from the server's clock.
MAX_SKEW_SECONDS = 24 * 3600


class ScepFront:
    def __init__(self, service: EnrollService, call, max_body: int):
        self.service = service
        self.call = call
        self.max_body = max_body

    def routes(self, router) -> None:
        for path in ("/scep", "/scep/{label}", "/cgi-bin/pkiclient.exe"):
            router.add_get(path, self.handle)
            router.add_post(path, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        operation = request.query.get("operation", "")
        label = self.service.label(request.match_info.get("label", ""))
        if operation == "GetCACaps":
            body = scepmsg.capabilities(self.service.settings.scep_legacy)
            return web.Response(text=body, content_type="text/plain")
        if operation == "GetCACert":
            ra_cert, _ = await self.call(self.service.scep_ra, label)
            chain = await self.call(self.service.chain, label)
            # RFC 8894 4.2.1.2: the RA certificate and the CA's. Clients
            # such as micromdm's scepclient encrypt to every certificate
            # here, so only CA certificates with RSA keys join the RA's; an
            # EC chain is at EST's cacerts and the VA's /ca/<name>.crt.
            rsa_chain = [c for c in chain if isinstance(c.public_key(), rsa.RSAPublicKey)]
            body = scepmsg.certs_only([ra_cert, *rsa_chain])
            return web.Response(body=body, content_type="application/x-x509-ca-ra-cert")
        if operation == "GetNextCACert":
            raise EnrollError("not_found", "no CA rollover is pending (GetNextCACert)")
        if operation != "PKIOperation":
            raise EnrollError(
                "bad_request",
                f"unknown SCEP operation {operation!r}: GetCACaps, GetCACert or PKIOperation",
            )
        if request.method == "POST":
            der = await request.read()
        else:
            # Standard base64 as RFC 8894 4.3 says, or base64url without
            # padding, as micromdm's scepclient sends it; a '+' a device did
            # not URL-encode reads as a space.
            text = request.query.get("message", "").strip().replace(" ", "+")
            text = text.replace("-", "+").replace("_", "/")
            try:
                der = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise EnrollError(
                    "bad_request", "the message parameter must be the base64 DER of a PKIMessage"
                ) from None
        if not der:
            raise EnrollError("bad_request", "PKIOperation needs a message")
        answer = await self.call(self.pki_operation, label, der)
        return web.Response(body=answer, content_type=PKI_MESSAGE)

    def pki_operation(self, label, der: bytes) -> bytes:
        """On a store thread: the CertRep for one PKIMessage."""
        ra_cert, ra_key = self.service.scep_ra(label)
        try:
            message = scepmsg.parse_request(
                der,
                ra_cert,
                ra_key,
                legacy=self.service.settings.scep_legacy,
                max_size=self.max_body,
            )
        except scepmsg.ScepMalformed as exc:
            self.service.count("scep", "malformed")
            raise EnrollError("bad_request", f"not a SCEP message: {exc}") from None
        except scepmsg.ScepFailure as exc:
            partial = getattr(exc, "request", None)
            if partial is None:
                self.service.count("scep", "malformed")
                raise EnrollError("bad_request", str(exc)) from None
            self.service.count("scep", "failed")
            log.warning("scep %s: %s (%s)", partial.transaction_id, exc.fail_info, exc)
            return self._reply(partial, ra_cert, ra_key, "FAILURE", fail_info=exc.fail_info)
        if message.signing_time is not None:
            skew = abs(self.service.ca.clock() - message.signing_time).total_seconds()
            if skew > MAX_SKEW_SECONDS:
                log.warning("scep %s: badTime (signed %s)", message.transaction_id, skew)
                self.service.count("scep", "failed")
                return self._reply(message, ra_cert, ra_key, "FAILURE", fail_info="badTime")
        try:
            status, certs, crl = self._dispatch(label, message)
        except EnrollError as exc:
            log.warning("scep %s %s refused: %s", message.message_type, message.transaction_id, exc)
            return self._reply(message, ra_cert, ra_key, "FAILURE", fail_info=exc.fail_info)
        return self._reply(message, ra_cert, ra_key, status, certificates=certs, crl=crl)

    def _reply(self, message, ra_cert, ra_key, status, **kwargs) -> bytes:
        return scepmsg.build_cert_rep(
            message,
            status=status,
            signer_cert=ra_cert,
            signer_key=ra_key,
            sender_nonce=secrets.token_bytes(16),
            **kwargs,
        )

    def _dispatch(self, label, message):
        kind = message.message_type
        signer = message.signer_certificate
        if kind in ("PKCSReq", "RenewalReq"):
            csr = message.content
            from cryptography import x509

            try:
                parsed = x509.load_der_x509_csr(csr)
            except ValueError:
                raise EnrollError("bad_request", "the envelope holds no PKCS#10 request") from None
            if kind == "PKCSReq":
                if spki_sha256(parsed.public_key()) != spki_sha256(signer.public_key()):
                    raise EnrollError(
                        "bad_request",
                        "PKCSReq is signed with the key of the CSR (RFC 8894 3.3.1); this "
                        "one is not",
                        fail_info="badMessageCheck",
                    )
                secret = scepmsg.challenge_password(csr)
                if not secret:
                    raise EnrollError(
                        "unauthorized", "the CSR has no challengePassword (enrollment secret)"
                    )
                credential = Credential("secret", "secret", secret=secret)
                renewal = False
            else:
                der = _der(signer)
                name = self.service.current_certificate(der)
                credential = Credential(
                    "certificate",
                    f"certificate {name.ca}/{serial_hex(name.serial)}",
                    certificate=der,
                )
                renewal = True
            outcome = self.service.enroll(
                "scep",
                label,
                csr,
                credential,
                transaction_id=transaction_key(message, renewal),
                renewal=renewal,
            )
        elif kind == "CertPoll":
            renewal = self.service.is_ours(_der(signer))
            outcome = self.service.poll(
                "scep", transaction_key(message, renewal), spki_sha256(signer.public_key())
            )
        elif kind == "GetCert":
            issuer, serial = scepmsg.issuer_and_serial(message.content)
            return "SUCCESS", [self.service.certificate_by_issuer_serial(issuer, serial)], None
        elif kind == "GetCRL":
            issuer, _ = scepmsg.issuer_and_serial(message.content)
            return "SUCCESS", (), self.service.crl_of(issuer)
        else:
            raise EnrollError("bad_request", f"{kind} is not a request this server takes")
        if outcome.status == "pending":
            return "PENDING", (), None
        return "SUCCESS", [outcome.certificate], None


def _der(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.DER)


def transaction_key(message, renewal: bool) -> str:
    """The transaction a PKIMessage belongs to. Clients keep one
    transactionID per key (micromdm's: a digest of the public key), and a
    device renewing with the same key sends the transactionID of its first
    enrollment again: a renewal is told apart by the certificate it renews."""
    txid = message.transaction_id
    if len(txid) > 90:  # the column holds 128; RFC 8894 sets no bound
        txid = "sha256:" + hashlib.sha256(txid.encode()).hexdigest()
    if not renewal:
        return txid
    return f"{txid}/renews/{hashlib.sha256(_der(message.signer_certificate)).hexdigest()[:32]}"
