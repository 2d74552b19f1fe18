"""The timed jobs of the all-in-one node (`revoca serve`, the demo): the CRL
updater on the [crl] schedule and expiry notices every [notify] interval,
each in a thread (their store work blocks) beside the VA's event loop.

A pass that fails is logged and tried again at the next one; it never
stops the node.
"""

import asyncio
import contextlib
import functools
import logging
import time

log = logging.getLogger("revoca.schedules")


async def crl_updater(service, config) -> None:
    """Issue every CRL that is due, then again at each pass
    (ca/crl_updater.pass_seconds)."""
    from ca.crl_updater import Changes, Schedule, pass_seconds, run_once

    schedule = Schedule.from_settings(config.crl)
    interval = pass_seconds(schedule)
    changes = Changes()  # kept between passes: each reads only new outbox events
    loop = asyncio.get_running_loop()
    job = functools.partial(
        run_once,
        service,
        schedule,
        delta_url_for=config.delta_crl_url,
        actor="crl-updater",
        changes=changes,
    )
    while True:
        try:
            await loop.run_in_executor(None, job)
        except Exception:  # the next pass tries again; the node goes on serving
            log.exception("CRL update failed; retrying at the next pass")
        await asyncio.sleep(interval)


async def expiry_notices(store, settings, password: str = "") -> None:
    """Send the expiry notices that are due, then again every [notify] interval."""
    from ra import notify

    loop = asyncio.get_running_loop()
    while True:
        try:
            result = await loop.run_in_executor(
                None,
                functools.partial(notify.run, store, settings, int(time.time()), password=password),
            )
            if result.sent:
                log.info("sent expiry notices", extra={"sent": len(result.sent)})
        except notify.NotifyError as exc:
            log.warning(
                "expiry notices not sent; retrying at the next pass", extra={"error": exc.message}
            )
        except Exception:  # a store error, say: the next pass tries again
            log.exception("expiry notices failed; retrying at the next pass")
        await asyncio.sleep(settings.interval)


async def run_all(service, ra_store, config, password: str = "") -> None:
    """Every schedule of the node, until cancelled."""
    tasks = [
        asyncio.ensure_future(crl_updater(service, config)),
        asyncio.ensure_future(expiry_notices(ra_store, config.notify, password)),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
