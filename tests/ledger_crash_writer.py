"""A process that records into a ledger until it is killed, for the SIGKILL tests.

Usage: ``python tests/ledger_crash_writer.py URL stream|requests``. Prints ``ready`` once the ledger is
open. ``stream``: records attempts without end and prints one ``committed ID ID ...`` line per batch right
after its transaction committed, so the test knows exactly which rows are durable when it kills this
process mid-stream. ``requests``: records one finished request (start, attempt, finish) and the start of
one that never finishes, never flushes, and prints ``committed ...`` with the attempt ids and
``request ID`` lines as the writer thread commits them on its own (every ``flush_interval``).
"""

from __future__ import annotations

import asyncio
import sys

from model_orchestrator.core.events import AttemptSucceeded, RequestFinished, RequestStarted
from model_orchestrator.core.usage import Usage
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.records import Batch
from model_orchestrator.ledger.settings import LedgerSettings


def _committed(batch: Batch) -> None:
    lines = [f"request {row[0]}\n" for row in batch.requests]
    if batch.attempts:
        lines.append("committed " + " ".join(row[0] for row in batch.attempts) + "\n")
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


def _attempt(n: int, request_id: str) -> AttemptSucceeded:
    return AttemptSucceeded(
        request_id=request_id,
        timestamp=1_800_000_000.0 + n,
        attempt_id=f"a{n:09d}",
        model="m",
        provider="p",
        deployment="m@p",
        usage=Usage(100, 20),
        cost=0.0001,
        latency=0.01,
    )


async def stream(ledger: Ledger) -> None:
    n = 0
    while True:
        for _ in range(10):
            ledger.recorder.handle(_attempt(n, f"r{n // 3}"))
            n += 1
        await asyncio.sleep(0.001)


async def requests(ledger: Ledger) -> None:
    for request_id in ("done", "running"):
        ledger.recorder.handle(
            RequestStarted(request_id=request_id, timestamp=1_800_000_000.0, requested="m", strategy="single")
        )
    ledger.recorder.handle(_attempt(1, "done"))
    ledger.recorder.handle(
        RequestFinished(
            request_id="done",
            timestamp=1_800_000_001.0,
            requested="m",
            strategy="single",
            ok=True,
            latency=1.0,
            model_used="m",
            cost=0.0001,
            attempts=1,
        )
    )
    await asyncio.Event().wait()  # no flush, no close: only the writer thread's interval writes


async def main(url: str, mode: str) -> None:
    ledger = Ledger(
        LedgerSettings(url, flush_interval=0.002 if mode == "stream" else 0.05, batch_size=25),
        on_commit=_committed,
    )
    await ledger.store()
    print("ready", flush=True)
    await (stream(ledger) if mode == "stream" else requests(ledger))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
