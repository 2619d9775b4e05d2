"""Where the RouteLLM-derived dev data lives for the routing tests: ``ORCHESTRATOR_ROUTING_DEV``, else
``../shared/routing/dev`` beside the repository (as the README's training command says)."""

from __future__ import annotations

import os
from pathlib import Path

DEV_DIR = Path(
    os.environ.get(
        "ORCHESTRATOR_ROUTING_DEV", Path(__file__).resolve().parents[2] / "shared" / "routing" / "dev"
    )
)
DEV_FILES = tuple(str(DEV_DIR / f"{name}.jsonl") for name in ("mmlu", "gsm8k", "mt_bench"))
