"""Request and attempt ids: 32 hex digits, unique, ordered by the millisecond they were made."""

from __future__ import annotations

import re
import time

from model_orchestrator.core.ids import new_id


def test_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_an_id_made_in_a_later_millisecond_sorts_after() -> None:
    first = new_id()
    millisecond = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == millisecond:
        pass
    second = new_id()
    assert first < second
    assert int(first[:12], 16) < int(second[:12], 16) <= time.time_ns() // 1_000_000
