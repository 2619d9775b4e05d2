"""``HealthProbe``: the one method a deployment offers for a cheap, free liveness check.

Owns the interface only. Adapters implement it (an HTTP adapter lists the vendor's models, which costs
nothing; a local model checks its weights and runtime; a CLI agent checks its executable); the health
monitor in ``resilience`` calls it. A probe never generates text, so it never spends money.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class HealthProbe(Protocol):
    """Something that can say, cheaply and for free, whether its deployment is reachable and usable."""

    async def probe(self) -> None:
        """Return when the deployment looks usable; raise an ``OrchestratorError`` saying why it is not."""
        ...
