"""One worker process's answering, between the HTTP front and the responder:
hot answers in front, fresh signatures batched behind.

- Hot answers: pre-signed answers by request DER, so a repeated request
  costs one dict lookup; only requests without a nonce are kept (one with a
  nonce, answered pre-signed because it is not echoed, never comes again).
  They are dropped when the store has committed a write since (a publish,
  a refresh, from any process; checked at most every
  GENERATION_CHECK_SECONDS while serving, so no request begun 2 ms after a
  commit sees an older answer), bounded, and always within their validity.
  The responder's kept statuses are dropped with them.
- Fresh signatures: the signing jobs of one event-loop iteration are signed
  back to back at its end (in the loop's thread, or in a signing thread),
  at most ``fresh_signing_cap`` in flight, past which the answer is
  tryLater; each job's waiter is called once its answer is there.
"""

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from common.clock import SYSTEM, Clock
from va.metrics import Metrics
from va.responder import (
    INTERNAL_ERROR,
    PRESIGNED,
    TRY_LATER,
    Answer,
    Responder,
    SigningJob,
    finish_all,
)
from va.settings import HTTPSettings

log = logging.getLogger("revoca.va.worker")

HOT_ANSWER_ENTRIES = 16384
# Only ordinary requests are kept (one CertID: about 80-120 bytes), so padded
# or signed ones of up to max_body cannot fill a worker's memory.
HOT_KEY_MAX = 512
GENERATION_CHECK_SECONDS = 0.002


class Worker:
    """Shared by every connection of one worker process."""

    def __init__(
        self,
        responder: Responder,
        settings: HTTPSettings,
        metrics: Metrics,
        *,
        clock: Clock = SYSTEM,
    ):
        self.responder = responder
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.executor = (
            ThreadPoolExecutor(max_workers=settings.signing_threads, thread_name_prefix="ocsp-sign")
            if settings.signing_threads > 0
            else None
        )
        self.cap = settings.fresh_signing_cap
        self.in_flight = 0
        # Fresh signatures for the end of this loop iteration, and who waits
        # for each (the connection's flush).
        self.batch: list[SigningJob] = []
        self.waiters: list[Callable[[], None]] = []
        self.hot: dict[bytes, Answer] = {}
        self._generation = responder.reader.generation
        self.generation = self._generation()
        self.checked = clock.perf()
        self.stopping = threading.Event()  # set when the worker stops
        metrics.fresh_signing = lambda: self.in_flight

    def ocsp(
        self, request: bytes, started: float, now: float, waiter: Callable[[], None]
    ) -> Answer | SigningJob:
        """An Answer, or a SigningJob whose ``answer`` is filled later in this
        loop iteration (or by a signing thread), after which ``waiter`` is
        called. ``started`` is the perf clock when the request was read,
        ``now`` the wall clock."""
        if started - self.checked > GENERATION_CHECK_SECONDS:
            self.checked = started
            generation = self._generation()
            if generation != self.generation:  # a publish or refresh committed
                self.generation = generation
                self.hot.clear()
                self.responder.forget()
        answer = self.hot.get(request)
        if answer is not None and answer.next_update > now:
            return answer
        result = self.responder.answer(request, int(now))
        if type(result) is Answer:
            if result.kind is PRESIGNED and result.repeatable and len(request) <= HOT_KEY_MAX:
                if len(self.hot) >= HOT_ANSWER_ENTRIES:
                    self.hot.clear()
                self.hot[request] = result
            return result
        if self.in_flight >= self.cap:
            self.metrics.count("try_later")
            return TRY_LATER
        self.in_flight += 1
        if not self.batch:
            asyncio.get_running_loop().call_soon(self._sign_batch)
        self.batch.append(result)
        self.waiters.append(waiter)
        return result

    def _sign_batch(self) -> None:
        """Sign the jobs of one event-loop iteration back to back, then hand
        each answer to its waiter. In a row, the key's precomputed tables
        stay in the core's cache: a signature costs about what it costs alone
        instead of 15-20% more between two requests' Python work. With
        signing threads the batch is signed in one of them (the native signer
        releases the GIL once for the batch) while the loop serves on."""
        batch, waiters = self.batch, self.waiters
        self.batch, self.waiters = [], []
        if self.executor is None:
            try:
                finish_all(batch)
            except Exception:
                log.exception("signing failed")  # those jobs answer internalError
            self._answered(batch, waiters)
            return
        future = asyncio.get_running_loop().run_in_executor(self.executor, finish_all, batch)
        future.add_done_callback(functools.partial(self._signed_in_thread, batch, waiters))

    def _signed_in_thread(self, batch: list[SigningJob], waiters, future) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("signing failed", exc_info=future.exception())
        self._answered(batch, waiters)

    def _answered(self, batch: list[SigningJob], waiters) -> None:
        """A job left without an answer (its signing failed) answers internalError."""
        self.in_flight -= len(batch)
        for job in batch:
            if job.answer is None:
                job.answer = INTERNAL_ERROR
        for waiter in waiters:
            waiter()

    def invalidate(self) -> None:
        """Forget hot answers and kept statuses now (this process has just
        written the store)."""
        self.hot.clear()
        self.responder.forget()
        self.checked = float("-inf")

    def after_write(self, wake: asyncio.Event) -> Callable[[], None]:
        """A callback for in-process writers: drop hot answers, wake ``wake``
        (the refresher)."""

        def applied() -> None:
            self.invalidate()
            wake.set()

        return applied

    def close(self) -> None:
        self.stopping.set()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
