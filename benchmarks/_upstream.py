"""Runs a FakeUpstream in its own process for benchmarks, so its CPU is not counted as the client's.

Prints the base URL on stdout, then serves until stdin closes. With ``--chunks N`` the answer streams in
N chunks of 8 characters (the default answer, "The capital of France is Paris.", streams in 4).
"""

from __future__ import annotations

import argparse
import sys

from model_orchestrator.testing import FakeUpstream, Reply

ANSWER = "The capital of France is Paris."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, help="stream the answer in this many 8-character chunks")
    args = parser.parse_args()
    text = ANSWER if args.chunks is None else ("Paris, France. " * args.chunks)[: 8 * args.chunks]
    upstream = FakeUpstream(default_reply=Reply(text, usage=(12, 8)))
    with upstream:
        print(upstream.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
