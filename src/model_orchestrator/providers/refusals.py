"""Refusing, before anything is sent, a request that needs a capability an adapter does not have.

Owns the one check and the wording of its ``CapabilityNotSupportedError``, so that every adapter refuses
tools, images and JSON schemas alike. Which capabilities an adapter has is the adapter's declaration;
what the catalogue says a model can do (and routing around it) is not this module's concern.
"""

from __future__ import annotations

from collections.abc import Collection

from model_orchestrator.core.errors import CapabilityNotSupportedError
from model_orchestrator.core.request import ChatRequest

# What each capability means in a request, in the words a caller would use to find it.
_WHAT = {
    "tools": "tools (tool definitions, a tool choice, or tool calls and tool results in the conversation)",
    "vision": "images",
    "json_schema": "a JSON-schema response format",
}
# Checked in this order, so the error names the same capability whatever the set's order.
_ORDER = ("tools", "vision", "json_schema")


def refuse_unsupported(
    request: ChatRequest,
    *,
    supported: Collection[str],
    model: str,
    provider: str,
    deployment: str,
    reason: str = "",
) -> None:
    """Raise ``CapabilityNotSupportedError`` for the first capability ``request`` needs beyond ``supported``.

    ``reason`` (optional) says why this model lacks it, e.g. "a CLI agent takes a prompt on stdin only".
    """
    needed = request.required_capabilities
    for capability in _ORDER:
        if capability in needed and capability not in supported:
            why = f" ({reason})" if reason else ""
            raise CapabilityNotSupportedError(
                f"model {model!r} cannot take {_WHAT[capability]}{why}; nothing was sent. Choose a model "
                f"with the {capability!r} capability, or leave that part out of the request.",
                capability=capability,
                provider=provider,
                deployment=deployment,
            )
