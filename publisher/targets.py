"""Where events go: a VA over its authenticated admin listener, or the local
LMDB of a co-located VA through the very same apply code."""

import asyncio
import json
from pathlib import Path

import aiohttp

from common.errors import RevocaError
from va import crlcheck, publish
from va.errors import CRLRefusal, CRLRefused, SequenceGapError
from va.store import VAStore


class DeliveryError(RevocaError):
    """The VA did not take the batch; try again later. ``status`` is the
    HTTP status of a refusal (None: no answer), ``answer`` its JSON body."""

    code = "delivery_failed"

    def __init__(self, message: str, status: int | None = None, answer: dict | None = None):
        super().__init__(message)
        self.status = status
        self.answer = answer


class CRLRefusedError(DeliveryError):
    """The VA refused a CRL (va/crlcheck.py); ``refusal`` says why, and
    whether the same CRL may be taken later."""

    code = "crl_refused"

    def __init__(self, message: str, refusal: CRLRefusal, status: int | None = None):
        super().__init__(message, status)
        self.refusal = refusal


class SequenceGap(DeliveryError):
    """The VA has not applied the events before the batch (its high-water is
    below the batch's ``after``) and took nothing: send again from
    ``high_water``."""

    code = "sequence_gap"

    def __init__(self, message: str, high_water: int):
        super().__init__(message, 409)
        self.high_water = high_water


def _stated(crl: dict) -> dict[str, int]:
    """What the CA store's row says of a CRL, for the VA to check (va/crlcheck.py)."""
    return {field: crl[field] for field in crlcheck.HEADERS.values()}


