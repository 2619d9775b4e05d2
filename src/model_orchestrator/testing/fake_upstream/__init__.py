"""A real local HTTP server that speaks the providers' wire formats, with scripted answers and faults.

Owns the fake's public surface; the server, the script vocabulary and one module per wire format
live beside it. Nothing here imports ``model_orchestrator.providers``: the fake is written from the
vendors' documented formats, so adapters are tested against something they did not shape.
"""

from model_orchestrator.testing.fake_upstream.script import Fault, RecordedRequest, Reply, estimate_tokens
from model_orchestrator.testing.fake_upstream.server import FakeUpstream, WireFormat, available_formats

__all__ = [
    "FakeUpstream",
    "Fault",
    "RecordedRequest",
    "Reply",
    "WireFormat",
    "available_formats",
    "estimate_tokens",
]
