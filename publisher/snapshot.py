"""A snapshot: every status of the CA store at one outbox position, delivered
to a VA through the publish protocol's apply code (va/publish.py).

``revoca va import`` sends one to the local VA (a ``LocalTarget``) and
``revoca publisher snapshot`` to remote ones (``HTTPTarget``): the same code,
the same rule at the VA. The statuses and the position are read in one read
transaction (``Outbox.snapshot``), streamed in chunks while the next chunk is
read, so memory stays at two chunks whatever the store's size. The VA applies
each status only where it is newer than what the serial holds, so a snapshot
racing the publisher (or another snapshot) never moves a status back, and
the last chunk of a complete snapshot lifts the source's high-water to the
position: the events it holds are not replayed.
"""

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor

from publisher.outbox import Outbox
from va.publish import MAX_STATUSES_PER_CHUNK


async def send_snapshot(
    outbox: Outbox,
    target,
    source: str,
    *,
    ca_ids: Collection[int] | None = None,
    chunk: int = MAX_STATUSES_PER_CHUNK,
    rng: random.Random | None = None,
) -> dict:
    """Deliver a snapshot of ``ca_ids`` (None: every CA that publishes) to
    ``target`` as ``source``. Returns the position, whether the snapshot was
    complete, the statuses sent per CA id, how many the VA applied and kept,
    and its high-water after the last chunk. A failed chunk raises the
    target's DeliveryError; what was applied stays (it is never older than
    what it replaced), and the next snapshot starts anew."""
    if not 1 <= chunk <= MAX_STATUSES_PER_CHUNK:
        raise ValueError(f"chunk must be 1 to {MAX_STATUSES_PER_CHUNK} statuses")
    rng = rng if rng is not None else random.Random()
    ident = f"{rng.getrandbits(128):032x}"
    loop = asyncio.get_running_loop()
    # One thread owns the read transaction's connection from start to end.
    executor = ThreadPoolExecutor(1, thread_name_prefix="revoca-snapshot")
    reader = outbox.snapshot(ca_ids, chunk)

    def read():
        return loop.run_in_executor(executor, next, reader, None)

    try:
        position, complete = await read()
        per_ca: Counter[int] = Counter()
        applied = kept = 0
        high_water = 0
        current = await read()
        following = await read() if current is not None else None
        number = 0
        while True:
            ahead = read() if following is not None else None  # read while sending
            statuses = current or []
            per_ca.update(status["issuer"] for status in statuses)
            body = {
                "source": source,
                "position": position,
                "last": following is None,
                "complete": complete,
                "statuses": statuses,
            }
            try:
                result = await target.put_snapshot(ident, number, body)
            except BaseException:
                if ahead is not None:  # the reader's thread finishes before it is closed
                    with contextlib.suppress(Exception):
                        await ahead
                raise
            applied += result["applied"]
            kept += result["kept"]
            high_water = result["high_water"]
            if following is None:
                break
            current, following = following, await ahead
            number += 1
    finally:
        await loop.run_in_executor(executor, reader.close)
        executor.shutdown()
    return {
        "snapshot": ident,
        "position": position,
        "complete": complete,
        "chunks": number + 1,
        "statuses": dict(per_ca),
        "applied": applied,
        "kept": kept,
        "high_water": high_water,
    }