class HTTPTarget:
    """A remote VA: ``url`` is its admin listener, e.g. http://127.0.0.1:8081."""

    def __init__(
        self, name: str, url: str, token: bytes, *, timeout: float = 10.0, ssl_context=None
    ):
        """``ssl_context`` carries the client certificate and the CA to trust
        for an https:// admin listener with mutual TLS."""
        self.name = name
        self._ssl = ssl_context
        self.base = url.rstrip("/") + f"/publish/v{publish.VERSION}"
        self._headers = {"Authorization": "Bearer " + token.decode()}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout, connector=connector
            )
        return self._session

    async def _request(self, method: str, path: str, **kwargs) -> dict:
        """One admin request; any failure becomes DeliveryError (retried later)."""
        try:
            async with self._client().request(method, self.base + path, **kwargs) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryError(f"{self.name}: {exc!r}") from None
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if status in (404, 405) and not (isinstance(body, dict) and "error" in body):
            raise DeliveryError(
                f"{self.name}: HTTP {status}: the VA does not speak version {publish.VERSION} of "
                "the publish protocol at this URL (deploy the publisher and the VA of one "
                "release)",
                status,
            )
        if status != 200:
            answer = body if isinstance(body, dict) else None
            message = answer.get("message", answer) if answer else text.strip()[:200]
            raise DeliveryError(f"{self.name}: HTTP {status}: {message}", status, answer)
        if not isinstance(body, dict):
            raise DeliveryError(f"{self.name}: the answer is not a JSON object")
        return body

    async def high_water(self, source: str) -> int:
        body = await self._request("GET", "/status", params={"source": source})
        try:
            return body["high_water"]
        except (KeyError, TypeError):
            raise DeliveryError(f"{self.name}: status answer without high_water") from None

    async def deliver(self, source: str, after: int, events: list[dict]) -> int:
        """Send ``events``, read from the outbox after seq ``after``; the VA's
        high-water mark after it applied them."""
        batch = {"source": source, "after": after, "events": events}
        try:
            body = await self._request("POST", "/events", json=batch)
        except DeliveryError as exc:
            answer = exc.answer or {}
            high_water = answer.get("high_water")
            if answer.get("error") == SequenceGap.code and type(high_water) is int:
                raise SequenceGap(exc.message, high_water) from None
            raise
        try:
            return body["high_water"]
        except (KeyError, TypeError):
            raise DeliveryError(f"{self.name}: events answer without high_water") from None

    async def put_snapshot(self, snapshot: str, chunk: int, body: dict) -> dict:
        """One chunk of a snapshot (publisher/snapshot.py)."""
        return await self._request("PUT", f"/snapshots/{snapshot}/{chunk}", json=body)

    async def put_crl(self, crl: dict) -> None:
        headers = {header: str(crl[field]) for header, field in crlcheck.HEADERS.items()}
        headers["Content-Type"] = "application/pkix-crl"
        try:
            await self._request("PUT", f"/crls/{crl['name']}", data=crl["der"], headers=headers)
        except DeliveryError as exc:
            refusal = CRLRefusal.of_code((exc.answer or {}).get("error"))
            if refusal is None:
                raise
            raise CRLRefusedError(exc.message, refusal, exc.status) from None

    async def put_issuer(self, issuer_id: int, record: dict) -> None:
        await self._request("PUT", f"/issuers/{issuer_id}", json=record)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class LocalTarget:
    """A co-located VA: apply straight into its LMDB (all-in-one deployments)."""

    def __init__(
        self,
        name: str,
        directory: Path | None = None,
        *,
        store: VAStore | None = None,
        on_applied=None,
    ):
        """Open the VA's LMDB in ``directory``, or use ``store`` when the VA runs in
        this process (LMDB must not be opened twice by one process)."""
        self.name = name
        self._owned = store is None
        self.store = store if store is not None else VAStore(directory / "lmdb")
        self.on_applied = on_applied  # e.g. wake the co-located VA's refresher

    async def high_water(self, source: str) -> int:
        return publish.counters(self.store, source)[0]

    async def deliver(self, source: str, after: int, events: list[dict]) -> int:
        """As the admin listener does: the same check of ``after`` (va/publish.py)."""
        try:
            batch = publish.parse_batch({"source": source, "after": after, "events": events})
            result = await asyncio.to_thread(publish.apply_batch, self.store, batch)
        except SequenceGapError as exc:
            raise SequenceGap(f"{self.name}: {exc}", exc.high_water) from None
        except Exception as exc:
            raise DeliveryError(f"{self.name}: {exc}") from exc
        if result["applied"] and self.on_applied is not None:
            self.on_applied()
        return result["high_water"]

    async def put_snapshot(self, snapshot: str, chunk: int, body: dict) -> dict:
        """One chunk of a snapshot, checked and applied as the admin listener
        does (va/publish.py)."""
        try:
            source, parsed = publish.parse_snapshot(snapshot, str(chunk), body)
            result = await asyncio.to_thread(publish.apply_snapshot, self.store, source, parsed)
        except Exception as exc:
            raise DeliveryError(f"{self.name}: {exc}") from exc
        if result["applied"] and self.on_applied is not None:
            self.on_applied()
        return result

    async def put_crl(self, crl: dict) -> None:
        """Checked and stored as the admin listener does (va/crlcheck.py)."""
        try:
            await asyncio.to_thread(
                crlcheck.publish_crl, self.store, crl["name"], crl["der"], _stated(crl)
            )
        except CRLRefused as exc:
            raise CRLRefusedError(f"{self.name}: {exc}", exc.refusal, exc.status) from None
        except Exception as exc:
            raise DeliveryError(f"{self.name}: {exc}") from exc

    async def close(self) -> None:
        if self._owned:
            self.store.close()


def client_tls_context(
    cert_file: Path, key_file: Path, server_ca_file: Path, key_passphrase: bytes | None = None
):
    """TLS for a publisher: trust ``server_ca_file``, present a client certificate."""
    import ssl

    context = ssl.create_default_context(cafile=str(server_ca_file))
    context.load_cert_chain(str(cert_file), str(key_file), password=key_passphrase)
    return context
