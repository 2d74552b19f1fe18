"""EST (RFC 7030, with RFC 8951's clarifications) over TLS:
``/.well-known/est[/<label>]/`` cacerts, csrattrs, simpleenroll,
simplereenroll and serverkeygen.

Bodies are base64 DER both ways (RFC 8951 3: whatever
Content-Transfer-Encoding says); certificates go out as PKCS#7 certs-only
(``application/pkcs7-mime; smime-type=certs-only``). A device
authenticates with a TLS client certificate (the certificate it renews,
or a manufacturer certificate under a label's trust anchors) or with HTTP
Basic: its end entity's name and a one-time enrollment secret. A request
that waits for approvers is answered 202 with Retry-After; the device
sends the same request again (4.2.3). Refusals are text/plain with the
status RFC 7030 4.2.3 names: 400 a bad request, 401 no or a bad
credential (with ``WWW-Authenticate: Basic``), 403 not allowed, 404 an
unknown label.
"""

import base64
import binascii
import hashlib

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from ca.keys import KEY_SPECS, generate_private_key, key_spec_of
from ca.records import serial_hex
from enroll import csrattrs, tlsbind
from enroll.service import Credential, EnrollError, EnrollService, Outcome

PKCS7 = "application/pkcs7-mime"
CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
PKCS10 = "application/pkcs10"
CHALLENGE_PASSWORD = x509.ObjectIdentifier("1.2.840.113549.1.9.7")
NOT_BASIC = "the Authorization header is not HTTP Basic (user:password in base64)"
IN_PROGRESS_RETRY = 5  # seconds: Retry-After while the same request is being issued
REALM = 'Basic realm="revoca est", charset="UTF-8"'


class StaleBinding(EnrollError):
    """The CSR carries the channel binding of another TLS connection."""

    def __init__(self, message: str):
        super().__init__("bad_request", message)


def certs_only(certs) -> bytes:
    return pkcs7.serialize_certificates(list(certs), serialization.Encoding.DER)


def b64_response(der: bytes, content_type: str, status: int = 200) -> web.Response:
    body = base64.encodebytes(der)  # lines of 76, as MIME's base64 (RFC 2045 6.8)
    response = web.Response(body=body, status=status)
    response.headers["Content-Type"] = content_type
    response.headers["Content-Transfer-Encoding"] = "base64"
    return response


