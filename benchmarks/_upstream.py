"""Runs a FakeUpstream in its own process for benchmarks, so its CPU is not counted as the client's.

Prints the base URL on stdout, then serves until stdin closes.
"""

from __future__ import annotations

import sys

from model_orchestrator.testing import FakeUpstream, Reply


def main() -> None:
    upstream = FakeUpstream(default_reply=Reply("The capital of France is Paris.", usage=(12, 8)))
    with upstream:
        print(upstream.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
