"""Issuance: from a CSR, with a key generated here, and delegated OCSP signers."""

import functools
from collections.abc import Callable

from cryptography import x509

from ca.context import CAContext
from ca.errors import (
    PolicyError,
)
from ca.issuing import IssuingPath
from ca.keys import (
    check_key_spec,
    generate_private_key,
)
from ca.lookup import Lookup
from ca.profiles import Profile
from ca.records import (
    CARecord,
    CertificateRecord,
    serial_hex,
)
from ca.rekey import reencrypt
from ca.requests import CertificateRequest, parse_csr, parse_san, parse_subject
from ca.x509build import new_serial
from common.pkcs8 import encrypt_private_key


def ocsp_signer_subject(ca: CARecord) -> x509.Name:
    """CA-style naming (BR 7.1.2.8.2 defers to 7.1.2.10.2): the CA's country
    and organization, and a CN that says what the certificate is for."""
    keep = (x509.NameOID.COUNTRY_NAME, x509.NameOID.ORGANIZATION_NAME)
    attributes = [a for a in ca.certificate.subject if a.oid in keep]
    attributes.append(x509.NameAttribute(x509.NameOID.COMMON_NAME, f"{ca.name} OCSP responder"))
    return x509.Name(attributes)


def ocsp_signer_key_id(ca_name: str, serial: int) -> str:
    """Where an OCSP signer's key lives in the token."""
    return f"ocsp-{ca_name}-{serial_hex(serial)[:16]}"


@functools.cache
def _probe_key(key_type: str):
    """A public key of ``key_type`` for checking a template; it never signs
    and never reaches a certificate."""
    return generate_private_key(key_type).public_key()


