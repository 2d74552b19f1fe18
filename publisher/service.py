"""The publisher: every outbox event reaches every VA, in order, exactly once
in effect.

One task per VA. Its cursor is the VA's own record of the highest sequence
it applied (asked on start, after every failure, and when the VA refuses a
batch as following events it does not hold), so a publisher that
crashes mid-batch resumes exactly where each VA stands, and a VA that was
down for a day catches up from its own position. A slow or dead VA holds back
only its own task. Idle tasks look for new events every ``poll_interval``
(50 ms by default) or at once when woken in-process.
"""

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

from common import prometheus
from common.clock import SYSTEM, Clock
from publisher.outbox import Outbox
from publisher.settings import PublisherSettings
from publisher.targets import CRLRefusedError, DeliveryError, SequenceGap
from store.events import EventError

log = logging.getLogger("revoca.publisher")


@dataclass
class TargetState:
    name: str
    high_water: int = 0
    delivered: int = 0
    failures: int = 0
    last_error: str = ""
    last_success: float = 0.0
    latencies_ms: list = field(default_factory=list)
    connections: int = 0  # times the VA was asked where it stands and took the issuers
    # Batches the VA refused as following events it had not applied (it lost
    # some: restored from an older copy); each was sent again from its mark.
    sequence_gaps: int = 0
    crl_refusals: int = 0
    # CRL name -> the refused CRL's number, error code and message, until
    # a CRL under that name is taken.
    refused_crls: dict = field(default_factory=dict)


