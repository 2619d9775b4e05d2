"""The façade package: ``Orchestrator`` (async) and ``run_orchestration`` (sync). Front doors talk to it only.

``facade`` answers requests through ``request_path`` (``run_options``: their typed options;
``stream_handle``: a streamed answer and its result) with the parts of a ``runtime`` (the composition
root, which owns the close order). The admin services beside it (``costs_service``, ``keys_service``,
``health_service``, ``routing_service``, ``validation_service``) are built from the same runtime.
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
