"""The façade package: ``Orchestrator`` (async) and ``run_orchestration`` (sync). Front doors talk to it only.

``facade`` answers requests (``stream_handle``: a streamed answer and its result); ``services`` holds the
operations beyond answering (health, routing decisions, validation) that the façade delegates to.
"""

from model_orchestrator.orchestrator.facade import STRATEGY_OPTIONS, Orchestrator, Prompt, run_orchestration
from model_orchestrator.orchestrator.stream_handle import StreamHandle

__all__ = ["STRATEGY_OPTIONS", "Orchestrator", "Prompt", "StreamHandle", "run_orchestration"]