class Issuance:
    """Certificates from CSRs, with keys made here, and OCSP signers."""

    def __init__(self, context: CAContext, lookup: Lookup, path: IssuingPath):
        self.context = context
        self.lookup = lookup
        self.path = path

    def issue(
        self,
        ca_name: str,
        csr: bytes,
        profile_name: str,
        *,
        days: int | None = None,
        actor: str = "system",
    ) -> CertificateRecord:
        """Issue from a PKCS#10 CSR."""
        with self.context.audit.failures(actor, "ca.issue", f"{ca_name}/{profile_name}"):
            profile = self._issuing_profile(profile_name)
            request = parse_csr(csr)
            ca = self.lookup.get_ca(ca_name)
            return self.path.issue(ca, profile, request, days=days, actor=actor)

    def issue_with_new_key(
        self,
        ca_name: str,
        profile_name: str,
        subject: str,
        sans: list[str],
        *,
        key_type: str = "ec-p256",
        days: int | None = None,
        actor: str = "system",
    ) -> CertificateRecord:
        """Generate the subject's key here (kept encrypted, for PKCS#12 export) and issue."""
        with self.context.audit.failures(actor, "ca.issue", f"{ca_name}/{profile_name}"):
            request = CertificateRequest(
                parse_subject(subject), None, tuple(parse_san(s) for s in sans)
            )
            return self._issue_generated(ca_name, profile_name, request, key_type, days, actor)

    def issue_request(
        self,
        ca_name: str,
        profile_name: str,
        request: CertificateRequest,
        *,
        generate_key: str | None = None,
        days: int | None = None,
        actor: str = "system",
        on_insert: Callable | None = None,
        keep_private_key: bytes | None = None,
        end_entity_id: int | None = None,
    ) -> CertificateRecord:
        """Issue for a request the caller has already parsed and vetted (the
        RA builds the subject from an end entity's template). With
        ``generate_key`` (a key type), the key is made here and kept
        encrypted; ``request.public_key`` is then ignored. A renewal for the
        same key made here passes that key's encrypted PEM as
        ``keep_private_key``. ``end_entity_id`` records the RA's end entity
        the certificate is issued to. ``on_insert(conn, certificate,
        key_spec)`` runs in the issuing transaction (the RA audits there)."""
        with self.context.audit.failures(actor, "ca.issue", f"{ca_name}/{profile_name}"):
            if generate_key is not None:
                return self._issue_generated(
                    ca_name,
                    profile_name,
                    request,
                    generate_key,
                    days,
                    actor,
                    on_insert,
                    end_entity_id,
                )
            profile = self._issuing_profile(profile_name)
            ca = self.lookup.get_ca(ca_name)
            if keep_private_key is not None:
                # Written again with the new certificate: in the current format.
                current, _ = reencrypt(
                    keep_private_key,
                    self.context.passphrase.get(),
                    "the renewed certificate's stored key",
                    verify=False,
                )
                keep_private_key = current or keep_private_key
            return self.path.issue(
                ca,
                profile,
                request,
                days=days,
                actor=actor,
                on_insert=on_insert,
                private_key=keep_private_key,
                end_entity_id=end_entity_id,
            )

    def check_request(
        self,
        ca_name: str,
        profile_name: str,
        request: CertificateRequest,
        *,
        generate_key: str | None = None,
        days: int | None = None,
    ):
        """Every check ``issue_request`` makes, without issuing anything: the
        certificate template (subject, SANs, key type, validity) that would be
        signed now, or the error issuance would raise. With ``generate_key``
        the template carries a public key of that type made for checks alone
        (one per type and process: making an RSA-4096 key per check would let
        a queue of requests cost seconds each)."""
        profile = self._issuing_profile(profile_name)
        if generate_key is not None:
            check_key_spec(generate_key)
            self._check_generated(profile, generate_key)
            request = CertificateRequest(request.subject, _probe_key(generate_key), request.sans)
        ca = self.lookup.get_ca(ca_name)
        return self.path.check(ca, profile, request, days=days)

    @staticmethod
    def _check_generated(profile: Profile, key_type: str) -> None:
        if key_type not in profile.key_types:
            raise PolicyError(
                f"profile {profile.name!r} does not allow key type {key_type}; "
                f"allowed: {', '.join(profile.key_types)}"
            )

    def _issue_generated(
        self,
        ca_name: str,
        profile_name: str,
        request: CertificateRequest,
        key_type: str,
        days: int | None,
        actor: str,
        on_insert: Callable | None = None,
        end_entity_id: int | None = None,
    ) -> CertificateRecord:
        profile = self._issuing_profile(profile_name)
        check_key_spec(key_type)
        self._check_generated(profile, key_type)
        ca = self.lookup.get_ca(ca_name)
        private_key = generate_private_key(key_type)
        encrypted = encrypt_private_key(private_key, self.context.passphrase.get())
        request = CertificateRequest(request.subject, private_key.public_key(), request.sans)
        return self.path.issue(
            ca,
            profile,
            request,
            days=days,
            actor=actor,
            private_key=encrypted,
            on_insert=on_insert,
            end_entity_id=end_entity_id,
        )

    def issue_ocsp_signer(
        self,
        ca_name: str,
        *,
        key_type: str = "ec-p256",
        days: int | None = None,
        actor: str = "system",
    ) -> tuple[CertificateRecord, str]:
        """A delegated OCSP responder certificate (RFC 6960 4.2.2.2); its key
        goes into the token. Returns the record and the key id."""
        with self.context.audit.failures(actor, "ca.ocsp_signer", ca_name):
            profile = self.context.profile("ocsp-signer")
            ca = self.lookup.get_ca(ca_name)
            check_key_spec(key_type)
            if key_type not in profile.key_types:
                raise PolicyError(f"profile 'ocsp-signer' does not allow key type {key_type}")
            serial = new_serial(self.context.random_bytes)
            key_id = ocsp_signer_key_id(ca_name, serial)
            public_key = self.context.token.generate_key(key_id, key_type)
            try:
                record = self.path.issue(
                    ca,
                    profile,
                    CertificateRequest(ocsp_signer_subject(ca), public_key, ()),
                    days=days,
                    actor=actor,
                    serial=serial,
                    action="ca.ocsp_signer",
                    extra_audit={"key_id": key_id},
                )
            except BaseException:
                self.context.token.remove_key(key_id)
                raise
            return record, key_id

    def _issuing_profile(self, name: str) -> Profile:
        profile = self.context.profile(name)
        if name == "root-ca":
            raise PolicyError(
                "profile 'root-ca' is only for self-signed roots, which sign themselves"
            )
        return profile
