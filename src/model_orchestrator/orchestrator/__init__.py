"""The façade package: ``Orchestrator`` (async) and ``run_orchestration`` (sync). Front doors talk to it only.

``facade`` answers requests (``run_options``: their typed options; ``stream_handle``: a streamed answer
and its result) with the parts of a ``runtime`` (the composition root, which owns the close order);
``services`` holds the operations beyond answering (health, routing decisions, validation).
"""

from model_orchestrator.orchestrator.facade import Orchestrator, Prompt, run_orchestration
from model_orchestrator.orchestrator.run_options import STRATEGY_OPTIONS, RunOptions
from model_orchestrator.orchestrator.runtime import Runtime
from model_orchestrator.orchestrator.stream_handle import StreamHandle

__all__ = [
    "STRATEGY_OPTIONS",
    "Orchestrator",
    "Prompt",
    "RunOptions",
    "Runtime",
    "StreamHandle",
    "run_orchestration",
]
