"""Capabilities in strategies: a request that needs tools, images or a JSON schema never reaches a model
that lacks them, and a strategy that cannot carry one refuses instead of dropping it.

Owns the reason a strategy records for skipping such a member, the one error raised before any call when
no member can take the request (``require_capable``), ``CapabilityGateModel`` (the same check in front of
every configured model, naming the models that would do), and ``refuse_capabilities`` for strategies that
cannot honour a capability at all. What a request needs is ``ChatRequest.required_capabilities``; what a
model has is its profile's (catalogue, then config's ``capabilities:``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from model_orchestrator.core.errors import CapabilityNotSupportedError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import DeferredStream
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.strategies.member import Member

_DECLARE = "declare it with `capabilities:` on a model that has it in orchestrator.yaml"


def _joined(names: Sequence[str] | frozenset[str]) -> str:
    return ", ".join(sorted(names))


def missing_reason(profile: ModelProfile, request: ChatRequest) -> str | None:
    """Why ``profile``'s model cannot take ``request`` (``lacks vision (it has: text, tools)``), or None."""
    missing = profile.missing_capabilities(request)
    if not missing:
        return None
    return f"lacks {_joined(missing)} (it has: {_joined(profile.capabilities)})"


def capability_skip(member: Member, request: ChatRequest) -> CapabilityNotSupportedError | None:
    """The error recorded when ``member`` is skipped for a capability it lacks, or None."""
    reason = missing_reason(member.profile, request)
    if reason is None:
        return None
    capability = min(member.profile.missing_capabilities(request))
    return CapabilityNotSupportedError(reason, capability=capability, deployment=member.name)


def capable(members: Sequence[Member], request: ChatRequest) -> list[Member]:
    """The members that have every capability ``request`` needs (unknown capabilities count as having)."""
    return [m for m in members if not m.profile.missing_capabilities(request)]


def require_capable(members: Sequence[Member], request: ChatRequest, strategy: str) -> None:
    """Raise ``CapabilityNotSupportedError`` before any call when no member can take ``request``."""
    if not members or not request.required_capabilities or capable(members, request):
        return
    lacking = "; ".join(
        f"{m.name} {missing_reason(m.profile, request)}" for m in dict.fromkeys(members, None)
    )
    missing = frozenset().union(*(m.profile.missing_capabilities(request) for m in members))
    raise CapabilityNotSupportedError(
        f"no member of {strategy!r} can take this request, which needs {_joined(missing)}: {lacking}; "
        f"nothing was sent. Add a member that has it, or {_DECLARE}",
        capability=min(missing),
    )


def refuse_capabilities(
    request: ChatRequest,
    strategy: str,
    unsupported: frozenset[str],
    why: str,
    instead: str = "use single, fallback, cascade, race, hedge, route, cheapest or a vote ensemble",
) -> None:
    """Raise ``CapabilityNotSupportedError`` when ``request`` needs one of ``unsupported``, which
    ``strategy`` cannot honour (``why`` says how it would be lost); nothing has been sent."""
    refused = request.required_capabilities & unsupported
    if refused:
        raise CapabilityNotSupportedError(
            f"{strategy!r} cannot honour {_joined(refused)}: {why}; nothing was sent. For such requests, "
            f"{instead}",
            capability=min(refused),
        )


class CapabilityGateModel(WrapperModel):
    """A configured model that refuses a request needing a capability it lacks, before any call.

    ``having(capability)`` lists the configured models that have it, for the error message.
    """

    def __init__(
        self, inner: ChatModel, profile: ModelProfile, having: Callable[[str], Sequence[str]]
    ) -> None:
        super().__init__(inner)
        self._profile = profile
        self._having = having

    def complete(self, request: ChatRequest) -> Coroutine[Any, Any, Completion]:
        # The inner call's own coroutine when the model can take the request (no frame of ours); a
        # refusal is raised when awaited, as an ``async def`` would raise it.
        try:
            self._check(request)
        except CapabilityNotSupportedError as exc:
            return _raise(exc)
        return self.inner.complete(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        # Checked at the first read, as a generator would; later reads go straight to the inner stream.
        async def checked() -> AsyncIterator[StreamDelta]:
            self._check(request)
            return self.inner.stream(request)

        return DeferredStream(checked)

    def _check(self, request: ChatRequest) -> None:
        missing = self._profile.missing_capabilities(request)
        if not missing:
            return
        capability = min(missing)
        others = [n for n in self._having(capability) if n != self._profile.name]
        where = (
            f"Configured models that have {capability}: {', '.join(others)}; use one of them, or "
            if others
            else f"No configured model has {capability}: "
        )
        raise CapabilityNotSupportedError(
            f"model {self._profile.name!r} {missing_reason(self._profile, request)}, and this request "
            f"needs {_joined(missing)}; nothing was sent. {where}{_DECLARE}",
            capability=capability,
            deployment=self._profile.name,
        )


async def _raise(error: CapabilityNotSupportedError) -> Completion:
    raise error
