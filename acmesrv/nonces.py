"""Replay nonces (RFC 8555 7.2, 6.5), made and redeemed by this process.

A nonce is a counter, the time it was made and an HMAC-SHA256 tag over both
under a key drawn when the process starts: unforgeable, unguessable in
order to be accepted, and checked without a store. Each is good once: a
redeemed counter is remembered until ``capacity`` of them are; then the
oldest is forgotten and every counter up to it is refused from then on (a
floor, as Boulder's nonce service keeps), so memory stays bounded and a
replay is refused whatever its age. A nonce older than ``lifetime`` is
refused too.

A nonce is only good at the process that made it: a restart, or a load
balancer sending the next request to another node, costs the client one
``badNonce``, whose answer carries a nonce it can use (RFC 8555 6.5 asks
clients to retry with it). A store write per request would cost more than
the rest of most requests together.
"""

import hashlib
import heapq
import hmac
import threading
from collections.abc import Callable

from acmesrv.jws import b64decode, b64encode
from acmesrv.problems import Problem

_TAG = 16


class NonceService:
    def __init__(
        self,
        random_bytes: Callable[[int], bytes],
        now: Callable[[], int],
        *,
        capacity: int = 100_000,
        lifetime: int = 3600,
    ):
        self._key = random_bytes(32)
        self._now = now
        self.capacity = capacity
        self.lifetime = lifetime
        self._counter = 0
        self._floor = 0
        self._used: set[int] = set()
        self._order: list[int] = []
        self._lock = threading.Lock()

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_TAG]

    def make(self) -> str:
        with self._lock:
            self._counter += 1
            counter = self._counter
        body = counter.to_bytes(8, "big") + self._now().to_bytes(8, "big")
        return b64encode(body + self._tag(body))

    def redeem(self, value) -> None:
        """Accept ``value`` once; raise a ``badNonce`` Problem otherwise."""
        if not isinstance(value, str) or len(value) != 43:
            raise Problem("badNonce", "the nonce is not one this server made")
        try:
            raw = b64decode(value, "the nonce")
        except Problem:
            raise Problem("badNonce", "the nonce is not one this server made") from None
        body, tag = raw[:16], raw[16:]
        if not hmac.compare_digest(self._tag(body), tag):
            raise Problem(
                "badNonce",
                "the nonce is not one this server made (or it restarted since); "
                "retry with the nonce of this answer",
            )
        counter = int.from_bytes(body[:8], "big")
        made = int.from_bytes(body[8:], "big")
        if self._now() - made > self.lifetime:
            raise Problem("badNonce", "the nonce has expired; retry with the nonce of this answer")
        with self._lock:
            if counter <= self._floor or counter in self._used:
                raise Problem("badNonce", "the nonce was used already (a replay?)")
            self._used.add(counter)
            heapq.heappush(self._order, counter)
            while len(self._used) > self.capacity:
                oldest = heapq.heappop(self._order)
                self._used.discard(oldest)
                self._floor = max(self._floor, oldest)