class Publisher:
    def __init__(
        self,
        outbox: Outbox,
        targets: list,
        settings: PublisherSettings,
        *,
        issuers: list[tuple[int, dict]] = (),
        clock: Clock = SYSTEM,
        rng: random.Random | None = None,
    ):
        """``settings``: source, batch, poll and CRL intervals, the retry
        backoff (its targets are built by the caller: ``targets``).
        ``issuers``: (id, record) pairs pushed to every target that takes
        issuer configuration, each time it is (re)connected. ``clock`` times
        successes and latencies; ``rng`` draws the retry jitter (a fresh
        ``random.Random`` when not given)."""
        self.outbox = outbox
        self.targets = targets
        self.settings = settings
        self.source = settings.source
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.state = {t.name: TargetState(t.name) for t in targets}
        self.issuers = list(issuers)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def wake(self) -> None:
        """New events were committed (in this process): deliver now."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        await asyncio.gather(
            *(self._follow(target) for target in self.targets),
            *(self._follow_crls(target) for target in self.targets),
        )
        for target in self.targets:
            await target.close()

    async def _follow(self, target) -> None:
        state = self.state[target.name]
        cursor = None
        backoff = 0.5
        gapped = False  # the last delivery met a gap, and nothing went through since
        while not self._stop.is_set():
            try:
                if cursor is None:
                    cursor = await target.high_water(self.source)
                    if self.issuers and hasattr(target, "put_issuer"):
                        for issuer_id, record in self.issuers:
                            await target.put_issuer(issuer_id, record)
                    state.high_water = cursor
                    state.connections += 1  # the CRLs may follow the issuers (all again)
                events = await asyncio.to_thread(self.outbox.read, cursor, self.settings.batch)
                if not events:
                    await self._idle()
                    continue
                cursor = await target.deliver(self.source, cursor, events)
                state.high_water = cursor
                state.delivered += len(events)
                state.last_success = self.clock.wall()
                self._record_latency(state, events[-1]["seq"])
                backoff, gapped = 0.5, False
            except SequenceGap as exc:
                if gapped:  # again at once: not a loss to repair but a fault
                    cursor = None
                    await self._failed(target, state, exc, backoff)
                    backoff *= 2
                    continue
                # The VA lost events it had taken: ask where it stands (and
                # give it the issuers and CRLs again), then resend from there.
                gapped, cursor = True, None
                state.sequence_gaps += 1
                log.warning(
                    "the VA has not applied the events before the batch; sending again from "
                    "its high-water mark",
                    extra={"target": target.name, "high_water": exc.high_water},
                )
            except (DeliveryError, EventError) as exc:
                # A row the event contract refuses is never skipped: this VA
                # waits at it (and says why) until the row or the code is fixed.
                cursor = None  # ask the VA where it stands before trying again
                await self._failed(target, state, exc, backoff)
                backoff *= 2

    async def _failed(self, target, state: TargetState, exc: Exception, backoff: float) -> None:
        """Count and log a failed delivery; wait ``backoff`` (capped, jittered)."""
        state.failures += 1
        state.last_error = str(exc)
        delay = min(self.settings.max_backoff, backoff) * self.rng.uniform(0.5, 1.5)
        log.warning(
            "delivery failed, retrying",
            extra={"target": target.name, "error": str(exc), "retry_in": round(delay, 2)},
        )
        await self._sleep(delay)

    async def _follow_crls(self, target) -> None:
        """Push the newest CRL under every name when its number changes, once
        the VA took the issuers (it checks each CRL against them), and all
        of them again each time the VA is reconnected (it may have lost
        some: the VA takes a resend of the CRL it holds as a no-op).

        A CRL the VA refuses for good (va/crlcheck.py: malformed, a bad
        signature, a number below or equal to one it holds) is reported, in
        the status, the metrics and the log, and not sent again until a
        newer one comes under its name; other failures are retried with the
        events' backoff."""
        state = self.state[target.name]
        pushed: dict[str, int] = {}
        connections = 0
        backoff = 0.5
        while not self._stop.is_set():
            delay = self.settings.crl_interval
            if state.connections == 0:
                await self._sleep(delay)
                continue
            if connections != state.connections:
                connections, pushed = state.connections, {}
            try:
                numbers = await asyncio.to_thread(self.outbox.crl_numbers)
                if any(pushed.get(name) != number for name, number in numbers.items()):
                    for crl in await asyncio.to_thread(self.outbox.latest_crls):
                        if pushed.get(crl["name"]) != crl["number"]:
                            await self._push_crl(target, state, crl)
                            pushed[crl["name"]] = crl["number"]
                backoff = 0.5
            except DeliveryError as exc:
                state.last_error = str(exc)
                delay = min(self.settings.max_backoff, backoff) * self.rng.uniform(0.5, 1.5)
                backoff *= 2
                log.warning(
                    "CRL delivery failed, retrying",
                    extra={"target": target.name, "error": str(exc), "retry_in": round(delay, 2)},
                )
            await self._sleep(delay)

    async def _push_crl(self, target, state: TargetState, crl: dict) -> None:
        """Deliver one CRL; a refusal for good is recorded, not raised."""
        try:
            await target.put_crl(crl)
        except CRLRefusedError as exc:
            if exc.refusal.transient:
                raise
            state.crl_refusals += 1
            state.last_error = str(exc)
            state.refused_crls[crl["name"]] = {
                "number": crl["number"],
                "error": exc.refusal.code,
                "message": str(exc),
            }
            log.error(
                "the VA refused a CRL; it is not sent again",
                extra={
                    "target": target.name,
                    "crl": crl["name"],
                    "number": crl["number"],
                    "error": str(exc),
                },
            )
            return
        state.refused_crls.pop(crl["name"], None)

    def _record_latency(self, state: TargetState, seq: int) -> None:
        created = self.outbox.created_at_ms(seq)
        if created is not None:
            state.latencies_ms.append(self.clock.wall() * 1000 - created)
            del state.latencies_ms[:-1000]

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
        self._wake.clear()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def status(self) -> dict:
        last = self.outbox.last_id()
        return {
            name: {
                "high_water": s.high_water,
                "queue_depth": max(0, last - s.high_water),
                "delivered": s.delivered,
                "failures": s.failures,
                "last_error": s.last_error,
                "sequence_gaps": s.sequence_gaps,
                "crl_refusals": s.crl_refusals,
                "refused_crls": dict(s.refused_crls),
            }
            for name, s in self.state.items()
        }

    def metrics(self) -> str:
        """The Prometheus exposition of the publisher (common/prometheus.py)."""
        last = self.outbox.last_id()
        states = self.state.items()
        return prometheus.render(
            [
                prometheus.gauge(
                    "revoca_publisher_outbox_last_id", "Newest event in the CA outbox.", last
                ),
                prometheus.family(
                    "revoca_publisher_queue_depth",
                    "gauge",
                    "Events not yet applied, per VA.",
                    [({"va": n}, max(0, last - s.high_water)) for n, s in states],
                ),
                prometheus.family(
                    "revoca_publisher_delivered_total",
                    "counter",
                    "Events delivered, per VA.",
                    [({"va": n}, s.delivered) for n, s in states],
                ),
                prometheus.family(
                    "revoca_publisher_failures_total",
                    "counter",
                    "Failed deliveries, per VA.",
                    [({"va": n}, s.failures) for n, s in states],
                ),
                prometheus.family(
                    "revoca_publisher_sequence_gaps_total",
                    "counter",
                    "Batches a VA refused for following events it had not applied (it lost "
                    "some), each sent again from its high-water mark, per VA.",
                    [({"va": n}, s.sequence_gaps) for n, s in states],
                ),
                prometheus.family(
                    "revoca_publisher_crl_refusals_total",
                    "counter",
                    "CRLs a VA refused for good (malformed, badly signed, an old number), per VA.",
                    [({"va": n}, s.crl_refusals) for n, s in states],
                ),
            ]
        )
