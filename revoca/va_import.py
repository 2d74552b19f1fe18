"""Loading a VA from the CA store (the umbrella's job: ``va`` knows nothing of ``ca``).

Issuers and responder keys are copied into the VA; the statuses arrive as a
snapshot through the publish protocol's apply code (publisher/snapshot.py),
as a remote VA gets them from ``revoca publisher snapshot``.
"""

import asyncio
import base64
import shutil
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization

from ca.errors import NotFoundError, PolicyError
from ca.issuance import ocsp_signer_key_id
from ca.service import CAService
from common.privatedir import make_private_dir
from publisher.outbox import Outbox
from publisher.settings import PublisherSettings
from publisher.snapshot import send_snapshot
from publisher.targets import LocalTarget
from va.policy import IssuerPolicy
from va.signing import Signer, load_key
from va.store import VAStore

_DEFAULTS = PublisherSettings()  # the documented [publisher] defaults


def _der(cert) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def import_from_ca(
    service: CAService,
    store: VAStore,
    va_key_dir,
    *,
    policy: IssuerPolicy,
    publisher: PublisherSettings = _DEFAULTS,
    ca_names: list[str] | None = None,
    sign_with_ca_key: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Copy issuers, responder keys and every certificate's status into the VA.

    Each CA answers through its newest valid delegated OCSP signer; with
    ``sign_with_ca_key`` a CA without one signs with its own key (that key
    is then copied to the VA, which widens where it lives: avoid it).
    Importing all CAs leaves out those without a signer (listed in the
    result as -1); naming one that has none is an error, and then nothing
    is written.

    The statuses are a snapshot of the CA store, read in one transaction with
    the outbox position it was taken at, and applied as the ``publisher``
    settings' source, in chunks of their snapshot_chunk, by the VA's publish
    apply code (the publisher's own, so a local import and a remote VA's
    snapshot are one path): only
    where newer than what a serial holds, so an import racing revocations
    never moves a status back. Importing all CAs makes it complete (every CA
    that publishes is in it): the source's high-water then rises to that
    position, and the publisher does not replay what it holds. Returns the
    number of statuses imported per CA.
    """
    records = list(
        issuer_records(
            service, policy, ca_names=ca_names, sign_with_ca_key=sign_with_ca_key, now=now
        )
    )
    make_private_dir(va_key_dir)
    for ca, record, key_file in records:
        if record is None:
            continue
        target = va_key_dir / key_file.name
        shutil.copyfile(key_file, target)
        target.chmod(0o600)
        store.put_issuer(ca.id, record)
    ids = [ca.id for ca, record, _ in records if record is not None]
    counts = {}
    if ids:
        # All CAs: the statuses of every CA that publishes, those left out too
        # (no issuer record here, so nothing of theirs is answered; the
        # publisher's events put them here all the same): a complete snapshot.
        counts = asyncio.run(
            send_snapshot(
                Outbox(service.store.engine),
                LocalTarget("local", store=store),
                publisher.source,
                ca_ids=ids if ca_names else None,
                chunk=publisher.snapshot_chunk,
            )
        )["statuses"]
    imported = {}
    for ca, record, _ in records:
        imported[ca.name] = -1 if record is None else counts.get(ca.id, 0)
        if record is not None:
            progress(imported[ca.name])
    return imported


def _check_key_opens(service: CAService, key_file, responder) -> None:
    """The VA opens the copied key with the same passphrase (va/issuers.py):
    one that does not open, or does not fit its certificate, is refused here,
    before anything is copied or written (ResponderKeyError)."""
    key = load_key(key_file.read_bytes(), service.passphrase.get(), f"responder key {key_file}")
    Signer(key, responder, native_allowed=False)


def _parents(service: CAService, ca) -> list[dict]:
    """The CA's parents held here, nearest first, for CA certificate downloads."""
    out = []
    parent = ca.parent
    while parent is not None:
        record = service.get_ca(parent)
        out.append({"name": record.name, "certificate": _der(record.certificate)})
        parent = record.parent
    return out


def ocsp_signer(service: CAService, ca_name: str, now: datetime):
    """The CA's newest valid delegated OCSP signer (None: it has none)."""
    signers = [
        r
        for r in service.list_certificates(ca_name, "good", limit=100_000)
        if r.profile == "ocsp-signer" and r.not_before <= now < r.not_after
    ]
    return max(signers, key=lambda r: r.not_after, default=None)


def not_served(service: CAService, served: set[str], now: datetime | None = None) -> list[str]:
    """For each CA of the store that a VA holding the issuers ``served`` does
    not answer for: what it lacks and the commands that fix it."""
    now = now or datetime.now(UTC)
    out = []
    for ca in service.list_cas():
        if ca.name in served:
            continue
        if ocsp_signer(service, ca.name, now) is None:
            out.append(
                f"CA {ca.name!r} has no OCSP signer: run `revoca ca ocsp-signer --ca {ca.name} "
                f"--out {ca.name}-ocsp.pem`, then `revoca va import` (or `revoca va import "
                f"--ca {ca.name} --sign-with-ca-key` to sign with the CA's own key)"
            )
        else:
            out.append(f"CA {ca.name!r} is not in this VA yet: run `revoca va import`")
    return out


def issuer_records(
    service: CAService,
    policy: IssuerPolicy,
    *,
    ca_names: list[str] | None = None,
    sign_with_ca_key: bool = False,
    now: datetime | None = None,
):
    """Yield (CA, VA issuer record or None when skipped, responder key file).

    Each CA answers through its newest valid delegated OCSP signer; with
    ``sign_with_ca_key`` a CA without one signs with its own key. Asking for
    all CAs skips those without a signer; naming one that has none is an error.
    """
    now = now or datetime.now(UTC)
    # Issuers of inventory certificates have no key here: never published.
    cas = [service.get_own_ca(n) for n in ca_names] if ca_names else service.list_cas()
    for ca in cas:
        signer = ocsp_signer(service, ca.name, now)
        if signer is not None:
            key_id = ocsp_signer_key_id(ca.name, signer.serial)
            responder_cert = _der(signer.certificate)
        elif sign_with_ca_key:
            key_id, responder_cert = ca.key_id, None
        elif not ca_names:
            yield ca, None, None  # importing everything: a CA without signer is left out
            continue
        else:
            raise PolicyError(
                f"CA {ca.name!r} has no valid OCSP signer: run `revoca ca ocsp-signer --ca "
                f"{ca.name}` (or import with --sign-with-ca-key)"
            )
        try:
            key_file = service.token.key_file(key_id)
        except NotFoundError:
            raise NotFoundError(
                f"the responder key {key_id!r} of CA {ca.name!r} is missing"
            ) from None
        _check_key_opens(service, key_file, signer.certificate if signer else ca.certificate)
        yield (
            ca,
            {
                "name": ca.name,
                "certificate": _der(ca.certificate),
                "responder_certificate": responder_cert,
                "responder_key": key_file.name,
                **policy.record(),
                "parents": _parents(service, ca),
            },
            key_file,
        )