def text_error(status: int, message: str) -> web.Response:
    response = web.Response(text=message.rstrip() + "\n", status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = REALM
    return response


def decode_body(body: bytes) -> bytes:
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise EnrollError(
            "bad_request", "the body must be a base64 DER PKCS#10 request (RFC 7030 4.2.1)"
        ) from None


class EstFront:
    def __init__(self, service: EnrollService, call):
        self.service = service
        self.call = call  # runs a synchronous function on the store's threads

    def routes(self, router) -> None:
        for prefix in ("/.well-known/est", "/.well-known/est/{label}"):
            router.add_get(f"{prefix}/cacerts", self.cacerts)
            router.add_get(f"{prefix}/csrattrs", self.csrattrs)
            router.add_post(f"{prefix}/simpleenroll", self.simpleenroll)
            router.add_post(f"{prefix}/simplereenroll", self.simplereenroll)
            router.add_post(f"{prefix}/serverkeygen", self.serverkeygen)

    # -- what a request carries ---------------------------------------------------------

    @staticmethod
    def _tls(request: web.Request):
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        if ssl_object is None:
            raise EnrollError("forbidden", "EST is served over TLS only (RFC 7030 3.3)")
        return ssl_object

    def _label(self, request: web.Request):
        return self.service.label(request.match_info.get("label", ""))

    @staticmethod
    def _basic(request: web.Request) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise EnrollError(
                "unauthorized", "the Authorization header is not HTTP Basic"
            ) from None
        if not sep:
            raise EnrollError("unauthorized", "the Authorization header is not HTTP Basic")
        return user, password

    async def _csr(self, request: web.Request) -> bytes:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != PKCS10:
            raise EnrollError(
                "unsupported", f"the body must be {PKCS10} (base64 DER), not {content_type!r}"
            )
        return decode_body(await request.read())

    def _credential(self, request, ssl_object, label, *, renewal: bool) -> Credential:
        peer = ssl_object.getpeercert(binary_form=True)
        basic = self._basic(request)
        if renewal:
            if peer is None:
                raise EnrollError(
                    "unauthorized",
                    "simplereenroll authenticates with the certificate being renewed as the "
                    "TLS client certificate",
                )
            return Credential("certificate", _our_name(self.service, peer), certificate=peer)
        if basic is not None:
            user, password = basic
            return Credential("secret", "secret", secret=password, entity=user or None)
        if peer is not None:
            return self.service.bootstrap_credential(label, peer)
        raise EnrollError(
            "unauthorized",
            "enrollment needs HTTP Basic (end entity name and enrollment secret) or a "
            "TLS client certificate",
        )

    def _check_binding(self, ssl_object, csr: bytes) -> None:
        """RFC 7030 3.5: a challengePassword in the CSR is the channel binding
        of this TLS session (base64), and must match (:class:`StaleBinding`
        when it is another connection's)."""
        try:
            request = x509.load_der_x509_csr(csr)
            attribute = request.attributes.get_attribute_for_oid(CHALLENGE_PASSWORD)
            given = attribute.value.decode("utf-8", "replace").strip()
        except x509.AttributeNotFound:
            given = None
        except ValueError:
            return  # the CSR itself is refused, clearly, by the enrollment
        binding = tlsbind.channel_binding(ssl_object)
        if given is None:
            if self.service.settings.channel_binding == "required":
                kind = binding[0] if binding else "tls-unique or tls-exporter"
                raise EnrollError(
                    "bad_request",
                    f"this server requires the CSR's challengePassword to carry the {kind} "
                    "channel binding (RFC 7030 3.5)",
                )
            return
        if binding is None:
            raise EnrollError(
                "bad_request",
                "the CSR carries a channel binding, but this connection has none the server "
                "can compute",
            )
        if given != base64.b64encode(binding[1]).decode():
            raise StaleBinding(
                f"the CSR's channel binding does not match this TLS session's {binding[0]} "
                "(RFC 7030 3.5): the request was made on another connection",
            )

    # -- the operations ------------------------------------------------------------------

    async def cacerts(self, request: web.Request) -> web.Response:
        self._tls(request)
        label = self._label(request)
        chain = await self.call(self.service.chain, label)
        return b64_response(certs_only(chain), PKCS7)

    async def csrattrs(self, request: web.Request) -> web.Response:
        """RFC 7030 4.5 (as RFC 8951 4 restates): what a CSR should carry
        for this label's profile; 204 when no profile is known."""
        self._tls(request)
        label = self._label(request)
        basic = self._basic(request)
        user, password = basic or (None, None)
        profile = await self.call(self.service.profile_of, label, user, password)
        if profile is None:
            return web.Response(status=204)
        der = csrattrs.for_profile(self.service.ca.profile(profile))
        return b64_response(der, "application/csrattrs")

    async def simpleenroll(self, request: web.Request) -> web.Response:
        return await self._enroll(request, renewal=False)

    async def simplereenroll(self, request: web.Request) -> web.Response:
        return await self._enroll(request, renewal=True)

    async def _request(self, request, ssl_object, label, *, renewal: bool):
        """(credential, DER CSR, StaleBinding or None) of an enrollment
        request; what is refused here is counted as EnrollService.enroll
        counts its refusals (``refused``; ``malformed``: a body that is not
        base64 of the right type)."""
        try:
            credential = await self.call(
                self._credential, request, ssl_object, label, renewal=renewal
            )
        except EnrollError:
            self.service.count("est", "refused")
            raise
        try:
            csr = await self._csr(request)
        except EnrollError:
            self.service.count("est", "malformed")
            raise
        try:
            self._check_binding(ssl_object, csr)
        except StaleBinding as exc:
            return credential, csr, exc
        except EnrollError:
            self.service.count("est", "refused")
            raise
        return credential, csr, None

    async def _enroll(self, request: web.Request, *, renewal: bool) -> web.Response:
        ssl_object = self._tls(request)
        label = self._label(request)
        # A CSR bound to another connection (``stale``) may still be the
        # repeat of a request told to wait (202), sent on a new connection
        # (RFC 7030 4.2.3); else it is refused.
        credential, csr, stale = await self._request(request, ssl_object, label, renewal=renewal)
        outcome = await self.call(
            self.service.enroll, "est", label, csr, credential, renewal=renewal, repeat_only=stale
        )
        if outcome.status == "pending":
            return self._pending(outcome)
        return b64_response(certs_only([outcome.certificate]), CERTS_ONLY)

    def _pending(self, outcome: Outcome) -> web.Response:
        seconds = self.service.settings.retry_after
        if outcome.request_id is None:  # the same request, being issued on another connection
            seconds = min(seconds, IN_PROGRESS_RETRY)
            text = f"the same request is being issued; send it again in {seconds} s\n"
        else:
            text = (
                f"waiting for the RA's approvers (request {outcome.request_id}); send the same "
                f"request again in {seconds} s\n"
            )
        response = web.Response(text=text, status=202)
        response.headers["Retry-After"] = str(seconds)
        return response

    async def serverkeygen(self, request: web.Request) -> web.Response:
        """RFC 7030 4.4: the key is made here for the CSR's key type and
        names, and returned with the certificate as multipart/mixed: the
        PKCS#8 key protected by this authenticated TLS session (4.4.2), and
        never stored. A profile that waits for approvers cannot be served
        so (the key would have to be kept meanwhile)."""
        ssl_object = self._tls(request)
        label = self._label(request)
        credential, csr, stale = await self._request(request, ssl_object, label, renewal=False)
        if stale is not None:  # a key made here is never a repeat
            self.service.count("est", "refused")
            raise stale
        try:
            key, own_csr = await self.call(self._key_for, label, credential, csr)
        except EnrollError as exc:
            self.service.count("est", exc.result)
            raise
        outcome = await self.call(self.service.enroll, "est", label, own_csr, credential)
        if outcome.status == "pending":  # approvals configured while we made the key
            raise EnrollError("forbidden", "the enrollment waits for approvers; key discarded")
        pkcs8 = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        boundary = "est-" + hashlib.sha256(own_csr).hexdigest()[:24]
        parts = [
            ("application/pkcs8", pkcs8),
            (CERTS_ONLY, certs_only([outcome.certificate])),
        ]
        body = (
            b"".join(
                f"--{boundary}\r\nContent-Type: {ctype}\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n".encode()
                + base64.encodebytes(der).replace(b"\n", b"\r\n")
                for ctype, der in parts
            )
            + f"--{boundary}--\r\n".encode()
        )
        response = web.Response(body=body)
        response.headers["Content-Type"] = f"multipart/mixed; boundary={boundary}"
        response.headers["Cache-Control"] = "no-store"
        return response

    def _key_type_for(self, public_key, profile: str | None) -> str:
        """RFC 7030 4.4.1: the CSR's public key is ignored, but its type is
        the one asked for; where the profile does not allow that type, the
        profile's first."""
        allowed = self.service.ca.profile(profile).key_types if profile else KEY_SPECS
        try:
            wanted = _key_type(public_key)
        except EnrollError:
            wanted = None
        if wanted in allowed:
            return wanted
        return allowed[0]

    def _key_for(self, label, credential, csr: bytes):
        """A new key of the CSR's key type and a CSR of it with the client's
        subject and extensions."""
        try:
            given = x509.load_der_x509_csr(csr)
            public_key = given.public_key()
        except ValueError as exc:
            raise EnrollError(
                "bad_request", f"the CSR cannot be read: {exc}", result="malformed"
            ) from None
        profile = self.service.profile_of(label, credential.entity, credential.secret)
        if profile is not None and self.service.ra.policy.for_issue(profile):
            raise EnrollError(
                "forbidden",
                f"profile {profile!r} waits for approvers, and a key made here is never kept; "
                "enroll with a CSR (simpleenroll) instead",
            )
        key_type = self._key_type_for(public_key, profile)
        key = generate_private_key(key_type)
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            given.subject if len(given.subject) else x509.Name([])
        )
        for extension in given.extensions:
            builder = builder.add_extension(extension.value, extension.critical)
        algorithm = None if key_type == "ed25519" else hashes.SHA256()
        own = builder.sign(key, algorithm)
        return key, own.public_bytes(serialization.Encoding.DER)


def _key_type(public_key) -> str:
    spec = key_spec_of(public_key)
    if spec not in KEY_SPECS:
        raise EnrollError(
            "bad_request",
            f"a {spec} key cannot be made here; the CSR's key names the type to make: "
            + ", ".join(KEY_SPECS),
        )
    return spec


def _our_name(service: EnrollService, der: bytes) -> str:
    record = service.current_certificate(der)
    return f"certificate {record.ca}/{serial_hex(record.serial)}"
