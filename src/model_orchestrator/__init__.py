"""model-orchestrator: send each LLM request to the right model or mix of models.

Importing this package is cheap: it loads no provider SDK, HTTP client, local model or server.
The façade (``Orchestrator``, ``run_orchestration``) is imported on first attribute access.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

# A library logs; the application decides where logs go (the CLI does with -v).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = ["OrchestrationResult", "Orchestrator", "__version__", "run_orchestration"]

if TYPE_CHECKING:
    from model_orchestrator.core.result import OrchestrationResult
    from model_orchestrator.orchestrator import Orchestrator, run_orchestration


def __getattr__(name: str) -> Any:
    if name in ("Orchestrator", "run_orchestration"):
        from model_orchestrator import orchestrator

        return getattr(orchestrator, name)
    if name == "OrchestrationResult":
        from model_orchestrator.core.result import OrchestrationResult

        return OrchestrationResult
    raise AttributeError(f"module 'model_orchestrator' has no attribute {name!r}")
