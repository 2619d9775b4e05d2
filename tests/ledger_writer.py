"""One of several processes writing to one ledger at once, for ``test_ledger_writers``.

Usage: ``python tests/ledger_writer.py URL NAME COUNT``. Waits for a line on stdin (so every process
opens, and migrates, the database at the same moment), then concurrently: records COUNT attempts of its
own (``NAME-i``) plus COUNT attempts every writer shares (``shared-i``, as a batch retried by another
writer would be), and makes COUNT reserve-then-settle calls of 0.01 USD against a daily limit of 1 USD.
Prints ``done ACCEPTED`` (the calls the budget let through) once everything is flushed.
"""

from __future__ import annotations

import asyncio
import sys

from model_orchestrator.core.budget import BudgetLimit
from model_orchestrator.core.errors import BudgetExceededError
from model_orchestrator.core.events import AttemptSucceeded
from model_orchestrator.core.usage import Usage
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.settings import LedgerSettings

DAILY = BudgetLimit("global", "usd", "day", 1.0, warn_at=None)
CALL = 0.01


def _attempt(attempt_id: str, n: int) -> AttemptSucceeded:
    return AttemptSucceeded(
        request_id=f"r-{attempt_id}",
        timestamp=1_800_000_000.0 + n,
        attempt_id=attempt_id,
        model="m",
        provider="p",
        deployment="m@p",
        usage=Usage(100, 20),
        cost=0.0001,
        latency=0.01,
    )


async def _call(ledger: Ledger) -> bool:
    try:
        reservation = await ledger.reserve([DAILY], usd=CALL, calls=1)
    except BudgetExceededError:
        return False
    await asyncio.sleep(0.001)
    await ledger.settle(reservation, usd=CALL, calls=1)
    return True


async def main(url: str, name: str, count: int) -> None:
    await asyncio.to_thread(sys.stdin.readline)
    ledger = Ledger(LedgerSettings(url, flush_interval=0.005, batch_size=20))
    try:
        for n in range(count):
            ledger.recorder.handle(_attempt(f"{name}-{n}", n))
            ledger.recorder.handle(_attempt(f"shared-{n}", n))
        accepted = await asyncio.gather(*(_call(ledger) for _ in range(count)))
        await ledger.flush()
    finally:
        await ledger.aclose()
    print(f"done {sum(accepted)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
