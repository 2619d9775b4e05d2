"""``KeysService``: the gateway's virtual keys, kept hashed in the ledger database (``orch.keys``).

An admin service beside the answering API; creating, listing and revoking keys is
``ledger.keys.VirtualKeyStore``'s, this only opens it on the ledger's database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model_orchestrator.core.clock import Clock

if TYPE_CHECKING:
    from model_orchestrator.ledger.keys import VirtualKeyStore
    from model_orchestrator.ledger.ledger import Ledger


class KeysService:
    """Opens the virtual key store on ``ledger``'s database (None: the ledger is off, so are keys)."""

    def __init__(self, ledger: Ledger | None, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock

    async def store(self) -> VirtualKeyStore | None:
        """The virtual key store (None when the ledger is off)."""
        if self._ledger is None:
            return None
        from model_orchestrator.ledger.keys import VirtualKeyStore

        return VirtualKeyStore((await self._ledger.store()).engine, clock=self._clock)
