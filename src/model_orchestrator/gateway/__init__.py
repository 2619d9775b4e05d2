"""L4 gateway: a Chat Completions HTTP server over the façade (``orchestrator serve``).

Models and strategies are served as models; virtual keys with budgets, allowed models and rate limits;
streaming with honest failure semantics; health, Prometheus metrics and an OpenAPI document. Imported only
by ``orchestrator serve`` and by callers who embed it (``Gateway``); ``import model_orchestrator`` never
loads it.
"""

from model_orchestrator.gateway.server import Gateway, serve
from model_orchestrator.gateway.settings import GatewaySettings, Limits

__all__ = ["Gateway", "GatewaySettings", "Limits", "serve"]
