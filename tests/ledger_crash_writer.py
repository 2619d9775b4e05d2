"""A process that records attempts into a ledger without end, for the SIGKILL test.

Usage: ``python tests/ledger_crash_writer.py URL``. Prints ``ready`` once the ledger is open, then one
``committed ID ID ...`` line per batch right after its transaction committed (flushed at once), so the
test knows exactly which rows are durable when it kills this process mid-stream.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from model_orchestrator.core.events import AttemptSucceeded, Event
from model_orchestrator.core.usage import Usage
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.settings import LedgerSettings


def _committed(events: Sequence[Event]) -> None:
    ids = " ".join(e.attempt_id for e in events if isinstance(e, AttemptSucceeded))
    sys.stdout.write(f"committed {ids}\n")
    sys.stdout.flush()


async def main(url: str) -> None:
    ledger = Ledger(LedgerSettings(url, flush_interval=0.002, batch_size=25), on_commit=_committed)
    await ledger.store()
    print("ready", flush=True)
    n = 0
    while True:
        for _ in range(10):
            ledger.recorder.handle(
                AttemptSucceeded(
                    request_id=f"r{n // 3}",
                    timestamp=1_800_000_000.0 + n,
                    attempt_id=f"a{n:09d}",
                    model="m",
                    provider="p",
                    deployment="m@p",
                    usage=Usage(100, 20),
                    cost=0.0001,
                    latency=0.01,
                )
            )
            n += 1
        await asyncio.sleep(0.001)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
